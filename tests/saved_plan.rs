//! Saved plans: `plan --out FILE` writes the file 0600 (never through a symlink), and
//! `apply FILE` refuses a file whose steps were tampered with (a command step added, a file's
//! check altered, a step removed, a content hash changed) or whose site changed since, changing
//! nothing; the untouched file applies. On a `connection: local` host inside a private mount
//! namespace (tmpfs over /srv and /var/lib), so no network is needed.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const ROLE: &str = "\
name: web
dirs:
  - {path: /srv/app, mode: \"0750\"}
files:
  - template: app/config.ini.j2
    dest: /srv/app/config.ini
    mode: \"0640\"
    check: \"grep -q '^name = ' /srv/app/config.ini\"
  - source: app/motd
    dest: /srv/app/motd
commands:
  - {name: seed, run: \"echo seeded > /srv/app/seeded\", creates: /srv/app/seeded}
";

fn site() -> SiteDir {
    let dir = SiteDir::new();
    dir.write("roles/web.yaml", ROLE)
        .write("templates/app/config.ini.j2", "name = {{ host.name }}\n")
        .write("templates/app/motd", "managed by infra\n")
        .write("inventories/lab.yaml", LOCAL_INVENTORY);
    dir
}

/// The steps of the only host of a saved plan.
fn steps(plan: &mut Value) -> &mut Vec<Value> {
    plan["hosts"][0]["steps"].as_array_mut().expect("steps")
}

fn file_step<'a>(plan: &'a mut Value, dest: &str) -> &'a mut Value {
    steps(plan)
        .iter_mut()
        .find(|s| s["kind"] == "file" && s["dest"] == dest)
        .expect("a file step")
}

/// `apply` of `plan` (written to a file) is refused with `message` and `detail`, and the host
/// is untouched.
fn refused(ns: &MountNamespace, dir: &Path, plan: &Value, message: &str, detail: &str) {
    let path = dir.join("tampered.json");
    std::fs::write(&path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
    let run = ns.infra(dir, &["apply", path.to_str().unwrap(), "--yes"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(message) && run.stderr.contains(detail),
        "expected `{message}` and `{detail}`:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    // The environment lock's file on its host (this one) is the only thing a refused apply
    // leaves: it is taken before the plan is computed again.
    assert_eq!(
        ns.sh("ls -A /srv; find /var/lib -mindepth 1 ! -path /var/lib/infra ! -path '/var/lib/infra/locks*'"),
        "",
        "a refused apply changed the host"
    );
}

#[test]
fn a_tampered_saved_plan_is_refused_and_the_untouched_one_applies() {
    let dir = site();
    let ns = MountNamespace::new();
    let saved = dir.path().join("plan.json");
    let saved_arg = saved.to_str().unwrap();

    // Written 0600, even over an existing world-readable file; never through a symlink.
    std::fs::write(&saved, "old").unwrap();
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plan = ns.infra(dir.path(), &["plan", "lab", "--out", saved_arg]);
    plan.assert_code(0);
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the saved plan's mode is {mode:o}");
    assert!(
        plan.stdout
            .contains("checked by: grep -q '^name = ' /srv/app/config.ini"),
        "the file's check is shown in the plan:\n{}",
        plan.stdout
    );
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(dir.path().join("target.json"), &link).unwrap();
    let through = ns.infra(
        dir.path(),
        &["plan", "lab", "--out", link.to_str().unwrap()],
    );
    through.assert_code(1);
    assert!(
        through.stderr.contains("symbolic link"),
        "{}",
        through.stderr
    );
    assert!(!dir.path().join("target.json").exists());

    let original: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert!(original["inputs"]["site_digest"].as_str().unwrap().len() == 64);
    let mut json = original.clone();
    assert_eq!(
        file_step(&mut json, "/srv/app/config.ini")["check"],
        "grep -q '^name = ' /srv/app/config.ini",
        "the check is in the JSON"
    );
    let altered = "the saved plan differs from the plan computed now";

    let mut p = original.clone();
    steps(&mut p)
        .push(json!({"kind": "command", "role": "web", "name": "evil", "run": "touch /srv/evil"}));
    refused(&ns, dir.path(), &p, altered, "self: `command evil` added");

    let mut p = original.clone();
    file_step(&mut p, "/srv/app/config.ini")["check"] = json!("true");
    refused(
        &ns,
        dir.path(),
        &p,
        altered,
        "`file /srv/app/config.ini` altered: check: \"grep -q '^name = ' /srv/app/config.ini\" -> \"true\"",
    );

    let mut p = original.clone();
    let last = steps(&mut p).pop().unwrap();
    assert_eq!(last["kind"], "command");
    refused(&ns, dir.path(), &p, altered, "self: `command seed` removed");

    let mut p = original.clone();
    file_step(&mut p, "/srv/app/motd")["after"]["sha256"] = json!("0".repeat(64));
    refused(
        &ns,
        dir.path(),
        &p,
        altered,
        "`file /srv/app/motd` altered: after.sha256:",
    );

    // Hand edits that are not well-formed are errors, not panics.
    let mut p = original.clone();
    file_step(&mut p, "/srv/app/motd")["after"]["sha256"] = json!("é");
    refused(&ns, dir.path(), &p, altered, "after.sha256:");
    let mut p = original.clone();
    file_step(&mut p, "/srv/app/motd")["after"]["mode"] = json!(1e300);
    refused(
        &ns,
        dir.path(),
        &p,
        "is not a plan saved by `infra plan --out`",
        "",
    );

    let mut p = original.clone();
    p["inputs"]["site_digest"] = json!("0".repeat(64));
    refused(
        &ns,
        dir.path(),
        &p,
        "the site changed since the plan was saved",
        "",
    );

    site_changes_are_refused(&ns, dir.path(), &original);

    // The file as written applies: the steps computed now run.
    let apply = ns.infra(dir.path(), &["apply", saved_arg, "--yes"]);
    apply.assert_code(0);
    assert_eq!(
        ns.sh("cat /srv/app/motd /srv/app/seeded"),
        "managed by infra\nseeded\n"
    );
    assert_eq!(ns.sh("ls -A /srv"), "app\n");
}

/// The site changed since the plan was saved: the same file is refused.
fn site_changes_are_refused(ns: &MountNamespace, dir: &Path, original: &Value) {
    // The site itself changed: the same saved file is refused, naming the step.
    edit(dir, "templates/app/motd", "managed", "hijacked");
    refused(
        ns,
        dir,
        original,
        "the site changed since the plan was saved",
        "`file /srv/app/motd` altered",
    );
    edit(dir, "templates/app/motd", "hijacked", "managed");
    // A variable no template uses changes no step, but it is an input: refused as well.
    edit(
        dir,
        "inventories/lab.yaml",
        "self: {roles: [web]}",
        "self: {roles: [web], vars: {unused: 1}}",
    );
    refused(
        ns,
        dir,
        original,
        "the site changed since the plan was saved",
        "",
    );
    edit(
        dir,
        "inventories/lab.yaml",
        "self: {roles: [web], vars: {unused: 1}}",
        "self: {roles: [web]}",
    );
}
