//! The plan: what would change on each host, computed by pure code from the desired state and
//! the facts. Views print it; the applier runs exactly its steps.

use crate::desired::{DesiredHost, DIR_MODE};
use crate::facts::{sha256, Facts, InitSystem, PathKind};
use crate::model::{Mode, OnChange};
use crate::secrets::Secrets;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the plan's JSON form.
pub const FORMAT_VERSION: &str = "2";

/// Terraform's action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// What is done to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    Enable,
    Start,
    Reload,
    Restart,
    /// `enable: false`: not started at boot ...
    Disable,
    /// ... and not running.
    Stop,
}

impl ServiceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceAction::Enable => "enable",
            ServiceAction::Start => "start",
            ServiceAction::Reload => "reload",
            ServiceAction::Restart => "restart",
            ServiceAction::Disable => "disable",
            ServiceAction::Stop => "stop",
        }
    }
}

/// Owner, group, mode and content hash of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub owner: String,
    pub group: String,
    pub mode: Mode,
    pub sha256: Option<String>,
}

/// One change on one host, in the order the applier runs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A cloud volume: formatted only when it holds no filesystem, then mounted (and in fstab).
    Volume {
        action: Action,
        device: String,
        fs: String,
        mount: String,
    },
    Packages {
        action: Action,
        names: Vec<String>,
    },
    Group {
        action: Action,
        role: String,
        name: String,
        system: bool,
    },
    User {
        action: Action,
        role: String,
        name: String,
        system: bool,
        home: Option<String>,
        shell: Option<String>,
        groups: Vec<String>,
    },
    Dir {
        action: Action,
        role: String,
        path: String,
        before: Option<FileState>,
        after: FileState,
    },
    File {
        action: Action,
        role: String,
        dest: String,
        before: Option<FileState>,
        after: FileState,
        /// Unified diff, `--- current` / `+++ rendered`; none for a file holding a secret.
        diff: Option<String>,
        /// The file holds a secret: shown as changed hashes only.
        sensitive: bool,
        check: Option<String>,
        notify: Vec<String>,
    },
    Link {
        action: Action,
        role: String,
        path: String,
        target: String,
        before: Option<String>,
    },
    Service {
        action: ServiceAction,
        role: String,
        name: String,
        /// The files whose change asks for it, or `pending` for an action recorded by a run
        /// that did not finish.
        triggered_by: Vec<String>,
        check: Option<String>,
    },
    Command {
        role: String,
        name: String,
        run: String,
    },
}

impl Step {
    /// A short, stable address for views and logs, e.g. `file /etc/hosts`.
    pub fn address(&self) -> String {
        match self {
            Step::Volume { mount, .. } => format!("volume {mount}"),
            Step::Packages { names, .. } => format!("packages {}", names.join(" ")),
            Step::Group { name, .. } => format!("group {name}"),
            Step::User { name, .. } => format!("user {name}"),
            Step::Dir { path, .. } => format!("dir {path}"),
            Step::File { dest, .. } => format!("file {dest}"),
            Step::Link { path, .. } => format!("link {path}"),
            Step::Service { name, action, .. } => format!("service {name} {}", action.as_str()),
            Step::Command { name, .. } => format!("command {name}"),
        }
    }
}

/// Every step for one host, with what it was computed against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    pub init: InitSystem,
    /// The facts' fingerprint: a saved plan is refused for a host whose facts changed since.
    pub facts_fingerprint: String,
    pub steps: Vec<Step>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: usize,
    pub packages: usize,
    pub services: usize,
    pub other: usize,
    pub hosts_changed: usize,
    pub hosts: usize,
}

/// The plan for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub environment: String,
    /// The cloud section (aws inventories): applied before the hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<crate::cloud::CloudPlan>,
    pub hosts: Vec<HostPlan>,
}

impl Plan {
    pub fn new(environment: &str, mut hosts: Vec<HostPlan>) -> Plan {
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        Plan {
            format_version: FORMAT_VERSION.to_string(),
            environment: environment.to_string(),
            cloud: None,
            hosts,
        }
    }

    pub fn has_changes(&self) -> bool {
        self.hosts.iter().any(|h| !h.steps.is_empty())
            || self.cloud.as_ref().is_some_and(|c| !c.changes.is_empty())
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            hosts: self.hosts.len(),
            ..Summary::default()
        };
        for h in &self.hosts {
            if !h.steps.is_empty() {
                s.hosts_changed += 1;
            }
            for step in &h.steps {
                match step {
                    Step::File { .. } => s.files += 1,
                    Step::Packages { names, .. } => s.packages += names.len(),
                    Step::Service { .. } => s.services += 1,
                    _ => s.other += 1,
                }
            }
        }
        s
    }
}

/// Files whose current content the plan wants for a diff: changed and holding no secret.
pub fn files_to_diff(desired: &DesiredHost, facts: &Facts) -> Vec<String> {
    desired
        .files()
        .filter(|f| f.secrets.is_empty())
        .filter(|f| {
            facts.paths.get(&f.dest).is_some_and(|p| {
                p.kind == PathKind::File && p.sha256.as_deref() != Some(sha256(&f.content).as_str())
            })
        })
        .map(|f| f.dest.clone())
        .collect()
}

/// Computes the steps that make the host match `desired`. `current` holds the present
/// content of the files [`files_to_diff`] named (for diffs); secrets are redacted from diffs.
pub fn plan_host(
    desired: &DesiredHost,
    facts: &Facts,
    current: &BTreeMap<String, Vec<u8>>,
    secrets: &Secrets,
) -> HostPlan {
    let mut steps = Vec::new();
    for v in &desired.volumes {
        if !facts.mounts.contains_key(&v.mount) {
            steps.push(Step::Volume {
                action: Action::Create,
                device: v.device.clone(),
                fs: v.fs.clone(),
                mount: v.mount.clone(),
            });
        }
    }
    let missing: Vec<String> = desired
        .packages
        .iter()
        .filter(|p| !facts.installed.contains(*p))
        .cloned()
        .collect();
    let installing = !missing.is_empty();
    if installing {
        steps.push(Step::Packages {
            action: Action::Create,
            names: missing,
        });
    }
    // Service -> files that changed and notify it, in order; `pending` from an unfinished run.
    let mut dirty: Vec<(String, Vec<String>)> = Vec::new();
    let mark = |dirty: &mut Vec<(String, Vec<String>)>, svc: &str, why: &str| match dirty
        .iter_mut()
        .find(|(s, _)| s == svc)
    {
        Some((_, v)) => v.push(why.to_string()),
        None => dirty.push((svc.to_string(), vec![why.to_string()])),
    };
    let mut pending_restart: BTreeMap<String, bool> = BTreeMap::new();
    for (action, svc) in &facts.pending {
        mark(&mut dirty, svc, "pending");
        let restart = pending_restart.entry(svc.clone()).or_default();
        *restart |= action == "restart";
    }
    let specs: BTreeMap<&str, (&str, &crate::desired::ServiceSpec)> = desired
        .roles
        .iter()
        .flat_map(|r| {
            r.services
                .iter()
                .map(move |s| (s.name.as_str(), (r.role.as_str(), s)))
        })
        .collect();
    let mut command_index = 0;
    for role in &desired.roles {
        for g in &role.groups {
            if !facts.groups.contains(&g.name) {
                steps.push(Step::Group {
                    action: Action::Create,
                    role: role.role.clone(),
                    name: g.name.clone(),
                    system: g.system,
                });
            }
        }
        for u in &role.users {
            if !facts.users.contains(&u.name) {
                steps.push(Step::User {
                    action: Action::Create,
                    role: role.role.clone(),
                    name: u.name.clone(),
                    system: u.system,
                    home: u.home.clone(),
                    shell: u.shell.clone(),
                    groups: u.groups.clone(),
                });
            }
        }
        for d in &role.dirs {
            let after = FileState {
                owner: d.owner.clone(),
                group: d.group.clone(),
                mode: d.mode.unwrap_or(DIR_MODE),
                sha256: None,
            };
            let before = facts.paths.get(&d.path).map(|p| FileState {
                owner: p.owner.clone(),
                group: p.group.clone(),
                mode: Mode(p.mode),
                sha256: None,
            });
            let action = match (&before, facts.paths.get(&d.path)) {
                (None, _) => Some(Action::Create),
                (Some(_), Some(p)) if p.kind != PathKind::Dir => Some(Action::Update),
                (Some(b), _) if *b != after => Some(Action::Update),
                _ => None,
            };
            if let Some(action) = action {
                steps.push(Step::Dir {
                    action,
                    role: role.role.clone(),
                    path: d.path.clone(),
                    before,
                    after,
                });
            }
        }
        for f in &role.files {
            let hash = sha256(&f.content);
            let after = FileState {
                owner: f.owner.clone(),
                group: f.group.clone(),
                mode: f.mode,
                sha256: Some(hash.clone()),
            };
            let fact = facts.paths.get(&f.dest);
            let before = fact.map(|p| FileState {
                owner: p.owner.clone(),
                group: p.group.clone(),
                mode: Mode(p.mode),
                sha256: p.sha256.clone(),
            });
            let content_changed = before
                .as_ref()
                .is_none_or(|b| b.sha256.as_deref() != Some(&hash))
                || fact.is_some_and(|p| p.kind != PathKind::File);
            let meta_changed = before.as_ref().is_some_and(|b| {
                b.owner != after.owner || b.group != after.group || b.mode != after.mode
            });
            if !content_changed && !meta_changed {
                continue;
            }
            let sensitive = !f.secrets.is_empty();
            let diff = if sensitive || !content_changed {
                None
            } else {
                let old = current
                    .get(&f.dest)
                    .map(|c| String::from_utf8_lossy(c).into_owned());
                let new = String::from_utf8_lossy(&f.content);
                Some(secrets.redact(&unified_diff(old.as_deref().unwrap_or(""), &new)))
            };
            if content_changed {
                for n in &f.notify {
                    mark(&mut dirty, n, &f.dest);
                }
            }
            steps.push(Step::File {
                action: create_or_update(&before),
                role: role.role.clone(),
                dest: f.dest.clone(),
                before,
                after,
                diff,
                sensitive,
                check: f.check.clone(),
                notify: f.notify.clone(),
            });
        }
        for l in &role.links {
            let before = facts.links.get(&l.path).cloned();
            if before.as_deref() != Some(l.target.as_str()) {
                steps.push(Step::Link {
                    action: create_or_update(&before),
                    role: role.role.clone(),
                    path: l.path.clone(),
                    target: l.target.clone(),
                    before,
                });
            }
        }
        // This role's services: enabled, running, and reloaded for the changes so far.
        for spec in &role.services {
            let fact = facts.services.get(&spec.name).copied().unwrap_or_default();
            let svc_step = |action, triggered_by| Step::Service {
                action,
                role: role.role.clone(),
                name: spec.name.clone(),
                triggered_by,
                check: spec.check.clone(),
            };
            let why = take(&mut dirty, &spec.name);
            if !spec.enable {
                // Disabled services are stopped; what changed in their files waits for them.
                // A service its package brings in this run may come enabled at boot.
                if fact.enabled || (!fact.exists && installing) {
                    steps.push(svc_step(ServiceAction::Disable, Vec::new()));
                }
                if fact.running {
                    steps.push(svc_step(ServiceAction::Stop, Vec::new()));
                }
                continue;
            }
            if !fact.enabled {
                steps.push(svc_step(ServiceAction::Enable, Vec::new()));
            }
            if !fact.running {
                steps.push(svc_step(ServiceAction::Start, why));
            } else if !why.is_empty() {
                let action = change_action(spec, &pending_restart);
                steps.push(svc_step(action, why));
            }
        }
        for c in &role.commands {
            if !facts.commands_done.contains(&command_index) {
                steps.push(Step::Command {
                    role: role.role.clone(),
                    name: c.name.clone(),
                    run: c.run.clone(),
                });
            }
            command_index += 1;
        }
    }
    // Services notified by files of roles applied after the service's own role.
    for (svc, why) in dirty {
        if let Some((role, spec)) = specs.get(svc.as_str()).filter(|(_, spec)| spec.enable) {
            steps.push(Step::Service {
                action: change_action(spec, &pending_restart),
                role: role.to_string(),
                name: svc.clone(),
                triggered_by: why,
                check: spec.check.clone(),
            });
        }
    }
    HostPlan {
        host: desired.name.clone(),
        init: facts.init,
        facts_fingerprint: facts.fingerprint.clone(),
        steps,
    }
}

/// Reload or restart for a change: the service's `on_change`, or restart when an unfinished
/// run recorded one.
fn change_action(
    spec: &crate::desired::ServiceSpec,
    pending_restart: &BTreeMap<String, bool>,
) -> ServiceAction {
    if spec.on_change == OnChange::Restart
        || pending_restart.get(&spec.name).copied().unwrap_or(false)
    {
        ServiceAction::Restart
    } else {
        ServiceAction::Reload
    }
}

/// Create when nothing was there, update otherwise.
fn create_or_update<T>(before: &Option<T>) -> Action {
    if before.is_none() {
        Action::Create
    } else {
        Action::Update
    }
}

fn take(dirty: &mut Vec<(String, Vec<String>)>, svc: &str) -> Vec<String> {
    match dirty.iter().position(|(s, _)| s == svc) {
        Some(i) => dirty.remove(i).1,
        None => Vec::new(),
    }
}

/// `--- current` / `+++ rendered` unified diff with 3 lines of context.
pub fn unified_diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("current", "rendered")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{RoleState, ServiceSpec};
    use crate::diagnostic::SourceMap;
    use crate::facts::{PathFact, ServiceFact};
    use crate::render::{Origin, RenderedFile};

    fn file(role: &str, dest: &str, content: &str, notify: &[&str]) -> RenderedFile {
        RenderedFile {
            dest: dest.into(),
            content: content.as_bytes().to_vec(),
            owner: "root".into(),
            group: "root".into(),
            mode: Mode(0o644),
            role: role.into(),
            origin: Origin::Template("t.j2".into()),
            notify: notify.iter().map(|s| s.to_string()).collect(),
            check: None,
            secrets: Vec::new(),
            missing_secrets: Vec::new(),
            entry: SourceMap::default().location(std::path::Path::new("roles/x.yaml"), 1, 1, 1),
        }
    }

    fn svc(name: &str, on_change: OnChange) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            enable: true,
            on_change,
            check: Some(format!("{name} -t")),
        }
    }

    /// nginx role (nginx.conf, service nginx reload) then app role (site file notifying nginx,
    /// supervisor program notifying supervisor, service supervisor restart).
    pub(super) fn desired() -> DesiredHost {
        DesiredHost {
            name: "app1".into(),
            volumes: Vec::new(),
            packages: vec!["nginx".into(), "supervisor".into()],
            roles: vec![
                RoleState {
                    role: "nginx".into(),
                    files: vec![file("nginx", "/etc/nginx/nginx.conf", "main\n", &["nginx"])],
                    services: vec![svc("nginx", OnChange::Reload)],
                    ..RoleState::default()
                },
                RoleState {
                    role: "app".into(),
                    files: vec![
                        file(
                            "app",
                            "/etc/nginx/sites-enabled/app.conf",
                            "site\n",
                            &["nginx"],
                        ),
                        file(
                            "app",
                            "/etc/supervisor/conf.d/app.conf",
                            "prog\n",
                            &["supervisor"],
                        ),
                    ],
                    services: vec![svc("supervisor", OnChange::Restart)],
                    ..RoleState::default()
                },
            ],
        }
    }

    /// Facts of a host that already matches `desired()`.
    fn converged() -> Facts {
        let mut f = Facts::default();
        for (dest, content) in [
            ("/etc/nginx/nginx.conf", "main\n"),
            ("/etc/nginx/sites-enabled/app.conf", "site\n"),
            ("/etc/supervisor/conf.d/app.conf", "prog\n"),
        ] {
            f.paths.insert(
                dest.into(),
                PathFact {
                    mode: 0o644,
                    owner: "root".into(),
                    group: "root".into(),
                    kind: PathKind::File,
                    sha256: Some(sha256(content.as_bytes())),
                },
            );
        }
        f.installed
            .extend(["nginx".to_string(), "supervisor".to_string()]);
        let up = ServiceFact {
            exists: true,
            running: true,
            enabled: true,
        };
        f.services.insert("nginx".into(), up);
        f.services.insert("supervisor".into(), up);
        f
    }

    fn addresses(p: &HostPlan) -> Vec<String> {
        p.steps.iter().map(Step::address).collect()
    }

    #[test]
    fn a_converged_host_has_no_steps() {
        let p = plan_host(
            &desired(),
            &converged(),
            &BTreeMap::new(),
            &Secrets::default(),
        );
        assert!(p.steps.is_empty(), "{:?}", addresses(&p));
    }

    #[test]
    fn a_fresh_host_gets_everything_in_role_order() {
        let p = plan_host(
            &desired(),
            &Facts::default(),
            &BTreeMap::new(),
            &Secrets::default(),
        );
        assert_eq!(
            addresses(&p),
            [
                "packages nginx supervisor",
                "file /etc/nginx/nginx.conf",
                "service nginx enable",
                "service nginx start",
                "file /etc/nginx/sites-enabled/app.conf",
                "file /etc/supervisor/conf.d/app.conf",
                "service supervisor enable",
                "service supervisor start",
                // The app's site file changed after nginx started: reloaded at the end.
                "service nginx reload",
            ]
        );
    }

    #[test]
    fn one_changed_file_means_one_diff_and_one_reload() {
        let mut facts = converged();
        let stale = "site-old\n";
        facts
            .paths
            .get_mut("/etc/nginx/sites-enabled/app.conf")
            .unwrap()
            .sha256 = Some(sha256(stale.as_bytes()));
        let d = desired();
        assert_eq!(
            files_to_diff(&d, &facts),
            vec!["/etc/nginx/sites-enabled/app.conf".to_string()]
        );
        let current = BTreeMap::from([(
            "/etc/nginx/sites-enabled/app.conf".to_string(),
            stale.as_bytes().to_vec(),
        )]);
        let p = plan_host(&d, &facts, &current, &Secrets::default());
        assert_eq!(
            addresses(&p),
            [
                "file /etc/nginx/sites-enabled/app.conf",
                "service nginx reload"
            ]
        );
        let Step::File {
            diff: Some(diff),
            action,
            ..
        } = &p.steps[0]
        else {
            panic!()
        };
        assert_eq!(*action, Action::Update);
        assert_eq!(
            diff,
            "--- current\n+++ rendered\n@@ -1 +1 @@\n-site-old\n+site\n"
        );
        let Step::Service {
            triggered_by,
            check,
            ..
        } = &p.steps[1]
        else {
            panic!()
        };
        assert_eq!(
            triggered_by,
            &["/etc/nginx/sites-enabled/app.conf".to_string()]
        );
        assert_eq!(check.as_deref(), Some("nginx -t"));
    }

    #[test]
    fn mode_only_change_updates_without_restart() {
        let mut facts = converged();
        facts
            .paths
            .get_mut("/etc/supervisor/conf.d/app.conf")
            .unwrap()
            .mode = 0o600;
        let p = plan_host(&desired(), &facts, &BTreeMap::new(), &Secrets::default());
        assert_eq!(addresses(&p), ["file /etc/supervisor/conf.d/app.conf"]);
    }

    #[test]
    fn a_pending_action_from_a_killed_run_is_planned() {
        let mut facts = converged();
        facts.pending.push(("restart".into(), "supervisor".into()));
        let p = plan_host(&desired(), &facts, &BTreeMap::new(), &Secrets::default());
        assert_eq!(addresses(&p), ["service supervisor restart"]);
        let Step::Service { triggered_by, .. } = &p.steps[0] else {
            panic!()
        };
        assert_eq!(triggered_by, &["pending".to_string()]);
    }

    #[test]
    fn a_file_with_a_secret_shows_hashes_only() {
        let mut d = desired();
        d.roles[1].files[1].content = b"password=hunter2-secret\n".to_vec();
        d.roles[1].files[1].secrets = vec!["pw".into()];
        let facts = converged();
        assert!(
            files_to_diff(&d, &facts).is_empty(),
            "a secret file's current content is not even read"
        );
        let p = plan_host(&d, &facts, &BTreeMap::new(), &Secrets::default());
        let Step::File {
            diff,
            sensitive,
            before,
            after,
            ..
        } = &p.steps[0]
        else {
            panic!()
        };
        assert!(diff.is_none() && *sensitive);
        assert_ne!(before.as_ref().unwrap().sha256, after.sha256);
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("hunter2"));
    }

    #[test]
    fn diffs_are_redacted_by_value() {
        let mut facts = converged();
        facts.paths.get_mut("/etc/nginx/nginx.conf").unwrap().sha256 = Some("old".into());
        let current = BTreeMap::from([(
            "/etc/nginx/nginx.conf".to_string(),
            b"token=rotated-old-value\n".to_vec(),
        )]);
        let secrets =
            Secrets::from_values([("tok".to_string(), "rotated-old-value".to_string())].into());
        let p = plan_host(&desired(), &facts, &current, &secrets);
        let Step::File {
            diff: Some(diff), ..
        } = &p.steps[0]
        else {
            panic!()
        };
        assert!(diff.contains("-token=<secret: tok>"), "{diff}");
    }

    #[test]
    fn plans_round_trip_through_json() {
        let p = Plan::new(
            "prod",
            vec![plan_host(
                &desired(),
                &Facts::default(),
                &BTreeMap::new(),
                &Secrets::default(),
            )],
        );
        let mut p = p;
        p.cloud = Some(crate::cloud::CloudPlan {
            provider: "aws".into(),
            region: "us-east-1".into(),
            changes: vec![crate::cloud::CloudChange {
                address: "aws_eip.mail".into(),
                action: crate::cloud::CloudAction::Create,
                attrs: Vec::new(),
                ops: vec![crate::cloud::Op {
                    phase: 53,
                    resource: "aws_eip.mail".into(),
                    op: crate::cloud::CloudOp::AssociateAddress {
                        address: crate::cloud::Ref::New("aws_eip.mail".into()),
                        instance: crate::cloud::Ref::Id("i-1".into()),
                    },
                }],
            }],
            ..Default::default()
        });
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.starts_with("{\"format_version\":\"2\""));
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert_eq!(
            p.summary(),
            Summary {
                files: 3,
                packages: 2,
                services: 5,
                other: 0,
                hosts_changed: 1,
                hosts: 1
            }
        );
    }
}

#[cfg(test)]
mod disabled_tests {
    use super::*;
    use crate::desired::{RoleState, ServiceSpec};
    use crate::facts::ServiceFact;

    #[test]
    fn a_volume_is_mounted_first_and_only_until_it_is() {
        let mut d = super::tests::desired();
        d.volumes = vec![crate::model::Volume {
            size_gb: 10,
            mount: "/var/lib/postgresql".into(),
            device: "/dev/xvdf".into(),
            fs: "ext4".into(),
            keep_on_destroy: true,
        }];
        let mut f = Facts::fresh();
        let p = plan_host(&d, &f, &BTreeMap::new(), &Secrets::default());
        assert_eq!(
            p.steps[0],
            Step::Volume {
                action: Action::Create,
                device: "/dev/xvdf".into(),
                fs: "ext4".into(),
                mount: "/var/lib/postgresql".into(),
            }
        );
        f.mounts
            .insert("/var/lib/postgresql".into(), "/dev/xvdf".into());
        let p = plan_host(&d, &f, &BTreeMap::new(), &Secrets::default());
        assert!(!p.steps.iter().any(|s| matches!(s, Step::Volume { .. })));
    }

    #[test]
    fn a_disabled_service_is_disabled_and_stopped() {
        let d = DesiredHost {
            name: "salt".into(),
            volumes: Vec::new(),
            packages: Vec::new(),
            roles: vec![RoleState {
                role: "salt".into(),
                services: vec![ServiceSpec {
                    name: "rsync".into(),
                    enable: false,
                    on_change: OnChange::Restart,
                    check: None,
                }],
                ..RoleState::default()
            }],
        };
        let mut f = Facts::default();
        f.services.insert(
            "rsync".into(),
            ServiceFact {
                exists: true,
                running: true,
                enabled: true,
            },
        );
        let p = plan_host(&d, &f, &BTreeMap::new(), &Secrets::default());
        let addrs: Vec<String> = p.steps.iter().map(Step::address).collect();
        assert_eq!(addrs, ["service rsync disable", "service rsync stop"]);
        f.services.insert(
            "rsync".into(),
            ServiceFact {
                exists: true,
                running: false,
                enabled: false,
            },
        );
        assert!(plan_host(&d, &f, &BTreeMap::new(), &Secrets::default())
            .steps
            .is_empty());
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use crate::desired::RoleState;
    use crate::model::{Group, User};

    #[test]
    fn groups_come_before_the_users_that_join_them() {
        let d = DesiredHost {
            name: "h".into(),
            volumes: Vec::new(),
            packages: Vec::new(),
            roles: vec![RoleState {
                role: "r".into(),
                groups: vec![Group {
                    name: "deploy".into(),
                    system: true,
                }],
                users: vec![User {
                    name: "app".into(),
                    system: true,
                    home: None,
                    shell: None,
                    groups: vec!["deploy".into()],
                }],
                ..RoleState::default()
            }],
        };
        let p = plan_host(&d, &Facts::default(), &BTreeMap::new(), &Secrets::default());
        let addrs: Vec<String> = p.steps.iter().map(Step::address).collect();
        assert_eq!(addrs, ["group deploy", "user app"]);
        let mut f = Facts::default();
        f.groups.insert("deploy".into());
        f.users.insert("app".into());
        assert!(plan_host(&d, &f, &BTreeMap::new(), &Secrets::default())
            .steps
            .is_empty());
        let facts = crate::facts::parse("group\tdeploy\nuser\tapp\n").unwrap();
        assert!(facts.groups.contains("deploy") && facts.users.contains("app"));
    }
}
