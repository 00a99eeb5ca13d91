//! The crash test: `infra apply` SIGKILLed at random moments of a three-host apply that changes
//! a file of every service (nginx, redis, memcached, supervisor, postgres) and a 190 KB file,
//! then applied again until it succeeds; after every round the next plan is clean, every
//! managed file is byte for byte what `infra render` gives and no `.infra*` temp file is left
//! beside it, and every service runs with the new value (read back from the running daemon).
//!
//! `INFRA_CRASH_MOMENTS` (default 5) sets the number of rounds; `INFRA_CRASH_SEED` (printed
//! first) and `INFRA_CRASH_SPAN_MS` (the measured apply's duration, printed) draw the same kill
//! moments again. Needs root (sandbox hosts, tests/sandbox/sandbox.sh).

mod common;
use common::*;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SUBNET: &str = "10.213.110";

/// The hosts and their roles: every host has every service but postgres, which one has.
const HOSTS: [(&str, u8, &[&str]); 3] = [
    ("c1", 11, &["blob", "big", "web", "kv", "mc", "sup"]),
    ("c2", 12, &["blob", "web", "kv", "mc", "sup"]),
    ("c3", 13, &["blob", "web", "kv", "mc", "sup", "pg"]),
];

/// Each role: its one file, and its definition after the name.
const ROLES: [(&str, &str, &str); 7] = [
    (
        "blob",
        "/srv/crash/blob.txt",
        "files:\n  - {template: crash/blob.txt.j2, dest: /srv/crash/blob.txt}\n",
    ),
    // A 4 MB file (a source the test rewrites each generation): its write lasts long enough
    // for the last round to kill the run while its temp file is being filled.
    (
        "big",
        "/srv/crash/big.txt",
        "files:\n  - {source: crash/big.txt, dest: /srv/crash/big.txt}\n",
    ),
    (
        "web",
        "/etc/nginx/sites-enabled/crash.conf",
        "packages: [nginx]\n\
         files:\n  - {template: crash/nginx-site.conf.j2, dest: /etc/nginx/sites-enabled/crash.conf, notify: [nginx], check: \"nginx -t\"}\n\
         services:\n  - {name: nginx, enable: true, on_change: reload, check: \"nginx -t\"}\n",
    ),
    (
        "kv",
        "/etc/redis/redis.conf",
        "packages: [redis-server]\n\
         files:\n  - {template: crash/redis.conf.j2, dest: /etc/redis/redis.conf, owner: redis, group: redis, mode: \"0640\", notify: [redis-server]}\n\
         services:\n  - {name: redis-server, enable: true, on_change: restart}\n",
    ),
    (
        "mc",
        "/etc/memcached.conf",
        "packages: [memcached]\n\
         files:\n  - {template: crash/memcached.conf.j2, dest: /etc/memcached.conf, notify: [memcached]}\n\
         services:\n  - {name: memcached, enable: true, on_change: restart}\n",
    ),
    (
        "sup",
        "/etc/supervisor/conf.d/crash.conf",
        "packages: [supervisor]\n\
         files:\n  - {template: crash/supervisor.conf.j2, dest: /etc/supervisor/conf.d/crash.conf, notify: [supervisor]}\n\
         services:\n  - {name: supervisor, enable: true, on_change: restart}\n",
    ),
    (
        "pg",
        "/etc/postgresql/15/main/conf.d/crash.conf",
        "packages: [postgresql-15]\n\
         files:\n  - {template: crash/postgres.conf.j2, dest: /etc/postgresql/15/main/conf.d/crash.conf, owner: postgres, group: postgres, notify: [postgresql]}\n\
         services:\n  - {name: postgresql, enable: true, on_change: reload}\n",
    ),
];

const TEMPLATES: [(&str, &str); 6] = [
    (
        "blob.txt.j2",
        "generation {{ vars.crash.gen }} of {{ host.name }}'s blob\n\
         {% for i in range(end=2000) %}line {{ i }}: the same in every generation, to make the file long enough to be caught half written\n\
         {% endfor %}generation {{ vars.crash.gen }}, the end\n",
    ),
    (
        "nginx-site.conf.j2",
        "# Managed by infra (crash test), generation {{ vars.crash.gen }}.\n\
         server {\n    listen 8080;\n    location / {\n        return 200 \"gen {{ vars.crash.gen }} on {{ host.name }}\\n\";\n    }\n}\n",
    ),
    (
        "redis.conf.j2",
        "# Managed by infra (crash test), generation {{ vars.crash.gen }}.\n\
         bind 127.0.0.1\nprotected-mode yes\nport 6379\ndaemonize yes\n\
         pidfile /run/redis/redis-server.pid\nloglevel notice\nlogfile /var/log/redis/redis-server.log\n\
         dir /var/lib/redis\nsave \"\"\nappendonly no\nmaxmemory {{ vars.crash.gen }}mb\n",
    ),
    (
        "memcached.conf.j2",
        "# Managed by infra (crash test), generation {{ vars.crash.gen }}.\n\
         -d\nlogfile /var/log/memcached.log\n-m {{ vars.crash.gen }}\n-p 11211\n-U 0\n-u memcache\n\
         -l 127.0.0.1\n-P /var/run/memcached/memcached.pid\n",
    ),
    (
        "supervisor.conf.j2",
        "; Managed by infra (crash test), generation {{ vars.crash.gen }}.\n\
         [program:crash]\ncommand=/bin/sleep 1000000\nenvironment=CRASH_GEN=\"{{ vars.crash.gen }}\"\n\
         autorestart=true\nstartsecs=0\n",
    ),
    (
        "postgres.conf.j2",
        "# Managed by infra (crash test), generation {{ vars.crash.gen }}.\n\
         work_mem = '{{ vars.crash.gen }}kB'\n",
    ),
];

/// How a re-apply says that the killed run still holds a host (its script is being stopped):
/// `host NAME is being applied by run ...`.
const LOCK_REFUSAL: &str = "is being applied by run";

/// Re-applies refused by the host lock before the test gives up.
const LOCK_RETRIES: usize = 30;

/// Any one `infra` run longer than this is a hang.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How long a service may take to show a new value after a successful apply (nginx and
/// postgres reload asynchronously, supervisor spawns its program after starting).
const SETTLE: Duration = Duration::from_secs(30);

/// splitmix64: a small seeded generator, so a failing round can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0; the modulo bias is negligible for milliseconds).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Fields drop in order: the hosts go down while the site (which holds their state) exists.
struct Crash {
    sandbox: Sandbox,
    site: SiteDir,
    seed: u64,
}

fn inventory(gen: u32) -> String {
    let mut text = format!(
        "environment: crash\ndomain: crash.test\ninternal_domain: crash.internal\n\
         provider: {{type: static}}\n\
         ssh:\n  user: root\n  identity_file: .infra/sandbox/id_ed25519\n\
         \x20 known_hosts_file: .infra/sandbox/known_hosts\n\
         \x20 options: {{KexAlgorithms: curve25519-sha256}}\n\
         vars:\n  crash: {{gen: {gen}}}\nhosts:\n"
    );
    for (name, last, roles) in HOSTS {
        text.push_str(&format!(
            "  {name}: {{roles: [{}], address: {SUBNET}.{last}}}\n",
            roles.join(", ")
        ));
    }
    text
}

impl Crash {
    fn setup(seed: u64) -> Crash {
        require_root();
        let site = SiteDir::new();
        for (role, _, rest) in ROLES {
            site.write(
                &format!("roles/{role}.yaml"),
                &format!("name: {role}\n{rest}"),
            );
        }
        for (name, text) in TEMPLATES {
            site.write(&format!("templates/crash/{name}"), text);
        }
        let hosts: Vec<(&str, u8)> = HOSTS.iter().map(|(n, last, _)| (*n, *last)).collect();
        let sandbox = site.up(SUBNET, &hosts);
        let c = Crash {
            sandbox,
            site,
            seed,
        };
        c.set_gen(1001);
        c
    }

    fn set_gen(&self, gen: u32) {
        self.site.write("inventories/crash.yaml", &inventory(gen));
        let line = "a line that stays the same in every generation of the big file\n";
        let big = format!("generation {gen}\n{}", line.repeat(64_000));
        self.site.write("templates/crash/big.txt", &big);
    }

    /// `infra ARGS` in the site, bounded by [`RUN_LIMIT`]; output goes to files (a kept ssh
    /// master must not hold a pipe of ours open).
    fn infra(&self, args: &[&str]) -> Run {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let tag = format!("run-{}", RUNS.fetch_add(1, Ordering::Relaxed));
        let (mut child, out, err) = self.spawn(args, &tag);
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "seed {}: `infra {}` still ran after {RUN_LIMIT:?}: a hang",
                    self.seed,
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(err);
        run
    }

    /// Starts `infra ARGS` with a clean environment, stdout and stderr to files named `tag`.
    fn spawn(&self, args: &[&str], tag: &str) -> (Child, std::path::PathBuf, std::path::PathBuf) {
        let out = self.site.path().join(format!("{tag}.out"));
        let err = self.site.path().join(format!("{tag}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infra"));
        cmd.arg("-C").arg(self.site.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("INFRA_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NO_COLOR", "1")
            .env("HOME", self.site.path().join(".no-home"))
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        (cmd.spawn().expect("run the infra binary"), out, err)
    }

    /// What `sh -c script` on `host` printed, byte for byte.
    fn exec_bytes(&self, host: &str, script: &str) -> Vec<u8> {
        let out = Command::new(repo().join("tests/sandbox/sandbox.sh"))
            .arg("exec")
            .arg(&self.sandbox.state)
            .arg(host)
            .args(["--", "sh", "-c", script])
            .output()
            .expect("run sandbox.sh exec");
        assert!(
            out.status.success(),
            "seed {}: {script} failed on {host}: {}",
            self.seed,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// The seed: `INFRA_CRASH_SEED`, or one from the clock.
fn seed() -> u64 {
    match std::env::var("INFRA_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("INFRA_CRASH_SEED={s:?}: not an unsigned integer")),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

fn moments() -> usize {
    match std::env::var("INFRA_CRASH_MOMENTS") {
        Ok(s) => s
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("INFRA_CRASH_MOMENTS={s:?}: not a positive integer")),
        Err(_) => 5,
    }
}

/// `INFRA_CRASH_SPAN_MS`: the span the kill moments are drawn over, instead of the measured
/// apply's duration (with the seed, it gives a failing run's moments again).
fn span_ms() -> Option<u64> {
    let s = std::env::var("INFRA_CRASH_SPAN_MS").ok()?;
    Some(
        s.trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("INFRA_CRASH_SPAN_MS={s:?}: not a positive integer")),
    )
}

/// Where a round stands, for every message: enough to replay it.
struct Round {
    seed: u64,
    /// What the delays were drawn over: the measured apply, or `INFRA_CRASH_SPAN_MS`.
    span_ms: u64,
    index: usize,
    gen: u32,
    delay_ms: u64,
    /// The last progress line the killed run printed.
    last: String,
}

impl Round {
    fn context(&self) -> String {
        if self.index == 0 {
            return format!(
                "seed {}, round 0 (no kill: the apply whose duration is measured), generation {}",
                self.seed, self.gen
            );
        }
        format!(
            "seed {} span {} ms (INFRA_CRASH_SEED={0} INFRA_CRASH_SPAN_MS={1} to replay), round {}, generation {}, killed {} ms into the apply, after {:?}",
            self.seed, self.span_ms, self.index, self.gen, self.delay_ms, self.last
        )
    }
}

#[test]
fn apply_killed_at_random_moments_leaves_no_torn_file_and_no_stale_service() {
    let seed = seed();
    let n = moments();
    eprintln!("crash: seed {seed} (INFRA_CRASH_SEED to replay), {n} moments");
    let mut rng = Rng(seed);
    let c = Crash::setup(seed);

    let first = c.infra(&["apply", "crash", "-y"]);
    first.assert_code(0);
    // One unkilled apply that changes every file: how long the kills are spread over.
    c.set_gen(1002);
    let started = Instant::now();
    let measured = c.infra(&["apply", "crash", "-y"]);
    let full = started.elapsed();
    measured.assert_code(0);
    let span_ms = span_ms().unwrap_or((full.as_millis() as u64).max(1));
    eprintln!(
        "crash: an unkilled apply of generation 1002 took {full:.1?}; kills within {span_ms} ms"
    );
    let baseline = Round {
        seed,
        span_ms,
        index: 0,
        gen: 1002,
        delay_ms: 0,
        last: String::new(),
    };
    check(&c, &baseline);

    let mut times = Vec::new();
    for index in 1..=n {
        let gen = 1002 + index as u32;
        let round_start = Instant::now();
        let round = kill_one(&c, span_ms, index, gen, rng.below(span_ms));
        let killed = round_start.elapsed();
        let tries = reapply(&c, &round);
        let reapplied = round_start.elapsed();
        check(&c, &round);
        let took = round_start.elapsed();
        eprintln!(
            "crash: round {index}/{n}: killed at {} ms after {:?}; {tries} re-apply run(s) in {:.1?}, checks {:.1?}; round took {took:.1?}",
            round.delay_ms, round.last, reapplied - killed, took - reapplied
        );
        times.push(took);
    }
    let round_start = Instant::now();
    let round = kill_mid_write(&c, span_ms, n + 1, 1003 + n as u32);
    let tries = reapply(&c, &round);
    check(&c, &round);
    eprintln!(
        "crash: last round: killed {} ms in, {}; {tries} re-apply run(s); round took {:.1?}",
        round.delay_ms,
        round.last,
        round_start.elapsed()
    );
    let total: Duration = times.iter().sum();
    eprintln!(
        "crash: {n} moments, seed {seed}: all clean; rounds took {:.1?} in all (min {:.1?}, max {:.1?})",
        total,
        times.iter().min().unwrap(),
        times.iter().max().unwrap()
    );
}

/// Sets the generation, starts an apply and SIGKILLs it `delay_ms` in.
fn kill_one(c: &Crash, span_ms: u64, index: usize, gen: u32, delay_ms: u64) -> Round {
    c.set_gen(gen);
    let (mut child, _, err) = c.spawn(&["apply", "crash", "-y"], "killed");
    std::thread::sleep(Duration::from_millis(delay_ms));
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    let progress = std::fs::read_to_string(err).unwrap_or_default();
    let last = if finished {
        "the apply had already finished".to_string()
    } else {
        progress
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("nothing printed yet")
            .trim()
            .to_string()
    };
    Round {
        seed: c.seed,
        span_ms,
        index,
        gen,
        delay_ms,
        last,
    }
}

/// Sets the generation, starts an apply and SIGKILLs it as soon as a `.infra*` temp file
/// shows in c1's /srv/crash (the big file being written), waiting up to a minute for one.
fn kill_mid_write(c: &Crash, span_ms: u64, index: usize, gen: u32) -> Round {
    c.set_gen(gen);
    let start = Instant::now();
    let (mut child, _, _) = c.spawn(&["apply", "crash", "-y"], "killed");
    let seen = c.sandbox.exec(
        "c1",
        "end=$(($(date +%s)+60)); while [ $(date +%s) -lt $end ]; do \
         for f in /srv/crash/.infra*; do [ -e \"$f\" ] && { echo \"$f\"; exit 0; }; done; done; exit 1",
    );
    let delay_ms = start.elapsed().as_millis() as u64;
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    assert!(
        seen.code == 0 && !finished,
        "seed {}: the last round saw no temp file in c1:/srv/crash while the apply ran (it {}); the big file's write no longer leaves one to catch",
        c.seed,
        if finished { "had finished" } else { "was still running" }
    );
    Round {
        seed: c.seed,
        span_ms,
        index,
        gen,
        delay_ms,
        last: format!(
            "c1 writing /srv/crash/big.txt: {} existed",
            seen.stdout.trim()
        ),
    }
}

/// Whether `run` failed only because hosts were locked by another run (the killed one): exit 3,
/// and each failed host in the recap has its "is being applied by run" line.
fn only_lock_refusals(run: &Run) -> bool {
    let failed: Vec<&str> = HOSTS
        .iter()
        .map(|h| h.0)
        .filter(|h| {
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{h} :")) && !l.contains(" failed=0 "))
        })
        .collect();
    run.code == 3
        && !failed.is_empty()
        && failed
            .iter()
            .all(|h| run.stdout.contains(&format!("host {h} {LOCK_REFUSAL}")))
}

/// Applies until an apply succeeds; only a refusal by the killed run's host lock is retried.
fn reapply(c: &Crash, round: &Round) -> usize {
    for attempt in 1..=LOCK_RETRIES {
        let run = c.infra(&["apply", "crash", "-y"]);
        if run.code == 0 {
            return attempt;
        }
        let refused = only_lock_refusals(&run);
        assert!(
            refused,
            "{}: the re-apply failed (exit {}), and not because the killed run held a host:\n--- stdout\n{}\n--- stderr\n{}",
            round.context(),
            run.code,
            run.stdout,
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "{}: the host lock still refused after {LOCK_RETRIES} re-applies",
        round.context()
    );
}

/// After a successful apply: the plan is clean, no file is torn or left half made, and every
/// service runs with this generation's value.
fn check(c: &Crash, round: &Round) {
    let plan = c.infra(&["plan", "crash", "--detailed-exitcode"]);
    assert!(
        plan.code == 0,
        "{}: the plan after a successful apply is not clean (exit {}):\n{}\n{}",
        round.context(),
        plan.code,
        plan.stdout,
        plan.stderr
    );
    std::thread::scope(|scope| {
        let hosts: Vec<_> = HOSTS
            .iter()
            .map(|(host, _, roles)| scope.spawn(move || files_whole(c, round, host, roles)))
            .collect();
        for h in hosts {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    services_current(c, round);
}

/// Every managed file on `host` is what `infra render` gives, and its directory holds no
/// `.infra*` temp file (the apply script's were `.infra-PID.NAME.tmp`, then `mktemp`'s
/// `.infra.XXXXXXXXXX`). One command on the host prints each file after its length, then the
/// strays.
fn files_whole(c: &Crash, round: &Round, host: &str, roles: &[&str]) {
    let dests: Vec<&str> = ROLES
        .iter()
        .filter(|r| roles.contains(&r.0))
        .map(|r| r.1)
        .collect();
    let mut script = String::new();
    for dest in &dests {
        script.push_str(&format!(
            "n=$(wc -c < '{dest}') || exit 1; printf '%s\\n' \"$n\"; cat '{dest}'; "
        ));
    }
    let mut dirs: Vec<&str> = dests
        .iter()
        .map(|d| d.rsplit_once('/').map_or("/", |(dir, _)| dir))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    script.push_str(&format!(
        "find {} -maxdepth 1 -name '.infra*'",
        dirs.join(" ")
    ));
    let out = c.exec_bytes(host, &script);
    let mut rest = out.as_slice();
    for dest in &dests {
        let rendered = c.infra(&["render", "crash", host, dest]);
        rendered.assert_code(0);
        let (on_host, after) = length_prefixed(rest)
            .unwrap_or_else(|| panic!("{}: cannot read {host}:{dest}", round.context()));
        rest = after;
        assert!(
            on_host == rendered.stdout.as_bytes(),
            "{}: {host}:{dest} is torn: it is not what infra renders ({} bytes on the host, {} rendered); it starts {:?}",
            round.context(),
            on_host.len(),
            rendered.stdout.len(),
            String::from_utf8_lossy(&on_host[..on_host.len().min(120)])
        );
    }
    assert!(
        rest.is_empty(),
        "{}: temp files left on {host} beside the files it manages:\n{}",
        round.context(),
        String::from_utf8_lossy(rest)
    );
}

/// `N\n` then N bytes: the bytes and what follows.
fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = data.iter().position(|b| *b == b'\n')?;
    let n: usize = std::str::from_utf8(&data[..nl]).ok()?.trim().parse().ok()?;
    let body = data.get(nl + 1..nl + 1 + n)?;
    Some((body, &data[nl + 1 + n..]))
}

/// What reads each service's running value on `host` (one `service<TAB>value` line each), and
/// the values this generation's config gives.
fn probes(host: &str, gen: u32) -> (String, Vec<(&'static str, String)>) {
    let mb = (u64::from(gen) * 1024 * 1024).to_string();
    let mut script = String::from(
        "printf 'redis-server\\t%s\\n' \"$(redis-cli CONFIG GET maxmemory | sed -n 2p)\"\n\
         printf 'memcached\\t%s\\n' \"$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/11211 && printf \"stats settings\\r\\nquit\\r\\n\" >&3 && cat <&3' | tr -d '\\r' | sed -n 's/^STAT maxbytes //p')\"\n\
         printf 'supervisor\\t%s\\n' \"$(for p in $(ps -o pid= --ppid \"$(cat /run/supervisord.pid)\"); do tr '\\0' '\\n' < /proc/$p/environ | grep '^CRASH_GEN='; done)\"\n\
         printf 'nginx\\t%s\\n' \"$(curl -s --max-time 5 http://127.0.0.1:8080/)\"\n",
    );
    let mut want = vec![
        ("redis-server", mb.clone()),
        ("memcached", mb),
        ("supervisor", format!("CRASH_GEN={gen}")),
        ("nginx", format!("gen {gen} on {host}")),
    ];
    if host == "c3" {
        script.push_str(
            "printf 'postgresql\\t%s\\n' \"$(runuser -u postgres -- psql -tAc 'show work_mem')\"\n",
        );
        // postgres shows a whole number of megabytes in MB.
        let shown = if gen.is_multiple_of(1024) {
            format!("{}MB", gen / 1024)
        } else {
            format!("{gen}kB")
        };
        want.push(("postgresql", shown));
    }
    (script, want)
}

/// A host, what its probes printed, and the values they should have printed.
type Answer = (&'static str, Run, Vec<(&'static str, String)>);

/// Every service on every host answers with this generation's value, within [`SETTLE`].
fn services_current(c: &Crash, round: &Round) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut stale = Vec::new();
        let answers: Vec<Answer> = std::thread::scope(|scope| {
            let asked: Vec<_> = HOSTS
                .iter()
                .map(|(host, _, _)| {
                    scope.spawn(move || {
                        let (script, want) = probes(host, round.gen);
                        (*host, c.sandbox.exec(host, &script), want)
                    })
                })
                .collect();
            asked.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (host, got, want) in answers {
            for (service, value) in want {
                let running = got
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(service)?.strip_prefix('\t'))
                    .unwrap_or("");
                if running != value {
                    stale.push(format!(
                        "{host} {service}: runs with {running:?}, the new config says {value:?}"
                    ));
                }
            }
        }
        if stale.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: services not on the new config {SETTLE:?} after the apply succeeded:\n{}",
            round.context(),
            stale.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
