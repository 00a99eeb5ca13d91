//! Releases from git on two real sandbox hosts, with a tiny application (a file the health
//! check reads): the plan line, build and switch, a second apply that changes nothing, once
//! commands on one host only, a release whose health check fails in batch 1 (that batch
//! switched back, batch 2 untouched, exit 3), `rollback --to` and `releases`. Needs root.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const SUBNET: &str = "10.213.170";

/// Fields drop in order: the sandbox goes down while its state (inside the site) still exists.
struct Lab {
    sandbox: Sandbox,
    site: SiteDir,
    /// The application's repository, where the hosts see it too (not under /tmp, which is
    /// private to each host).
    _repo: tempfile::TempDir,
}

impl Lab {
    fn infra(&self, args: &[&str]) -> Run {
        self.site.infra(args)
    }

    fn sh(&self, host: &str, script: &str) -> String {
        let run = self.sandbox.exec(host, script);
        assert_eq!(run.code, 0, "{host}: {script}: {run:?}");
        run.stdout.trim().to_string()
    }

    /// The commit `current` points to on `host`.
    fn current(&self, host: &str) -> String {
        let link = self.sh(host, "readlink /srv/app/current");
        link.rsplit('/').next().unwrap_or_default().to_string()
    }

    fn lines(&self, host: &str, file: &str) -> usize {
        self.sh(host, &format!("cat {file} 2>/dev/null | wc -l"))
            .parse()
            .unwrap()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with four tagged releases: v1 and v2 healthy, v3 not, v4 failing its once
/// commands.
fn repository(dir: &Path) -> [String; 3] {
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "--quiet", "-b", "master"]);
    let mut commits = Vec::new();
    for (tag, health) in [("v1", "ok"), ("v2", "ok"), ("v3", "broken")] {
        std::fs::write(work.join("health.txt"), format!("{health}\n")).unwrap();
        std::fs::write(work.join("version.txt"), format!("{tag}\n")).unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", tag]);
        git(&work, &["tag", tag]);
        commits.push(git(&work, &["rev-parse", "HEAD"]));
    }
    std::fs::write(work.join("version.txt"), "v4\n").unwrap();
    std::fs::write(work.join("fail-once"), "").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "v4"]);
    git(&work, &["tag", "v4"]);
    let bare = dir.join("app.git");
    git(
        dir,
        &["clone", "--quiet", "--bare", "work", bare.to_str().unwrap()],
    );
    [commits[0].clone(), commits[1].clone(), commits[2].clone()]
}

fn setup() -> (Lab, [String; 3]) {
    require_root();
    let repo = tempfile::Builder::new()
        .prefix("infra-releases-engine-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let commits = repository(repo.path());
    let site = SiteDir::new();
    // A file:// URL: git does not try to hardlink objects across the hosts' overlay layers.
    let url = format!("file://{}", repo.path().join("app.git").display());
    site.write(
        "roles/app.yaml",
        &format!(
            "name: app\n\
             description: a tiny release, a file the health check reads\n\
             after: [db]\n\
             batch: 1\n\
             health:\n  command: \"grep -qx ok /srv/app/current/health.txt\"\n  tries: 2\n  interval: 1\n\
             release:\n  path: /srv/app\n  repo: \"{url}\"\n  ref: \"{{{{ vars.app.ref }}}}\"\n  user: root\n  \
             build:\n    - \"cp version.txt built.txt\"\n  \
             once:\n    - \"cat version.txt >> /srv/once.log\"\n    - \"test ! -e fail-once\"\n  \
             reload:\n    - \"cat /srv/app/current/version.txt >> /srv/reloads.log\"\n  \
             keep: 5\n"
        ),
    )
    .write(
        "roles/db.yaml",
        "name: db\nfiles:\n  - {template: db.j2, dest: /srv/db.txt}\n\
         commands:\n  - {name: gate, run: \"false\", unless: \"test ! -e /srv/db-fail\"}\n",
    )
    .write("templates/db.j2", "db\n")
    // A host nobody waits for: its failure stops nothing else.
    .write(
        "roles/misc.yaml",
        "name: misc\ncommands:\n  - {name: gate, run: \"false\", unless: \"test ! -e /srv/misc-fail\"}\n",
    );
    let sandbox = site.up(
        SUBNET,
        &[("app1", 11), ("app2", 12), ("db1", 13), ("misc1", 14)],
    );
    let inventory = format!(
        "{}  known_hosts_file: .infra/known_hosts/lab\nvars:\n  app: {{ref: v1}}\n{}",
        sandbox.inventory("lab", "lab.test"),
        hosts_yaml(
            SUBNET,
            &[
                ("app1", "app", 11),
                ("app2", "app", 12),
                ("db1", "db", 13),
                ("misc1", "misc", 14)
            ]
        )
    );
    site.write("inventories/lab.yaml", &inventory);
    let lab = Lab {
        sandbox,
        site,
        _repo: repo,
    };
    (lab, commits)
}

fn short(c: &str) -> &str {
    &c[..7]
}

#[test]
fn releases_build_switch_roll_back_and_list() {
    let (lab, [v1, v2, v3]) = setup();
    first_release_and_no_change(&lab, &v1);
    next_release(&lab, &v1, &v2);
    failing_health_check(&lab, &v2, &v3);
    failing_once_commands(&lab, &v2);
    roll_back(&lab, &v1, &v2);
    list(&lab, &v1, &v2, &v3);
    once_host_not_selected(&lab, &v2);
}

fn once_host_not_selected(lab: &Lab, v2: &str) {
    // With app1 (the once-host) left out by --limit, the once commands run on app2.
    let plan = lab.infra(&["plan", "lab", "--limit", "app2", "--var", "app.ref=v2"]);
    plan.assert_code(0);
    assert!(
        plan.stdout
            .contains("once on app2: cat version.txt >> /srv/once.log"),
        "{}",
        plan.stdout
    );
    lab.infra(&[
        "apply",
        "lab",
        "--yes",
        "--limit",
        "app2",
        "--var",
        "app.ref=v2",
    ])
    .assert_code(0);
    assert_eq!(lab.current("app2"), v2);
    assert_eq!(lab.sh("app2", "cat /srv/once.log"), "v2");
    assert_eq!(lab.sh("app1", "tail -n 1 /srv/once.log"), "v4");
}

fn first_release_and_no_change(lab: &Lab, v1: &str) {
    // The plan resolves v1 on the controller and shows it per host, once commands on app1.
    let plan = lab.infra(&["plan", "lab"]);
    plan.assert_code(0);
    let line = format!("release (none) -> {} (v1)", short(v1));
    assert_eq!(plan.stdout.matches(&line).count(), 2, "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("once on app1: cat version.txt >> /srv/once.log"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("once on app2"), "{}", plan.stdout);
    // The JSON plan carries the release steps and the once commands' host.
    let json = lab.infra(&["plan", "lab", "--json"]);
    json.assert_code(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["format_version"], "3");
    assert_eq!(value["once"][0]["host"], "app1", "{}", json.stdout);
    assert_eq!(value["once"][0]["commit"], v1);
    let app2 = &value["hosts"][1];
    assert_eq!(app2["host"], "app2");
    assert_eq!(app2["steps"][0]["kind"], "release", "{}", json.stdout);
    assert_eq!(app2["steps"][0]["to"], v1);
    assert_eq!(app2["steps"][0]["label"], "v1");

    // Build and switch: both hosts on v1, built, reloaded once; the once command ran on app1.
    let apply = lab.infra(&["apply", "lab", "--yes"]);
    apply.assert_code(0);
    // `after: [db]`: db1's host script ran (wave 0) before the app hosts' (wave 1).
    let at = |needle: &str| {
        apply
            .stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", apply.stderr))
    };
    assert!(at("db1: [1/") < at("app1: [1/"), "{}", apply.stderr);
    assert!(at("db1: [1/") < at("app2: [1/"), "{}", apply.stderr);
    assert_eq!(lab.sh("db1", "cat /srv/db.txt"), "db");
    for h in ["app1", "app2"] {
        assert_eq!(lab.current(h), v1, "{}", apply.stderr);
        assert_eq!(lab.sh(h, "cat /srv/app/current/built.txt"), "v1");
        assert_eq!(lab.sh(h, "cat /srv/reloads.log"), "v1");
        assert!(
            apply
                .stderr
                .contains(&format!("{h}: release {} switched", short(v1))),
            "{}",
            apply.stderr
        );
        assert!(
            apply.stderr.contains(&format!("{h}: health ok")),
            "{}",
            apply.stderr
        );
    }
    assert_eq!(lab.sh("app1", "cat /srv/once.log"), "v1");
    assert_eq!(lab.lines("app2", "/srv/once.log"), 0);

    // The same ref again: nothing to do, nothing reloaded, no once command.
    let again = lab.infra(&["apply", "lab", "--yes"]);
    again.assert_code(0);
    assert!(
        again
            .stdout
            .contains("No changes. Infrastructure matches the configuration."),
        "{}",
        again.stdout
    );
    for h in ["app1", "app2"] {
        assert_eq!(lab.lines(h, "/srv/reloads.log"), 1);
    }
    assert_eq!(lab.lines("app1", "/srv/once.log"), 1);
}

fn next_release(lab: &Lab, v1: &str, v2: &str) {
    // db1 (wave 0) fails: the app hosts (wave 1), which wait for it, are not applied at all,
    // exit 3.
    lab.sh("db1", "touch /srv/db-fail");
    let stopped = lab.infra(&["apply", "lab", "--yes", "--var", "app.ref=v2"]);
    stopped.assert_code(3);
    assert!(
        stopped.stdout.contains(
            "app1 failed at its wave:\n    not applied: it waits for db1 (`after:`), which failed or was not applied"
        ),
        "{}",
        stopped.stdout
    );
    assert!(!stopped.stderr.contains("app1: [1/"), "{}", stopped.stderr);
    for h in ["app1", "app2"] {
        assert_eq!(lab.current(h), v1);
        lab.sh(h, &format!("test ! -e /srv/app/releases/{v2}"));
    }
    lab.sh("db1", "rm /srv/db-fail");

    // v2, one commit later: the plan says so; both hosts switch, batch by batch.
    let plan = lab.infra(&["plan", "lab", "--var", "app.ref=v2"]);
    plan.assert_code(0);
    let line = format!("release {} -> {} (v2, 1 commit)", short(v1), short(v2));
    assert_eq!(plan.stdout.matches(&line).count(), 2, "{}", plan.stdout);
    let saved = lab.site.path().join("v2.plan").display().to_string();
    lab.infra(&["plan", "lab", "--var", "app.ref=v2", "--out", &saved])
        .assert_code(0);
    // misc1 (wave 0) fails, but nobody waits for it: the app hosts are applied and roll,
    // and the run says misc1 failed (exit 3).
    lab.sh("misc1", "touch /srv/misc-fail");
    let partial = lab.infra(&["apply", "lab", "--yes", "--var", "app.ref=v2"]);
    partial.assert_code(3);
    assert!(
        partial.stdout.contains("misc1 failed at command gate"),
        "{}",
        partial.stdout
    );
    assert!(
        !partial.stdout.contains("app1 failed"),
        "{}",
        partial.stdout
    );
    lab.sh("misc1", "rm /srv/misc-fail");
    // The saved plan's release steps were made against v1 being live: refused now.
    let stale = lab.infra(&["apply", &saved, "--yes", "--var", "app.ref=v2"]);
    stale.assert_code(1);
    assert!(
        stale
            .stderr
            .contains("the saved plan is stale: app1, app2 changed since it was made"),
        "{}",
        stale.stderr
    );
    for h in ["app1", "app2"] {
        assert_eq!(lab.current(h), v2);
    }
    assert_eq!(lab.sh("app1", "cat /srv/once.log"), "v1\nv2");
}

fn failing_health_check(lab: &Lab, v2: &str, v3: &str) {
    // v3 fails its health check on app1 (batch 1): app1 is switched back to v2 and reloaded,
    // app2 (batch 2) is not touched, exit 3.
    let bad = lab.infra(&["apply", "lab", "--yes", "--var", "app.ref=v3"]);
    bad.assert_code(3);
    assert!(
        bad.stderr.contains("app1: health FAILED: exit status 1"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr
            .contains(&format!("app1: switched back to release {}", short(v2))),
        "{}",
        bad.stderr
    );
    assert!(!bad.stderr.contains("app2: release"), "{}", bad.stderr);
    assert!(
        bad.stdout.contains("app1 failed at the health check"),
        "{}",
        bad.stdout
    );
    assert_eq!(lab.current("app1"), v2);
    assert_eq!(lab.current("app2"), v2);
    assert_eq!(lab.sh("app1", "cat /srv/reloads.log"), "v1\nv2\nv3\nv2");
    assert_eq!(lab.sh("app2", "cat /srv/reloads.log"), "v1\nv2");
    // Built on both (the build is not the switch), once commands ran once, on app1.
    assert_eq!(
        lab.sh("app2", &format!("cat /srv/app/releases/{v3}/built.txt")),
        "v3"
    );
    assert_eq!(lab.sh("app1", "cat /srv/once.log"), "v1\nv2\nv3");
    assert_eq!(lab.lines("app2", "/srv/once.log"), 0);
}

fn failing_once_commands(lab: &Lab, v2: &str) {
    // v4's once commands fail (after both hosts built it): nothing is switched, exit 3.
    let bad = lab.infra(&["apply", "lab", "--yes", "--var", "app.ref=v4"]);
    bad.assert_code(3);
    assert!(
        bad.stderr
            .contains("app1: once commands FAILED: nothing was switched"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stdout.contains("app1 failed at the once commands"),
        "{}",
        bad.stdout
    );
    assert!(!bad.stderr.contains(": release "), "{}", bad.stderr);
    for h in ["app1", "app2"] {
        assert_eq!(lab.current(h), v2);
        assert_eq!(lab.sh(h, "tail -n 1 /srv/reloads.log"), "v2");
    }
    assert_eq!(lab.sh("app1", "cat /srv/once.log"), "v1\nv2\nv3\nv4");
}

fn roll_back(lab: &Lab, v1: &str, v2: &str) {
    // A rollback to a release a host does not keep is refused, naming the host; nothing moves.
    let refused = lab.infra(&["rollback", "lab", "--to", "0000000", "--yes"]);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("host app1 keeps no built release 0000000"),
        "{}",
        refused.stderr
    );
    assert_eq!(lab.current("app1"), v2);

    // Without --yes and without a terminal to ask on: refused after showing the moves.
    let asked = lab.infra(&["rollback", "lab", "--to", short(v1)]);
    asked.assert_code(1);
    assert!(
        asked
            .stderr
            .contains("refusing to roll back without confirmation"),
        "{}",
        asked.stderr
    );
    assert!(
        asked.stderr.contains("pass --yes to roll back"),
        "{}",
        asked.stderr
    );
    assert_eq!(lab.current("app1"), v2);

    // rollback --to v1: both hosts back on v1, reloaded, health checked; migrations warned.
    let back = lab.infra(&["rollback", "lab", "--to", short(v1), "--yes"]);
    back.assert_code(0);
    assert!(
        back.stdout
            .contains(&format!("app2: release {} -> {}", short(v2), short(v1))),
        "{}",
        back.stdout
    );
    assert!(
        back.stdout.contains("Database migrations are not reversed"),
        "{}",
        back.stdout
    );
    for h in ["app1", "app2"] {
        assert_eq!(lab.current(h), v1);
        assert!(
            back.stderr.contains(&format!("{h}: health ok")),
            "{}",
            back.stderr
        );
    }
    assert_eq!(lab.sh("app2", "tail -n 1 /srv/reloads.log"), "v1");
}

fn list(lab: &Lab, v1: &str, v2: &str, v3: &str) {
    // releases: each host's current commit and what it keeps, with when each was switched to.
    let list = lab.infra(&["releases", "lab"]);
    list.assert_code(0);
    assert!(
        list.stdout
            .contains(&format!("app1 (role app, /srv/app): current {}", short(v1))),
        "{}",
        list.stdout
    );
    for c in [v1, v2, v3] {
        // Kept on both hosts.
        assert!(
            list.stdout.matches(short(c)).count() >= 2,
            "{}",
            list.stdout
        );
    }
    let json = lab.infra(&["releases", "lab", "--json"]);
    json.assert_code(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["hosts"][1]["host"], "app2");
    assert_eq!(value["hosts"][1]["current"], v1);
}
