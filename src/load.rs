//! Reading what a command works on: the site, the environment, `--var`; what is wrong with
//! them is printed as diagnostics.

use crate::cli::Cli;
use crate::error::CliError;
use crate::view::{self, Style};
use infra_core::diagnostic::Diagnostic;
use infra_core::environment::Environment;
use infra_core::site::Site;
use infra_core::suggest::did_you_mean;
use infra_core::validate;
use infra_core::vars::VarOverride;

pub fn parse_vars(vars: &[String]) -> Result<Vec<VarOverride>, CliError> {
    vars.iter()
        .map(|v| VarOverride::parse(v).map_err(CliError::Var))
        .collect()
}

/// Loads the site; parse errors are printed and give `None`.
pub fn load(cli: &Cli, style: &Style) -> Result<Option<Site>, CliError> {
    let (site, diags) = Site::load(&cli.dir)?;
    if report(style, diags) {
        return Ok(None);
    }
    Ok(Some(site))
}

/// Prints diagnostics (sorted by place); true when any is an error.
pub fn report(style: &Style, mut diags: Vec<Diagnostic>) -> bool {
    diags.sort_by(|a, b| a.location.cmp(&b.location).then(a.message.cmp(&b.message)));
    let failed = diags.iter().any(Diagnostic::is_error);
    for d in &diags {
        view::print_diagnostic(style, d);
    }
    failed
}

pub fn find_env<'s>(
    site: &'s Site,
    name: &str,
    overrides: &[VarOverride],
) -> Result<Environment<'s>, CliError> {
    Environment::resolve(site, name, overrides).ok_or_else(|| CliError::UnknownEnv {
        name: name.to_string(),
        hint: did_you_mean(name, site.inventories.keys().map(String::as_str)),
    })
}

/// The environment, after the role and inventory checks passed (errors are printed).
pub fn checked_env<'s>(
    site: &'s Site,
    name: &str,
    overrides: &[VarOverride],
    style: &Style,
) -> Result<Option<Environment<'s>>, CliError> {
    let env = find_env(site, name, overrides)?;
    let mut diags = validate::check_roles(site);
    diags.extend(validate::check_inventory(&env));
    if report(style, diags) {
        return Ok(None);
    }
    Ok(Some(env))
}
