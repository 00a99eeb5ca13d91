//! The desired state of one host: everything its roles ask for, rendered, grouped by role in
//! apply (include) order.

use crate::diagnostic::SourceLocation;
use crate::environment::{Environment, ResolvedHost};
use crate::model::{Command, Dir, Group, Link, Mode, OnChange, PipConfig, User, VenvConfig};
use crate::render::RenderedFile;
use serde::Serialize;
use std::collections::BTreeSet;

/// A service a role runs, with the role that defines it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub enable: bool,
    pub on_change: OnChange,
    pub check: Option<String>,
}

/// What one role contributes to a host, in the order it is applied.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoleState {
    pub role: String,
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub dirs: Vec<Dir>,
    pub files: Vec<RenderedFile>,
    pub links: Vec<Link>,
    pub services: Vec<ServiceSpec>,
    pub commands: Vec<Command>,
    /// `once:` files of the role that this host, not being the role's once-host, must not have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_files: Vec<AbsentFile>,
}

/// A file a host must not have: a role's `once:` file on a host other than its once-host (it
/// may have been the once-host before). Removing it notifies the file's services.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AbsentFile {
    pub dest: String,
    /// The owner and group the file is written with on the once-host: the directory checks
    /// before the removal are those of a write.
    pub owner: String,
    pub group: String,
    pub notify: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_parent: bool,
}

/// Everything a host should be.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DesiredHost {
    pub name: String,
    /// Cloud volumes to format (when blank) and mount, before anything else.
    pub volumes: Vec<crate::model::Volume>,
    /// Every package of every role, once, in role order.
    pub packages: Vec<String>,
    pub roles: Vec<RoleState>,
    /// The application deployed from git on this host (one at most), from the first role in
    /// apply order that has a `release:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<DesiredRelease>,
}

/// A role's `release:` for one host, its Tera fields rendered. `commit` is unknown to the core:
/// the binary resolves `ref_` on the controller and fills it (with `label` and `commits`)
/// before planning; a release whose commit is `None` plans nothing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DesiredRelease {
    pub role: String,
    /// Absolute: `repo` (bare mirror), `releases/<commit>`, `current`, `releases.log` in it.
    pub path: String,
    /// The URL the host fetches from.
    pub repo: String,
    /// The URL the controller resolves `ref_` from, when not `repo`.
    pub controller_repo: Option<String>,
    #[serde(rename = "ref")]
    pub ref_: String,
    /// The full commit `ref_` resolves to (filled by the binary).
    pub commit: Option<String>,
    /// What the plan shows beside the commit: the ref, as written (the binary may change it).
    pub label: String,
    /// How many commits lie between the live release and `commit`, when the binary knows.
    pub commits: Option<u32>,
    /// The name of the secret holding the key the host fetches with.
    pub ssh_key: Option<String>,
    /// That secret's value; `None` when it is not set. Never serialized or printed.
    #[serde(skip)]
    pub ssh_key_value: Option<SecretText>,
    pub user: String,
    pub requirements: Option<String>,
    pub venv: VenvConfig,
    pub pip: PipConfig,
    pub env_file: Option<String>,
    pub build: Vec<String>,
    pub once: Vec<String>,
    pub reload: Vec<String>,
    pub keep: u32,
    /// Where `ref` is written (the role file), for messages about it.
    #[serde(skip)]
    pub ref_at: SourceLocation,
}

impl DesiredRelease {
    /// The URL the controller resolves refs from: `controller_repo`, else `repo`.
    pub fn controller_url(&self) -> &str {
        self.controller_repo.as_deref().unwrap_or(&self.repo)
    }
}

/// A secret's value: shown by `Debug` as `<secret>`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl DesiredHost {
    /// Builds the desired state from a host's rendered files and its roles' other resources.
    /// Each user, dir, link and service is taken from the first role (in apply order) naming it.
    pub fn new(env: &Environment, host: &ResolvedHost, files: Vec<RenderedFile>) -> DesiredHost {
        let packages = env.packages(host);
        let mut seen = BTreeSet::new();
        let mut roles = Vec::new();
        let mut files = files.into_iter().peekable();
        for role_name in &host.view.all_roles {
            let Some(role) = env.site.roles.get(role_name) else {
                continue;
            };
            let r = &role.value;
            let mut state = RoleState {
                role: role_name.clone(),
                ..RoleState::default()
            };
            for g in &r.groups {
                if seen.insert(format!("group:{}", g.name)) {
                    state.groups.push(g.clone());
                }
            }
            for u in &r.users {
                if seen.insert(format!("user:{}", u.name)) {
                    state.users.push(u.clone());
                }
            }
            for d in &r.dirs {
                if seen.insert(format!("dir:{}", d.path)) {
                    state.dirs.push(d.clone());
                }
            }
            for l in &r.links {
                if seen.insert(format!("link:{}", l.path)) {
                    state.links.push(l.clone());
                }
            }
            for s in &r.services {
                if seen.insert(format!("service:{}", s.name)) {
                    state.services.push(ServiceSpec {
                        name: s.name.to_string(),
                        enable: s.enable,
                        on_change: s.on_change,
                        check: s.check.clone(),
                    });
                }
            }
            // `once:` files and commands belong to the role's once-host alone.
            let has_once =
                r.commands.iter().any(|c| c.value.once) || r.files.iter().any(|f| f.value.once);
            let once_here = !has_once
                || crate::environment::once_host(env, role_name) == Some(host.view.name.as_str());
            state.commands = r
                .commands
                .iter()
                .filter(|c| once_here || !c.value.once)
                .map(|c| c.value.clone())
                .collect();
            // Rendered files come grouped by role, in the same order.
            while let Some(f) = files.next_if(|f| f.role == *role_name) {
                if once_here || !f.once {
                    state.files.push(f);
                } else {
                    state.absent_files.push(AbsentFile {
                        dest: f.dest,
                        owner: f.owner,
                        group: f.group,
                        notify: f.notify,
                        unsafe_parent: f.unsafe_parent,
                    });
                }
            }
            roles.push(state);
        }
        let volumes = if host.view.provider == crate::model::ProviderKind::Aws {
            host.view
                .all_roles
                .iter()
                .filter_map(|r| env.site.roles.get(r)?.value.volume.clone())
                .collect()
        } else {
            Vec::new()
        };
        DesiredHost {
            name: host.view.name.clone(),
            volumes,
            packages,
            roles,
            release: None,
        }
    }

    /// The host with its rendered release (`HostRender::release`).
    pub fn with_release(mut self, release: Option<DesiredRelease>) -> DesiredHost {
        self.release = release;
        self
    }

    pub fn files(&self) -> impl Iterator<Item = &RenderedFile> {
        self.roles.iter().flat_map(|r| r.files.iter())
    }

    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.roles.iter().flat_map(|r| r.services.iter())
    }

    pub fn dirs(&self) -> impl Iterator<Item = &Dir> {
        self.roles.iter().flat_map(|r| r.dirs.iter())
    }

    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.roles.iter().flat_map(|r| r.commands.iter())
    }

    /// Every file the host must not have (see [`AbsentFile`]).
    pub fn absent_files(&self) -> impl Iterator<Item = &AbsentFile> {
        self.roles.iter().flat_map(|r| r.absent_files.iter())
    }
}

/// The default mode of a managed directory.
pub const DIR_MODE: Mode = Mode(0o755);
