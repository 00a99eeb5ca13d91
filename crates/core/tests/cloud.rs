//! The cloud plan as pure code: the repository's production inventory against hand-made facts.

use infra_core::cloud::*;
use infra_core::environment::Environment;
use infra_core::site::Site;
use infra_protocol::*;
use std::path::PathBuf;

fn site() -> Site {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (site, diags) = Site::load(&root).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    site
}

fn change<'p>(p: &'p CloudPlan, address: &str) -> &'p CloudChange {
    p.changes
        .iter()
        .find(|c| c.address == address)
        .unwrap_or_else(|| panic!("no change {address}"))
}

fn instance(host: &str, id: &str, ami: &str, ip: &str, ty: &str) -> InstanceFact {
    InstanceFact {
        id: id.into(),
        host: host.into(),
        state: "running".into(),
        ami: ami.into(),
        instance_type: ty.into(),
        private_ip: Some(ip.into()),
        public_ip: None,
        security_groups: vec![],
        roles: String::new(),
        launch_time: "2026-11-23T00:00:00Z".into(),
    }
}

fn a_record(name: &str, ip: &str) -> RecordFact {
    RecordFact {
        name: name.into(),
        value: ip.into(),
        record_type: RecordType::A,
        ttl: 300,
        alias: None,
    }
}

#[test]
fn from_nothing_everything_is_created_in_dependency_order() {
    let site = site();
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let p = plan(&env, &CloudFacts::default(), Mode::Converge).unwrap();
    assert_eq!(p.new_hosts.len(), 19);
    assert!(p.changes.iter().all(|c| c.action == CloudAction::Create));
    let ops = p.ops();
    let first = |pred: &dyn Fn(&CloudOp) -> bool| ops.iter().position(|o| pred(&o.op)).unwrap();
    let vpc = first(&|o| matches!(o, CloudOp::CreateVpc { .. }));
    let subnet = first(&|o| matches!(o, CloudOp::CreateSubnet { .. }));
    let group = first(&|o| matches!(o, CloudOp::CreateSecurityGroup { .. }));
    let rule = first(&|o| matches!(o, CloudOp::AuthorizeIngress { .. }));
    let run = first(&|o| matches!(o, CloudOp::RunInstance { .. }));
    let attach = first(&|o| matches!(o, CloudOp::AttachVolume { .. }));
    let zone = first(&|o| matches!(o, CloudOp::CreateZone { .. }));
    let records = first(&|o| matches!(o, CloudOp::ChangeRecords { .. }));
    let ptr = first(&|o| matches!(o, CloudOp::SetReverseDns { .. }));
    assert!(vpc < subnet && subnet < group && group < rule && rule < run);
    assert!(run < attach && attach < zone && zone < records);
    // AWS accepts a PTR only once the name's A record points at the address.
    assert!(records < ptr);
    // The launch token is the same for the same launch, and differs per host.
    let tokens = |p: &CloudPlan| -> Vec<String> {
        p.ops()
            .into_iter()
            .filter_map(|o| match o.op {
                CloudOp::RunInstance { client_token, .. } => Some(client_token),
                _ => None,
            })
            .collect()
    };
    let again = plan(&env, &CloudFacts::default(), Mode::Converge).unwrap();
    assert_eq!(tokens(&p), tokens(&again));
    let mut unique = tokens(&p);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 19);
}

#[test]
fn another_ami_replaces_and_reattaches() {
    let site = site();
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let facts = CloudFacts {
        instances: vec![instance("db1", "i-1", "ami-old", "10.10.1.20", "m5.large")],
        volumes: vec![VolumeFact {
            id: "vol-1".into(),
            host: "db1".into(),
            role: "db".into(),
            size_gb: 100,
            attached_to: Some("i-1".into()),
            device: Some("/dev/xvdf".into()),
            keep: true,
        }],
        ..CloudFacts::default()
    };
    let p = plan(&env, &facts, Mode::Converge).unwrap();
    let c = change(&p, "aws_instance.db1");
    assert_eq!(c.action, CloudAction::Replace);
    assert_eq!(c.action.symbol(), "-/+");
    let ami = c.attrs.iter().find(|a| a.name == "ami").unwrap();
    assert!(ami.forces_replacement);
    assert_eq!(ami.before.as_deref(), Some("\"ami-old\""));
    assert!(matches!(c.ops[0].op, CloudOp::TerminateInstance { ref id } if id == "i-1"));
    match &c.ops[1].op {
        CloudOp::RunInstance { client_token, .. } => {
            assert_ne!(client_token, &client_token_of_first_launch(&env))
        }
        other => panic!("{other:?}"),
    }
    assert!(p.new_hosts.contains(&"db1".to_string()));
    // The kept volume goes to the new instance; terminating the old one freed it.
    let v = change(&p, "aws_ebs_volume.db1-db");
    assert_eq!(v.action, CloudAction::Update);
    assert_eq!(
        v.ops.iter().map(|o| &o.op).collect::<Vec<_>>(),
        vec![&CloudOp::AttachVolume {
            volume: Ref::Id("vol-1".into()),
            instance: Ref::New("aws_instance.db1".into()),
            device: "/dev/xvdf".into(),
        }]
    );
}

fn client_token_of_first_launch(env: &Environment) -> String {
    client_token(&env.name, "db1", "ami-0123456789abcdef0", 0)
}

#[test]
fn instance_type_is_an_update_and_a_stray_instance_a_destroy() {
    let site = site();
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let facts = CloudFacts {
        instances: vec![
            instance(
                "app1",
                "i-1",
                "ami-0123456789abcdef0",
                "10.10.1.50",
                "t3.small",
            ),
            instance(
                "old9",
                "i-9",
                "ami-0123456789abcdef0",
                "10.10.1.99",
                "t3.small",
            ),
        ],
        ..CloudFacts::default()
    };
    let p = plan(&env, &facts, Mode::Converge).unwrap();
    let c = change(&p, "aws_instance.app1");
    assert_eq!(c.action, CloudAction::Update);
    assert!(c.ops.iter().any(|o| o.op
        == CloudOp::ChangeInstanceType {
            id: "i-1".into(),
            instance_type: "t3.medium".into()
        }));
    assert!(!p.new_hosts.contains(&"app1".to_string()));
    let gone = change(&p, "aws_instance.old9");
    assert_eq!(gone.action, CloudAction::Delete);
    let s = p.summary();
    assert_eq!((s.change, s.destroy), (1, 1));
}

#[test]
fn destroy_goes_in_reverse_and_keeps_what_roles_keep() {
    let site = site();
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let facts = CloudFacts {
        vpc: Some(VpcFact {
            id: "vpc-1".into(),
            cidr: "10.10.0.0/16".into(),
            owned: true,
            internet_gateway: Some("igw-1".into()),
        }),
        subnet: Some(SubnetFact {
            id: "subnet-1".into(),
            cidr: "10.10.1.0/24".into(),
            availability_zone: "us-east-1a".into(),
            owned: true,
        }),
        security_groups: vec![GroupFact {
            id: "sg-1".into(),
            name: "production-base".into(),
            role: "base".into(),
            rules: vec![],
        }],
        instances: vec![instance(
            "salt",
            "i-1",
            "ami-0123456789abcdef0",
            "10.10.1.10",
            "t3.small",
        )],
        volumes: vec![VolumeFact {
            id: "vol-1".into(),
            host: "salt".into(),
            role: "salt".into(),
            size_gb: 100,
            attached_to: Some("i-1".into()),
            device: Some("/dev/xvdf".into()),
            keep: true,
        }],
        addresses: vec![AddressFact {
            allocation_id: "eipalloc-1".into(),
            public_ip: "198.51.100.7".into(),
            host: "salt".into(),
            instance: Some("i-1".into()),
            association_id: Some("eipassoc-1".into()),
            reverse_dns: None,
        }],
        zones: vec![ZoneFact {
            id: "Z1".into(),
            name: "webplatform.org".into(),
            private: false,
            owned: false,
            records: vec![
                a_record("salt.webplatform.org", "198.51.100.7"),
                // Not ours: it points at no address of the environment.
                a_record("www.webplatform.org", "203.0.113.1"),
            ],
        }],
        bucket: None,
        ..CloudFacts::default()
    };
    let p = plan(&env, &facts, Mode::Destroy).unwrap();
    let order: Vec<&str> = p
        .ops()
        .iter()
        .map(|o| match &o.op {
            CloudOp::ChangeRecords { .. } => "records",
            CloudOp::ReleaseAddress { .. } => "address",
            CloudOp::TerminateInstance { .. } => "instance",
            CloudOp::DeleteSecurityGroup { .. } => "group",
            CloudOp::DeleteSubnet { .. } => "subnet",
            CloudOp::DeleteVpc { .. } => "vpc",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        ["records", "address", "instance", "group", "subnet", "vpc"]
    );
    let records = p
        .ops()
        .into_iter()
        .find_map(|o| match o.op {
            CloudOp::ChangeRecords { changes, .. } => Some(changes),
            _ => None,
        })
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "salt.webplatform.org");
    assert_eq!(p.kept.len(), 1);
    assert!(p.kept[0].starts_with("aws_ebs_volume.salt-salt (vol-1, 100 GB)"));
    // The public zone was not created by infra: it stays.
    assert!(!p
        .changes
        .iter()
        .any(|c| c.address == "aws_route53_zone.public"));
}

#[test]
fn a_named_vpc_that_does_not_exist_is_an_error_naming_the_inventory() {
    let root = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for sub in ["roles", "templates"] {
        copy(&repo.join(sub), &root.path().join(sub));
    }
    std::fs::create_dir_all(root.path().join("inventories")).unwrap();
    let inv = std::fs::read_to_string(repo.join("inventories/production.yaml"))
        .unwrap()
        .replace("vpc_cidr: 10.10.0.0/16", "vpc_id: vpc-0abc");
    std::fs::write(root.path().join("inventories/production.yaml"), inv).unwrap();
    let (site, diags) = Site::load(root.path()).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let e = plan(&env, &CloudFacts::default(), Mode::Converge).unwrap_err();
    let at = e.location.as_ref().expect("a location");
    assert!(at.file.ends_with("inventories/production.yaml"), "{at:?}");
    assert_eq!(at.line, 5, "the first line of the provider block");
    assert!(
        e.message
            .contains("provider.vpc_id vpc-0abc was not found: check the id and the region"),
        "{}",
        e.message
    );
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn found_rules_of_roles_are_kept_and_foreign_sources_revoked() {
    let site = site();
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let fresh = plan(&env, &CloudFacts::default(), Mode::Converge).unwrap();
    // Every group as the provider would find it after that plan was applied.
    let id = |address: &str| format!("sg-{}", address.trim_start_matches("aws_security_group."));
    let mut groups: Vec<GroupFact> = Vec::new();
    for op in fresh.ops() {
        match op.op {
            CloudOp::CreateSecurityGroup { name, role, .. } => groups.push(GroupFact {
                id: id(&op.resource),
                name,
                role,
                rules: vec![],
            }),
            CloudOp::AuthorizeIngress { port, source, .. } => {
                let source = match source {
                    Source::World => SourceFact::Cidr("0.0.0.0/0".into()),
                    Source::Group(Ref::New(address)) => SourceFact::Group(id(&address)),
                    other => panic!("{other:?}"),
                };
                let g = groups
                    .iter_mut()
                    .find(|g| g.id == id(&op.resource))
                    .unwrap();
                g.rules.push(RuleFact { port, source });
            }
            _ => {}
        }
    }
    let from_roles = groups
        .iter()
        .position(|g| {
            g.rules
                .iter()
                .any(|r| matches!(r.source, SourceFact::Group(_)))
        })
        .expect("a rule from another role's group");
    let facts = CloudFacts {
        security_groups: groups.clone(),
        ..Default::default()
    };
    let p = plan(&env, &facts, Mode::Converge).unwrap();
    assert!(
        !p.changes
            .iter()
            .any(|c| c.address.starts_with("aws_security_group.")),
        "{:?}",
        p.changes
    );
    // Rules nobody wants: from a CIDR, from a group that is no role's.
    let g = &mut groups[from_roles];
    let port = g.rules[0].port;
    g.rules.push(RuleFact {
        port,
        source: SourceFact::Cidr("192.0.2.0/24".into()),
    });
    g.rules.push(RuleFact {
        port,
        source: SourceFact::Group("sg-elsewhere".into()),
    });
    let address = format!("aws_security_group.{}", g.role);
    let facts = CloudFacts {
        security_groups: groups.clone(),
        ..Default::default()
    };
    let p = plan(&env, &facts, Mode::Converge).unwrap();
    let c = change(&p, &address);
    assert_eq!(c.action, CloudAction::Update);
    let lines: Vec<(&str, Option<&str>)> = c
        .attrs
        .iter()
        .map(|a| (a.name.as_str(), a.before.as_deref()))
        .collect();
    let ingress = format!("ingress {port}");
    assert_eq!(
        lines,
        [
            (ingress.as_str(), Some("from 192.0.2.0/24")),
            (ingress.as_str(), Some("from sg-elsewhere")),
        ]
    );
    let revoked: Vec<&SourceFact> = c
        .ops
        .iter()
        .map(|o| match &o.op {
            CloudOp::RevokeIngress { source, .. } => source,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        revoked,
        [
            &SourceFact::Cidr("192.0.2.0/24".into()),
            &SourceFact::Group("sg-elsewhere".into()),
        ]
    );
}

/// A role that no host holds names a held role in its `exposes`: the held role gets no group
/// (nothing held opens it to anyone), and its instances ask for none, rather than planning
/// an instance in a group that is never created (which panicked).
#[test]
fn exposes_of_a_role_no_host_holds_give_no_group() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for sub in ["roles", "inventories", "templates"] {
        let status = std::process::Command::new("cp")
            .args(["-r"])
            .arg(repo.join(sub))
            .arg(tmp.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::write(
        tmp.path().join("roles/ghost.yaml"),
        "name: ghost\nexposes:\n  - {port: \"9/tcp\", to: [bots]}\n",
    )
    .unwrap();
    let (site, diags) = Site::load(tmp.path()).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let p = plan(&env, &CloudFacts::default(), Mode::Converge).unwrap();
    assert!(
        !p.changes
            .iter()
            .any(|c| c.address.contains("production-bots")),
        "{:?}",
        p.changes.iter().map(|c| &c.address).collect::<Vec<_>>()
    );
}
