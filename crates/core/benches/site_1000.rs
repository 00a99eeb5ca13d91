//! Criterion benchmark of validate, render and plan on a generated 1,000-host inventory, no network.
//!
//! Measured separately: load + validate, render, plan against fresh facts, plan against matching
//! facts (the no-op plan), and the whole chain.
//!
//! The site is the repository's `roles/` and `templates/` with one generated inventory, `big`,
//! written the way `bench/render.sh` (`gen`) writes it, in a temp dir made once. Groups:
//!
//! - `validate`: `Site::load`, `check_roles`, `Environment::resolve` and `check_inventory`.
//! - `render`: `Renderer::new` (compiles the templates), then every file of every host rendered
//!   (`render_hosts`) and turned into its `DesiredHost`, a chunk of hosts per core, as
//!   `run::prepare` does (without the cloud and SSH parts).
//! - `plan_fresh`: `plan_host` for every host (a chunk of hosts per core, as the hosts of a run
//!   are planned at once) against `Facts::fresh()` (a machine with nothing
//!   on it): every package, user, dir, file (with its diff) and service is a step.
//! - `plan_noop`: `plan_host` for every host against facts that match its desired state (paths,
//!   hashes, packages, users, services, links, mounts, commands done): the empty plan a real
//!   run computes most often.
//! - `chain`: load → validate → render → plan against the matching facts, end to end (the
//!   plans spread over the cores as in `plan_noop`).
//!
//! Facts are built in memory (standing in for what SSH would read); secrets are the default
//! (empty), so placeholders are rendered. Run with `cargo bench -p infra-core --bench site_1000`.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use infra_core::desired::{DesiredHost, DIR_MODE};
use infra_core::environment::Environment;
use infra_core::facts::{sha256, Facts, InitSystem, PathFact, PathKind, ServiceFact};
use infra_core::par;
use infra_core::plan::plan_host;
use infra_core::render::{render_hosts, Renderer};
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::validate;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const HOSTS: usize = 1000;
const ENV: &str = "big";

/// The inventory `bench/render.sh` generates: the singletons once, then db, sessions, memcache
/// and app hosts in proportion; every host gets a fixed private IP in 10.30.0.0/16.
fn inventory(n: usize) -> String {
    let mut s = String::from(
        "environment: big\n\
         domain: big.example.org\n\
         internal_domain: big.internal\n\
         provider: {type: aws, region: us-east-1, ami: ami-0123456789abcdef0, instance_type: t3.small, key_name: big, vpc_cidr: 10.30.0.0/16, subnet_cidr: 10.30.0.0/16}\n\
         ssh: {user: admin, jump_host: salt}\n\
         hosts:\n",
    );
    let ip = |i: usize| format!("10.30.{}.{}", (i + 10) / 250, (i + 10) % 250 + 2);
    let mut i = 0;
    for (name, roles) in [
        ("salt", "salt"),
        ("source", "source"),
        ("mail", "mail"),
        ("db1", "db, masterdb"),
        ("queue1", "queue"),
        ("pg1", "postgres"),
    ] {
        writeln!(s, "  {name}: {{roles: [{roles}], private_ip: {}}}", ip(i)).unwrap();
        i += 1;
    }
    let mut k = 0;
    while i < n {
        k += 1;
        let (name, role) = match k % 10 {
            0 => (format!("db{}", k + 1), "db"),
            1 => (format!("sessions{k}"), "sessions"),
            2 => (format!("memcache{k}"), "memcache"),
            _ => (format!("app{k}"), "app"),
        };
        writeln!(s, "  {name}: {{roles: [{role}], private_ip: {}}}", ip(i)).unwrap();
        i += 1;
    }
    s
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The repository's roles and templates plus the generated inventory, in a fresh temp dir.
fn make_site() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    for sub in ["roles", "templates"] {
        copy_dir(&repo.join(sub), &dir.path().join(sub));
    }
    std::fs::create_dir_all(dir.path().join("inventories")).unwrap();
    std::fs::write(
        dir.path().join("inventories").join(format!("{ENV}.yaml")),
        inventory(HOSTS),
    )
    .unwrap();
    dir
}

/// Load and the role and inventory checks; the number of errors found.
fn load_and_validate(root: &Path) -> usize {
    let (site, mut diags) = Site::load(root).unwrap();
    diags.extend(validate::check_roles(&site));
    let env = Environment::resolve(&site, ENV, &[]).expect("the generated environment");
    diags.extend(validate::check_inventory(&env));
    diags.iter().filter(|d| d.is_error()).count()
}

/// Every host rendered and turned into its desired state, in host order; the diagnostics.
fn render_all(site: &Site, env: &Environment, secrets: &Secrets) -> (Vec<DesiredHost>, usize) {
    let (renderer, diags) = Renderer::new(site);
    let selected: Vec<_> = env.hosts.values().collect();
    let rendered = render_hosts(env, &renderer, secrets, &selected);
    let built = par::map(
        selected.into_iter().zip(rendered).collect(),
        |(host, out)| {
            let n = out.diagnostics.len();
            (DesiredHost::new(env, host, out.files), n)
        },
    );
    let problems = diags.len() + built.iter().map(|(_, n)| n).sum::<usize>();
    (built.into_iter().map(|(d, _)| d).collect(), problems)
}

/// Facts of a host that already is what `desired` asks for: planning against them is a no-op.
fn matching_facts(desired: &DesiredHost) -> Facts {
    let mut facts = Facts {
        init: InitSystem::Systemd,
        fingerprint: format!("bench {}", desired.name),
        ..Facts::default()
    };
    for v in &desired.volumes {
        facts
            .volume
            .mounts
            .insert(v.mount.clone(), v.device.clone());
    }
    facts
        .package
        .installed
        .extend(desired.packages.iter().cloned());
    let mut command_index = 0;
    for role in &desired.roles {
        facts
            .group
            .existing
            .extend(role.groups.iter().map(|g| g.name.to_string()));
        facts
            .user
            .existing
            .extend(role.users.iter().map(|u| u.name.to_string()));
        for d in &role.dirs {
            let fact = PathFact {
                mode: d.mode.unwrap_or(DIR_MODE).0,
                owner: d.owner.to_string(),
                group: d.group.to_string(),
                kind: PathKind::Dir,
            };
            facts.paths.insert(d.path.to_string(), fact);
        }
        for f in &role.files {
            let fact = PathFact {
                mode: f.mode.0,
                owner: f.owner.clone(),
                group: f.group.clone(),
                kind: PathKind::File,
            };
            facts.paths.insert(f.dest.clone(), fact);
            facts.file.sha256.insert(f.dest.clone(), sha256(&f.content));
        }
        for l in &role.links {
            facts
                .link
                .targets
                .insert(l.path.to_string(), l.target.to_string());
        }
        for s in &role.services {
            let fact = ServiceFact {
                exists: true,
                running: s.enable,
                enabled: s.enable,
            };
            facts.service.states.insert(s.name.clone(), fact);
        }
        for _ in &role.commands {
            facts.command.done.insert(command_index);
            command_index += 1;
        }
    }
    facts
}

/// Plans every host against its facts; the total number of steps.
fn plan_all<'a>(
    hosts: &[DesiredHost],
    facts: impl Fn(usize) -> &'a Facts + Sync,
    secrets: &Secrets,
) -> usize {
    let current = BTreeMap::new();
    let pairs: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, d)| (d, facts(i)))
        .collect();
    par::map(pairs, |(d, f)| {
        plan_host(d, f, &current, secrets).steps.len()
    })
    .into_iter()
    .sum()
}

fn site_1000(c: &mut Criterion) {
    let dir = make_site();
    let root = dir.path();
    let secrets = Secrets::default();

    // Set up once, and check the site is what the benchmark claims to measure.
    assert_eq!(load_and_validate(root), 0, "the generated site has errors");
    let (site, diags) = Site::load(root).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let env = Environment::resolve(&site, ENV, &[]).unwrap();
    assert_eq!(env.hosts.len(), HOSTS);
    let (desired, render_diags) = render_all(&site, &env, &secrets);
    assert_eq!(
        render_diags, 0,
        "rendering the generated site reported problems"
    );
    let files: usize = desired.iter().map(|d| d.files().count()).sum();
    let fresh = Facts::fresh();
    let matching: Vec<Facts> = desired.iter().map(matching_facts).collect();
    let fresh_steps = plan_all(&desired, |_| &fresh, &secrets);
    let noop_steps = plan_all(&desired, |i| &matching[i], &secrets);
    assert!(fresh_steps > 0);
    assert_eq!(noop_steps, 0, "the matching facts leave steps to do");
    eprintln!(
        "site_1000: {} hosts, {files} files, {fresh_steps} steps on fresh machines, {noop_steps} on matching ones",
        desired.len()
    );

    let mut g = c.benchmark_group("site_1000");
    // Each iteration takes milliseconds: few flat samples keep the run short.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    g.bench_function("validate", |b| {
        b.iter(|| load_and_validate(black_box(root)))
    });
    // The slow ones (~0.5 s an iteration) get the time their 10 iterations need.
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("render", |b| {
        b.iter(|| render_all(black_box(&site), &env, &secrets).0.len())
    });
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("plan_fresh", |b| {
        b.iter(|| plan_all(black_box(&desired), |_| &fresh, &secrets))
    });
    g.bench_function("plan_noop", |b| {
        b.iter(|| plan_all(black_box(&desired), |i| &matching[i], &secrets))
    });
    // The matching facts, by host name (hosts come in name order, as in `desired`).
    let by_name: BTreeMap<&str, &Facts> = desired
        .iter()
        .zip(&matching)
        .map(|(d, f)| (d.name.as_str(), f))
        .collect();
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("chain", |b| {
        b.iter(|| {
            let (site, mut diags) = Site::load(black_box(root)).unwrap();
            diags.extend(validate::check_roles(&site));
            let env = Environment::resolve(&site, ENV, &[]).unwrap();
            diags.extend(validate::check_inventory(&env));
            assert!(diags.is_empty());
            let (hosts, render_diags) = render_all(&site, &env, &secrets);
            assert_eq!(render_diags, 0);
            // Planned a chunk of hosts per core, as a run plans its hosts at once.
            plan_all(&hosts, |i| by_name[hosts[i].name.as_str()], &secrets)
        })
    });
    g.finish();
}

criterion_group!(benches, site_1000);
criterion_main!(benches);
