//! Releases end to end on five sandbox hosts (10.213.140.0/24): examples/cts, a Django project
//! in a git repository on the source host's gitolite, deployed by examples/cts's site with
//! PostgreSQL, RabbitMQ and two app hosts. v1 serves data from PostgreSQL and static files
//! through nginx, with one celery beat whose task writes rows; a second apply changes and
//! restarts nothing; v2 (a migration and a changed view) rolls while a bounded load loop
//! requests both app hosts (no failed request, the migration ran once); v3 fails its health
//! check (exit 3, the first batch's host back on v2, the other untouched); a rollback to v1's
//! commit serves the old view. Needs root, python3-django and the wheelhouse .ci/run makes.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SUBNET: &str = "10.213.140";
const APPS: [&str; 2] = ["app1", "app2"];
/// The one requirement of examples/cts/app that Debian does not ship.
const WHEEL_PREFIX: &str = "python_dotenv-1.0.1-";
/// Upper bound of the load loop, per thread.
const MAX_REQUESTS: u32 = 20_000;

/// The example's lab and the app's commits by tag.
struct Env {
    lab: AppLab,
    commits: BTreeMap<String, String>,
}

impl std::ops::Deref for Env {
    type Target = AppLab;

    fn deref(&self) -> &AppLab {
        &self.lab
    }
}

impl Env {
    fn commit(&self, tag: &str) -> &str {
        &self.commits[tag]
    }

    /// The commit `current` points to on `host`.
    fn current(&self, host: &str) -> String {
        let r = self.exec(host, "readlink /var/www/cts/current");
        r.stdout.trim().rsplit('/').next().unwrap_or("").to_string()
    }

    /// The commits `releases.log` lists on `host`, oldest first.
    fn history(&self, host: &str) -> Vec<String> {
        let r = self.exec(host, "cat /var/www/cts/releases.log 2>/dev/null");
        r.stdout
            .lines()
            .filter_map(|l| l.split('\t').nth(1))
            .map(str::to_string)
            .collect()
    }

    fn pid(&self, host: &str, program: &str) -> String {
        let r = self.exec(host, &format!("supervisorctl pid {program}"));
        r.stdout.trim().to_string()
    }
}

fn phase(name: &str) {
    eprintln!("\n=== releases: {name}");
}

/// What the test needs on this machine; each missing piece is named with what installs it.
fn require_tools() -> PathBuf {
    require_root();
    require_python(
        "django, celery, psycopg2, gunicorn",
        "python3-django, python3-celery, python3-psycopg2 or gunicorn",
    );
    wheelhouse(WHEEL_PREFIX)
}

fn setup() -> Env {
    let wheelhouse = require_tools();
    let site = SiteDir::from_example("examples/cts");
    // The first wave (db, queue) outlasts an idle SSH master's 30 s: the app hosts, planned
    // first and applied after it, must still be reachable.
    edit(
        site.path(),
        "roles/postgres.yaml",
        "commands:\n",
        "commands:\n  - {name: a slow first wave, run: \"sleep 35 && touch /var/lib/slow-wave\", creates: /var/lib/slow-wave}\n",
    );
    let gitolite = Gitolite::new("cts");
    let mut yaml = String::new();
    for name in ["app_secret_key", "app_db_password", "rabbitmq_app_password"] {
        yaml.push_str(&format!("{name}: \"{}\"\n", random_hex()));
    }
    site.secrets(&(yaml + &gitolite.secrets_yaml()));
    let commits = make_repository(&gitolite.tree(), &wheelhouse);
    Env {
        lab: AppLab::up(site, gitolite, SUBNET),
        commits,
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    git_as(("CTS developer", "dev@cts.test"), dir, args)
}

/// The application's repository at `dir`: v1 is examples/cts/app with the wheelhouse, v2 and
/// v3 are tests/cts-releases/{v2,v3} copied over it. Returns tag -> commit.
fn make_repository(dir: &Path, wheelhouse: &Path) -> BTreeMap<String, String> {
    app_tree("examples/cts/app", dir, wheelhouse, WHEEL_PREFIX);
    git(dir, &["init", "-q", "-b", "master"]);
    let mut commits = BTreeMap::new();
    for tag in ["v1", "v2", "v3"] {
        if tag != "v1" {
            copy_tree(&repo().join("tests/cts-releases").join(tag), dir);
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("CTS {tag}")]);
        git(dir, &["tag", tag]);
        let commit = git(dir, &["rev-parse", "HEAD"]).trim().to_string();
        commits.insert(tag.to_string(), commit);
    }
    commits
}

#[test]
fn a_django_project_rolls_through_releases() {
    let t0 = Instant::now();
    let env = setup();
    phase("the example validates");
    let v = env.infra(&["validate", "sandbox"]);
    v.assert_code(0);
    source_host_serves_the_repository(&env);
    v1_is_deployed(&env);
    v1_serves_data_static_files_and_one_beat(&env);
    a_second_apply_changes_and_restarts_nothing(&env);
    v2_rolls_under_load(&env);
    v3_fails_its_health_check_and_stops(&env);
    rollback_to_v1(&env);
    eprintln!("releases: done in {:.0?}", t0.elapsed());
}

fn source_host_serves_the_repository(env: &Env) {
    phase("gitolite on the source host; the app's repository pushed, the deploy key a reader");
    env.serve_repository();
}

fn v1_is_deployed(env: &Env) {
    phase("plan and apply v1");
    let v1 = env.commit("v1");
    let plan = env.infra(&["plan", "sandbox", "--var", "app.ref=v1"]);
    plan.assert_code(0);
    for app in APPS {
        let want = format!("release (none) -> {} (v1)", &v1[..7]);
        let section = host_section(&plan.stdout, app);
        assert!(
            section.contains(&want),
            "{app}'s plan has no `{want}`:\n{}",
            plan.stdout
        );
    }
    let apply = env.infra(&["apply", "sandbox", "--yes", "--var", "app.ref=v1"]);
    apply.assert_code(0);
    for app in APPS {
        assert_eq!(env.current(app), v1, "{app} is not on v1");
    }
}

/// The lines of `host`'s section in a plan: its `host (N changes):` line and the indented
/// (or blank) lines after it.
fn host_section(plan: &str, host: &str) -> String {
    let head = format!("{host} (");
    let mut lines = plan.lines().skip_while(|l| !l.starts_with(&head));
    let first = lines.next().unwrap_or_default();
    let rest = lines.take_while(|l| l.is_empty() || l.starts_with(' '));
    std::iter::once(first)
        .chain(rest)
        .collect::<Vec<_>>()
        .join("\n")
}

/// An HTTP/1.0 GET on port 80 of `ip`, Host the address: (status, headers, body).
fn get(ip: &str, path: &str) -> Result<(u16, String, String), String> {
    let addr = format!("{ip}:80");
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.set_write_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, head.to_string(), body.to_string()))
}

/// `/api/scans/` on `ip`, which must answer 200 with JSON.
fn api(ip: &str) -> serde_json::Value {
    let (status, _, body) = get(ip, "/api/scans/").unwrap_or_else(|e| panic!("{ip}: {e}"));
    assert_eq!(status, 200, "/api/scans/ on {ip}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/scans/ on {ip}: {e}: {body}"))
}

fn v1_serves_data_static_files_and_one_beat(env: &Env) {
    phase("v1: the JSON view through nginx shows PostgreSQL's rows on both app hosts");
    let marker = format!("inserted-by-test-{}", random_hex());
    env.sql(&format!(
        "INSERT INTO scans_scan (package, source, host, created) VALUES ('{marker}', 'test', 'db', now())"
    ));
    for app in APPS {
        let json = api(env.ip(app));
        assert_eq!(json["api"], 1, "{app}: {json}");
        assert_eq!(json["release"], env.commit("v1"), "{app}: {json}");
        assert!(
            json["database"]
                .as_str()
                .unwrap_or("")
                .starts_with("PostgreSQL 15"),
            "{app}: {json}"
        );
        assert!(
            json["scans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r["package"] == marker.as_str())),
            "{app}: the row inserted with psql is not in the view: {json}"
        );
    }
    phase("v1: nginx serves the release's static files itself");
    let css = std::fs::read_to_string(repo().join("examples/cts/app/scans/static/scans/cts.css"))
        .unwrap();
    for app in APPS {
        let (status, head, body) = get(env.ip(app), "/static/scans/cts.css").unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, css.as_str()),
            "{app}: {head}"
        );
        // `expires 30d` is the static location's: the request never reached gunicorn.
        assert!(
            head.contains("Cache-Control: max-age=2592000"),
            "{app}: not served by nginx's static location:\n{head}"
        );
    }
    phase("v1: celery beat runs on exactly one app host, and its task writes rows");
    let beats: Vec<&str> = APPS
        .iter()
        .copied()
        .filter(|app| {
            let status = env.supervisor(app);
            for p in ["cts-gunicorn", "cts-celery-worker"] {
                assert!(
                    status
                        .lines()
                        .any(|l| l.starts_with(p) && l.contains("RUNNING")),
                    "{app}: {p} is not RUNNING:\n{status}"
                );
            }
            status
                .lines()
                .any(|l| l.starts_with("cts-celery-beat") && l.contains("RUNNING"))
        })
        .collect();
    assert_eq!(
        beats,
        ["app1"],
        "beat must run on app1 only (the once-host)"
    );
    assert!(
        !env.supervisor("app2").contains("cts-celery-beat"),
        "app2 has a beat program:\n{}",
        env.supervisor("app2")
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while env.sql("SELECT count(*) FROM scans_scan WHERE source = 'beat'") == "0" {
        if Instant::now() > deadline {
            let logs = env.exec(
                "app1",
                "tail -n 20 /var/www/cts/log/celery-beat.log /var/www/cts/log/celery-worker.log",
            );
            panic!(
                "no row from the beat-scheduled task after 90 s:\n{}",
                logs.stdout
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn a_second_apply_changes_and_restarts_nothing(env: &Env) {
    phase("a second apply of v1: an empty plan, nothing restarted");
    let pids: Vec<String> = APPS
        .iter()
        .flat_map(|a| ["cts-gunicorn", "cts-celery-worker"].map(|p| env.pid(a, p)))
        .collect();
    let plan = env.infra(&[
        "plan",
        "sandbox",
        "--var",
        "app.ref=v1",
        "--detailed-exitcode",
    ]);
    plan.assert_code(0);
    let apply = env.infra(&["apply", "sandbox", "--yes", "--var", "app.ref=v1"]);
    apply.assert_code(0);
    assert!(
        apply
            .stdout
            .contains("No changes. Infrastructure matches the configuration."),
        "{}",
        apply.stdout
    );
    let after: Vec<String> = APPS
        .iter()
        .flat_map(|a| ["cts-gunicorn", "cts-celery-worker"].map(|p| env.pid(a, p)))
        .collect();
    assert_eq!(pids, after, "a program was restarted by a no-op apply");
}

/// What one load thread saw.
#[derive(Debug, Default)]
struct Load {
    requests: u32,
    failures: Vec<String>,
    /// The `api` of the first and the last answers.
    first: Option<u64>,
    last: Option<u64>,
}

/// Requests `/api/scans/` on `ip` until `stop` (at most MAX_REQUESTS).
fn load(ip: String, stop: Arc<AtomicBool>) -> Load {
    let mut seen = Load::default();
    while !stop.load(Ordering::Relaxed) && seen.requests < MAX_REQUESTS {
        seen.requests += 1;
        match get(&ip, "/api/scans/") {
            Ok((200, _, body)) => {
                let api = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|j| j["api"].as_u64());
                seen.first = seen.first.or(api);
                seen.last = api;
            }
            Ok((status, _, body)) => seen.failures.push(format!("{status}: {body:.200}")),
            Err(e) => seen.failures.push(e),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

fn v2_rolls_under_load(env: &Env) {
    phase("v2 (a migration, a changed view) rolls while both app hosts are under load");
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = APPS
        .iter()
        .map(|app| {
            let (ip, stop) = (env.ip(app).to_string(), stop.clone());
            std::thread::spawn(move || load(ip, stop))
        })
        .collect();
    let apply = env.infra(&["apply", "sandbox", "--yes", "--var", "app.ref=v2"]);
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Load> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    apply.assert_code(0);
    for (app, s) in APPS.iter().zip(&seen) {
        eprintln!(
            "{app}: {} requests, {} failed",
            s.requests,
            s.failures.len()
        );
        assert!(
            s.failures.is_empty(),
            "{app}: {} of {} requests failed during the roll, e.g. {:?}",
            s.failures.len(),
            s.requests,
            &s.failures[..s.failures.len().min(5)]
        );
        assert_eq!(
            (s.first, s.last),
            (Some(1), Some(2)),
            "{app}: the load did not span the switch from v1 to v2 ({} requests)",
            s.requests
        );
    }
    assert_eq!(
        env.sql("SELECT count(*) FROM django_migrations WHERE app = 'scans' AND name = '0002_scan_severity'"),
        "1"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM scans_scan WHERE source = 'migration'"),
        "1",
        "the migration did not run exactly once"
    );
    let v2 = env.commit("v2");
    let releases = env.infra(&["releases", "sandbox", "--json"]);
    releases.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&releases.stdout)
        .unwrap_or_else(|e| panic!("infra releases --json: {e}:\n{}", releases.stdout));
    for app in APPS {
        assert_eq!(env.current(app), v2, "{app} is not on v2");
        let host = json["hosts"]
            .as_array()
            .and_then(|l| l.iter().find(|h| h["host"] == app))
            .unwrap_or_else(|| panic!("infra releases has no {app}:\n{}", releases.stdout));
        assert_eq!(host["current"], v2, "infra releases: {host}");
        let kept: Vec<&str> = host["releases"]
            .as_array()
            .map(|l| l.iter().filter_map(|r| r["commit"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            kept.contains(&v2) && kept.contains(&env.commit("v1")),
            "{app} keeps v1 and v2: {host}"
        );
        assert_eq!(api(env.ip(app))["api"], 2, "{app}");
    }
}

fn v3_fails_its_health_check_and_stops(env: &Env) {
    phase("v3 fails its health check: exit 3, the first batch back on v2, the other untouched");
    let before: BTreeMap<&str, Vec<String>> = APPS.iter().map(|a| (*a, env.history(a))).collect();
    let apply = env.infra(&["apply", "sandbox", "--yes", "--var", "app.ref=v3"]);
    apply.assert_code(3);
    let (v2, v3) = (env.commit("v2"), env.commit("v3"));
    let tried: Vec<&str> = APPS
        .iter()
        .copied()
        .filter(|a| env.history(a).iter().any(|c| c == v3))
        .collect();
    assert_eq!(
        tried.len(),
        1,
        "v3 must have been switched in on exactly one host (batch: 1), not {tried:?}:\n{}\n{}",
        apply.stdout,
        apply.stderr
    );
    for app in APPS {
        assert_eq!(env.current(app), v2, "{app} is not back on v2");
        assert_eq!(api(env.ip(app))["api"], 2, "{app}");
        let history = env.history(app);
        if app == tried[0] {
            assert_eq!(
                history[before[app].len()..],
                [v3.to_string(), v2.to_string()],
                "{app}: v3 then v2 again"
            );
        } else {
            assert_eq!(history, before[app], "{app} was touched");
        }
    }
}

fn rollback_to_v1(env: &Env) {
    phase("infra rollback --to v1's commit: the old view answers; v1 again is a no-op");
    let v1 = env.commit("v1");
    let r = env.infra(&["rollback", "sandbox", "--to", &v1[..12], "--yes"]);
    r.assert_code(0);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("migrations are not reversed"),
        "rollback does not say that database migrations are not reversed:\n{said}"
    );
    for app in APPS {
        assert_eq!(env.current(app), v1, "{app} is not on v1");
        let json = api(env.ip(app));
        assert_eq!(json["api"], 1, "{app}: {json}");
        assert_eq!(json["release"], v1, "{app}: {json}");
    }
    env.infra(&[
        "plan",
        "sandbox",
        "--var",
        "app.ref=v1",
        "--detailed-exitcode",
    ])
    .assert_code(0);
}
