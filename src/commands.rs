//! Running each command: load the site, check it, compute the data, hand it to a view.

use crate::cli::{Cli, Command, RolesCommand};
use crate::error::{CliError, Outcome};
use crate::load::{checked_env, find_env, load, parse_vars, report};
use crate::view::{self, Style};
use infra_core::diagnostic::Diagnostic;
use infra_core::environment::Environment;
use infra_core::render::{render_hosts, Renderer};
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::suggest::did_you_mean;
use infra_core::validate;
use std::path::Path;

pub fn run(cli: &Cli, style: &Style) -> Result<Outcome, CliError> {
    match &cli.command {
        Command::Plan {
            env,
            json,
            markdown,
            detailed_exitcode,
            out,
            flags,
        } => crate::run::plan_cmd(
            cli,
            style,
            env,
            view::PlanFormat::of(*json, *markdown),
            *detailed_exitcode,
            out.as_deref(),
            flags,
        ),
        Command::Apply { target, yes, flags } => {
            crate::run::apply_cmd(cli, style, target, *yes, flags)
        }
        Command::Destroy { env, yes } => crate::run::destroy_cmd(cli, style, env, *yes),
        Command::ForceUnlock { env, id, yes } => {
            crate::run::force_unlock_cmd(cli, style, env, id, *yes)
        }
        Command::Rollback {
            env,
            to,
            yes,
            limit,
            vars,
        } => crate::rollback::rollback_cmd(
            cli,
            style,
            env,
            to.as_deref(),
            *yes,
            &crate::rollback::flags(limit, vars),
        ),
        Command::Releases { env, json, limit } => crate::rollback::releases_cmd(
            cli,
            style,
            env,
            *json,
            &crate::rollback::flags(limit, &[]),
        ),
        Command::Show {
            planfile,
            json,
            markdown,
        } => show_cmd(planfile, view::PlanFormat::of(*json, *markdown)),
        Command::Completions { shell } => {
            view::print_completions(*shell).map_err(CliError::Stdout)?;
            Ok(Outcome::Success)
        }
        Command::Man { out_dir: None } => {
            view::print_man().map_err(CliError::Stdout)?;
            Ok(Outcome::Success)
        }
        Command::Man { out_dir: Some(dir) } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(crate::cli::Cli::command(), dir))
                .map_err(|source| CliError::Write {
                    path: dir.clone(),
                    source,
                })?;
            Ok(Outcome::Success)
        }
        Command::Validate { env, vars } => validate_cmd(cli, style, env.as_deref(), vars),
        Command::Roles {
            command:
                RolesCommand::List {
                    env,
                    by_role,
                    format,
                },
        } => roles_cmd(cli, style, env.as_deref(), *by_role, *format),
        Command::Hosts { env, format } => hosts_cmd(cli, style, env, *format),
        Command::Render {
            env,
            host,
            dest,
            show_secrets,
            out_dir,
            vars,
        } => render_cmd(
            cli,
            style,
            RenderArgs {
                env,
                host,
                dest: dest.as_ref(),
                show_secrets,
                out_dir: out_dir.as_ref(),
                vars,
            },
        ),
    }
}

/// `roles list`: Salt's layout of who holds which role, for one environment or all of them.
fn roles_cmd(
    cli: &Cli,
    style: &Style,
    env: Option<&str>,
    by_role: bool,
    format: crate::cli::RolesFormat,
) -> Result<Outcome, CliError> {
    let site = load(cli, style)?;
    let Some(site) = site else {
        return Ok(Outcome::Failed);
    };
    let names: Vec<&str> = match env {
        Some(e) => vec![e],
        None => site.inventories.keys().map(String::as_str).collect(),
    };
    let mut blocks = std::collections::BTreeMap::new();
    for name in names {
        let Some(env) = checked_env(&site, name, &[], style)? else {
            return Ok(Outcome::Failed);
        };
        let data = if by_role {
            env.hosts_by_role()
        } else {
            env.roles_by_host()
        };
        blocks.insert(name.to_string(), data);
    }
    match (env, blocks.pop_first()) {
        (Some(_), Some((_, data))) => view::print_roles(&data, format),
        (_, first) => {
            blocks.extend(first);
            view::print_roles_by_env(&blocks, format)
        }
    }
    .map_err(CliError::Stdout)?;
    Ok(Outcome::Success)
}

/// `show PLANFILE`: a saved plan printed again, by the same views as `plan`.
fn show_cmd(planfile: &Path, format: view::PlanFormat) -> Result<Outcome, CliError> {
    let target = planfile.to_string_lossy();
    let Some(plan) = crate::run::load_saved(&target)? else {
        return Err(CliError::Var(format!(
            "{target} is not a file: `infra show` prints a plan saved by `infra plan ENV --out FILE`"
        )));
    };
    view::print_plan_as(&plan, format).map_err(CliError::Stdout)?;
    Ok(Outcome::Success)
}

/// `hosts`: the environment's hosts with roles and addresses.
fn hosts_cmd(
    cli: &Cli,
    style: &Style,
    env: &str,
    format: crate::cli::HostsFormat,
) -> Result<Outcome, CliError> {
    let Some(site) = load(cli, style)? else {
        return Ok(Outcome::Failed);
    };
    let Some(env) = checked_env(&site, env, &[], style)? else {
        return Ok(Outcome::Failed);
    };
    view::print_hosts(&env, format).map_err(CliError::Stdout)?;
    Ok(Outcome::Success)
}

/// What `render` was asked for.
struct RenderArgs<'a> {
    env: &'a str,
    host: &'a String,
    dest: Option<&'a String>,
    show_secrets: &'a bool,
    out_dir: Option<&'a std::path::PathBuf>,
    vars: &'a [String],
}

/// `render`: the files a host gets, printed, one of them, or written under a directory.
fn render_cmd(cli: &Cli, style: &Style, args: RenderArgs) -> Result<Outcome, CliError> {
    let RenderArgs {
        env,
        host,
        dest,
        show_secrets,
        out_dir,
        vars,
    } = args;
    let overrides = parse_vars(vars)?;
    let Some(site) = load(cli, style)? else {
        return Ok(Outcome::Failed);
    };
    let Some(env) = checked_env(&site, env, &overrides, style)? else {
        return Ok(Outcome::Failed);
    };
    let (renderer, diags) = Renderer::new(&site);
    if report(style, diags) {
        return Ok(Outcome::Failed);
    }
    let Some(resolved) = env.hosts.get(host) else {
        return Err(CliError::UnknownHost {
            env: env.name.clone(),
            host: host.clone(),
            hint: did_you_mean(host, env.hosts.keys().map(String::as_str)),
        });
    };
    let secrets = Secrets::load(&env.inventory.secrets, &site.root, crate::environ::vars())?;
    let mut out = render_hosts(&env, &renderer, &secrets, &[resolved])
        .pop()
        .unwrap_or_default();
    // A role's `once:` file is written on its once-host alone: other hosts do not get it.
    out.files
        .retain(|f| !f.once || infra_core::environment::is_once_host(&env, &f.role, host));
    if report(style, out.diagnostics) {
        return Ok(Outcome::Failed);
    }
    let mut missing: Vec<&str> = out
        .files
        .iter()
        .flat_map(|f| f.missing_secrets.iter().map(String::as_str))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        view::print_diagnostic(style, &missing_secrets_warning(&env, &missing));
    }
    let redact = |bytes: &[u8]| -> Vec<u8> {
        if *show_secrets {
            return bytes.to_vec();
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => secrets.redact(text).into_bytes(),
            Err(_) => bytes.to_vec(),
        }
    };
    let files: Vec<_> = match dest {
        Some(d) => {
            let Some(f) = out.files.iter().find(|f| f.dest == *d) else {
                return Err(CliError::UnknownDest {
                    host: host.clone(),
                    dest: d.clone(),
                    hint: did_you_mean(d, out.files.iter().map(|f| f.dest.as_str())),
                });
            };
            vec![f]
        }
        None => out.files.iter().collect(),
    };
    if let Some(dir) = out_dir {
        for f in &files {
            let path = dir.join(f.dest.trim_start_matches('/'));
            let owner = (f.owner.as_str(), f.group.as_str());
            write_confined(dir, &f.dest, &redact(&f.content), f.mode.0, owner).map_err(
                |source| CliError::Write {
                    path: path.clone(),
                    source,
                },
            )?;
        }
        eprintln!(
            "wrote {} files for {host} under {}",
            files.len(),
            dir.display()
        );
    } else if dest.is_some() {
        view::print_raw(&redact(&files[0].content)).map_err(CliError::Stdout)?;
    } else {
        let shown: Vec<_> = files.iter().map(|f| (*f, redact(&f.content))).collect();
        view::print_files(&shown).map_err(CliError::Stdout)?;
    }
    Ok(Outcome::Success)
}

/// Writes `bytes` at `dest` under `dir` with `mode`, never outside `dir`: `dest` may hold only
/// plain names (no `..`), every folder on the way must be a real folder (a symlink is refused,
/// it could lead anywhere), and the file itself is opened without following a symlink. Run as
/// root, the file also gets its `(owner, group)` when both exist on this machine (a 0640
/// `postgres` file stays readable by postgres); otherwise it is the writer's.
fn write_confined(
    dir: &Path,
    dest: &str,
    bytes: &[u8],
    mode: u32,
    (owner, group): (&str, &str),
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    use std::path::Component;
    let refuse = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let rel = Path::new(dest.trim_start_matches('/'));
    let parts: Vec<_> = rel.components().collect();
    if parts.is_empty() || !parts.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse(format!(
            "the destination {dest} is not a plain path under the output folder"
        )));
    }
    // DIR itself is the user's to name (it may be, or lie under, a link); what is below is checked.
    std::fs::create_dir_all(dir)?;
    let mut at = dir.to_path_buf();
    for part in &parts[..parts.len() - 1] {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(refuse(format!(
                    "{} is a symbolic link or a file, not a folder: refusing to write through it",
                    at.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().mode(0o755).create(&at)?
            }
            Err(e) => return Err(e),
        }
    }
    at.push(parts[parts.len() - 1]);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode & 0o777)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&at)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                refuse(format!(
                    "{} is a symbolic link: refusing to write through it",
                    at.display()
                ))
            } else {
                e
            }
        })?;
    if let Some((uid, gid)) = local_ids(owner, group) {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    // The mode as rendered, whatever the umask or an earlier file had (on the open file).
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    std::io::Write::write_all(&mut file, bytes)
}

/// The uid and gid of `owner` and `group` on this machine, when infra runs as root and both
/// exist.
fn local_ids(owner: &str, group: &str) -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let owner = std::ffi::CString::new(owner).ok()?;
    let group = std::ffi::CString::new(group).ok()?;
    // SAFETY: both names are NUL-terminated; each returned pointer is checked for null and read
    // at once, before any other lookup (no other thread looks up users during `render`).
    unsafe {
        let pw = libc::getpwnam(owner.as_ptr());
        if pw.is_null() {
            return None;
        }
        let uid = (*pw).pw_uid;
        let gr = libc::getgrnam(group.as_ptr());
        if gr.is_null() {
            return None;
        }
        Some((uid, (*gr).gr_gid))
    }
}

fn missing_secrets_warning(env: &Environment, names: &[&str]) -> Diagnostic {
    let prefix = env
        .inventory
        .secrets
        .env_prefix
        .as_deref()
        .unwrap_or(infra_core::secrets::DEFAULT_ENV_PREFIX);
    let file = env
        .inventory
        .secrets
        .file
        .as_deref()
        .unwrap_or("a secrets file");
    Diagnostic::warning(format!(
        "environment `{}`: {} secret{} not set, placeholders rendered: {}",
        env.name,
        names.len(),
        if names.len() == 1 { " is" } else { "s are" },
        names.join(", ")
    ))
    .hint(format!(
        "set them in {file} or as {prefix}<NAME> environment variables; apply refuses to run without them"
    ))
}

fn validate_cmd(
    cli: &Cli,
    style: &Style,
    only: Option<&str>,
    vars: &[String],
) -> Result<Outcome, CliError> {
    let overrides = parse_vars(vars)?;
    let (site, mut diags) = Site::load(&cli.dir)?;
    if let Some(name) = only {
        if !site.inventories.contains_key(name) {
            // A file that failed to parse is reported with its own diagnostic.
            let file_exists = ["yaml", "yml"].iter().any(|ext| {
                site.root
                    .join("inventories")
                    .join(format!("{name}.{ext}"))
                    .is_file()
            });
            if !file_exists {
                find_env(&site, name, &overrides)?;
            }
        }
    }
    diags.extend(validate::check_roles(&site));
    let (renderer, template_diags) = Renderer::new(&site);
    diags.extend(template_diags);
    let names: Vec<String> = match only {
        Some(n) => site
            .inventories
            .keys()
            .filter(|k| *k == n)
            .cloned()
            .collect(),
        None => site.inventories.keys().cloned().collect(),
    };
    let mut warnings = Vec::new();
    let mut rendered = (0, 0);
    for name in &names {
        let Some(env) = Environment::resolve(&site, name, &overrides) else {
            continue;
        };
        diags.extend(validate::check_inventory(&env));
        if !site.parsed_cleanly() {
            // Rendering a site with unparsed files would report their absence again.
            continue;
        }
        let secrets = Secrets::load(&env.inventory.secrets, &site.root, crate::environ::vars())?;
        let check = validate::check_rendering(&env, &renderer, &secrets);
        diags.extend(check.diagnostics);
        rendered.0 += check.files;
        rendered.1 += check.hosts;
        if !check.missing_secrets.is_empty() {
            let names: Vec<&str> = check.missing_secrets.iter().map(String::as_str).collect();
            warnings.push(missing_secrets_warning(&env, &names));
        }
    }
    diags.extend(warnings);
    if !site.parsed_cleanly() {
        diags.push(Diagnostic::warning(
            "templates were not rendered because some files did not parse; fix those and run validate again",
        ));
    }
    let diags = validate::merge_duplicates(diags);
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warns = diags.len() - errors;
    report(style, diags);
    view::print_validate_summary(
        style,
        errors,
        warns,
        names.len(),
        site.roles.len(),
        site.templates.len(),
        rendered,
    );
    Ok(if errors == 0 {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}
