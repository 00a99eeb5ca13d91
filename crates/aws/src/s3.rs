//! S3: the environment's bucket and the objects infra publishes in it; discovery (the bucket,
//! its tags, public access block, encryption, and each object's infra metadata) and the
//! operations (create and secure the bucket, put and delete objects, delete the bucket).

use crate::{sdk, AwsError};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tag, Tagging,
};
use aws_sdk_s3::Client;
use infra_protocol::{BucketFact, ObjectFact, META_ENV, META_SHA256, TAG_ENV};
use std::collections::BTreeMap;

/// An S3 client for `region`, from the shared SDK config. With an endpoint set through the
/// environment (`AWS_ENDPOINT_URL[_S3]`, an S3-compatible store or an emulator), requests
/// are path-style: `http://HOST:PORT/BUCKET/KEY`.
pub fn client(conf: &aws_config::SdkConfig) -> Client {
    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    let s3 = aws_sdk_s3::config::Builder::from(conf)
        .force_path_style(endpoint)
        .build();
    Client::from_conf(s3)
}

fn code<E: ProvideErrorMetadata>(e: &E) -> &str {
    e.code().unwrap_or_default()
}

/// The bucket `name`, if it exists; its objects only when it is `environment`'s.
pub async fn discover(
    s3: &Client,
    name: &str,
    environment: &str,
) -> Result<Option<BucketFact>, AwsError> {
    let what = format!("look up bucket {name}");
    match s3.head_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            return match status {
                Some(404) => Ok(None),
                Some(403) => Err(AwsError::new(
                    what,
                    "the bucket exists and these credentials may not read it (another account's?): name another bucket",
                )),
                _ => Err(sdk(what, e)),
            };
        }
    }
    let tags = match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        Err(e) if code(&e) == "NoSuchTagSet" => BTreeMap::new(),
        Err(e) => return Err(sdk(format!("read the tags of bucket {name}"), e)),
    };
    let env = tags.get(TAG_ENV).cloned();
    let public_access_blocked = match s3.get_public_access_block().bucket(name).send().await {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        }),
        Err(e) if code(&e) == "NoSuchPublicAccessBlockConfiguration" => false,
        Err(e) => return Err(sdk(format!("read the public access block of {name}"), e)),
    };
    let encrypted = match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(out) => out
            .server_side_encryption_configuration()
            .is_some_and(|c| !c.rules().is_empty()),
        Err(e) if code(&e) == "ServerSideEncryptionConfigurationNotFoundError" => false,
        Err(e) => return Err(sdk(format!("read the encryption of {name}"), e)),
    };
    let objects = if env.as_deref() == Some(environment) {
        objects(s3, name).await?
    } else {
        Vec::new()
    };
    Ok(Some(BucketFact {
        name: name.to_string(),
        environment: env,
        public_access_blocked,
        encrypted,
        objects,
    }))
}

/// Every object of the bucket with infra's metadata (one HeadObject each).
async fn objects(s3: &Client, name: &str) -> Result<Vec<ObjectFact>, AwsError> {
    let pages: Vec<_> = s3
        .list_objects_v2()
        .bucket(name)
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| sdk(format!("list the objects of {name}"), e))?;
    let mut out = Vec::new();
    for key in pages
        .iter()
        .flat_map(|p| p.contents())
        .filter_map(|o| o.key())
    {
        let head = s3
            .head_object()
            .bucket(name)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk(format!("read s3://{name}/{key}"), e))?;
        let meta = head.metadata();
        let get = |k: &str| meta.and_then(|m| m.get(k)).cloned();
        out.push(ObjectFact {
            key: key.to_string(),
            environment: get(META_ENV),
            sha256: get(META_SHA256),
        });
    }
    out.sort();
    Ok(out)
}

pub async fn create_bucket(
    s3: &Client,
    name: &str,
    region: &str,
    environment: &str,
) -> Result<(), AwsError> {
    let mut req = s3.create_bucket().bucket(name);
    // us-east-1 takes no location constraint (and refuses its own name as one).
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    req.send()
        .await
        .map_err(|e| sdk(format!("create bucket {name}"), e))?;
    secure_bucket(s3, name).await?;
    let tag = Tag::builder()
        .key(TAG_ENV)
        .value(environment)
        .build()
        .map_err(|e| sdk("build a tag", e))?;
    let tagging = Tagging::builder()
        .tag_set(tag)
        .build()
        .map_err(|e| sdk("build the tags", e))?;
    s3.put_bucket_tagging()
        .bucket(name)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| sdk(format!("tag bucket {name}"), e))?;
    Ok(())
}

/// All four Block Public Access settings on; default encryption SSE-S3.
pub async fn secure_bucket(s3: &Client, name: &str) -> Result<(), AwsError> {
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk(format!("block public access to {name}"), e))?;
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .map_err(|e| sdk("build the encryption rule", e))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(default)
        .build();
    let conf = ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(|e| sdk("build the encryption configuration", e))?;
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(conf)
        .send()
        .await
        .map_err(|e| sdk(format!("set the default encryption of {name}"), e))?;
    Ok(())
}

/// The object's fields, borrowed.
pub struct Put<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: Option<&'a str>,
    pub content: Vec<u8>,
    pub environment: &'a str,
}

/// Uploads with SSE-S3 and the metadata infra finds its objects by: the environment, and the
/// content's sha256 (what the next plan compares with the rendered content).
pub async fn put_object(s3: &Client, p: Put<'_>) -> Result<(), AwsError> {
    use sha2::Digest;
    let sha256: String = sha2::Sha256::digest(&p.content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    s3.put_object()
        .bucket(p.bucket)
        .key(p.key)
        .body(ByteStream::from(p.content))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .metadata(META_ENV, p.environment)
        .metadata(META_SHA256, sha256)
        .set_content_type(p.content_type.map(str::to_string))
        .send()
        .await
        .map_err(|e| sdk(format!("upload s3://{}/{}", p.bucket, p.key), e))?;
    Ok(())
}

pub async fn delete_object(s3: &Client, bucket: &str, key: &str) -> Result<(), AwsError> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk(format!("delete s3://{bucket}/{key}"), e))?;
    Ok(())
}

pub async fn delete_bucket(s3: &Client, name: &str) -> Result<(), AwsError> {
    s3.delete_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(|e| sdk(format!("delete bucket {name}"), e))?;
    Ok(())
}
