//! The fuzz test: hostile input of every kind a user hands infra, generated from one seed, must
//! give a result or a clear error: no panic, no abort, no run over 10 s.
//!
//! - In-process (infra-core, panics caught and counted): mutated site YAML (the repository's
//!   roles/ and inventories/ with bytes flipped, cut short, nested deep, huge numbers, duplicate
//!   keys, billion-laughs aliases) loaded, validated and rendered; random Tera fragments parsed;
//!   `--var` keys and values parsed and merged; mutated JSON of a real saved plan parsed and
//!   compared with the original.
//! - Through the binary, one process per case (so an abort or a stack overflow is caught, and a
//!   case over 10 s is killed and fails): mutated YAML (`validate`), templates with loops
//!   (`render`), `--var` (`render`), `--limit` (`plan`) and mutated saved plans (`apply FILE`),
//!   on a `connection: local` host inside a private mount namespace.
//!
//! The seed is printed; `INFRA_FUZZ_SEED=N` replays a run, `INFRA_FUZZ_SCALE=K` multiplies the
//! number of cases. A failure lists every reproducer.

mod common;
use common::*;
use infra_core::environment::Environment;
use infra_core::plan::Plan;
use infra_core::render::Renderer;
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::vars::{deep_merge, VarOverride};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 0x1f2e_3d4c_5b6a_7988;
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// splitmix64: small, seeded, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn seed() -> u64 {
    std::env::var("INFRA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

fn scale() -> usize {
    std::env::var("INFRA_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Hostile snippets inserted into YAML.
fn yaml_snippet(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 => format!(
            "{}{}",
            "[".repeat(1 + rng.below(20_000)),
            "]".repeat(rng.below(3))
        ),
        1 => format!("{}x", "- ".repeat(1 + rng.below(5_000))),
        2 => {
            let mut s = String::new();
            for d in 0..(1 + rng.below(3_000)) {
                s.push_str(&" ".repeat(d));
                s.push_str("k:\n");
            }
            s
        }
        3 => format!(
            "{}: {}",
            rng.pick(&["mode", "size_gb", "port", "x"]),
            rng.pick(&[
                "99999999999999999999999999999999999999",
                "1e400",
                "-1",
                "18446744073709551616",
                "0x7fffffffffffffffff",
                "\"0999\"",
                ".nan",
            ])
        ),
        4 => {
            let mut s = String::from(
                "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
            );
            let letters = "bcdefghijklmnop";
            let mut prev = 'a';
            for c in letters.chars() {
                s.push_str(&format!(
                    "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
                ));
                prev = c;
            }
            s
        }
        5 => "name: a\nname: b\n".to_string(),
        6 => "*undefined_alias".to_string(),
        7 => "\u{feff}\u{0}\u{202e}é\t\r".to_string(),
        _ => format!("! !<tag:{}> x", "y".repeat(rng.below(1000))),
    }
}

/// One mutation of `text`: bytes flipped, cut short, a line duplicated, or a snippet inserted.
fn mutate_text(rng: &mut Rng, text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                for _ in 0..(1 + rng.below(8)) {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next() as u8;
                }
            }
            1 => bytes.truncate(rng.below(bytes.len() + 1)),
            2 => {
                let t = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = t.lines().collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    let mut out: Vec<&str> = lines.clone();
                    out.insert(i, lines[i]);
                    bytes = out.join("\n").into_bytes();
                }
            }
            _ => {
                let t = String::from_utf8_lossy(&bytes).into_owned();
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(t.match_indices('\n').map(|(i, _)| i + 1))
                    .collect();
                let at = *rng.pick(&starts);
                let snippet = yaml_snippet(rng);
                let mut out = t[..at].to_string();
                out.push_str(&snippet);
                out.push('\n');
                out.push_str(&t[at..]);
                bytes = out.into_bytes();
            }
        }
    }
    bytes
}

/// A random Tera fragment: text, expressions, filters, conditions and loops (nested a little).
fn tera_fragment(rng: &mut Rng, depth: usize) -> String {
    let atoms = [
        "{{ host.name }}",
        "{{ vars | length }}",
        "{{ host.roles | join(sep=\",\") }}",
        "{{ 1 / 0 }}",
        "{{ nope }}",
        "{{ host.name ~ host.name }}",
        "{{ range(end=10) }}",
        "{{ hosts(role=\"nope\") }}",
        "{{ one(role=\"web\") }}",
        "{{ \"é\" | upper }}",
        "{{ 9999999999999999999999999 }}",
        "{% raw %}{{{% endraw %}",
        "{# c #}",
        "{{ vars.a }}",
        "{{ vars.a | length }}",
        "{% for k in vars.a %}{{ k }}{% endfor %}",
        "{{ vars.a.a.a }}",
        "{%",
        "}}",
        "{{",
        "{% endfor %}",
        "{% set x = [1,2,3] %}{{ x[7] }}",
        "{{ x.y.z.w }}",
        "text é ✓ \u{0} ",
        "{{ ((((((((((1)))))))))) }}",
        "{{ [[[1]]] }}",
        "{% macro m() %}x{% endmacro m %}",
    ];
    let mut s = String::new();
    for _ in 0..(1 + rng.below(4)) {
        match rng.below(6) {
            0..=2 => {
                let a = *rng.pick(&atoms);
                s.push_str(a)
            }
            3 if depth < 3 => {
                let n = *rng.pick(&[0, 1, 5, 50, 300, 100_001]);
                let inner = tera_fragment(rng, depth + 1);
                s.push_str(&format!(
                    "{{% for i{depth} in range(end={n}) %}}{inner}{{% endfor %}}"
                ));
            }
            4 if depth < 3 => {
                let inner = tera_fragment(rng, depth + 1);
                s.push_str(&format!(
                    "{{% if host.name == \"web1\" %}}{inner}{{% else %}}x{{% endif %}}"
                ));
            }
            _ => s.push_str(&"{{ host.name }}".repeat(rng.below(50))),
        }
    }
    s
}

/// A `--var` argument: keys of many parts and odd characters, values deep, huge or aliased.
fn var_arg(rng: &mut Rng) -> String {
    let parts = *rng.pick(&[1, 1, 1, 2, 5, 31, 32, 33, 1_000, 20_000]);
    // Mostly keys that parse (so the value goes on to the templates), some that do not.
    let odd = rng.chance(30);
    let part = |rng: &mut Rng| -> String {
        let good = ["a", "é", "vars", "0", "x y", "host"];
        let bad = ["", "=", "\u{0}", " "];
        if odd && rng.chance(20) {
            rng.pick(&bad).to_string()
        } else {
            rng.pick(&good).to_string()
        }
    };
    let first = if rng.chance(60) {
        "a".to_string()
    } else {
        part(rng)
    };
    let key: Vec<String> = std::iter::once(first)
        .chain((1..parts).map(|_| part(rng)))
        .collect();
    let value = match rng.below(8) {
        0 => format!(
            "{}1{}",
            "[".repeat(rng.below(50_000)),
            "]".repeat(rng.below(50_000))
        ),
        1 => format!("{}1", "{a: ".repeat(rng.below(10_000))),
        2 => "99999999999999999999999999999999999999999999e99999".to_string(),
        3 => "&a [*a]".to_string(),
        4 => {
            let mut rng2 = Rng(rng.next());
            yaml_snippet(&mut rng2)
        }
        5 => String::new(),
        6 => "é\u{0}\n---\n- x".to_string(),
        _ => "8".to_string(),
    };
    if rng.chance(5) {
        return key.join(".");
    }
    format!("{}={value}", key.join("."))
}

/// A `--limit` pattern: stars, question marks, prefixes, commas, long runs.
fn limit_arg(rng: &mut Rng) -> String {
    if rng.chance(10) {
        return format!("{}b", "*a".repeat(1 + rng.below(3_000)));
    }
    let alphabet = [
        "*", "?", "s", "e", "l", "f", "web", "host:", "role:", ",", "é", "**",
    ];
    let n = rng.below(40);
    (0..n).map(|_| *rng.pick(&alphabet)).collect()
}

/// One mutation of a saved plan's JSON: text-level or value-level.
fn mutate_plan(rng: &mut Rng, original: &serde_json::Value) -> Vec<u8> {
    let text = serde_json::to_string_pretty(original).unwrap();
    if rng.chance(40) {
        return mutate_text(rng, &text);
    }
    let mut v = original.clone();
    let mut slots = Vec::new();
    collect_paths(&v, String::new(), &mut slots);
    let path = rng.pick(&slots).clone();
    let replacement = match rng.below(10) {
        0 => serde_json::json!("é✓"),
        1 => serde_json::json!("ab"),
        2 => serde_json::json!(1e300),
        3 => serde_json::json!(-1),
        4 => serde_json::json!(u64::MAX),
        5 => serde_json::json!(null),
        6 => {
            serde_json::json!({"kind": "command", "role": "x", "name": "evil", "run": "touch /srv/evil"})
        }
        7 => serde_json::json!([]),
        8 => serde_json::json!({"unknown_field": 1}),
        _ => {
            let deep = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
            let mut s = serde_json::to_string(&v).unwrap();
            if let Some(i) = s.find("\"sha256\":") {
                s.insert_str(i, &format!("\"x\":{deep},"));
            }
            return s.into_bytes();
        }
    };
    if let Some(slot) = v.pointer_mut(&path) {
        *slot = replacement;
    }
    serde_json::to_vec(&v).unwrap()
}

fn collect_paths(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                collect_paths(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                )
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_paths(x, format!("{at}/{i}"), out)
            }
        }
        _ => {}
    }
}

/// Failures found, each with what reproduces it.
#[derive(Default)]
struct Findings {
    cases: usize,
    failures: Vec<String>,
}

/// The case running in-process and since when; a thread watches it.
type Current = Arc<Mutex<Option<(Instant, String)>>>;

/// Starts the watchdog: a case over 10 s fails the whole test at once, printing its reproducer
/// (an in-process case cannot be stopped).
fn watchdog() -> Current {
    let current: Current = Arc::new(Mutex::new(None));
    let watched = current.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let over = match &*watched.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((start, what)) if start.elapsed() > CASE_LIMIT => Some(what.clone()),
            _ => None,
        };
        if let Some(what) = over {
            eprintln!(
                "FUZZ FAILURE: a case ran over 10 s (seed {}): {what}",
                seed()
            );
            std::process::exit(1);
        }
    });
    current
}

/// Runs `case` in-process: a panic is a failure, counted with its input.
fn in_process(
    findings: &mut Findings,
    current: &Current,
    what: &str,
    input: &[u8],
    case: impl FnOnce(),
) {
    findings.cases += 1;
    let shown = || String::from_utf8_lossy(&input[..input.len().min(500)]).into_owned();
    *current.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((Instant::now(), format!("{what}: {:?}", shown())));
    let result = catch_unwind(AssertUnwindSafe(case));
    *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    if let Err(e) = result {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        findings
            .failures
            .push(format!("panic in {what}: {msg}\n  input: {:?}", shown()));
    }
}

/// The in-process part of the site: load, check, resolve every environment, render it.
fn load_and_render(dir: &Path) {
    let Ok((site, _)) = Site::load(dir) else {
        return;
    };
    let _ = infra_core::validate::check_roles(&site);
    let (renderer, _) = Renderer::new(&site);
    for name in site.inventories.keys() {
        if let Some(env) = Environment::resolve(&site, name, &[]) {
            let _ = infra_core::validate::check_inventory(&env);
            let _ = infra_core::validate::check_rendering(&env, &renderer, &Secrets::default());
        }
    }
}

/// The repository's role and inventory files, as (path under the site, text).
fn yaml_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for sub in ["roles", "inventories"] {
        let mut names: Vec<_> = std::fs::read_dir(repo().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        names.sort();
        for n in names {
            let rel = format!("{sub}/{n}");
            out.push((
                rel.clone(),
                std::fs::read_to_string(repo().join(&rel)).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn in_process_site_and_template_cases_never_panic_or_hang() {
    let seed = seed();
    let started = Instant::now();
    eprintln!("fuzz (in-process): seed {seed} (INFRA_FUZZ_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut f = Findings::default();
    let n = scale();
    let w = watchdog();

    // Site YAML, through Site::load, validation and rendering of the repository's site.
    let site = site_copy();
    let files = yaml_files();
    for _ in 0..(25 * n) {
        let (rel, text) = rng.pick(&files).clone();
        let bytes = mutate_text(&mut rng, &text);
        let path = site.path().join(&rel);
        std::fs::write(&path, &bytes).unwrap();
        in_process(&mut f, &w, &format!("site YAML {rel}"), &bytes, || {
            load_and_render(site.path())
        });
        std::fs::write(&path, text).unwrap();
    }
    eprintln!(
        "  site YAML rendered: {} cases by {:.1} s",
        f.cases,
        started.elapsed().as_secs_f64()
    );
    // Role and inventory files alone (no rendering): many more.
    let (small, _) = one_host_site();
    for _ in 0..(500 * n) {
        let (rel, text) = rng.pick(&files).clone();
        let bytes = mutate_text(&mut rng, &text);
        let target = if rel.starts_with("roles/") {
            "roles/extra.yaml"
        } else {
            "inventories/extra.yaml"
        };
        let path = small.path().join(target);
        std::fs::write(&path, &bytes).unwrap();
        in_process(&mut f, &w, &format!("YAML of {rel}"), &bytes, || {
            if let Ok((site, _)) = Site::load(small.path()) {
                let _ = infra_core::validate::check_roles(&site);
                if let Some(env) = Environment::resolve(&site, "extra", &[]) {
                    let _ = infra_core::validate::check_inventory(&env);
                }
            }
        });
        let _ = std::fs::remove_file(&path);
    }

    eprintln!(
        "  YAML: {} cases by {:.1} s",
        f.cases,
        started.elapsed().as_secs_f64()
    );
    // Tera fragments: parsed (rendering runs through the binary, where a runaway can be killed).
    for _ in 0..(1_000 * n) {
        let t = tera_fragment(&mut rng, 0);
        in_process(&mut f, &w, "Tera fragment", t.as_bytes(), || {
            let mut site = Site::default();
            site.templates.insert(
                "t.j2".into(),
                infra_core::site::TemplateFile {
                    name: "t.j2".into(),
                    bytes: t.as_bytes().to_vec(),
                },
            );
            let _ = Renderer::new(&site);
        });
    }

    report(&f, "in-process: site YAML, templates", started);
}

#[test]
fn in_process_var_and_plan_cases_never_panic_or_hang() {
    let seed = seed();
    let started = Instant::now();
    eprintln!("fuzz (in-process --var, plans): seed {seed} (INFRA_FUZZ_SEED={seed} replays it)");
    let mut rng = Rng(seed ^ 0xa2);
    let mut f = Findings::default();
    let n = scale();
    let w = watchdog();
    let (small, _) = one_host_site();

    // --var: parsed, nested, merged twice (over itself), environment resolved with it.
    let (small_site, _) = Site::load(small.path()).unwrap();
    for _ in 0..(1_000 * n) {
        let arg = var_arg(&mut rng);
        in_process(&mut f, &w, "--var", arg.as_bytes(), || {
            if let Ok(o) = VarOverride::parse(&arg) {
                let mut vars = o.as_vars();
                deep_merge(&mut vars, &o.as_vars());
                let _ = Environment::resolve(&small_site, "lab", &[o]);
            }
        });
    }

    eprintln!(
        "  --var: {} cases by {:.1} s",
        f.cases,
        started.elapsed().as_secs_f64()
    );
    // Saved plans: a real plan's JSON, mutated, parsed, compared with the original.
    let original = sample_plan();
    let original_value = serde_json::to_value(&original).unwrap();
    for _ in 0..(1_000 * n) {
        let bytes = mutate_plan(&mut rng, &original_value);
        in_process(&mut f, &w, "saved plan JSON", &bytes, || {
            if let Ok(p) = serde_json::from_slice::<Plan>(&bytes) {
                let _ = p.summary();
                let _ = p.has_changes();
                for d in infra_core::saved::differences(&p, &original) {
                    let _ = d.to_string();
                }
                for h in &p.hosts {
                    for s in &h.steps {
                        let _ = s.address();
                    }
                }
            }
        });
    }
    report(&f, "in-process: --var, saved plans", started);
}

/// A plan of a fresh host of the repository's production environment: every kind of step.
fn sample_plan() -> Plan {
    let site = Site::load(&repo()).unwrap().0;
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let (renderer, _) = Renderer::new(&site);
    let hosts: Vec<_> = env.hosts.values().take(3).collect();
    let rendered = infra_core::render::render_hosts(&env, &renderer, &Secrets::default(), &hosts);
    let plans = hosts
        .iter()
        .zip(rendered)
        .map(|(h, r)| {
            let d = infra_core::desired::DesiredHost::from_render(&env, h, r);
            infra_core::plan::plan_host(
                &d,
                &infra_core::facts::Facts::fresh(),
                &Default::default(),
                &Secrets::default(),
            )
        })
        .collect();
    Plan::new("production", plans)
}

fn report(f: &Findings, part: &str, started: Instant) {
    eprintln!(
        "fuzz ({part}): {} cases in {:.1} s, {} failures",
        f.cases,
        started.elapsed().as_secs_f64(),
        f.failures.len()
    );
    assert!(
        f.failures.is_empty(),
        "{} of {} cases failed (seed {}):\n{}",
        f.failures.len(),
        f.cases,
        seed(),
        f.failures.join("\n")
    );
}

const ROLE: &str = "\
name: web
dirs:
  - {path: /srv/app, mode: \"0750\"}
files:
  - template: app/config.ini.j2
    dest: /srv/app/config.ini
    mode: \"0640\"
    check: \"grep -q . /srv/app/config.ini\"
commands:
  - {name: seed, run: \"echo seeded > /srv/app/seeded\", creates: /srv/app/seeded}
";

/// A site of one `connection: local` host, its template path returned.
fn one_host_site() -> (SiteDir, PathBuf) {
    let dir = SiteDir::new();
    dir.write("roles/web.yaml", ROLE)
        .write("templates/app/config.ini.j2", "name = {{ host.name }}\n")
        .write("inventories/lab.yaml", LOCAL_INVENTORY);
    let t = dir.path().join("templates/app/config.ini.j2");
    (dir, t)
}

/// Runs `infra -C dir ARGS` in the namespace, killed after 10 s: its exit code and stderr
/// when it ended (any exit code but a panic's), else what went wrong.
fn run_in(
    ns: &MountNamespace,
    dir: &Path,
    args: &[&str],
    out: &Path,
) -> Result<(i32, String), String> {
    let stdout = std::fs::File::create(out.join("stdout")).unwrap();
    let stderr = std::fs::File::create(out.join("stderr")).unwrap();
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_infra"))
        .arg("-C")
        .arg(dir)
        .args(args.iter().map(|a| arg(a)))
        .env("NO_COLOR", "1")
        .env("HOME", dir.join(".no-home"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("run nsenter");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > CASE_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err("ran over 10 s (killed)".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let err = std::fs::read_to_string(out.join("stderr")).unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(101), _) => Err(format!("panicked:\n{}", tail(&err))),
        (Some(c), _) if err.contains("panicked") => {
            Err(format!("exit {c} after a panic:\n{}", tail(&err)))
        }
        (Some(c), _) => Ok((c, err)),
        (None, Some(sig)) => Err(format!("killed by signal {sig}:\n{}", tail(&err))),
        (None, None) => Err("ended without a status".into()),
    }
}

/// `a` as a command line can hold it: no NUL byte, under the kernel's 128 KiB per argument.
fn arg(a: &str) -> String {
    let mut a = a.replace('\0', "\u{1}");
    let mut end = a.len().min(100_000);
    while !a.is_char_boundary(end) {
        end -= 1;
    }
    a.truncate(end);
    a
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Records a binary case's result.
fn binary_case(f: &mut Findings, what: &str, repro: &str, result: Result<(i32, String), String>) {
    f.cases += 1;
    if std::env::var_os("INFRA_FUZZ_VERBOSE").is_some() {
        let first = match &result {
            Ok((c, err)) => format!("exit {c}: {}", err.lines().next().unwrap_or_default()),
            Err(e) => e.clone(),
        };
        let r: String = repro.chars().take(80).collect();
        eprintln!(
            "{what}: {r:?} -> {}",
            first.chars().take(200).collect::<String>()
        );
    }
    if let Err(e) = result {
        let repro: String = repro.chars().take(600).collect();
        f.failures
            .push(format!("{what}: {e}\n  reproducer: {repro:?}"));
    }
}

#[test]
fn binary_cases_never_panic_abort_or_hang() {
    let seed = seed();
    let started = Instant::now();
    eprintln!("fuzz (binary): seed {seed} (INFRA_FUZZ_SEED={seed} replays it)");
    let mut rng = Rng(seed ^ 0xb1);
    let mut f = Findings::default();
    let n = scale();
    let ns = MountNamespace::new();
    let out = tempfile::tempdir().unwrap();
    let (site, template) = one_host_site();
    let dir = site.path();

    // Templates, rendered by the binary (output and time bounded there).
    for i in 0..(80 * n) {
        let t = if i == 0 {
            // One sure runaway: the 5 s render bound must end it well within 10 s.
            "{% for i in range(end=100000) %}{% for j in range(end=100000) %}{% endfor %}{% endfor %}".to_string()
        } else {
            tera_fragment(&mut rng, 0)
        };
        std::fs::write(&template, &t).unwrap();
        let r = run_in(&ns, dir, &["render", "lab", "self"], out.path());
        binary_case(&mut f, "render of a template", &t, r);
    }
    std::fs::write(&template, "{{ vars.a }} {{ vars | length }}\n").unwrap();

    // --var, rendered by the binary (the template prints it).
    for _ in 0..(60 * n) {
        let arg = var_arg(&mut rng);
        let r = run_in(
            &ns,
            dir,
            &["render", "lab", "self", "--var", &arg],
            out.path(),
        );
        binary_case(&mut f, "render --var", &arg, r);
    }

    std::fs::write(&template, "name = {{ host.name }}\n").unwrap();

    // --limit, planned by the binary (the local host's facts are read, nothing changes).
    for _ in 0..(40 * n) {
        let arg = limit_arg(&mut rng);
        let r = run_in(&ns, dir, &["plan", "lab", "--limit", &arg], out.path());
        binary_case(&mut f, "plan --limit", &arg, r);
    }

    // Site YAML, validated by the binary.
    let files = yaml_files();
    let roles = dir.join("roles/extra.yaml");
    for _ in 0..(60 * n) {
        let (rel, text) = rng.pick(&files).clone();
        let bytes = mutate_text(&mut rng, &text);
        let path = if rel.starts_with("roles/") {
            roles.clone()
        } else {
            dir.join("inventories/extra.yaml")
        };
        std::fs::write(&path, &bytes).unwrap();
        let r = run_in(&ns, dir, &["validate"], out.path());
        binary_case(
            &mut f,
            &format!("validate of mutated {rel}"),
            &String::from_utf8_lossy(&bytes),
            r,
        );
        let _ = std::fs::remove_file(&path);
    }

    // Saved plans, mutated and applied: refused (or applied when the edit changed nothing).
    let saved = out.path().join("plan.json");
    let made = run_in(
        &ns,
        dir,
        &["plan", "lab", "--out", saved.to_str().unwrap()],
        out.path(),
    );
    assert!(matches!(made, Ok((0, _))), "plan --out: {made:?}");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let tampered = out.path().join("tampered.json");
    for _ in 0..(40 * n) {
        let bytes = mutate_plan(&mut rng, &original);
        std::fs::write(&tampered, &bytes).unwrap();
        let r = run_in(
            &ns,
            dir,
            &["apply", tampered.to_str().unwrap(), "--yes"],
            out.path(),
        );
        binary_case(
            &mut f,
            "apply of a mutated saved plan",
            &String::from_utf8_lossy(&bytes),
            r,
        );
    }
    report(&f, "binary", started);
}
