//! examples/gwm (seed 003, the Ganeti Web Manager redesign) end to end on seven sandbox hosts
//! (10.213.200.0/24): the Django JSON API deployed from the source host's gitolite (`master`,
//! as staging deploys it), PostgreSQL, RabbitMQ, Keystone on PostgreSQL with an LDAP domain on
//! slapd. Checked for real: the API answers through nginx with data from PostgreSQL; Keystone
//! issues tokens to the bootstrapped admin and to the LDAP operator; the API accepts them and
//! refuses a bad or missing one; a job enqueued through the API round-trips through RabbitMQ to
//! a celery worker that writes its result; celery beat runs on one app host only; a second plan
//! is clean. Also: the production inventory's keystone.conf and slapd.conf pass their real
//! checkers (tests/config-checks/check.sh). Needs root, the packages and wheelhouse of .ci/run.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SUBNET: &str = "10.213.200";
const APPS: [&str; 2] = ["app1", "app2"];
/// The one requirement of examples/gwm/app that Debian does not ship.
const WHEEL_PREFIX: &str = "python_dotenv-1.0.1-";

/// The example's lab, the passwords of its secrets, and master's commit.
struct Env {
    lab: AppLab,
    secrets: BTreeMap<&'static str, String>,
    commit: String,
}

impl std::ops::Deref for Env {
    type Target = AppLab;

    fn deref(&self) -> &AppLab {
        &self.lab
    }
}

impl Env {
    /// The last lines of the logs that explain a failure on an app host and on auth.
    fn logs(&self) -> String {
        let app = self.exec(
            "app1",
            "tail -n 30 /var/www/gwm/log/gunicorn.log /var/www/gwm/log/celery-worker.log /var/www/gwm/log/celery-beat.log 2>&1",
        );
        let auth = self.exec("auth", "tail -n 40 /var/log/keystone/keystone.log 2>&1");
        format!("{}\n{}", app.stdout, auth.stdout)
    }
}

fn phase(name: &str) {
    eprintln!("\n=== gwm: {name}");
}

/// What the test needs on this machine; each missing piece is named with what installs it.
fn require_tools() -> PathBuf {
    require_root();
    require_python(
        "django, celery, psycopg2, gunicorn, keystone, ldap",
        "python3-django, python3-celery, python3-psycopg2, gunicorn, keystone or python3-ldap",
    );
    for tool in [
        "/usr/sbin/slapd",
        "/usr/bin/ldapsearch",
        "/etc/init.d/keystone",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run .ci/run (it installs keystone, slapd and ldap-utils)"
        );
    }
    wheelhouse(WHEEL_PREFIX)
}

const PASSWORDS: [&str; 7] = [
    "app_secret_key",
    "app_db_password",
    "rabbitmq_app_password",
    "keystone_db_password",
    "keystone_admin_password",
    "ldap_keystone_password",
    "ldap_operator_password",
];

/// Writes the sandbox's secrets file; returns the passwords by name.
fn write_secrets(site: &SiteDir, gitolite: &Gitolite) -> BTreeMap<&'static str, String> {
    let secrets: BTreeMap<&str, String> = PASSWORDS.iter().map(|n| (*n, random_hex())).collect();
    let mut yaml = String::new();
    for (name, value) in &secrets {
        yaml.push_str(&format!("{name}: \"{value}\"\n"));
    }
    site.secrets(&(yaml + &gitolite.secrets_yaml()));
    secrets
}

fn setup() -> Env {
    let wheelhouse = require_tools();
    let site = SiteDir::from_example("examples/gwm");
    let gitolite = Gitolite::new("gwm");
    let secrets = write_secrets(&site, &gitolite);
    let commit = make_repository(&gitolite.tree(), &wheelhouse);
    Env {
        lab: AppLab::up(site, gitolite, SUBNET),
        secrets,
        commit,
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    git_as(("GWM developer", "dev@gwm.test"), dir, args)
}

/// The application's repository at `dir`: examples/gwm/app with the wheelhouse, one commit on
/// master.
fn make_repository(dir: &Path, wheelhouse: &Path) -> String {
    app_tree("examples/gwm/app", dir, wheelhouse, WHEEL_PREFIX);
    git(dir, &["init", "-q", "-b", "master"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "GWM API v1.0"]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

/// What an HTTP/1.0 exchange gave: status, headers (lowercased names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self, what: &str) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One HTTP/1.0 request to `ip:port`; `headers` are extra header lines, `body` is JSON.
fn http(
    ip: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<Answer, String> {
    let addr = format!("{ip}:{port}");
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.set_write_timeout(Some(Duration::from_secs(5))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: {ip}\r\nAccept: application/json\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A request to the API through nginx (port 80) of `app`.
fn api(
    env: &Env,
    app: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Answer {
    let headers: Vec<(&str, &str)> = token.map(|t| ("X-Auth-Token", t)).into_iter().collect();
    http(env.ip(app), 80, method, path, &headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {app}: {e}"))
}

/// Keystone's token for `user` of `domain` (scoped to the admin project when `project` is
/// given), from POST /v3/auth/tokens on the auth host.
fn token(env: &Env, domain: &str, user: &str, password: &str, project: Option<&str>) -> Answer {
    let mut auth = serde_json::json!({
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": domain}, "password": password}}}
    });
    if let Some(p) = project {
        auth["scope"] = serde_json::json!({"project": {"name": p, "domain": {"name": "Default"}}});
    }
    let body = serde_json::json!({ "auth": auth });
    http(
        env.ip("auth"),
        5000,
        "POST",
        "/v3/auth/tokens",
        &[],
        Some(&body),
    )
    .unwrap_or_else(|e| panic!("POST /v3/auth/tokens for {user}: {e}"))
}

#[test]
fn gwm_runs_on_the_sandbox() {
    let t0 = Instant::now();
    let env = setup();
    phase("the example validates");
    env.infra(&["validate", "sandbox"]).assert_code(0);
    source_host_serves_the_repository(&env);
    the_site_is_applied(&env);
    the_api_answers_from_postgresql(&env);
    let admin = keystone_tokens_are_accepted_and_bad_ones_refused(&env);
    a_job_round_trips_through_rabbitmq(&env, &admin);
    beat_runs_once(&env);
    a_second_plan_is_clean(&env);
    eprintln!("gwm: done in {:.0?}", t0.elapsed());
}

fn source_host_serves_the_repository(env: &Env) {
    phase("gitolite on the source host; the API's repository pushed, the deploy key a reader");
    env.serve_repository();
}

fn the_site_is_applied(env: &Env) {
    phase("apply: PostgreSQL, RabbitMQ, slapd, Keystone, and master on both app hosts");
    let t = Instant::now();
    let apply = env.infra(&["apply", "sandbox", "--yes"]);
    if apply.code != 0 {
        panic!(
            "apply failed ({}):\n{}\n{}\n--- logs\n{}",
            apply.code,
            apply.stdout,
            apply.stderr,
            env.logs()
        );
    }
    eprintln!("gwm: apply took {:.0?}", t.elapsed());
    for app in APPS {
        let current = env.exec(app, "readlink /var/www/gwm/current").stdout;
        assert!(
            current.trim().ends_with(&env.commit),
            "{app} is not on master's {}: {current}",
            env.commit
        );
    }
}

fn the_api_answers_from_postgresql(env: &Env) {
    phase("the API answers through nginx with data from PostgreSQL");
    for app in APPS {
        let a = api(env, app, "GET", "/v1.0/", None, None);
        assert_eq!(a.status, 200, "/v1.0/ on {app}: {}", a.body);
        let json = a.json("/v1.0/");
        assert_eq!(json["api"], "v1.0", "{app}: {json}");
        assert_eq!(json["release"], env.commit.as_str(), "{app}: {json}");
        assert!(
            json["database"]
                .as_str()
                .unwrap_or("")
                .starts_with("PostgreSQL 15"),
            "{app}: {json}"
        );
    }
}

/// Returns the admin's token.
fn keystone_tokens_are_accepted_and_bad_ones_refused(env: &Env) -> String {
    phase("Keystone issues a token to the bootstrapped admin; the API accepts it");
    let issued = token(
        env,
        "Default",
        "admin",
        &env.secrets["keystone_admin_password"],
        Some("admin"),
    );
    assert_eq!(
        issued.status,
        201,
        "admin's token: {}\n{}",
        issued.body,
        env.logs()
    );
    let admin = issued
        .header("x-subject-token")
        .expect("Keystone's answer has no X-Subject-Token")
        .to_string();
    for app in APPS {
        let a = api(env, app, "GET", "/v1.0/whoami/", Some(&admin), None);
        assert_eq!(a.status, 200, "whoami on {app}: {}\n{}", a.body, env.logs());
        let json = a.json("whoami");
        assert_eq!(json["user"], "admin", "{app}: {json}");
        assert_eq!(json["project"], "admin", "{app}: {json}");
        assert!(
            json["roles"]
                .as_array()
                .is_some_and(|r| r.iter().any(|n| n == "admin")),
            "{app}: {json}"
        );
    }
    phase("the API refuses a missing, a forged and a wrong-password token");
    let wrong = token(env, "Default", "admin", "not-the-password", Some("admin"));
    assert_eq!(wrong.status, 401, "a wrong password got: {}", wrong.body);
    let mut forged = admin.clone();
    forged.replace_range(10..20, "AAAAAAAAAA");
    for (what, tok) in [
        ("missing", None),
        ("forged", Some(forged.as_str())),
        ("garbage", Some("not-a-token")),
    ] {
        let a = api(env, "app1", "GET", "/v1.0/whoami/", tok, None);
        assert_eq!(a.status, 401, "a {what} token got: {}", a.body);
        let a = api(env, "app1", "GET", "/v1.0/clusters/", tok, None);
        assert_eq!(
            a.status, 401,
            "a {what} token listed the clusters: {}",
            a.body
        );
    }
    phase("Keystone's LDAP domain: the operator from slapd gets a token the API accepts");
    let ldap = token(
        env,
        "ldap",
        "operator",
        &env.secrets["ldap_operator_password"],
        None,
    );
    assert_eq!(
        ldap.status,
        201,
        "the LDAP operator's token: {}\n{}",
        ldap.body,
        env.logs()
    );
    let operator = ldap.header("x-subject-token").expect("no X-Subject-Token");
    let a = api(env, "app2", "GET", "/v1.0/whoami/", Some(operator), None);
    assert_eq!(a.status, 200, "whoami as the LDAP operator: {}", a.body);
    let json = a.json("whoami");
    assert_eq!(
        (json["user"].as_str(), json["domain"].as_str()),
        (Some("operator"), Some("ldap")),
        "{json}"
    );
    let wrong = token(env, "ldap", "operator", "not-the-password", None);
    assert_eq!(
        wrong.status, 401,
        "the LDAP operator with a wrong password got: {}",
        wrong.body
    );
    admin
}

fn a_job_round_trips_through_rabbitmq(env: &Env, admin: &str) {
    phase(
        "a job enqueued through the API runs on a celery worker (RabbitMQ) and writes its result",
    );
    let cluster = serde_json::json!({"name": "cluster1", "hostname": "ganeti1.gwm.sandbox.test"});
    let a = api(
        env,
        "app1",
        "POST",
        "/v1.0/clusters/",
        Some(admin),
        Some(&cluster),
    );
    assert_eq!(a.status, 201, "POST /v1.0/clusters/: {}", a.body);
    let a = api(env, "app2", "GET", "/v1.0/clusters/", Some(admin), None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json("clusters")["clusters"][0]["name"],
        "cluster1",
        "{}",
        a.body
    );
    let a = api(
        env,
        "app2",
        "POST",
        "/v1.0/jobs/",
        Some(admin),
        Some(&serde_json::json!({"cluster": "cluster1"})),
    );
    assert_eq!(a.status, 202, "POST /v1.0/jobs/: {}", a.body);
    let job = a.json("jobs");
    assert_eq!(job["status"], "queued", "{job}");
    assert_eq!(job["requested_by"], "admin@Default", "{job}");
    let id = job["id"].as_u64().expect("the job's id");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let a = api(
            env,
            "app1",
            "GET",
            &format!("/v1.0/jobs/{id}/"),
            Some(admin),
            None,
        );
        assert_eq!(a.status, 200, "GET job {id}: {}", a.body);
        let json = a.json("job");
        if json["status"] == "done" {
            break json;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} still {json} after 60 s:\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let worker = done["result"]["worker"].as_str().unwrap_or("");
    assert!(
        APPS.contains(&worker),
        "the job was run by {worker:?}, not an app host: {done}"
    );
    assert_eq!(done["result"]["cluster"], "cluster1", "{done}");
    assert_eq!(
        env.sql(&format!("SELECT status FROM ganeti_job WHERE id = {id}")),
        "done"
    );
    // The task went through the app's vhost on the queue host: celery's queue is there.
    let queues = env.exec("queue", "rabbitmqctl -q list_queues -p gwm name consumers");
    assert!(
        queues
            .stdout
            .lines()
            .any(|l| l.starts_with("celery\t") || l.starts_with("celery ")),
        "no celery queue in RabbitMQ's vhost gwm:\n{}{}",
        queues.stdout,
        queues.stderr
    );
}

fn beat_runs_once(env: &Env) {
    phase("celery beat runs on exactly one app host, and its task writes rows");
    let beats: Vec<&str> = APPS
        .iter()
        .copied()
        .filter(|app| {
            let status = env.supervisor(app);
            for p in ["gwm-gunicorn", "gwm-celery-worker"] {
                assert!(
                    status
                        .lines()
                        .any(|l| l.starts_with(p) && l.contains("RUNNING")),
                    "{app}: {p} is not RUNNING:\n{status}"
                );
            }
            status.contains("gwm-celery-beat")
        })
        .collect();
    assert_eq!(
        beats,
        ["app1"],
        "beat must run on app1 only (the once-host)"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.sql("SELECT count(*) FROM ganeti_job WHERE requested_by = 'beat'") == "0" {
        assert!(
            Instant::now() < deadline,
            "no job from beat after 60 s:\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn a_second_plan_is_clean(env: &Env) {
    phase("a second plan has nothing to do");
    let plan = env.infra(&["plan", "sandbox", "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 0,
        "the second plan is not clean:\n{}\n{}",
        plan.stdout, plan.stderr
    );
}

#[test]
fn gwm_production_configs_pass_keystone_and_slapd_checks() {
    require_root();
    let site = repo().join("examples/gwm");
    let out = tempfile::tempdir().unwrap();
    let secrets: Vec<(String, String)> = secret_names(&site)
        .into_iter()
        .map(|n| {
            (
                format!("INFRA_SECRET_{}", n.to_uppercase()),
                format!("test{}value", n.replace('_', "")),
            )
        })
        .collect();
    let secrets: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for host in ["auth1", "ldap1", "app1", "db1", "queue1"] {
        let dir = out.path().join(host);
        infra_env(
            &site,
            &[
                "render",
                "production",
                host,
                "--show-secrets",
                "--out-dir",
                dir.to_str().unwrap(),
            ],
            &secrets,
        )
        .assert_code(0);
    }
    let checked = Command::new("bash")
        .arg(repo().join("tests/config-checks/check.sh"))
        .arg(out.path())
        .output()
        .expect("run tests/config-checks/check.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    println!("{text}");
    assert!(checked.status.success(), "config checks failed:\n{text}");
    for (host, checker) in [
        ("auth1", "keystone"),
        ("ldap1", "slapd -Tt"),
        ("app1", "nginx -t"),
        ("app1", "supervisor"),
        ("db1", "postgres"),
        ("queue1", "rabbitmq"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(host) && l.contains(checker)),
            "no passing `{checker}` check on {host} in:\n{text}"
        );
    }
}
