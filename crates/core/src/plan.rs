//! The plan: what would change on each host, computed by pure code from the desired state and
//! the facts. Views print it; the applier runs exactly its steps.

use crate::desired::DesiredHost;
use crate::kinds::{self, Facts, Planner};
use crate::secrets::Secrets;
use crate::state::InitSystem;

pub use crate::kinds::file::unified_diff;
pub use crate::state::{Action, FileState};

pub use crate::kinds::file::files_to_diff;
pub use crate::kinds::service::{ServiceAction, Trigger};
pub use crate::kinds::Step;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the plan's JSON form.
pub const FORMAT_VERSION: &str = "3";

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

/// What a plan was computed from (built by `saved::Inputs::new`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The version of infra that computed it.
    pub infra_version: String,
    /// sha256 over the desired state of every planned host: its view (address, roles, vars as
    /// templates see them), packages, users, dirs, links, services, commands, and each file's
    /// owner, mode, check, notify and content (secret values redacted before hashing).
    pub site_digest: String,
    /// sha256 of the `--var` overrides, in the order given.
    pub vars_digest: String,
    /// `--limit`, as given.
    pub limit: Vec<String>,
}

/// The plan for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub environment: String,
    /// What it was computed from: `apply FILE` refuses a plan whose inputs differ.
    pub inputs: Inputs,
    /// The cloud section (aws inventories): applied before the hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<crate::cloud::CloudPlan>,
    pub hosts: Vec<HostPlan>,
    /// Release roles' once commands this apply runs (some selected host of the role gets a new
    /// release), each on one host, after every host is built and before any switches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub once: Vec<OnceRun>,
}

/// A release role's once commands and the one host they run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnceRun {
    pub role: String,
    pub host: String,
    /// The release they run in (full commit).
    pub commit: String,
    pub commands: Vec<String>,
}

impl Plan {
    pub fn new(environment: &str, mut hosts: Vec<HostPlan>) -> Plan {
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        Plan {
            format_version: FORMAT_VERSION.to_string(),
            environment: environment.to_string(),
            inputs: Inputs::default(),
            cloud: None,
            hosts,
            once: Vec::new(),
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
                    Step::File(_) => s.files += 1,
                    Step::Packages(p) => s.packages += p.names.len(),
                    Step::Service(_) => s.services += 1,
                    _ => s.other += 1,
                }
            }
        }
        s
    }
}

/// Computes the steps that make the host match `desired`: each kind's, in the kinds' order.
/// `current` holds the present content of the files [`files_to_diff`] named (for diffs);
/// secrets are redacted from diffs.
pub fn plan_host(
    desired: &DesiredHost,
    facts: &Facts,
    current: &BTreeMap<String, Vec<u8>>,
    secrets: &Secrets,
) -> HostPlan {
    let mut planner = Planner {
        desired,
        facts,
        current,
        secrets,
        steps: Vec::new(),
        installing: false,
        dirty: Vec::new(),
        pending_restart: BTreeMap::new(),
        command_index: 0,
    };
    kinds::plan(&mut planner);
    HostPlan {
        host: desired.name.clone(),
        init: facts.init,
        facts_fingerprint: facts.fingerprint.clone(),
        steps: planner.steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{RoleState, ServiceSpec};
    use crate::diagnostic::SourceMap;
    use crate::facts::{sha256, PathFact, PathKind, ServiceFact};
    use crate::model::{Mode, OnChange};
    use crate::render::{Origin, RenderedFile};

    fn file(role: &str, dest: &str, content: &str, notify: &[&str]) -> RenderedFile {
        RenderedFile {
            dest: dest.into(),
            digest: sha256(content.as_bytes()),
            sha256: sha256(content.as_bytes()),
            content: content.as_bytes().to_vec(),
            owner: "root".into(),
            group: "root".into(),
            mode: Mode(0o644),
            role: role.into(),
            origin: Origin::Template("t.j2".into()),
            notify: notify.iter().map(|s| s.to_string()).collect(),
            check: None,
            unsafe_parent: false,
            once: false,
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
            release: None,
            apt_sources: Vec::new(),
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
                },
            );
            f.file
                .sha256
                .insert(dest.into(), sha256(content.as_bytes()));
        }
        f.package
            .installed
            .extend(["nginx".to_string(), "supervisor".to_string()]);
        let up = ServiceFact {
            exists: true,
            running: true,
            enabled: true,
        };
        f.service.states.insert("nginx".into(), up);
        f.service.states.insert("supervisor".into(), up);
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
        facts.file.sha256.insert(
            "/etc/nginx/sites-enabled/app.conf".into(),
            sha256(stale.as_bytes()),
        );
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
        let Step::File(kinds::file::Step {
            diff: Some(diff),
            action,
            ..
        }) = &p.steps[0]
        else {
            panic!()
        };
        assert_eq!(*action, Action::Update);
        assert_eq!(
            diff,
            "--- current\n+++ rendered\n@@ -1 +1 @@\n-site-old\n+site\n"
        );
        let Step::Service(kinds::service::Step {
            triggered_by,
            check,
            ..
        }) = &p.steps[1]
        else {
            panic!()
        };
        assert_eq!(
            triggered_by,
            &[Trigger::File("/etc/nginx/sites-enabled/app.conf".into())]
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
        facts
            .service
            .pending
            .push((ServiceAction::Restart, "supervisor".into()));
        let p = plan_host(&desired(), &facts, &BTreeMap::new(), &Secrets::default());
        assert_eq!(addresses(&p), ["service supervisor restart"]);
        let Step::Service(kinds::service::Step { triggered_by, .. }) = &p.steps[0] else {
            panic!()
        };
        assert_eq!(triggered_by, &[Trigger::Pending]);
    }

    #[test]
    fn a_file_with_a_secret_shows_hashes_only() {
        let mut d = desired();
        let secrets =
            Secrets::from_values([("pw".to_string(), "hunter2-secret".to_string())].into());
        let content = b"password=hunter2-secret\n";
        let key = secrets.digest_key();
        d.roles[1].files[1].content = content.to_vec();
        d.roles[1].files[1].secrets = vec!["pw".into()];
        d.roles[1].files[1].digest = key.keyed(&sha256(content));
        d.roles[1].files[1].sha256 = sha256(content);
        let facts = converged();
        let host_hash = facts.file.sha256[&d.roles[1].files[1].dest].clone();
        assert!(
            files_to_diff(&d, &facts).is_empty(),
            "a secret file's current content is not even read"
        );
        let p = plan_host(&d, &facts, &BTreeMap::new(), &secrets);
        let Step::File(kinds::file::Step {
            diff,
            sensitive,
            before,
            after,
            ..
        }) = &p.steps[0]
        else {
            panic!()
        };
        assert!(diff.is_none() && *sensitive);
        // Both sides keyed the same way: HMAC of the plain sha256, the host's and the content's.
        assert_eq!(before.as_ref().unwrap().sha256, Some(key.keyed(&host_hash)));
        assert_eq!(after.sha256, Some(key.keyed(&sha256(content))));
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("hunter2"));
        assert!(
            !json.contains(&sha256(content)) && !json.contains(&host_hash),
            "{json}"
        );
        // The apply script's content check takes the keyed digest.
        assert!(crate::script::apply_script(&p, &d).is_ok());
        d.roles[1].files[1].digest = key.keyed(&sha256(b"other"));
        assert!(crate::script::apply_script(&p, &d).is_err());
    }

    #[test]
    fn diffs_are_redacted_by_value() {
        let mut facts = converged();
        facts
            .file
            .sha256
            .insert("/etc/nginx/nginx.conf".into(), "old".into());
        let current = BTreeMap::from([(
            "/etc/nginx/nginx.conf".to_string(),
            b"token=rotated-old-value\n".to_vec(),
        )]);
        let secrets =
            Secrets::from_values([("tok".to_string(), "rotated-old-value".to_string())].into());
        let p = plan_host(&desired(), &facts, &current, &secrets);
        let Step::File(kinds::file::Step {
            diff: Some(diff), ..
        }) = &p.steps[0]
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
        assert!(json.starts_with("{\"format_version\":\"3\""));
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
    use crate::model::OnChange;

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
            Step::Volume(kinds::volume::Step {
                action: Action::Create,
                device: "/dev/xvdf".into(),
                fs: "ext4".into(),
                mount: "/var/lib/postgresql".into(),
            })
        );
        f.volume
            .mounts
            .insert("/var/lib/postgresql".into(), "/dev/xvdf".into());
        let p = plan_host(&d, &f, &BTreeMap::new(), &Secrets::default());
        assert!(!p.steps.iter().any(|s| matches!(s, Step::Volume(_))));
    }

    #[test]
    fn a_disabled_service_is_disabled_and_stopped() {
        let d = DesiredHost {
            name: "salt".into(),
            release: None,
            apt_sources: Vec::new(),
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
        f.service.states.insert(
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
        f.service.states.insert(
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
            release: None,
            apt_sources: Vec::new(),
            volumes: Vec::new(),
            packages: Vec::new(),
            roles: vec![RoleState {
                role: "r".into(),
                groups: vec![Group {
                    name: "deploy".parse().unwrap(),
                    system: true,
                }],
                users: vec![User {
                    name: "app".parse().unwrap(),
                    system: true,
                    home: None,
                    shell: None,
                    groups: vec!["deploy".parse().unwrap()],
                }],
                ..RoleState::default()
            }],
        };
        let p = plan_host(&d, &Facts::default(), &BTreeMap::new(), &Secrets::default());
        let addrs: Vec<String> = p.steps.iter().map(Step::address).collect();
        assert_eq!(addrs, ["group deploy", "user app"]);
        let mut f = Facts::default();
        f.group.existing.insert("deploy".into());
        f.user.existing.insert("app".into());
        assert!(plan_host(&d, &f, &BTreeMap::new(), &Secrets::default())
            .steps
            .is_empty());
        let facts = crate::facts::parse("group\tdeploy\nuser\tapp\n").unwrap();
        assert!(facts.group.existing.contains("deploy") && facts.user.existing.contains("app"));
    }
}
