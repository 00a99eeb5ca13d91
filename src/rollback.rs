//! `infra rollback` and `infra releases`: the releases each host keeps, read from the hosts;
//! a rollback switches `current` back through the same batches, reloads and health checks as
//! apply (no build, no once commands).

use crate::cli::{Cli, RunFlags};
use crate::error::{CliError, Outcome};
use crate::rollout::{RoleRoll, Rollout, Switch};
use crate::transport::Transports;
use crate::view::{self, Style};
use infra_core::desired::{DesiredHost, DesiredRelease};
use infra_core::release::{short_commit, ReleaseInfo as Releases};
use infra_core::secrets::Secrets;
use std::sync::Arc;

/// A host with a release, reached, and what it keeps.
pub struct Probed {
    pub conn: Box<dyn crate::transport::Transport>,
    pub desired: DesiredHost,
    pub release: DesiredRelease,
    pub releases: Releases,
}

/// The flags `rollback` and `releases` share with plan.
pub fn flags(limit: &[String], vars: &[String]) -> RunFlags {
    RunFlags {
        limit: limit.to_vec(),
        cloud_only: false,
        parallel: 32,
        vars: vars.to_vec(),
    }
}

/// The release a host goes back to: `to` (a prefix of a release it keeps built), else the one
/// before `current` in its history that it still keeps. `None`: it is already there.
pub fn target(host: &str, r: &Releases, to: Option<&str>) -> Result<Option<String>, String> {
    let kept = || {
        if r.kept.is_empty() {
            "it keeps none".to_string()
        } else {
            let list: Vec<&str> = r.kept.iter().map(|(c, _)| short_commit(c)).collect();
            format!("it keeps {}", list.join(", "))
        }
    };
    let chosen = match to {
        Some(prefix) => match r.matching(prefix).as_slice() {
            [one] => one.to_string(),
            [] => {
                return Err(format!(
                    "host {host} keeps no built release {prefix} ({})",
                    kept()
                ))
            }
            _ => {
                return Err(format!(
                    "`{prefix}` names more than one release kept on host {host}: give more of the commit"
                ))
            }
        },
        None => match r.previous() {
            Some(c) => c.to_string(),
            None => {
                return Err(format!(
                    "host {host} has no previous release to go back to ({})",
                    kept()
                ))
            }
        },
    };
    Ok((Some(chosen.as_str()) != r.current.as_deref()).then_some(chosen))
}

/// The selected hosts with a release, reached, with what each keeps; for rollback and releases.
pub(crate) struct ProbedRun {
    pub rt: tokio::runtime::Runtime,
    pub _transports: Arc<Transports>,
    pub hosts: Vec<Probed>,
    pub secrets: Arc<Secrets>,
    pub rollout: Rollout,
}

/// Renders the selected hosts, reaches those with a release and reads the releases each
/// keeps. `None`: a problem was reported. Unreachable hosts are errors (nothing changed).
pub(crate) fn probe_releases(
    cli: &Cli,
    style: &Style,
    env: &str,
    flags: &RunFlags,
) -> Result<Option<ProbedRun>, CliError> {
    let Some(p) = crate::run::prepare(cli, style, env, flags, crate::run::CloudStage::Plan)? else {
        return Ok(None);
    };
    let hosts: Vec<(DesiredHost, String)> = p
        .hosts
        .into_iter()
        .filter(|(d, _)| d.release.is_some())
        .collect();
    if hosts.is_empty() {
        return Err(CliError::Var(format!(
            "no selected host of {env} has a release (a role with `release:`); nothing was changed"
        )));
    }
    let rt = crate::run::runtime()?;
    let transports = Arc::new(p.transports);
    // Every host at once: one login and one read each.
    let results = rt.block_on(crate::rollout::join_all(hosts.into_iter().map(
        |(desired, address)| {
            let transports = &transports;
            async move {
                match transports.connect(&desired.name, &address).await {
                    Ok(conn) => probe_one(conn, desired).await,
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )));
    let (probed, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let probed: Vec<Probed> = probed.into_iter().filter_map(Result::ok).collect();
    if !errors.is_empty() {
        close_all(&rt, probed);
        for e in errors.into_iter().filter_map(Result::err) {
            let e = crate::engine::HostError {
                host: String::new(),
                error: e,
                hint: None,
            };
            view::print_host_error(style, &e);
        }
        return Ok(None);
    }
    Ok(Some(ProbedRun {
        rt,
        _transports: transports,
        hosts: probed,
        secrets: Arc::new(p.secrets),
        rollout: p.rollout,
    }))
}

/// `infra rollback ENV [--to COMMIT]`.
pub fn rollback_cmd(
    cli: &Cli,
    style: &Style,
    env: &str,
    to: Option<&str>,
    yes: bool,
    flags: &RunFlags,
) -> Result<Outcome, CliError> {
    let lock = crate::run::take_lock(cli, style, env, flags, crate::lock::Operation::Rollback)?;
    let Some(probe) = probe_releases(cli, style, env, flags)? else {
        return Ok(Outcome::Failed);
    };
    let Some(_lock) = lock else {
        return Ok(Outcome::Failed);
    };
    let ProbedRun {
        rt,
        _transports,
        hosts,
        secrets,
        rollout,
    } = probe;
    let close = |hosts: Vec<Probed>| close_all(&rt, hosts);
    let mut moves = Vec::new();
    let mut refused = Vec::new();
    for h in &hosts {
        match target(&h.desired.name, &h.releases, to) {
            Ok(t) => moves.push(t),
            Err(e) => refused.push(e),
        }
    }
    if !refused.is_empty() {
        close(hosts);
        return Err(CliError::Rollback(refused.join("; ")));
    }
    let shown: Vec<view::RollbackMove> = hosts
        .iter()
        .zip(&moves)
        .map(|(h, to)| view::RollbackMove {
            host: &h.desired.name,
            role: &h.release.role,
            from: h.releases.current.as_deref(),
            to: to.as_deref(),
        })
        .collect();
    view::print_rollback(&shown).map_err(CliError::Stdout)?;
    if moves.iter().all(Option::is_none) {
        close(hosts);
        return Ok(Outcome::Success);
    }
    if !yes && !crate::run::confirm_to(&format!("Roll back these hosts of {env}?"), "roll back")? {
        close(hosts);
        return Ok(Outcome::Failed);
    }
    let sink = view::progress_sink(style);
    let failures = rt.block_on(async {
        // Hosts wait while earlier batches switch and are checked: keep them connected.
        crate::rollout::join_all(hosts.iter().map(|h| h.conn.hold())).await;
        let mut failures = Vec::new();
        for role in &rollout.roles {
            let switches = switches(&hosts, &moves, role);
            if switches.is_empty() {
                continue;
            }
            if let Err(f) =
                crate::rollout::roll(role, &switches, &secrets, &sink, false, flags.parallel).await
            {
                failures = f;
                break;
            }
        }
        failures
    });
    close(hosts);
    let failed: Vec<(&str, &str, &[String])> = failures
        .iter()
        .map(|f| (f.host.as_str(), f.what.as_str(), f.lines.as_slice()))
        .collect();
    view::unless_closed(view::print_rollback_end(&failed)).map_err(CliError::Stdout)?;
    Ok(if failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::RollStopped
    })
}

fn switches<'a>(hosts: &'a [Probed], moves: &[Option<String>], role: &RoleRoll) -> Vec<Switch<'a>> {
    hosts
        .iter()
        .zip(moves)
        .filter(|(h, _)| role.hosts.contains(&h.desired.name))
        .filter_map(|(h, m)| {
            Some(Switch {
                host: &h.desired.name,
                conn: h.conn.as_ref(),
                release: &h.release,
                to: m.clone()?,
                back: h.releases.current.clone(),
            })
        })
        .collect()
}

/// `infra releases ENV [--json]`.
pub fn releases_cmd(
    cli: &Cli,
    style: &Style,
    env: &str,
    json: bool,
    flags: &RunFlags,
) -> Result<Outcome, CliError> {
    let Some(probe) = probe_releases(cli, style, env, flags)? else {
        return Ok(Outcome::Failed);
    };
    let hosts = probe.hosts;
    let rows: Vec<view::ReleaseRow> = hosts
        .iter()
        .map(|h| view::ReleaseRow {
            host: &h.desired.name,
            role: &h.release.role,
            path: &h.release.path,
            info: &h.releases,
        })
        .collect();
    let shown = view::print_releases(&rows, json);
    close_all(&probe.rt, hosts);
    shown.map_err(CliError::Stdout)?;
    Ok(Outcome::Success)
}

/// Closes the probed hosts' connections.
fn close_all(rt: &tokio::runtime::Runtime, hosts: Vec<Probed>) {
    rt.block_on(async {
        for h in hosts {
            h.conn.close().await;
        }
    });
}

/// Reads the releases a host keeps (for `probe_releases`); the connection is closed on error.
pub async fn probe_one(
    conn: Box<dyn crate::transport::Transport>,
    desired: DesiredHost,
) -> Result<Probed, String> {
    let Some(release) = desired.release.clone() else {
        conn.close().await;
        return Err(format!("host {} has no release", desired.name));
    };
    let script = infra_core::release::releases_probe(&release);
    let failed = match conn.read("reading releases", &script).await {
        Ok(o) if o.code == Some(0) => match infra_core::release::parse_releases(&o.stdout) {
            Ok(releases) => {
                return Ok(Probed {
                    conn,
                    desired,
                    release,
                    releases,
                })
            }
            Err(e) => format!("host {}: cannot read its releases: {e}", desired.name),
        },
        Ok(o) => format!(
            "host {}: reading its releases failed (exit {:?}): {}",
            desired.name,
            o.code,
            o.stderr.trim()
        ),
        Err(e) => e.to_string(),
    };
    conn.close().await;
    Err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn releases(current: Option<&str>, built: &[&str], history: &[&str]) -> Releases {
        let history: Vec<(String, String)> = history
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("2026-12-0{}T00:00:00Z", i + 1), c.to_string()))
            .collect();
        Releases {
            current: current.map(str::to_string),
            kept: built
                .iter()
                .map(|c| {
                    let when = history
                        .iter()
                        .rev()
                        .find(|(_, h)| h == c)
                        .map(|(t, _)| t.clone());
                    (c.to_string(), when)
                })
                .collect(),
            history,
        }
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn the_previous_release_is_the_last_other_one_still_kept() {
        let r = releases(Some(C), &[A, B, C], &[A, B, C]);
        assert_eq!(target("h", &r, None), Ok(Some(B.to_string())));
        // B was pruned: A.
        let r = releases(Some(C), &[A, C], &[A, B, C]);
        assert_eq!(target("h", &r, None), Ok(Some(A.to_string())));
        // After a rollback to B, the previous one is C again.
        let r = releases(Some(B), &[A, B, C], &[A, B, C, B]);
        assert_eq!(target("h", &r, None), Ok(Some(C.to_string())));
        let r = releases(Some(A), &[A], &[A]);
        let e = target("app2", &r, None).unwrap_err();
        assert!(e.contains("host app2 has no previous release"), "{e}");
    }

    #[test]
    fn to_must_name_one_kept_release() {
        let r = releases(Some(C), &[A, B, C], &[A, B, C]);
        assert_eq!(target("h", &r, Some("aaaa")), Ok(Some(A.to_string())));
        assert_eq!(target("h", &r, Some("ccc")), Ok(None));
        let e = target("app2", &r, Some("dddd")).unwrap_err();
        assert_eq!(
            e,
            "host app2 keeps no built release dddd (it keeps aaaaaaa, bbbbbbb, ccccccc)"
        );
        assert!(target("h", &r, Some("")).is_err());
    }
}
