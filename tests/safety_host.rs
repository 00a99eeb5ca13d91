//! The apply script on a host in a team's and an attacker's hands, on one real sandbox host
//! (tests/sandbox/sandbox.sh): two applies of one environment, and of two environments sharing
//! the host, never overlap (the second refuses naming the first's run); a symlink planted by
//! the unprivileged owner of a directory root writes in is refused and leads nowhere; a
//! SIGKILLed controller, or a dropped network, leaves no process of the run behind, and the
//! next apply works. Scenarios run in sequence on the one host. Needs root.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const SUBNET: &str = "10.213.70";

/// Fields drop in order: the sandbox goes down while its state (inside the site) still exists.
struct Lab {
    sandbox: Sandbox,
    site: tempfile::TempDir,
}

const APP: &str = "\
name: app
dirs:
  - {path: /srv/app}
files:
  - {template: one.conf.j2, dest: /srv/app/one.conf}
  - {template: two.conf.j2, dest: /srv/app/two.conf}
";

/// A command that sleeps under its `timeout` when /srv/nap exists.
const NAP: &str = "\
name: nap
commands:
  - {name: nap, run: \"sleep 300\", unless: \"[ ! -e /srv/nap ]\"}
";

/// A root-owned file in /srv/drop, a directory the test gives to an unprivileged user.
const DROP: &str = "\
name: drop
files:
  - {template: drop.conf.j2, dest: /srv/drop/drop.conf}
";

impl Lab {
    fn infra(&self, args: &[&str]) -> Run {
        infra(self.site.path(), args)
    }

    /// Writes inventory `env` (its own known_hosts file) with host `web` holding `roles`.
    fn inventory(&self, env: &str, roles: &str) {
        let state = self.sandbox.state.display();
        let text = format!(
            "environment: {env}\n\
             domain: lab.test\n\
             internal_domain: lab.internal\n\
             provider: {{type: static}}\n\
             ssh:\n  user: root\n  identity_file: {state}/id_ed25519\n  \
             known_hosts_file: .infra/known_hosts/{env}\n\
             hosts:\n  web: {{roles: [{roles}], address: {SUBNET}.11}}\n"
        );
        std::fs::write(
            self.site.path().join(format!("inventories/{env}.yaml")),
            text,
        )
        .unwrap();
    }

    fn template(&self, name: &str, text: &str) {
        std::fs::write(self.site.path().join("templates").join(name), text).unwrap();
    }

    fn sh(&self, script: &str) -> String {
        let r = self.sandbox.exec("web", script);
        assert_eq!(r.code, 0, "{script}: {}{}", r.stdout, r.stderr);
        r.stdout
    }

    fn file(&self, path: &str) -> String {
        self.sandbox.exec("web", &format!("cat {path}")).stdout
    }

    /// `infra apply ENV --yes` in the background, paused right after writing `pause_after`;
    /// returns once the host reported that file changed.
    fn paused_apply(&self, env: &str, pause_after: &str) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
            .arg("-C")
            .arg(self.site.path())
            .args(["apply", env, "--yes"])
            .env("INFRA_TEST_PAUSE_AFTER", pause_after)
            .env("NO_COLOR", "1")
            .env("HOME", self.site.path().join(".no-home"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(&format!("file {pause_after}: changed")) {
                return child;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the paused apply ended before writing {pause_after}:\n{seen}");
    }

    /// Pids of the processes on the host whose command line is exactly `args`.
    fn pids(&self, args: &str) -> Vec<String> {
        self.sh("ps -eo pid=,args=")
            .lines()
            .filter_map(|l| {
                let (pid, rest) = l.trim().split_once(' ')?;
                (rest.trim() == args).then(|| pid.to_string())
            })
            .collect()
    }

    /// Ends the test hook's `sleep 600` on the host, so the paused run goes on.
    fn resume(&self) {
        let pids = self.pids("sleep 600");
        assert_eq!(pids.len(), 1, "one paused run: {pids:?}");
        self.sh(&format!("kill {}", pids[0]));
    }

    /// The holder record of the host's lock: run id first.
    fn holder_run(&self) -> String {
        let h = self.file("/var/lib/infra/holder");
        h.split('\t').next().unwrap_or_default().to_string()
    }
}

fn setup() -> Lab {
    require_root();
    let site = tempfile::tempdir().unwrap();
    for d in ["roles", "inventories", "templates"] {
        std::fs::create_dir_all(site.path().join(d)).unwrap();
    }
    for (name, text) in [("app", APP), ("nap", NAP), ("drop", DROP)] {
        std::fs::write(site.path().join(format!("roles/{name}.yaml")), text).unwrap();
    }
    let state = site.path().join(".infra/sandbox");
    std::fs::create_dir_all(&state).unwrap();
    let sandbox = Sandbox::up(
        &state,
        &format!("{SUBNET}.0/24"),
        &[("web".into(), format!("{SUBNET}.11"))],
    );
    let lab = Lab { sandbox, site };
    lab.template("one.conf.j2", "one 1\n");
    lab.template("two.conf.j2", "two 1\n");
    lab.template("drop.conf.j2", "drop 1\n");
    lab.inventory("lab", "app, nap");
    lab.inventory("other", "app");
    lab
}

fn phase(name: &str) {
    eprintln!("\n=== safety_host: {name}");
}

/// A second apply while `first` is paused on the host: it must refuse, naming the first run.
fn second_refuses(lab: &Lab, first: Child, second_env: &str) {
    let holder = lab.holder_run();
    let second = lab.infra(&["apply", second_env, "--yes"]);
    lab.resume();
    let out = first.wait_with_output().unwrap();
    assert_ne!(
        second.code, 0,
        "the second apply ran alongside the first:\n{}{}",
        second.stdout, second.stderr
    );
    assert!(!holder.is_empty(), "the first run recorded no holder");
    let refused = format!("host web is being applied by run {holder} (root@");
    assert!(
        second.stdout.contains(&refused)
            && second
                .stdout
                .contains(&format!(", from {SUBNET}.1, since 20"))
            && second.stdout.contains("): wait for it to finish"),
        "no refusal naming run {holder}:\n{}{}",
        second.stdout,
        second.stderr
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the first apply did not complete:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn two_applies_of_one_env(lab: &Lab) {
    phase("(a) two applies of one environment: the second refuses, the first completes");
    lab.infra(&["apply", "lab", "--yes"]).assert_code(0);
    lab.template("one.conf.j2", "one 2\n");
    lab.template("two.conf.j2", "two 2\n");
    let first = lab.paused_apply("lab", "/srv/app/one.conf");
    second_refuses(lab, first, "lab");
    assert_eq!(lab.file("/srv/app/one.conf"), "one 2\n");
    assert_eq!(lab.file("/srv/app/two.conf"), "two 2\n");
    lab.infra(&["plan", "lab", "--detailed-exitcode"])
        .assert_code(0);
}

fn two_envs_share_a_host(lab: &Lab) {
    phase("(b) two environments sharing the host: the second refuses, the first completes");
    lab.template("one.conf.j2", "one 3\n");
    lab.template("two.conf.j2", "two 3\n");
    let first = lab.paused_apply("lab", "/srv/app/one.conf");
    second_refuses(lab, first, "other");
    assert_eq!(lab.file("/srv/app/one.conf"), "one 3\n");
    assert_eq!(lab.file("/srv/app/two.conf"), "two 3\n");
    lab.infra(&["apply", "other", "--yes"]).assert_code(0);
}

fn leftovers(lab: &Lab) {
    phase("no script copy and no run directory left behind");
    let left =
        lab.sh("{ ls -A /var/lib/infra/runs /var/lib/infra/scripts /tmp; } 2>/dev/null; true");
    assert!(
        !left.contains(".infra-"),
        "a copy of the script was left behind:\n{left}"
    );
    assert_eq!(lab.sh("stat -c %a /var/lib/infra"), "700\n");
}

#[test]
fn applies_never_overlap_and_never_outlive_their_controller() {
    let lab = setup();
    let started = Instant::now();
    // Every scenario runs, even after one failed: the report lists each one that did.
    let mut failed = Vec::new();
    type Scenario = (&'static str, fn(&Lab));
    let scenarios: [Scenario; 3] = [
        ("(a) two applies of one env", two_applies_of_one_env),
        ("(b) two envs sharing a host", two_envs_share_a_host),
        ("leftovers", leftovers),
    ];
    for (name, scenario) in scenarios {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&lab))).is_err() {
            failed.push(name);
        }
    }
    eprintln!("safety_host: {:?}", started.elapsed());
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}
