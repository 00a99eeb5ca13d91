//! The facts and apply scripts run for real by `sh` on a temp dir: plan, apply, converge,
//! and a failing check that puts the previous file back.

use infra_core::desired::{DesiredHost, RoleState};
use infra_core::diagnostic::SourceMap;
use infra_core::facts;
use infra_core::model::{Command, Dir, Link, Mode};
use infra_core::plan::{files_to_diff, plan_host, HostPlan, Step};
use infra_core::render::{Origin, RenderedFile};
use infra_core::script::{apply_script, parse_report, Report, StepStatus};
use infra_core::secrets::Secrets;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command as Process;

fn whoami() -> (String, String) {
    let out = |flag: &str| {
        let o = Process::new("id").arg(flag).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    (out("-un"), out("-gn"))
}

fn file(root: &Path, name: &str, content: &str, check: Option<String>) -> RenderedFile {
    let (user, group) = whoami();
    RenderedFile {
        dest: root.join(name).to_str().unwrap().to_string(),
        digest: infra_core::state::sha256(content.as_bytes()),
        sha256: infra_core::state::sha256(content.as_bytes()),
        content: content.as_bytes().to_vec(),
        owner: user,
        group,
        mode: Mode(0o640),
        role: "r".into(),
        origin: Origin::Template("t.j2".into()),
        notify: Vec::new(),
        check,
        unsafe_parent: false,
        once: false,
        secrets: Vec::new(),
        missing_secrets: Vec::new(),
        entry: SourceMap::default().location(Path::new("roles/r.yaml"), 1, 1, 1),
    }
}

fn desired(root: &Path, b_content: &str) -> DesiredHost {
    let (user, group) = whoami();
    let p = |n: &str| root.join(n).to_str().unwrap().to_string();
    DesiredHost {
        name: "local".into(),
        release: None,
        apt_sources: Vec::new(),
        volumes: Vec::new(),
        packages: Vec::new(),
        roles: vec![RoleState {
            role: "r".into(),
            dirs: vec![Dir {
                path: p("d").parse().unwrap(),
                owner: user.parse().unwrap(),
                group: group.parse().unwrap(),
                mode: Some(Mode(0o750)),
            }],
            files: vec![
                file(root, "d/a.conf", "A\n", None),
                file(
                    root,
                    "d/b.conf",
                    b_content,
                    Some(format!("grep -qx B {}", p("d/b.conf"))),
                ),
            ],
            links: vec![Link {
                path: p("l").parse().unwrap(),
                target: p("d/a.conf").parse().unwrap(),
            }],
            commands: vec![Command {
                name: "marker".parse().unwrap(),
                run: format!("touch {}", p("marker")),
                unless: None,
                creates: Some(p("marker")),
                once: false,
            }],
            ..RoleState::default()
        }],
    }
}

fn sh(script: &str, state: &Path) -> (i32, String) {
    use std::io::Write;
    // As the wrapper runs it: from a file (the apply script runs itself again under its lock).
    let file = state.with_extension("sh");
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(script.as_bytes()))
        .unwrap();
    let out = Process::new("sh")
        .arg(&file)
        .env("INFRA_STATE_DIR", state)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn plan(d: &DesiredHost, state: &Path) -> HostPlan {
    let (code, out) = sh(&facts::script(d), state);
    assert_eq!(code, 0, "{out}");
    let f = facts::parse(&out).unwrap();
    let mut current = BTreeMap::new();
    for dest in files_to_diff(d, &f) {
        current.insert(dest.clone(), std::fs::read(&dest).unwrap());
    }
    plan_host(d, &f, &current, &Secrets::default())
}

fn reports(out: &str) -> Vec<Report> {
    out.lines().filter_map(parse_report).collect()
}

#[test]
fn plan_apply_converge_then_a_failed_check_restores_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&root).unwrap();

    let d = desired(&root, "B\n");
    let p = plan(&d, &state);
    let kinds: Vec<String> = p
        .steps
        .iter()
        .map(|s| s.address().split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["dir", "file", "file", "link", "command"]);

    let (code, out) = sh(&apply_script(&p, &d).unwrap(), &state);
    assert_eq!(code, 0, "{out}");
    let r = reports(&out);
    assert_eq!(
        r.iter()
            .filter(|r| matches!(
                r,
                Report::Step {
                    status: StepStatus::Changed,
                    ..
                }
            ))
            .count(),
        5,
        "{out}"
    );
    assert_eq!(r.last(), Some(&Report::Done));
    assert_eq!(
        std::fs::read_to_string(root.join("d/b.conf")).unwrap(),
        "B\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(root.join("d/a.conf"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o640
    );
    assert_eq!(
        std::fs::metadata(root.join("d"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::read_link(root.join("l")).unwrap(),
        root.join("d/a.conf")
    );
    assert!(root.join("marker").exists());
    // No temp files left next to the destinations.
    let names: Vec<String> = std::fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Converged: nothing to do.
    let again = plan(&d, &state);
    assert!(again.steps.is_empty(), "{:?}", again.steps);

    // A change whose check fails: the previous file is put back and the step reported failed.
    let bad = desired(&root, "X\n");
    let p = plan(&bad, &state);
    assert_eq!(p.steps.len(), 1);
    let Step::File(infra_core::kinds::file::Step {
        diff: Some(diff), ..
    }) = &p.steps[0]
    else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(diff, "--- current\n+++ rendered\n@@ -1 +1 @@\n-B\n+X\n");
    let (code, out) = sh(&apply_script(&p, &bad).unwrap(), &state);
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        reports(&out).first(),
        Some(&Report::Step {
            index: 0,
            status: StepStatus::Failed
        })
    );
    assert_eq!(
        std::fs::read_to_string(root.join("d/b.conf")).unwrap(),
        "B\n"
    );
    assert!(plan(&d, &state).steps.is_empty());
}

#[test]
fn a_saved_plan_is_refused_when_the_site_renders_differently() {
    let tmp = tempfile::tempdir().unwrap();
    let d = desired(tmp.path(), "B\n");
    let p = plan(&d, &tmp.path().join("state"));
    let changed = desired(tmp.path(), "C\n");
    let err = apply_script(&p, &changed).unwrap_err();
    assert!(
        err.to_string()
            .contains("renders differently from when the plan was made"),
        "{err}"
    );
}

/// Files written through both paths (the shell's printf for text, base64 for bytes that are
/// not UTF-8 or hold NUL), with modes umask gives (0600, 0644) and modes it cannot (0755,
/// 2750), with quotes, backslashes, `$`, no final newline, and another owner's group.
#[test]
fn every_kind_of_content_and_mode_lands_exactly() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&root).unwrap();
    let (user, _) = whoami();
    // A group that is not the script's own, when the machine has one (CI runs as root).
    let other_group = ["daemon", "bin", "sys", "adm"]
        .into_iter()
        .find(|g| {
            Process::new("getent")
                .args(["group", g])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .filter(|_| user == "root");
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "text",
            b"it's \"quoted\" $HOME `x` \\n \\\\\nno final newline".to_vec(),
            0o644,
        ),
        ("secret", b"password: s3cr'et\n".to_vec(), 0o600),
        ("script", b"#!/bin/sh\necho hi\n".to_vec(), 0o755),
        ("binary", vec![0, 159, 146, 150, 255, b'\n', 0], 0o644),
        ("latin1", b"caf\xe9\n".to_vec(), 0o640),
        ("setgid", b"x\n".to_vec(), 0o2750),
        ("empty", Vec::new(), 0o644),
    ];
    let mut files = Vec::new();
    for (name, content, mode) in &cases {
        let mut f = file(&root, name, "", None);
        f.content = content.clone();
        f.digest = infra_core::state::sha256(content);
        f.sha256 = f.digest.clone();
        f.mode = Mode(*mode);
        if *name == "secret" {
            if let Some(g) = other_group {
                f.group = g.to_string();
            }
        }
        files.push(f);
    }
    let d = DesiredHost {
        name: "local".into(),
        release: None,
        apt_sources: Vec::new(),
        volumes: Vec::new(),
        packages: Vec::new(),
        roles: vec![RoleState {
            role: "r".into(),
            files,
            ..RoleState::default()
        }],
    };
    let p = plan(&d, &state);
    assert_eq!(p.steps.len(), cases.len());
    let script = apply_script(&p, &d).unwrap();
    // Text is written by the shell itself; only what is not text goes through base64.
    assert_eq!(script.matches("base64 -d").count(), 2, "{script}");
    let (code, out) = sh(&script, &state);
    assert_eq!(code, 0, "{out}");
    for (name, content, mode) in &cases {
        let path = root.join(name);
        assert_eq!(&std::fs::read(&path).unwrap(), content, "{name}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{name}");
    }
    if let Some(g) = other_group {
        let gid = std::fs::metadata(root.join("secret")).unwrap().gid();
        let out = Process::new("getent").args(["group", g]).output().unwrap();
        let want: u32 = String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(gid, want, "the secret's group");
    }
    assert!(plan(&d, &state).steps.is_empty(), "converged");
}

/// The facts script reads packages from dpkg's database; it must agree with dpkg-query on
/// this machine, for an essential package (`Essential:` comes before `Status:`), ordinary
/// ones, and a package that is not there.
#[test]
fn installed_packages_agree_with_dpkg_query() {
    let tmp = tempfile::tempdir().unwrap();
    let names = [
        "bash",
        "dpkg",
        "coreutils",
        "libc6",
        "openssh-client",
        "infra-no-such-package",
    ];
    let d = DesiredHost {
        name: "local".into(),
        release: None,
        apt_sources: Vec::new(),
        volumes: Vec::new(),
        packages: names.iter().map(|s| s.to_string()).collect(),
        roles: Vec::new(),
    };
    let (code, out) = sh(&facts::script(&d), tmp.path());
    assert_eq!(code, 0, "{out}");
    let f = facts::parse(&out).unwrap();
    for name in names {
        let q = Process::new("dpkg-query")
            .args(["-W", "-f=${db:Status-Abbrev}", name])
            .output()
            .expect("dpkg-query (the tests run on Debian)");
        let installed = String::from_utf8_lossy(&q.stdout).starts_with("ii");
        assert_eq!(
            f.package.installed.contains(name),
            installed,
            "{name}: {out}"
        );
    }
    assert!(
        f.package.installed.contains("bash") && f.package.installed.contains("dpkg"),
        "{out}"
    );
}

/// A host with just `files` in one role.
fn with_files(files: Vec<RenderedFile>) -> DesiredHost {
    DesiredHost {
        name: "local".into(),
        release: None,
        apt_sources: Vec::new(),
        volumes: Vec::new(),
        packages: Vec::new(),
        roles: vec![RoleState {
            role: "r".into(),
            files,
            ..RoleState::default()
        }],
    }
}

#[test]
fn a_failed_write_reports_its_own_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    std::fs::create_dir_all(&root).unwrap();
    let mut f = file(&root, "a.conf", "A\n", None);
    f.owner = "no-such-user-of-infra".into();
    let d = with_files(vec![f]);
    let (code, out) = sh(&apply_script(&plan(&d, &state), &d).unwrap(), &state);
    assert_eq!(code, 1, "{out}");
    // The cleanup after the failing command once overwrote its status: "(exit status 0)".
    assert!(out.contains("@@infra\tout\t(exit status 1)\n"), "{out}");
    assert!(!root.join("a.conf").exists());
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert!(left.is_empty(), "temp file left behind: {left:?}");
}

#[test]
fn a_link_at_the_destination_is_refused_and_its_target_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("victim"), "precious\n").unwrap();
    std::os::unix::fs::symlink(root.join("victim"), root.join("a.conf")).unwrap();
    let d = with_files(vec![file(&root, "a.conf", "A\n", None)]);
    let (code, out) = sh(&apply_script(&plan(&d, &state), &d).unwrap(), &state);
    assert_eq!(code, 1, "{out}");
    let dest = root.join("a.conf").display().to_string();
    assert!(
        out.contains(&format!("@@infra\tout\t{dest} is a symbolic link (to ")),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("victim")).unwrap(),
        "precious\n"
    );
    assert!(root.join("a.conf").is_symlink());
    assert!(!state.join("runs").read_dir().unwrap().any(|_| true));
}

#[test]
fn pending_done_forgets_exactly_the_service_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let d = with_files(vec![file(&root, "a.conf", "A\n", None)]);
    let script = apply_script(&plan(&d, &state), &d).unwrap();
    // The prelude (lock, helpers), then the journal's helper alone.
    let prelude = &script[..script.find("# step 0").unwrap()];
    std::fs::write(
        state.join("pending"),
        "restart a.c\nreload abc\nrestart a.c.d\nreload x-a.c\nrestart a.c\n",
    )
    .unwrap();
    let (code, out) = sh(
        &format!("{prelude}pending_done 'a.c'\nrm -rf \"$R\"\nprintf '@@infra\\tdone\\n'\n"),
        &state,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(state.join("pending")).unwrap(),
        "reload abc\nrestart a.c.d\nreload x-a.c\n"
    );
}
