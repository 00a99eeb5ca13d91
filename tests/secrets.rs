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
        r.stdout
            .contains("requirepass \"<secret: redis_password>\""),
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
            .contains(&format!("requirepass \"{}\"", canary("redis_password"))),
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
            .contains("requirepass \"<missing secret: redis_password>\""),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("warning: environment `production`: 1 secret is not set, placeholders rendered: redis_password"), "{}", r.stderr);
}

#[test]
fn validate_flags_a_secret_in_a_script_without_a_quoting_filter() {
    let site = site_copy();
    let dir = site.path();
    let file = "templates/rabbitmq/setup.sh.j2";
    edit(
        dir,
        file,
        "PW={{ secrets.rabbitmq_app_password | sh }}",
        "PW='{{ secrets.rabbitmq_app_password }}'",
    );
    let at = position_of(dir, file, "secrets.rabbitmq_app_password");
    let r = infra(dir, &["validate"]);
    r.assert_code(1);
    assert!(
        r.stderr.contains("error: secret `rabbitmq_app_password` is written into shell code without a quoting filter (/usr/local/sbin/infra-rabbitmq-setup is a script: its mode 0700 makes it executable)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("--> {at}")),
        "{at}\n{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("= hint: write `{{ secrets.rabbitmq_app_password | sh }}` for one sh word"),
        "{}",
        r.stderr
    );
    // The repository's own templates pass.
    infra(&repo(), &["validate"]).assert_code(0);
}

#[test]
fn a_secrets_file_others_can_read_is_refused() {
    let site = site_copy();
    let dir = site.path();
    let state = dir.join(".infra/sandbox");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("secrets.yaml");
    std::fs::write(&file, "redis_password: x\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let r = infra(
        dir,
        &["render", "sandbox", "sessions1", "/etc/redis/redis.conf"],
    );
    r.assert_code(1);
    let path = file.display();
    assert!(
        r.stderr.contains(&format!(
            "secrets file {path} has mode 0640: other users can read it (run `chmod 600 {path}`)"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "", "nothing rendered");
}
