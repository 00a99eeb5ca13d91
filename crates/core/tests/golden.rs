//! Golden tests: pin every host's facts script, plans and apply scripts, byte for byte.
//!
//! For each host of `inventories/*.yaml` (rendered from this repository's roles/ and
//! templates/, every secret set to `canary-<name>`), `tests/golden/<env>/<host>/` holds:
//!
//! - `facts.sh`: the facts script;
//! - `facts-fresh.txt`, `facts-converged.txt`, `facts-drift.txt`: RECORDED facts, in the raw
//!   text the facts script prints on a host (an empty Debian machine; a host that already
//!   matches the desired state; one that drifted), and `current/<path>`: the present content
//!   of the drifted files the plan diffs. These are inputs, only written by the generator;
//! - `plan-fresh.json`, `plan-converged.json`, `plan-drift.json`: the plans computed from them
//!   (the converged one must have no step);
//! - `apply-fresh.sh`, `apply-drift.sh`: the apply scripts of the fresh and drift plans.
//!
//! `UPDATE_GOLDEN=1 cargo test -p infra-core --test golden` regenerates every fixture. Only the
//! functions in "the engine's API" below call infra_core: they are what a refactor adapts.

use infra_core::desired::{DesiredHost, DIR_MODE};
use infra_core::environment::Environment;
use infra_core::facts::Facts;
use infra_core::model::ProviderKind;
use infra_core::plan::HostPlan;
use infra_core::render::{Renderer, SharedContext};
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::validate;
use infra_protocol::CloudFacts;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---- The engine's API: one small function per stage. ----

/// Every host of `env_name` as the binary renders it (src/run.rs `prepare`: a cloud with nothing
/// in it yet for aws inventories), with the site's secrets all set to `canary-<name>`.
fn desired_hosts(site: &Site, env_name: &str) -> (Vec<DesiredHost>, Secrets) {
    let mut env = Environment::resolve(site, env_name, &[]).expect("inventory resolves");
    if env.inventory.provider.value.kind == ProviderKind::Aws {
        env.set_cloud_facts(&CloudFacts::default());
    }
    let mut diags = validate::check_roles(site);
    diags.extend(validate::check_inventory(&env));
    let (renderer, d) = Renderer::new(site);
    diags.extend(d);
    let names: BTreeSet<String> = site
        .roles
        .values()
        .flat_map(|r| r.value.secrets.iter().map(|s| s.value.clone()))
        .collect();
    let secrets = Secrets::from_values(names.iter().map(|n| (n.clone(), canary(n))).collect());
    let shared = SharedContext::new(&env);
    let mut hosts = Vec::new();
    for h in env.hosts.values() {
        let mut out = renderer.render_host(&env, &shared, h, &secrets);
        diags.extend(std::mem::take(&mut out.diagnostics));
        hosts.push(DesiredHost::from_render(&env, h, out));
    }
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{env_name}: {errors:#?}");
    (hosts, secrets)
}

fn host_name(d: &DesiredHost) -> &str {
    &d.name
}

fn facts_script(d: &DesiredHost) -> String {
    infra_core::facts::script(d)
}

fn parse_facts(text: &str) -> Facts {
    infra_core::facts::parse(text).expect("recorded facts parse")
}

/// What the binary plans for a machine the cloud has not created yet (src/run.rs `plan_hosts`).
fn new_machine_facts() -> Facts {
    Facts::fresh()
}

/// The plan, reading the files it wants to diff from `current` (as src/engine.rs `plan_one`,
/// which leaves out a file it cannot read), and its JSON as `infra plan --out` saves it.
fn plan(
    d: &DesiredHost,
    facts: &Facts,
    current: &BTreeMap<String, Vec<u8>>,
    secrets: &Secrets,
) -> (HostPlan, String) {
    let wanted = infra_core::plan::files_to_diff(d, facts);
    let current: BTreeMap<String, Vec<u8>> = current
        .iter()
        .filter(|(path, _)| wanted.contains(path))
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect();
    let plan = infra_core::plan::plan_host(d, facts, &current, secrets);
    let json = serde_json::to_string_pretty(&plan).expect("plan serializes") + "\n";
    (plan, json)
}

fn apply_script(plan: &HostPlan, d: &DesiredHost) -> String {
    infra_core::script::apply_script(plan, d).expect("apply script")
}

/// What the facts generator needs to know of the desired state.
fn resources(d: &DesiredHost) -> Resources {
    let meta = |path: &str, owner: &str, group: &str, mode: u32| Managed {
        path: path.to_string(),
        owner: owner.to_string(),
        group: group.to_string(),
        mode,
    };
    Resources {
        volumes: d
            .volumes
            .iter()
            .map(|v| (v.mount.clone(), v.device.clone()))
            .collect(),
        files: (d.files())
            .map(|f| File {
                meta: meta(&f.dest, &f.owner, &f.group, f.mode.0),
                content: f.content.clone(),
                sensitive: !f.secrets.is_empty(),
            })
            .collect(),
        dirs: (d.dirs())
            .map(|x| meta(&x.path, &x.owner, &x.group, x.mode.unwrap_or(DIR_MODE).0))
            .collect(),
        links: (d.roles.iter().flat_map(|r| &r.links))
            .map(|l| (l.path.to_string(), l.target.to_string()))
            .collect(),
        packages: d.packages.clone(),
        users: (d.roles.iter().flat_map(|r| &r.users))
            .map(|u| u.name.to_string())
            .collect(),
        groups: (d.roles.iter().flat_map(|r| &r.groups))
            .map(|g| g.name.to_string())
            .collect(),
        services: d.services().map(|s| (s.name.clone(), s.enable)).collect(),
        commands: d.commands().count(),
        apt: (d.apt_sources.iter())
            .map(|a| {
                let text = a.sources_text();
                (
                    a.name.clone(),
                    a.sources_path(),
                    hex(&Sha256::digest(text.as_bytes())),
                    a.key_path(),
                    a.key_sha256.clone(),
                    a.uri.clone(),
                    a.suite.clone(),
                )
            })
            .collect(),
    }
}

// ---- The test. ----

fn canary(secret: &str) -> String {
    format!("canary-{secret}")
}

/// The recorded facts of one host.
struct Recorded {
    fresh: String,
    converged: String,
    drift: String,
    /// Destination -> present content, for the drifted files.
    current: BTreeMap<String, Vec<u8>>,
}

#[test]
fn golden() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let (site, diags) = Site::load(&repo).expect("the repository's site loads");
    assert!(diags.is_empty(), "{diags:#?}");
    let on_disk = read_tree(&golden);
    let mut fixtures: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for env in site.inventories.keys() {
        let (hosts, secrets) = desired_hosts(&site, env);
        for d in &hosts {
            let dir = format!("{env}/{}", host_name(d));
            let recorded = if update {
                generate(&resources(d), init_of(env))
            } else {
                recorded(&on_disk, &dir)
            };
            fixtures.extend(recorded_files(&dir, &recorded));
            for (name, bytes) in outputs(d, &secrets, &recorded) {
                fixtures.insert(format!("{dir}/{name}"), bytes);
            }
        }
    }
    if update {
        write_tree(&golden, &fixtures);
    } else {
        compare(&on_disk, &fixtures);
    }
}

/// The engine's outputs for one host, from its recorded facts.
fn outputs(d: &DesiredHost, secrets: &Secrets, r: &Recorded) -> Vec<(&'static str, Vec<u8>)> {
    let host = host_name(d);
    let (fresh, fresh_json) = plan(d, &parse_facts(&r.fresh), &r.current, secrets);
    let (new_machine, _) = plan(d, &new_machine_facts(), &BTreeMap::new(), secrets);
    assert_eq!(
        without_fingerprint(&fresh),
        without_fingerprint(&new_machine),
        "{host}: facts-fresh.txt plans differently from the binary's new machine"
    );
    let (converged, converged_json) = plan(d, &parse_facts(&r.converged), &r.current, secrets);
    let steps = serde_json::to_value(&converged).unwrap()["steps"].clone();
    assert_eq!(
        steps,
        serde_json::json!([]),
        "{host}: the converged facts still plan steps"
    );
    let (drift, drift_json) = plan(d, &parse_facts(&r.drift), &r.current, secrets);
    vec![
        ("facts.sh", facts_script(d).into_bytes()),
        ("plan-fresh.json", fresh_json.into_bytes()),
        ("plan-converged.json", converged_json.into_bytes()),
        ("plan-drift.json", drift_json.into_bytes()),
        ("apply-fresh.sh", apply_script(&fresh, d).into_bytes()),
        ("apply-drift.sh", apply_script(&drift, d).into_bytes()),
    ]
}

fn without_fingerprint(plan: &HostPlan) -> serde_json::Value {
    let mut v = serde_json::to_value(plan).unwrap();
    v["facts_fingerprint"] = serde_json::Value::Null;
    v
}

// ---- Fixture files. ----

const CURRENT: &str = "current";

fn recorded_files(dir: &str, r: &Recorded) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (
            format!("{dir}/facts-fresh.txt"),
            r.fresh.clone().into_bytes(),
        ),
        (
            format!("{dir}/facts-converged.txt"),
            r.converged.clone().into_bytes(),
        ),
        (
            format!("{dir}/facts-drift.txt"),
            r.drift.clone().into_bytes(),
        ),
    ];
    for (dest, content) in &r.current {
        out.push((format!("{dir}/{CURRENT}{dest}"), content.clone()));
    }
    out
}

/// The recorded facts of `dir`, read from the fixtures.
fn recorded(on_disk: &BTreeMap<String, Vec<u8>>, dir: &str) -> Recorded {
    let text = |name: &str| {
        let bytes = on_disk.get(&format!("{dir}/{name}")).unwrap_or_else(|| {
            panic!("no recorded {dir}/{name}: a new host? Run with UPDATE_GOLDEN=1 to record it")
        });
        String::from_utf8(bytes.clone()).expect("facts are text")
    };
    let prefix = format!("{dir}/{CURRENT}/");
    Recorded {
        fresh: text("facts-fresh.txt"),
        converged: text("facts-converged.txt"),
        drift: text("facts-drift.txt"),
        current: (on_disk.iter())
            .filter_map(|(p, c)| Some((format!("/{}", p.strip_prefix(&prefix)?), c.clone())))
            .collect(),
    }
}

/// Every file under `root`, by path relative to it (with `/`).
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap();
                out.insert(rel.replace('\\', "/"), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    if root.exists() {
        std::fs::remove_dir_all(root).unwrap();
    }
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    eprintln!(
        "wrote {} golden files under {}",
        files.len(),
        root.display()
    );
}

/// Fails with a unified diff of the first fixture that differs, and the list of the others.
fn compare(on_disk: &BTreeMap<String, Vec<u8>>, expected: &BTreeMap<String, Vec<u8>>) {
    let mut differing: Vec<&str> = Vec::new();
    let mut first = None;
    for (name, want) in expected {
        let got = on_disk.get(name);
        if got != Some(want) {
            differing.push(name);
            if first.is_none() {
                let old = got.map(|g| String::from_utf8_lossy(g).into_owned());
                first = Some(diff(name, old.as_deref(), &String::from_utf8_lossy(want)));
            }
        }
    }
    let stale: Vec<&str> = (on_disk.keys())
        .filter(|k| !expected.contains_key(*k))
        .map(String::as_str)
        .collect();
    if differing.is_empty() && stale.is_empty() {
        return;
    }
    panic!(
        "{}\n{} golden fixture(s) differ: {}\n{} fixture(s) no longer produced: {}\n\
         If this change of behaviour is deliberate, re-run with UPDATE_GOLDEN=1 \
         (cargo test -p infra-core --test golden) and review the fixtures' git diff.",
        first.unwrap_or_default(),
        differing.len(),
        list(&differing),
        stale.len(),
        list(&stale)
    );
}

/// The first ten names, and how many more.
fn list(names: &[&str]) -> String {
    let mut s = names[..names.len().min(10)].join(", ");
    if names.len() > 10 {
        s.push_str(&format!(" and {} more", names.len() - 10));
    }
    s
}

/// `--- golden/NAME` (on disk) / `+++ now/NAME` (computed), at most 200 lines.
fn diff(name: &str, old: Option<&str>, new: &str) -> String {
    let Some(old) = old else {
        return format!("tests/golden/{name} is missing");
    };
    let text = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("golden/{name}"), &format!("now/{name}"))
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut shown = lines[..lines.len().min(200)].join("\n");
    if lines.len() > 200 {
        shown.push_str(&format!("\n... ({} more diff lines)", lines.len() - 200));
    }
    shown
}

// ---- The facts generator (UPDATE_GOLDEN=1 only). ----

/// A managed path with its owner, group and mode.
#[derive(Clone)]
struct Managed {
    path: String,
    owner: String,
    group: String,
    mode: u32,
}

struct File {
    meta: Managed,
    content: Vec<u8>,
    sensitive: bool,
}

/// The desired state, as far as the facts tell it.
struct Resources {
    /// (mount point, device).
    volumes: Vec<(String, String)>,
    files: Vec<File>,
    dirs: Vec<Managed>,
    /// (path, target).
    links: Vec<(String, String)>,
    packages: Vec<String>,
    users: Vec<String>,
    groups: Vec<String>,
    /// (name, enable).
    services: Vec<(String, bool)>,
    commands: usize,
    /// Apt sources: (name, .sources path, its sha256, key path, its sha256, uri, suite).
    apt: Vec<AptFacts>,
}

type AptFacts = (String, String, String, String, String, String, String);

/// The hosts of the sandbox inventories are containers without systemd.
fn init_of(env: &str) -> &'static str {
    if env.contains("sandbox") {
        "sysv"
    } else {
        "systemd"
    }
}

/// What drifted on a host: indexes into the [`Resources`] lists; none on a converged host.
#[derive(Default)]
struct Drift {
    /// A text file edited by hand (its current content is recorded, for the diff).
    edited: Option<usize>,
    /// A file with the wrong owner and mode.
    meta: Option<usize>,
    /// A file holding a secret, with other content (shown as hashes only).
    secret_edited: Option<usize>,
    /// Installed once, removed since (`deinstall ok config-files`).
    removed_package: Option<usize>,
    missing_user: Option<usize>,
    missing_dir: Option<usize>,
    moved_link: Option<usize>,
    stopped_service: Option<usize>,
    /// A disabled service found enabled and running.
    started_disabled: Option<usize>,
    /// A `restart` journaled by a run that did not finish.
    pending: Option<usize>,
    undone_command: Option<usize>,
}

/// A deterministic few drifts: the first or last candidate of each kind.
fn drift_of(r: &Resources) -> Drift {
    let text =
        |f: &File| !f.sensitive && !f.content.is_empty() && std::str::from_utf8(&f.content).is_ok();
    let edited = r.files.iter().position(text);
    let enabled = |want: bool| {
        let found = r
            .services
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.1 == want);
        found.map(|(i, _)| i)
    };
    Drift {
        edited,
        meta: (0..r.files.len()).rev().find(|i| Some(*i) != edited),
        secret_edited: r.files.iter().position(|f| f.sensitive),
        removed_package: r.packages.len().checked_sub(1),
        missing_user: r.users.len().checked_sub(1),
        missing_dir: (!r.dirs.is_empty()).then_some(0),
        moved_link: (!r.links.is_empty()).then_some(0),
        stopped_service: enabled(true).next(),
        started_disabled: enabled(false).next(),
        pending: enabled(true).next_back(),
        undone_command: r.commands.checked_sub(1),
    }
}

/// The present content of file `i`.
fn content_now(r: &Resources, drift: &Drift, i: usize) -> Vec<u8> {
    let f = &r.files[i];
    if drift.edited == Some(i) {
        let text = String::from_utf8_lossy(&f.content);
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(lines.len().min(1), "# edited by hand on the host");
        // A secret's old value left in the file: the plan's diff redacts it.
        let old = format!("# password = {}", canary(OLD_SECRET));
        lines.push(&old);
        return (lines.join("\n") + "\n").into_bytes();
    }
    if drift.secret_edited == Some(i) {
        return [f.content.as_slice(), b"# rotated since\n"].concat();
    }
    f.content.clone()
}

/// A secret of the site (roles app and sessions) whose old value the edited file still holds:
/// every plan gets all the site's secrets, so the diff shows `<secret: redis_password>`.
const OLD_SECRET: &str = "redis_password";

/// The three recorded facts of a host, and the current content of its drifted files.
fn generate(r: &Resources, init: &str) -> Recorded {
    let drift = drift_of(r);
    let current = (drift.edited)
        .map(|i| (r.files[i].meta.path.clone(), content_now(r, &drift, i)))
        .into_iter()
        .collect();
    Recorded {
        fresh: fresh_facts(r),
        converged: facts_text(r, init, &Drift::default()),
        drift: facts_text(r, init, &drift),
        current,
    }
}

/// An empty Debian machine (systemd, nothing managed): the facts script prints only `init`,
/// every service as absent and every command as not done.
fn fresh_facts(r: &Resources) -> String {
    let mut s = String::from("init\tsystemd\n");
    for (name, _) in &r.services {
        s.push_str(&format!("svc\t{name}\t0\t0\t0\n"));
    }
    for i in 0..r.commands {
        s.push_str(&format!("cmd\t{i}\t0\n"));
    }
    s
}

/// What the facts script prints, in its order, on a host that matches `r` but for `drift`.
fn facts_text(r: &Resources, init: &str, drift: &Drift) -> String {
    let mut s = format!("init\t{init}\n");
    for (mount, device) in &r.volumes {
        s.push_str(&format!("mount\t{mount}\t{device}\n"));
    }
    for (name, sources, sources_hash, key, key_hash, uri, suite) in &r.apt {
        s.push_str(&format!("aptfile\t{sources}\naptfile\t{key}\n"));
        s.push_str(&format!(
            "aptfield\t{sources}:URIs: {uri}\naptfield\t{sources}:Suites: {suite}\n"
        ));
        s.push_str(&format!(
            "apthash\t{sources_hash}\t{sources}\napthash\t{key_hash}\t{key}\n"
        ));
        s.push_str(&format!("aptlists\t{name}\n"));
    }
    s.push_str(&stat_lines(r, drift));
    for (i, f) in r.files.iter().enumerate() {
        let hash = hex(&Sha256::digest(content_now(r, drift, i)));
        s.push_str(&format!("hash\t{hash}\t{}\n", f.meta.path));
    }
    // dpkg's status file lists packages by name.
    let mut packages: Vec<(&String, &str)> = (r.packages.iter().enumerate())
        .map(|(i, p)| match drift.removed_package == Some(i) {
            true => (p, "deinstall ok config-files"),
            false => (p, "install ok installed"),
        })
        .collect();
    packages.sort();
    for (p, status) in packages {
        s.push_str(&format!("pkg\t{p}\t{status}\n"));
    }
    for (i, u) in r.users.iter().enumerate() {
        if drift.missing_user != Some(i) {
            s.push_str(&format!("user\t{u}\n"));
        }
    }
    for g in &r.groups {
        s.push_str(&format!("group\t{g}\n"));
    }
    s.push_str(&service_lines(r, drift));
    for i in 0..r.commands {
        let done = u8::from(drift.undone_command != Some(i));
        s.push_str(&format!("cmd\t{i}\t{done}\n"));
    }
    for (i, (path, target)) in r.links.iter().enumerate() {
        let now = match drift.moved_link == Some(i) {
            true => format!("{target}.old"),
            false => target.clone(),
        };
        s.push_str(&format!("link\t{path}\t{now}\n"));
    }
    if let Some(i) = drift.pending {
        s.push_str(&format!("pending\trestart\t{}\n", r.services[i].0));
    }
    s
}

/// The one `stat` of files, dirs and links, in that order; a missing path prints nothing.
fn stat_lines(r: &Resources, drift: &Drift) -> String {
    let line = |m: &Managed, kind: &str| {
        format!(
            "stat\t{:o}\t{}\t{}\t{kind}\t{}\n",
            m.mode, m.owner, m.group, m.path
        )
    };
    let mut s = String::new();
    for (i, f) in r.files.iter().enumerate() {
        let kind = match content_now(r, drift, i).is_empty() {
            true => "regular empty file",
            false => "regular file",
        };
        if drift.meta == Some(i) {
            let mode = if f.meta.mode == 0o600 { 0o640 } else { 0o600 };
            let m = Managed {
                owner: "nobody".into(),
                mode,
                ..f.meta.clone()
            };
            s.push_str(&line(&m, kind));
        } else {
            s.push_str(&line(&f.meta, kind));
        }
    }
    for (i, d) in r.dirs.iter().enumerate() {
        if drift.missing_dir != Some(i) {
            s.push_str(&line(d, "directory"));
        }
    }
    for (path, _) in &r.links {
        let m = Managed {
            path: path.clone(),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o777,
        };
        s.push_str(&line(&m, "symbolic link"));
    }
    s
}

/// `svc NAME EXISTS RUNNING ENABLED`: enabled services up, disabled ones down, but for `drift`.
fn service_lines(r: &Resources, drift: &Drift) -> String {
    let mut s = String::new();
    for (i, (name, enable)) in r.services.iter().enumerate() {
        let (mut running, mut enabled) = (*enable, *enable);
        if drift.stopped_service == Some(i) {
            running = false;
        }
        if drift.started_disabled == Some(i) {
            (running, enabled) = (true, true);
        }
        s.push_str(&format!(
            "svc\t{name}\t1\t{}\t{}\n",
            u8::from(running),
            u8::from(enabled)
        ));
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
