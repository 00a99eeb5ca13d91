//! Rolling out: `after`, `batch`, `health` and `once` as a site writes them, checked with
//! file and line; the waves and once-hosts of small sites; a `once:` file that moves between
//! two local "hosts" (directories) through the real facts and apply scripts; the health script
//! against a real HTTP server on 127.0.0.1.

use infra_core::desired::DesiredHost;
use infra_core::diagnostic::Diagnostic;
use infra_core::environment::{once_host, Environment};
use infra_core::facts;
use infra_core::model::{Batch, Health, HealthHttp};
use infra_core::plan::{files_to_diff, plan_host, Action, HostPlan, Step};
use infra_core::render::{Renderer, SharedContext};
use infra_core::rollout::{batches, health_script, waves};
use infra_core::script::apply_script;
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::validate;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command as Process;

/// Writes `files` (path, text) under a fresh temp dir.
fn site(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    dir
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Every diagnostic of the site: loading, roles, and each inventory.
fn all_diagnostics(dir: &Path) -> Vec<Diagnostic> {
    let (site, mut diags) = Site::load(dir).unwrap();
    diags.extend(validate::check_roles(&site));
    for name in site.inventories.keys() {
        let env = Environment::resolve(&site, name, &[]).unwrap();
        diags.extend(validate::check_inventory(&env));
    }
    diags
}

/// `file:line message (hint)` of each error, sorted.
fn errors(diags: &[Diagnostic]) -> Vec<String> {
    let mut out: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let at = d
                .location
                .as_ref()
                .map(|l| format!("{}:{}", l.file.display(), l.line))
                .unwrap_or_default();
            format!("{at} {} ({})", d.message, d.hint.as_deref().unwrap_or(""))
        })
        .collect();
    out.sort();
    out
}

const INVENTORY_HEAD: &str =
    "environment: p\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\n";

fn inventory(hosts: &str) -> String {
    format!("{INVENTORY_HEAD}hosts:\n{hosts}")
}

#[test]
fn after_and_health_are_checked_with_file_and_line() {
    let dir = site(&[
        ("roles/postgres.yaml", "name: postgres\n"),
        (
            "roles/app.yaml",
            "name: app\nafter:\n  - postgress\n  - app\nhealth:\n  http: {port: 80, path: /h}\n  command: \"true\"\n",
        ),
        ("roles/web.yaml", "name: web\nhealth: {tries: 3}\n"),
        (
            "roles/api.yaml",
            "name: api\nhealth: {http: {port: 8000, path: health, host: \"a b\"}}\n",
        ),
        ("inventories/p.yaml", &inventory("  h1: {roles: [app, postgres], address: 10.0.0.1}\n")),
    ]);
    let e = errors(&all_diagnostics(dir.path()));
    assert_eq!(
        e,
        vec![
            "roles/api.yaml:2 health.http.host `a b` of role `api` is not a host name (the Host header names the virtual host, e.g. `host: cts.example.org`)",
            "roles/api.yaml:2 health.http.path `health` of role `api` is not a URL path (write the path as in the URL, starting with `/` and without spaces, e.g. `path: /health/`)",
            "roles/app.yaml:3 unknown role `postgress` in `after` of role `app` (did you mean `postgres`? (`after` names roles whose hosts are applied first))",
            "roles/app.yaml:4 role `app` is `after` itself (`after` names other roles, whose hosts are applied before this role's: remove it)",
            "roles/app.yaml:6 health of role `app` has both `http` and `command` (keep one: `http: {port: 80, path: /health/}` asks the host's web server, `command:` runs a shell command as root (exit 0 = healthy))",
            "roles/web.yaml:2 health of role `web` has neither `http` nor `command` (add `http: {port: 80, path: /health/}` (curl on the host, status 200 expected) or `command: \"...\"` (exit 0 = healthy))",
        ]
    );
}

#[test]
fn batch_and_health_numbers_are_refused_at_the_value() {
    let cases = [
        ("batch: 0\n", "batch 0 is not a number of hosts"),
        ("batch: -2\n", "batch -2 is not a number of hosts"),
        ("batch: 1.5\n", "batch 1.5 is not a whole number of hosts"),
        (
            "batch: \"150%\"\n",
            "batch `150%` is neither a number of hosts nor a percentage from 1% to 100%",
        ),
        ("batch: \"0%\"\n", "batch `0%` is neither"),
        ("batch: \"2\"\n", "batch `2` is neither"),
        ("batch: half\n", "batch `half` is neither"),
        (
            "health: {command: x, tries: 0}\n",
            "health.tries 0 is out of range: write a number from 1 to 600",
        ),
        (
            "health: {command: x, interval: 61}\n",
            "health.interval (seconds) 61 is out of range: write a number from 1 to 60",
        ),
        (
            "health: {http: {port: 0, path: /}}\n",
            "health.http.port 0 is out of range",
        ),
        (
            "health: {http: {port: 80, path: /, status: 99}}\n",
            "health.http.status 99 is out of range",
        ),
    ];
    for (yaml, expected) in cases {
        let text = format!("name: r\n{yaml}");
        let dir = site(&[("roles/r.yaml", &text)]);
        let (_, diags) = Site::load(dir.path()).unwrap();
        assert_eq!(diags.len(), 1, "{yaml}: {diags:#?}");
        let d = &diags[0];
        assert!(d.message.contains(expected), "{yaml}: {}", d.message);
        let loc = d.location.as_ref().unwrap();
        assert_eq!(
            (loc.file.to_str().unwrap(), loc.line),
            ("roles/r.yaml", 2),
            "{yaml}"
        );
    }
    for (yaml, batch) in [
        ("batch: 2\n", Batch::Count(2)),
        ("batch: \"50%\"\n", Batch::Percent(50)),
        ("batch: 100%\n", Batch::Percent(100)),
    ] {
        let text = format!("name: r\n{yaml}");
        let dir = site(&[("roles/r.yaml", &text)]);
        let (site, diags) = Site::load(dir.path()).unwrap();
        assert!(diags.is_empty(), "{yaml}: {diags:#?}");
        assert_eq!(site.roles["r"].value.batch.as_ref().unwrap().value, batch);
    }
    let dir = site(&[(
        "roles/r.yaml",
        "name: r\nhealth: {http: {port: 80, path: /}}\n",
    )]);
    let (site, _) = Site::load(dir.path()).unwrap();
    let h = &site.roles["r"].value.health.as_ref().unwrap().value;
    let http = h.http.as_ref().unwrap();
    assert_eq!(
        (h.tries, h.interval, http.status, http.host.as_deref()),
        (10, 1, 200, None)
    );
}

/// db, queue; app after both (through an included role); lb after app's included role; misc
/// after nothing.
const LAYERED: &[(&str, &str)] = &[
    ("roles/postgres.yaml", "name: postgres\n"),
    ("roles/queue.yaml", "name: queue\n"),
    (
        "roles/appbase.yaml",
        "name: appbase\nafter: [postgres, queue]\n",
    ),
    ("roles/app.yaml", "name: app\nincludes: [appbase]\n"),
    ("roles/lb.yaml", "name: lb\nafter: [appbase]\n"),
    ("roles/misc.yaml", "name: misc\n"),
];

fn layered(hosts: &str) -> (tempfile::TempDir, Site) {
    let inv = inventory(hosts);
    let mut files = LAYERED.to_vec();
    files.push(("inventories/p.yaml", &inv));
    let dir = site(&files);
    let (site, diags) = Site::load(dir.path()).unwrap();
    assert!(diags.is_empty(), "{diags:#?}");
    (dir, site)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn waves_follow_after_through_includes_and_only_selected_hosts() {
    let (_dir, site) = layered(
        "  web2: {roles: [app], address: 10.0.0.2}\n  web1: {roles: [app], address: 10.0.0.1}\n  db1: {roles: [postgres], address: 10.0.0.3}\n  q1: {roles: [queue], address: 10.0.0.4}\n  lb1: {roles: [lb], address: 10.0.0.5}\n  m1: {roles: [misc], address: 10.0.0.6}\n",
    );
    let env = Environment::resolve(&site, "p", &[]).unwrap();
    assert!(errors(&validate::check_inventory(&env)).is_empty());
    let all: Vec<String> = env.hosts.keys().cloned().collect();
    assert_eq!(
        waves(&env, &all).unwrap(),
        vec![
            strings(&["db1", "m1", "q1"]),
            strings(&["web1", "web2"]),
            strings(&["lb1"]),
        ]
    );
    // Hosts not selected are not waited for; the order given does not matter.
    assert_eq!(
        waves(&env, &strings(&["lb1", "web2", "q1"])).unwrap(),
        vec![strings(&["q1"]), strings(&["web2"]), strings(&["lb1"])]
    );
    assert_eq!(
        waves(&env, &strings(&["lb1", "db1"])).unwrap(),
        vec![strings(&["db1", "lb1"])]
    );
    assert!(waves(&env, &[]).unwrap().is_empty());

    // One host holding both ends waits for nobody: it applies its roles in order.
    let (_dir, site) = layered("  solo: {roles: [postgres, app, lb], address: 10.0.0.1}\n");
    let env = Environment::resolve(&site, "p", &[]).unwrap();
    assert_eq!(
        waves(&env, &strings(&["solo"])).unwrap(),
        vec![strings(&["solo"])]
    );
    assert!(errors(&validate::check_inventory(&env)).is_empty());
}

/// A small deterministic pseudo-random source (an LCG): the same draws on every run.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The files of a random layered site: roles `r0..rN`, each after some of the roles before
/// it, and hosts holding random roles.
fn random_site(draw: &mut Draw) -> Vec<(String, String)> {
    let roles = 2 + draw.below(6) as usize;
    let mut files: Vec<(String, String)> = Vec::new();
    for i in 0..roles {
        let names: Vec<String> = (0..i)
            .filter(|_| draw.below(3) == 0)
            .map(|j| format!("r{j}"))
            .collect();
        files.push((
            format!("roles/r{i}.yaml"),
            format!("name: r{i}\nafter: [{}]\n", names.join(", ")),
        ));
    }
    let mut inv = String::new();
    for h in 0..1 + draw.below(9) {
        let mut mine: Vec<String> = (0..roles)
            .filter(|_| draw.below(3) == 0)
            .map(|r| format!("r{r}"))
            .collect();
        if mine.is_empty() {
            mine.push(format!("r{}", draw.below(roles as u64)));
        }
        inv.push_str(&format!(
            "  h{}: {{roles: [{}], address: 10.0.0.{}}}\n",
            draw.below(100),
            mine.join(", "),
            h + 1
        ));
    }
    files.push(("inventories/p.yaml".into(), inventory(&inv)));
    files
}

/// Whether host `h` holds `role`, includes counted.
fn holds(env: &Environment, h: &str, role: &str) -> bool {
    env.hosts[h].view.all_roles.iter().any(|r| r == role)
}

/// A cycle `waves` reports must be one: each link real, each leading to the next, the last
/// back to the first.
fn check_cycle(env: &Environment, selected: &[String], cycle: &infra_core::rollout::WaveCycle) {
    let links = &cycle.links;
    assert!(!links.is_empty());
    for (i, l) in links.iter().enumerate() {
        assert!(
            holds(env, &l.host, &l.role) && holds(env, &l.other, &l.after),
            "{l:?}"
        );
        let after = &env.site.roles[&l.role].value.after;
        assert!(after.iter().any(|a| a.value == l.after), "{l:?}");
        assert_eq!(l.other, links[(i + 1) % links.len()].host, "{links:?}");
        assert!(selected.contains(&l.other) && l.other != l.host);
    }
}

/// Every selected host in exactly one wave, sorted by name within it, and exactly one wave
/// above the highest of the hosts it waits for (0 when none).
fn check_waves(env: &Environment, selected: &[String], out: &[Vec<String>]) {
    let mut seen: Vec<String> = out.concat();
    seen.sort();
    assert_eq!(seen, selected, "every selected host exactly once");
    for w in out {
        assert!(w.windows(2).all(|p| p[0] < p[1]), "sorted by name: {w:?}");
    }
    let wave_of: BTreeMap<&str, usize> = out
        .iter()
        .enumerate()
        .flat_map(|(k, w)| w.iter().map(move |h| (h.as_str(), k)))
        .collect();
    for h in selected {
        let waits_for = |g: &&String| {
            *g != h
                && env.hosts[h.as_str()].view.all_roles.iter().any(|r| {
                    let after = &env.site.roles[r].value.after;
                    after.iter().any(|a| holds(env, g, &a.value))
                })
        };
        let highest = selected
            .iter()
            .filter(waits_for)
            .map(|g| wave_of[g.as_str()])
            .max();
        assert_eq!(
            wave_of[h.as_str()],
            highest.map_or(0, |m| m + 1),
            "{h} in {out:?}"
        );
    }
}

/// Random layered sites (roles in order, hosts holding random roles, a random selection):
/// `waves` is checked against its definition, and any cycle it reports against the site.
#[test]
fn waves_hold_every_host_once_and_each_after_the_hosts_it_waits_for() {
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let (mut orders, mut cycles) = (0, 0);
    for _ in 0..40 {
        let files = random_site(&mut draw);
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let dir = site(&refs);
        let (site, diags) = Site::load(dir.path()).unwrap();
        if !diags.is_empty() {
            // Two hosts drew the same name: a duplicate key, skip this draw.
            continue;
        }
        let env = Environment::resolve(&site, "p", &[]).unwrap();
        let selected: Vec<String> = env
            .hosts
            .keys()
            .filter(|_| draw.below(4) != 0)
            .cloned()
            .collect();
        // Roles in order can still put hosts in a circle (one host holding r1 and r4, another
        // r2, with r2 after r1 and r4 after r2).
        match waves(&env, &selected) {
            Ok(out) => {
                check_waves(&env, &selected, &out);
                orders += 1;
            }
            Err(cycle) => {
                check_cycle(&env, &selected, &cycle);
                cycles += 1;
            }
        }
    }
    assert!(
        orders >= 10 && cycles >= 1,
        "{orders} orders, {cycles} cycles checked"
    );
}

#[test]
fn hosts_after_each_other_in_a_circle_are_an_error_at_the_after_entry() {
    let dir = site(&[
        ("roles/a.yaml", "name: a\nafter: [b]\n"),
        ("roles/b.yaml", "name: b\ndescription: x\nafter:\n  - c\n"),
        ("roles/c.yaml", "name: c\n"),
        (
            "inventories/p.yaml",
            &inventory("  h1: {roles: [a], address: 10.0.0.1}\n  h2: {roles: [b], address: 10.0.0.2}\n  h3: {roles: [c, a], address: 10.0.0.3}\n"),
        ),
    ]);
    let diags = all_diagnostics(dir.path());
    assert_eq!(
        errors(&diags),
        vec!["roles/b.yaml:4 environment `p`: `after:` orders hosts in a cycle: h2 (role b after c) -> h3 (role a after b) -> h2 (no order applies every host after the hosts it waits for: remove `c` from the `after` of role `b`, or move the roles so that no host holds both ends of the chain)"]
    );
    let (site, _) = Site::load(dir.path()).unwrap();
    let env = Environment::resolve(&site, "p", &[]).unwrap();
    let cycle = waves(&env, &strings(&["h2", "h3"])).unwrap_err();
    assert_eq!(
        cycle.to_string(),
        "`after:` orders hosts in a cycle: h2 (role b after c) -> h3 (role a after b) -> h2"
    );
    // Without h3 nothing circles.
    assert_eq!(
        waves(&env, &strings(&["h1", "h2"])).unwrap(),
        vec![strings(&["h2"]), strings(&["h1"])]
    );
}

#[test]
fn the_once_host_is_the_first_holder_by_name_among_all_hosts() {
    let (_dir, site) = layered(
        "  web2: {roles: [app], address: 10.0.0.2}\n  web1: {roles: [lb], address: 10.0.0.1}\n  a9: {roles: [postgres], address: 10.0.0.3}\n",
    );
    let env = Environment::resolve(&site, "p", &[]).unwrap();
    // Through the include: web2 holds appbase.
    assert_eq!(once_host(&env, "appbase"), Some("web2"));
    assert_eq!(once_host(&env, "app"), Some("web2"));
    assert_eq!(once_host(&env, "lb"), Some("web1"));
    assert_eq!(once_host(&env, "queue"), None);
    // Batches are cut from a role's hosts in the order given.
    assert_eq!(
        batches(
            &strings(&["web1", "web2", "web3"]),
            Some(Batch::Percent(50))
        ),
        vec![strings(&["web1", "web2"]), strings(&["web3"])]
    );
}

// ---- once: files and commands, through the real facts and apply scripts ----

/// A role `beat` whose supervisor program file and a marker command are `once`, beside a file
/// every host has; `supervisor` (enable: false here, so the local run touches no service)
/// is notified by both files.
const BEAT: &[(&str, &str)] = &[
    (
        "roles/beat.yaml",
        "name: beat\nservices:\n  - {name: infra-test-supervisor, enable: false}\nfiles:\n  - {template: beat.conf.j2, dest: \"{{ vars.root }}/beat.conf\", once: true, notify: [infra-test-supervisor]}\n  - {template: beat.conf.j2, dest: \"{{ vars.root }}/common.conf\"}\ncommands:\n  - {name: migrate, run: \"echo ran >> $ROOT/ran\", creates: /nonexistent/x, once: true}\n",
    ),
    ("templates/beat.conf.j2", "[program:beat]\nhost={{ host.name }}\n"),
];

fn beat_site(dir: &Path, hosts: &[(&str, &Path)]) -> Site {
    let mut inv = String::from(INVENTORY_HEAD);
    inv.push_str("hosts:\n");
    for (name, root) in hosts {
        inv.push_str(&format!(
            "  {name}: {{roles: [beat], address: 10.0.0.1, vars: {{root: \"{}\"}}}}\n",
            root.display()
        ));
    }
    let mut files = BEAT.to_vec();
    files.push(("inventories/p.yaml", &inv));
    write(dir, &files);
    let (site, diags) = Site::load(dir).unwrap();
    assert!(diags.is_empty(), "{diags:#?}");
    site
}

fn desired_hosts(site: &Site) -> BTreeMap<String, DesiredHost> {
    let env = Environment::resolve(site, "p", &[]).unwrap();
    let mut diags = validate::check_roles(site);
    diags.extend(validate::check_inventory(&env));
    assert!(errors(&diags).is_empty(), "{diags:#?}");
    let (renderer, d) = Renderer::new(site);
    assert!(d.is_empty(), "{d:?}");
    let shared = SharedContext::new(&env);
    env.hosts
        .values()
        .map(|h| {
            let out = renderer.render_host(&env, &shared, h, &Secrets::default());
            assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
            (h.view.name.clone(), DesiredHost::new(&env, h, out.files))
        })
        .collect()
}

fn sh(script: &str, state: &Path, root: &Path) -> (i32, String) {
    let file = state.with_extension("sh");
    std::fs::write(&file, script).unwrap();
    let out = Process::new("sh")
        .arg(&file)
        .env("INFRA_STATE_DIR", state)
        .env("ROOT", root)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn plan(d: &DesiredHost, state: &Path, root: &Path) -> HostPlan {
    let (code, out) = sh(&facts::script(d), state, root);
    assert_eq!(code, 0, "{out}");
    let f = facts::parse(&out).unwrap();
    let mut current = BTreeMap::new();
    for dest in files_to_diff(d, &f) {
        current.insert(dest.clone(), std::fs::read(&dest).unwrap());
    }
    plan_host(d, &f, &current, &Secrets::default())
}

fn addresses(p: &HostPlan) -> Vec<String> {
    p.steps.iter().map(Step::address).collect()
}

/// Plans and applies `d` in `root` (its state dir beside it); returns the plan.
fn converge(d: &DesiredHost, root: &Path) -> HostPlan {
    let state = root.with_extension("state");
    let p = plan(d, &state, root);
    let (code, out) = sh(&apply_script(&p, d).unwrap(), &state, root);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("@@infra\tdone\n"), "{out}");
    assert!(plan(d, &state, root)
        .steps
        .iter()
        .all(|s| matches!(s, Step::Command(_))));
    p
}

fn ran(root: &Path) -> String {
    std::fs::read_to_string(root.join("ran")).unwrap_or_default()
}

#[test]
fn a_once_file_lives_on_the_once_host_and_moves_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (r1, r2) = (tmp.path().join("one"), tmp.path().join("two"));
    for r in [&r1, &r2] {
        std::fs::create_dir_all(r).unwrap();
    }
    let site_dir = tmp.path().join("site");

    // app1 and app2: app1 is the once-host.
    let site = beat_site(&site_dir, &[("app1", &r1), ("app2", &r2)]);
    let d = desired_hosts(&site);
    let p1 = converge(&d["app1"], &r1);
    let p2 = converge(&d["app2"], &r2);
    let dest1 = format!("{}/beat.conf", r1.display());
    let dest2 = format!("{}/beat.conf", r2.display());
    assert!(addresses(&p1).contains(&format!("file {dest1}")), "{p1:#?}");
    assert!(addresses(&p1).contains(&"command migrate".to_string()));
    assert!(!addresses(&p2)
        .iter()
        .any(|a| a.contains("beat.conf") || a.contains("migrate")));
    assert_eq!(
        std::fs::read_to_string(&dest1).unwrap(),
        "[program:beat]\nhost=app1\n"
    );
    assert!(!Path::new(&dest2).exists());
    assert!(r2.join("common.conf").exists());
    assert_eq!((ran(&r1).as_str(), ran(&r2).as_str()), ("ran\n", ""));

    // app1 leaves the inventory: app2 takes the file and runs the command.
    let site = beat_site(&site_dir, &[("app2", &r2)]);
    let d = desired_hosts(&site);
    converge(&d["app2"], &r2);
    assert_eq!(
        std::fs::read_to_string(&dest2).unwrap(),
        "[program:beat]\nhost=app2\n"
    );
    assert_eq!(ran(&r2), "ran\n");

    // app1 comes back as `a1`, which sorts first: the file moves back to it, and app2's copy
    // is removed (backed up first), its service notified as by a change.
    let site = beat_site(&site_dir, &[("a1", &r1), ("app2", &r2)]);
    let d = desired_hosts(&site);
    assert!(d["app2"].commands().next().is_none());
    let state2 = r2.with_extension("state");
    let p2 = plan(&d["app2"], &state2, &r2);
    assert_eq!(addresses(&p2), vec![format!("file {dest2} (remove)")]);
    let Step::File(f) = &p2.steps[0] else {
        panic!("{p2:#?}")
    };
    assert_eq!(f.action, Action::Delete);
    assert_eq!(f.notify, vec!["infra-test-supervisor".to_string()]);
    let (code, out) = sh(&apply_script(&p2, &d["app2"]).unwrap(), &state2, &r2);
    assert_eq!(code, 0, "{out}");
    assert!(!Path::new(&dest2).exists());
    assert!(r2.join("common.conf").exists());
    assert!(plan(&d["app2"], &state2, &r2).steps.is_empty());
    converge(&d["a1"], &r1);
    assert_eq!(
        std::fs::read_to_string(&dest1).unwrap(),
        "[program:beat]\nhost=a1\n"
    );
    assert_eq!(ran(&r1), "ran\nran\n");
}

#[test]
fn removing_a_once_file_restarts_what_it_notifies() {
    let tmp = tempfile::tempdir().unwrap();
    let site_dir = tmp.path().join("site");
    let site = beat_site(
        &site_dir,
        &[("a1", Path::new("/srv/a")), ("b1", Path::new("/srv/b"))],
    );
    let mut d = desired_hosts(&site);
    let mut b1 = d.remove("b1").unwrap();
    // The service runs here (enabled), and the old once-file is still on the host.
    b1.roles[0].services[0].enable = true;
    let mut f = facts::Facts::default();
    let stat = infra_core::state::PathFact {
        mode: 0o644,
        owner: "root".into(),
        group: "root".into(),
        kind: infra_core::state::PathKind::File,
    };
    f.paths.insert("/srv/b/beat.conf".into(), stat.clone());
    f.paths.insert("/srv/b/common.conf".into(), stat);
    f.file.sha256.insert(
        "/srv/b/common.conf".into(),
        infra_core::state::sha256(b"[program:beat]\nhost=b1\n"),
    );
    let up = infra_core::facts::ServiceFact {
        exists: true,
        running: true,
        enabled: true,
    };
    f.service.states.insert("infra-test-supervisor".into(), up);
    let p = plan_host(&b1, &f, &BTreeMap::new(), &Secrets::default());
    assert_eq!(
        addresses(&p),
        vec![
            "file /srv/b/beat.conf (remove)",
            "service infra-test-supervisor restart",
        ]
    );
    let script = apply_script(&p, &b1).unwrap();
    // The restart is journaled before the file goes, and the file is backed up.
    let journal = script
        .find("pending_add restart 'infra-test-supervisor'")
        .unwrap();
    let backup = script.find("backup 0 \"$f\"").unwrap();
    let rm = script.find("rm -f -- \"$f\"").unwrap();
    assert!(journal < backup && backup < rm, "{script}");
    // Nothing to remove: no step.
    f.paths.remove("/srv/b/beat.conf");
    let p = plan_host(&b1, &f, &BTreeMap::new(), &Secrets::default());
    assert!(p.steps.is_empty(), "{:?}", addresses(&p));
}

// ---- the health script, against a real HTTP server on 127.0.0.1 ----

/// A small HTTP server: `/status/N` answers N; `/flaky/K` answers 503 to its first K requests,
/// then 200; `/host/NAME` answers 200 when the Host header is NAME, else 421. Every request
/// path is appended to `log`.
const SERVER: &str = r#"
import http.server, sys
log, hits = sys.argv[1], {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        parts = self.path.split("?")[0].split("/")
        code = 404
        if parts[1] == "status":
            code = int(parts[2])
        elif parts[1] == "flaky":
            hits[self.path] = hits.get(self.path, 0) + 1
            code = 503 if hits[self.path] <= int(parts[2]) else 200
        elif parts[1] == "host":
            code = 200 if self.headers.get("Host") == parts[2] else 421
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// The server, stopped when dropped.
struct Server {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        use std::io::BufRead;
        let log = dir.join("requests");
        let mut child = Process::new("python3")
            .args(["-c", SERVER])
            .arg(&log)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed to serve HTTP to the health script (apt install python3)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server prints its port");
        Server { child, port, log }
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(port: u16, path: &str, status: u16, host: Option<&str>, tries: u32) -> Health {
    Health {
        http: Some(HealthHttp {
            port,
            path: path.into(),
            status,
            host: host.map(str::to_string),
        }),
        command: None,
        tries,
        interval: 1,
    }
}

/// Runs a health script as the engine does (`sh -c SCRIPT`): exit code, stdout's last line,
/// all of stdout.
fn check(h: &Health) -> (i32, String, String) {
    assert!(
        Process::new("curl").arg("--version").output().is_ok(),
        "curl is needed for the http health check (apt install curl)"
    );
    let out = Process::new("sh")
        .arg("-c")
        .arg(health_script(h))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().to_string();
    (out.status.code().unwrap_or(-1), last, stdout)
}

#[test]
fn the_health_script_asks_a_real_server_and_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let p = srv.port;

    assert_eq!(check(&http(p, "/status/200", 200, None, 1)).0, 0);
    let (code, last, _) = check(&http(p, "/status/204", 204, None, 1));
    assert_eq!((code, last.as_str()), (0, "health ok"));

    // A wrong status, tried twice.
    let (code, last, _) = check(&http(p, "/status/503", 200, None, 2));
    assert_eq!((code, last.as_str()), (1, "health failed: got 503"));
    let (code, last, _) = check(&http(p, "/status/200", 302, None, 1));
    assert_eq!((code, last.as_str()), (1, "health failed: got 200"));

    // Two 503s, then 200: the third try passes, and there is no fourth.
    let (code, last, _) = check(&http(p, "/flaky/2", 200, None, 5));
    assert_eq!((code, last.as_str()), (0, "health ok"));
    // Too few tries for it.
    let (code, last, _) = check(&http(p, "/flaky/3", 200, None, 2));
    assert_eq!((code, last.as_str()), (1, "health failed: got 503"));

    // The Host header names the virtual host.
    let (code, _, _) = check(&http(
        p,
        "/host/cts.example.test",
        200,
        Some("cts.example.test"),
        1,
    ));
    assert_eq!(code, 0);
    let (code, last, _) = check(&http(p, "/host/cts.example.test", 200, None, 1));
    assert_eq!((code, last.as_str()), (1, "health failed: got 421"));

    // The path is one quoted word: its `$(...)` runs nowhere.
    let marker = tmp.path().join("pwned");
    let path = format!("/status/200?$(touch${{IFS}}{})&[a-b]", marker.display());
    assert_eq!(check(&http(p, &path, 200, None, 1)).0, 0);
    assert!(!marker.exists());

    let requests = srv.requests();
    let count = |path: &str| requests.iter().filter(|r| *r == path).count();
    assert_eq!(count("/status/503"), 2, "{requests:?}");
    assert_eq!(count("/flaky/2"), 3, "{requests:?}");
    assert_eq!(count("/flaky/3"), 2, "{requests:?}");
    assert_eq!(count(&path), 1, "{requests:?}");

    // Nobody listening: curl's own error is in the reason.
    drop(srv);
    let (code, last, _) = check(&http(p, "/status/200", 200, None, 1));
    assert_eq!(code, 1);
    assert!(
        last.starts_with("health failed: got 000 (curl: (7)"),
        "{last}"
    );
}

#[test]
fn the_health_command_runs_with_its_last_lines_shown_on_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let flag = tmp.path().join("ready");
    let cmd = |run: String, tries| Health {
        http: None,
        command: Some(run),
        tries,
        interval: 1,
    };
    let (code, last, _) = check(&cmd(format!("test -e '{}'", flag.display()), 1));
    assert_eq!((code, last.as_str()), (1, "health failed: exit status 1"));
    std::fs::write(&flag, "").unwrap();
    let (code, last, _) = check(&cmd(format!("test -e '{}'", flag.display()), 1));
    assert_eq!((code, last.as_str()), (0, "health ok"));

    let (code, _, out) = check(&cmd(
        "for i in 1 2 3 4 5 6 7; do echo line $i; done; echo oops >&2; exit 3".into(),
        2,
    ));
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "line 4\nline 5\nline 6\nline 7\noops\nhealth failed: exit status 3\n"
    );

    // Ready on the second try: a counter file the command bumps.
    let n = tmp.path().join("n");
    let run = format!(
        "n=$(cat '{0}' 2>/dev/null || echo 0); echo $((n + 1)) > '{0}'; [ $n -ge 1 ]",
        n.display()
    );
    let (code, last, _) = check(&cmd(run, 3));
    assert_eq!((code, last.as_str()), (0, "health ok"));
    assert_eq!(std::fs::read_to_string(&n).unwrap(), "2\n");
}
