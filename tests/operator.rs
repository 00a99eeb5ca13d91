//! The operator's conveniences (issue 15): shell completions and man pages generated from the
//! command-line definition, a quiet end on a closed stdout, `roles list` across every
//! environment, `show PLANFILE` printing a saved plan as it was printed, and `plan --markdown`
//! (a pull-request summary) keeping secrets out. Plans run on a `connection: local` host in a
//! private mount namespace (no network).

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

/// Subcommands (with `roles list`) and long flags, as `--help` lists them.
fn commands_and_flags() -> (Vec<Vec<String>>, BTreeSet<String>) {
    let site = repo();
    let mut flags = BTreeSet::new();
    let mut commands = vec![vec![]];
    let mut todo = vec![vec![]];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = infra(&site, &args);
        help.assert_code(0);
        let mut in_commands = false;
        for line in help.stdout.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                in_commands = line == "Commands:";
                continue;
            }
            let word = line.split_whitespace().next().unwrap_or("");
            if in_commands && line.starts_with("  ") && !word.is_empty() && word != "help" {
                let mut sub = path.clone();
                sub.push(word.to_string());
                commands.push(sub.clone());
                todo.push(sub);
            }
            for token in line.split_whitespace() {
                let flag = token.trim_end_matches(',');
                if flag.starts_with("--")
                    && flag.len() > 2
                    && flag[2..]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-')
                {
                    flags.insert(flag.to_string());
                }
            }
        }
    }
    (commands, flags)
}

#[test]
fn completions_name_every_subcommand_and_flag() {
    let (commands, flags) = commands_and_flags();
    assert!(
        commands.len() > 12,
        "too few subcommands found: {commands:?}"
    );
    assert!(flags.contains("--detailed-exitcode") && flags.contains("--markdown"));
    for shell in ["bash", "zsh", "fish"] {
        let r = infra(&repo(), &["completions", shell]);
        r.assert_code(0);
        for c in commands.iter().filter_map(|c| c.last()) {
            assert!(
                r.stdout.contains(c.as_str()),
                "{shell} completion lacks subcommand {c}"
            );
        }
        for f in &flags {
            let bare = f.trim_start_matches('-');
            assert!(r.stdout.contains(bare), "{shell} completion lacks flag {f}");
        }
    }
    // bash accepts the script it is given.
    let r = infra(&repo(), &["completions", "bash"]);
    let ok = Command::new("bash")
        .args(["-n", "-c", &r.stdout])
        .status()
        .expect("run bash");
    assert!(ok.success(), "bash -n rejects the completion script");
}

#[test]
fn man_pages_render() {
    let man = Command::new("man").arg("--version").output();
    assert!(
        man.is_ok_and(|o| o.status.success()),
        "`man` is missing: install man-db (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    infra(&repo(), &["man", "--out-dir", out.to_str().unwrap()]).assert_code(0);
    let (commands, _) = commands_and_flags();
    for c in &commands {
        let page = if c.is_empty() {
            "infra.1".to_string()
        } else {
            format!("infra-{}.1", c.join("-"))
        };
        let path = out.join(&page);
        assert!(path.is_file(), "no man page {page}");
        let shown = Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(&path)
            .env("MANWIDTH", "100")
            .output()
            .expect("run man");
        assert!(shown.status.success(), "man -l {page} failed");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("SYNOPSIS"), "{page} has no synopsis:\n{text}");
    }
    // The top page, printed, is the same as the one written.
    let printed = infra(&repo(), &["man"]);
    printed.assert_code(0);
    assert_eq!(
        printed.stdout,
        std::fs::read_to_string(out.join("infra.1")).unwrap()
    );
    assert!(printed.stdout.contains("Exit codes"));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        vec!["roles", "list", "production"],
        vec!["roles", "list"],
        vec!["hosts", "production"],
        vec!["man"],
        vec!["completions", "zsh"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
            .arg("-C")
            .arg(repo())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run infra");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {:?}", out.status);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "{args:?} wrote to stderr"
        );
    }
}

/// Every environment's `roles list` output, in `format`.
fn per_env(format: &str, by_role: bool) -> Vec<(String, String)> {
    let site = repo();
    let mut envs: Vec<String> = std::fs::read_dir(site.join("inventories"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yaml").map(String::from)
        })
        .collect();
    envs.sort();
    envs.into_iter()
        .map(|env| {
            let mut args = vec!["roles", "list", env.as_str(), "--out", format];
            if by_role {
                args.push("--by-role");
            }
            let r = infra(&site, &args);
            r.assert_code(0);
            (env.clone(), r.stdout.clone())
        })
        .collect()
}

#[test]
fn roles_list_without_env_is_every_environment() {
    for by_role in [false, true] {
        for (format, indent) in [("text", "    "), ("yaml", "  ")] {
            let mut want = String::new();
            for (env, text) in per_env(format, by_role) {
                want.push_str(&format!("{env}:\n"));
                for line in text.lines() {
                    want.push_str(&format!("{indent}{line}\n"));
                }
            }
            let mut args = vec!["roles", "list", "--out", format];
            if by_role {
                args.push("--by-role");
            }
            let all = infra(&repo(), &args);
            all.assert_code(0);
            assert_eq!(all.stdout, want, "{format} by_role={by_role}");
        }
        let mut args = vec!["roles", "list", "--out", "json"];
        if by_role {
            args.push("--by-role");
        }
        let all: serde_json::Value = serde_json::from_str(&infra(&repo(), &args).stdout).unwrap();
        let envs = per_env("json", by_role);
        assert_eq!(all.as_object().unwrap().len(), envs.len());
        for (env, text) in envs {
            let one: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(all[&env], one, "{env}");
        }
    }
}

const ROLE: &str = "\
name: web
secrets: [token]
dirs:
  - {path: /srv/app, mode: \"0750\"}
files:
  - template: app/config.ini.j2
    dest: /srv/app/config.ini
    mode: \"0640\"
  - template: app/secret.ini.j2
    dest: /srv/app/secret.ini
    mode: \"0600\"
  - source: app/motd
    dest: /srv/app/motd
commands:
  - {name: seed, run: \"echo seeded > /srv/app/seeded\", creates: /srv/app/seeded}
";

const CANARY: &str = "c4n4ry-s3cr3t";

fn site() -> SiteDir {
    let dir = SiteDir::new();
    dir.write("roles/web.yaml", ROLE)
        .write(
            "templates/app/config.ini.j2",
            "name = {{ host.name }}\nlines = ```\n",
        )
        .write(
            "templates/app/secret.ini.j2",
            "token = {{ secrets.token }}\n",
        )
        .write("templates/app/motd", "managed by infra\n")
        .write("inventories/lab.yaml", LOCAL_INVENTORY);
    dir
}

fn run(ns: &MountNamespace, dir: &Path, args: &[&str]) -> Run {
    ns.infra_env(dir, args, &[("INFRA_SECRET_TOKEN", CANARY)])
}

#[test]
fn show_prints_a_saved_plan_as_plan_did() {
    let ns = MountNamespace::new();
    let dir = site();
    let file = dir.path().join("lab.plan");
    let file = file.to_str().unwrap();
    for format in [None, Some("--json"), Some("--markdown")] {
        let mut args = vec!["plan", "lab", "--out", file];
        args.extend(format);
        let planned = run(&ns, dir.path(), &args);
        planned.assert_code(0);
        let mut args = vec!["show", file];
        args.extend(format);
        let shown = infra(dir.path(), &args);
        shown.assert_code(0);
        assert_eq!(shown.stdout, planned.stdout, "show {format:?}");
        assert!(
            !shown.stdout.contains(CANARY),
            "{format:?} shows the secret"
        );
    }
    let inventory = dir.path().join("inventories/lab.yaml");
    let bad = infra(dir.path(), &["show", inventory.to_str().unwrap()]);
    bad.assert_code(1);
    assert!(
        bad.stderr
            .contains("is not a plan saved by `infra plan --out`"),
        "{}",
        bad.stderr
    );
    let missing = infra(dir.path(), &["show", "nope.plan"]);
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("nope.plan is not a file"),
        "{}",
        missing.stderr
    );
}

#[test]
fn markdown_summary_folds_hosts_and_redacts_secrets() {
    let ns = MountNamespace::new();
    let dir = site();
    let md = run(
        &ns,
        dir.path(),
        &["plan", "lab", "--markdown", "--detailed-exitcode"],
    );
    md.assert_code(2);
    let text = &md.stdout;
    assert!(text.starts_with("### `infra plan lab`\n"), "{text}");
    assert!(text.contains("Hosts: 3 files"), "{text}");
    assert!(
        text.contains("<details><summary><code>self</code>: "),
        "{text}"
    );
    assert!(text.contains("/srv/app/secret.ini"), "{text}");
    assert!(
        !text.contains(CANARY),
        "the summary shows the secret:\n{text}"
    );
    // The template's own ``` does not end the block early: the fence is longer.
    assert!(text.contains("````diff\n"), "{text}");
    run(&ns, dir.path(), &["apply", "lab", "--yes"]).assert_code(0);
    let clean = run(&ns, dir.path(), &["plan", "lab", "--markdown"]);
    clean.assert_code(0);
    assert!(clean.stdout.contains("No changes."), "{}", clean.stdout);
    assert!(!clean.stdout.contains("<details>"), "{}", clean.stdout);
}
