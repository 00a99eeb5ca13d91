//! The built `infra` binary on the repository's site and on copies of it with one mistake each.

mod common;
use common::*;

#[test]
fn the_repository_site_is_valid() {
    let run = infra(&repo(), &["validate"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("valid: 4 environments,"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("error")),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "validate prints data on stdout: {}",
        run.stdout
    );
    infra(&repo(), &["validate", "production"]).assert_code(0);
    infra(&repo(), &["validate", "staging"]).assert_code(0);
    infra(&repo(), &["validate", "sandbox"]).assert_code(0);
}

/// Celery beat is a `once:` file of role app: in every environment exactly one app host gets
/// its supervisor program (production has two app hosts), and `render` shows it there only.
#[test]
fn every_environment_runs_one_celery_beat() {
    let beat = "/etc/supervisor/conf.d/webplatform-celery-beat.conf";
    for env in ["production", "staging", "sandbox", "aws-sandbox"] {
        let hosts = infra(
            &repo(),
            &["roles", "list", env, "--by-role", "--out", "json"],
        );
        hosts.assert_code(0);
        let by_role: serde_json::Value = serde_json::from_str(&hosts.stdout).unwrap();
        let apps: Vec<&str> = by_role["app"]
            .as_array()
            .expect("app hosts")
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        let with_beat: Vec<&str> = apps
            .iter()
            .copied()
            .filter(|h| infra(&repo(), &["render", env, h, beat]).code == 0)
            .collect();
        assert_eq!(
            with_beat.len(),
            1,
            "{env}: beat on {with_beat:?} of {apps:?}"
        );
        if env == "production" {
            assert!(apps.len() >= 2, "production has {apps:?}");
        }
    }
}

/// examples/cts is a complete site of its own (tests/releases.rs deploys it on sandbox hosts).
#[test]
fn the_cts_example_is_valid() {
    let run = infra(&repo().join("examples/cts"), &["validate"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("valid: 2 environments, 4 roles,"),
        "{}",
        run.stderr
    );
    // The one requirement Debian does not ship is the wheel .ci/run downloads.
    let req = std::fs::read_to_string(repo().join("examples/cts/app/requirements.txt")).unwrap();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(req.lines().any(|l| l == "python-dotenv==1.0.1"), "{req}");
    assert!(
        ci.contains("CTS_WHEELS=(python-dotenv==1.0.1)"),
        ".ci/run downloads another wheel"
    );
}

/// examples/gwm (seed 003) is a complete site of its own (tests/gwm.rs deploys it on sandbox
/// hosts): its three inventories validate, staging follows master and production a tag
/// vYYYYMM, and its one extra requirement is the wheel .ci/run downloads.
#[test]
fn the_gwm_example_is_valid() {
    let site = repo().join("examples/gwm");
    let run = infra(&site, &["validate"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("valid: 3 environments, 9 roles,"),
        "{}",
        run.stderr
    );
    for (env, want) in [("staging", "ref: master"), ("production", "ref: v2")] {
        let inv = std::fs::read_to_string(site.join(format!("inventories/{env}.yaml"))).unwrap();
        assert!(inv.contains(want), "{env} does not deploy `{want}`");
        assert!(inv.contains("type: aws"), "{env} is not an AWS inventory");
    }
    let req = std::fs::read_to_string(site.join("app/requirements.txt")).unwrap();
    assert!(req.lines().any(|l| l == "python-dotenv==1.0.1"), "{req}");
}

/// Runs `validate` on a copy edited by `mutate`, expects exit 1 and exactly one error, and
/// returns stderr.
fn one_error(mutate: impl FnOnce(&std::path::Path)) -> (tempfile::TempDir, String) {
    errors(1, mutate)
}

/// The same, expecting `n` errors.
fn errors(n: usize, mutate: impl FnOnce(&std::path::Path)) -> (tempfile::TempDir, String) {
    let dir = site_copy();
    mutate(dir.path());
    let run = infra(dir.path(), &["validate"]);
    run.assert_code(1);
    let errors = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .count();
    assert_eq!(errors, n, "expected {n} errors:\n{}", run.stderr);
    assert!(run.stdout.is_empty());
    (dir, run.stderr)
}

/// Asserts stderr shows `message` at `file:line:col` with the snippet and hint.
fn assert_diag(stderr: &str, message: &str, at: &str, hint: Option<&str>) {
    let expected_head = format!("error: {message}\n");
    let start = stderr
        .find(&expected_head)
        .unwrap_or_else(|| panic!("no `{message}` in:\n{stderr}"));
    let rest = &stderr[start + expected_head.len()..];
    let loc_line = rest.lines().next().unwrap_or_default();
    assert_eq!(
        loc_line.trim_start(),
        format!("--> {at}"),
        "location of `{message}`:\n{stderr}"
    );
    if let Some(h) = hint {
        let block: String = rest
            .lines()
            .take_while(|l| !l.starts_with("error:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            block.contains(&format!("= hint: {h}")),
            "hint `{h}` missing:\n{stderr}"
        );
    }
}

#[test]
fn yaml_syntax_error() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "roles/queue.yaml",
            "includes: [satellite]",
            "includes: [satellite]]",
        )
    });
    let at = position_of(dir.path(), "roles/queue.yaml", "]]");
    let at = at
        .rsplit_once(':')
        .map(|(a, c)| format!("{a}:{}", c.parse::<usize>().unwrap() + 1))
        .unwrap();
    assert_diag(&err, "misplaced bracket", &at, None);
    assert!(err.contains("includes: [satellite]]\n"), "{err}");
    // Other files are still checked, but nothing is rendered from a half-read site.
    assert!(
        err.contains("templates were not rendered because some files did not parse"),
        "{err}"
    );

    let (dir, err) = one_error(|d| {
        edit(
            d,
            "roles/queue.yaml",
            "includes: [satellite]",
            "\tincludes: [satellite]",
        )
    });
    let at = position_of(dir.path(), "roles/queue.yaml", "includes");
    assert_diag(
        &err,
        "while parsing a block mapping, did not find expected key",
        &at,
        Some("YAML indentation must be spaces; this line is indented with a tab"),
    );
}

#[test]
fn unknown_field_with_suggestion() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "roles/nginx.yaml",
            "packages: [nginx]",
            "packges: [nginx]",
        )
    });
    let line = line_of(dir.path(), "roles/nginx.yaml", "packges");
    assert_diag(
        &err,
        "unknown field `packges`",
        &format!("roles/nginx.yaml:{line}:1"),
        Some("did you mean `packages`?"),
    );
    assert!(err.contains(&format!("{line} | packges: [nginx]")), "{err}");
}

#[test]
fn unknown_role_on_a_host() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "inventories/production.yaml",
            "app1:       {roles: [app]",
            "app1:       {roles: [apps]",
        )
    });
    let at = position_of(dir.path(), "inventories/production.yaml", "apps]");
    assert_diag(
        &err,
        "unknown role `apps` on host `app1`",
        &at,
        Some("did you mean `app`?"),
    );
}

#[test]
fn include_cycle() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "roles/base.yaml",
            "includes: []",
            "includes: [satellite]",
        )
    });
    assert_diag(
        &err,
        "include cycle: satellite -> base -> satellite",
        &position_of(dir.path(), "roles/base.yaml", "satellite]"),
        Some("remove `satellite` from the includes of role `base`"),
    );
}

#[test]
fn count_of_a_role() {
    // The count error, and one() in the app templates that needs exactly one queue host.
    let (dir, err) = errors(2, |d| {
        edit(
            d,
            "inventories/production.yaml",
            "{roles: [app], private_ip: 10.10.1.51",
            "{roles: [app, queue], private_ip: 10.10.1.51",
        )
    });
    let hosts = line_of(dir.path(), "inventories/production.yaml", "hosts:");
    assert_diag(
        &err,
        "environment `production` needs exactly 1 host with role `queue`, found 2 (app2, queue1)",
        &format!("inventories/production.yaml:{hosts}:1"),
        Some("remove `queue` from all but 1 of these hosts"),
    );
    assert!(
        err.contains("= note: role `queue` sets count: exactly 1 at roles/queue.yaml:"),
        "{err}"
    );
    assert!(err.contains("error: one(role=\"queue\"): 2 hosts hold role `queue` (app2, queue1), exactly one is needed"), "{err}");
}

#[test]
fn a_missing_singleton_role() {
    // The count, and one(role="masterdb") in the two MariaDB templates that need it.
    let (_dir, err) = errors(3, |d| {
        edit(d, "inventories/production.yaml", "[db, masterdb]", "[db]")
    });
    assert!(
        err.contains(
            "error: environment `production` needs exactly 1 host with role `masterdb`, found none"
        ),
        "{err}"
    );
    assert!(
        err.contains("= hint: add `masterdb` to the roles of a host"),
        "{err}"
    );
    assert!(err.contains("error: one(role=\"masterdb\"): no host in environment `production` holds role `masterdb`"), "{err}");
}

#[test]
fn requires_on_same_host() {
    let (dir, err) = one_error(|d| {
        edit(d, "inventories/production.yaml", "[db, masterdb]", "[db]");
        edit(
            d,
            "inventories/production.yaml",
            "{roles: [sessions]",
            "{roles: [sessions, masterdb]",
        );
    });
    assert_diag(
        &err,
        "host `sessions1` has role `masterdb`, which requires role `db` on the same host",
        &position_of(dir.path(), "inventories/production.yaml", "masterdb]"),
        Some("add `db` to the roles of `sessions1`"),
    );
}

#[test]
fn missing_template() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "roles/nginx.yaml",
            "template: nginx/nginx.conf.j2",
            "template: nginx/nginx.cnf.j2",
        )
    });
    assert_diag(
        &err,
        "template `nginx/nginx.cnf.j2` not found in templates/",
        &position_of(dir.path(), "roles/nginx.yaml", "nginx/nginx.cnf.j2"),
        Some("did you mean `nginx/nginx.conf.j2`?"),
    );
}

#[test]
fn undefined_variable_in_a_template_is_reported_once_with_its_hosts() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "templates/nginx/nginx.conf.j2",
            "{{ vars.nginx.worker_processes }}",
            "{{ vars.nginx.worker_procs }}",
        )
    });
    let at = position_of(dir.path(), "templates/nginx/nginx.conf.j2", "worker_procs");
    let message = err
        .lines()
        .find(|l| l.starts_with("error: Field `worker_procs` is not defined."))
        .expect(&err);
    assert!(
        message.contains("Available fields: client_max_body_size, keepalive_timeout,"),
        "{err}"
    );
    assert_diag(
        &err,
        message.strip_prefix("error: ").unwrap(),
        &at,
        Some("define `worker_procs` in the role's `defaults`, the inventory's `vars`/`role_vars`, or the host's `vars`"),
    );
    // One diagnostic for every host of both environments that renders the template.
    assert!(
        err.contains("= note: environment `production`, hosts accounts1, accounts2, app1, app2,"),
        "{err}"
    );
    assert!(
        err.contains("= note: environment `staging`, host app1"),
        "{err}"
    );
}

#[test]
fn a_secret_the_role_did_not_declare() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "templates/nginx/nginx.conf.j2",
            "{{ vars.nginx.worker_processes }}",
            "{{ secrets.redis_password }}",
        )
    });
    let line = line_of(
        dir.path(),
        "templates/nginx/nginx.conf.j2",
        "secrets.redis_password",
    );
    let msg_start = err
        .find("error: Field `redis_password` is not defined.")
        .expect(&err);
    let block = &err[msg_start..];
    assert!(
        block.contains(&format!("--> templates/nginx/nginx.conf.j2:{line}:")),
        "{err}"
    );
    assert!(block.contains("= hint: `redis_password` is a secret declared by role app, sessions; a role whose templates use secrets.redis_password must list it under `secrets:`"), "{err}");
}

#[test]
fn two_files_for_one_destination() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "roles/nginx.yaml",
            "dest: /etc/nginx/nginx.conf",
            "dest: /etc/hosts",
        );
    });
    let line = line_of(dir.path(), "roles/nginx.yaml", "dest: /etc/hosts") - 1;
    assert_diag(
        &err,
        "two files for /etc/hosts: from role `base` and role `nginx`",
        &format!("roles/nginx.yaml:{line}:5"),
        Some("give one of them another `dest`, or move the file to a role both include"),
    );
    assert!(
        err.contains("= note: the first is at roles/base.yaml:"),
        "{err}"
    );
    assert!(
        err.contains("= note: environment `production`, hosts accounts1, accounts2, app1, app2,"),
        "{err}"
    );
}

#[test]
fn every_problem_at_once() {
    let dir = site_copy();
    edit(
        dir.path(),
        "roles/nginx.yaml",
        "packages: [nginx]",
        "packges: [nginx]",
    );
    edit(
        dir.path(),
        "inventories/staging.yaml",
        "roles: [app]",
        "roles: [apps]",
    );
    edit(
        dir.path(),
        "roles/base.yaml",
        "includes: []",
        "includes: [nope]",
    );
    let run = infra(dir.path(), &["validate"]);
    run.assert_code(1);
    for m in [
        "unknown field `packges`",
        "unknown role `apps` on host",
        "unknown role `nope` in `includes` of role `base`",
    ] {
        assert!(run.stderr.contains(m), "missing {m}:\n{}", run.stderr);
    }
    assert!(
        run.stderr.contains("invalid: 4 environments"),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_of_one_environment_skips_the_others() {
    let dir = site_copy();
    edit(
        dir.path(),
        "inventories/staging.yaml",
        "roles: [app]",
        "roles: [apps]",
    );
    infra(dir.path(), &["validate", "production"]).assert_code(0);
    infra(dir.path(), &["validate", "staging"]).assert_code(1);
}

#[test]
fn unknown_environment_and_host() {
    let run = infra(&repo(), &["validate", "prodution"]);
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        "error: no environment `prodution` in inventories/\n  = hint: did you mean `production`?\n"
    );
    let run = infra(&repo(), &["render", "production", "ap1"]);
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        "error: no host `ap1` in environment `production`\n  = hint: did you mean `app1`?\n"
    );
    let run = infra(&repo(), &["roles", "list", "nope"]);
    run.assert_code(1);
    let run = infra(
        &std::env::temp_dir().join("no-such-site-here"),
        &["validate"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains("is not an infra site"),
        "{}",
        run.stderr
    );
    infra(&repo(), &["frobnicate"]).assert_code(1);
}

#[test]
fn roles_list_matches_salt_layout() {
    let run = infra(&repo(), &["roles", "list", "production"]);
    run.assert_code(0);
    let expected = "\
accounts1:\n    - accounts\naccounts2:\n    - accounts\napp1:\n    - app\napp2:\n    - app\nblog1:\n    - blog\nbots1:\n    - bots\n\
db1:\n    - db\n    - masterdb\ndb2:\n    - db\nelastic1:\n    - elastic\njobrunner1:\n    - jobrunner\n\
mail:\n    - mail\nmemcache1:\n    - memcache\nnotes1:\n    - notes\npg1:\n    - postgres\n\
project1:\n    - project\nqueue1:\n    - queue\nsalt:\n    - salt\nsessions1:\n    - sessions\nsource:\n    - source\n";
    assert_eq!(run.stdout, expected);
    assert_eq!(run.stderr, "");

    let run = infra(&repo(), &["roles", "list", "production", "--out", "json"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        "{\"accounts1\":[\"accounts\"],\"accounts2\":[\"accounts\"],\"app1\":[\"app\"],\"app2\":[\"app\"],\"blog1\":[\"blog\"],\"bots1\":[\"bots\"],\
\"db1\":[\"db\",\"masterdb\"],\"db2\":[\"db\"],\"elastic1\":[\"elastic\"],\"jobrunner1\":[\"jobrunner\"],\"mail\":[\"mail\"],\
\"memcache1\":[\"memcache\"],\"notes1\":[\"notes\"],\"pg1\":[\"postgres\"],\"project1\":[\"project\"],\"queue1\":[\"queue\"],\
\"salt\":[\"salt\"],\"sessions1\":[\"sessions\"],\"source\":[\"source\"]}\n"
    );

    let run = infra(&repo(), &["roles", "list", "production", "--by-role"]);
    run.assert_code(0);
    assert!(
        run.stdout.starts_with(
            "accounts:\n    - accounts1\n    - accounts2\napp:\n    - app1\n    - app2\nblog:\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\ndb:\n    - db1\n    - db2\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\nmasterdb:\n    - db1\n"),
        "{}",
        run.stdout
    );

    let run = infra(
        &repo(),
        &["roles", "list", "production", "--by-role", "--out", "json"],
    );
    let parsed: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(parsed["app"], ["app1", "app2"]);
    assert_eq!(parsed["masterdb"], ["db1"]);

    let run = infra(&repo(), &["roles", "list", "production", "--out", "yaml"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("db1:\n- db\n- masterdb\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn hosts_text_and_json() {
    let run = infra(&repo(), &["hosts", "production"]);
    run.assert_code(0);
    let mut lines = run.stdout.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "HOST",
            "ROLES",
            "PRIVATE_IP",
            "PUBLIC_IP",
            "ADDRESS",
            "PROVIDER"
        ]
    );
    let db1 = run.stdout.lines().find(|l| l.starts_with("db1 ")).unwrap();
    assert_eq!(
        db1.split_whitespace().collect::<Vec<_>>(),
        ["db1", "db,masterdb", "10.10.1.20", "-", "10.10.1.20", "aws"]
    );
    let run = infra(&repo(), &["hosts", "production", "--out", "json"]);
    run.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let mail = v
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "mail")
        .unwrap();
    assert_eq!(
        mail["public_hostnames"],
        serde_json::json!(["mail.webplatform.org"])
    );
    assert_eq!(mail["public_ip"], "(known after apply)");
    assert_eq!(mail["fqdn"], "mail.production.wpdn");
}

#[test]
fn render_prints_every_file_or_one_byte_for_byte() {
    let run = infra(&repo(), &["render", "production", "app1"]);
    run.assert_code(0);
    let dests: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("==> "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    for d in [
        "/etc/hosts",
        "/etc/nginx/nginx.conf",
        "/etc/nginx/sites-enabled/webplatform.conf",
        "/etc/supervisor/conf.d/webplatform-gunicorn.conf",
        "/etc/supervisor/conf.d/webplatform-celery-worker.conf",
        "/etc/supervisor/conf.d/webplatform-celery-beat.conf",
    ] {
        assert!(dests.contains(&d), "{d} missing from {dests:?}");
    }
    // Missing secrets are named, on stderr, and rendered as placeholders.
    assert!(
        run.stderr
            .contains("secrets are not set, placeholders rendered: app_db_password"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("<missing secret: app_db_password>"),
        "{}",
        run.stdout
    );

    let one = infra(
        &repo(),
        &[
            "render",
            "production",
            "app1",
            "/etc/supervisor/conf.d/webplatform-celery-beat.conf",
        ],
    );
    one.assert_code(0);
    assert!(
        one.stdout.starts_with("; Managed by infra"),
        "{}",
        one.stdout
    );
    assert!(one.stdout.contains("[program:webplatform-celery-beat]"));
    assert!(one.stdout.contains(" beat "), "{}", one.stdout);

    let missing = infra(
        &repo(),
        &["render", "production", "app1", "/etc/nginx/nginx.cnf"],
    );
    missing.assert_code(1);
    assert!(missing.stderr.contains("error: host `app1` gets no file at `/etc/nginx/nginx.cnf`\n  = hint: did you mean `/etc/nginx/nginx.conf`?"), "{}", missing.stderr);
}

#[test]
fn upstreams_and_clients_are_computed_from_the_inventory() {
    // pg_hba lists exactly the app hosts; nothing in the catalogue types their addresses.
    let hba = infra(
        &repo(),
        &[
            "render",
            "production",
            "pg1",
            "/etc/postgresql/15/main/pg_hba.conf",
        ],
    );
    hba.assert_code(0);
    assert!(hba.stdout.contains("10.10.1.50/32"), "{}", hba.stdout);
    assert!(hba.stdout.contains("10.10.1.51/32"), "{}", hba.stdout);
    assert!(
        !hba.stdout.contains("10.10.1.30/32"),
        "sessions1 is not an app host:\n{}",
        hba.stdout
    );
    // Adding an app host to the inventory adds it to pg_hba, with no template change.
    let dir = site_copy();
    edit(
        dir.path(),
        "inventories/production.yaml",
        "  app1:",
        "  app3:       {roles: [app], private_ip: 10.10.1.52}\n  app1:",
    );
    let hba = infra(
        dir.path(),
        &[
            "render",
            "production",
            "pg1",
            "/etc/postgresql/15/main/pg_hba.conf",
        ],
    );
    hba.assert_code(0);
    assert!(hba.stdout.contains("10.10.1.52/32"), "{}", hba.stdout);
    for dir in ["roles", "templates"] {
        let out = std::process::Command::new("grep")
            .args(["-rnE", r"10\.(10|20)\.[0-9]+\.[0-9]+"])
            .arg(repo().join(dir))
            .output()
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "an address typed by hand in {dir}/:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn var_overrides_from_the_command_line() {
    let run = infra(
        &repo(),
        &[
            "render",
            "production",
            "app1",
            "/etc/nginx/nginx.conf",
            "--var",
            "nginx.worker_processes=7",
        ],
    );
    run.assert_code(0);
    assert!(run.stdout.contains("worker_processes 7;"), "{}", run.stdout);
    let bad = infra(
        &repo(),
        &["render", "production", "app1", "--var", "novalue"],
    );
    bad.assert_code(1);
    assert!(
        bad.stderr.contains("--var `novalue` has no `=`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn color_is_off_without_a_terminal_and_on_when_asked() {
    let dir = site_copy();
    edit(
        dir.path(),
        "roles/nginx.yaml",
        "packages: [nginx]",
        "packges: [nginx]",
    );
    let plain = infra(dir.path(), &["validate"]);
    assert!(!plain.stderr.contains('\x1b'), "{}", plain.stderr);
    let colored = infra(dir.path(), &["--color", "always", "validate"]);
    assert!(
        colored.stderr.contains("\x1b[1;31merror\x1b[0m"),
        "{}",
        colored.stderr
    );
    let never = infra(dir.path(), &["--color", "never", "validate"]);
    assert!(!never.stderr.contains('\x1b'));
}

#[test]
fn a_destination_that_is_not_a_clean_absolute_path() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "roles/nginx.yaml",
            "dest: /etc/nginx/nginx.conf",
            "dest: \"/etc/nginx/{{ vars.nginx.worker_processes }} .conf\"",
        )
    });
    let line = line_of(dir.path(), "roles/nginx.yaml", "worker_processes }} .conf") - 1;
    assert_diag(
        &err,
        "destination `/etc/nginx/auto .conf` contains a space, a quote or a control character",
        &format!("roles/nginx.yaml:{line}:5"),
        Some("`dest` must render to a clean absolute path, e.g. /etc/nginx/nginx.conf"),
    );
}

#[test]
fn a_hostname_that_does_not_render() {
    let (dir, err) =
        one_error(|d| edit(d, "roles/mail.yaml", "{{ env.domain }}", "{{ env.domian }}"));
    let at = position_of(dir.path(), "roles/mail.yaml", "\"mail.{{ env.domian }}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: hostname of role `mail` does not render: "))
        .expect(&err);
    assert!(line.contains("`domian` is not defined"), "{err}");
    assert_diag(
        &err,
        line.strip_prefix("error: ").unwrap(),
        &at,
        Some("hostname can use `env.name`, `env.domain`, `env.internal_domain` and `host.name`"),
    );
}

#[test]
fn a_limit_that_matches_no_host_is_an_error_before_any_connection() {
    let run = infra(
        &repo(),
        &["plan", "production", "--limit", "role:nope,host:zz*"],
    );
    run.assert_code(1);
    assert_eq!(
        run.stderr,
        "error: --limit role:nope,host:zz* matches no host of `production`\n"
    );
    let run = infra(&repo(), &["apply", "production", "--limit", "zzz"]);
    run.assert_code(1);
}

#[test]
fn a_control_persist_that_is_not_a_duration() {
    let (dir, err) = one_error(|d| {
        edit(
            d,
            "inventories/production.yaml",
            "  jump_host: salt\n",
            "  jump_host: salt\n  control_persist: soon\n",
        )
    });
    let at = position_of(dir.path(), "inventories/production.yaml", "soon");
    assert_diag(
        &err,
        "ssh.control_persist `soon` is not a duration",
        &at,
        Some("write seconds or a number with a unit, as OpenSSH's ControlPersist: `90s`, `10m`, `1h`; leave it out to close connections at the end of every run"),
    );
    // Well-formed durations pass.
    for good in ["90", "90s", "10m", "1h30m"] {
        let dir = site_copy();
        edit(
            dir.path(),
            "inventories/production.yaml",
            "  jump_host: salt\n",
            &format!("  jump_host: salt\n  control_persist: {good}\n"),
        );
        infra(dir.path(), &["validate", "production"]).assert_code(0);
    }
}

#[test]
fn lock_settings_that_do_not_fit_the_provider() {
    let append = |d: &std::path::Path, file: &str, text: &str| {
        let path = d.join(file);
        let mut body = std::fs::read_to_string(&path).unwrap();
        body.push_str(text);
        std::fs::write(path, body).unwrap();
    };
    let (dir, err) = one_error(|d| {
        append(
            d,
            "inventories/production.yaml",
            "lock: {dynamodb_table: a/b}\n",
        )
    });
    let at = position_of(dir.path(), "inventories/production.yaml", "a/b}");
    assert_diag(
        &err,
        "lock.dynamodb_table `a/b` is not a DynamoDB table name",
        &at,
        Some("3 to 255 letters, digits, `_`, `-` or `.`; leave it out for infra's own table `infra-locks`"),
    );
    let (dir, err) = one_error(|d| append(d, "inventories/sandbox.yaml", "lock: {host: salty}\n"));
    let at = position_of(dir.path(), "inventories/sandbox.yaml", "salty");
    assert_diag(
        &err,
        "lock.host `salty` is not a host of this inventory",
        &at,
        Some("did you mean `salt`?"),
    );
    let (dir, err) = one_error(|d| {
        append(
            d,
            "inventories/sandbox.yaml",
            "lock: {dynamodb_table: t1}\n",
        )
    });
    let at = position_of(dir.path(), "inventories/sandbox.yaml", "t1}");
    assert_diag(
        &err,
        "lock.dynamodb_table is for aws inventories",
        &at,
        Some("a static inventory's lock lives on a host: write `lock: {host: NAME}`, or leave `lock` out for the jump host (else the first host by name)"),
    );
    // Settings that fit pass.
    let dir = site_copy();
    append(
        dir.path(),
        "inventories/sandbox.yaml",
        "lock: {host: app1}\n",
    );
    append(
        dir.path(),
        "inventories/production.yaml",
        "lock: {dynamodb_table: tf-locks}\n",
    );
    infra(dir.path(), &["validate"]).assert_code(0);
}

/// A site of one release role deploying `repo` at `reference`, on one static host nobody
/// contacts (the ref is resolved on the controller before any host is reached).
fn release_site(repo: &str, reference: &str) -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    for d in ["roles", "inventories", "templates"] {
        std::fs::create_dir_all(site.path().join(d)).unwrap();
    }
    std::fs::write(
        site.path().join("roles/app.yaml"),
        format!(
            "name: app\nrelease:\n  path: /srv/app\n  repo: \"{repo}\"\n  ref: \"{reference}\"\n  user: root\n"
        ),
    )
    .unwrap();
    std::fs::write(
        site.path().join("inventories/lab.yaml"),
        "environment: lab\ndomain: lab.test\ninternal_domain: lab.internal\n\
         provider: {type: static}\nssh: {user: root}\n\
         hosts:\n  app1: {roles: [app], address: 10.213.170.250}\n",
    )
    .unwrap();
    site
}

/// A git repository with one commit on master, tagged v1.
fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["init", "--quiet", "-b", "master"][..],
        &["commit", "--quiet", "--allow-empty", "-m", "one"],
        &["tag", "v1"],
    ] {
        let out = std::process::Command::new("git")
            .current_dir(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    dir
}

#[test]
fn a_release_ref_that_does_not_resolve_stops_the_plan_before_any_host() {
    let repo = git_repo();
    let url = format!("file://{}", repo.path().display());
    let site = release_site(&url, "v9");
    let line = line_of(site.path(), "roles/app.yaml", "ref:");
    {
        let run = infra(site.path(), &["plan", "lab"]);
        run.assert_code(1);
        assert!(
            run.stderr.contains(&format!(
                "error: roles/app.yaml:{line}: the release of role app: `v9` is not a branch, tag or commit of {url}"
            )),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
        assert!(
            run.stderr
                .contains("check the ref in the role, the inventory's vars or --var"),
            "{}",
            run.stderr
        );
        // No host was contacted: no known_hosts entry, no planning line.
        assert!(!run.stderr.contains("planned with"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    // A repository the controller cannot fetch: git's own words, and what to do.
    let missing = format!("file://{}/nope", repo.path().display());
    let run = infra(release_site(&missing, "v1").path(), &["plan", "lab"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "the release of role app: cannot fetch {missing}: "
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("controller_repo"), "{}", run.stderr);
}

#[test]
fn rollback_and_releases_are_documented_in_help() {
    let help = infra(&repo(), &["rollback", "--help"]);
    help.assert_code(0);
    for needle in [
        "--to <COMMIT>",
        "--yes",
        "--limit <PATTERNS>",
        "Database migrations are not reversed",
        "a release's roll stopped",
    ] {
        assert!(help.stdout.contains(needle), "{needle}:\n{}", help.stdout);
    }
    let help = infra(&repo(), &["releases", "--help"]);
    help.assert_code(0);
    assert!(help.stdout.contains("--json"), "{}", help.stdout);
    let help = infra(&repo(), &["--help"]);
    assert!(help.stdout.contains("rollback"), "{}", help.stdout);
    assert!(help.stdout.contains("releases"), "{}", help.stdout);
}

#[test]
fn releases_of_hosts_without_a_release_is_refused() {
    // The salt host holds no role with `release:`: refused before any host is reached, naming
    // what is missing.
    let run = infra(&repo(), &["releases", "sandbox", "--limit", "host:salt"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("no selected host of sandbox has a release (a role with `release:`)"),
        "{}",
        run.stderr
    );
}
