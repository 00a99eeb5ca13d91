//! End to end on 8 real sandbox hosts (namespaces with sshd, tests/sandbox/sandbox.sh): the
//! repository's site applied over SSH through the salt jump host, then idempotence, one-variable
//! changes, a failing check, a killed run, a changed host key and saved plans. Needs root.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUBNET: &str = "10.213.40";

/// Fields drop in order: the sandbox goes down while its state (inside the site) still exists.
struct Env {
    sandbox: Sandbox,
    site: SiteDir,
    ips: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
}

impl Env {
    fn infra(&self, args: &[&str]) -> Run {
        infra(self.site.path(), args)
    }

    fn ip(&self, host: &str) -> &str {
        &self.ips[host]
    }

    /// Start lines of the processes on `host` whose command line contains `pattern`.
    fn starts(&self, host: &str, pattern: &str) -> Vec<String> {
        let r = self.sandbox.exec(host, "ps -eo pid=,lstart=,args=");
        let mut v: Vec<String> = r
            .stdout
            .lines()
            .filter(|l| l.contains(pattern) && !l.contains("ps -eo"))
            .map(|l| l.trim().to_string())
            .collect();
        v.sort();
        v
    }

    fn file(&self, host: &str, path: &str) -> String {
        self.sandbox.exec(host, &format!("cat {path}")).stdout
    }
}

fn phase(name: &str) {
    eprintln!("\n=== e2e: {name}");
}

fn setup() -> Env {
    require_root();
    let site = SiteDir::sandbox_copy(SUBNET);
    let made = make_secrets(&site.state());
    site.secrets(&made);
    let secrets = made
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| !k.starts_with(' '))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect();
    let ips = site.hosts("sandbox", SUBNET);
    demo_repo();
    let sandbox = site.up_at(SUBNET, &ips);
    Env {
        sandbox,
        site,
        ips,
        secrets,
    }
}

/// `path` from the app host at `ip` over https, its certificate checked against the sandbox
/// CA (tests/sandbox/make-secrets.sh) for www.sandbox.test.
fn https(env: &Env, ip: &str, path: &str) -> String {
    let ca = env.sandbox.state.join("keys/ca.pem");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(&ca)
        .arg("--resolve")
        .arg(format!("www.sandbox.test:443:{ip}"))
        .arg(format!("https://www.sandbox.test{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status and Location of `path` from `ip` over plain http.
fn http_redirect(ip: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg("-H")
        .arg("Host: www.sandbox.test")
        .arg(format!("http://{ip}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_site_on_eight_sandbox_hosts() {
    let env = setup();
    only_the_salt_host_accepts_ssh(&env);
    first_apply_through_the_jump_host(&env);
    app_hosts_answer_through_gunicorn(&env);
    celery_reaches_rabbitmq(&env);
    postgres_follows_pg_hba(&env);
    redis_needs_its_password(&env);
    a_second_apply_changes_nothing(&env);
    one_variable_one_diff_one_reload(&env);
    a_broken_config_is_put_back(&env);
    a_killed_run_resumes_from_the_journal(&env);
    a_saved_plan_is_applied_or_refused(&env);
    a_changed_host_key_is_refused(&env);
}

fn only_the_salt_host_accepts_ssh(env: &Env) {
    let salt = env.ip("salt").to_string();
    phase("only the salt host accepts SSH from the controller");
    for host in env.ips.keys().filter(|h| *h != "salt") {
        env.sandbox.run(&[
            "firewall",
            env.sandbox.state.to_str().unwrap(),
            host,
            &salt,
            "reject",
        ]);
    }
    assert!(
        !direct_ssh_works(&env.sandbox.state, "app1"),
        "app1 must not accept SSH from the controller"
    );
}

fn first_apply_through_the_jump_host(env: &Env) {
    phase("first apply through the jump host");
    let first = env.infra(&["apply", "sandbox", "--yes"]);
    first.assert_code(0);
    assert!(first.stdout.contains("Recap:"), "{}", first.stdout);
}

fn app_hosts_answer_through_gunicorn(env: &Env) {
    phase("each app host's nginx answers through gunicorn under supervisor, from the release");
    let commit = demo_repo();
    for app in ["app1", "app2"] {
        assert_eq!(
            env.sandbox
                .exec(app, "readlink /var/www/webplatform/current")
                .stdout
                .trim(),
            format!("releases/{commit}"),
            "{app}: the demo repository's commit is not the live release"
        );
        assert_eq!(
            https(env, env.ip(app), "/"),
            "hello from webplatform.settings\n"
        );
        assert_eq!(https(env, env.ip(app), "/healthz"), "ok\n");
        assert_eq!(
            http_redirect(env.ip(app), "/healthz"),
            "301 https://www.sandbox.test/healthz",
            "{app}: http redirects to https"
        );
        // supervisor reports RUNNING once a program has stayed up for its startsecs.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let status = env.sandbox.exec(app, "supervisorctl status");
            let running = |p: &str| {
                status
                    .stdout
                    .lines()
                    .any(|l| l.starts_with(p) && l.contains("RUNNING"))
            };
            // Beat is `once: true`: only on the role's first host by name.
            let programs: &[&str] = if app == "app1" {
                &[
                    "webplatform-gunicorn",
                    "webplatform-celery-worker",
                    "webplatform-celery-beat",
                ]
            } else {
                &["webplatform-gunicorn", "webplatform-celery-worker"]
            };
            if programs.iter().all(|p| running(p)) {
                assert_eq!(
                    status.stdout.contains("webplatform-celery-beat"),
                    app == "app1",
                    "{app}: celery beat must run on app1 only:\n{}",
                    status.stdout
                );
                break;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = programs
                    .iter()
                    .map(|p| {
                        env.sandbox
                            .exec(app, &format!("tail -n 15 /var/log/supervisor/{p}.log"))
                            .stdout
                    })
                    .collect();
                panic!(
                    "{app}: not every program is RUNNING under supervisor:\n{}\n{}",
                    status.stdout,
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

fn celery_reaches_rabbitmq(env: &Env) {
    phase("celery (worker and beat) is connected to rabbitmq on the queue host");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let conns = env
            .sandbox
            .exec("queue1", "rabbitmqctl -q list_connections user peer_host");
        let ok = ["app1", "app2"].iter().all(|a| {
            conns
                .stdout
                .lines()
                .any(|l| l.starts_with("webplatform") && l.contains(env.ip(a)))
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no celery connections from both app hosts:\n{}{}",
            conns.stdout,
            conns.stderr
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn postgres_follows_pg_hba(env: &Env) {
    phase("postgres accepts the app hosts as pg_hba says and refuses a host it does not list");
    let pw = &env.secrets["app_db_password"];
    let pg = env.ip("queue1");
    let psql = |from: &str| {
        env.sandbox.exec(from, &format!("PGPASSWORD={pw} PGCONNECT_TIMEOUT=5 psql -h {pg} -U webplatform -d webplatform -tAc 'select 41+1'"))
    };
    let ok = psql("app1");
    assert_eq!(ok.stdout.trim(), "42", "{}", ok.stderr);
    let refused = psql("sessions1");
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("no pg_hba.conf entry"),
        "{}",
        refused.stderr
    );
}

fn redis_needs_its_password(env: &Env) {
    phase("redis on the sessions host refuses a client without the password");
    let redis = env.ip("sessions1");
    let anon = env
        .sandbox
        .exec("app1", &format!("redis-cli -h {redis} ping"));
    assert!(
        anon.stdout.contains("NOAUTH"),
        "{}{}",
        anon.stdout,
        anon.stderr
    );
    let authed = env.sandbox.exec(
        "app1",
        &format!(
            "REDISCLI_AUTH={} redis-cli -h {redis} ping",
            env.secrets["redis_password"]
        ),
    );
    assert_eq!(authed.stdout.trim(), "PONG");
}

fn a_second_apply_changes_nothing(env: &Env) {
    phase("a second apply changes nothing and restarts nothing");
    let watched = [
        ("app1", "nginx: master"),
        ("app1", "supervisord"),
        ("app1", "gunicorn"),
        ("sessions1", "redis-server"),
        ("queue1", "postgres -D"),
        ("salt", "gdnsd"),
    ];
    let before: Vec<Vec<String>> = watched.iter().map(|(h, p)| env.starts(h, p)).collect();
    assert!(before.iter().all(|s| !s.is_empty()), "{before:?}");
    let second = env.infra(&["apply", "sandbox", "--yes"]);
    second.assert_code(0);
    assert!(
        second
            .stdout
            .contains("No changes. Infrastructure matches the configuration."),
        "{}",
        second.stdout
    );
    env.infra(&["plan", "sandbox", "--detailed-exitcode"])
        .assert_code(0);
    let after: Vec<Vec<String>> = watched.iter().map(|(h, p)| env.starts(h, p)).collect();
    assert_eq!(before, after, "a process was restarted by a no-op apply");
    let trips = second
        .stderr
        .lines()
        .find(|l| l.contains("remote commands after login"))
        .unwrap()
        .to_string();
    assert!(
        trips.contains("8 hosts planned with 8 remote commands"),
        "{trips}"
    );
}

fn one_variable_one_diff_one_reload(env: &Env) {
    phase("changing one variable: one file's diff, one reload, nothing else restarted");
    edit(
        env.site.path(),
        "inventories/sandbox.yaml",
        "app1:      {roles: [app],",
        "app1:      {vars: {nginx: {keepalive_timeout: 33}}, roles: [app],",
    );
    let plan = env.infra(&["plan", "sandbox", "--detailed-exitcode"]);
    plan.assert_code(2);
    assert!(
        plan.stdout
            .contains("app1 (2 changes):\n  ~ file /etc/nginx/nginx.conf (root:root 0644)\n"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("-    keepalive_timeout 65;\n      +    keepalive_timeout 33;"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(
            "  ~ service nginx: reload (checked by nginx -t) because of /etc/nginx/nginx.conf\n"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(
            "Hosts: 1 file, 0 packages, 1 service action, 0 other changes on 1 of 8 hosts."
        ),
        "{}",
        plan.stdout
    );
    let master = env.starts("app1", "nginx: master");
    let workers = env.starts("app1", "nginx: worker");
    let others = [
        env.starts("app1", "supervisord"),
        env.starts("app1", "gunicorn"),
        env.starts("app2", "nginx: master"),
    ];
    env.infra(&["apply", "sandbox", "--yes"]).assert_code(0);
    assert_eq!(
        env.starts("app1", "nginx: master"),
        master,
        "nginx was restarted, not reloaded"
    );
    assert_ne!(
        env.starts("app1", "nginx: worker"),
        workers,
        "nginx was not reloaded"
    );
    assert_eq!(
        [
            env.starts("app1", "supervisord"),
            env.starts("app1", "gunicorn"),
            env.starts("app2", "nginx: master")
        ],
        others
    );
    assert!(env
        .file("app1", "/etc/nginx/nginx.conf")
        .contains("keepalive_timeout 33;"));
}

fn a_broken_config_is_put_back(env: &Env) {
    phase("an invalid nginx config fails on its hosts, the old file is back, others converge");
    let site_conf = "/etc/nginx/sites-enabled/webplatform.conf";
    let good: BTreeMap<&str, String> = ["app1", "app2"]
        .iter()
        .map(|a| (*a, env.file(a, site_conf)))
        .collect();
    edit(
        env.site.path(),
        "templates/nginx/app-site.conf.j2",
        "server {",
        "server {\n    this_is_not_a_directive on;",
    );
    edit(
        env.site.path(),
        "inventories/sandbox.yaml",
        "sessions1: {roles: [sessions],",
        "sessions1: {vars: {redis: {maxmemory: 128mb}}, roles: [sessions],",
    );
    let broken = env.infra(&["apply", "sandbox", "--yes"]);
    broken.assert_code(3);
    for app in ["app1", "app2"] {
        assert!(
            broken
                .stdout
                .lines()
                .any(|l| l.starts_with(app) && l.contains("failed=1")),
            "{}",
            broken.stdout
        );
        assert_eq!(
            env.file(app, site_conf),
            good[app],
            "the previous file is back on {app}"
        );
        assert_eq!(
            https(env, env.ip(app), "/healthz"),
            "ok\n",
            "nginx still serves on {app}"
        );
    }
    assert!(
        broken
            .stdout
            .contains("app1 failed at file /etc/nginx/sites-enabled/webplatform.conf:"),
        "{}",
        broken.stdout
    );
    assert!(
        broken
            .stdout
            .contains("unknown directive \"this_is_not_a_directive\""),
        "{}",
        broken.stdout
    );
    assert!(
        broken.stdout.lines().any(|l| l.starts_with("sessions1")
            && l.contains("changed=2")
            && l.contains("failed=0")),
        "{}",
        broken.stdout
    );
    assert!(env
        .file("sessions1", "/etc/redis/redis.conf")
        .contains("maxmemory 128mb"));
    edit(
        env.site.path(),
        "templates/nginx/app-site.conf.j2",
        "\n    this_is_not_a_directive on;",
        "",
    );
    env.infra(&["plan", "sandbox", "--detailed-exitcode"])
        .assert_code(0);
}

fn a_killed_run_resumes_from_the_journal(env: &Env) {
    phase("a run killed right after a file changed: the next apply restarts what was pending");
    edit(
        env.site.path(),
        "inventories/sandbox.yaml",
        "keepalive_timeout: 33",
        "keepalive_timeout: 34",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("-C")
        .arg(env.site.path())
        .args(["apply", "sandbox", "--yes"])
        .env("INFRA_TEST_PAUSE_AFTER", "/etc/nginx/nginx.conf")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.starts_with("app1: ") && line.contains("file /etc/nginx/nginx.conf: changed") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(env
        .file("app1", "/etc/nginx/nginx.conf")
        .contains("keepalive_timeout 34;"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while env
        .sandbox
        .exec("app1", "ps -eo args=")
        .stdout
        .lines()
        .any(|l| l == "sleep 600")
    {
        assert!(
            Instant::now() < deadline,
            "the remote run did not stop when the controller died"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(env.file("app1", "/var/lib/infra/pending"), "reload nginx\n");
    let pending = env.infra(&["plan", "sandbox"]);
    assert!(pending.stdout.contains("app1 (1 change):\n  ~ service nginx: reload (checked by nginx -t) because of pending\n"), "{}", pending.stdout);
    let workers = env.starts("app1", "nginx: worker");
    env.infra(&["apply", "sandbox", "--yes"]).assert_code(0);
    assert_ne!(
        env.starts("app1", "nginx: worker"),
        workers,
        "the pending reload did not happen"
    );
    env.infra(&["plan", "sandbox", "--detailed-exitcode"])
        .assert_code(0);
}

fn a_saved_plan_is_applied_or_refused(env: &Env) {
    phase("a saved plan is applied as shown, and refused once a host changed behind its back");
    edit(
        env.site.path(),
        "inventories/sandbox.yaml",
        "keepalive_timeout: 34",
        "keepalive_timeout: 35",
    );
    let saved = env.site.path().join("plan.json");
    let p = env.infra(&["plan", "sandbox", "--out", saved.to_str().unwrap()]);
    p.assert_code(0);
    let json = std::fs::read_to_string(&saved).unwrap();
    for secret in env.secrets.values().filter(|v| v.len() > 8) {
        assert!(
            !json.contains(secret.as_str()),
            "a secret value is in the saved plan"
        );
    }
    let applied = env.infra(&["apply", saved.to_str().unwrap(), "--yes"]);
    applied.assert_code(0);
    assert!(env
        .file("app1", "/etc/nginx/nginx.conf")
        .contains("keepalive_timeout 35;"));
    edit(
        env.site.path(),
        "inventories/sandbox.yaml",
        "keepalive_timeout: 35",
        "keepalive_timeout: 36",
    );
    env.infra(&["plan", "sandbox", "--out", saved.to_str().unwrap()])
        .assert_code(0);
    env.sandbox
        .exec("app2", "echo '# changed by hand' >> /etc/hosts");
    let stale = env.infra(&["apply", saved.to_str().unwrap(), "--yes"]);
    stale.assert_code(1);
    assert!(
        stale.stderr.contains(
            "error: the saved plan is stale: app2 changed since it was made; nothing was changed"
        ),
        "{}",
        stale.stderr
    );
    assert!(
        env.file("app1", "/etc/nginx/nginx.conf")
            .contains("keepalive_timeout 35;"),
        "nothing was applied"
    );
}

fn a_changed_host_key_is_refused(env: &Env) {
    phase("a host whose key changed is refused with a clear message; nothing is changed");
    // The sandbox checks the new key from the controller: let it through source's firewall.
    env.sandbox.run(&[
        "firewall",
        env.sandbox.state.to_str().unwrap(),
        "source",
        "off",
    ]);
    env.sandbox
        .run(&["rekey", env.sandbox.state.to_str().unwrap(), "source"]);
    let motd = env.file("source", "/etc/motd");
    let refused = env.infra(&["apply", "sandbox", "--yes"]);
    refused.assert_code(1);
    let known = env.site.path().join(".infra/known_hosts/sandbox");
    let expected = format!(
        "error: host source ({}): its SSH host key changed since it was recorded in {}; nothing was done on it",
        env.ip("source"),
        known.display()
    );
    assert!(refused.stderr.contains(&expected), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("ssh-keygen -R"),
        "{}",
        refused.stderr
    );
    assert_eq!(env.file("source", "/etc/motd"), motd);
    assert!(
        env.file("app1", "/etc/nginx/nginx.conf")
            .contains("keepalive_timeout 35;"),
        "no host was changed"
    );
}
