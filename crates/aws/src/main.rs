//! `infra-aws`: the AWS provider program. `infra` runs it, writes one JSON request on its stdin
//! and reads JSON lines back (`infra_protocol::ProviderEvent`). It is the only crate that links
//! the AWS SDK, so nothing else pays for building it.
//!
//!   infra-aws discover   < Scope          -> one `facts` line
//!   infra-aws apply      < ApplyRequest   -> start/waiting/done lines, then `facts` (or `error`)
//!   infra-aws lock       < LockRequest    -> one `lock` line: the environment lock (DynamoDB)
//!   infra-aws host-keys  < HostKeysRequest -> the SSH host keys new instances print on their
//!                                             console (GetConsoleOutput)
//!
//! Credentials, region and endpoint come the standard AWS way (environment, profiles,
//! `AWS_ENDPOINT_URL`); the region of the inventory is used when none is set.

mod apply;
mod discover;
mod elb;
mod hostkeys;
mod lock;
mod records;
mod s3;

use infra_protocol::{ApplyRequest, HostKeysRequest, LockRequest, ProviderEvent, Scope};
use std::io::{Read, Write};

/// An error of one AWS call, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct AwsError {
    pub what: String,
    pub message: String,
}

impl AwsError {
    pub fn new(what: impl Into<String>, message: impl Into<String>) -> AwsError {
        AwsError {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// `what` failed with the SDK error `e`: its chain of messages (service code and message,
/// or why the request could not be sent), without the SDK's debug dump.
pub fn sdk<E: std::error::Error + 'static>(what: impl Into<String>, e: E) -> AwsError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    if text.contains("loading credentials") || text.contains("no credentials") {
        text = format!(
            "no AWS credentials found ({text}); set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
    }
    AwsError::new(what, text)
}

/// The AWS clients of one region.
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub r53: aws_sdk_route53::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub region: String,
    pub s3: aws_sdk_s3::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
}

impl Clients {
    async fn new(region: &str) -> Clients {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        // Throttling is retried with backoff; more patiently than the SDK's 3 attempts unless
        // the user chose (AWS_MAX_ATTEMPTS, or a profile's max_attempts).
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
            loader = loader.retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_max_backoff(std::time::Duration::from_secs(20)),
            );
        }
        let conf = loader.load().await;
        let region = conf
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| region.to_string());
        Clients {
            ec2: aws_sdk_ec2::Client::new(&conf),
            r53: aws_sdk_route53::Client::new(&conf),
            ddb: aws_sdk_dynamodb::Client::new(&conf),
            region,
            s3: s3::client(&conf),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&conf),
        }
    }
}

/// Writes one event line and flushes it (infra shows progress as it comes).
pub fn emit(event: &ProviderEvent) {
    let mut out = std::io::stdout().lock();
    let line = serde_json::to_string(event).unwrap_or_else(|e| {
        format!(
            "{{\"event\":\"error\",\"index\":null,\"message\":\"cannot encode an event: {e}\"}}"
        )
    });
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn usage() -> ! {
    eprintln!("usage: infra-aws discover|apply|lock|host-keys < request.json  (run by infra, not by hand)");
    std::process::exit(1)
}

fn read_request<T: serde::de::DeserializeOwned>() -> Result<T, AwsError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| AwsError::new("read the request", e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| AwsError::new("parse the request", e.to_string()))
}

fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_else(|| usage());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            emit(&ProviderEvent::Error {
                index: None,
                message: format!("cannot start the async runtime: {e}"),
            });
            std::process::exit(1)
        }
    };
    let result = rt.block_on(async {
        match cmd.as_str() {
            "discover" => {
                let scope: Scope = read_request()?;
                let clients = Clients::new(&scope.region).await;
                let facts = discover::discover(&clients, &scope).await?;
                emit(&ProviderEvent::Facts {
                    facts: Box::new(facts),
                });
                Ok(())
            }
            "apply" => {
                let req: ApplyRequest = read_request()?;
                let clients = Clients::new(&req.scope.region).await;
                apply::apply(&clients, &req).await
            }
            "lock" => {
                let req: LockRequest = read_request()?;
                let clients = Clients::new(&req.scope.region).await;
                let reply = lock::lock(&clients, &req).await?;
                emit(&ProviderEvent::Lock { reply });
                Ok(())
            }
            "host-keys" => {
                let req: HostKeysRequest = read_request()?;
                let clients = Clients::new(&req.scope.region).await;
                let keys = hostkeys::host_keys(&clients, &req).await?;
                emit(&ProviderEvent::HostKeys { keys });
                Ok(())
            }
            _ => usage(),
        }
    });
    if let Err((index, e)) = result.map_err(|e: apply::Failure| (e.index, e.error)) {
        emit(&ProviderEvent::Error {
            index,
            message: e.to_string(),
        });
        std::process::exit(1);
    }
}
