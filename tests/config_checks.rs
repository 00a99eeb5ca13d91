//! Every config rendered for the production inventory of the repo's site and of every
//! `examples/*` site passes the real program's own check (nginx -t, postgres, postfix check,
//! gdnsd checkconf, supervisor's parser, Python's compiler, gunicorn's validators, ...), run by
//! tests/config-checks/check.sh. Needs root and the packages .ci/run installs; without them the
//! checker fails with a message naming what is missing.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Test values for every secret: plain, URL- and shell-safe; for a `tls:` certificate and key
/// (`*tls_cert`, `*tls_key`) a throwaway self-signed pair, which nginx -t loads.
fn secret_env(dir: &Path) -> Vec<(String, String)> {
    let (cert, key) = tls_pair();
    secret_names(dir)
        .into_iter()
        .map(|n| {
            let value = if n.ends_with("tls_cert") {
                cert.clone()
            } else if n.ends_with("tls_key") {
                key.clone()
            } else {
                format!("test{}value", n.replace('_', ""))
            };
            (format!("INFRA_SECRET_{}", n.to_uppercase()), value)
        })
        .collect()
}

/// A self-signed certificate and its key (PEM), made by openssl.
fn tls_pair() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=config-checks.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (the openssl package)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

/// Renders every host of `env` under `out/<host>/...` exactly as it would be written.
fn render_all(site: &Path, env: &str, out: &Path) {
    let secrets = secret_env(site);
    let secrets: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let roles = infra(site, &["roles", "list", env, "--out", "json"]);
    roles.assert_code(0);
    let hosts: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(&roles.stdout).unwrap();
    for host in hosts.keys() {
        let dir = out.join(host);
        let r = infra_env(
            site,
            &[
                "render",
                env,
                host,
                "--show-secrets",
                "--out-dir",
                dir.to_str().unwrap(),
            ],
            &secrets,
        );
        r.assert_code(0);
    }
}

/// Runs the checker on `dir`; returns (success, output).
fn check(dir: &Path) -> (bool, String) {
    let out = Command::new("bash")
        .arg(repo().join("tests/config-checks/check.sh"))
        .arg(dir)
        .output()
        .expect("run tests/config-checks/check.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every site whose production configs are checked, with the checks that must pass on them (a
/// prefix of check.sh's check name). Every `examples/*` site must be here: a new example, or a
/// config kind whose checker check.sh lacks, fails with a message saying so.
const SITES: &[(&str, &[&str])] = &[
    (
        ".",
        &[
            "nginx -t",
            "postgres",
            "postfix",
            "gdnsd checkconf",
            "supervisor",
            "mariadbd",
            "redis-server",
            "opendkim",
            "sshd -t",
        ],
    ),
    (
        "examples/cts",
        &[
            "nginx -t",
            "postgres config",
            "postgres pg_hba",
            "supervisor parse",
            "rabbitmq cuttlefish",
            "gunicorn config",
        ],
    ),
    (
        // and file by file: egf2_production_configs_pass_the_real_checks
        "examples/egf2",
        &[
            "nginx -t",
            "supervisor parse",
            "node --check",
            "json.tool",
            "yaml (elasticsearch)",
        ],
    ),
    (
        "examples/gwm",
        &[
            "nginx -t",
            "postgres config",
            "postgres pg_hba",
            "supervisor parse",
            "rabbitmq cuttlefish",
            "gunicorn config",
            "keystone",
            "slapd -Tt",
        ],
    ),
    (
        "examples/synnefo",
        &[
            "nginx -t",
            "postgres config",
            "postgres pg_hba",
            "rabbitmq cuttlefish",
            "supervisor parse",
            "sshd -t",
            "python3 -m py_compile",
            "gunicorn config",
        ],
    ),
];

/// Renders `site`'s production inventory, runs check.sh on it and asserts: no check failed,
/// none was skipped (a skip means the checker's program is missing here), and each of the
/// site's required checks passed at least once. Returns check.sh's output.
fn check_site(site: &str) -> String {
    let required = SITES
        .iter()
        .find(|(s, _)| *s == site)
        .unwrap_or_else(|| panic!("{site} is not in SITES of tests/config_checks.rs"))
        .1;
    let dir = repo().join(site);
    let out = tempfile::tempdir().unwrap();
    render_all(&dir, "production", out.path());
    let (ok, text) = check(out.path());
    println!("{site}:\n{text}");
    assert!(ok, "config checks of {site} (production) failed:\n{text}");
    let skipped: Vec<&str> = text.lines().filter(|l| l.starts_with("skip")).collect();
    assert!(
        skipped.is_empty(),
        "{site}: a checker was skipped, its program is missing on this machine (install what \
         .ci/run installs):\n{}\n\n{text}",
        skipped.join("\n")
    );
    for checker in required {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(checker)),
            "{site}: no passing `{checker}` check. check.sh has no checker of that name, or \
             dispatched it on no rendered file (tests/config-checks/check.sh, main()). \
             Output:\n{text}"
        );
    }
    text
}

#[test]
fn production_configs_pass_the_real_programs_checks() {
    check_site(".");
}

#[test]
fn cts_production_configs_pass_the_real_programs_checks() {
    check_site("examples/cts");
}

#[test]
fn gwm_production_configs_pass_the_real_programs_checks() {
    check_site("examples/gwm");
}

#[test]
fn synnefo_production_configs_pass_the_real_programs_checks() {
    check_site("examples/synnefo");
}

/// Every example site (a folder of examples/ with `roles/` or `inventories/`; examples/ci holds
/// CI definitions, not a site) is in SITES, so a test above renders and checks it, and has a
/// production inventory.
#[test]
fn every_example_site_is_checked() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("roles").is_dir() && !path.join("inventories").is_dir() {
            continue;
        }
        let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        assert!(
            path.join("inventories/production.yaml").is_file(),
            "{name} has no inventories/production.yaml: every example site has one, and it is \
             what the config checks render"
        );
        if !SITES.iter().any(|(s, _)| *s == name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not in SITES of tests/config_checks.rs (add each, with the checks its production \
         configs must pass, and a test calling check_site): {}",
        missing.join(", ")
    );
}

#[test]
fn a_broken_template_fails_the_real_check() {
    let site = site_copy();
    edit(
        site.path(),
        "templates/nginx/nginx.conf.j2",
        "worker_processes",
        "worker_processez",
    );
    edit(
        site.path(),
        "templates/postfix/main.cf.j2",
        "smtpd_relay_restrictions",
        "smtpd_relay_restrictionz",
    );
    let out = tempfile::tempdir().unwrap();
    render_all(site.path(), "production", out.path());
    let (ok, text) = check(out.path());
    assert!(!ok, "a broken nginx.conf and main.cf passed:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("nginx -t")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("postfix")),
        "{text}"
    );
}

#[test]
fn the_checker_fails_each_known_bad_config_on_its_own_checker() {
    let out = Command::new("bash")
        .arg(repo().join("tests/config-checks/selftest.sh"))
        .output()
        .expect("run tests/config-checks/selftest.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the checker's self-test failed:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "{text}"
    );
}

/// examples/egf2 (seed 004), production: the services' JavaScript through `node --check`, every
/// JSON config (the host copies of the published configs are the objects byte for byte)
/// through `python3 -m json.tool`, the gateway's nginx through `nginx -t`, the supervisor
/// programs (services, RethinkDB proxy) through supervisor's parser, elasticsearch.yml as YAML
/// ([`check_site`]'s checks, and each of these files among them).
#[test]
fn egf2_production_configs_pass_the_real_checks() {
    let text = check_site("examples/egf2");
    for (host, checker, file) in [
        ("app1", "node --check", "opt/egf2/services/lib/config.js"),
        ("app1", "node --check", "opt/egf2/services/auth/index.js"),
        ("app1", "node --check", "opt/egf2/services/router/index.js"),
        (
            "app1",
            "node --check",
            "opt/egf2/services/client-data/index.js",
        ),
        ("app1", "json.tool", "etc/egf2/published/auth.json"),
        ("app1", "json.tool", "etc/egf2/published/router.json"),
        ("app1", "json.tool", "etc/egf2/credentials.json"),
        ("app1", "nginx -t", "etc/nginx/nginx.conf"),
        ("app1", "supervisor parse", ""),
        (
            "es1",
            "yaml (elasticsearch)",
            "etc/elasticsearch/elasticsearch.yml",
        ),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with("ok")
                && l.contains(&format!(" {host} "))
                && l.contains(checker)
                && l.contains(file)),
            "no passing `{checker}` of {host}:{file} in:\n{text}"
        );
    }
}

/// A syntax error in a service's JavaScript and a broken JSON config fail their checks.
#[test]
fn egf2_broken_javascript_and_json_fail_their_checks() {
    let site = tempfile::tempdir().unwrap();
    let example = repo().join("examples/egf2");
    let status = Command::new("cp")
        .arg("-a")
        .arg(example.join("."))
        .arg(site.path())
        .status()
        .expect("cp");
    assert!(status.success());
    edit(
        site.path(),
        "templates/services/auth/index.js",
        "async function main() {",
        "async function main() {{",
    );
    edit(
        site.path(),
        "templates/config/router.json.j2",
        "\"routes\": {",
        "\"routes\": {,",
    );
    let out = tempfile::tempdir().unwrap();
    render_all(site.path(), "staging", out.path());
    let (ok, text) = check(out.path());
    assert!(!ok, "{text}");
    for needle in [
        "FAIL  app1  node --check  opt/egf2/services/auth/index.js",
        "FAIL  app1  json.tool  etc/egf2/published/router.json",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
}
