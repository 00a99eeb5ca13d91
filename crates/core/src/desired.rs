//! The desired state of one host: everything its roles ask for, rendered, grouped by role in
//! apply (include) order.

pub use crate::desired_apt::DesiredAptSource;
pub use crate::desired_release::{DesiredRelease, SecretText};
use crate::environment::{Environment, ResolvedHost};
use crate::model::{Command, Dir, Group, Link, Mode, OnChange, User};
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
    /// Third-party apt sources, set up before the packages (each name once, from the first
    /// role in apply order naming it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apt_sources: Vec<DesiredAptSource>,
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
            if r.tls.is_some() {
                for (path, mode) in [("/etc/ssl/infra", 0o755), ("/etc/ssl/infra/private", 0o700)] {
                    if let (Ok(path), true) = (path.parse(), seen.insert(format!("dir:{path}"))) {
                        state.dirs.push(Dir {
                            path,
                            owner: crate::model::Account::root(),
                            group: crate::model::Account::root(),
                            mode: Some(Mode(mode)),
                        });
                    }
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
            let once_here =
                !has_once || crate::environment::is_once_host(env, role_name, &host.view.name);
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
            apt_sources: Vec::new(),
        }
    }

    /// The host from everything rendering it gave: files, release and apt sources.
    pub fn from_render(
        env: &Environment,
        host: &ResolvedHost,
        out: crate::render::HostRender,
    ) -> DesiredHost {
        let mut names = BTreeSet::new();
        let apt_sources = out
            .apt_sources
            .into_iter()
            .filter(|a| names.insert(a.name.clone()))
            .collect();
        DesiredHost {
            apt_sources,
            ..DesiredHost::new(env, host, out.files).with_release(out.release)
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
