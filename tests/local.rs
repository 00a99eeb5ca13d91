//! `connection: local`: a small site planned, applied and planned again on the machine the test
//! runs on, with no sshd and no network, inside a private mount namespace whose tmpfs over
//! /srv and /var/lib take the apply's writes; `hosts` output; and the inventory mistakes about
//! `connection`, each reported at its file:line.

mod common;
use common::*;
use std::path::Path;

const ROLE: &str = "\
name: web
dirs:
  - {path: /srv/app, mode: \"0750\"}
files:
  - template: app/config.ini.j2
    dest: /srv/app/config.ini
    mode: \"0640\"
    check: \"grep -q '^name = ' /srv/app/config.ini\"
  - source: app/motd
    dest: /srv/app/motd
links:
  - {path: /srv/app/current, target: /srv/app/config.ini}
commands:
  - {name: seed, run: \"echo seeded > /srv/app/seeded\", creates: /srv/app/seeded}
  - {name: env, run: \"env | cut -d= -f1 | sort > /srv/app/env\", creates: /srv/app/env}
";

/// A site with one role (a dir, two files, a link, a command) and the given inventories.
fn site(inventories: &[(&str, &str)]) -> SiteDir {
    let dir = SiteDir::new();
    dir.write("roles/web.yaml", ROLE)
        .write(
            "templates/app/config.ini.j2",
            "name = {{ host.name }}\nconnection = {{ host.connection }}\n",
        )
        .write("templates/app/motd", "managed by infra\n");
    for (name, text) in inventories {
        dir.write(&format!("inventories/{name}.yaml"), text);
    }
    dir
}

#[test]
fn a_local_host_converges_without_ssh() {
    let dir = site(&[("lab", LOCAL_INVENTORY)]);
    let ns = MountNamespace::new();
    let outside = Path::new("/srv/app/config.ini").exists();

    let plan = infra_canary(&ns, dir.path(), &["plan", "lab", "--detailed-exitcode"]);
    plan.assert_code(2);
    for change in [
        "/srv/app/config.ini",
        "/srv/app/motd",
        "/srv/app/current",
        "seed",
    ] {
        assert!(plan.stdout.contains(change), "{change}:\n{}", plan.stdout);
    }
    assert!(
        plan.stderr
            .contains("1 host planned on this machine (connection: local) with 1 commands"),
        "{}",
        plan.stderr
    );
    assert!(!plan.stderr.contains("ssh"), "{}", plan.stderr);

    let apply = infra_canary(&ns, dir.path(), &["apply", "lab", "--yes"]);
    apply.assert_code(0);
    assert!(
        apply
            .stdout
            .contains("self : ok=0 changed=6 failed=0 unreachable=0"),
        "{}",
        apply.stdout
    );
    assert_eq!(
        ns.sh("cat /srv/app/config.ini"),
        "name = self\nconnection = local\n"
    );
    assert_eq!(ns.sh("cat /srv/app/motd"), "managed by infra\n");
    assert_eq!(
        ns.sh("stat -c '%a %U %G %n' /srv/app /srv/app/config.ini /srv/app/motd"),
        "750 root root /srv/app\n640 root root /srv/app/config.ini\n644 root root /srv/app/motd\n"
    );
    assert_eq!(ns.sh("readlink /srv/app/current"), "/srv/app/config.ini\n");
    assert_eq!(ns.sh("cat /srv/app/seeded"), "seeded\n");
    // Scripts get a login's environment, not infra's.
    let env = ns.sh("cat /srv/app/env");
    assert!(env.lines().any(|l| l == "PATH"), "{env}");
    assert!(!env.contains("INFRA_"), "{env}");
    assert_eq!(
        Path::new("/srv/app/config.ini").exists(),
        outside,
        "the apply wrote outside its namespace"
    );

    let again = infra_canary(&ns, dir.path(), &["plan", "lab", "--detailed-exitcode"]);
    again.assert_code(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);

    // Drift on the machine is found and put right like on any host.
    ns.sh("echo edited by hand > /srv/app/motd");
    let drift = infra_canary(&ns, dir.path(), &["plan", "lab", "--detailed-exitcode"]);
    drift.assert_code(2);
    assert!(
        drift.stdout.contains("-edited by hand") && drift.stdout.contains("+managed by infra"),
        "{}",
        drift.stdout
    );
    infra_canary(&ns, dir.path(), &["apply", "lab", "--yes"]).assert_code(0);
    assert_eq!(ns.sh("cat /srv/app/motd"), "managed by infra\n");
    infra_canary(&ns, dir.path(), &["plan", "lab", "--detailed-exitcode"]).assert_code(0);
}

#[test]
fn hosts_shows_a_local_host() {
    let inv = LOCAL_INVENTORY.replace(
        "  self: {roles: [web]}\n",
        "  self: {roles: [web]}\n  peer: {roles: [web], address: 192.0.2.7, connection: ssh}\n",
    );
    let dir = site(&[("lab", &inv)]);
    let run = infra(dir.path(), &["hosts", "lab"]);
    run.assert_code(0);
    let row = |name: &str| -> Vec<String> {
        let line = run.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().map(String::from).collect()
    };
    assert_eq!(row("self "), ["self", "web", "-", "-", "local", "static"]);
    assert_eq!(
        row("peer "),
        ["peer", "web", "192.0.2.7", "-", "192.0.2.7", "static"]
    );
    let run = infra(dir.path(), &["hosts", "lab", "--out", "json"]);
    run.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v[0]["name"], "peer");
    assert_eq!(v[0]["connection"], "ssh");
    assert_eq!(v[1]["connection"], "local");
    assert_eq!(v[1]["address"], serde_json::Value::Null);
}

/// `validate` on a site with `inventory`; exit 1 and its stderr.
fn invalid(inventory: &str) -> (SiteDir, String) {
    let dir = site(&[("lab", inventory)]);
    let run = infra(dir.path(), &["validate"]);
    run.assert_code(1);
    (dir, run.stderr)
}

/// Asserts stderr has `error: message`, then `--> at`, and the hint in that diagnostic.
fn assert_error(stderr: &str, message: &str, at: &str, hint: &str) {
    let head = format!("error: {message}\n");
    let start = stderr
        .find(&head)
        .unwrap_or_else(|| panic!("no `{message}` in:\n{stderr}"));
    let rest = &stderr[start + head.len()..];
    assert_eq!(
        rest.lines().next().unwrap_or_default().trim_start(),
        format!("--> {at}"),
        "{stderr}"
    );
    let block = rest.split("\nerror").next().unwrap_or_default();
    assert!(block.contains(&format!("= hint: {hint}")), "{stderr}");
}

#[test]
fn two_local_hosts_are_an_error() {
    let inv = LOCAL_INVENTORY.replace(
        "  self: {roles: [web]}\n",
        "  self: {roles: [web]}\n  twin: {roles: [web]}\n",
    );
    let (dir, err) = invalid(&inv);
    assert_error(
        &err,
        "hosts `self` and `twin` both have `connection: local`, but there is only one machine infra runs on",
        // Inherited: reported at the host.
        &format!(
            "inventories/lab.yaml:{}:9",
            line_of(dir.path(), "inventories/lab.yaml", "  twin:")
        ),
        "keep `connection: local` on one host; give `twin` `connection: ssh` and an `address`, or put it in an inventory of its own",
    );
    let top = line_of(dir.path(), "inventories/lab.yaml", "connection: local");
    assert!(
        err.contains(&format!(
            "= note: `twin` inherits `connection: local` from inventories/lab.yaml:{top}"
        )),
        "{err}"
    );

    // Written on the host itself: reported at the value.
    let inv = "environment: lab\ndomain: example.org\ninternal_domain: lab.internal\n\
               provider: {type: static}\nhosts:\n  a: {roles: [web], connection: local}\n  \
               b: {roles: [web], connection: local}\n";
    let (dir, err) = invalid(inv);
    let line = line_of(dir.path(), "inventories/lab.yaml", "  b:");
    assert_error(
        &err,
        "hosts `a` and `b` both have `connection: local`, but there is only one machine infra runs on",
        &format!("inventories/lab.yaml:{line}:33"),
        "keep `connection: local` on one host; give `b` `connection: ssh` and an `address`, or put it in an inventory of its own",
    );
}

#[test]
fn connection_errors_are_reported_at_their_line() {
    // A local host on aws.
    let aws = "environment: lab\ndomain: example.org\ninternal_domain: lab.internal\n\
               provider: {type: aws, region: us-east-1, ami: ami-1, instance_type: t3.small, \
               vpc_cidr: 10.0.0.0/16, subnet_cidr: 10.0.1.0/24}\n\
               hosts:\n  a: {roles: [web], connection: local}\n";
    let (dir, err) = invalid(aws);
    assert_error(
        &err,
        "`connection: local` in an aws inventory",
        &position_of(dir.path(), "inventories/lab.yaml", "local}"),
        "aws hosts are machines infra launches and reaches over SSH; apply a machine to itself with a static inventory whose host has `connection: local`",
    );

    // An unknown transport.
    let (dir, err) = invalid(&LOCAL_INVENTORY.replace("connection: local", "connection: lcoal"));
    let at = position_of(dir.path(), "inventories/lab.yaml", "lcoal");
    assert!(err.contains(&format!("--> {at}")), "{err}");
    assert!(err.contains("lcoal"), "{err}");

    // A static host that is not local still needs its address.
    let (dir, err) = invalid(&LOCAL_INVENTORY.replace("connection: local\n", ""));
    assert_error(
        &err,
        "static host `self` has no `address`",
        &position_of(dir.path(), "inventories/lab.yaml", "{roles"),
        "static hosts already exist: give the address SSH reaches them at, or `connection: local` for the machine infra runs on",
    );
}

/// `infra ARGS` in the namespace, with a secret in its environment that scripts must not see.
fn infra_canary(ns: &MountNamespace, dir: &Path, args: &[&str]) -> Run {
    ns.infra_env(dir, args, &[("INFRA_SECRET_CANARY", "c4n4ry")])
}
