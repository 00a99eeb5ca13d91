//! The phases of a run that span hosts: host scripts wave by wave (`after:`), then per release
//! role its once commands on one host and its switch batch by batch with health checks, a
//! failing batch switched back. Shared by `apply` and `rollback`. It never prints; it reports
//! [`Event`]s.

use crate::engine::{self, Target};
use crate::events::{Event, Recap, Sink};
use crate::transport::Transport;
use infra_core::desired::{DesiredHost, DesiredRelease};
use infra_core::environment::Environment;
use infra_core::model::{Batch, Health};
use infra_core::plan::Step;
use infra_core::release::short_commit;
use infra_core::secrets::Secrets;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How the selected hosts of a run are ordered: waves, and each release role's roll.
#[derive(Debug, Clone, Default)]
pub struct Rollout {
    /// Host names, wave by wave (`after:`); one wave when no role has `after:`.
    pub waves: Vec<Vec<String>>,
    /// Host -> the selected hosts it waits for (`after:`): it is not applied when one failed.
    pub waits: BTreeMap<String, Vec<String>>,
    /// The roles whose `release:` some selected host has, by name.
    pub roles: Vec<RoleRoll>,
}

/// One release role's roll over the selected hosts holding it.
#[derive(Debug, Clone)]
pub struct RoleRoll {
    pub role: String,
    /// Its selected hosts, by name.
    pub hosts: Vec<String>,
    /// Where its once commands run: the role's once-host when selected, else the first selected.
    pub once_host: String,
    pub batch: Option<Batch>,
    pub health: Option<Health>,
}

impl Rollout {
    /// The waves of `hosts` and the rolls of their release roles; a cycle of `after:` (which
    /// validation reports first) leaves every host in one wave.
    pub fn new(env: &Environment, hosts: &[&DesiredHost]) -> Rollout {
        let names: Vec<String> = hosts.iter().map(|d| d.name.clone()).collect();
        let waits = infra_core::rollout::waits_for_each(env, &names);
        let waves = infra_core::rollout::waves(env, &names).unwrap_or_else(|_| vec![names]);
        let mut roles: Vec<RoleRoll> = Vec::new();
        for d in hosts {
            let Some(rel) = &d.release else { continue };
            match roles.iter_mut().find(|r| r.role == rel.role) {
                Some(r) => r.hosts.push(d.name.clone()),
                None => {
                    let role = env.site.roles.get(&rel.role).map(|r| &r.value);
                    roles.push(RoleRoll {
                        role: rel.role.clone(),
                        hosts: vec![d.name.clone()],
                        once_host: String::new(),
                        batch: role.and_then(|r| r.batch.as_ref()).map(|b| b.value),
                        health: role
                            .and_then(|r| r.health.as_ref())
                            .map(|h| h.value.clone()),
                    })
                }
            }
        }
        for r in &mut roles {
            r.hosts.sort();
            let once = infra_core::environment::once_host(env, &r.role);
            r.once_host = match once.filter(|h| r.hosts.iter().any(|x| x == h)) {
                Some(h) => h.to_string(),
                None => r.hosts.first().cloned().unwrap_or_default(),
            };
        }
        order_roles(&mut roles, &waves);
        Rollout {
            waves,
            waits,
            roles,
        }
    }
}

/// Release roles roll in the order their hosts are applied: by the first wave holding one of
/// their hosts (a role `after:` another switches after it), then by name.
fn order_roles(roles: &mut [RoleRoll], waves: &[Vec<String>]) {
    let first_wave = |r: &RoleRoll| {
        waves
            .iter()
            .position(|w| w.iter().any(|h| r.hosts.contains(h)))
            .unwrap_or(usize::MAX)
    };
    roles.sort_by(|a, b| (first_wave(a), &a.role).cmp(&(first_wave(b), &b.role)));
}

/// Host scripts wave by wave, each wave's hosts in parallel. A host that waits for a host that
/// failed (or was itself not applied) is not applied: its recap names that host; hosts that do
/// not wait for it go on. Connections stay open.
pub async fn apply_waves(
    mut targets: Vec<Target>,
    rollout: &Rollout,
    secrets: Arc<Secrets>,
    parallel: usize,
    sink: Sink,
) -> (Vec<Target>, Vec<Recap>) {
    let mut done = Vec::new();
    let mut recaps: Vec<Recap> = Vec::new();
    let last = vec![targets.iter().map(|t| t.desired.name.clone()).collect()];
    // Hosts in no wave (none, normally) are applied last.
    for wave in rollout.waves.iter().chain(&last) {
        let (this, rest): (Vec<Target>, Vec<Target>) = targets
            .into_iter()
            .partition(|t| wave.contains(&t.desired.name));
        targets = rest;
        // Hosts that failed or were not applied: a host waiting for one of them is not applied.
        let stopped: BTreeSet<String> = recaps
            .iter()
            .filter(|r| r.failed)
            .map(|r| r.host.clone())
            .collect();
        let mut run = Vec::new();
        for t in this {
            let by = blocked_by(&rollout.waits, &stopped, &t.desired.name);
            if by.is_empty() {
                run.push(t);
            } else {
                recaps.push(not_reached(&t, &by));
                done.push(t);
            }
        }
        if run.is_empty() {
            continue;
        }
        let (applied, r) = engine::apply(run, secrets.clone(), parallel, sink.clone()).await;
        recaps.extend(r);
        done.extend(applied);
    }
    done.sort_by(|a, b| a.desired.name.cmp(&b.desired.name));
    recaps.sort_by(|a, b| a.host.cmp(&b.host));
    (done, recaps)
}

/// The hosts among `stopped` that `host` waits for.
fn blocked_by(
    waits: &BTreeMap<String, Vec<String>>,
    stopped: &BTreeSet<String>,
    host: &str,
) -> Vec<String> {
    waits
        .get(host)
        .map(|w| w.iter().filter(|h| stopped.contains(*h)).cloned().collect())
        .unwrap_or_default()
}

/// The recap of a host not applied because hosts it waits for (`after:`) failed or were not
/// applied.
fn not_reached(t: &Target, by: &[String]) -> Recap {
    Recap {
        host: t.desired.name.clone(),
        ok: 0,
        changed: 0,
        failed: true,
        unreachable: false,
        failure: Some((
            "its wave".into(),
            vec![format!(
                "not applied: it waits for {} (`after:`), which failed or was not applied",
                by.join(", ")
            )],
        )),
        busy: None,
    }
}

/// Says on each host of `switches` that role's release was built but not switched in, since
/// `down` (hosts of the role) failed.
pub fn not_rolled(switches: &[Switch<'_>], role: &str, down: &[&str], sink: &Sink) {
    for s in switches.iter().filter(|s| !down.contains(&s.host)) {
        let text = format!(
            "release {} built, not switched: {} (role {role}) failed",
            short_commit(&s.to),
            down.join(", ")
        );
        event(sink, s.host, text, true);
    }
}

/// A host of a roll that failed, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub host: String,
    /// What failed: `once commands`, `release switch`, `health check`, ...
    pub what: String,
    pub lines: Vec<String>,
}

/// One host's move in a roll: its release, where it goes and where it goes back to.
pub struct Switch<'a> {
    pub host: &'a str,
    pub conn: &'a dyn Transport,
    pub release: &'a DesiredRelease,
    pub to: String,
    /// The commit `current` points to now (`None`: no release yet).
    pub back: Option<String>,
}

/// The switches an applied plan asks for in `role`: each host with a release step.
pub fn switches<'a>(targets: &'a [Target], role: &RoleRoll) -> Vec<Switch<'a>> {
    targets
        .iter()
        .filter(|t| role.hosts.contains(&t.desired.name))
        .filter_map(|t| {
            let release = t.desired.release.as_ref()?;
            t.plan.steps.iter().find_map(|s| match s {
                Step::Release(r) => Some(Switch {
                    host: &t.desired.name,
                    conn: t.conn.as_ref(),
                    release,
                    to: r.to.clone(),
                    back: r.from.clone(),
                }),
                _ => None,
            })
        })
        .collect()
}

/// How a script ran on a host: whether it succeeded, its stdout lines and, when it failed,
/// its stderr and exit status (all secrets redacted).
struct Ran {
    ok: bool,
    stdout: Vec<String>,
    trouble: Vec<String>,
}

impl Ran {
    fn lines(self) -> Vec<String> {
        self.stdout.into_iter().chain(self.trouble).collect()
    }
}

/// Runs a change script on a host.
async fn run(conn: &dyn Transport, what: &str, script: &str, secrets: &Secrets) -> Ran {
    let mut stdout: Vec<String> = Vec::new();
    let result = {
        let mut on_line = |l: &str| stdout.push(secrets.redact(l));
        conn.run(what, script, &mut on_line).await
    };
    let (ok, trouble) = match result {
        Ok(out) if out.code == Some(0) => (true, Vec::new()),
        Ok(out) => {
            let mut t: Vec<String> = out.stderr.lines().map(|l| secrets.redact(l)).collect();
            t.push(match out.code {
                Some(c) => format!("({what}: exit status {c})"),
                None => format!("({what}: killed by a signal)"),
            });
            (false, t)
        }
        Err(e) => (false, vec![secrets.redact(&e.to_string())]),
    };
    Ran {
        ok,
        stdout,
        trouble,
    }
}

fn event(sink: &Sink, host: &str, text: String, failed: bool) {
    sink(Event::Release {
        host: host.to_string(),
        text,
        failed,
    });
}

/// The role's once commands, on `host` in release `commit`'s directory.
pub async fn once(
    host: &str,
    conn: &dyn Transport,
    release: &DesiredRelease,
    commit: &str,
    secrets: &Secrets,
    sink: &Sink,
) -> Result<(), Failure> {
    if release.once.is_empty() {
        return Ok(());
    }
    let script = infra_core::release::once_script(release, commit);
    let ran = run(conn, "once commands", &script, secrets).await;
    if ran.ok {
        let text = format!("once commands ran (release {})", short_commit(commit));
        event(sink, host, text, false);
        return Ok(());
    }
    let text = "once commands FAILED: nothing was switched".to_string();
    event(sink, host, text, true);
    Err(Failure {
        host: host.to_string(),
        what: "the once commands".into(),
        lines: ran.lines(),
    })
}

/// Switches `switches` batch by batch: each host's `current` to its release and reload, then
/// the health check of every host of the batch. A failing batch is switched back to where it
/// was (and reloaded), and the roll stops: later batches are not touched. After a batch passes,
/// its hosts' old releases beyond `keep` are pruned when `prune`. At most `parallel` hosts of
/// a batch are worked on at a time (0: all of them).
pub async fn roll(
    role: &RoleRoll,
    switches: &[Switch<'_>],
    secrets: &Secrets,
    sink: &Sink,
    prune: bool,
    parallel: usize,
) -> Result<(), Vec<Failure>> {
    let names: Vec<String> = switches.iter().map(|s| s.host.to_string()).collect();
    for batch in infra_core::rollout::batches(&names, role.batch) {
        let members: Vec<&Switch> = switches
            .iter()
            .filter(|s| batch.iter().any(|b| b == s.host))
            .collect();
        // The hosts of a batch switch together, then are checked together (`--parallel` at
        // a time).
        let switched = join_limited(
            members.iter().map(|s| switch(s, &s.to, secrets, sink)),
            parallel,
        )
        .await;
        let mut failures: Vec<Failure> = switched.into_iter().filter_map(Result::err).collect();
        if let (true, Some(h)) = (failures.is_empty(), &role.health) {
            let checked = join_limited(
                members.iter().map(|s| health(s, h, secrets, sink)),
                parallel,
            )
            .await;
            failures.extend(checked.into_iter().filter_map(Result::err));
        }
        if !failures.is_empty() {
            // Every host of the batch goes back, one that failed to switch included (its
            // switch may have gone halfway: its reload failed, say).
            let back = join_limited(
                members.iter().map(|s| switch_back(s, secrets, sink)),
                parallel,
            )
            .await;
            failures.extend(back.into_iter().flatten());
            return Err(failures);
        }
        if prune {
            join_limited(
                members.iter().map(|s| prune_one(s, secrets, sink)),
                parallel,
            )
            .await;
        }
    }
    Ok(())
}

/// Prunes a host's old releases; a failure is only reported (the release is live).
async fn prune_one(s: &Switch<'_>, secrets: &Secrets, sink: &Sink) {
    let script = infra_core::release::prune_script(s.release);
    let ran = run(s.conn, "pruning old releases", &script, secrets).await;
    if !ran.ok {
        let lines = ran.lines();
        let text = format!("could not prune old releases: {}", lines.join(" / "));
        event(sink, s.host, text, true);
    }
}

/// Runs `futures` concurrently on this task, at most `limit` of them at a time (0: all, as
/// `--parallel 0`); their outputs in order.
pub async fn join_limited<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
    limit: usize,
) -> Vec<F::Output> {
    let slots = crate::engine::host_slots(limit);
    let slots = &slots;
    join_all(futures.into_iter().map(|f| async move {
        // The semaphore is never closed: a permit always comes.
        let _slot = slots.acquire().await;
        f.await
    }))
    .await
}

/// Runs `futures` concurrently on this task; their outputs in order.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// One host's `current` to `to`, with its reload commands.
async fn switch(s: &Switch<'_>, to: &str, secrets: &Secrets, sink: &Sink) -> Result<(), Failure> {
    let script = infra_core::release::switch_script(s.release, to);
    let ran = run(s.conn, "release switch", &script, secrets).await;
    if ran.ok {
        event(
            sink,
            s.host,
            format!("release {} switched", short_commit(to)),
            false,
        );
        return Ok(());
    }
    let text = format!("release {} switch FAILED", short_commit(to));
    event(sink, s.host, text, true);
    Err(Failure {
        host: s.host.to_string(),
        what: format!("the switch to release {}", short_commit(to)),
        lines: ran.lines(),
    })
}

async fn health(
    s: &Switch<'_>,
    health: &Health,
    secrets: &Secrets,
    sink: &Sink,
) -> Result<(), Failure> {
    let script = infra_core::rollout::health_script(health);
    let ran = run(s.conn, "health check", &script, secrets).await;
    let verdict = infra_core::rollout::health_verdict(&ran.stdout.join("\n"));
    match verdict {
        Some(Ok(())) if ran.ok => {
            event(sink, s.host, "health ok".into(), false);
            Ok(())
        }
        other => {
            let why = match other {
                Some(Err(why)) => why,
                _ => "the check did not finish".into(),
            };
            event(sink, s.host, format!("health FAILED: {why}"), true);
            Err(Failure {
                host: s.host.to_string(),
                what: format!("the health check of release {}", short_commit(&s.to)),
                lines: ran.lines(),
            })
        }
    }
}

/// Puts a host of a failed batch back on the release it had; the failure, if that fails.
async fn switch_back(s: &Switch<'_>, secrets: &Secrets, sink: &Sink) -> Option<Failure> {
    let Some(back) = &s.back else {
        let text = "no previous release to switch back to: left on the new one".to_string();
        event(sink, s.host, text, true);
        return None;
    };
    let script = infra_core::release::switch_script(s.release, back);
    let ran = run(s.conn, "switching back", &script, secrets).await;
    if ran.ok {
        let text = format!("switched back to release {}", short_commit(back));
        event(sink, s.host, text, false);
        return None;
    }
    event(sink, s.host, "switching back FAILED".into(), true);
    Some(Failure {
        host: s.host.to_string(),
        what: format!("switching back to release {}", short_commit(back)),
        lines: ran.lines(),
    })
}

/// Marks the recaps of the hosts in `failures` failed, with what failed.
pub fn mark(recaps: &mut [Recap], failures: &[Failure]) {
    for f in failures {
        if let Some(r) = recaps.iter_mut().find(|r| r.host == f.host) {
            r.failed = true;
            let mut lines = f.lines.clone();
            if let Some((_, old)) = r.failure.take() {
                lines.splice(0..0, old);
            }
            r.failure = Some((f.what.clone(), lines));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{join_all, join_limited, order_roles, RoleRoll};

    fn role(name: &str, hosts: &[&str]) -> RoleRoll {
        RoleRoll {
            role: name.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            once_host: hosts[0].into(),
            batch: None,
            health: None,
        }
    }

    #[test]
    fn release_roles_roll_in_wave_order_then_by_name() {
        let waves = vec![vec!["db1".to_string()], vec!["api1".into(), "web1".into()]];
        let mut roles = vec![
            role("web", &["web1"]),
            role("api", &["api1"]),
            role("schema", &["db1"]),
        ];
        order_roles(&mut roles, &waves);
        let names: Vec<&str> = roles.iter().map(|r| r.role.as_str()).collect();
        assert_eq!(names, ["schema", "api", "web"]);
    }

    /// The first future waits for the second: run one after the other, they never end.
    /// `--parallel N` within a batch: at most N of the hosts' futures run at a time (0: all),
    /// outputs in order.
    #[tokio::test]
    async fn join_limited_runs_at_most_limit_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for (limit, most) in [(2, 2), (1, 1), (0, 5), (9, 5)] {
            let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let (running, peak) = (&running, &peak);
            let tasks = (0..5).map(|i| async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                running.fetch_sub(1, Ordering::SeqCst);
                i * 10
            });
            let out = join_limited(tasks, limit).await;
            assert_eq!(out, [0, 10, 20, 30, 40]);
            assert_eq!(peak.load(Ordering::SeqCst), most, "limit {limit}");
        }
    }

    #[tokio::test]
    async fn join_all_runs_the_futures_together_and_keeps_their_order() {
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let (a, b) = (notify.clone(), notify.clone());
        let waits = async move {
            a.notified().await;
            "first"
        };
        let wakes = async move {
            tokio::task::yield_now().await;
            b.notify_one();
            "second"
        };
        let both: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = &str> + Send>>> =
            vec![Box::pin(waits), Box::pin(wakes)];
        let out = tokio::time::timeout(std::time::Duration::from_secs(10), join_all(both))
            .await
            .expect("the futures ran together");
        assert_eq!(out, vec!["first", "second"]);
    }
}
