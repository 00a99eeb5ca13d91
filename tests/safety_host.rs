//! The apply script on a host in a team's and an attacker's hands, on one real sandbox host
//! (tests/sandbox/sandbox.sh): two applies of one environment, and of two environments sharing
//! the host, never overlap (the second refuses naming the first's run); a symlink planted by
//! the unprivileged owner of a directory root writes in is refused and leads nowhere; a
//! SIGKILLed controller, or a dropped network (the host's link down), leaves no process of the
//! run behind, and the next apply works; no copy of a script is left. Scenarios run in
//! sequence on the one host, each even after another failed. Needs root.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUBNET: &str = "10.213.70";

/// Fields drop in order: the sandbox goes down while its state (inside the site) still exists.
struct Lab {
    sandbox: Sandbox,
    site: SiteDir,
}

const APP: &str = "\
name: app
dirs:
  - {path: /srv/app}
files:
  - {template: one.conf.j2, dest: /srv/app/one.conf}
  - {template: two.conf.j2, dest: /srv/app/two.conf}
";

/// Directories in /srv/drop: mallory's (made as mallory), then root's (refused).
const DROPDIR: &str = "\
name: dropdir
dirs:
  - {path: /srv/drop/own, owner: mallory, group: mallory, mode: \"0750\"}
  - {path: /srv/drop/sub}
";

/// A command that sleeps under its `timeout` when /srv/nap exists.
const NAP: &str = "\
name: nap
commands:
  - {name: nap, run: \"sleep 300\", unless: \"[ ! -e /srv/nap ]\"}
";

/// Files in /srv/drop, a directory the test gives to an unprivileged user: one that user
/// owns (written as them), one root's (refused).
const DROP: &str = "\
name: drop
files:
  - {template: drop.conf.j2, dest: /srv/drop/mine.conf, owner: mallory, group: mallory}
  - {template: drop.conf.j2, dest: /srv/drop/drop.conf}
";

impl Lab {
    fn infra(&self, args: &[&str]) -> Run {
        self.site.infra(args)
    }

    /// Writes inventory `env` (its own known_hosts file) with host `web` holding `roles`.
    fn inventory(&self, env: &str, roles: &str) {
        let text = format!(
            "{}  known_hosts_file: .infra/known_hosts/{env}\n{}",
            self.sandbox.inventory(env, "lab.test"),
            hosts_yaml(SUBNET, &[("web", roles, 11)])
        );
        self.site.write(&format!("inventories/{env}.yaml"), &text);
    }

    fn template(&self, name: &str, text: &str) {
        self.site.write(&format!("templates/{name}"), text);
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

    /// Waits up to `secs` for no process on the host to run `args`.
    fn gone_within(&self, args: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.pids(args).is_empty() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        true
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
    let site = SiteDir::new();
    for (name, text) in [
        ("app", APP),
        ("nap", NAP),
        ("drop", DROP),
        ("dropdir", DROPDIR),
    ] {
        site.write(&format!("roles/{name}.yaml"), text);
    }
    let sandbox = site.up(SUBNET, &[("web", 11)]);
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
    // The environment lock (on web, the inventory's first host) refuses it before the host's.
    let second = lab.infra(&["apply", "lab", "--yes"]);
    lab.resume();
    let out = first.wait_with_output().unwrap();
    second.assert_code(1);
    assert!(
        second
            .stderr
            .contains("error: environment lab is locked by ")
            && second.stderr.contains(", apply, since 20"),
        "no refusal naming the first run:\n{}{}",
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

fn a_planted_symlink_leads_nowhere(lab: &Lab) {
    phase("(c) a symlink planted by a directory's owner: refused, its target untouched");
    lab.sh(
        "id mallory >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin mallory
         mkdir -p /srv/drop && chown mallory:mallory /srv/drop && chmod 755 /srv/drop
         printf 'root only\\n' > /etc/victim && chmod 600 /etc/victim
         rm -f /etc/pwned",
    );
    // As mallory: the destination points at root's file, and every predictable temp name
    // (`.infra-PID.drop.conf.tmp`, PIDs are small in the host's PID namespace) at a file that
    // does not exist yet.
    lab.sh(
        "setpriv --reuid=mallory --regid=mallory --clear-groups python3 -c '
import os
os.symlink(\"/etc/victim\", \"/srv/drop/drop.conf\")
for pid in range(1, 40000):
    os.symlink(\"/etc/pwned\", \"/srv/drop/.infra-%d.drop.conf.tmp\" % pid)
'",
    );
    lab.inventory("lab", "app, nap, drop");
    let run = lab.infra(&["apply", "lab", "--yes"]);
    lab.inventory("lab", "app, nap");
    assert_eq!(
        lab.sandbox.exec("web", "ls -l /etc/pwned").code,
        2,
        "root followed a planted temp-name link"
    );
    assert_eq!(
        lab.file("/etc/victim"),
        "root only\n",
        "the link's target changed"
    );
    assert_eq!(
        lab.sh("stat -c %U:%a /etc/victim"),
        "root:600\n",
        "the link's target changed owner or mode"
    );
    assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("/srv/drop/drop.conf") && run.stdout.contains("symbolic link"),
        "no clear refusal naming the path:\n{}{}",
        run.stdout,
        run.stderr
    );
    // The link removed, the directory still mallory's: refused for its owner.
    lab.sh("rm -f /srv/drop/drop.conf");
    lab.inventory("lab", "app, nap, drop");
    let run = lab.infra(&["apply", "lab", "--yes"]);
    lab.inventory("lab", "app, nap");
    assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("/srv/drop") && run.stdout.contains("mallory"),
        "no clear refusal naming the directory and its owner:\n{}{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(lab.sandbox.exec("web", "ls -l /etc/pwned").code, 2);
    assert_eq!(lab.sandbox.exec("web", "ls /srv/drop/drop.conf").code, 2);
    // mallory's own file in mallory's directory: written, as mallory.
    assert_eq!(lab.file("/srv/drop/mine.conf"), "drop 1\n");
    assert_eq!(
        lab.sh("stat -c %U:%G:%a /srv/drop/mine.conf"),
        "mallory:mallory:644\n"
    );
    // Directories get the same care: mallory's made as mallory, root's refused.
    lab.sh("rm -rf /srv/drop/own /srv/drop/sub");
    lab.inventory("lab", "app, nap, dropdir");
    let run = lab.infra(&["apply", "lab", "--yes"]);
    lab.inventory("lab", "app, nap");
    assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("refusing to write /srv/drop/sub: /srv/drop is owned by mallory"),
        "{}",
        run.stdout
    );
    assert_eq!(
        lab.sh("stat -c %U:%G:%a /srv/drop/own; ls -d /srv/drop/sub 2>&1; true"),
        "mallory:mallory:750\nls: cannot access '/srv/drop/sub': No such file or directory\n"
    );
}

fn a_killed_controller_leaves_nothing_running(lab: &Lab) {
    phase("(d) a SIGKILLed controller: nothing of its run keeps running on the host");
    lab.sh("touch /srv/nap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("-C")
        .arg(lab.site.path())
        .args(["apply", "lab", "--yes"])
        .env("NO_COLOR", "1")
        .env("HOME", lab.site.path().join(".no-home"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.pids("sleep 300").is_empty() {
        assert!(Instant::now() < deadline, "the command step never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        lab.gone_within("sleep 300", 30),
        "the command of the killed run still runs on the host:\n{}",
        lab.sh("ps -eo pid,pgid,sid,args")
    );
    lab.sh("rm -f /srv/nap");
    lab.infra(&["apply", "lab", "--yes"]).assert_code(0);
}

fn a_dropped_network_ends_the_run(lab: &Lab) {
    phase("(e) the network drops mid-run: the script on the host ends while it is still down");
    lab.sh("touch /srv/nap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("-C")
        .arg(lab.site.path())
        .args(["apply", "lab", "--yes"])
        .env("NO_COLOR", "1")
        .env("HOME", lab.site.path().join(".no-home"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.pids("sleep 300").is_empty() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command step never started");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The host's side of its veth: no packet in or out, no FIN, no RST.
    lab.sh("ip link set dev eth0 down");
    let gone = lab.gone_within("sleep 300", 60);
    let ps = lab.sh("ps -eo pid,pgid,sid,args");
    lab.sh("ip link set dev eth0 up");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        gone,
        "the run went on on the host with its controller unreachable:\n{ps}"
    );
    lab.sh("rm -f /srv/nap");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = lab.infra(&["apply", "lab", "--yes"]);
        if run.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no apply after the network came back:\n{}{}",
            run.stdout,
            run.stderr
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn leftovers(lab: &Lab) {
    phase("no copy of a script and no run directory left behind, the state dir root's alone");
    // The killed runs' leftovers go with the next run that changes something.
    lab.template("one.conf.j2", "one 4\n");
    lab.infra(&["apply", "lab", "--yes"]).assert_code(0);
    let left = lab.sh(
        "cd /var/lib/infra && find runs scripts -mindepth 1; ls -A /tmp | grep '^\\.infra-'; true",
    );
    assert_eq!(left, "", "left behind on the host");
    assert_eq!(lab.sh("stat -c %U:%a /var/lib/infra"), "root:700\n");
}

#[test]
fn applies_never_overlap_and_never_outlive_their_controller() {
    let lab = setup();
    let started = Instant::now();
    // Every scenario runs, even after one failed: the report lists each one that did.
    let mut failed = Vec::new();
    type Scenario = (&'static str, fn(&Lab));
    let scenarios: [Scenario; 6] = [
        ("(a) two applies of one env", two_applies_of_one_env),
        ("(b) two envs sharing a host", two_envs_share_a_host),
        ("(c) planted symlink", a_planted_symlink_leads_nowhere),
        (
            "(d) killed controller",
            a_killed_controller_leaves_nothing_running,
        ),
        ("(e) dropped network", a_dropped_network_ends_the_run),
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
