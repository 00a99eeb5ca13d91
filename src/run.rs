//! `plan` and `apply`: render the selected hosts, reach them, plan, confirm, apply.

use crate::cli::{Cli, RunFlags};
use crate::commands::{checked_env, load, parse_vars, report, CliError, Outcome};
use crate::engine::{self, Target};
use crate::ssh::SshConfig;
use crate::view::{self, Style};
use infra_core::desired::DesiredHost;
use infra_core::environment::HostView;
use infra_core::plan::Plan;
use infra_core::render::{Renderer, SharedContext};
use infra_core::secrets::Secrets;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

/// Everything needed to reach and plan the selected hosts of an environment.
struct Prepared {
    env: String,
    hosts: Vec<(DesiredHost, String)>,
    secrets: Secrets,
    ssh: SshConfig,
    missing_secrets: Vec<String>,
}

fn prepare(
    cli: &Cli,
    style: &Style,
    env_name: &str,
    flags: &RunFlags,
) -> Result<Option<Prepared>, CliError> {
    let overrides = parse_vars(&flags.vars)?;
    let Some(site) = load(cli, style)? else {
        return Ok(None);
    };
    let Some(env) = checked_env(&site, env_name, &overrides, style)? else {
        return Ok(None);
    };
    let (renderer, diags) = Renderer::new(&site);
    if report(style, diags) {
        return Ok(None);
    }
    let secrets = Secrets::load(&env.inventory.secrets, &site.root, std::env::vars())?;
    let shared = SharedContext::new(&env);
    let selected: Vec<_> = env
        .hosts
        .values()
        .filter(|h| selected(&flags.limit, &h.view))
        .collect();
    if selected.is_empty() {
        return Err(CliError::Var(format!(
            "--limit {} matches no host of `{}`",
            flags.limit.join(","),
            env.name
        )));
    }
    let mut hosts = Vec::new();
    let mut diags = Vec::new();
    let mut missing = Vec::new();
    for h in selected {
        let out = renderer.render_host(&env, &shared, h, &secrets);
        diags.extend(out.diagnostics);
        missing.extend(
            out.files
                .iter()
                .flat_map(|f| f.missing_secrets.iter().cloned()),
        );
        let address = h
            .view
            .address
            .clone()
            .unwrap_or_else(|| h.view.name.clone());
        hosts.push((DesiredHost::new(&env, h, out.files), address));
    }
    if report(style, infra_core::validate::merge_duplicates(diags)) {
        return Ok(None);
    }
    missing.sort();
    missing.dedup();
    let ssh = SshConfig::new(&env).map_err(|e| CliError::Var(e.to_string()))?;
    Ok(Some(Prepared {
        env: env.name.clone(),
        hosts,
        secrets,
        ssh,
        missing_secrets: missing,
    }))
}

/// `--limit`: `host:GLOB`, `role:NAME`, or a bare glob matched against names and roles.
fn selected(limit: &[String], h: &HostView) -> bool {
    if limit.is_empty() {
        return true;
    }
    limit.iter().any(|p| {
        if let Some(g) = p.strip_prefix("host:") {
            glob(g, &h.name)
        } else if let Some(r) = p.strip_prefix("role:") {
            h.all_roles.iter().any(|x| glob(r, x))
        } else {
            glob(p, &h.name) || h.all_roles.iter().any(|x| glob(p, x))
        }
    })
}

/// `*` and `?` globbing.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Var(format!("cannot start the async runtime: {e}")))
}

/// Hosts connected and planned; the runtime and ssh config live as long as the connections.
struct Planned {
    rt: tokio::runtime::Runtime,
    _ssh: Arc<SshConfig>,
    targets: Vec<Target>,
    plan: Plan,
    secrets: Arc<Secrets>,
}

impl Planned {
    fn close(self) {
        let Planned { rt, targets, .. } = self;
        rt.block_on(async {
            for t in targets {
                t.conn.close().await;
            }
        });
    }
}

/// Connects and plans; unreachable hosts are errors (nothing is changed anywhere).
fn plan_hosts(
    p: Prepared,
    parallel: usize,
    style: &Style,
) -> Result<Result<Planned, Outcome>, CliError> {
    let rt = runtime()?;
    let secrets = Arc::new(p.secrets);
    let ssh = Arc::new(p.ssh);
    let (targets, errors) = rt.block_on(engine::gather(
        ssh.clone(),
        p.hosts,
        secrets.clone(),
        parallel,
        view::progress_sink(style),
    ));
    let plan = Plan::new(&p.env, targets.iter().map(|t| t.plan.clone()).collect());
    let planned = Planned {
        rt,
        _ssh: ssh,
        targets,
        plan,
        secrets,
    };
    if !errors.is_empty() {
        for e in &errors {
            view::print_host_error(style, e);
        }
        planned.close();
        return Ok(Err(Outcome::Failed));
    }
    let trips: usize = planned.targets.iter().map(|t| t.round_trips).sum();
    view::print_note(
        style,
        &format!(
            "{} hosts planned with {trips} remote commands after login",
            planned.targets.len()
        ),
    );
    Ok(Ok(planned))
}

pub fn plan_cmd(
    cli: &Cli,
    style: &Style,
    env: &str,
    json: bool,
    detailed: bool,
    out: Option<&Path>,
    flags: &RunFlags,
) -> Result<Outcome, CliError> {
    let Some(p) = prepare(cli, style, env, flags)? else {
        return Ok(Outcome::Failed);
    };
    if !p.missing_secrets.is_empty() {
        view::print_warning(
            style,
            &format!(
                "secrets not set (placeholders planned): {}",
                p.missing_secrets.join(", ")
            ),
        );
    }
    let planned = match plan_hosts(p, flags.parallel, style)? {
        Ok(x) => x,
        Err(o) => return Ok(o),
    };
    let plan = planned.plan.clone();
    planned.close();
    if let Some(path) = out {
        let text = serde_json::to_string_pretty(&plan).map_err(|e| CliError::Var(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|source| CliError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        eprintln!(
            "saved the plan to {}; apply it with: infra apply {}",
            path.display(),
            path.display()
        );
    }
    if json {
        view::print_plan_json(&plan).map_err(CliError::Stdout)?;
    } else {
        view::print_plan(&plan).map_err(CliError::Stdout)?;
    }
    Ok(match (detailed, plan.has_changes()) {
        (true, true) => Outcome::Changes,
        _ => Outcome::Success,
    })
}

pub fn apply_cmd(
    cli: &Cli,
    style: &Style,
    target: &str,
    yes: bool,
    flags: &RunFlags,
) -> Result<Outcome, CliError> {
    let saved = load_saved(target)?;
    let env = saved
        .as_ref()
        .map(|p| p.environment.clone())
        .unwrap_or_else(|| target.to_string());
    let Some(p) = prepare(cli, style, &env, flags)? else {
        return Ok(Outcome::Failed);
    };
    if !p.missing_secrets.is_empty() {
        return Err(CliError::MissingSecrets {
            env: env.clone(),
            names: p.missing_secrets.clone(),
        });
    }
    let mut planned = match plan_hosts(p, flags.parallel, style)? {
        Ok(x) => x,
        Err(o) => return Ok(o),
    };
    if let Some(saved) = saved {
        // The saved plan is applied as reviewed, and only to hosts that did not change since.
        let stale: Vec<String> = saved
            .hosts
            .iter()
            .filter(|s| {
                !planned.targets.iter().any(|t| {
                    t.plan.host == s.host && t.plan.facts_fingerprint == s.facts_fingerprint
                })
            })
            .map(|s| s.host.clone())
            .collect();
        if !stale.is_empty() {
            planned.close();
            return Err(CliError::StalePlan { hosts: stale });
        }
        planned
            .targets
            .retain(|t| saved.hosts.iter().any(|s| s.host == t.plan.host));
        for t in &mut planned.targets {
            if let Some(s) = saved.hosts.iter().find(|s| s.host == t.plan.host) {
                t.plan = s.clone();
            }
        }
        planned.plan = saved;
    }
    view::print_plan(&planned.plan).map_err(CliError::Stdout)?;
    if !planned.plan.has_changes() {
        planned.close();
        return Ok(Outcome::Success);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            planned.close();
            return Err(CliError::NoConfirmation);
        }
        eprint!(
            "Apply these changes to {}? Only 'yes' is accepted: ",
            planned.plan.environment
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            planned.close();
            eprintln!("Apply cancelled; nothing was changed.");
            return Ok(Outcome::Failed);
        }
    }
    let Planned {
        rt,
        _ssh,
        targets,
        secrets,
        ..
    } = planned;
    let recaps = rt.block_on(engine::apply(
        targets,
        secrets,
        flags.parallel,
        view::progress_sink(style),
    ));
    drop(_ssh);
    view::print_recap(&recaps).map_err(CliError::Stdout)?;
    Ok(if recaps.iter().any(|r| r.failed) {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

/// A saved plan, when `target` names a file rather than an environment.
fn load_saved(target: &str) -> Result<Option<Plan>, CliError> {
    let path = Path::new(target);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Var(format!("cannot read {target}: {e}")))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        CliError::Var(format!(
            "{target} is not a plan saved by `infra plan --out`: {e}"
        ))
    })?;
    if plan.format_version != infra_core::plan::FORMAT_VERSION {
        return Err(CliError::Var(format!(
            "{target} has plan format {}, this infra reads {}: run `infra plan` again",
            plan.format_version,
            infra_core::plan::FORMAT_VERSION
        )));
    }
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("app*", "app12"));
        assert!(glob("db?", "db1"));
        assert!(!glob("db?", "db12"));
        assert!(glob("*", ""));
        assert!(!glob("app", "app1"));
    }
}
