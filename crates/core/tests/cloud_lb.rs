//! Application load balancers as pure planning: a role's `load_balancer:` from nothing (the
//! second subnet, the load balancer's group open to the world on its listeners, the role's port
//! from that group only, the ALB, target group, listeners, registrations, the alias record), a
//! converged environment planning nothing, health check and certificate changed in place, a
//! host leaving the role deregistered, the field removed and destroy removing everything, and
//! the site mistakes at their file and line.

use infra_core::cloud::lb::aws_name;
use infra_core::cloud::records::owner_value;
use infra_core::cloud::*;
use infra_core::environment::Environment;
use infra_core::render::Renderer;
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_protocol::*;
use std::collections::BTreeMap;
use std::path::Path;

const CERT: &str = "arn:aws:acm:us-east-1:123456789012:certificate/one";
const DNS: &str = "test-api-1.us-east-1.elb.amazonaws.com";

const API: &str = "name: api
hostname: \"api.{{ env.domain }}\"
ports: [22]
load_balancer:
  port: 8000
  listeners: [80, 443]
  certificate: \"{{ vars.certificate_arn }}\"
  health: {path: /health, interval: 15, healthy: 2, unhealthy: 2}
";

const INVENTORY: &str = "environment: test
domain: example.org
internal_domain: test.internal
vars:
  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/one
provider:
  type: aws
  region: us-east-1
  ami: ami-0123456789abcdef0
  instance_type: t3.small
  vpc_cidr: 10.40.0.0/16
  subnet_cidr: 10.40.1.0/24
  availability_zone: us-east-1a
  lb_subnet_cidr: 10.40.2.0/24
  lb_availability_zone: us-east-1b
ssh:
  user: admin
hosts:
  api1: {roles: [api], private_ip: 10.40.1.10}
  api2: {roles: [api, web], private_ip: 10.40.1.11}
";

/// The test site with `edits` (file, from, to; an empty `from` appends).
fn site_with(edits: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut files: BTreeMap<&str, String> = BTreeMap::from([
        ("roles/api.yaml", API.to_string()),
        ("roles/web.yaml", "name: web\n".to_string()),
        ("inventories/test.yaml", INVENTORY.to_string()),
    ]);
    for (file, from, to) in edits {
        let text = files.entry(file).or_default();
        assert!(
            from.is_empty() || text.contains(from),
            "{file} lacks {from:?}"
        );
        *text = if from.is_empty() {
            format!("{text}{to}")
        } else {
            text.replacen(from, to, 1)
        };
    }
    for (file, text) in files {
        let p = dir.path().join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn load(dir: &Path) -> Site {
    let (site, diags) = Site::load(dir).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    site
}

fn plan_in(dir: &Path, facts: &CloudFacts, mode: Mode) -> Result<CloudPlan, String> {
    let site = load(dir);
    let env = Environment::resolve(&site, "test", &[]).unwrap();
    let (renderer, diags) = Renderer::new(&site);
    assert!(diags.is_empty(), "{diags:?}");
    plan_with(
        &env,
        facts,
        mode,
        &renderer,
        &Secrets::from_values(BTreeMap::new()),
    )
    .map_err(|d| {
        let at = d
            .location
            .as_ref()
            .map(|l| format!("{}:{}", l.file.display(), l.line))
            .unwrap_or_default();
        format!(
            "{at}: {} | {}",
            d.message,
            d.hint.clone().unwrap_or_default()
        )
    })
}

fn change<'p>(p: &'p CloudPlan, address: &str) -> &'p CloudChange {
    p.changes
        .iter()
        .find(|c| c.address == address)
        .unwrap_or_else(|| panic!("no change {address}: {:#?}", addresses(p)))
}

fn addresses(p: &CloudPlan) -> Vec<String> {
    p.changes
        .iter()
        .map(|c| format!("{} {}", c.action.symbol(), c.address))
        .collect()
}

/// The position of the first op matching `f` in execution order.
fn at(p: &CloudPlan, what: &str, f: impl Fn(&CloudOp) -> bool) -> usize {
    p.ops()
        .iter()
        .position(|o| f(&o.op))
        .unwrap_or_else(|| panic!("no op {what}: {:#?}", p.ops()))
}

fn rule(port: u16, source: SourceFact) -> RuleFact {
    RuleFact {
        port: Port {
            number: port,
            proto: Proto::Tcp,
        },
        source,
    }
}

fn health(path: &str) -> HealthCheck {
    HealthCheck {
        path: path.into(),
        matcher: "200".into(),
        interval: 15,
        healthy: 2,
        unhealthy: 2,
    }
}

/// Everything as after an apply of the test site.
fn converged() -> CloudFacts {
    let world = || SourceFact::Cidr("0.0.0.0/0".into());
    let mut f = CloudFacts {
        vpc: Some(VpcFact {
            id: "vpc-1".into(),
            cidr: "10.40.0.0/16".into(),
            owned: true,
            internet_gateway: Some("igw-1".into()),
        }),
        subnet: Some(SubnetFact {
            id: "subnet-1".into(),
            cidr: "10.40.1.0/24".into(),
            availability_zone: "us-east-1a".into(),
            owned: true,
        }),
        lb_subnet: Some(SubnetFact {
            id: "subnet-2".into(),
            cidr: "10.40.2.0/24".into(),
            availability_zone: "us-east-1b".into(),
            owned: true,
        }),
        security_groups: vec![
            GroupFact {
                id: "sg-api".into(),
                name: "test-api".into(),
                role: "api".into(),
                rules: vec![
                    rule(22, world()),
                    rule(8000, SourceFact::Group("sg-lb".into())),
                ],
            },
            GroupFact {
                id: "sg-lb".into(),
                name: "test-api-lb".into(),
                role: "api_lb".into(),
                rules: vec![rule(80, world()), rule(443, world())],
            },
        ],
        load_balancers: vec![balancer()],
        target_groups: vec![target_group()],
        ..CloudFacts::default()
    };
    for (i, (host, ip, roles)) in [
        ("api1", "10.40.1.10", "api"),
        ("api2", "10.40.1.11", "api,web"),
    ]
    .into_iter()
    .enumerate()
    {
        f.instances.push(InstanceFact {
            id: format!("i-{i}"),
            host: host.into(),
            state: "running".into(),
            ami: "ami-0123456789abcdef0".into(),
            instance_type: "t3.small".into(),
            private_ip: Some(ip.into()),
            public_ip: None,
            security_groups: vec!["sg-api".into()],
            roles: roles.into(),
            launch_time: "2026-12-01T00:00:00Z".into(),
        });
    }
    f.zones = zones();
    f
}

/// The load balancer of the test site as found, with its listeners.
fn balancer() -> LoadBalancerFact {
    LoadBalancerFact {
        arn: "arn:lb".into(),
        name: "test-api".into(),
        role: "api".into(),
        dns_name: DNS.into(),
        zone_id: "Z35SXDOTRQ7X7K".into(),
        listeners: vec![
            ListenerFact {
                arn: "arn:l80".into(),
                port: 80,
                protocol: "HTTP".into(),
                certificate: None,
                forward: None,
                redirect_https: true,
            },
            ListenerFact {
                arn: "arn:l443".into(),
                port: 443,
                protocol: "HTTPS".into(),
                certificate: Some(CERT.into()),
                forward: Some("arn:tg".into()),
                redirect_https: false,
            },
        ],
        subnets: vec!["subnet-1".into(), "subnet-2".into()],
        security_groups: vec!["sg-lb".into()],
    }
}

/// The target group of the test site as found, both hosts registered.
fn target_group() -> TargetGroupFact {
    TargetGroupFact {
        arn: "arn:tg".into(),
        name: "test-api-8000".into(),
        role: "api".into(),
        port: 8000,
        health: health("/health"),
        targets: vec!["i-0".into(), "i-1".into()],
    }
}

/// The zones as found: the hostname an alias to the load balancer, the hosts' internal names.
fn zones() -> Vec<ZoneFact> {
    let record = |name: &str, t: RecordType, value: &str| RecordFact {
        name: name.into(),
        value: value.into(),
        record_type: t,
        ttl: 300,
        alias: None,
    };
    vec![
        ZoneFact {
            id: "Z1".into(),
            name: "example.org".into(),
            private: false,
            owned: true,
            records: vec![
                RecordFact {
                    name: "api.example.org".into(),
                    value: String::new(),
                    record_type: RecordType::A,
                    ttl: 0,
                    alias: Some((DNS.into(), "Z35SXDOTRQ7X7K".into())),
                },
                record(
                    "_infra-owner.a.api.example.org",
                    RecordType::Txt,
                    &owner_value("test"),
                ),
            ],
        },
        ZoneFact {
            id: "Z2".into(),
            name: "test.internal".into(),
            private: true,
            owned: true,
            records: vec![
                record("api1.test.internal", RecordType::A, "10.40.1.10"),
                record("api2.test.internal", RecordType::A, "10.40.1.11"),
            ],
        },
    ]
}

#[test]
fn a_load_balancer_from_nothing() {
    let dir = site_with(&[]);
    let p = plan_in(dir.path(), &CloudFacts::default(), Mode::Converge).unwrap();
    let all = addresses(&p);
    for a in [
        "+ aws_subnet.lb",
        "+ aws_security_group.api_lb",
        "+ aws_security_group.api",
        "+ aws_lb.api",
        "+ aws_lb_target_group.api",
        "+ aws_lb_listener.api_80",
        "+ aws_lb_listener.api_443",
        "+ aws_lb_target_group_attachment.api_api1",
        "+ aws_lb_target_group_attachment.api_api2",
        "+ aws_route53_record.api.example.org_A",
    ] {
        assert!(all.contains(&a.to_string()), "lacks {a}: {all:#?}");
    }
    // The listeners from the world; the role's port from the load balancer's group only.
    let lb_group = change(&p, "aws_security_group.api_lb");
    let shown: Vec<String> = lb_group
        .attrs
        .iter()
        .map(|a| format!("{} = {}", a.name, a.after.clone().unwrap_or_default()))
        .collect();
    assert!(
        shown.contains(&"name = \"test-api-lb\"".to_string()),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"ingress 80/tcp = from 0.0.0.0/0".to_string()),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"ingress 443/tcp = from 0.0.0.0/0".to_string()),
        "{shown:?}"
    );
    let role_rules: Vec<(u16, Source)> = change(&p, "aws_security_group.api")
        .ops
        .iter()
        .filter_map(|o| match &o.op {
            CloudOp::AuthorizeIngress { port, source, .. } => Some((port.number, source.clone())),
            _ => None,
        })
        .collect();
    assert!(role_rules.contains(&(
        8000,
        Source::Group(Ref::New("aws_security_group.api_lb".into()))
    )));
    assert!(
        !role_rules.contains(&(8000, Source::World)),
        "{role_rules:?}"
    );
    // The load balancer in both subnets, with its group.
    let CloudOp::CreateLoadBalancer {
        name,
        subnets,
        group,
        ..
    } = &change(&p, "aws_lb.api").ops[0].op
    else {
        panic!("{:?}", change(&p, "aws_lb.api"))
    };
    assert_eq!(name, "test-api");
    assert_eq!(
        subnets,
        &vec![
            Ref::New("aws_subnet.main".into()),
            Ref::New("aws_subnet.lb".into())
        ]
    );
    assert_eq!(group, &Ref::New("aws_security_group.api_lb".into()));
    check_listeners_and_targets(&p);
    check_order(&p);
}

fn check_listeners_and_targets(p: &CloudPlan) {
    let tg = Ref::New("aws_lb_target_group.api".into());
    assert_eq!(
        change(p, "aws_lb_listener.api_443").ops[0].op,
        CloudOp::CreateListener {
            load_balancer: Ref::New("aws_lb.api".into()),
            port: 443,
            certificate: Some(CERT.into()),
            action: ListenerAction::Forward(tg.clone()),
        }
    );
    assert_eq!(
        change(p, "aws_lb_listener.api_80").ops[0].op,
        CloudOp::CreateListener {
            load_balancer: Ref::New("aws_lb.api".into()),
            port: 80,
            certificate: None,
            action: ListenerAction::RedirectHttps,
        }
    );
    let CloudOp::CreateTargetGroup {
        name,
        port,
        health: h,
        ..
    } = &change(p, "aws_lb_target_group.api").ops[0].op
    else {
        panic!()
    };
    assert_eq!((name.as_str(), *port), ("test-api-8000", 8000));
    assert_eq!(h, &health("/health"));
    assert_eq!(
        change(p, "aws_lb_target_group_attachment.api_api2").ops[0].op,
        CloudOp::RegisterTarget {
            target_group: tg,
            instance: Ref::New("aws_instance.api2".into()),
            port: 8000,
        }
    );
    // The hostname is the load balancer's alias, not the hosts' addresses.
    let records: Vec<RecordChange> = p
        .ops()
        .into_iter()
        .filter_map(|o| match o.op {
            CloudOp::ChangeRecords {
                zone_name, changes, ..
            } if zone_name == "example.org" => Some(changes),
            _ => None,
        })
        .flatten()
        .collect();
    let alias = records
        .iter()
        .find(|c| c.name == "api.example.org" && c.record_type == RecordType::A)
        .expect("an A record for api.example.org");
    assert_eq!(
        alias.alias,
        Some(AliasTarget::LoadBalancer("aws_lb.api".into()))
    );
    assert!(alias.values.is_empty(), "{alias:?}");
}

/// Groups before the load balancer, the load balancer and target group before the listeners,
/// instances before their registration, the load balancer before its alias record.
fn check_order(p: &CloudPlan) {
    let group = at(
        p,
        "create the lb group",
        |o| matches!(o, CloudOp::CreateSecurityGroup { role, .. } if role == "api_lb"),
    );
    let world = at(
        p,
        "open 443",
        |o| matches!(o, CloudOp::AuthorizeIngress { port, .. } if port.number == 443),
    );
    let lb = at(p, "create the lb", |o| {
        matches!(o, CloudOp::CreateLoadBalancer { .. })
    });
    let tg = at(p, "create the tg", |o| {
        matches!(o, CloudOp::CreateTargetGroup { .. })
    });
    let listener = at(p, "create a listener", |o| {
        matches!(o, CloudOp::CreateListener { .. })
    });
    let run = at(p, "launch", |o| matches!(o, CloudOp::RunInstance { .. }));
    let register = at(p, "register", |o| {
        matches!(o, CloudOp::RegisterTarget { .. })
    });
    let records = at(
        p,
        "the public records",
        |o| matches!(o, CloudOp::ChangeRecords { zone_name, .. } if zone_name == "example.org"),
    );
    let subnet = at(p, "the lb subnet", |o| {
        matches!(o, CloudOp::CreateLbSubnet { .. })
    });
    assert!(subnet < lb && group < world && world < lb, "{:#?}", p.ops());
    assert!(lb < listener && tg < listener, "{:#?}", p.ops());
    assert!(run < register && lb < records, "{:#?}", p.ops());
}

#[test]
fn a_converged_load_balancer_plans_nothing() {
    let dir = site_with(&[]);
    let p = plan_in(dir.path(), &converged(), Mode::Converge).unwrap();
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
}

#[test]
fn health_and_certificate_change_in_place() {
    let dir = site_with(&[
        ("roles/api.yaml", "path: /health", "path: /ready"),
        (
            "inventories/test.yaml",
            "certificate/one",
            "certificate/two",
        ),
    ]);
    let p = plan_in(dir.path(), &converged(), Mode::Converge).unwrap();
    let all = addresses(&p);
    assert_eq!(
        all,
        vec![
            "~ aws_lb_target_group.api".to_string(),
            "~ aws_lb_listener.api_443".to_string()
        ],
        "{:#?}",
        p.changes
    );
    let tg = change(&p, "aws_lb_target_group.api");
    assert_eq!(
        tg.ops[0].op,
        CloudOp::ModifyTargetGroup {
            arn: "arn:tg".into(),
            health: health("/ready"),
        }
    );
    assert_eq!(tg.attrs[0].name, "health_check.path");
    assert_eq!(tg.attrs[0].before.as_deref(), Some("\"/health\""));
    assert_eq!(tg.attrs[0].after.as_deref(), Some("\"/ready\""));
    let listener = change(&p, "aws_lb_listener.api_443");
    assert_eq!(
        listener.ops[0].op,
        CloudOp::ModifyListener {
            arn: "arn:l443".into(),
            port: 443,
            certificate: Some(CERT.replace("one", "two")),
            action: ListenerAction::Forward(Ref::Id("arn:tg".into())),
        }
    );
    // A new port replaces the target group; the listener then forwards to the new one.
    let dir = site_with(&[("roles/api.yaml", "port: 8000", "port: 8080")]);
    let p = plan_in(dir.path(), &converged(), Mode::Converge).unwrap();
    let tg = change(&p, "aws_lb_target_group.api");
    assert_eq!(tg.action, CloudAction::Replace);
    assert!(tg
        .attrs
        .iter()
        .any(|a| a.name == "port" && a.forces_replacement));
    let ops: Vec<CloudOp> = p.ops().into_iter().map(|o| o.op).collect();
    let create = ops
        .iter()
        .position(|o| matches!(o, CloudOp::CreateTargetGroup { port: 8080, .. }))
        .unwrap();
    let modify = ops
        .iter()
        .position(|o| matches!(o, CloudOp::ModifyListener { port: 443, .. }))
        .unwrap();
    let delete = ops
        .iter()
        .position(|o| matches!(o, CloudOp::DeleteTargetGroup { arn } if arn == "arn:tg"))
        .unwrap();
    assert!(create < modify && modify < delete, "{ops:#?}");
}

#[test]
fn a_host_leaving_the_role_is_deregistered() {
    let dir = site_with(&[("inventories/test.yaml", "roles: [api, web]", "roles: [web]")]);
    let p = plan_in(dir.path(), &converged(), Mode::Converge).unwrap();
    let c = change(&p, "aws_lb_target_group_attachment.api_api2");
    assert_eq!(c.action, CloudAction::Delete);
    assert_eq!(
        c.ops[0].op,
        CloudOp::DeregisterTarget {
            target_group: "arn:tg".into(),
            instance: "i-1".into(),
        }
    );
    assert!(!addresses(&p).iter().any(|a| a.contains("api_api1")));
}

/// What goes when the load balancer goes: listeners, then the load balancer, the target group,
/// the group (its rules first), the subnet infra made, the alias record.
fn check_all_removed(p: &CloudPlan) {
    let all = addresses(p);
    for a in [
        "- aws_lb_listener.api_80",
        "- aws_lb_listener.api_443",
        "- aws_lb.api",
        "- aws_lb_target_group.api",
        "- aws_security_group.api_lb",
        "- aws_subnet.lb",
        "- aws_route53_record.api.example.org_A",
    ] {
        assert!(all.contains(&a.to_string()), "lacks {a}: {all:#?}");
    }
    let listener = at(p, "delete a listener", |o| {
        matches!(o, CloudOp::DeleteListener { .. })
    });
    let lb = at(p, "delete the lb", |o| {
        matches!(o, CloudOp::DeleteLoadBalancer { .. })
    });
    let tg = at(p, "delete the tg", |o| {
        matches!(o, CloudOp::DeleteTargetGroup { .. })
    });
    let group = at(
        p,
        "delete the lb group",
        |o| matches!(o, CloudOp::DeleteSecurityGroup { id } if id == "sg-lb"),
    );
    let subnet = at(
        p,
        "delete the lb subnet",
        |o| matches!(o, CloudOp::DeleteSubnet { id } if id == "subnet-2"),
    );
    assert!(
        listener < lb && lb < tg && tg < group && lb < subnet,
        "{:#?}",
        p.ops()
    );
}

#[test]
fn removing_the_field_or_destroying_removes_everything() {
    let cut = API.find("load_balancer:").unwrap();
    let dir = site_with(&[("roles/api.yaml", &API[cut..], "")]);
    let p = plan_in(dir.path(), &converged(), Mode::Converge).unwrap();
    check_all_removed(&p);
    // The role keeps its group, without the rule from the load balancer.
    let role = change(&p, "aws_security_group.api");
    assert_eq!(role.action, CloudAction::Update);
    assert!(role.ops.iter().any(|o| matches!(&o.op,
        CloudOp::RevokeIngress { port, source: SourceFact::Group(g), .. } if port.number == 8000 && g == "sg-lb")));
    let dir = site_with(&[]);
    let p = plan_in(dir.path(), &converged(), Mode::Destroy).unwrap();
    check_all_removed(&p);
}

fn plan_error(edits: &[(&str, &str, &str)], facts: &CloudFacts) -> String {
    let dir = site_with(edits);
    plan_in(dir.path(), facts, Mode::Converge).unwrap_err()
}

#[test]
fn plan_mistakes_name_their_line() {
    let outside = plan_error(
        &[(
            "roles/api.yaml",
            "  port: 8000\n",
            "  port: 8000\n  hostname: api.example.net\n",
        )],
        &CloudFacts::default(),
    );
    assert!(outside.starts_with("roles/api.yaml:6: `load_balancer` of role `api`: the hostname api.example.net is not in the public zone example.org"), "{outside}");
    let unrendered = plan_error(
        &[("roles/api.yaml", "{{ env.domain }}\"\n", "{{ nope }}\"\n")],
        &CloudFacts::default(),
    );
    assert!(
        unrendered.starts_with("roles/api.yaml:2: hostname of role `api` does not render"),
        "{unrendered}"
    );
    let clash = plan_error(
        &[(
            "roles/web.yaml",
            "",
            "dns:\n  - {type: A, name: api.example.org, value: 192.0.2.1}\n",
        )],
        &CloudFacts::default(),
    );
    assert!(clash.starts_with("roles/web.yaml:3: record set api.example.org A is the alias of role `api`'s load balancer; host `api2` (role `web`) wants values in it"), "{clash}");
    let no_subnet = plan_error(
        &[(
            "inventories/test.yaml",
            "  lb_subnet_cidr: 10.40.2.0/24\n",
            "",
        )],
        &CloudFacts::default(),
    );
    assert!(
        no_subnet.starts_with("inventories/test.yaml:7: a role has a `load_balancer:`"),
        "{no_subnet}"
    );
    assert!(no_subnet.contains("lb_subnet_cidr"), "{no_subnet}");
    let same_zone = plan_error(
        &[(
            "inventories/test.yaml",
            "lb_availability_zone: us-east-1b",
            "lb_availability_zone: us-east-1a",
        )],
        &CloudFacts::default(),
    );
    assert!(
        same_zone
            .contains("the load balancers' subnet is in us-east-1a, like the instances' subnet"),
        "{same_zone}"
    );
    let not_arn = plan_error(
        &[(
            "inventories/test.yaml",
            "certificate_arn: arn:",
            "certificate_arn: ",
        )],
        &CloudFacts::default(),
    );
    assert!(
        not_arn.starts_with("roles/api.yaml:7: `load_balancer` of role `api`: the certificate"),
        "{not_arn}"
    );
}

#[test]
fn role_mistakes_name_their_line() {
    let dir = site_with(&[
        (
            "roles/api.yaml",
            "listeners: [80, 443]",
            "listeners: [8080, 443]",
        ),
        ("roles/api.yaml", "ports: [22]", "ports: [22, 8000]"),
        ("roles/api.yaml", "interval: 15", "interval: 5"),
        (
            "roles/web.yaml",
            "",
            "load_balancer:\n  port: 0\n  listeners: [443]\n",
        ),
        ("roles/api_lb.yaml", "", "name: api_lb\n"),
        ("roles/api.yaml", "", "public_ip: true\nreverse_dns: true\n"),
    ]);
    let site = load(dir.path());
    let text: Vec<String> = infra_core::validate::check_roles(&site)
        .iter()
        .map(|d| {
            let l = d.location.as_ref().unwrap();
            format!("{}:{} {}", l.file.display(), l.line, d.message)
        })
        .collect();
    let text = text.join("\n");
    for want in [
        "roles/api.yaml:6 `load_balancer` of role `api`: listener 8080 is not allowed (or given twice)",
        "roles/api.yaml:5 `load_balancer` of role `api`: port 8000 is also in `ports:` (open to the world)",
        "roles/api.yaml:8 `load_balancer` of role `api`: health interval 5 is out of 6-300 seconds",
        "roles/web.yaml:3 `load_balancer` of role `web`: port 0 is not a port",
        "roles/web.yaml:3 `load_balancer` of role `web`: listener 443 needs a `certificate`",
        "roles/api_lb.yaml:1 role name `api_lb` ends in `_lb`/`-lb`, which names the security group of role `api`'s load balancer",
        "roles/api.yaml:10 role `api` asks for reverse DNS of `api.{{ env.domain }}`, which its load balancer answers for",
    ] {
        assert!(text.contains(want), "lacks {want:?}:\n{text}");
    }
    // An unknown field is refused as the role is read, at its line.
    let dir = site_with(&[(
        "roles/api.yaml",
        "  port: 8000\n",
        "  port: 8000\n  stickiness: true\n",
    )]);
    let (_, diags) = Site::load(dir.path()).unwrap();
    let d = diags.first().expect("an error for stickiness");
    assert!(d.message.contains("stickiness"), "{d:?}");
    assert_eq!(d.location.as_ref().unwrap().line, 6, "{d:?}");
}

#[test]
fn names_fit_aws() {
    assert_eq!(aws_name("test-api"), "test-api");
    let long = aws_name("production-accounts-frontend-8000");
    assert_eq!(long.len(), 32, "{long}");
    assert!(long.starts_with("production-accounts-fro-"), "{long}");
    assert_eq!(long, aws_name("production-accounts-frontend-8000"));
    assert_ne!(long, aws_name("production-accounts-frontend-8080"));
    let odd = aws_name("env_1-api.v2");
    assert!(odd.starts_with("env-1-api-v2-"), "{odd}");
    assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
}

#[test]
fn an_existing_subnet_named_by_id_is_used() {
    let named = [(
        "inventories/test.yaml",
        "  lb_subnet_cidr: 10.40.2.0/24\n",
        "  lb_subnet_id: subnet-2\n",
    )];
    let dir = site_with(&named);
    let mut facts = converged();
    facts.lb_subnet.as_mut().unwrap().owned = false;
    let p = plan_in(dir.path(), &facts, Mode::Converge).unwrap();
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    // Not there: an error naming the setting; and a subnet infra did not make is never deleted.
    facts.lb_subnet = None;
    let missing = plan_in(dir.path(), &facts, Mode::Converge).unwrap_err();
    assert!(
        missing.contains("provider.lb_subnet_id subnet-2 was not found"),
        "{missing}"
    );
    let mut facts = converged();
    facts.lb_subnet.as_mut().unwrap().owned = false;
    let p = plan_in(dir.path(), &facts, Mode::Destroy).unwrap();
    assert!(!addresses(&p).contains(&"- aws_subnet.lb".to_string()));
}

/// A host of another role whose `hostname:` is a load balancer's: refused by plan and by
/// validate (its A record would silently give way to the alias).
#[test]
fn a_host_outside_the_role_with_the_balancers_hostname_is_refused() {
    let edits = [
        (
            "roles/web.yaml",
            "",
            "public_ip: true\nhostname: \"api.{{ env.domain }}\"\n",
        ),
        (
            "inventories/test.yaml",
            "",
            "  web1: {roles: [web], private_ip: 10.40.1.12}\n",
        ),
    ];
    let other_holder = plan_error(&edits, &CloudFacts::default());
    assert!(other_holder.starts_with("roles/api.yaml:5: host `web1` has the hostname api.example.org, which is the alias of role `api`'s load balancer, but does not hold role `api`"), "{other_holder}");
    let dir = site_with(&edits);
    let site = load(dir.path());
    let env = Environment::resolve(&site, "test", &[]).unwrap();
    let (renderer, _) = Renderer::new(&site);
    let checked = infra_core::cloud::records::check(&env, &renderer).unwrap_err();
    assert!(
        checked
            .message
            .starts_with("host `web1` has the hostname api.example.org"),
        "{checked:?}"
    );
}

/// `lb_subnet_id` naming another subnet than the one infra made: the load balancer moves to it
/// (before anything is deleted) and infra's subnet goes; a group changed by hand is put back.
#[test]
fn a_load_balancer_follows_its_subnet_and_group() {
    let named = [(
        "inventories/test.yaml",
        "  lb_subnet_cidr: 10.40.2.0/24\n",
        "  lb_subnet_id: subnet-3\n",
    )];
    let dir = site_with(&named);
    let mut facts = converged();
    facts.stale_lb_subnet = facts.lb_subnet.take();
    facts.lb_subnet = Some(SubnetFact {
        id: "subnet-3".into(),
        cidr: "10.40.3.0/24".into(),
        availability_zone: "us-east-1c".into(),
        owned: false,
    });
    let p = plan_in(dir.path(), &facts, Mode::Converge).unwrap();
    assert_eq!(addresses(&p).len(), 2, "{:#?}", addresses(&p));
    let moved = change(&p, "aws_lb.api");
    assert_eq!(moved.action, CloudAction::Update);
    let want = vec![Ref::Id("subnet-1".into()), Ref::Id("subnet-3".into())];
    assert!(
        matches!(&moved.ops[..], [o] if matches!(&o.op, CloudOp::SetLbSubnets { arn, subnets } if arn == "arn:lb" && subnets == &want)),
        "{moved:#?}"
    );
    let gone = change(&p, "aws_subnet.lb");
    assert_eq!(gone.action, CloudAction::Delete);
    assert!(
        matches!(&gone.ops[..], [o] if o.op == CloudOp::DeleteSubnet { id: "subnet-2".into() } && o.phase > moved.ops[0].phase)
    );
    // Moved: nothing more to do.
    facts.stale_lb_subnet = None;
    facts.load_balancers[0].subnets = vec!["subnet-1".into(), "subnet-3".into()];
    let p = plan_in(dir.path(), &facts, Mode::Converge).unwrap();
    assert!(p.changes.is_empty(), "{:#?}", addresses(&p));

    let dir = site_with(&[]);
    let mut facts = converged();
    facts.load_balancers[0].security_groups = vec!["sg-other".into()];
    let p = plan_in(dir.path(), &facts, Mode::Converge).unwrap();
    assert_eq!(addresses(&p), ["~ aws_lb.api"]);
    let put_back = change(&p, "aws_lb.api");
    assert!(
        matches!(&put_back.ops[..], [o] if matches!(&o.op, CloudOp::SetLbGroups { groups, .. } if groups == &[Ref::Id("sg-lb".into())])),
        "{put_back:#?}"
    );
}
