//! examples/egf2 end to end on two sandbox hosts (10.213.210.0/24) and moto as the S3 the
//! services' configs are published to, listening on the sandbox bridge (10.213.210.1) so the
//! hosts can fetch from it. infra applies the sandbox inventory, a static inventory with a
//! bucket: its cloud part (the private bucket, the three services' configs) against moto,
//! then the hosts (Node.js services under supervisor, nginx in front). Checked: through nginx
//! on the gateway host, the router reaches auth on the other host, and auth answers the banner
//! that exists only in its published config (the host's copy is read by nobody); the bucket
//! holds exactly the three configs (boto3); a second plan is clean; a changed banner is
//! re-published, restarts the services, and the new value comes back through nginx, also once
//! the host's copy is deleted and auth restarted; a config URL that answers 404 ends a service
//! with EGF2's error message. moto does not check the services' SigV4 signatures.
//! Needs root, nodejs, nginx and supervisor on this machine (the hosts' lower layer), and moto.

mod common;
#[path = "aws/moto.rs"]
mod moto;

use common::*;
use moto::Moto;
use std::path::Path;
use std::time::{Duration, Instant};

const SUBNET: &str = "10.213.210";
const BRIDGE: &str = "10.213.210.1";
const BUCKET: &str = "egf2-sandbox-configs";

fn require_tools() {
    require_root();
    for (program, package) in [
        ("/usr/bin/node", "nodejs"),
        ("/usr/sbin/nginx", "nginx"),
        ("/usr/bin/supervisord", "supervisor"),
    ] {
        assert!(
            Path::new(program).exists(),
            "{program} is missing (the sandbox hosts share this machine's packages): run .ci/run, or apt-get install {package}"
        );
    }
}

/// Polls `url` from `host` (curl on the host) until it answers 200 with `needle` in the body.
fn wait_for(sb: &Sandbox, host: &str, url: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last;
    loop {
        let r = sb.exec(host, &format!("curl -sS --max-time 5 -f {url}"));
        last = format!("{}{}", r.stdout, r.stderr);
        if r.code == 0 && r.stdout.contains(needle) {
            return r.stdout;
        }
        if Instant::now() > deadline {
            let logs = sb.exec(
                "svc",
                "tail -n 20 /var/log/egf2/*.log; supervisorctl status",
            );
            let gw = sb.exec("gw", "tail -n 20 /var/log/egf2/*.log; supervisorctl status");
            panic!(
                "{url} on {host} did not answer with {needle} in 40 s; last: {last}\nsvc: {}\ngw: {}",
                logs.stdout, gw.stdout
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The example's copy with the sandbox's secrets, its two hosts up, and moto on the bridge.
/// Fields drop in order: moto and the hosts go before the site holding their state.
struct Egf2 {
    moto: Moto,
    sb: Sandbox,
    site: SiteDir,
}

fn setup() -> Egf2 {
    require_tools();
    let site = SiteDir::from_example("examples/egf2");
    site.secrets(
        "s3_access_key_id: test\ns3_secret_access_key: test\nauth_token_secret: \"t0ken-s3cret-5e1f\"\n",
    );
    let sb = site.up(SUBNET, &[("gw", 10), ("svc", 20)]);
    // moto on the bridge: reachable from the hosts and from here, nowhere else.
    let moto = Moto::start_on(BRIDGE);
    edit(
        site.path(),
        "inventories/sandbox.yaml",
        "http://10.213.210.1:4566",
        &moto.url(),
    );

    Egf2 { moto, sb, site }
}

/// The first apply: the bucket and the three configs, then the hosts.
fn first_apply(e: &Egf2) {
    let (moto, dir) = (&e.moto, e.site.path());
    let env = moto.env();
    let first = moto.infra(dir, &["apply", "sandbox", "--yes"]);
    first.assert_code(0);
    assert!(
        first.stdout.contains("+ aws_s3_object.config/auth.json"),
        "{}",
        first.stdout
    );
    assert!(
        !first.stdout.contains("t0ken-s3cret-5e1f"),
        "{}",
        first.stdout
    );

    // boto3: a private bucket holding exactly the three configs, as rendered for the hosts.
    let b = moto.bucket(BUCKET);
    assert_eq!(b["public_access_block"]["BlockPublicAcls"], true, "{b}");
    assert_eq!(b["encryption"], "AES256", "{b}");
    let keys: Vec<&str> = b["objects"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "config/auth.json",
            "config/client-data.json",
            "config/router.json"
        ]
    );
    let rendered = infra_with(
        dir,
        &[
            "render",
            "sandbox",
            "svc",
            "/etc/egf2/published/auth.json",
            "--show-secrets",
        ],
        &env,
    );
    rendered.assert_code(0);
    assert_eq!(
        b["objects"]["config/auth.json"]["sha256"],
        sha256(rendered.stdout.as_bytes()),
        "the published object is the rendered config"
    );
}

/// Through nginx on gw: the router (gw) reaches auth (svc), which answers its config's value.
fn through_nginx(e: &Egf2) {
    let (moto, sb) = (&e.moto, &e.sb);
    let url = format!("http://{SUBNET}.10/v1/auth/hello");
    let hello = wait_for(sb, "gw", &url, "EGF2 sandbox");
    assert!(hello.contains("\"service\":\"auth\""), "{hello}");
    // And client-data through the router, and auth -> client-data for a token.
    wait_for(
        sb,
        "gw",
        &format!("http://{SUBNET}.10/v1/data/users/admin"),
        "\"name\":\"admin\"",
    );
    let token = sb.exec(
        "gw",
        &format!(
            "curl -sS -f -X POST -d '{{\"user\":\"admin\"}}' http://{SUBNET}.10/v1/auth/token"
        ),
    );
    assert_eq!(token.code, 0, "{}{}", token.stdout, token.stderr);
    assert!(
        token.stdout.contains("\"token\":\"YWRtaW4."),
        "{}",
        token.stdout
    );
    // The services were started with the bucket's URL, nothing else.
    let cmdline = sb.exec(
        "svc",
        "tr '\\0' ' ' < /proc/$(supervisorctl pid egf2-auth)/cmdline",
    );
    assert!(
        cmdline.stdout.contains(&format!(
            "--config {}/{BUCKET}/config/auth.json",
            moto.url()
        )),
        "{}",
        cmdline.stdout
    );
}

/// A new banner: re-published, the services restarted, the new value through nginx.
fn new_banner(e: &Egf2) {
    let (moto, sb, dir) = (&e.moto, &e.sb, e.site.path());
    let url = format!("http://{SUBNET}.10/v1/auth/hello");
    // Nothing to do the second time.
    let again = moto.infra(dir, &["plan", "sandbox", "--detailed-exitcode"]);
    again.assert_code(0);

    // A new banner: re-published, the services restarted, the new value through nginx.
    let pid_before = sb.exec("svc", "supervisorctl pid egf2-auth").stdout;
    edit(
        dir,
        "inventories/sandbox.yaml",
        "banner: \"EGF2 sandbox\"",
        "banner: \"EGF2 sandbox, second edition\"",
    );
    let plan = moto.infra(dir, &["plan", "sandbox"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("~ aws_s3_object.config/auth.json"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("aws_s3_object.config/router.json"),
        "only auth's config changes:\n{}",
        plan.stdout
    );
    moto.infra(dir, &["apply", "sandbox", "--yes"])
        .assert_code(0);
    wait_for(sb, "gw", &url, "EGF2 sandbox, second edition");
    let pid_after = sb.exec("svc", "supervisorctl pid egf2-auth").stdout;
    assert_ne!(pid_before, pid_after, "auth was restarted");

    // The value comes from the bucket: with the host's copy gone, a restarted auth still has it.
    let r = sb.exec(
        "svc",
        "rm /etc/egf2/published/auth.json && supervisorctl restart egf2-auth",
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    wait_for(sb, "gw", &url, "EGF2 sandbox, second edition");
}

#[test]
fn egf2_services_read_their_configs_from_the_bucket() {
    let e = setup();
    first_apply(&e);
    through_nginx(&e);
    new_banner(&e);
    let (moto, sb) = (&e.moto, &e.sb);
    // EGF2: a config that cannot be fetched ends the service with an error message.
    let r = sb.exec(
        "svc",
        &format!("cd /opt/egf2/services/auth && timeout 20 node index.js --config {}/{BUCKET}/config/none.json; echo exit=$?", moto.url()),
    );
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("exit=1"), "{said}");
    assert!(
        said.contains(&format!(
            "config {}/{BUCKET}/config/none.json: HTTP 404",
            moto.url()
        )),
        "{said}"
    );
}
