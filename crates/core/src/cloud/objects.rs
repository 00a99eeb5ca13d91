//! Objects in S3: the environment's bucket (`provider.bucket`) and the objects its roles
//! publish (`publish:`), rendered per host; and their plan against the bucket the provider
//! found (create and secure the bucket, upload what changed, delete what no role publishes).
//! Pure: the plan shows digests only, the contents travel apart (`CloudPlan::object_contents`).

use super::{Attr, CloudAction, CloudChange, CloudPlan, Mode};
use crate::diagnostic::{Diagnostic, SourceLocation};
use crate::environment::Environment;
use crate::render::{publish_key_template_name, RenderName, Renderer, SharedContext};
use crate::secrets::Secrets;
use infra_protocol::{BucketFact, CloudFacts, CloudOp, Op};
use std::collections::BTreeMap;

/// One object a role publishes, rendered.
#[derive(Debug, Clone)]
pub struct DesiredObject {
    pub key: String,
    pub content: Vec<u8>,
    /// sha256 of the content (hex): what the bucket's `infra-sha256` metadata is compared with.
    pub sha256: String,
    /// What the plan shows: the sha256, or the environment's keyed digest when the content
    /// holds a secret.
    pub digest: String,
    pub content_type: Option<String>,
    /// The first host (by name) it was rendered for, and its role.
    pub host: String,
    pub role: String,
    pub at: SourceLocation,
}

/// Every object the environment's roles publish, by key.
#[derive(Clone, Default)]
pub struct Objects {
    pub objects: BTreeMap<String, DesiredObject>,
    /// The environment's digest key: the previous digest of an object holding a secret, and
    /// of an object being deleted, is shown keyed too.
    pub digest_key: Option<crate::secrets::DigestKey>,
    /// Secrets an object needed that are not set (their placeholders were rendered): a run
    /// that writes refuses to start, as for files.
    pub missing_secrets: std::collections::BTreeSet<String>,
}

impl Objects {
    /// The contents to upload, by their plan digest.
    pub fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects
            .values()
            .map(|o| (o.digest.clone(), o.content.clone()))
            .collect()
    }
}

/// Whether `name` is a valid S3 bucket name (what infra accepts: no dots next to each other
/// or to a `-`, not an IP address).
pub fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let edges = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !(3..=63).contains(&name.len())
        || !ok_chars
        || !name.starts_with(edges)
        || !name.ends_with(edges)
        || name.contains("..")
        || name.contains(".-")
        || name.contains("-.")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return Some("is not a valid S3 bucket name");
    }
    None
}

/// Whether an S3 key is one infra writes: 1 to 1024 bytes of letters, digits and `!-_.*'()/`,
/// not starting with `/`, no empty, `.` or `..` segment (so URLs need no escaping).
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > 1024 {
        return Some("must be 1 to 1024 bytes long");
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!-_.*'()/".contains(c))
    {
        return Some("may only hold letters, digits and !-_.*'()/");
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some("has an empty, `.` or `..` part (or starts or ends with `/`)");
    }
    None
}

/// Renders every `publish:` entry for every host holding its role (all hosts of the
/// environment, whatever `--limit` selects). The same key from several hosts must render the
/// same bytes. Problems are diagnostics at the entry.
pub fn render(
    env: &Environment,
    renderer: &Renderer,
    secrets: &Secrets,
) -> (Objects, Vec<Diagnostic>) {
    let mut out = Objects {
        digest_key: Some(secrets.digest_key().clone()),
        ..Objects::default()
    };
    let mut diags = Vec::new();
    let site = env.site;
    let shared = SharedContext::new(env);
    let prov = &env.inventory.provider.value;
    let bucket = prov.bucket.as_ref();
    if let (Some(b), None) = (bucket, &prov.region) {
        diags.push(
            Diagnostic::error("provider.bucket needs provider.region")
                .at(site.loc(&env.file, b, b.value.len().max(1)))
                .hint("add the bucket's region, e.g. `region: eu-west-1`"),
        );
    }
    if let Some(problem) = bucket.and_then(|b| bucket_name_problem(&b.value)) {
        let b = bucket.map(|b| site.loc(&env.file, b, b.value.len().max(1)));
        let mut d = Diagnostic::error(format!("provider.bucket {problem}"));
        if let Some(at) = b {
            d = d.at(at);
        }
        diags.push(d.hint("S3 bucket names: 3 to 63 lowercase letters, digits, `-` and `.`"));
    }
    for (role_name, role) in &site.roles {
        if role.value.publish.is_empty() || env.hosts_with_role(role_name).is_empty() {
            continue;
        }
        if bucket.is_none() {
            let at = site.loc(&role.file, &role.value.publish[0], 1);
            diags.push(
                Diagnostic::error(format!(
                    "role `{role_name}` publishes objects, but environment `{}` has no bucket",
                    env.name
                ))
                .at(at)
                .hint("set `provider.bucket: NAME` in the inventory (infra creates it, private)"),
            );
            continue;
        }
        for i in 0..role.value.publish.len() {
            for host in env.hosts_with_role(role_name) {
                match render_entry(env, renderer, &shared, secrets, role_name, i, host) {
                    Ok(Some(o)) => {
                        let text = String::from_utf8_lossy(&o.content);
                        for s in &role.value.secrets {
                            if secrets.get(&s.value).is_none()
                                && text.contains(&Secrets::placeholder(&s.value))
                            {
                                out.missing_secrets.insert(s.value.clone());
                            }
                        }
                        insert(&mut out, o, &mut diags)
                    }
                    Ok(None) => {}
                    Err(d) => {
                        diags.push(*d);
                        break;
                    }
                }
            }
        }
    }
    (out, diags)
}

/// Adds `o`, or reports that another host rendered other bytes for its key.
fn insert(out: &mut Objects, o: DesiredObject, diags: &mut Vec<Diagnostic>) {
    match out.objects.get(&o.key) {
        None => {
            out.objects.insert(o.key.clone(), o);
        }
        Some(first) if first.sha256 == o.sha256 => {}
        Some(first) => diags.push(
            Diagnostic::error(format!(
                "object `{}` renders differently on host `{}` (role {}) and host `{}` (role {})",
                o.key, first.host, first.role, o.host, o.role
            ))
            .at(o.at.clone())
            .hint("one key is one object: make its content the same on every host, or put the host in the key, e.g. `config/{{ host.name }}.json`"),
        ),
    }
}

/// One entry of `role`'s `publish:` rendered for `host`: its key, then its content.
fn render_entry(
    env: &Environment,
    renderer: &Renderer,
    shared: &SharedContext,
    secrets: &Secrets,
    role_name: &str,
    index: usize,
    host: &crate::environment::ResolvedHost,
) -> Result<Option<DesiredObject>, Box<Diagnostic>> {
    let site = env.site;
    let role = &site.roles[role_name];
    let entry = &role.value.publish[index];
    let e = &entry.value;
    let at = site.loc(&role.file, entry, 1);
    let key_at = site.loc(&role.file, &e.key, e.key.value.chars().count().max(1));
    let mut names = Vec::new();
    let key_name = publish_key_template_name(&role.file, index);
    if renderer.has_template(&key_name) {
        names.push(RenderName {
            name: key_name,
            what: "the `key` of this object".into(),
            tera_at: Some(key_at.clone()),
            at: key_at.clone(),
        });
    }
    let content = match (&e.template, &e.source) {
        (Some(t), None) => {
            if !renderer.has_template(&t.value) {
                return Err(Box::new(
                    Diagnostic::error(format!("template `{}` does not exist", t.value))
                        .at(site.loc(&role.file, t, t.value.chars().count()))
                        .hint("paths are relative to templates/; a template's name ends in .j2"),
                ));
            }
            names.push(RenderName {
                name: t.value.clone(),
                what: format!("template `{}`", t.value),
                tera_at: None,
                at: at.clone(),
            });
            None
        }
        (None, Some(s)) => match site.templates.get(&s.value) {
            Some(f) => Some(f.bytes.clone()),
            None => {
                return Err(Box::new(
                    Diagnostic::error(format!("source `{}` does not exist", s.value))
                        .at(site.loc(&role.file, s, s.value.chars().count()))
                        .hint("paths are relative to templates/"),
                ))
            }
        },
        _ => {
            return Err(Box::new(
                Diagnostic::error("a `publish:` entry needs exactly one of `template` or `source`")
                    .at(at),
            ))
        }
    };
    let mut rendered = renderer
        .render_for_host(env, shared, host, secrets, &e.vars, &names)?
        .into_iter();
    let key = if names.first().is_some_and(|n| n.tera_at.is_some()) {
        String::from_utf8_lossy(&rendered.next().unwrap_or_default()).into_owned()
    } else {
        e.key.value.clone()
    };
    if let Some(problem) = key_problem(&key) {
        return Err(Box::new(
            Diagnostic::error(format!("object key `{key}` {problem}"))
                .at(key_at)
                .note(format!("rendered for host `{}`", host.view.name))
                .hint("e.g. `config/auth.json`"),
        ));
    }
    let content = content.unwrap_or_else(|| rendered.next().unwrap_or_default());
    let sha256 = crate::state::sha256(&content);
    let found = secrets.found_in(&content);
    let digest = if found.is_empty() {
        sha256.clone()
    } else {
        secrets.digest_key().keyed(&sha256)
    };
    Ok(Some(DesiredObject {
        key,
        content,
        sha256,
        digest,
        content_type: e.content_type.as_ref().map(|c| c.value.clone()),
        host: host.view.name.clone(),
        role: role_name.to_string(),
        at,
    }))
}

/// The plan address of the bucket and of an object.
pub const BUCKET_ADDRESS: &str = "aws_s3_bucket.main";

pub fn object_address(key: &str) -> String {
    format!("aws_s3_object.{key}")
}

fn attr(name: &str, before: Option<String>, after: Option<String>) -> Attr {
    Attr {
        name: name.into(),
        before,
        after,
        forces_replacement: false,
    }
}

fn change(
    address: String,
    action: CloudAction,
    attrs: Vec<Attr>,
    ops: Vec<CloudOp>,
) -> CloudChange {
    let ops = ops
        .into_iter()
        .map(|op| Op {
            phase: op.phase(),
            resource: address.clone(),
            op,
        })
        .collect();
    CloudChange {
        address,
        action,
        attrs,
        ops,
    }
}

/// The bucket's and the objects' changes, and what destroy keeps (a bucket holding objects
/// infra did not write).
pub fn plan(
    env: &Environment,
    facts: &CloudFacts,
    wanted: &Objects,
    mode: Mode,
) -> Result<(Vec<CloudChange>, Vec<String>), Box<Diagnostic>> {
    let inv = env.inventory;
    let Some(bucket) = inv.provider.value.bucket.as_ref() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let name = bucket.value.as_str();
    let err = |message: String, hint: &str| {
        Box::new(
            Diagnostic::error(message)
                .at(env.site.loc(&env.file, bucket, name.len()))
                .hint(hint),
        )
    };
    let found = facts.bucket.as_ref().filter(|b| b.name == name);
    if let Some(b) = found {
        if b.environment.as_deref() != Some(env.name.as_str()) {
            return Err(err(
                format!(
                    "bucket `{name}` exists and is not environment `{}`'s ({})",
                    env.name,
                    match &b.environment {
                        Some(e) => format!("its infra:env tag says `{e}`"),
                        None => "it has no infra:env tag".into(),
                    }
                ),
                "infra only writes to a bucket it created for this environment: name another bucket",
            ));
        }
    }
    let mut changes = Vec::new();
    let mut kept = Vec::new();
    match mode {
        Mode::Converge => {
            changes.extend(bucket_change(name, found));
            for o in wanted.objects.values() {
                if let Some(c) = put(env, name, o, found, wanted.digest_key.as_ref())? {
                    changes.push(c);
                }
            }
            if let Some(b) = found {
                let key = wanted.digest_key.as_ref();
                changes.extend(gone(env, b, key, |k| !wanted.objects.contains_key(k)));
            }
        }
        Mode::Destroy => {
            if let Some(b) = found {
                changes.extend(gone(env, b, wanted.digest_key.as_ref(), |_| true));
                if b.objects.iter().any(|o| !is_ours(env, o)) {
                    kept.push(format!(
                        "{BUCKET_ADDRESS} ({name}: it holds objects infra did not write)"
                    ));
                } else {
                    changes.push(change(
                        BUCKET_ADDRESS.into(),
                        CloudAction::Delete,
                        vec![attr("bucket", Some(q(name)), None)],
                        vec![CloudOp::DeleteBucket { name: name.into() }],
                    ));
                }
            }
        }
    }
    Ok((changes, kept))
}

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

fn is_ours(env: &Environment, o: &infra_protocol::ObjectFact) -> bool {
    o.environment.as_deref() == Some(env.name.as_str())
}

/// Create the bucket, or secure one found with public access allowed or no encryption.
fn bucket_change(name: &str, found: Option<&BucketFact>) -> Option<CloudChange> {
    let on = |b: bool| if b { "true" } else { "false" }.to_string();
    match found {
        None => Some(change(
            BUCKET_ADDRESS.into(),
            CloudAction::Create,
            vec![
                attr("bucket", None, Some(q(name))),
                attr("block_public_access", None, Some(on(true))),
                attr("encryption", None, Some(q("AES256"))),
            ],
            vec![CloudOp::CreateBucket { name: name.into() }],
        )),
        Some(b) if !b.public_access_blocked || !b.encrypted => {
            let mut attrs = Vec::new();
            if !b.public_access_blocked {
                attrs.push(attr("block_public_access", Some(on(false)), Some(on(true))));
            }
            if !b.encrypted {
                attrs.push(attr("encryption", Some(q("none")), Some(q("AES256"))));
            }
            Some(change(
                BUCKET_ADDRESS.into(),
                CloudAction::Update,
                attrs,
                vec![CloudOp::SecureBucket { name: name.into() }],
            ))
        }
        Some(_) => None,
    }
}

/// Upload `o` unless the bucket holds it with the same sha256.
fn put(
    env: &Environment,
    bucket: &str,
    o: &DesiredObject,
    found: Option<&BucketFact>,
    digest_key: Option<&crate::secrets::DigestKey>,
) -> Result<Option<CloudChange>, Box<Diagnostic>> {
    let have = found.and_then(|b| b.objects.iter().find(|f| f.key == o.key));
    if let Some(h) = have {
        if !is_ours(env, h) {
            return Err(Box::new(
                Diagnostic::error(format!(
                    "object `{}` of bucket `{bucket}` was not written by infra for environment `{}`",
                    o.key, env.name
                ))
                .at(o.at.clone())
                .hint("publish it under another key, or delete the object first"),
            ));
        }
        if h.sha256.as_deref() == Some(o.sha256.as_str()) {
            return Ok(None);
        }
    }
    let op = CloudOp::PutObject {
        bucket: bucket.into(),
        key: o.key.clone(),
        digest: o.digest.clone(),
        content_type: o.content_type.clone(),
    };
    let size = format!("{}", o.content.len());
    let c = match have {
        None => change(
            object_address(&o.key),
            CloudAction::Create,
            vec![
                attr("digest", None, Some(q(&o.digest))),
                attr("size", None, Some(size)),
                attr("role", None, Some(q(&o.role))),
            ],
            vec![op],
        ),
        Some(h) => {
            let before = match (h.sha256.as_deref(), digest_key) {
                (None, _) => "unknown".to_string(),
                (Some(s), Some(k)) if o.digest != o.sha256 => k.keyed(s),
                (Some(s), _) => s.to_string(),
            };
            change(
                object_address(&o.key),
                CloudAction::Update,
                vec![attr("digest", Some(q(&before)), Some(q(&o.digest)))],
                vec![op],
            )
        }
    };
    Ok(Some(c))
}

/// Deletes of this environment's objects that `unwanted` selects.
/// Their digest is shown keyed: what they held is not known.
fn gone(
    env: &Environment,
    b: &BucketFact,
    digest_key: Option<&crate::secrets::DigestKey>,
    unwanted: impl Fn(&str) -> bool,
) -> Vec<CloudChange> {
    b.objects
        .iter()
        .filter(|o| is_ours(env, o) && unwanted(&o.key))
        .map(|o| {
            change(
                object_address(&o.key),
                CloudAction::Delete,
                vec![attr(
                    "digest",
                    o.sha256
                        .as_deref()
                        .map(|s| q(&digest_key.map_or_else(|| s.to_string(), |k| k.keyed(s)))),
                    None,
                )],
                vec![CloudOp::DeleteObject {
                    bucket: b.name.clone(),
                    key: o.key.clone(),
                }],
            )
        })
        .collect()
}

/// The cloud plan of a static inventory with a bucket (the bucket and its objects only),
/// before its objects are added (`add`).
pub fn static_plan(env: &Environment, facts: &CloudFacts) -> CloudPlan {
    let prov = &env.inventory.provider.value;
    CloudPlan {
        provider: "aws".into(),
        region: prov.region.clone().unwrap_or_default(),
        facts_fingerprint: super::fingerprint(facts),
        ..CloudPlan::default()
    }
}

/// Adds the bucket's and the objects' changes of a converging plan, with the contents.
pub fn add(
    cloud: &mut CloudPlan,
    env: &Environment,
    facts: &CloudFacts,
    wanted: &Objects,
) -> Result<(), Box<Diagnostic>> {
    let (changes, kept) = plan(env, facts, wanted, Mode::Converge)?;
    cloud.changes.extend(changes);
    cloud.kept.extend(kept);
    cloud.object_contents = wanted.contents();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_paths() {
        assert_eq!(key_problem("config/auth.json"), None);
        assert_eq!(key_problem("a-b_c.d/e(1)!'*"), None);
        for bad in [
            "", "/config", "config/", "a//b", "a/../b", "./a", "a b", "a?b", "ä",
        ] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(key_problem(&"a".repeat(1025)).is_some());
    }

    #[test]
    fn bucket_names_follow_s3() {
        for good in ["egf2-configs", "a.b-c", "abc", "x1"] {
            assert_eq!(
                bucket_name_problem(good).is_none(),
                good.len() >= 3,
                "{good}"
            );
        }
        for bad in [
            "Egf2",
            "-a1",
            "a1-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(bucket_name_problem(bad).is_some(), "{bad}");
        }
    }
}
