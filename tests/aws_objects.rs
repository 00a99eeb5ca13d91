//! Objects in S3 against moto: a static inventory (its lock on its `connection: local` host) with `provider.bucket` whose roles publish
//! rendered templates and a site file (`publish:`), applied with `--cloud-only`: the bucket is
//! private (all four Block Public Access settings, default encryption, tagged), it holds
//! exactly the published objects with the rendered bytes (sha256 of what boto3's GetObject
//! returns), the plan shows digests and never content (a secret's value), a second plan is
//! clean, a changed template re-uploads that object only, a removed role's objects go, two
//! hosts rendering one key differently is an error naming both, and destroy leaves no bucket.
//! Read back with boto3 (tests/aws/moto_state.py --bucket), never with infra's own client.

mod common;
#[path = "aws/moto.rs"]
mod moto;

use common::*;
use moto::Moto;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

const BUCKET: &str = "infra-objects-test";
const TOKEN: &str = "tok-3f9a0c1d-canary";

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A site of two publishing roles (api on two hosts: one key, the same bytes) and a static
/// inventory whose hosts are never contacted (`--cloud-only`).
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "roles/api.yaml",
        "name: api\nsecrets: [api_token]\npublish:\n  - template: api/config.json.j2\n    key: \"config/{{ vars.service }}.json\"\n    vars: {service: api}\n    content_type: application/json\n  - source: static/logo.txt\n    key: static/logo.txt\n",
    );
    write(
        d,
        "roles/worker.yaml",
        "name: worker\npublish:\n  - template: worker/config.json.j2\n    key: config/worker.json\n",
    );
    write(
        d,
        "templates/api/config.json.j2",
        "{\"service\": \"{{ vars.service }}\", \"env\": \"{{ env.name }}\", \"token\": \"{{ secrets.api_token }}\", \"self\": \"{{ object_url(key='config/api.json') }}\"}\n",
    );
    write(
        d,
        "templates/worker/config.json.j2",
        "{\"queue\": \"jobs\", \"workers\": {{ vars.workers | default(value=2) }}}\n",
    );
    write(d, "templates/static/logo.txt", "EGF2\n");
    write(
        d,
        "inventories/test.yaml",
        &format!(
            "environment: test\ndomain: test.example\ninternal_domain: test.internal\nprovider: {{type: static, region: us-east-1, bucket: {BUCKET}, s3_url: \"http://objects.test\"}}\nhosts:\n  api1: {{roles: [api], connection: local}}\n  api2: {{roles: [api], address: 192.0.2.12}}\n  worker1: {{roles: [worker], address: 192.0.2.13}}\n"
        ),
    );
    dir
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn keys(bucket: &Value) -> Vec<String> {
    bucket["objects"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// `infra ARGS` in a private mount namespace (its tmpfs /var/lib takes the environment lock
/// of the static inventory, held on its `connection: local` host), with the secret set.
fn run(ns: &MountNamespace, moto: &Moto, dir: &Path, args: &[&str]) -> Run {
    let mut env = moto.env();
    env.push(("INFRA_SECRET_API_TOKEN".into(), TOKEN.into()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ns.infra_env(dir, args, &pairs)
}

const WORKER: &str = "{\"queue\": \"jobs\", \"workers\": 2}\n";

/// What the api role's config renders to (the same on both api hosts).
fn api() -> String {
    format!(
        "{{\"service\": \"api\", \"env\": \"test\", \"token\": \"{TOKEN}\", \"self\": \"http://objects.test/{BUCKET}/config/api.json\"}}\n"
    )
}

/// The plan, then the first apply: a private bucket with exactly the three objects.
fn first_apply(ns: &MountNamespace, moto: &Moto, dir: &Path) -> Value {
    let (api, worker) = (api(), WORKER);
    // The plan: the bucket and three objects, digests only, the secret nowhere.
    let plan = run(ns, moto, dir, &["plan", "test", "--cloud-only"]);
    plan.assert_code(0);
    for line in [
        "+ aws_s3_bucket.main",
        "+ aws_s3_object.config/api.json",
        "+ aws_s3_object.config/worker.json",
        "+ aws_s3_object.static/logo.txt",
        &sha(worker.as_bytes()),
    ] {
        assert!(plan.stdout.contains(line), "{line}:\n{}", plan.stdout);
    }
    assert!(plan.stdout.contains("hmac-sha256:"), "{}", plan.stdout);
    let json = run(ns, moto, dir, &["plan", "test", "--cloud-only", "--json"]);
    json.assert_code(0);
    for out in [&plan.stdout, &plan.stderr, &json.stdout, &json.stderr] {
        assert!(!out.contains(TOKEN), "the secret leaked:\n{out}");
        assert!(
            !out.contains(&sha(api.as_bytes())),
            "a plain hash of a secret:\n{out}"
        );
        assert!(!out.contains("\"queue\""), "content in the plan:\n{out}");
    }
    assert!(
        moto.bucket(BUCKET)["exists"] == false,
        "plan changed nothing"
    );

    run(ns, moto, dir, &["apply", "test", "--cloud-only", "--yes"]).assert_code(0);
    let b = moto.bucket(BUCKET);
    assert_eq!(b["tags"]["infra:env"], "test", "{b}");
    for setting in [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(b["public_access_block"][setting], true, "{setting}: {b}");
    }
    assert_eq!(b["encryption"], "AES256", "{b}");
    assert_eq!(
        keys(&b),
        ["config/api.json", "config/worker.json", "static/logo.txt"]
    );
    let o = &b["objects"];
    assert_eq!(o["config/api.json"]["sha256"], sha(api.as_bytes()), "{b}");
    assert_eq!(o["config/worker.json"]["sha256"], sha(worker.as_bytes()));
    assert_eq!(o["static/logo.txt"]["sha256"], sha(b"EGF2\n"));
    assert_eq!(o["config/api.json"]["content_type"], "application/json");
    assert_eq!(o["config/api.json"]["sse"], "AES256");
    assert_eq!(
        o["config/api.json"]["metadata"]["infra-environment"],
        "test"
    );
    o["config/api.json"]["last_modified"].clone()
}

/// A clean second plan; then one changed template re-uploads that object only.
fn second_and_change(ns: &MountNamespace, moto: &Moto, dir: &Path, api_modified: &Value) {
    let worker = WORKER;
    // Nothing to do the second time.
    let again = run(
        ns,
        moto,
        dir,
        &["plan", "test", "--cloud-only", "--detailed-exitcode"],
    );
    again.assert_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // A changed template: that object only.
    edit(
        dir,
        "templates/worker/config.json.j2",
        "\"jobs\"",
        "\"jobs-2\"",
    );
    let plan = run(ns, moto, dir, &["plan", "test", "--cloud-only"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("~ aws_s3_object.config/worker.json"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Cloud: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    run(ns, moto, dir, &["apply", "test", "--cloud-only", "--yes"]).assert_code(0);
    let b = moto.bucket(BUCKET);
    let worker2 = worker.replace("\"jobs\"", "\"jobs-2\"");
    assert_eq!(
        b["objects"]["config/worker.json"]["sha256"],
        sha(worker2.as_bytes())
    );
    assert_eq!(
        &b["objects"]["config/api.json"]["last_modified"],
        api_modified
    );
}

/// One key rendered differently by two hosts: an error naming both, nothing changed.
fn one_key_two_contents(ns: &MountNamespace, moto: &Moto, dir: &Path) {
    let one_key = "\"env\": \"{{ env.name }}\"";
    let per_host = "\"env\": \"{{ env.name }}\", \"host\": \"{{ host.name }}\"";
    edit(dir, "templates/api/config.json.j2", one_key, per_host);
    let bad = run(ns, moto, dir, &["plan", "test", "--cloud-only"]);
    bad.assert_code(1);
    assert!(
        bad.stderr.contains(
            "object `config/api.json` renders differently on host `api1` (role api) and host `api2` (role api)"
        ),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("roles/api.yaml:4"), "{}", bad.stderr);
    edit(dir, "templates/api/config.json.j2", per_host, one_key);
}

#[test]
fn published_objects_in_a_private_bucket_converge_and_go() {
    let moto = &Moto::start_on("127.0.0.1");
    let ns = &MountNamespace::new();
    let site = site();
    let dir = site.path();
    let api_modified = first_apply(ns, moto, dir);
    second_and_change(ns, moto, dir, &api_modified);
    one_key_two_contents(ns, moto, dir);

    // The worker role gone from the inventory: its object goes, the others stay.
    edit(
        dir,
        "inventories/test.yaml",
        "roles: [worker]",
        "roles: [api]",
    );
    let plan = run(ns, moto, dir, &["plan", "test", "--cloud-only"]);
    assert!(
        plan.stdout.contains("- aws_s3_object.config/worker.json"),
        "{}",
        plan.stdout
    );
    run(ns, moto, dir, &["apply", "test", "--cloud-only", "--yes"]).assert_code(0);
    assert_eq!(
        keys(&moto.bucket(BUCKET)),
        ["config/api.json", "static/logo.txt"]
    );

    // Destroy: infra's objects, then the bucket it created.
    let gone = run(ns, moto, dir, &["destroy", "test", "--yes"]);
    gone.assert_code(0);
    assert!(
        gone.stdout.contains("- aws_s3_bucket.main"),
        "{}",
        gone.stdout
    );
    assert_eq!(moto.bucket(BUCKET)["exists"], false);
}
