//! Rendering: every file a host gets, from Tera templates and static sources, with discovery.

use crate::desired_apt::DesiredAptSource;
use crate::desired_release::{DesiredRelease, SecretText};
use crate::diagnostic::{Diagnostic, SourceLocation};
use crate::environment::{Environment, ResolvedHost};
use crate::model::{FileEntry, Mode, Release, Role, Sp, UnsafeParent};
use crate::secrets::{Scanner, Secrets};
use crate::site::{Loaded, Site};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tera::{Context, Kwargs, State, Tera, TeraResult, Value};

mod bounded;
pub use bounded::Limits;
use bounded::{Batch, Field, Results};

/// Where a rendered file's content came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "kind", content = "path")]
pub enum Origin {
    Template(String),
    Source(String),
    /// A role's `tls:` certificate or key: the value of this secret.
    Secret(String),
}

/// One file exactly as it would be written to a host.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedFile {
    pub dest: String,
    #[serde(skip)]
    pub content: Vec<u8>,
    pub owner: String,
    pub group: String,
    pub mode: Mode,
    pub role: String,
    pub origin: Origin,
    pub notify: Vec<String>,
    pub check: Option<String>,
    /// `unsafe_parent: allow`: written even in a directory another user controls.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_parent: bool,
    /// `once: true`: only the role's once-host keeps it (`desired` removes it elsewhere).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    /// Names of the secrets whose values appear in the content.
    pub secrets: Vec<String>,
    /// What the plan records for the content: its sha256, or for a file holding a secret the
    /// environment's keyed digest of it (`DigestKey::keyed`), so a plan shows no plain hash of
    /// a secret.
    #[serde(skip)]
    pub digest: String,
    /// The content's plain sha256, compared with the host's (never shown or saved: `digest`
    /// is what a plan records).
    #[serde(skip)]
    pub sha256: String,
    /// Names of the secrets this file needed that are not set (placeholders were rendered).
    pub missing_secrets: Vec<String>,
    /// The role file and the position of the entry, for diagnostics.
    #[serde(skip)]
    pub entry: SourceLocation,
}

/// The parsed templates of a site, with the discovery functions registered, and the bounds on
/// what one template may produce.
pub struct Renderer {
    tera: Arc<Tera>,
    limits: Limits,
}

/// A file entry's destination, content and origin.
type Rendered = (String, Vec<u8>, Origin);

const DEST_PREFIX: &str = "@";

fn dest_template_name(role_file: &Path, index: usize) -> String {
    format!("{DEST_PREFIX}{}#files[{index}].dest", role_file.display())
}

/// The name the `key` of a role's `publish[index]` is registered under (when templated).
pub(crate) fn publish_key_template_name(role_file: &Path, index: usize) -> String {
    format!("{DEST_PREFIX}{}#publish[{index}].key", role_file.display())
}

/// Where the objects of the environment's bucket are read from: `<s3_url>/<bucket>` when the
/// inventory sets `provider.s3_url`, else AWS's virtual-hosted URL of the bucket.
pub fn objects_url(p: &crate::model::Provider) -> Option<String> {
    let bucket = &p.bucket.as_ref()?.value;
    Some(match &p.s3_url {
        Some(base) => format!("{}/{bucket}", base.trim_end_matches('/')),
        None => format!(
            "https://{bucket}.s3.{}.amazonaws.com",
            p.region.as_deref().unwrap_or("us-east-1")
        ),
    })
}

/// `env` of the template context with `objects_url` (for `object_url()`) when there is a bucket.
fn with_objects_url(
    mut env_value: serde_json::Value,
    p: &crate::model::Provider,
) -> serde_json::Value {
    if let (Some(url), Some(map)) = (objects_url(p), env_value.as_object_mut()) {
        map.insert("objects_url".into(), url.into());
    }
    env_value
}

/// `object_url(key="config/auth.json")`: the URL of an object of the environment's bucket.
fn fn_object_url(kwargs: Kwargs, state: &State) -> TeraResult<Value> {
    let key: String = kwargs.must_get("key")?;
    let base = state
        .get::<Value>("env")
        .ok()
        .flatten()
        .and_then(|v| {
            v.get_from_path("objects_url")
                .and_then(|n| n.as_str().map(str::to_string))
        })
        .ok_or_else(|| {
            tera::Error::message(format!(
                "object_url(key=\"{key}\"): environment `{}` has no bucket: set `provider.bucket` in its inventory",
                env_name(state)
            ))
        })?;
    Ok(Value::from(format!(
        "{base}/{}",
        key.trim_start_matches('/')
    )))
}

fn release_template_name(role_file: &Path, field: &str) -> String {
    format!("{DEST_PREFIX}{}#release.{field}", role_file.display())
}

fn apt_template_name(role_file: &Path, index: usize, field: &str) -> String {
    format!(
        "{DEST_PREFIX}{}#apt_sources[{index}].{field}",
        role_file.display()
    )
}

/// The Tera fields of an `apt_sources:` entry, by name.
pub(crate) fn apt_fields(a: &crate::model::AptSource) -> [(&'static str, &Sp<String>); 2] {
    [("uri", &a.uri), ("suite", &a.suite)]
}

/// Where a role's `tls:` certificate and key go.
pub fn tls_paths(role: &str) -> (String, String) {
    (
        format!("/etc/ssl/infra/{role}.crt"),
        format!("/etc/ssl/infra/private/{role}.key"),
    )
}

/// The Tera fields of a `release:`, by name, when written.
pub(crate) fn release_fields(r: &Release) -> [(&'static str, Option<&Sp<String>>); 5] {
    [
        ("path", Some(&r.path)),
        ("repo", Some(&r.repo)),
        ("controller_repo", r.controller_repo.as_ref()),
        ("ref", Some(&r.ref_)),
        ("env_file", r.env_file.as_ref()),
    ]
}

fn field_template_name(role_file: &Path, field: &str) -> String {
    format!("{DEST_PREFIX}{}#{field}", role_file.display())
}

/// The Tera strings of a role's `dns:` entries, by field (`dns[0].name`, `dns[1].values[0]`).
pub fn dns_fields(role: &crate::model::Role) -> Vec<(String, &Sp<String>)> {
    let mut out = Vec::new();
    for (i, e) in role.dns.iter().enumerate() {
        let e = &e.value;
        out.push((format!("dns[{i}].name"), &e.name));
        if let Some(v) = &e.value {
            out.push((format!("dns[{i}].value"), v));
        }
        for (j, v) in e.values.iter().enumerate() {
            out.push((format!("dns[{i}].values[{j}]"), v));
        }
    }
    out
}

/// The Tera strings of a role's `load_balancer:` (`certificate`, `hostname`), rendered once
/// per role like its `dns:` strings.
pub fn lb_fields(role: &crate::model::Role) -> Vec<(String, &Sp<String>)> {
    let mut out = Vec::new();
    if let Some(lb) = &role.load_balancer {
        if let Some(c) = &lb.value.certificate {
            out.push(("load_balancer.certificate".to_string(), c));
        }
        if let Some(h) = &lb.value.hostname {
            out.push(("load_balancer.hostname".to_string(), h));
        }
    }
    out
}

/// Whether a Tera string names the `secrets` context (validation refuses it where the text
/// is shown in the plan).
pub(crate) fn mentions_secrets(s: &str) -> bool {
    is_templated(s) && s.contains("secrets")
}

fn is_templated(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

impl Renderer {
    /// Parses every `.j2` template and every templated `dest`; syntax errors become diagnostics.
    pub fn new(site: &Site) -> (Renderer, Vec<Diagnostic>) {
        let mut tera = Tera::default();
        tera.autoescape_on(Vec::<&str>::new());
        tera.register_function("hosts", fn_hosts);
        tera.register_function("one", fn_one);
        tera.register_function("addrs", fn_addrs);
        tera.register_function("object_url", fn_object_url);
        register_quoting(&mut tera);
        let mut diags = Vec::new();
        for t in site.templates.values().filter(|t| t.is_tera()) {
            let file = Path::new("templates").join(&t.name);
            let Ok(text) = std::str::from_utf8(&t.bytes) else {
                diags.push(
                    Diagnostic::error(format!("template `{}` is not UTF-8 text", t.name))
                        .at(site.sources.location(&file, 1, 1, 1))
                        .hint("use `source:` for binary files"),
                );
                continue;
            };
            if let Err(e) = tera.add_raw_template(&t.name, text) {
                diags.push(tera_diagnostic(site, &e, None));
            }
        }
        for role in site.roles.values() {
            for (i, entry) in role.value.files.iter().enumerate() {
                let dest = &entry.value.dest;
                if is_templated(&dest.value) {
                    let name = dest_template_name(&role.file, i);
                    if let Err(e) = tera.add_raw_template(&name, &dest.value) {
                        let at = site.loc(&role.file, dest, dest.value.chars().count());
                        diags.push(tera_diagnostic(site, &e, Some(at)));
                    }
                }
            }
            for (i, a) in role.value.apt_sources.iter().enumerate() {
                for (field, text) in apt_fields(&a.value) {
                    if is_templated(&text.value) {
                        let name = apt_template_name(&role.file, i, field);
                        if let Err(e) = tera.add_raw_template(&name, &text.value) {
                            let at = site.loc(&role.file, text, text.value.chars().count());
                            diags.push(tera_diagnostic(site, &e, Some(at)));
                        }
                    }
                }
            }
            for (i, entry) in role.value.publish.iter().enumerate() {
                let key = &entry.value.key;
                if is_templated(&key.value) {
                    let name = publish_key_template_name(&role.file, i);
                    if let Err(e) = tera.add_raw_template(&name, &key.value) {
                        let at = site.loc(&role.file, key, key.value.chars().count());
                        diags.push(tera_diagnostic(site, &e, Some(at)));
                    }
                }
            }
            for (field, text) in dns_fields(&role.value)
                .into_iter()
                .chain(lb_fields(&role.value))
            {
                if is_templated(&text.value) {
                    let name = field_template_name(&role.file, &field);
                    if let Err(e) = tera.add_raw_template(&name, &text.value) {
                        let at = site.loc(&role.file, text, text.value.chars().count());
                        diags.push(tera_diagnostic(site, &e, Some(at)));
                    }
                }
            }
            let Some(release) = &role.value.release else {
                continue;
            };
            for (field, text) in release_fields(&release.value) {
                let Some(text) = text.filter(|t| is_templated(&t.value)) else {
                    continue;
                };
                let name = release_template_name(&role.file, field);
                if let Err(e) = tera.add_raw_template(&name, &text.value) {
                    let at = site.loc(&role.file, text, text.value.chars().count());
                    diags.push(tera_diagnostic(site, &e, Some(at)));
                }
            }
        }
        let renderer = Renderer {
            tera: Arc::new(tera),
            limits: Limits::default(),
        };
        (renderer, diags)
    }

    /// The same templates under other limits (tests).
    pub fn with_limits(mut self, limits: Limits) -> Renderer {
        self.limits = limits;
        self
    }

    pub fn has_template(&self, name: &str) -> bool {
        self.tera.contains_template(name)
    }

    /// Renders Tera fields of a role (its `dns:` strings, from [`dns_fields`]) for `host`, with
    /// the context a file's `dest` sees (`host`, `hosts`, `by_role`, `env`, `vars`; no
    /// `secrets`), within the same limits as a template.
    pub fn render_role_fields(
        &self,
        env: &Environment,
        shared: &SharedContext,
        host: &ResolvedHost,
        role_file: &Path,
        fields: &[(String, &Sp<String>)],
    ) -> Result<Vec<String>, Box<Diagnostic>> {
        let site = env.site;
        let mut ctx = shared.context(host);
        ctx.insert_value(
            "vars",
            Value::from_serializable(&env.file_vars(host, &Default::default())),
        );
        let mut batch = Batch::default();
        let mut queued = Vec::new();
        for (field, text) in fields {
            if !is_templated(&text.value) {
                queued.push(Field::Text(text.value.clone()));
                continue;
            }
            let name = field_template_name(role_file, field);
            if !self.tera.contains_template(&name) {
                // A syntax error: reported by Renderer::new.
                return Err(Box::new(
                    Diagnostic::error(format!("`{field}` does not parse")).at(site.loc(
                        role_file,
                        *text,
                        text.value.chars().count(),
                    )),
                ));
            }
            queued.push(Field::Job(batch.add(name, ctx.clone())));
        }
        let mut results = self.run(batch);
        let mut out = Vec::new();
        for ((field, text), queued) in fields.iter().zip(queued) {
            let at = site.loc(role_file, *text, text.value.chars().count());
            let what = format!("`{field}` of this role");
            let value = results
                .text(queued)
                .map_err(|f| f.diagnostic(site, &what, &host.view.name, Some(at.clone()), at))?;
            out.push(value);
        }
        Ok(out)
    }

    /// Runs a host's queued renders within the limits.
    fn run(&self, batch: Batch) -> Results {
        bounded::run(&self.tera, self.limits, batch)
    }
}

/// The parts of the template context shared by every host of an environment, and the
/// scanners for unset secrets' placeholders, one per set of names (hosts share role sets).
pub struct SharedContext {
    env: Value,
    hosts: Value,
    by_role: Value,
    views: BTreeMap<String, Value>,
    unset: Mutex<HashMap<Vec<String>, Arc<Scanner>>>,
}

impl SharedContext {
    pub fn new(env: &Environment) -> SharedContext {
        // Each host's view converted once: `hosts`, `by_role` and its own `host` share it.
        let views: BTreeMap<String, Value> = (env.hosts.iter())
            .map(|(name, h)| (name.clone(), Value::from_serializable(&h.view)))
            .collect();
        let mut by_role: BTreeMap<String, Vec<Value>> = (env.site.roles.keys())
            .map(|r| (r.clone(), Vec::new()))
            .collect();
        for (name, h) in &env.hosts {
            for r in &h.view.all_roles {
                let list = by_role.entry(r.clone()).or_default();
                list.extend(views.get(name).cloned());
            }
        }
        let inv = env.inventory;
        let env_value = serde_json::json!({
            "name": env.name,
            "domain": inv.domain,
            "internal_domain": inv.internal_domain,
            "provider": inv.provider.value.kind,
        });
        let env_value = with_objects_url(env_value, &inv.provider.value);
        SharedContext {
            env: Value::from_serializable(&env_value),
            hosts: Value::from(views.values().cloned().collect::<Vec<_>>()),
            by_role: Value::from(by_role),
            views,
            unset: Mutex::default(),
        }
    }

    /// What every template of `host` sees whatever it renders: `env`, `hosts`, `by_role` and
    /// `host` (its view, converted once).
    fn context(&self, host: &ResolvedHost) -> Context {
        let view = (self.views.get(&host.view.name).cloned())
            .unwrap_or_else(|| Value::from_serializable(&host.view));
        let mut ctx = Context::new();
        ctx.insert_value("env", self.env.clone());
        ctx.insert_value("hosts", self.hosts.clone());
        ctx.insert_value("by_role", self.by_role.clone());
        ctx.insert_value("host", view);
        ctx
    }

    /// The scanner for the placeholders of the secrets in `values` (as a host's templates saw
    /// them) that `secrets` does not set: [`Scanner::unset`], built once per set of names.
    fn unset(&self, secrets: &Secrets, values: &BTreeMap<String, String>) -> Arc<Scanner> {
        let names: Vec<String> = (values.keys())
            .filter(|name| secrets.get(name).is_none())
            .cloned()
            .collect();
        let mut cache = self.unset.lock().unwrap_or_else(PoisonError::into_inner);
        let scanner = cache
            .entry(names)
            .or_insert_with(|| Arc::new(Scanner::unset(secrets, values)));
        scanner.clone()
    }
}

/// The result of rendering one host: its files, its release, and the problems found.
#[derive(Debug, Default)]
pub struct HostRender {
    pub files: Vec<RenderedFile>,
    /// The release of the first role (in apply order) with a `release:` (`commit` unset).
    pub release: Option<DesiredRelease>,
    /// The apt sources of the host's roles, in apply order.
    pub apt_sources: Vec<DesiredAptSource>,
    pub diagnostics: Vec<Diagnostic>,
}

impl HostRender {
    /// The secrets this host needs that are not set: those its files name (placeholders were
    /// rendered), and its release's `ssh_key`.
    pub fn missing_secrets(&self) -> impl Iterator<Item = &str> {
        let key = self
            .release
            .as_ref()
            .filter(|r| r.ssh_key_value.is_none())
            .and_then(|r| r.ssh_key.as_deref());
        self.files
            .iter()
            .flat_map(|f| f.missing_secrets.iter().map(String::as_str))
            .chain(key)
    }
}

/// A template `render_for_host` renders: its name, what it is (for messages), where a Tera
/// error in it points when the template is a string of a role file, and the entry.
pub(crate) struct RenderName {
    pub name: String,
    pub what: String,
    pub tera_at: Option<SourceLocation>,
    pub at: SourceLocation,
}

/// The template context of `host` without `vars`, and the values of its roles' secrets
/// (placeholders for those not set).
pub(crate) fn host_context(
    env: &Environment,
    shared: &SharedContext,
    host: &ResolvedHost,
    secrets: &Secrets,
) -> (Context, BTreeMap<String, String>) {
    let mut secret_values = BTreeMap::new();
    for r in &host.view.all_roles {
        if let Some(role) = env.site.roles.get(r) {
            for s in &role.value.secrets {
                let v = secrets
                    .get(&s.value)
                    .map(str::to_string)
                    .unwrap_or_else(|| Secrets::placeholder(&s.value));
                secret_values.insert(s.value.clone(), v);
            }
        }
    }
    let mut base = shared.context(host);
    base.insert_value("secrets", Value::from_serializable(&secret_values));
    (base, secret_values)
}

impl Renderer {
    /// Renders the Tera templates `names` for `host`, with its context and `vars` merged as a
    /// file entry's: what `publish:` uploads. `what` names each for messages.
    pub(crate) fn render_for_host(
        &self,
        env: &Environment,
        shared: &SharedContext,
        host: &ResolvedHost,
        secrets: &Secrets,
        entry_vars: &crate::model::Vars,
        names: &[RenderName],
    ) -> Result<Vec<Vec<u8>>, Box<Diagnostic>> {
        let (mut ctx, _) = host_context(env, shared, host, secrets);
        let vars = env.file_vars(host, entry_vars);
        ctx.insert_value("vars", Value::from_serializable(&vars));
        let mut batch = Batch::default();
        for n in names {
            batch.add(n.name.clone(), ctx.clone());
        }
        let mut results = self.run(batch);
        let host = &host.view.name;
        (names.iter().enumerate())
            .map(|(i, n)| {
                results.take(i).map_err(|f| {
                    f.diagnostic(env.site, &n.what, host, n.tera_at.clone(), n.at.clone())
                })
            })
            .collect()
    }

    /// Renders every file `host` gets, in role apply order. Every Tera render the host needs
    /// is queued first and run as one batch; errors are collected per file, so one broken
    /// template does not hide the others.
    pub fn render_host(
        &self,
        env: &Environment,
        shared: &SharedContext,
        host: &ResolvedHost,
        secrets: &Secrets,
    ) -> HostRender {
        let site = env.site;
        let (mut plain, secret_values) = host_context(env, shared, host, secrets);
        let unset = shared.unset(secrets, &secret_values);
        let vars = env.file_vars(host, &Default::default());
        plain.insert_value("vars", Value::from_serializable(&vars));
        let mut batch = Batch::default();
        let roles: Vec<QueuedRole> = host
            .view
            .all_roles
            .iter()
            .filter_map(|name| {
                let role = site.roles.get(name)?;
                Some(self.queue_role(env, host, name, role, &plain, &mut batch))
            })
            .collect();
        let release = queue_release(site, host, &plain, &mut batch);
        let mut finish = Finish {
            site,
            results: self.run(batch),
            host: &host.view.name,
            secrets,
            unset: &unset,
        };
        let mut out = HostRender::default();
        for role in roles {
            finish.role(role, &mut out);
        }
        out.diagnostics.extend(duplicate_destinations(&out.files));
        match release.map(|r| finish.release(r)).transpose() {
            Ok(release) => out.release = release,
            Err(diags) => out.diagnostics.extend(diags),
        }
        out
    }

    /// Queues the renders of a role's files (each with its `vars` and the role's `tls`) and
    /// of its apt sources' fields.
    fn queue_role<'a>(
        &self,
        env: &Environment,
        host: &ResolvedHost,
        name: &'a str,
        role: &'a Loaded<Role>,
        plain: &Context,
        batch: &mut Batch,
    ) -> QueuedRole<'a> {
        let tls = role.value.tls.as_ref().map(|_| {
            let (cert, key) = tls_paths(name);
            Value::from_serializable(&serde_json::json!({"cert_path": cert, "key_path": key}))
        });
        let mut entries = Vec::new();
        for (i, entry) in role.value.files.iter().enumerate() {
            let e = &entry.value;
            let mut ctx = plain.clone();
            if let Some(t) = &tls {
                ctx.insert_value("tls", t.clone());
            }
            if !e.vars.is_empty() {
                let vars = env.file_vars(host, &e.vars);
                ctx.insert_value("vars", Value::from_serializable(&vars));
            }
            let dest = queue(batch, &e.dest.value, &ctx, || {
                dest_template_name(&role.file, i)
            });
            // A missing template (or one that does not parse) is reported by validation.
            let content = (e.template.as_ref())
                .filter(|t| self.tera.contains_template(&t.value))
                .map(|t| batch.add(t.value.clone(), ctx));
            entries.push((dest, content));
        }
        let apt = (role.value.apt_sources.iter().enumerate())
            .map(|(i, a)| {
                apt_fields(&a.value).map(|(field, text)| {
                    queue(batch, &text.value, plain, || {
                        apt_template_name(&role.file, i, field)
                    })
                })
            })
            .collect();
        QueuedRole {
            name,
            role,
            entries,
            apt,
        }
    }
}

/// A Tera string of a role file queued for rendering with `ctx` under `name()` when it is
/// templated, else kept as written.
fn queue(batch: &mut Batch, text: &str, ctx: &Context, name: impl FnOnce() -> String) -> Field {
    if is_templated(text) {
        Field::Job(batch.add(name(), ctx.clone()))
    } else {
        Field::Text(text.to_string())
    }
}

/// A role's renders queued for one host: per file entry its destination and its template's
/// render (none for a `source:`), per apt source its `uri` and `suite`.
struct QueuedRole<'a> {
    name: &'a str,
    role: &'a Loaded<Role>,
    entries: Vec<(Field, Option<usize>)>,
    apt: Vec<[Field; 2]>,
}

/// The host's release queued: the first role in apply order with a `release:`, and its Tera
/// fields (rendered with the context a file's `dest` sees).
struct QueuedRelease<'a> {
    role_name: &'a str,
    role: &'a Loaded<Role>,
    release: &'a Release,
    fields: Vec<(&'static str, &'a Sp<String>, Field)>,
}

fn queue_release<'a>(
    site: &'a Site,
    host: &'a ResolvedHost,
    plain: &Context,
    batch: &mut Batch,
) -> Option<QueuedRelease<'a>> {
    let (role_name, role, release) = host.view.all_roles.iter().find_map(|r| {
        let role = site.roles.get(r)?;
        Some((r, role, role.value.release.as_ref()?))
    })?;
    let fields = release_fields(&release.value)
        .into_iter()
        .filter_map(|(field, text)| {
            let text = text?;
            let queued = queue(batch, &text.value, plain, || {
                release_template_name(&role.file, field)
            });
            Some((field, text, queued))
        })
        .collect();
    Some(QueuedRelease {
        role_name,
        role,
        release: &release.value,
        fields,
    })
}

/// What turns a host's rendered batch into its files, apt sources and release: the results,
/// the host (for messages) and the secrets to look for.
struct Finish<'a> {
    site: &'a Site,
    results: Results,
    host: &'a str,
    secrets: &'a Secrets,
    unset: &'a Scanner,
}

impl Finish<'_> {
    /// A role's files (its `tls:` ones first: a config naming them is checked as it is
    /// written) and apt sources.
    fn role(&mut self, q: QueuedRole, out: &mut HostRender) {
        let site = self.site;
        let QueuedRole {
            name,
            role,
            entries,
            apt,
        } = q;
        if let Some(tls) = &role.value.tls {
            tls_files(site, role, name, tls, self.secrets, out);
        }
        for (entry, (dest, content)) in role.value.files.iter().zip(entries) {
            match self.entry(&role.file, entry, dest, content) {
                // A missing template or source: validation reports it once.
                Ok(None) => {}
                Ok(Some(rendered)) => {
                    let at = site.loc(&role.file, entry, 1);
                    let file = rendered_file(rendered, &entry.value, name, at);
                    out.files.push(file.with_secrets(self.secrets, self.unset));
                }
                Err(d) => out.diagnostics.push(*d),
            }
        }
        self.apt_sources(role, name, apt, out);
    }

    fn entry(
        &mut self,
        role_file: &Path,
        entry: &Sp<FileEntry>,
        dest: Field,
        content: Option<usize>,
    ) -> Result<Option<Rendered>, Box<Diagnostic>> {
        let (site, host) = (self.site, self.host);
        let e = &entry.value;
        let dest = self.results.text(dest).map_err(|f| {
            let at = site.loc(role_file, &e.dest, e.dest.value.chars().count());
            f.diagnostic(site, "the `dest` of this file", host, Some(at.clone()), at)
        })?;
        if let Some(problem) = crate::names::dest_problem(&dest) {
            return Err(Box::new(
                Diagnostic::error(format!("destination `{dest}` {problem}"))
                    .at(site.loc(role_file, entry, 1))
                    .hint(
                        "`dest` must render to a clean absolute path, e.g. /etc/nginx/nginx.conf",
                    ),
            ));
        }
        if let Some(t) = &e.template {
            let Some(job) = content else {
                // Missing, or a syntax error: reported by validation and Renderer::new.
                return Ok(None);
            };
            let content = self.results.take(job).map_err(|f| {
                let what = format!("template `{}`", t.value);
                f.diagnostic(site, &what, host, None, site.loc(role_file, entry, 1))
            })?;
            Ok(Some((dest, content, Origin::Template(t.value.clone()))))
        } else if let Some(s) = &e.source {
            // A missing source is reported by validation.
            Ok(site
                .templates
                .get(&s.value)
                .map(|f| (dest, f.bytes.clone(), Origin::Source(s.value.clone()))))
        } else {
            Ok(None)
        }
    }

    /// A role's `apt_sources:` for this host: `uri` and `suite` rendered and checked (the plan
    /// shows them: a secret's value is refused), the key read from the site. A key that is
    /// missing or not an OpenPGP public key is reported by validation, once.
    fn apt_sources(
        &mut self,
        role: &Loaded<Role>,
        role_name: &str,
        queued: Vec<[Field; 2]>,
        out: &mut HostRender,
    ) {
        let site = self.site;
        for (i, (a, fields)) in role.value.apt_sources.iter().zip(queued).enumerate() {
            let a = &a.value;
            let mut rendered = Vec::new();
            for ((field, text), queued) in apt_fields(a).into_iter().zip(fields) {
                match self.apt_field(&role.file, i, field, text, queued) {
                    Ok(v) => rendered.push(v),
                    Err(d) => out.diagnostics.push(*d),
                }
            }
            let Some(key) = site.templates.get(&a.key.value) else {
                continue;
            };
            let (Ok(armored), [uri, suite]) = (
                crate::desired_apt::key_kind(&key.bytes),
                <[String; 2]>::try_from(rendered).unwrap_or_default(),
            ) else {
                continue;
            };
            if uri.is_empty() {
                continue;
            }
            out.apt_sources.push(DesiredAptSource {
                name: a.name.value.to_string(),
                role: role_name.to_string(),
                uri,
                suite,
                components: a.components.iter().map(|c| c.to_string()).collect(),
                architectures: a.architectures.iter().map(|c| c.to_string()).collect(),
                key_origin: a.key.value.clone(),
                key_sha256: crate::state::sha256(&key.bytes),
                key: key.bytes.clone(),
                armored,
            });
        }
    }

    /// One Tera field of an `apt_sources:` entry, rendered and checked.
    fn apt_field(
        &mut self,
        role_file: &Path,
        index: usize,
        field: &str,
        text: &Sp<String>,
        queued: Field,
    ) -> Result<String, Box<Diagnostic>> {
        let (site, host) = (self.site, self.host);
        let at = site.loc(role_file, text, text.value.chars().count());
        let value = self.results.text(queued).map_err(|f| {
            let what = format!("the `apt_sources[{index}].{field}` of this role");
            f.diagnostic(site, &what, host, Some(at.clone()), at.clone())
        })?;
        let problem = if !self.secrets.found_in(&value).is_empty() {
            Some("holds a secret's value (the plan shows this field)")
        } else if field == "uri" {
            crate::desired_apt::uri_problem(&value)
        } else if is_templated(&text.value) && crate::desired_apt::is_flat(&value) {
            // Whether components are wanted is checked on the role as written (validate.rs).
            Some("ends with `/` (a flat repository): write a flat suite as it is, not templated")
        } else {
            crate::desired_apt::suite_problem(&value)
        };
        match problem {
            None => Ok(value),
            Some(p) => Err(Box::new(
                Diagnostic::error(format!(
                    "`apt_sources[{index}].{field}` on host `{host}`: `{value}` {p}"
                ))
                .at(at)
                .hint(if field == "uri" {
                    "write the repository's URL, e.g. https://artifacts.elastic.co/packages/8.x/apt"
                } else {
                    "write the repository's suite (distribution), e.g. stable or bookworm"
                }),
            )),
        }
    }

    /// The host's release with its fields rendered. A field that renders a secret's value is
    /// refused (the plan shows these fields), as is a `path` or `env_file` that is not a clean
    /// absolute path.
    fn release(&mut self, q: QueuedRelease) -> Result<DesiredRelease, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let mut rendered = BTreeMap::new();
        for (field, text, queued) in q.fields {
            match self.release_field(&q.role.file, field, text, queued) {
                Ok(value) => {
                    rendered.insert(field, value);
                }
                Err(d) => diags.push(*d),
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        let r = q.release;
        let mut take = |field| rendered.remove(field).unwrap_or_default();
        let ssh_key = r.ssh_key.as_ref().map(|k| k.value.clone());
        let ref_ = take("ref");
        Ok(DesiredRelease {
            role: q.role_name.to_string(),
            path: take("path"),
            repo: take("repo"),
            controller_repo: Some(take("controller_repo")).filter(|c| !c.is_empty()),
            label: ref_.clone(),
            ref_,
            commit: None,
            commits: None,
            ssh_key_value: ssh_key
                .as_deref()
                .and_then(|k| self.secrets.get(k))
                .map(|v| SecretText(v.to_string())),
            ssh_key,
            user: r.user.value.to_string(),
            requirements: r.requirements.as_ref().map(|q| q.value.clone()),
            venv: r.venv.clone(),
            pip: r.pip.clone(),
            env_file: Some(take("env_file")).filter(|e| !e.is_empty()),
            build: r.build.iter().map(|c| c.value.clone()).collect(),
            once: r.once.iter().map(|c| c.value.clone()).collect(),
            reload: r.reload.iter().map(|c| c.value.clone()).collect(),
            keep: r.keep(),
            ref_at: self
                .site
                .loc(&q.role.file, &r.ref_, r.ref_.value.chars().count()),
        })
    }

    /// One Tera field of a `release:`, rendered and checked.
    fn release_field(
        &mut self,
        role_file: &Path,
        field: &str,
        text: &Sp<String>,
        queued: Field,
    ) -> Result<String, Box<Diagnostic>> {
        let (site, host) = (self.site, self.host);
        let at = site.loc(role_file, text, text.value.chars().count());
        let value = self.results.text(queued).map_err(|f| {
            let what = format!("the `release.{field}` of this role");
            f.diagnostic(site, &what, host, Some(at.clone()), at.clone())
        })?;
        // A field naming `secrets` is reported by validation, once.
        let problem = if !mentions_secrets(&text.value) && !self.secrets.found_in(&value).is_empty()
        {
            Some((
                "holds a secret's value".to_string(),
                "the plan shows this field: fetch with `ssh_key:` instead of a password in the URL",
            ))
        } else if matches!(field, "path" | "env_file") {
            crate::names::path_problem(&value).map(|p| {
                (
                    format!("`{value}` {p}"),
                    "it must render to a clean absolute path, e.g. /var/www/app",
                )
            })
        } else if value.is_empty() || value.chars().any(char::is_control) || value.starts_with('-')
        {
            Some((
                format!("{value:?} is empty, starts with `-` or holds a control character"),
                "it must render to one line of text (a URL, or a branch, tag or commit)",
            ))
        } else {
            None
        };
        match problem {
            None => Ok(value),
            Some((what, hint)) => Err(Box::new(
                Diagnostic::error(format!("`release.{field}` on host `{host}`: {what}"))
                    .at(at)
                    .hint(hint),
            )),
        }
    }
}

/// A file entry's rendered destination and content as the file a host gets (its secrets not
/// looked for yet: [`RenderedFile::with_secrets`]).
fn rendered_file(
    (dest, content, origin): Rendered,
    e: &FileEntry,
    role: &str,
    entry: SourceLocation,
) -> RenderedFile {
    RenderedFile {
        dest,
        secrets: Vec::new(),
        digest: String::new(),
        sha256: String::new(),
        missing_secrets: Vec::new(),
        content,
        owner: e.owner.to_string(),
        group: e.group.to_string(),
        mode: e.mode.unwrap_or(Mode(0o644)),
        role: role.to_string(),
        origin,
        notify: e.notify.iter().map(|n| n.value.clone()).collect(),
        check: e.check.clone(),
        unsafe_parent: e.unsafe_parent == UnsafeParent::Allow,
        once: e.once,
        entry,
    }
}

impl RenderedFile {
    /// The file with the secrets its content holds, the ones it needed that are not set, and
    /// its digest (keyed when it holds a secret).
    /// `unset` finds the placeholders of the host's secrets that are not set (quoted or
    /// percent-encoded by a filter, a placeholder is still found: [`Scanner::unset`]).
    fn with_secrets(mut self, secrets: &Secrets, unset: &Scanner) -> Self {
        // The bytes as they are: a needle is UTF-8, so it is found where it is whole.
        self.missing_secrets = unset.names_in(&self.content);
        self.secrets = secrets.found_in(&self.content);
        self.sha256 = crate::state::sha256(&self.content);
        self.digest = if self.secrets.is_empty() {
            self.sha256.clone()
        } else {
            secrets.digest_key().keyed(&self.sha256)
        };
        self
    }
}

/// A role's `tls:` as two files holding its secrets: the certificate (0644) and the key (0600),
/// both root's. A secret that is not set renders its placeholder, as in a template; one that is
/// set but does not look like a PEM certificate or private key is a warning at its name.
fn tls_files(
    site: &Site,
    role: &crate::site::Loaded<crate::model::Role>,
    role_name: &str,
    tls: &Sp<crate::model::Tls>,
    secrets: &Secrets,
    out: &mut HostRender,
) {
    let (cert_path, key_path) = tls_paths(role_name);
    let t = &tls.value;
    let parts = [
        (
            &t.cert,
            cert_path,
            Mode(0o644),
            "-----BEGIN CERTIFICATE-----",
            "a PEM certificate",
        ),
        (
            &t.key,
            key_path,
            Mode(0o600),
            "PRIVATE KEY-----",
            "a PEM private key",
        ),
    ];
    for (secret, dest, mode, marker, what) in parts {
        let name = &secret.value;
        let (value, missing) = match secrets.get(name) {
            Some(v) => (v.to_string(), Vec::new()),
            None => (Secrets::placeholder(name), vec![name.clone()]),
        };
        if missing.is_empty() && !value.contains(marker) {
            out.diagnostics.push(
                Diagnostic::warning(format!(
                    "secret `{name}` (tls of role `{role_name}`) does not look like {what}"
                ))
                .at(site.loc(&role.file, secret, name.chars().count()))
                .hint("set it to the PEM text, `-----BEGIN ...-----` lines included"),
            );
        }
        let mut content = value.into_bytes();
        if !content.ends_with(b"\n") {
            content.push(b'\n');
        }
        let hash = crate::state::sha256(&content);
        out.files.push(RenderedFile {
            dest,
            secrets: vec![name.clone()],
            digest: secrets.digest_key().keyed(&hash),
            sha256: hash,
            missing_secrets: missing,
            content,
            owner: "root".into(),
            group: "root".into(),
            mode,
            role: role_name.to_string(),
            origin: Origin::Secret(name.clone()),
            notify: t.notify.iter().map(|n| n.value.clone()).collect(),
            check: None,
            unsafe_parent: false,
            once: false,
            entry: site.loc(&role.file, tls, 1),
        });
    }
}

/// A Tera error as a diagnostic at its template position (or at `fallback`, for strings
/// written inside role files).
fn tera_diagnostic(site: &Site, err: &tera::Error, fallback: Option<SourceLocation>) -> Diagnostic {
    let report = match err.kind() {
        tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => Some(r),
        _ => None,
    };
    let Some(r) = report else {
        // Errors without a typed report (e.g. an unknown function) carry it in the text.
        let text = err.to_string();
        let (message, loc) = parse_report_text(&text);
        let location = loc
            .filter(|(name, _, _)| !name.starts_with(DEST_PREFIX))
            .map(|(name, line, col)| {
                site.sources
                    .location(&PathBuf::from("templates").join(name), line, col, 1)
            })
            .or(fallback);
        return Diagnostic::error(message).at_opt(location);
    };
    let message = r.message().to_string();
    let hint = hint_for(&message, site);
    if r.filename().starts_with(DEST_PREFIX) || r.filename().is_empty() {
        return Diagnostic::error(message).at_opt(fallback).hint_opt(hint);
    }
    let span = r.span();
    let width = if span.end_line == span.start_line {
        span.end_col.saturating_sub(span.start_col)
    } else {
        1
    };
    let file = PathBuf::from("templates").join(r.filename());
    Diagnostic::error(message)
        .at(site
            .sources
            .location(&file, span.start_line, span.start_col + 1, width))
        .hint_opt(hint)
}

/// Extra help for the errors users hit most.
fn hint_for(message: &str, site: &Site) -> Option<String> {
    let field = message
        .strip_prefix("Field `")
        .or_else(|| message.strip_prefix("Variable `"))
        .and_then(|r| r.split('`').next())?;
    let owners: Vec<&str> = site
        .roles
        .iter()
        .filter(|(_, r)| r.value.secrets.iter().any(|s| s.value == field))
        .map(|(n, _)| n.as_str())
        .collect();
    if !owners.is_empty() {
        return Some(format!(
            "`{field}` is a secret declared by role {}; a role whose templates use secrets.{field} must list it under `secrets:`",
            owners.join(", ")
        ));
    }
    Some(format!(
        "define `{field}` in the role's `defaults`, the inventory's `vars`/`role_vars`, or the host's `vars`"
    ))
}

/// `error: MESSAGE\n --> NAME:LINE:COL ...` as Tera prints untyped errors.
fn parse_report_text(text: &str) -> (String, Option<(String, usize, usize)>) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
    let loc = text.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("--> ")?;
        let mut parts = rest.rsplitn(3, ':');
        let col = parts.next()?.trim().parse().ok()?;
        let line = parts.next()?.trim().parse().ok()?;
        let name = parts.next()?.to_string();
        Some((name, line, col))
    });
    (message, loc)
}

/// The `role` argument and the list of hosts holding it (`by_role[role]`, shared: no copy).
fn role_list(kwargs: &Kwargs, state: &State, func: &str) -> TeraResult<(String, Value)> {
    let role: String = kwargs.must_get("role")?;
    let by_role: Value = state
        .get("by_role")?
        .ok_or_else(|| tera::Error::message(format!("{func}() needs `by_role` in the context")))?;
    let list = by_role
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(role.as_str())))
        .map(|(_, v)| v.clone())
        .filter(|v| v.as_array().is_some());
    match list {
        Some(hosts) => Ok((role, hosts)),
        None => Err(tera::Error::message(format!(
            "{func}(role=\"{role}\"): there is no role `{role}` in roles/"
        ))),
    }
}

fn env_name(state: &State) -> String {
    state
        .get::<Value>("env")
        .ok()
        .flatten()
        .and_then(|v| {
            v.get_from_path("name")
                .and_then(|n| n.as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

/// `hosts(role="app")`: the hosts holding a role, sorted by name.
fn fn_hosts(kwargs: Kwargs, state: &State) -> TeraResult<Value> {
    let (_, hosts) = role_list(&kwargs, state, "hosts")?;
    Ok(hosts)
}

/// `one(role="masterdb")`: the single host holding a role; an error unless exactly one.
fn fn_one(kwargs: Kwargs, state: &State) -> TeraResult<Value> {
    let (role, hosts) = role_list(&kwargs, state, "one")?;
    match hosts.as_array().unwrap_or_default() {
        [one] => Ok(one.clone()),
        [] => Err(tera::Error::message(format!(
            "one(role=\"{role}\"): no host in environment `{}` holds role `{role}`",
            env_name(state)
        ))),
        many => {
            let names: Vec<String> = many
                .iter()
                .filter_map(|h| {
                    h.get_from_path("name")
                        .and_then(|n| n.as_str().map(str::to_string))
                })
                .collect();
            Err(tera::Error::message(format!(
                "one(role=\"{role}\"): {} hosts hold role `{role}` ({}), exactly one is needed",
                many.len(),
                names.join(", ")
            )))
        }
    }
}

/// `addrs(role="app", port=8000)`: `["10.0.0.5:8000", ...]` for the hosts holding a role.
fn fn_addrs(kwargs: Kwargs, state: &State) -> TeraResult<Value> {
    let (_, hosts) = role_list(&kwargs, state, "addrs")?;
    let port: Option<u64> = kwargs.get("port")?;
    let addrs: Vec<Value> = (hosts.as_array().unwrap_or_default().iter())
        .filter_map(|h| {
            h.get_from_path("private_ip")
                .and_then(|v| v.as_str().map(str::to_string))
        })
        .map(|ip| match port {
            Some(p) => Value::from(format!("{ip}:{p}")),
            None => Value::from(ip),
        })
        .collect();
    Ok(Value::from(addrs))
}

/// The filters that quote a value for the language it lands in (see `quoting`): `sh` (one
/// POSIX sh word), `sql` (an SQL string literal), `sql_ident` (an SQL identifier) and `url`
/// (percent-encoding, for a URL's user, password or path part). `dq` (a C-style double-quoted
/// string, for config files such as redis.conf) is registered too, but is no quoting for sh.
pub const QUOTING_FILTERS: [&str; 4] = ["sh", "sql", "sql_ident", "url"];

fn register_quoting(tera: &mut Tera) {
    fn text(v: &Value) -> String {
        v.as_str().map_or_else(|| v.to_string(), str::to_string)
    }
    tera.register_filter("sh", |v: Value, _: Kwargs, _: &State| {
        crate::quoting::sh(&text(&v))
    });
    tera.register_filter("sql", |v: Value, _: Kwargs, _: &State| {
        crate::quoting::sql(&text(&v))
    });
    tera.register_filter("sql_ident", |v: Value, _: Kwargs, _: &State| {
        crate::quoting::sql_ident(&text(&v))
    });
    // A JSON value (a string quoted and escaped as JSON), for JSON config files.
    tera.register_filter("json", |v: Value, _: Kwargs, _: &State| {
        let plain = serde_json::to_value(&v).unwrap_or(serde_json::Value::Null);
        serde_json::to_string(&plain).unwrap_or_default()
    });
    tera.register_filter("dq", |v: Value, _: Kwargs, _: &State| {
        crate::quoting::double_quoted(&text(&v))
    });
    tera.register_filter("url", |v: Value, _: Kwargs, _: &State| {
        crate::quoting::percent(&text(&v), true)
    });
    // A variable's name in sh (`NAME=value`): refused unless it is one.
    tera.register_filter("sh_name", |v: Value, _: Kwargs, _: &State| {
        let name = text(&v);
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(name)
        } else {
            Err(tera::Error::message(format!(
                "`{name}` is not a shell variable name (letters, digits and _, not starting with a digit)"
            )))
        }
    });
}

/// Two files for one destination on a host: an error at the second, naming the first.
fn duplicate_destinations(files: &[RenderedFile]) -> Vec<Diagnostic> {
    let mut dests: BTreeMap<&str, &RenderedFile> = BTreeMap::new();
    let mut found = Vec::new();
    for f in files {
        if let Some(first) = dests.insert(f.dest.as_str(), f) {
            found.push(
                Diagnostic::error(format!(
                    "two files for {}: from role `{}` and role `{}`",
                    f.dest, first.role, f.role
                ))
                .at(f.entry.clone())
                .note(format!(
                    "the first is at {}:{}",
                    first.entry.file.display(),
                    first.entry.line
                ))
                .hint("give one of them another `dest`, or move the file to a role both include"),
            );
        }
    }
    found
}

/// The one render pipeline (validate, render, plan and apply use it): every host of `hosts`
/// rendered with its problems, in parallel (a chunk of hosts per core), in the given order.
pub fn render_hosts(
    env: &Environment,
    renderer: &Renderer,
    secrets: &Secrets,
    hosts: &[&ResolvedHost],
) -> Vec<HostRender> {
    let shared = SharedContext::new(env);
    crate::par::map(hosts.to_vec(), |h| {
        renderer.render_host(env, &shared, h, secrets)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const INVENTORY: &str = "environment: e\ndomain: example.org\ninternal_domain: e.internal\nprovider: {type: static}\nhosts:\n  h1: {roles: [r], address: 10.0.0.1}\n";

    /// A site of `files` (path, text), loaded without a problem.
    fn site_of(files: &[(&str, &str)]) -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let (site, diags) = Site::load(dir.path()).unwrap();
        assert!(diags.is_empty(), "{diags:?}");
        (dir, site)
    }

    /// A site with one role whose file renders `template`, and a host `h1` holding it.
    fn one_template(template: &str) -> (tempfile::TempDir, Site) {
        site_of(&[
            (
                "roles/r.yaml",
                "name: r\nfiles:\n  - {template: t.j2, dest: /etc/t}\n",
            ),
            ("templates/t.j2", template),
            ("inventories/e.yaml", INVENTORY),
        ])
    }

    fn render_one(site: &Site, limits: Limits) -> HostRender {
        let env = Environment::resolve(site, "e", &[]).unwrap();
        let (renderer, diags) = Renderer::new(site);
        assert!(diags.is_empty(), "{diags:?}");
        let renderer = renderer.with_limits(limits);
        let host = env.hosts.get("h1").unwrap();
        render_hosts(&env, &renderer, &Secrets::default(), &[host])
            .pop()
            .unwrap()
    }

    #[test]
    fn a_template_rendering_too_much_is_an_error_naming_it_and_the_host() {
        let (_dir, site) = one_template(
            "{% for i in range(end=100000) %}{% for j in range(end=100000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
        );
        let out = render_one(
            &site,
            Limits {
                max_bytes: 1 << 20,
                max_time: Duration::from_secs(60),
            },
        );
        assert!(out.files.is_empty());
        assert_eq!(
            out.diagnostics[0].message,
            "template `t.j2` on host `h1` renders more than 1 MiB"
        );
        assert_eq!(
            out.diagnostics[0].location.as_ref().unwrap().file,
            Path::new("roles/r.yaml")
        );
    }

    #[test]
    fn a_template_rendering_too_long_is_an_error_naming_it_and_the_host() {
        let (_dir, site) = one_template(
            "{% for i in range(end=100000) %}{% for j in range(end=100000) %}{% endfor %}{% endfor %}",
        );
        let out = render_one(
            &site,
            Limits {
                max_bytes: 1 << 20,
                max_time: Duration::from_millis(300),
            },
        );
        assert!(out.files.is_empty());
        assert_eq!(
            out.diagnostics[0].message,
            "template `t.j2` on host `h1` took over 300ms to render"
        );
    }

    #[test]
    fn a_slow_template_is_reported_and_the_files_around_it_still_render() {
        let two_hosts = format!("{INVENTORY}  h2: {{roles: [r], address: 10.0.0.2}}\n");
        let (_dir, site) = site_of(&[
            (
                "roles/r.yaml",
                "name: r\nfiles:\n  - {template: a.j2, dest: /etc/a}\n  - {template: slow.j2, dest: /etc/slow}\n  - {template: b.j2, dest: '/etc/{{ host.name }}'}\n",
            ),
            ("templates/a.j2", "a on {{ host.name }}"),
            (
                "templates/slow.j2",
                "{% for i in range(end=100000) %}{% for j in range(end=100000) %}{% endfor %}{% endfor %}",
            ),
            ("templates/b.j2", "b"),
            ("inventories/e.yaml", &two_hosts),
        ]);
        let env = Environment::resolve(&site, "e", &[]).unwrap();
        let (renderer, _) = Renderer::new(&site);
        let renderer = renderer.with_limits(Limits {
            max_bytes: 1 << 20,
            max_time: Duration::from_millis(200),
        });
        let hosts: Vec<_> = env.hosts.values().collect();
        for (out, name) in render_hosts(&env, &renderer, &Secrets::default(), &hosts)
            .into_iter()
            .zip(["h1", "h2"])
        {
            let files: Vec<_> = out
                .files
                .iter()
                .map(|f| (f.dest.as_str(), String::from_utf8_lossy(&f.content)))
                .collect();
            let b_dest = format!("/etc/{name}");
            assert_eq!(
                files,
                [
                    ("/etc/a", format!("a on {name}").into()),
                    (b_dest.as_str(), "b".into())
                ]
            );
            let messages: Vec<_> = out.diagnostics.iter().map(|d| &d.message).collect();
            assert_eq!(
                messages,
                [&format!(
                    "template `slow.j2` on host `{name}` took over 200ms to render"
                )]
            );
        }
    }

    #[test]
    fn quoting_filters_are_registered() {
        let mut tera = Tera::default();
        tera.autoescape_on(Vec::<&str>::new());
        register_quoting(&mut tera);
        let t = "{{ v | sh }} {{ v | sql }} {{ v | sql_ident }} {{ v | url }} {{ n | sh }}";
        tera.add_raw_template("t", t).unwrap();
        let mut ctx = Context::new();
        ctx.insert("v", "a'b\"c d");
        ctx.insert("n", &5432);
        assert_eq!(
            tera.render("t", &ctx).unwrap(),
            "'a'\\''b\"c d' 'a''b\"c d' \"a'b\"\"c d\" a%27b%22c%20d '5432'"
        );
    }

    #[test]
    fn report_text_gives_name_line_and_column() {
        let (m, loc) =
            parse_report_text("error: Unknown function `nope`\n --> a/z.j2:2:12\n  |\n2 | x\n");
        assert_eq!(m, "Unknown function `nope`");
        assert_eq!(loc, Some(("a/z.j2".to_string(), 2, 12)));
    }
}
