//! A canary secret value never appears in any output of any command without `--show-secrets`.

mod common;
use common::*;

fn canary(name: &str) -> String {
    format!("CANARY-{name}-7f3a9c")
}

/// Every declared secret set through INFRA_SECRET_<NAME>, each to its own canary value.
fn secret_env() -> Vec<(String, String)> {
    secret_names(&repo())
        .into_iter()
        .map(|n| (format!("INFRA_SECRET_{}", n.to_uppercase()), canary(&n)))
        .collect()
}

fn run(args: &[&str]) -> Run {
    let env = secret_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    infra_env(&repo(), args, &env)
}

fn assert_no_canary(what: &str, text: &str) {
    assert!(
        !text.contains("CANARY-"),
        "a secret value leaked in {what}:\n{text}"
    );
}

#[test]
fn no_command_prints_a_secret_value() {
    assert!(
        secret_names(&repo()).len() >= 5,
        "the catalogue declares its secrets"
    );
    let hosts: Vec<String> = {
        let r = run(&["roles", "list", "production", "--out", "json"]);
        let m: std::collections::BTreeMap<String, Vec<String>> =
            serde_json::from_str(&r.stdout).unwrap();
        m.into_keys().collect()
    };
    let mut commands: Vec<Vec<String>> = vec![
        vec!["validate".into()],
        vec!["validate".into(), "production".into()],
        vec!["roles".into(), "list".into(), "production".into()],
        vec![
            "roles".into(),
            "list".into(),
            "production".into(),
            "--out".into(),
            "json".into(),
        ],
        vec![
            "roles".into(),
            "list".into(),
            "production".into(),
            "--by-role".into(),
            "--out".into(),
            "yaml".into(),
        ],
        vec!["hosts".into(), "production".into()],
        vec![
            "hosts".into(),
            "production".into(),
            "--out".into(),
            "json".into(),
        ],
    ];
    for env in ["production", "staging"] {
        for h in &hosts {
            commands.push(vec!["render".into(), env.into(), h.clone()]);
        }
    }
    let mut rendered_secret_files = 0;
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        if args[0] != "render" || args[1] == "production" {
            r.assert_code(0);
        }
        assert_no_canary(&format!("stdout of {args:?}"), &r.stdout);
        assert_no_canary(&format!("stderr of {args:?}"), &r.stderr);
        rendered_secret_files += r.stdout.matches("<secret: ").count();
    }
    assert!(
        rendered_secret_files >= 5,
        "secrets were rendered, redacted: {rendered_secret_files}"
    );
}

#[test]
fn a_single_file_and_out_dir_are_redacted_too() {
    let r = run(&["render", "production", "sessions1", "/etc/redis/redis.conf"]);
    r.assert_code(0);
    assert_no_canary("render DEST", &r.stdout);
    assert!(
        r.stdout.contains("requirepass <secret: redis_password>"),
        "{}",
        r.stdout
    );

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let r = run(&["render", "production", "sessions1", "--out-dir", dir]);
    r.assert_code(0);
    assert_no_canary("render --out-dir stderr", &r.stderr);
    let redis = std::fs::read_to_string(out.path().join("etc/redis/redis.conf")).unwrap();
    assert_no_canary("a file written by --out-dir", &redis);
    assert!(redis.contains("<secret: redis_password>"));
}

#[test]
fn show_secrets_shows_them_so_the_check_above_can_fail() {
    let r = run(&[
        "render",
        "production",
        "sessions1",
        "/etc/redis/redis.conf",
        "--show-secrets",
    ]);
    r.assert_code(0);
    assert!(
        r.stdout
            .contains(&format!("requirepass {}", canary("redis_password"))),
        "{}",
        r.stdout
    );
    assert_no_canary("stderr with --show-secrets", &r.stderr);
}

#[test]
fn no_secret_set_means_named_placeholders_and_a_warning() {
    let r = infra(
        &repo(),
        &["render", "production", "sessions1", "/etc/redis/redis.conf"],
    );
    r.assert_code(0);
    assert!(
        r.stdout
            .contains("requirepass <missing secret: redis_password>"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("warning: environment `production`: 1 secret is not set, placeholders rendered: redis_password"), "{}", r.stderr);
}
