//! Views: everything `infra` prints. Data goes to stdout; diagnostics and progress to stderr.

use crate::cli::{ColorChoice, HostsFormat, RolesFormat};
use crate::commands::CliError;
use infra_core::diagnostic::{Diagnostic, Severity};
use infra_core::environment::Environment;
use infra_core::render::{Origin, RenderedFile};
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};

/// Whether stderr gets ANSI colours.
pub struct Style {
    color: bool,
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
    out.flush()
}

/// `hosts`: a table, or a JSON array of host objects.
pub fn print_hosts(env: &Environment, format: HostsFormat) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let views: Vec<_> = env.hosts.values().map(|h| &h.view).collect();
    match format {
        HostsFormat::Json => {
            let json = serde_json::to_string_pretty(&views).map_err(io::Error::other)?;
            writeln!(out, "{json}")?;
        }
        HostsFormat::Text => {
            let dash = || "-".to_string();
            let rows: Vec<[String; 6]> = views
                .iter()
                .map(|v| {
                    [
                        v.name.clone(),
                        v.roles.join(","),
                        v.private_ip.clone().unwrap_or_else(dash),
                        v.public_ip.clone().unwrap_or_else(dash),
                        v.address.clone().unwrap_or_else(dash),
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
