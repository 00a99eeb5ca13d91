//! The engine: reaches every host in parallel, gathers facts, plans, and applies a plan's
//! steps. It never prints; it reports [`Event`]s to the view.

pub use crate::events::{Event, HostBusy, HostError, Recap, Sink};
use crate::transport::{Transport, TransportError, Transports};
use infra_core::desired::DesiredHost;
use infra_core::facts;
use infra_core::plan::{files_to_diff, plan_host, HostPlan};
use infra_core::script::{
    apply_script_with, parse_report, Report, RunTag, ScriptOptions, StepStatus,
};
use infra_core::secrets::Secrets;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A host ready to apply: its transport, desired state and plan.
pub struct Target {
    pub conn: Box<dyn Transport>,
    pub desired: DesiredHost,
    pub plan: HostPlan,
    /// Commands run on the host so far (for the round-trip count).
    pub round_trips: usize,
}

/// Connects to every host, gathers its facts and plans it, `parallel` hosts at a time.
pub async fn gather(
    transports: Arc<Transports>,
    hosts: Vec<(DesiredHost, String)>,
    secrets: Arc<Secrets>,
    mirrors: Arc<crate::git::Mirrors>,
    parallel: usize,
    connect_wait: std::time::Duration,
    sink: Sink,
) -> (Vec<Target>, Vec<HostError>) {
    let sem = Arc::new(host_slots(parallel));
    let mut tasks = Vec::new();
    for (mut desired, address) in hosts {
        let (transports, secrets, sem, sink, mirrors) = (
            transports.clone(),
            secrets.clone(),
            sem.clone(),
            sink.clone(),
            mirrors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let name = desired.name.clone();
            // A machine launched moments ago takes a while to answer: retry until the wait
            // is over (0 for hosts that were already there).
            let deadline = tokio::time::Instant::now() + connect_wait;
            let conn = loop {
                match transports.connect(&name, &address).await {
                    Ok(c) => break c,
                    Err(e) if e.may_come_up() && tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    }
                    Err(e) => return Err(host_error(&name, &e)),
                }
            };
            match plan_one(conn.as_ref(), &mut desired, &secrets, &mirrors).await {
                Ok((plan, round_trips)) => {
                    sink(Event::Planned {
                        host: name,
                        steps: plan.steps.len(),
                    });
                    Ok(Target {
                        conn,
                        desired,
                        plan,
                        round_trips,
                    })
                }
                Err(e) => {
                    conn.close().await;
                    Err(host_error(&name, &e))
                }
            }
        }));
    }
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(target)) => targets.push(target),
            Ok(Err(e)) => errors.push(e),
            Err(join) => errors.push(HostError {
                host: "?".into(),
                error: join.to_string(),
                hint: None,
            }),
        }
    }
    targets.sort_by(|a, b| a.desired.name.cmp(&b.desired.name));
    errors.sort_by(|a, b| a.host.cmp(&b.host));
    (targets, errors)
}

fn host_error(host: &str, e: &TransportError) -> HostError {
    HostError {
        host: host.to_string(),
        error: e.to_string(),
        hint: e.hint(),
    }
}

/// Facts (one command), the current content of changed files when there are any (one more),
/// then the plan (with the commit count of a new release, from the controller's mirror).
async fn plan_one(
    conn: &dyn Transport,
    desired: &mut DesiredHost,
    secrets: &Secrets,
    mirrors: &crate::git::Mirrors,
) -> Result<(HostPlan, usize), TransportError> {
    let name = desired.name.clone();
    let fail = |what: &str, message: String| TransportError::Run {
        host: name.clone(),
        what: what.into(),
        message,
    };
    let out = conn
        .read("gathering facts", &facts::script(&*desired))
        .await?;
    if out.code != Some(0) {
        return Err(fail(
            "gathering facts",
            format!("exit {:?}: {}", out.code, out.stderr.trim()),
        ));
    }
    let f = facts::parse(&out.stdout).map_err(|e| fail("reading facts", e.to_string()))?;
    tokio::task::block_in_place(|| {
        crate::git::fill_commits(mirrors, desired, f.release.current.as_deref())
    });
    let mut round_trips = 1;
    let wanted = files_to_diff(desired, &f);
    let mut current = BTreeMap::new();
    if !wanted.is_empty() {
        round_trips += 1;
        let mut script = String::from("for f in");
        for w in &wanted {
            script.push(' ');
            script.push_str(&facts::sh_quote(w));
        }
        script.push_str("; do printf '@@file\\t%s\\n' \"$f\"; base64 -w0 < \"$f\"; echo; done\n");
        let out = conn.read("reading changed files", &script).await?;
        let mut lines = out.stdout.lines();
        while let Some(line) = lines.next() {
            if let Some(path) = line.strip_prefix("@@file\t") {
                let data = lines.next().unwrap_or_default();
                use base64::Engine;
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data.trim()) {
                    current.insert(path.to_string(), bytes);
                }
            }
        }
    }
    Ok((plan_host(desired, &f, &current, secrets), round_trips))
}

/// Runs every target's plan, `parallel` hosts at a time; a failed host does not stop others.
/// The targets come back with their connections open (the release phases use them).
pub async fn apply(
    targets: Vec<Target>,
    secrets: Arc<Secrets>,
    parallel: usize,
    sink: Sink,
) -> (Vec<Target>, Vec<Recap>) {
    let sem = Arc::new(host_slots(parallel));
    let mut tasks = Vec::new();
    for t in targets {
        let (sem, sink, secrets) = (sem.clone(), sink.clone(), secrets.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let recap = apply_one(&t, &secrets, &sink).await;
            (t, recap)
        }));
    }
    let mut done = Vec::new();
    let mut recaps = Vec::new();
    for t in tasks {
        if let Ok((t, r)) = t.await {
            done.push(t);
            recaps.push(r);
        }
    }
    done.sort_by(|a, b| a.desired.name.cmp(&b.desired.name));
    recaps.sort_by(|a, b| a.host.cmp(&b.host));
    (done, recaps)
}

async fn apply_one(t: &Target, secrets: &Secrets, sink: &Sink) -> Recap {
    let resources = count_resources(&t.desired);
    let mut recap = Recap {
        host: t.desired.name.clone(),
        ok: resources,
        changed: 0,
        failed: false,
        unreachable: false,
        failure: None,
        busy: None,
    };
    if t.plan.steps.is_empty() {
        return recap;
    }
    let options = ScriptOptions::from_env(run_tag().clone());
    let script = match apply_script_with(&t.plan, &t.desired, &options) {
        Ok(s) => s,
        Err(e) => {
            recap.failed = true;
            recap.failure = Some(("preparing the apply script".into(), vec![e.to_string()]));
            return recap;
        }
    };
    let mut reported = Reported {
        target: t,
        secrets,
        sink,
        changed: 0,
        failed_step: None,
        output: Vec::new(),
        done: false,
        locked: None,
    };
    let result = t
        .conn
        .run("applying", &script, &mut |line: &str| reported.line(line))
        .await;
    let Reported {
        changed,
        failed_step,
        mut output,
        done,
        locked,
        ..
    } = reported;
    recap.changed = changed;
    recap.ok = resources.saturating_sub(changed);
    if let Some(holder) = locked {
        recap.failed = true;
        recap.busy = Some(HostBusy {
            host: t.desired.name.clone(),
            holder,
        });
        return recap;
    }
    match result {
        Ok(out) if out.code == Some(0) && done => {}
        Ok(out) => {
            recap.failed = true;
            if output.is_empty() {
                output = out.stderr.lines().map(|l| secrets.redact(l)).collect();
            }
            recap.failure = Some((
                failed_step.unwrap_or_else(|| format!("the apply script (exit {:?})", out.code)),
                output,
            ));
        }
        Err(e) => {
            recap.failed = true;
            recap.unreachable = true;
            recap.failure = Some(("the connection".into(), vec![e.to_string()]));
        }
    }
    recap
}

/// What a host's apply script has reported so far, from its `@@infra` lines as they arrive.
struct Reported<'a> {
    target: &'a Target,
    secrets: &'a Secrets,
    sink: &'a Sink,
    changed: usize,
    /// The last step that did not report a change: the one that failed.
    failed_step: Option<String>,
    /// Output of the failing step (secrets redacted).
    output: Vec<String>,
    /// The script reached its end.
    done: bool,
    /// Another run holds the host's lock.
    locked: Option<infra_core::script::Holder>,
}

impl Reported<'_> {
    fn line(&mut self, line: &str) {
        let host = &self.target.desired.name;
        match parse_report(line) {
            Some(Report::Step { index, status }) => {
                let steps = &self.target.plan.steps;
                let address = steps.get(index).map(|s| s.address()).unwrap_or_default();
                if status == StepStatus::Changed {
                    self.changed += 1;
                } else {
                    self.failed_step = Some(address.clone());
                }
                (self.sink)(Event::Step {
                    host: host.clone(),
                    index,
                    total: steps.len(),
                    address,
                    status,
                });
            }
            Some(Report::Output(text)) => {
                let text = self.secrets.redact(&text);
                (self.sink)(Event::Output {
                    host: host.clone(),
                    line: text.clone(),
                });
                self.output.push(text);
            }
            Some(Report::Done) => self.done = true,
            Some(Report::Fatal(text)) => self.output.push(self.secrets.redact(&text)),
            Some(Report::Locked(holder)) => self.locked = Some(holder),
            None => {}
        }
    }
}

/// This run, as host locks record it: an id unique to this process (time, pid, and a
/// hash of them) and `user@controller-hostname`. Made once, the same on every host.
pub fn run_tag() -> &'static RunTag {
    static TAG: std::sync::OnceLock<RunTag> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = format!(
            "{}.{}.{}",
            now.as_secs(),
            now.subsec_nanos(),
            std::process::id()
        );
        let id = infra_core::state::sha256(seed.as_bytes());
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| user_of_process());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        RunTag::new(id.get(..12).unwrap_or("run"), &format!("{user}@{host}"))
    })
}

/// The name of the user running infra, from its uid and /etc/passwd (`uid N` if not there).
fn user_of_process() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// How many things the host's roles manage, for the recap's `ok` count.
fn count_resources(d: &DesiredHost) -> usize {
    d.packages.len()
        + d.roles
            .iter()
            .map(|r| {
                r.groups.len()
                    + r.users.len()
                    + r.dirs.len()
                    + r.files.len()
                    + r.links.len()
                    + r.services.len()
                    + r.commands.len()
            })
            .sum::<usize>()
}

/// `--parallel N` hosts at a time; 0 means all of them.
pub(crate) fn host_slots(parallel: usize) -> Semaphore {
    Semaphore::new(if parallel == 0 {
        Semaphore::MAX_PERMITS
    } else {
        parallel
    })
}
