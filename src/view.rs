//! Views: everything `infra` prints. Data goes to stdout; diagnostics and progress to stderr.

mod markdown;

use crate::cli::{ColorChoice, HostsFormat, RolesFormat};
use crate::error::CliError;
use infra_core::diagnostic::{Diagnostic, Severity};
use infra_core::environment::Environment;
use infra_core::kinds;
use infra_core::model::Connection;
use infra_core::release::short_commit;
use infra_core::render::{Origin, RenderedFile};
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};

/// Whether stderr gets ANSI colours.
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn new(choice: ColorChoice) -> Style {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && io::stderr().is_terminal()
            }
        };
        Style { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// One diagnostic on stderr, rustc-style, with the offending line and a caret.
pub fn print_diagnostic(style: &Style, d: &Diagnostic) {
    let (label, code) = match d.severity {
        Severity::Error => ("error", "1;31"),
        Severity::Warning => ("warning", "1;33"),
    };
    let mut out = format!(
        "{}: {}\n",
        style.paint(code, label),
        style.paint("1", &d.message)
    );
    if let Some(loc) = &d.location {
        let num = loc.line.to_string();
        let pad = " ".repeat(num.len());
        out.push_str(&format!(
            "{pad}{} {}:{}:{}\n",
            style.paint("1;34", "-->"),
            loc.file.display(),
            loc.line,
            loc.column
        ));
        if let Some(snippet) = &loc.snippet {
            let bar = style.paint("1;34", "|");
            let caret_pad: String = snippet
                .chars()
                .take(loc.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("{pad} {bar}\n"));
            out.push_str(&format!("{} {bar} {snippet}\n", style.paint("1;34", &num)));
            out.push_str(&format!(
                "{pad} {bar} {caret_pad}{}\n",
                style.paint(code, &"^".repeat(loc.width.max(1)))
            ));
        }
    }
    for note in &d.notes {
        out.push_str(&format!("  = note: {note}\n"));
    }
    if let Some(hint) = &d.hint {
        out.push_str(&format!("  = {}: {hint}\n", style.paint("1;36", "hint")));
    }
    eprint!("{out}");
}

pub fn print_error(style: &Style, e: &CliError) {
    eprintln!("{}: {e}", style.paint("1;31", "error"));
    if let Some(hint) = e.hint() {
        eprintln!("  = {}: {hint}", style.paint("1;36", "hint"));
    }
}

pub fn print_validate_summary(
    style: &Style,
    errors: usize,
    warnings: usize,
    envs: usize,
    roles: usize,
    templates: usize,
    (files, hosts): (usize, usize),
) {
    let what = format!(
        "{envs} environment{}, {roles} roles, {templates} templates, {files} files rendered for {hosts} hosts",
        if envs == 1 { "" } else { "s" }
    );
    if errors == 0 {
        eprintln!(
            "{} {what}: no errors, {warnings} warning{}",
            style.paint("1;32", "valid:"),
            if warnings == 1 { "" } else { "s" }
        );
    } else {
        eprintln!(
            "{} {what}: {errors} error{}, {warnings} warning{}",
            style.paint("1;31", "invalid:"),
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
}

/// `roles list`: Salt's nested layout, JSON like `salt --out=json --static`, or YAML.
pub fn print_roles(data: &BTreeMap<String, Vec<String>>, format: RolesFormat) -> io::Result<()> {
    let mut out = io::stdout().lock();
    write_roles(&mut out, data, format)?;
    out.flush()
}

/// `roles list` without an environment: one block per environment, each the environment's own
/// output (indented under its name in text and YAML; an object of them in JSON).
pub fn print_roles_by_env(
    envs: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    format: RolesFormat,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if format == RolesFormat::Json {
        let json = serde_json::to_string(envs).map_err(io::Error::other)?;
        writeln!(out, "{json}")?;
        return out.flush();
    }
    let indent = if format == RolesFormat::Text {
        "    "
    } else {
        "  "
    };
    for (env, data) in envs {
        let mut block = Vec::new();
        write_roles(&mut block, data, format)?;
        writeln!(out, "{env}:")?;
        for line in String::from_utf8_lossy(&block).lines() {
            writeln!(out, "{indent}{line}")?;
        }
    }
    out.flush()
}

fn write_roles(
    out: &mut impl Write,
    data: &BTreeMap<String, Vec<String>>,
    format: RolesFormat,
) -> io::Result<()> {
    match format {
        RolesFormat::Text => {
            for (key, items) in data {
                writeln!(out, "{key}:")?;
                for i in items {
                    writeln!(out, "    - {i}")?;
                }
            }
        }
        RolesFormat::Json => {
            let json = serde_json::to_string(data).map_err(io::Error::other)?;
            writeln!(out, "{json}")?;
        }
        RolesFormat::Yaml => {
            for (key, items) in data {
                if items.is_empty() {
                    writeln!(out, "{key}: []")?;
                } else {
                    writeln!(out, "{key}:")?;
                    for i in items {
                        writeln!(out, "- {i}")?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A write to standard output whose reader went away counts as done: the command's own outcome
/// (a failed host, say) is what the exit code reports.
pub fn unless_closed(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `completions SHELL`: clap's completion script for the whole command line.
pub fn print_completions(shell: clap_complete::Shell) -> io::Result<()> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "infra", &mut out);
    let mut stdout = io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()
}

/// `man`: the manual page, roff, from the same definition as `--help`.
pub fn print_man() -> io::Result<()> {
    use clap::CommandFactory;
    // As `man --out-dir` (clap_mangen::generate_to) writes infra.1.
    let mut cmd = crate::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    let mut stdout = io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()
}

/// How `plan` and `show` print a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

impl PlanFormat {
    pub fn of(json: bool, markdown: bool) -> PlanFormat {
        match (json, markdown) {
            (true, _) => PlanFormat::Json,
            (_, true) => PlanFormat::Markdown,
            _ => PlanFormat::Human,
        }
    }
}

pub fn print_plan_as(plan: &infra_core::plan::Plan, format: PlanFormat) -> io::Result<()> {
    match format {
        PlanFormat::Human => print_plan(plan),
        PlanFormat::Json => print_plan_json(plan),
        PlanFormat::Markdown => {
            let mut out = io::stdout().lock();
            markdown::write_plan(&mut out, plan)?;
            out.flush()
        }
    }
}

/// A host in `hosts --out json`: the template's `host` object and the packages its roles install.
#[derive(serde::Serialize)]
struct HostRow<'a> {
    #[serde(flatten)]
    view: &'a infra_core::environment::HostView,
    packages: Vec<String>,
}

/// `hosts`: a table, or a JSON array of host objects.
pub fn print_hosts(env: &Environment, format: HostsFormat) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match format {
        HostsFormat::Json => {
            let rows: Vec<_> = env
                .hosts
                .values()
                .map(|h| HostRow {
                    view: &h.view,
                    packages: env.packages(h),
                })
                .collect();
            let json = serde_json::to_string_pretty(&rows).map_err(io::Error::other)?;
            writeln!(out, "{json}")?;
        }
        HostsFormat::Text => {
            let dash = || "-".to_string();
            let rows: Vec<[String; 6]> = env
                .hosts
                .values()
                .map(|h| &h.view)
                .map(|v| {
                    [
                        v.name.clone(),
                        v.roles.join(","),
                        v.private_ip.clone().unwrap_or_else(dash),
                        v.public_ip.clone().unwrap_or_else(dash),
                        match v.connection {
                            // Reached on the machine infra runs on, whatever its address.
                            Connection::Local => "local".to_string(),
                            Connection::Ssh => v.address.clone().unwrap_or_else(dash),
                        },
                        v.provider.to_string(),
                    ]
                })
                .collect();
            let header = [
                "HOST",
                "ROLES",
                "PRIVATE_IP",
                "PUBLIC_IP",
                "ADDRESS",
                "PROVIDER",
            ]
            .map(String::from);
            let mut widths = header.clone().map(|h| h.len());
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&header).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join("  ").trim_end())?;
            }
        }
    }
    out.flush()
}

pub fn print_raw(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// `render`: every file with a header naming its destination, owner, mode and origin.
pub fn print_files(files: &[(&RenderedFile, Vec<u8>)]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for (i, (f, content)) in files.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let origin = match &f.origin {
            Origin::Template(t) => format!("template {t}"),
            Origin::Source(s) => format!("source {s}"),
            Origin::Secret(s) => format!("secret {s}"),
        };
        writeln!(
            out,
            "==> {} ({}:{} {}, role {}, {origin}) <==",
            f.dest, f.owner, f.group, f.mode, f.role
        )?;
        out.write_all(content)?;
        if !content.ends_with(b"\n") && !content.is_empty() {
            writeln!(out)?;
        }
    }
    out.flush()
}

pub fn print_warning(style: &Style, text: &str) {
    eprintln!("{}: {text}", style.paint("1;33", "warning"));
}

pub fn print_note(style: &Style, text: &str) {
    eprintln!("{}: {text}", style.paint("1;36", "note"));
}

pub fn print_host_error(style: &Style, e: &crate::events::HostError) {
    eprintln!("{}: {}", style.paint("1;31", "error"), e.error);
    if let Some(h) = &e.hint {
        eprintln!("  = {}: {h}", style.paint("1;36", "hint"));
    }
}

/// Progress on stderr: a bar per host on a terminal, plain lines (one per event) elsewhere, as
/// in logs and CI.
pub fn progress_sink(style: &Style) -> crate::events::Sink {
    if io::stderr().is_terminal() {
        return bars_sink();
    }
    let color = style.color;
    std::sync::Arc::new(move |e: crate::events::Event| {
        let s = Style { color };
        match e {
            crate::events::Event::Planned { host, steps } => {
                eprintln!("{host}: {}", planned_text(steps))
            }
            crate::events::Event::Step {
                host,
                index,
                total,
                address,
                status,
            } => {
                let word = match status {
                    infra_core::script::StepStatus::Changed => s.paint("33", "changed"),
                    infra_core::script::StepStatus::Failed => s.paint("1;31", "FAILED"),
                };
                eprintln!("{host}: [{}/{total}] {address}: {word}", index + 1)
            }
            crate::events::Event::Output { host, line } => eprintln!("{host}:     | {line}"),
            crate::events::Event::Release { host, text, failed } => {
                let text = if failed { s.paint("1;31", &text) } else { text };
                eprintln!("{host}: {text}")
            }
        }
    })
}

/// The plan, as people read it: per host, file diffs, packages and service actions.
/// Progress of a cloud apply: one line per operation and per wait, on stderr.
pub fn cloud_progress(style: &Style) -> impl FnMut(crate::provider::Progress) + '_ {
    use crate::provider::Progress;
    let started = std::time::Instant::now();
    move |p| {
        let t = started.elapsed().as_secs();
        match p {
            Progress::Start { address, text } => {
                eprintln!("{}: {text}...", style.paint("1", address))
            }
            Progress::Waiting { text } => eprintln!("  {text} ({t}s elapsed)"),
            Progress::Done { address } => eprintln!("{}: done ({t}s elapsed)", address),
        }
    }
}

pub fn print_cloud_done(style: &Style, plan: &infra_core::cloud::CloudPlan) {
    let s = plan.summary();
    eprintln!(
        "{}: {} added, {} changed, {} destroyed.",
        style.paint("1;32", "Cloud apply complete"),
        s.add,
        s.change,
        s.destroy
    );
}

/// The cloud section: Terraform's symbols and attribute lines.
pub(crate) fn print_cloud(
    out: &mut impl Write,
    cloud: &infra_core::cloud::CloudPlan,
) -> io::Result<()> {
    use infra_core::cloud::CloudAction;
    if cloud.changes.is_empty() && cloud.kept.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nCloud ({}, {}):", cloud.provider, cloud.region)?;
    for c in &cloud.changes {
        let what = match c.action {
            CloudAction::Create => "will be created",
            CloudAction::Update => "will be updated in-place",
            CloudAction::Replace => "must be replaced",
            CloudAction::Delete => "will be destroyed",
        };
        writeln!(out, "  # {} {what}", c.address)?;
        writeln!(out, "  {} {}", c.action.symbol(), c.address)?;
        let width = c.attrs.iter().map(|a| a.name.len()).max().unwrap_or(0);
        for a in &c.attrs {
            let line = match (&a.before, &a.after) {
                (None, Some(after)) => format!("+ {:width$} = {after}", a.name),
                (Some(before), None) => format!("- {:width$} = {before}", a.name),
                (Some(before), Some(after)) => {
                    format!("~ {:width$} = {before} -> {after}", a.name)
                }
                (None, None) => continue,
            };
            let forces = if a.forces_replacement {
                " # forces replacement"
            } else {
                ""
            };
            writeln!(out, "      {line}{forces}")?;
        }
    }
    for k in &cloud.kept {
        writeln!(out, "  # kept: {k}")?;
    }
    Ok(())
}

pub fn print_plan(plan: &infra_core::plan::Plan) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if let Some(cloud) = &plan.cloud {
        print_cloud(&mut out, cloud)?;
    }
    if let Some(cloud) = plan.cloud.as_ref().filter(|c| !c.new_hosts.is_empty()) {
        writeln!(
            out,
            "\nNew machines, planned as fresh hosts (what is already on the image is found after launch): {}",
            cloud.new_hosts.join(", ")
        )?;
    }
    for h in plan.hosts.iter().filter(|h| !h.steps.is_empty()) {
        let n = h.steps.len();
        writeln!(
            out,
            "\n{} ({n} change{}):",
            h.host,
            if n == 1 { "" } else { "s" }
        )?;
        for step in &h.steps {
            print_step(&mut out, step)?;
        }
    }
    print_once(&mut out, &plan.once)?;
    print_plan_summary(&mut out, plan)?;
    out.flush()
}

/// Terraform's symbol for an action.
fn sym(a: infra_core::plan::Action) -> &'static str {
    use infra_core::plan::Action;
    match a {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
    }
}

/// The first 12 characters of a digest, or `(none)`.
fn short(h: &Option<String>) -> String {
    h.as_deref()
        .map(|h| h.chars().take(12).collect())
        .unwrap_or_else(|| "(none)".into())
}

/// A file step: owner and mode, then the diff, or changed hashes for a file holding a secret.
fn print_file_step(out: &mut impl Write, f: &kinds::file::Step) -> io::Result<()> {
    let kinds::file::Step {
        action,
        dest,
        before,
        after,
        diff,
        sensitive,
        check,
        ..
    } = f;
    writeln!(
        out,
        "  {} file {dest} ({}:{} {})",
        sym(*action),
        after.owner,
        after.group,
        after.mode
    )?;
    if let Some(c) = check {
        writeln!(out, "      checked by: {c}")?;
    }
    if let Some(b) = before {
        if (b.owner.as_str(), b.group.as_str(), b.mode)
            != (after.owner.as_str(), after.group.as_str(), after.mode)
        {
            writeln!(
                out,
                "      owner/mode: {}:{} {} -> {}:{} {}",
                b.owner, b.group, b.mode, after.owner, after.group, after.mode
            )?;
        }
    }
    if *sensitive {
        // Keyed digests (`hmac-sha256:HEX`, see secrets::DigestKey), never a plain sha256.
        let keyed =
            |h: Option<&String>| h.map(|h| h.trim_start_matches("hmac-sha256:").to_string());
        let before_hash = keyed(before.as_ref().and_then(|b| b.sha256.as_ref()));
        writeln!(
            out,
            "      (holds a secret: content not shown) hmac-sha256 {} -> {}",
            short(&before_hash),
            short(&keyed(after.sha256.as_ref()))
        )?;
    } else if let Some(d) = diff {
        for line in d.lines() {
            writeln!(out, "      {line}")?;
        }
    }
    Ok(())
}

/// One step of a host, as the plan shows it.
pub(crate) fn print_step(out: &mut impl Write, step: &infra_core::plan::Step) -> io::Result<()> {
    use infra_core::plan::Step;
    match step {
        Step::Volume(kinds::volume::Step {
            action,
            device,
            fs,
            mount,
        }) => writeln!(
            out,
            "  {} volume {device} mounted at {mount} ({fs}, formatted only if blank)",
            sym(*action)
        )?,
        Step::AptSource(a) => print_apt_source_step(out, a)?,
        Step::Packages(kinds::package::Step { action, names }) => {
            writeln!(out, "  {} packages: {}", sym(*action), names.join(" "))?
        }
        Step::User(kinds::user::Step { action, name, .. }) => {
            writeln!(out, "  {} user {name}", sym(*action))?
        }
        Step::Group(kinds::group::Step { action, name, .. }) => {
            writeln!(out, "  {} group {name}", sym(*action))?
        }
        Step::Dir(kinds::dir::Step {
            action,
            path,
            before,
            after,
            ..
        }) => {
            let was = before
                .as_ref()
                .map(|b| format!(" (was {}:{} {})", b.owner, b.group, b.mode))
                .unwrap_or_default();
            writeln!(
                out,
                "  {} dir {path} ({}:{} {}){was}",
                sym(*action),
                after.owner,
                after.group,
                after.mode
            )?
        }
        Step::File(f) => print_file_step(out, f)?,
        Step::Link(kinds::link::Step {
            action,
            path,
            target,
            before,
            ..
        }) => {
            let was = before
                .as_ref()
                .map(|b| format!(" (was {b})"))
                .unwrap_or_default();
            writeln!(out, "  {} link {path} -> {target}{was}", sym(*action))?
        }
        Step::Service(kinds::service::Step {
            action,
            name,
            triggered_by,
            check,
            ..
        }) => {
            let checked = check
                .as_ref()
                .filter(|_| !triggered_by.is_empty())
                .map(|c| format!(" (checked by {c})"))
                .unwrap_or_default();
            let why = if triggered_by.is_empty() {
                String::new()
            } else {
                format!(
                    " because of {}",
                    triggered_by
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            writeln!(out, "  ~ service {name}: {}{checked}{why}", action.as_str())?
        }
        Step::Command(kinds::command::Step { name, run, .. }) => {
            writeln!(out, "  + command {name:?}: {run}")?
        }
        Step::Release(r) => print_release_step(out, r)?,
    }
    Ok(())
}

/// `+ apt source elastic-8: URI SUITE (role elastic)`, its files, and the update; or what a
/// removal deletes.
fn print_apt_source_step(out: &mut impl Write, a: &kinds::apt_source::Step) -> io::Result<()> {
    if a.action == infra_core::plan::Action::Delete {
        writeln!(out, "  - apt source {}: {} {}", a.name, a.uri, a.suite)?;
        writeln!(out, "      removes {}", a.remove.join(", "))?;
        for l in &a.lists {
            writeln!(out, "      and its lists /var/lib/apt/lists/{l}*")?;
        }
        return Ok(());
    }
    let what = if a.action == infra_core::plan::Action::Update {
        format!(" ({} changed)", a.changes.join(", "))
    } else {
        String::new()
    };
    writeln!(
        out,
        "  {} apt source {}: {} {} (role {}){what}",
        sym(a.action),
        a.name,
        a.uri,
        a.suite,
        a.role
    )?;
    writeln!(
        out,
        "      {}, signed by {} (templates/{}); then apt-get update of this source",
        a.sources, a.key, a.key_origin
    )?;
    for r in &a.remove {
        writeln!(out, "      removes {r}")?;
    }
    for l in &a.lists {
        writeln!(out, "      removes the old lists /var/lib/apt/lists/{l}*")?;
    }
    Ok(())
}

/// `release 3f2a1c0 -> 9b8e7d1 (v2026.12, 14 commits)`, `release (none) -> 9b8e7d1 (master)`.
fn print_release_step(out: &mut impl Write, r: &kinds::release::Step) -> io::Result<()> {
    let from = r.from.as_deref().map_or("(none)", short_commit);
    let mut about = Vec::new();
    if !r.label.is_empty() && !r.to.starts_with(r.label.as_str()) {
        about.push(r.label.clone());
    }
    if let Some(n) = r.commits {
        about.push(format!("{n} commit{}", if n == 1 { "" } else { "s" }));
    }
    if !r.build {
        about.push("already built".into());
    }
    let about = if about.is_empty() {
        String::new()
    } else {
        format!(" ({})", about.join(", "))
    };
    let sym = if r.from.is_some() { "~" } else { "+" };
    writeln!(
        out,
        "  {sym} release {from} -> {}{about}",
        short_commit(&r.to)
    )?;
    writeln!(out, "      in {} (role {})", r.path, r.role)
}

/// The once commands an apply runs, and where.
pub(crate) fn print_once(
    out: &mut impl Write,
    once: &[infra_core::plan::OnceRun],
) -> io::Result<()> {
    if once.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nOnce per environment (after every host is built, before any release switches):"
    )?;
    for o in once {
        for c in &o.commands {
            writeln!(out, "  once on {}: {c}", o.host)?;
        }
    }
    Ok(())
}

pub(crate) fn print_plan_summary(
    out: &mut impl Write,
    plan: &infra_core::plan::Plan,
) -> io::Result<()> {
    let s = plan.summary();
    if !plan.has_changes() {
        writeln!(out, "No changes. Infrastructure matches the configuration.")?;
    } else {
        if let Some(cloud) = &plan.cloud {
            let c = cloud.summary();
            writeln!(
                out,
                "\nCloud: {} to add, {} to change, {} to destroy.",
                c.add, c.change, c.destroy
            )?;
        }
        writeln!(
            out,
            "{}Hosts: {} file{}, {} package{}, {} service action{}, {} other change{} on {} of {} hosts.",
            if plan.cloud.is_some() { "" } else { "\n" },
            s.files,
            if s.files == 1 { "" } else { "s" },
            s.packages,
            if s.packages == 1 { "" } else { "s" },
            s.services,
            if s.services == 1 { "" } else { "s" },
            s.other,
            if s.other == 1 { "" } else { "s" },
            s.hosts_changed,
            s.hosts
        )?;
    }
    Ok(())
}

/// The plan as versioned JSON, with its summary.
pub fn print_plan_json(plan: &infra_core::plan::Plan) -> io::Result<()> {
    let mut value = serde_json::to_value(plan).map_err(io::Error::other)?;
    value["summary"] = serde_json::to_value(plan.summary()).map_err(io::Error::other)?;
    if let Some(cloud) = &plan.cloud {
        value["cloud_summary"] = serde_json::to_value(cloud.summary()).map_err(io::Error::other)?;
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&value).map_err(io::Error::other)?
    )?;
    out.flush()
}

/// After apply: a line per host, then each failed host with the last lines of its failure.
pub fn print_recap(recaps: &[crate::events::Recap]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "\nRecap:")?;
    let width = recaps.iter().map(|r| r.host.len()).max().unwrap_or(0);
    for r in recaps {
        writeln!(
            out,
            "{:<width$} : ok={} changed={} failed={} unreachable={}",
            r.host,
            r.ok,
            r.changed,
            u8::from(r.failed && !r.unreachable),
            u8::from(r.unreachable)
        )?;
    }
    for r in recaps.iter().filter(|r| r.failed) {
        if let Some(busy) = &r.busy {
            writeln!(out, "\n{busy}")?;
        }
        if let Some((step, lines)) = &r.failure {
            writeln!(out, "\n{} failed at {step}:", r.host)?;
            for l in lines.iter().rev().take(20).rev() {
                writeln!(out, "    {l}")?;
            }
        }
    }
    out.flush()
}

/// One indicatif bar per host applying; planning and command output print above the bars.
fn bars_sink() -> crate::events::Sink {
    use crate::events::Event;
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    use infra_core::script::StepStatus;
    let multi = MultiProgress::new();
    let bars: std::sync::Mutex<BTreeMap<String, ProgressBar>> =
        std::sync::Mutex::new(BTreeMap::new());
    let bar_style =
        ProgressStyle::with_template("{prefix:>14.bold} [{bar:24}] {pos:>3}/{len:3} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    std::sync::Arc::new(move |e: Event| match e {
        Event::Planned { host, steps } => {
            let what = planned_text(steps);
            let _ = multi.println(format!("{host}: {what}"));
        }
        Event::Step {
            host,
            index,
            total,
            address,
            status,
        } => {
            let Ok(mut bars) = bars.lock() else { return };
            let bar = bars.entry(host.clone()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(total as u64));
                b.set_style(bar_style.clone());
                b.set_prefix(host.clone());
                b
            });
            bar.set_position(index as u64 + 1);
            match status {
                StepStatus::Changed if index + 1 == total => bar.finish_with_message("done"),
                StepStatus::Changed => bar.set_message(address),
                StepStatus::Failed => bar.abandon_with_message(format!("FAILED at {address}")),
            }
        }
        Event::Output { host, line } => {
            let _ = multi.println(format!("{host}:     | {line}"));
        }
        Event::Release { host, text, .. } => {
            let _ = multi.println(format!("{host}: {text}"));
        }
    })
}

/// `up to date`, `1 change to make`, `N changes to make`.
fn planned_text(steps: usize) -> String {
    match steps {
        0 => "up to date".to_string(),
        1 => "1 change to make".to_string(),
        n => format!("{n} changes to make"),
    }
}

/// One host of `infra releases`: its release role and path, and what it keeps.
pub struct ReleaseRow<'a> {
    pub host: &'a str,
    pub role: &'a str,
    pub path: &'a str,
    pub info: &'a infra_core::release::ReleaseInfo,
}

/// `infra releases`: per host its current commit and the releases it keeps, newest switch first.
pub fn print_releases(rows: &[ReleaseRow], json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let kept: Vec<serde_json::Value> = r
                    .info
                    .kept
                    .iter()
                    .map(|(c, when)| serde_json::json!({"commit": c, "switched_at": when}))
                    .collect();
                serde_json::json!({
                    "host": r.host,
                    "role": r.role,
                    "path": r.path,
                    "current": r.info.current,
                    "releases": kept,
                })
            })
            .collect();
        let value = serde_json::json!({"format_version": "1", "hosts": list});
        let text = serde_json::to_string_pretty(&value).map_err(io::Error::other)?;
        writeln!(out, "{text}")?;
        return out.flush();
    }
    for r in rows {
        let current = r.info.current.as_deref();
        let shown = current.map_or("(none)", short_commit);
        writeln!(
            out,
            "{} (role {}, {}): current {shown}",
            r.host, r.role, r.path
        )?;
        for (c, when) in &r.info.kept {
            let mark = if Some(c.as_str()) == current {
                "  (current)"
            } else {
                ""
            };
            let when = when.as_deref().unwrap_or("never switched to");
            writeln!(out, "    {}  {when}{mark}", short_commit(c))?;
        }
    }
    out.flush()
}

/// What a rollback moves on one host.
pub struct RollbackMove<'a> {
    pub host: &'a str,
    pub role: &'a str,
    pub from: Option<&'a str>,
    /// `None`: it is already there.
    pub to: Option<&'a str>,
}

/// What a rollback will do, before it asks.
pub fn print_rollback(moves: &[RollbackMove]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "Rollback:")?;
    for m in moves {
        let from = m.from.map_or("(none)", short_commit);
        match m.to {
            Some(to) => writeln!(
                out,
                "  {}: release {from} -> {} (role {})",
                m.host,
                short_commit(to),
                m.role
            )?,
            None => writeln!(out, "  {}: already on {from}", m.host)?,
        }
    }
    writeln!(
        out,
        "Database migrations are not reversed: the schema stays as the newest release left it."
    )?;
    out.flush()
}

/// How a rollback ended: done, or each host that failed (host, what, last lines).
pub fn print_rollback_end(failures: &[(&str, &str, &[String])]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if failures.is_empty() {
        writeln!(out, "Rollback complete.")?;
    }
    for (host, what, lines) in failures {
        writeln!(out, "\n{host} failed at {what}:")?;
        for l in lines.iter().rev().take(20).rev() {
            writeln!(out, "    {l}")?;
        }
    }
    out.flush()
}
