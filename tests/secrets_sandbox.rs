//! Secrets on real sandbox hosts (tests/sandbox/sandbox.sh; salt, db1, queue1 and app1 of the
//! repository's sandbox inventory, in 10.213.80.0/24): a multi-line secret printed by a failing
//! check shows in no line of infra's output; hostile secrets (`'`, `$(...)`, `"`, a backslash
//! and a newline) rendered into every script template run against real postgres, rabbitmq and
//! mariadb create no marker file and are the passwords that work; `ps` sampled on the hosts
//! during the apply never shows a secret; a plan shows a secret file's digests keyed, not its
//! plain sha256; the kept ssh master's environment holds no INFRA_SECRET_*. Scenarios run in sequence on one host set; every problem is collected and
//! reported at the end. Needs root.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const SUBNET: &str = "10.213.80";
const HOSTS: [&str; 4] = ["salt", "db1", "queue1", "app1"];
/// The hosts applied (salt is only the jump host).
const APPLIED: &str = "db1,queue1,app1";

/// A value no script may run: a quote, command substitutions, a double quote, a backslash,
/// a newline and SQL after a quote.
fn hostile(name: &str) -> String {
    format!("{name}'s $(touch /tmp/pwned) \"q\" `touch /tmp/pwned`\nline2-{name} \\' ; DROP TABLE x; -- end")
}

/// rabbitmqctl reads a password as one trimmed line: the same, without the newline.
fn hostile_one_line(name: &str) -> String {
    hostile(name).replace('\n', " ")
}

struct Env {
    sandbox: Sandbox,
    site: SiteDir,
    control: tempfile::TempDir,
    secrets: BTreeMap<String, String>,
    /// Set through the environment (INFRA_SECRET_APP_SECRET_KEY), not the file.
    env_secret: String,
    problems: Vec<String>,
}

impl Env {
    fn infra(&self, args: &[&str]) -> Run {
        self.infra_with(args, &[])
    }

    fn infra_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let control = self.control_dir().display().to_string();
        let mut env = vec![
            ("INFRA_SSH_CONTROL_DIR", control.as_str()),
            ("INFRA_SECRET_APP_SECRET_KEY", self.env_secret.as_str()),
        ];
        env.extend_from_slice(extra);
        infra_env(self.site.path(), args, &env)
    }

    /// Made by infra itself (mode 0700) inside a temp dir.
    fn control_dir(&self) -> PathBuf {
        self.control.path().join("cm")
    }

    fn exec(&self, host: &str, script: &str) -> Run {
        self.sandbox.exec(host, script)
    }

    fn check(&mut self, ok: bool, problem: impl Into<String>) {
        if !ok {
            let p = problem.into();
            eprintln!("PROBLEM: {p}");
            self.problems.push(p);
        }
    }

    /// Every value that must never be shown: each secret, and each line of a multi-line one
    /// (ps prints a newline as `?`), skipping PEM armour lines and short lines.
    fn needles(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.push(("app_secret_key (env)".into(), self.env_secret.clone()));
        let mut out = Vec::new();
        for (name, value) in all {
            out.push((name.clone(), value.replace('\n', "?")));
            for line in value.lines().map(str::trim) {
                if line.len() >= 8 && !line.starts_with("-----") {
                    out.push((name.clone(), line.to_string()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn phase(name: &str) {
    eprintln!("\n=== secrets_sandbox: {name}");
}

fn setup() -> Env {
    require_root();
    let site = SiteDir::sandbox_copy(SUBNET);
    // Kept masters: their environment is scenario (d).
    edit(
        site.path(),
        "inventories/sandbox.yaml",
        "  jump_host: salt\n",
        "  jump_host: salt\n  control_persist: 5m\n",
    );
    let out = make_secrets(&site.state());
    let made: BTreeMap<String, serde_json::Value> = serde_saphyr::from_str(&out).unwrap();
    let mut secrets: BTreeMap<String, String> = made
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
        .collect();
    for name in [
        "app_db_password",
        "mariadb_root_password",
        "mariadb_replication_password",
        "redis_password",
        "app_secret_key",
    ] {
        secrets.insert(name.into(), hostile(name));
    }
    secrets.insert(
        "rabbitmq_app_password".into(),
        hostile_one_line("rabbitmq_app_password"),
    );
    // JSON is YAML: every value written as a JSON string, whatever it holds.
    let yaml: String = secrets
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", serde_json::to_string(v).unwrap()))
        .collect();
    site.secrets(&yaml);
    let hosts = [("salt", 10), ("db1", 20), ("queue1", 35), ("app1", 50)];
    assert_eq!(hosts.len(), HOSTS.len());
    demo_repo();
    let sandbox = site.up(SUBNET, &hosts);
    Env {
        sandbox,
        site,
        control: tempfile::tempdir().unwrap(),
        secrets,
        env_secret: hostile("env_secret_key"),
        problems: Vec::new(),
    }
}

#[test]
fn secrets_never_leak_nor_break_out_on_sandbox_hosts() {
    let mut env = setup();
    a_multi_line_secret_in_a_failing_check(&mut env);
    start_ps_sampling(&env);
    let applied = env.infra(&["apply", "sandbox", "--yes", "--limit", APPLIED]);
    let logs = stop_ps_sampling(&env);
    env.check(
        applied.code == 0,
        format!(
            "apply failed ({}):\n{}\n{}",
            applied.code, applied.stdout, applied.stderr
        ),
    );
    no_secret_in_the_process_list(&mut env, &logs);
    hostile_secrets_run_nothing_and_work(&mut env);
    the_plan_shows_no_plain_hash_of_a_secret_file(&mut env);
    the_kept_masters_hold_no_secret(&mut env);
    stop_masters(&env);
    assert!(
        env.problems.is_empty(),
        "{} problems:\n- {}",
        env.problems.len(),
        env.problems.join("\n- ")
    );
}

/// (a) A check that prints the TLS key (a PEM block) and fails: no line of it in any output.
fn a_multi_line_secret_in_a_failing_check(env: &mut Env) {
    phase("(a) a failing check prints a PEM key: no line of it in infra's output");
    let dir = env.site.path().to_path_buf();
    let from = "  - template: mariadb/server-key.pem.j2\n    dest: /etc/mysql/tls/server-key.pem\n";
    let text = std::fs::read_to_string(dir.join("roles/db.yaml")).unwrap();
    let entry = text
        .split("  - template:")
        .find(|e| e.contains("server-key.pem.j2"))
        .map(|e| format!("  - template:{e}"))
        .expect("roles/db.yaml has the server key entry");
    assert!(entry.starts_with(from), "{entry}");
    let failing = entry.replacen(
        from,
        &format!("{from}    check: \"cat /etc/mysql/tls/server-key.pem; exit 3\"\n"),
        1,
    );
    edit(&dir, "roles/db.yaml", &entry, &failing);
    let r = env.infra(&["apply", "sandbox", "--yes", "--limit", "db1"]);
    edit(&dir, "roles/db.yaml", &failing, &entry);
    let out = format!("{}\n{}", r.stdout, r.stderr);
    env.check(
        r.code != 0,
        format!("the failing check failed nothing:\n{out}"),
    );
    env.check(
        out.contains("file /etc/mysql/tls/server-key.pem"),
        format!("the recap names the failing file:\n{out}"),
    );
    let key = env.secrets["mariadb_tls_key"].clone();
    let leaked: Vec<&str> = key
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 8 && !l.starts_with("-----") && out.contains(*l))
        .collect();
    env.check(
        leaked.is_empty(),
        format!(
            "{} lines of the TLS key are in infra's output, e.g. {:?}",
            leaked.len(),
            leaked.first()
        ),
    );
}

fn ps_log() -> &'static str {
    "/tmp/infra-test-ps.log"
}

/// (c) A loop on every applied host writing `ps -eo args` to a file until told to stop.
fn start_ps_sampling(env: &Env) {
    for h in APPLIED.split(',') {
        let r = env.exec(
            h,
            &format!(
                "rm -f /tmp/ps.stop; (while [ ! -e /tmp/ps.stop ]; do ps -eo args; done > {} 2>&1 &) ; echo started",
                ps_log()
            ),
        );
        assert_eq!(r.stdout.trim(), "started", "{h}: {}", r.stderr);
    }
}

fn stop_ps_sampling(env: &Env) -> BTreeMap<String, String> {
    let mut logs = BTreeMap::new();
    for h in APPLIED.split(',') {
        env.exec(h, "touch /tmp/ps.stop; sleep 1");
        logs.insert(
            h.to_string(),
            env.exec(h, &format!("cat {}", ps_log())).stdout,
        );
    }
    logs
}

fn no_secret_in_the_process_list(env: &mut Env, logs: &BTreeMap<String, String>) {
    phase("(c) ps sampled during the apply never shows a secret");
    // The sampling saw the setup scripts' clients at work (else it proves nothing).
    for (host, seen) in [
        ("db1", "mariadb"),
        ("queue1", "rabbitmqctl"),
        ("queue1", "psql"),
    ] {
        env.check(
            logs[host].lines().any(|l| l.contains(seen)),
            format!("ps on {host} never saw {seen} running"),
        );
    }
    for (host, log) in logs {
        for (name, needle) in env.needles() {
            if let Some(line) = log.lines().find(|l| l.contains(&needle)) {
                let shown = line.replace(&needle, "<HERE>");
                env.check(false, format!("ps on {host} showed {name}: {shown}"));
            }
        }
    }
}

/// (b) No marker file; each password is the one the daemon accepts.
fn hostile_secrets_run_nothing_and_work(env: &mut Env) {
    phase("(b) hostile secrets run nothing and are the working passwords");
    for h in APPLIED.split(',') {
        let r = env.exec(h, "ls /tmp/pwned 2>/dev/null; echo done");
        env.check(
            r.stdout.trim() == "done",
            format!("a secret ran code on {h}: {}", r.stdout),
        );
    }
    // The setup scripts' checks see their work done: nothing left to do.
    let again = env.infra(&["plan", "sandbox", "--limit", APPLIED, "--detailed-exitcode"]);
    env.check(
        again.code == 0,
        format!(
            "a second plan is not clean ({}):\n{}\n{}",
            again.code, again.stdout, again.stderr
        ),
    );
    let pg = env.secrets["app_db_password"].clone();
    let r = env.exec(
        "queue1",
        &format!("PGPASSWORD={} PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U webplatform -d webplatform -tAc 'select 41+1'", q(&pg)),
    );
    env.check(
        r.stdout.trim() == "42",
        format!(
            "psql as webplatform with its password: {}{}",
            r.stdout, r.stderr
        ),
    );
    let mq = env.secrets["rabbitmq_app_password"].clone();
    let r = env.exec(
        "queue1",
        &format!("printf '%s\\n' {} | rabbitmqctl --silent authenticate_user webplatform && echo authenticated", q(&mq)),
    );
    env.check(
        r.stdout.contains("authenticated"),
        format!(
            "rabbitmqctl authenticate_user with its password: {}{}",
            r.stdout, r.stderr
        ),
    );
    // unix_socket lets root in whatever the password: `nobody` must give it.
    let root = env.secrets["mariadb_root_password"].clone();
    let r = env.exec(
        "db1",
        &format!("runuser -u nobody -- env MYSQL_PWD={} mariadb --protocol=socket -uroot -N -B -e 'SELECT 41+1'", q(&root)),
    );
    env.check(
        r.stdout.trim() == "42",
        format!(
            "mariadb root login with its password: {}{}",
            r.stdout, r.stderr
        ),
    );
    let wrong = env.exec(
        "db1",
        "runuser -u nobody -- env MYSQL_PWD=wrong mariadb --protocol=socket -uroot -N -B -e 'SELECT 41+1'",
    );
    env.check(wrong.code != 0, "mariadb root accepts a wrong password");
    let repl = env.secrets["mariadb_replication_password"].clone();
    let r = env.exec(
        "db1",
        &format!(
            "MYSQL_PWD={} mariadb -h {SUBNET}.20 -urepl --ssl -N -B -e 'SELECT 41+1'",
            q(&repl)
        ),
    );
    env.check(
        r.stdout.trim() == "42",
        format!(
            "mariadb repl login with its password: {}{}",
            r.stdout, r.stderr
        ),
    );
    the_app_env_gives_them_back(env, &pg);
}

/// The app's env file, read as app/run.sh reads it, and the URLs in it.
fn the_app_env_gives_them_back(env: &mut Env, pg: &str) {
    for (var, want) in [
        ("DB_PASSWORD", pg.to_string()),
        ("SECRET_KEY", env.env_secret.clone()),
        ("REDIS_PASSWORD", env.secrets["redis_password"].clone()),
    ] {
        let r = env.exec(
            "app1",
            &format!("set -a; . /etc/webplatform/env; printf '%s' \"${var}\""),
        );
        env.check(
            r.stdout == want,
            format!(
                "{var} read back from /etc/webplatform/env differs: {:?}",
                r.stdout
            ),
        );
    }
    // The app's URLs log in as the app would: libpq and kombu percent-decode them.
    let r = env.exec(
        "app1",
        "set -a; . /etc/webplatform/env; /usr/bin/python3 -c '
import os, psycopg2, kombu
psycopg2.connect(os.environ[\"DATABASE_URL\"], connect_timeout=5).close()
print(\"postgres ok\")
c = kombu.Connection(os.environ[\"BROKER_URL\"], connect_timeout=5)
c.connect()
c.release()
print(\"rabbitmq ok\")'",
    );
    env.check(
        r.stdout.contains("postgres ok\nrabbitmq ok"),
        format!(
            "DATABASE_URL and BROKER_URL from the env file: {}{}",
            r.stdout, r.stderr
        ),
    );
}

/// (e) A changed secret: the plan shows keyed digests, not the host's sha256 of the file.
fn the_plan_shows_no_plain_hash_of_a_secret_file(env: &mut Env) {
    phase("(e) the plan of a changed secret file shows keyed digests only");
    let host_hash = env
        .exec("app1", "sha256sum /etc/webplatform/env | cut -d' ' -f1")
        .stdout
        .trim()
        .to_string();
    assert_eq!(host_hash.len(), 64, "sha256sum on app1: {host_hash:?}");
    let r = env.infra_with(
        &["plan", "sandbox", "--limit", "app1", "--json"],
        &[("INFRA_SECRET_APP_DB_PASSWORD", "a-changed-password-5d1e")],
    );
    env.check(
        r.stdout.contains("/etc/webplatform/env") && r.stdout.contains("hmac-sha256:"),
        format!(
            "the plan changes /etc/webplatform/env with keyed digests:\n{}{}",
            r.stdout, r.stderr
        ),
    );
    env.check(
        !r.stdout.contains(&host_hash),
        "the plan shows the host's plain sha256 of /etc/webplatform/env",
    );
}

/// The kept masters (ssh -M under the control dir): (pid, socket).
fn masters(env: &Env) -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(env.control_dir()) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let is_socket = std::os::unix::fs::FileTypeExt::is_socket(
            &std::fs::symlink_metadata(&path).unwrap().file_type(),
        );
        if !is_socket {
            continue;
        }
        let out = Command::new("ssh")
            .arg("-S")
            .arg(&path)
            .args(["-O", "check", "x"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let pid = text
            .split("pid=")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok());
        if let Some(pid) = pid {
            found.push((pid, path));
        }
    }
    found
}

/// (d) /proc/PID/environ of each kept master.
fn the_kept_masters_hold_no_secret(env: &mut Env) {
    phase("(d) the kept ssh masters' environment holds no INFRA_SECRET_*");
    let kept = masters(env);
    env.check(
        kept.len() >= 3,
        format!("expected a kept master per applied host and the jump host, found {kept:?}"),
    );
    for (pid, socket) in kept {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let text = String::from_utf8_lossy(&environ);
        env.check(
            !environ.is_empty(),
            format!("the master {pid} has no readable environment"),
        );
        let names: Vec<&str> = text
            .split('\0')
            .filter(|v| v.starts_with("INFRA_SECRET_"))
            .filter_map(|v| v.split('=').next())
            .collect();
        env.check(
            names.is_empty(),
            format!(
                "the kept master {pid} ({}) holds {names:?}",
                socket.display()
            ),
        );
    }
}

fn stop_masters(env: &Env) {
    for (_, socket) in masters(env) {
        let _ = Command::new("ssh")
            .arg("-S")
            .arg(&socket)
            .args(["-O", "exit", "x"])
            .output();
    }
}
