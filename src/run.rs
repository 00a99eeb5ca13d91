//! `plan` and `apply`: render the selected hosts, reach them, plan, confirm, apply.

use crate::cli::{Cli, RunFlags};
use crate::engine::{self, Target};
use crate::error::{CliError, Outcome};
use crate::load::{checked_env, find_env, load, parse_vars, report};
use crate::lock::{EnvLock, Operation};
use crate::provider;
use crate::rollout::Rollout;
use crate::transport::{Login, Transports};
use crate::view::{self, Style};
use infra_core::cloud::{self, CloudPlan};
use infra_core::desired::DesiredHost;
use infra_core::environment::{Environment, HostView, ResolvedHost};
use infra_core::facts::Facts;
use infra_core::model::{HostKeys, ProviderKind};
use infra_core::plan::Inputs;
use infra_core::plan::{plan_host, HostPlan, Plan};
use infra_core::render::{render_hosts, Renderer};
use infra_core::saved::HostInputs;
use infra_core::secrets::Secrets;
use infra_core::vars::VarOverride;
use infra_protocol::{CloudFacts, HostKeysRequest, Scope};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

/// Everything needed to reach and plan the selected hosts of an environment.
pub(crate) struct Prepared {
    pub env: String,
    /// Hosts to reach (over SSH at their address, or `connection: local`).
    pub hosts: Vec<(DesiredHost, String)>,
    /// Hosts whose machine does not exist yet: planned as fresh machines.
    pub fresh: Vec<DesiredHost>,
    pub secrets: Secrets,
    pub transports: Transports,
    pub missing_secrets: Vec<String>,
    /// The cloud section (aws inventories) and the scope the provider works in.
    pub cloud: Option<(Scope, CloudPlan)>,
    /// What the plan is computed from, as digests.
    pub inputs: Inputs,
    /// The release repositories' mirrors (for the plan's commit counts).
    pub mirrors: Arc<crate::git::Mirrors>,
    /// Waves and release rolls of the selected hosts.
    pub rollout: Rollout,
}

/// What the cloud side of a run does.
pub(crate) enum CloudStage {
    /// Ask the provider what exists and plan the cloud (plan, apply).
    Plan,
    /// The cloud was just applied: these are the facts after it, the hosts whose machines it
    /// launched, and the release refs the plan resolved (the hosts get the commits it showed,
    /// even if a branch moved since); plan only the hosts.
    Known(Box<CloudFacts>, Vec<String>, Arc<crate::git::Mirrors>),
}

pub(crate) fn prepare(
    cli: &Cli,
    style: &Style,
    env_name: &str,
    flags: &RunFlags,
    stage: CloudStage,
) -> Result<Option<Prepared>, CliError> {
    let overrides = parse_vars(&flags.vars)?;
    let Some(site) = load(cli, style)? else {
        return Ok(None);
    };
    let Some(mut env) = checked_env(&site, env_name, &overrides, style)? else {
        return Ok(None);
    };
    let selected_names = selected_names(&env, flags)?;
    let (launched, mut mirrors) = match &stage {
        CloudStage::Known(_, launched, m) => (launched.clone(), (**m).clone()),
        CloudStage::Plan => (Vec::new(), crate::git::Mirrors::new(&site.root)),
    };
    let (renderer, diags) = Renderer::new(&site);
    if report(style, diags) {
        return Ok(None);
    }
    let secrets = Secrets::load(&env.inventory.secrets, &site.root, crate::environ::vars())?;
    let Some((mut cloud_plan, cloud_facts)) =
        cloud_section(style, &mut env, stage, &renderer, &secrets)?
    else {
        return Ok(None);
    };
    let fresh_names = cloud_plan
        .as_ref()
        .map(|(_, p)| p.new_hosts.clone())
        .unwrap_or_default();
    let mut objects_missing = Vec::new();
    if let (Some((_, plan)), Some(facts)) = (&mut cloud_plan, &cloud_facts) {
        match plan_objects(style, &env, &renderer, &secrets, facts, plan) {
            Some(missing) => objects_missing = missing,
            None => return Ok(None),
        }
    }
    let selected: Vec<_> = selected_names
        .iter()
        .filter_map(|n| env.hosts.get(n))
        .collect();
    let Some(mut desired) = desired_hosts(style, &env, &renderer, &secrets, &selected) else {
        return Ok(None);
    };
    // Sorted and deduplicated with the cloud's own in `with_cloud_secrets`.
    desired.missing_secrets.extend(objects_missing);
    crate::git::resolve_releases(&mut mirrors, &mut desired.hosts)?;
    let rollout = Rollout::new(
        &env,
        &desired.hosts.iter().map(|(d, _)| d).collect::<Vec<_>>(),
    );
    let (fresh, hosts): (Vec<_>, Vec<_>) = desired
        .hosts
        .into_iter()
        .partition(|(d, _)| fresh_names.contains(&d.name));
    let mut transports = Transports::new(&env, hosts.iter().map(|(d, _)| d.name.as_str()))?;
    if let Some(facts) = &cloud_facts {
        pin_host_keys(style, &env, facts, &launched, &hosts, &mut transports)?;
    }
    let inputs = inputs(&env, &hosts, &fresh, &secrets, &overrides, flags);
    Ok(Some(Prepared {
        env: env.name.clone(),
        hosts,
        fresh: fresh.into_iter().map(|(d, _)| d).collect(),
        secrets,
        transports,
        missing_secrets: with_cloud_secrets(desired.missing_secrets, &cloud_plan),
        cloud: cloud_plan,
        inputs,
        mirrors: Arc::new(mirrors),
        rollout,
    }))
}

/// The objects roles publish (`publish:`), rendered for every host of their roles, added to
/// the cloud plan; the secrets they need that are not set. `None`: a problem was reported.
fn plan_objects(
    style: &Style,
    env: &Environment,
    renderer: &Renderer,
    secrets: &Secrets,
    facts: &CloudFacts,
    plan: &mut CloudPlan,
) -> Option<Vec<String>> {
    let (objects, diags) = cloud::objects::render(env, renderer, secrets);
    if report(style, diags) {
        return None;
    }
    match cloud::objects::add(plan, env, facts, &objects) {
        Ok(()) => Some(objects.missing_secrets.into_iter().collect()),
        Err(d) => {
            report(style, vec![*d]);
            None
        }
    }
}

/// The secrets the hosts' files need and the cloud's records need (a DKIM key) that are not
/// set, sorted, each once.
fn with_cloud_secrets(mut missing: Vec<String>, cloud: &Option<(Scope, CloudPlan)>) -> Vec<String> {
    if let Some((_, p)) = cloud {
        missing.extend(p.missing_secrets.iter().cloned());
    }
    missing.sort();
    missing.dedup();
    missing
}

/// The digests of what the plan of `hosts` and `fresh` is computed from.
fn inputs(
    env: &Environment,
    hosts: &[(DesiredHost, String)],
    fresh: &[(DesiredHost, String)],
    secrets: &Secrets,
    overrides: &[VarOverride],
    flags: &RunFlags,
) -> Inputs {
    let found: Vec<_> = hosts
        .iter()
        .chain(fresh)
        .filter_map(|(d, _)| {
            let h = env.hosts.get(&d.name)?;
            Some((&h.view, env.file_vars(h, &Default::default()), d))
        })
        .collect();
    let listed: Vec<HostInputs> = found.iter().map(|(v, vars, d)| (*v, vars, *d)).collect();
    Inputs::new(
        env!("CARGO_PKG_VERSION"),
        &listed,
        secrets,
        overrides,
        &flags.limit,
    )
}

/// The hosts a run works on: what `--limit` selects, none with `--cloud-only`.
fn selected_names(env: &Environment, flags: &RunFlags) -> Result<Vec<String>, CliError> {
    let prov = &env.inventory.provider.value;
    let has_cloud = prov.kind == ProviderKind::Aws || prov.bucket.is_some();
    if flags.cloud_only && !has_cloud {
        return Err(CliError::Var(format!(
            "--cloud-only: `{}` is a static inventory, it has no cloud section",
            env.name
        )));
    }
    let names: Vec<String> = env
        .hosts
        .values()
        .filter(|h| !flags.cloud_only && selected(&flags.limit, &h.view))
        .map(|h| h.view.name.clone())
        .collect();
    if names.is_empty() && !flags.cloud_only {
        return Err(CliError::Var(format!(
            "--limit {} matches no host of `{}`",
            flags.limit.join(","),
            env.name
        )));
    }
    Ok(names)
}

/// An aws inventory's cloud: its facts set on `env` (so hosts see their addresses), and the
/// cloud plan when `stage` asks for one. `None`: a problem was reported.
#[allow(clippy::type_complexity)]
fn cloud_section(
    style: &Style,
    env: &mut Environment,
    stage: CloudStage,
    renderer: &Renderer,
    secrets: &Secrets,
) -> Result<Option<(Option<(Scope, CloudPlan)>, Option<Box<CloudFacts>>)>, CliError> {
    let prov = &env.inventory.provider.value;
    let is_aws = prov.kind == ProviderKind::Aws;
    if !is_aws && prov.bucket.is_none() {
        return Ok(Some((None, None)));
    }
    let scope = cloud::scope(env);
    let facts = match stage {
        CloudStage::Plan => {
            let what = format!(
                "reading the AWS resources of {} ({})",
                env.name, scope.region
            );
            view::print_note(style, &what);
            provider::discover(&scope)?
        }
        CloudStage::Known(f, _, _) => {
            env.set_cloud_facts(&f);
            return Ok(Some((None, Some(f))));
        }
    };
    if !is_aws {
        // A static inventory with a bucket: the bucket and its objects are its cloud.
        let plan = cloud::objects::static_plan(env, &facts);
        return Ok(Some((Some((scope, plan)), Some(Box::new(facts)))));
    }
    env.set_cloud_facts(&facts);
    match cloud::plan_with(env, &facts, cloud::Mode::Converge, renderer, secrets) {
        Ok(plan) => Ok(Some((Some((scope, plan)), Some(Box::new(facts))))),
        Err(d) => {
            report(style, vec![*d]);
            Ok(None)
        }
    }
}

/// Out-of-band host keys (aws): before the first connection to a machine infra launched (or
/// any whose address has no key in known_hosts yet), its keys are read from its console
/// output, where cloud-init prints them, and pinned; such a host is then reached with strict
/// checking. A machine launched in this run without keys on its console is refused (so is any
/// host with `ssh.host_keys: strict`); `ssh.host_keys: accept-new` skips all this.
fn pin_host_keys(
    style: &Style,
    env: &Environment,
    facts: &CloudFacts,
    launched: &[String],
    hosts: &[(DesiredHost, String)],
    transports: &mut Transports,
) -> Result<(), CliError> {
    let mode = env.inventory.ssh.host_keys;
    let launched_here = |h: &str| launched.iter().any(|l| l == h);
    if mode == HostKeys::AcceptNew {
        // A machine launched anew at an address has new keys: forget the old ones.
        for (_, address) in hosts.iter().filter(|(d, _)| launched_here(&d.name)) {
            transports.forget(address);
        }
        return Ok(());
    }
    let wanted: BTreeMap<String, (String, String)> = hosts
        .iter()
        .filter(|(d, address)| launched_here(&d.name) || !transports.knows(address))
        .filter_map(|(d, address)| {
            let id = facts.instance(&d.name)?.id.clone();
            Some((d.name.clone(), (id, address.clone())))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = wanted.keys().map(String::as_str).collect();
    view::print_note(
        style,
        &format!(
            "reading the SSH host keys of {} from their console output",
            names.join(", ")
        ),
    );
    let req = HostKeysRequest {
        scope: cloud::scope(env),
        instances: wanted
            .iter()
            .map(|(h, (id, _))| (h.clone(), id.clone()))
            .collect(),
        wait_seconds: if wanted.keys().any(|h| launched_here(h)) {
            NEW_MACHINE_SSH_WAIT.as_secs()
        } else {
            0
        },
    };
    let keys = provider::host_keys(&req, &mut view::cloud_progress(style))?;
    let mut missing = Vec::new();
    let mut pinned = Vec::new();
    for (host, (_, address)) in &wanted {
        match keys.get(host).filter(|k| !k.is_empty()) {
            Some(k) => {
                transports.pin(host, address, k)?;
                pinned.push(host.as_str());
            }
            None if launched_here(host) || mode == HostKeys::Strict => missing.push(host.clone()),
            None => view::print_warning(
                style,
                &format!("{host}: no SSH host keys on its console output; its key is accepted on first use (`ssh.host_keys: strict` refuses instead)"),
            ),
        }
    }
    if !missing.is_empty() {
        return Err(CliError::HostKeysMissing {
            env: env.name.clone(),
            hosts: missing,
        });
    }
    if !pinned.is_empty() {
        view::print_note(
            style,
            &format!(
                "pinned the SSH host keys of {} from their console output; they are reached with strict checking",
                pinned.join(", ")
            ),
        );
    }
    Ok(())
}

/// The selected hosts rendered: each one's desired state and address, and the secrets some
/// file needed that are not set.
struct Desired {
    hosts: Vec<(DesiredHost, String)>,
    missing_secrets: Vec<String>,
}

/// Renders `selected` through the one render pipeline; `None` when a problem was reported.
fn desired_hosts(
    style: &Style,
    env: &Environment,
    renderer: &Renderer,
    secrets: &Secrets,
    selected: &[&ResolvedHost],
) -> Option<Desired> {
    let rendered = render_hosts(env, renderer, secrets, selected);
    let pairs: Vec<_> = selected.iter().copied().zip(rendered).collect();
    // Each host's desired state (its files' digests among it) on every core, as rendering.
    let built = infra_core::par::map(pairs, |(h, mut out)| {
        let diags = std::mem::take(&mut out.diagnostics);
        let missing: Vec<String> = out
            .files
            .iter()
            .flat_map(|f| f.missing_secrets.iter().cloned())
            .collect();
        let address = h
            .view
            .address
            .clone()
            .unwrap_or_else(|| h.view.name.clone());
        (
            diags,
            missing,
            (DesiredHost::from_render(env, h, out), address),
        )
    });
    let mut diags = Vec::new();
    let mut missing = Vec::new();
    let mut hosts = Vec::new();
    for (d, m, host) in built {
        diags.extend(d);
        missing.extend(m);
        hosts.push(host);
    }
    if report(style, infra_core::validate::merge_duplicates(diags)) {
        return None;
    }
    missing.sort();
    missing.dedup();
    Some(Desired {
        hosts,
        missing_secrets: missing,
    })
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

/// `*` and `?` globbing, in O(pattern × text) time at worst: the two-pointer match that, on a
/// mismatch, retries only from the last `*` (an earlier `*` never needs retrying).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen, and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Var(format!("cannot start the async runtime: {e}")))
}

/// Hosts connected and planned; the runtime and transports live as long as the connections.
struct Planned {
    rt: tokio::runtime::Runtime,
    _transports: Arc<Transports>,
    targets: Vec<Target>,
    plan: Plan,
    secrets: Arc<Secrets>,
    scope: Option<Scope>,
    rollout: Rollout,
    mirrors: Arc<crate::git::Mirrors>,
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

/// Connects and plans; unreachable hosts are errors (nothing is changed anywhere). Hosts whose
/// machine does not exist yet are planned against a fresh machine, without connecting.
fn plan_hosts(
    p: Prepared,
    parallel: usize,
    connect_wait: std::time::Duration,
    style: &Style,
) -> Result<Result<Planned, Outcome>, CliError> {
    let rt = runtime()?;
    let secrets = Arc::new(p.secrets);
    let transports = Arc::new(p.transports);
    let (targets, errors) = rt.block_on(engine::gather(
        transports.clone(),
        p.hosts,
        secrets.clone(),
        p.mirrors.clone(),
        parallel,
        connect_wait,
        view::progress_sink(style),
    ));
    let fresh_plans: Vec<HostPlan> = p
        .fresh
        .iter()
        .map(|d| plan_host(d, &Facts::fresh(), &Default::default(), &secrets))
        .collect();
    let mut plan = Plan::new(
        &p.env,
        targets
            .iter()
            .map(|t| t.plan.clone())
            .chain(fresh_plans)
            .collect(),
    );
    let scope = p.cloud.as_ref().map(|(s, _)| s.clone());
    plan.cloud = p.cloud.map(|(_, c)| c);
    plan.inputs = p.inputs;
    plan.once = once_runs(&p.rollout, &targets);
    let planned = Planned {
        rt,
        _transports: transports,
        targets,
        plan,
        secrets,
        scope,
        rollout: p.rollout,
        mirrors: p.mirrors,
    };
    if !errors.is_empty() {
        for e in &errors {
            view::print_host_error(style, e);
        }
        planned.close();
        return Ok(Err(Outcome::Failed));
    }
    view::print_note(style, &round_trips_note(&planned.targets));
    Ok(Ok(planned))
}

/// How many commands planning took and how the hosts were reached, for stderr.
fn round_trips_note(targets: &[Target]) -> String {
    let trips: usize = targets.iter().map(|t| t.round_trips).sum();
    let count = |login: Login| targets.iter().filter(|t| t.conn.login() == login).count();
    let (reused, local) = (count(Login::Reused), count(Login::Local));
    if local > 0 && local == targets.len() {
        return format!(
            "{local} host planned on this machine (connection: local) with {trips} commands"
        );
    }
    let mut note = format!(
        "{} hosts planned with {trips} remote commands after login; {} new SSH logins",
        targets.len(),
        targets.len() - reused - local
    );
    if reused > 0 {
        note.push_str(&format!(", {reused} kept connections reused"));
    }
    if local > 0 {
        note.push_str(&format!(", {local} on this machine (connection: local)"));
    }
    note
}

pub fn plan_cmd(
    cli: &Cli,
    style: &Style,
    env: &str,
    format: view::PlanFormat,
    detailed: bool,
    out: Option<&Path>,
    flags: &RunFlags,
) -> Result<Outcome, CliError> {
    let Some(p) = prepare(cli, style, env, flags, CloudStage::Plan)? else {
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
    let planned = match plan_hosts(p, flags.parallel, Default::default(), style)? {
        Ok(x) => x,
        Err(o) => return Ok(o),
    };
    let plan = planned.plan.clone();
    planned.close();
    if let Some(path) = out {
        let text = serde_json::to_string_pretty(&plan).map_err(|e| CliError::Var(e.to_string()))?;
        write_private(path, (text + "\n").as_bytes())?;
        eprintln!(
            "saved the plan to {}; apply it with: infra apply {}",
            path.display(),
            path.display()
        );
    }
    view::print_plan_as(&plan, format).map_err(CliError::Stdout)?;
    Ok(match (detailed, plan.has_changes()) {
        (true, true) => Outcome::Changes,
        _ => Outcome::Success,
    })
}

/// Asks for `yes` on the terminal; refuses without one.
pub(crate) fn confirm(question: &str) -> Result<bool, CliError> {
    confirm_to(question, "apply")
}

/// [`confirm`], for a command that does `what` (`apply`, `roll back`).
pub(crate) fn confirm_to(question: &str, what: &'static str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NoConfirmation { what });
    }
    eprint!("{question} Only 'yes' is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() != "yes" {
        eprintln!("Cancelled; nothing was changed.");
        return Ok(false);
    }
    Ok(true)
}

/// How long the host phase waits for sshd on machines the cloud phase just launched.
const NEW_MACHINE_SSH_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

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
    let lock = take_lock(cli, style, &env, flags, Operation::Apply)?;
    let Some(p) = prepare(cli, style, &env, flags, CloudStage::Plan)? else {
        return Ok(Outcome::Failed);
    };
    let Some(_lock) = lock else {
        return Err(CliError::Var(format!(
            "cannot take the lock of {env}: the site did not load; nothing was changed"
        )));
    };
    if !p.missing_secrets.is_empty() {
        return Err(CliError::MissingSecrets {
            env: env.clone(),
            names: p.missing_secrets.clone(),
        });
    }
    let planned = match plan_hosts(p, flags.parallel, Default::default(), style)? {
        Ok(x) => x,
        Err(o) => return Ok(o),
    };
    if let Some(saved) = saved {
        if let Err(e) = check_saved(&planned.plan, &saved) {
            planned.close();
            return Err(e);
        }
    }
    view::print_plan(&planned.plan).map_err(CliError::Stdout)?;
    if !planned.plan.has_changes() {
        planned.close();
        return Ok(Outcome::Success);
    }
    if !yes {
        let question = format!("Apply these changes to {}?", planned.plan.environment);
        match confirm(&question) {
            Ok(true) => {}
            other => {
                planned.close();
                return other.map(|_| Outcome::Failed);
            }
        }
    }
    let cloud_changes = planned
        .plan
        .cloud
        .as_ref()
        .is_some_and(|c| !c.changes.is_empty());
    if !cloud_changes {
        return apply_hosts(planned, flags, style);
    }
    apply_cloud_then_hosts(cli, style, &env, flags, planned)
}

/// A saved plan is applied as reviewed: only when the plan computed now (from the site and the
/// hosts as they are) has exactly its inputs and steps; what runs is the plan computed now.
fn check_saved(now: &Plan, saved: &Plan) -> Result<(), CliError> {
    let (n, s) = (&now.inputs, &saved.inputs);
    if n.infra_version != s.infra_version {
        return Err(CliError::PlanInputs {
            what: format!(
                "by infra {}, this is infra {}",
                s.infra_version, n.infra_version
            ),
        });
    }
    if n.limit != s.limit {
        return Err(CliError::PlanInputs {
            what: format!(
                "with --limit `{}`, this apply has `{}`",
                s.limit.join(","),
                n.limit.join(",")
            ),
        });
    }
    if n.vars_digest != s.vars_digest {
        return Err(CliError::PlanInputs {
            what: "with other --var values than this apply's".into(),
        });
    }
    if let Some(c) = &saved.cloud {
        let fingerprint = now.cloud.as_ref().map(|c| c.facts_fingerprint.as_str());
        if fingerprint != Some(c.facts_fingerprint.as_str()) {
            return Err(CliError::StaleCloud {
                env: now.environment.clone(),
            });
        }
        // Same facts, other changes: the site changed (a published object's content).
        if now.cloud.as_ref().map(|n| &n.changes) != Some(&c.changes) {
            return Err(CliError::PlanInputs {
                what:
                    "with other cloud changes than the site gives now (a published object changed?)"
                        .into(),
            });
        }
    }
    let stale: Vec<String> = saved
        .hosts
        .iter()
        .filter(|s| {
            now.hosts
                .iter()
                .any(|t| t.host == s.host && t.facts_fingerprint != s.facts_fingerprint)
        })
        .map(|s| s.host.clone())
        .collect();
    if !stale.is_empty() {
        return Err(CliError::StalePlan { hosts: stale });
    }
    let differences = infra_core::saved::differences(saved, now);
    if n.site_digest != s.site_digest {
        return Err(CliError::SiteChanged { differences });
    }
    if !differences.is_empty() {
        return Err(CliError::PlanAltered { differences });
    }
    Ok(())
}

/// Writes `bytes` to `path` as a file only its owner reads: a new file created 0600 in the same
/// directory, renamed over `path` (a rename replaces a link, it never writes through one); an
/// existing symlink at `path` is refused.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let err = |source| CliError::Write {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(err(std::io::Error::other(
            "it is a symbolic link; refusing to write a plan through it",
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates its files with mode 0600 and O_EXCL.
    let mut tmp = tempfile::Builder::new()
        .prefix(".infra-plan-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The lock of `env_name`, taken before anything is read or changed; `None` when the site or the
/// environment has errors (the caller's own loading reports them and stops).
pub(crate) fn take_lock(
    cli: &Cli,
    style: &Style,
    env_name: &str,
    flags: &RunFlags,
    op: Operation,
) -> Result<Option<EnvLock>, CliError> {
    let Ok((site, diags)) = infra_core::site::Site::load(&cli.dir) else {
        return Ok(None);
    };
    if diags.iter().any(|d| d.is_error()) {
        return Ok(None);
    }
    let Ok(env) = find_env(&site, env_name, &[]) else {
        return Ok(None);
    };
    if infra_core::validate::check_inventory(&env)
        .iter()
        .any(|d| d.is_error())
    {
        return Ok(None);
    }
    // Bad flags are refused before the lock is reached for.
    selected_names(&env, flags)?;
    lock_env(style, &env, op).map(Some)
}

fn lock_env(style: &Style, env: &Environment, op: Operation) -> Result<EnvLock, CliError> {
    let lock = EnvLock::acquire(env, op)?;
    view::print_note(
        style,
        &format!(
            "took the lock of {} ({}); it is released at the end",
            env.name,
            lock.id()
        ),
    );
    Ok(lock)
}

/// `infra force-unlock ENV ID`: breaks the lock of ENV if ID holds it, after confirmation.
pub fn force_unlock_cmd(
    cli: &Cli,
    style: &Style,
    env_name: &str,
    id: &str,
    yes: bool,
) -> Result<Outcome, CliError> {
    let Some(site) = load(cli, style)? else {
        return Ok(Outcome::Failed);
    };
    let Some(env) = checked_env(&site, env_name, &[], style)? else {
        return Ok(Outcome::Failed);
    };
    let holder = crate::lock::inspect(&env)?;
    match &holder {
        Some(h) if h.id == id => {
            eprintln!("{env_name} is locked by {}", crate::lock::held_by(h));
        }
        _ => {
            return Err(crate::lock::LockError::NotHolder {
                env: env_name.to_string(),
                id: id.to_string(),
                holder: holder.map(Box::new),
            }
            .into())
        }
    }
    if !yes
        && !confirm(&format!(
            "Break the lock of {env_name}? Only do so when that run is over."
        ))?
    {
        return Ok(Outcome::Failed);
    }
    let h = crate::lock::force_unlock(&env, id)?;
    eprintln!("The lock of {env_name} held by {} is broken.", h.id);
    Ok(Outcome::Success)
}

/// The cloud first; then the hosts, planned again against what the cloud now is (new
/// machines get their real facts, templates their real addresses).
fn apply_cloud_then_hosts(
    cli: &Cli,
    style: &Style,
    env: &str,
    flags: &RunFlags,
    planned: Planned,
) -> Result<Outcome, CliError> {
    // The cloud first; then the hosts, planned again against what the cloud now is (new
    // machines get their real facts, templates their real addresses).
    let cloud_plan = planned.plan.cloud.clone().unwrap_or_default();
    let scope = planned.scope.clone();
    let mirrors = planned.mirrors.clone();
    planned.close();
    let Some(scope) = scope else {
        return Err(CliError::Var(
            "a cloud plan without a provider scope".into(),
        ));
    };
    let facts = provider::apply(&scope, &cloud_plan, &mut view::cloud_progress(style))?;
    view::print_cloud_done(style, &cloud_plan);
    if flags.cloud_only {
        return Ok(Outcome::Success);
    }
    let stage = CloudStage::Known(Box::new(facts), cloud_plan.new_hosts.clone(), mirrors);
    let Some(p) = prepare(cli, style, env, flags, stage)? else {
        return Ok(Outcome::Failed);
    };
    let wait = if cloud_plan.new_hosts.is_empty() {
        Default::default()
    } else {
        view::print_note(
            style,
            &format!(
                "waiting for SSH on the new machines: {}",
                cloud_plan.new_hosts.join(", ")
            ),
        );
        NEW_MACHINE_SSH_WAIT
    };
    let planned = match plan_hosts(p, flags.parallel, wait, style)? {
        Ok(x) => x,
        Err(o) => return Ok(o),
    };
    apply_hosts(planned, flags, style)
}

fn apply_hosts(planned: Planned, flags: &RunFlags, style: &Style) -> Result<Outcome, CliError> {
    let Planned {
        rt,
        _transports,
        targets,
        secrets,
        rollout,
        ..
    } = planned;
    let sink = view::progress_sink(style);
    let (outcome, recaps) = rt.block_on(async {
        if rollout.waves.len() > 1 || !rollout.roles.is_empty() {
            // Hosts wait for earlier waves, the once commands, earlier batches: keep them
            // connected (a run of one wave and no release needs none of this).
            crate::rollout::join_all(targets.iter().map(|t| t.conn.hold())).await;
        }
        let (targets, mut recaps) = crate::rollout::apply_waves(
            targets,
            &rollout,
            secrets.clone(),
            flags.parallel,
            sink.clone(),
        )
        .await;
        let failed: BTreeSet<String> = recaps
            .iter()
            .filter(|r| r.failed)
            .map(|r| r.host.clone())
            .collect();
        let mut outcome = if failed.is_empty() {
            Outcome::Success
        } else {
            Outcome::Partial
        };
        let phases = release_phases(&targets, &rollout, &failed, &secrets, &sink, flags.parallel);
        if let Err(failures) = phases.await {
            crate::rollout::mark(&mut recaps, &failures);
            outcome = Outcome::RollStopped;
        }
        for t in targets {
            t.conn.close().await;
        }
        (outcome, recaps)
    });
    drop(_transports);
    view::unless_closed(view::print_recap(&recaps)).map_err(CliError::Stdout)?;
    Ok(outcome)
}

/// Each release role in turn: its once commands when some selected host gets a new release,
/// then its switch, batch by batch. The first failure stops every roll. A role with a host
/// whose script failed (or was not applied) does not roll: its hosts stay on their release.
async fn release_phases(
    targets: &[Target],
    rollout: &Rollout,
    failed: &BTreeSet<String>,
    secrets: &Secrets,
    sink: &engine::Sink,
    parallel: usize,
) -> Result<(), Vec<crate::rollout::Failure>> {
    for role in &rollout.roles {
        let switches = crate::rollout::switches(targets, role);
        if switches.is_empty() {
            continue;
        }
        let down: Vec<&str> = role
            .hosts
            .iter()
            .filter(|h| failed.contains(*h))
            .map(String::as_str)
            .collect();
        if !down.is_empty() {
            crate::rollout::not_rolled(&switches, &role.role, &down, sink);
            continue;
        }
        let once_target = targets.iter().find(|t| t.desired.name == role.once_host);
        if let Some(t) = once_target {
            if let Some(rel) = &t.desired.release {
                let commit = rel.commit.clone().unwrap_or_default();
                crate::rollout::once(
                    &t.desired.name,
                    t.conn.as_ref(),
                    rel,
                    &commit,
                    secrets,
                    sink,
                )
                .await
                .map_err(|f| vec![f])?;
            }
        }
        crate::rollout::roll(role, &switches, secrets, sink, true, parallel).await?;
    }
    Ok(())
}

/// The once commands the plan's release steps ask for: per release role with a selected host
/// getting a new release, on the role's once-host.
fn once_runs(rollout: &Rollout, targets: &[Target]) -> Vec<infra_core::plan::OnceRun> {
    rollout
        .roles
        .iter()
        .filter(|role| !crate::rollout::switches(targets, role).is_empty())
        .filter_map(|role| {
            let t = targets.iter().find(|t| t.desired.name == role.once_host)?;
            let rel = t.desired.release.as_ref()?;
            (!rel.once.is_empty()).then(|| infra_core::plan::OnceRun {
                role: role.role.clone(),
                host: role.once_host.clone(),
                commit: rel.commit.clone().unwrap_or_default(),
                commands: rel.once.clone(),
            })
        })
        .collect()
}

/// `infra destroy ENV`: everything the environment owns in the cloud goes.
pub fn destroy_cmd(
    cli: &Cli,
    style: &Style,
    env_name: &str,
    yes: bool,
) -> Result<Outcome, CliError> {
    let Some(site) = load(cli, style)? else {
        return Ok(Outcome::Failed);
    };
    let Some(env) = checked_env(&site, env_name, &[], style)? else {
        return Ok(Outcome::Failed);
    };
    let prov = &env.inventory.provider.value;
    let is_aws = prov.kind == ProviderKind::Aws;
    if !is_aws && prov.bucket.is_none() {
        return Err(CliError::Var(format!(
            "`{env_name}` is a static inventory: infra created none of its machines, so there is nothing to destroy"
        )));
    }
    let _lock = lock_env(style, &env, Operation::Destroy)?;
    let scope = cloud::scope(&env);
    let facts = provider::discover(&scope)?;
    let planned = if is_aws {
        cloud::plan(&env, &facts, cloud::Mode::Destroy)
    } else {
        // A static inventory's cloud is its bucket: its objects, then the bucket, go.
        cloud::objects::plan(&env, &facts, &Default::default(), cloud::Mode::Destroy).map(
            |(changes, kept)| CloudPlan {
                changes,
                kept,
                ..cloud::objects::static_plan(&env, &facts)
            },
        )
    };
    let cloud_plan = match planned {
        Ok(p) => p,
        Err(d) => {
            report(style, vec![*d]);
            return Ok(Outcome::Failed);
        }
    };
    let mut plan = Plan::new(&env.name, Vec::new());
    plan.cloud = Some(cloud_plan.clone());
    view::print_plan(&plan).map_err(CliError::Stdout)?;
    if cloud_plan.changes.is_empty() {
        return Ok(Outcome::Success);
    }
    if !yes && !confirm(&format!("Destroy everything {env_name} owns in AWS?"))? {
        return Ok(Outcome::Failed);
    }
    provider::apply(&scope, &cloud_plan, &mut view::cloud_progress(style))?;
    view::print_cloud_done(style, &cloud_plan);
    Ok(Outcome::Success)
}

/// The largest saved plan `apply` reads (diffs of big files included).
const MAX_PLAN_BYTES: u64 = 256 << 20;

/// A saved plan, when `target` names a file rather than an environment.
pub(crate) fn load_saved(target: &str) -> Result<Option<Plan>, CliError> {
    let path = Path::new(target);
    if !path.is_file() {
        return Ok(None);
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_PLAN_BYTES {
        return Err(CliError::Var(format!(
            "{target} is {size} bytes, over the {MAX_PLAN_BYTES} a saved plan may have: run `infra plan ENV --out FILE` again"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Var(format!("cannot read {target}: {e}")))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        CliError::Var(format!(
            "{target} is not a plan saved by `infra plan --out`: {e}; nothing was changed"
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
        assert!(glob("*db*", "masterdb1"));
        assert!(glob("a*b?c", "axxbyc"));
        assert!(!glob("a*b?c", "axxbc"));
        assert!(glob("**", "x"));
        assert!(!glob("", "x"));
        assert!(glob("é?", "éa"));
    }

    /// A pattern that took exponential time with backtracking at every `*`.
    #[test]
    fn globbing_is_not_exponential() {
        let pattern = format!("{}b", "a*".repeat(200));
        let text = "a".repeat(5000);
        assert!(!glob(&pattern, &text));
        assert!(glob(&format!("{}*", "a*".repeat(200)), &text));
    }
}
