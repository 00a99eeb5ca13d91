//! An environment resolved from its inventory: hosts with expanded roles, addresses and vars.

use crate::model::{Connection, Inventory, JumpAddress, ProviderKind, Vars};
use crate::site::Site;
use crate::vars::{deep_merge, VarOverride};
use infra_protocol::{CloudFacts, KNOWN_AFTER_APPLY};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A host as templates and views see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostView {
    pub name: String,
    /// `name.internal_domain`.
    pub fqdn: String,
    /// The roles as written in the inventory, sorted.
    pub roles: Vec<String>,
    /// The roles with their includes, in apply order (included roles first).
    pub all_roles: Vec<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// Where SSH reaches the host (as written, if at all, for a `connection: local` host).
    pub address: Option<String>,
    /// How infra reaches it: `ssh`, or `local` (the machine infra runs on).
    pub connection: Connection,
    pub instance_type: Option<String>,
    /// The public hostnames its roles expect, e.g. `source.webplatform.org`.
    pub public_hostnames: Vec<String>,
    pub provider: ProviderKind,
}

/// A host with the variables its templates see (before per-file vars).
#[derive(Debug, Clone)]
pub struct ResolvedHost {
    pub view: HostView,
    /// Role defaults < inventory vars < role_vars < host vars (no `--var` yet).
    pub vars: Vars,
}

/// One environment of a site, ready to render.
#[derive(Debug)]
pub struct Environment<'s> {
    pub site: &'s Site,
    pub name: String,
    /// `inventories/<name>.yaml`.
    pub file: PathBuf,
    pub inventory: &'s Inventory,
    pub hosts: BTreeMap<String, ResolvedHost>,
    /// `--var` overrides, highest precedence.
    pub overrides: Vars,
}

impl<'s> Environment<'s> {
    /// Resolves `name`; `None` when the site has no such inventory (or it did not parse).
    pub fn resolve(
        site: &'s Site,
        name: &str,
        overrides: &[VarOverride],
    ) -> Option<Environment<'s>> {
        let loaded = site.inventories.get(name)?;
        let inv = &loaded.value;
        let mut over = Vars::new();
        for o in overrides {
            deep_merge(&mut over, &o.as_vars());
        }
        let kind = inv.provider.value.kind;
        let hosts = inv
            .hosts
            .iter()
            .map(|(host_name, host)| {
                let host = &host.value;
                let mut roles: Vec<String> = host.roles.iter().map(|r| r.value.clone()).collect();
                roles.sort();
                roles.dedup();
                let all_roles = expand_roles(site, host.roles.iter().map(|r| r.value.as_str()));
                let needs_public = all_roles
                    .iter()
                    .any(|r| site.roles.get(r).is_some_and(|r| r.value.public_ip));
                let private_ip = match (host.private_ip, kind, &host.address) {
                    (Some(ip), _, _) => Some(ip.to_string()),
                    (None, ProviderKind::Static, Some(addr)) => Some(addr.to_string()),
                    (None, ProviderKind::Static, None) => None,
                    (None, ProviderKind::Aws, _) => Some(KNOWN_AFTER_APPLY.to_string()),
                };
                let public_ip = match kind {
                    ProviderKind::Aws if needs_public => Some(KNOWN_AFTER_APPLY.to_string()),
                    _ => None,
                };
                let address = match kind {
                    ProviderKind::Static => host.address.as_ref().map(|a| a.to_string()),
                    ProviderKind::Aws if is_public_jump(inv, host_name) => {
                        Some(KNOWN_AFTER_APPLY.to_string())
                    }
                    ProviderKind::Aws => private_ip.clone(),
                };
                let public_hostnames = all_roles
                    .iter()
                    .filter_map(|r| site.roles.get(r)?.value.hostname.as_ref())
                    .filter_map(|h| render_hostname(&h.value, host_name, inv).ok())
                    .collect();
                let mut vars = Vars::new();
                for r in &all_roles {
                    if let Some(role) = site.roles.get(r) {
                        deep_merge(&mut vars, &role.value.defaults);
                    }
                }
                deep_merge(&mut vars, &inv.vars);
                for r in &all_roles {
                    if let Some(rv) = inv.role_vars.get(r) {
                        deep_merge(&mut vars, &rv.value);
                    }
                }
                deep_merge(&mut vars, &host.vars);
                let view = HostView {
                    name: host_name.clone(),
                    fqdn: format!("{host_name}.{}", inv.internal_domain),
                    roles,
                    all_roles,
                    private_ip,
                    public_ip,
                    address,
                    connection: inv.connection_of(host_name),
                    instance_type: host
                        .instance_type
                        .clone()
                        .or_else(|| inv.provider.value.instance_type.clone())
                        .filter(|_| kind == ProviderKind::Aws),
                    public_hostnames,
                    provider: kind,
                };
                (host_name.clone(), ResolvedHost { view, vars })
            })
            .collect();
        Some(Environment {
            site,
            name: name.to_string(),
            file: loaded.file.clone(),
            inventory: inv,
            hosts,
            overrides: over,
        })
    }

    /// Fills in the addresses the cloud assigned: private IPs of instances, Elastic IPs, and
    /// where SSH reaches each host (the jump host at its public address unless
    /// `ssh.jump_address: private`, every other host at its private IP).
    pub fn set_cloud_facts(&mut self, facts: &CloudFacts) {
        let inv = self.inventory;
        for (name, h) in self.hosts.iter_mut() {
            let instance = facts.instance(name);
            if let Some(ip) = instance.and_then(|i| i.private_ip.clone()) {
                h.view.private_ip = Some(ip);
            }
            if let Some(a) = facts.address(name) {
                h.view.public_ip = Some(a.public_ip.clone());
            }
            h.view.address = if is_public_jump(inv, name) {
                match (
                    &h.view.public_ip,
                    instance.and_then(|i| i.public_ip.clone()),
                ) {
                    (Some(ip), _) if ip != KNOWN_AFTER_APPLY => Some(ip.clone()),
                    (_, Some(ip)) => Some(ip),
                    _ => Some(KNOWN_AFTER_APPLY.to_string()),
                }
            } else {
                h.view.private_ip.clone()
            };
        }
    }

    /// The hosts holding `role` (directly or through includes), sorted by name.
    pub fn hosts_with_role(&self, role: &str) -> Vec<&ResolvedHost> {
        self.hosts
            .values()
            .filter(|h| h.view.all_roles.iter().any(|r| r == role))
            .collect()
    }

    /// The packages a host's roles install, in apply order, each once.
    pub fn packages(&self, host: &ResolvedHost) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        host.view
            .all_roles
            .iter()
            .filter_map(|r| self.site.roles.get(r))
            .flat_map(|role| role.value.packages.iter())
            .filter(|p| seen.insert(p.as_str()))
            .map(|p| p.to_string())
            .collect()
    }

    /// Salt's `grains.get roles` view: host -> roles as written, both sorted.
    pub fn roles_by_host(&self) -> BTreeMap<String, Vec<String>> {
        self.hosts
            .iter()
            .map(|(n, h)| (n.clone(), h.view.roles.clone()))
            .collect()
    }

    /// The inverse: role -> hosts that were given it in the inventory, both sorted.
    pub fn hosts_by_role(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, h) in &self.hosts {
            for r in &h.view.roles {
                out.entry(r.clone()).or_default().push(name.clone());
            }
        }
        out
    }

    /// The variables a file entry sees: host vars < the entry's vars < `--var`.
    pub fn file_vars(&self, host: &ResolvedHost, entry_vars: &Vars) -> Vars {
        let mut vars = host.vars.clone();
        deep_merge(&mut vars, entry_vars);
        deep_merge(&mut vars, &self.overrides);
        vars
    }
}

/// The once-host of `role`: the first host by name, among all the inventory's hosts (not only
/// those a `--limit` selects), holding the role directly or through includes. Its `once:`
/// files and commands are on it alone; when it leaves the inventory, the next one by name
/// takes over.
pub fn once_host<'e>(env: &'e Environment, role: &str) -> Option<&'e str> {
    env.hosts
        .values()
        .find(|h| h.view.all_roles.iter().any(|r| r == role))
        .map(|h| h.view.name.as_str())
}

/// Whether `host` is `role`'s once-host: the one that gets the role's `once:` files and
/// commands.
pub fn is_once_host(env: &Environment, role: &str, host: &str) -> bool {
    once_host(env, role) == Some(host)
}

/// The jump host of a cloud inventory, reached at its public address.
fn is_public_jump(inv: &Inventory, host: &str) -> bool {
    inv.ssh.jump_address == JumpAddress::Public
        && inv.ssh.jump_host.as_ref().is_some_and(|j| j.value == host)
}

/// Roles with their includes, included roles first, each once; unknown roles and include
/// cycles are skipped here (validation reports them).
pub fn expand_roles<'a>(site: &Site, roles: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    fn visit(
        site: &Site,
        name: &str,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        if done.contains(name) || stack.iter().any(|s| s == name) {
            return;
        }
        let Some(role) = site.roles.get(name) else {
            return;
        };
        stack.push(name.to_string());
        for inc in &role.value.includes {
            visit(site, &inc.value, done, stack, out);
        }
        stack.pop();
        done.insert(name.to_string());
        out.push(name.to_string());
    }
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for r in roles {
        visit(site, r, &mut done, &mut Vec::new(), &mut out);
    }
    out
}

/// A role's `hostname:` that does not render, as an error at it.
pub(crate) fn hostname_error(
    site: &crate::site::Site,
    role_name: &str,
    role: &crate::site::Loaded<crate::model::Role>,
    e: &tera::Error,
) -> crate::diagnostic::Diagnostic {
    let message = match e.kind() {
        tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => {
            r.message().to_string()
        }
        _ => e.to_string(),
    };
    let at =
        (role.value.hostname.as_ref()).map(|h| site.loc(&role.file, h, h.value.chars().count()));
    crate::diagnostic::Diagnostic::error(format!(
        "hostname of role `{role_name}` does not render: {message}"
    ))
    .at_opt(at)
    .hint("hostname can use `env.name`, `env.domain`, `env.internal_domain` and `host.name`")
}

/// Renders a role's `hostname` (a Tera string) for one host of an inventory.
pub fn render_hostname(template: &str, host: &str, inv: &Inventory) -> Result<String, tera::Error> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(template.to_string());
    }
    let mut ctx = tera::Context::new();
    ctx.insert(
        "env",
        &serde_json::json!({
            "name": inv.environment.value,
            "domain": inv.domain,
            "internal_domain": inv.internal_domain,
        }),
    );
    ctx.insert("host", &serde_json::json!({ "name": host }));
    tera::Tera::one_off(template, &ctx, false)
}
