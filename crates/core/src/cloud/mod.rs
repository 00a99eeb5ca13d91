//! The cloud side of an environment: what its roles need (instances, groups, volumes, addresses,
//! DNS) and the plan between that and what the provider found. Pure: the provider program
//! (`infra-aws`) gathers the facts and executes the operations; the types they travel in are
//! `infra_protocol`'s.

mod dkim;
pub mod lb;
pub mod objects;
pub mod records;

use crate::diagnostic::Diagnostic;
use crate::environment::Environment;
use crate::model::ProviderKind;
use crate::render::Renderer;
use crate::secrets::Secrets;
use infra_protocol::{
    CloudFacts, GroupFact, InstanceFact, Port, RecordAction, RecordChange, RuleFact, Scope, Source,
    SourceFact, VolumeFact, KNOWN_AFTER_APPLY, TAG_ENV, TAG_HOST, TAG_ROLES,
};
// `pub(crate)`: the core's other modules (plan.rs's tests) name these as `crate::cloud::...`.
pub(crate) use infra_protocol::{CloudOp, Op, Ref};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// sha256 of the facts: a saved plan is refused when the cloud changed since.
pub fn fingerprint(facts: &CloudFacts) -> String {
    let text = serde_json::to_string(facts).unwrap_or_default();
    crate::state::hex(&Sha256::digest(text.as_bytes()))
}

/// What the provider needs to find the resources of `env`.
pub fn scope(env: &Environment) -> Scope {
    let inv = env.inventory;
    let prov = &inv.provider.value;
    Scope {
        environment: env.name.clone(),
        region: prov.region.clone().unwrap_or_default(),
        vpc_id: prov.vpc_id.clone(),
        subnet_id: prov.subnet_id.clone(),
        domain: inv.domain.trim_end_matches('.').to_string(),
        internal_domain: inv.internal_domain.trim_end_matches('.').to_string(),
        bucket: prov.bucket.as_ref().map(|b| b.value.clone()),
        objects_only: prov.kind != ProviderKind::Aws,
        lb_subnet_id: prov.lb_subnet_id.clone(),
    }
}

/// Records are written after zones exist: a record change of a zone created in this apply runs
/// after `CreateZone`. Deleting records runs first (phase 30), upserts after the zones (65).
fn record_phase(changes: &[RecordChange], zone: &Ref) -> u8 {
    if matches!(zone, Ref::New(_)) || changes.iter().any(|c| c.action == RecordAction::Upsert) {
        65
    } else {
        30
    }
}

// ---------------------------------------------------------------------------------------------
// The plan.

/// Terraform's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudAction {
    Create,
    Update,
    Replace,
    Delete,
}

impl CloudAction {
    /// Terraform's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            CloudAction::Create => "+",
            CloudAction::Update => "~",
            CloudAction::Replace => "-/+",
            CloudAction::Delete => "-",
        }
    }
}

/// One attribute line: `+ name = after`, `~ name = before -> after`, `- name = before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// This attribute is why the resource is replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
}

/// One resource that changes, with its attribute lines and the operations that change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudChange {
    /// e.g. `aws_instance.app1`.
    pub address: String,
    pub action: CloudAction,
    pub attrs: Vec<Attr>,
    pub ops: Vec<Op>,
}

/// The cloud section of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudPlan {
    pub provider: String,
    pub region: String,
    /// `sha256` of the facts it was computed from.
    pub facts_fingerprint: String,
    pub changes: Vec<CloudChange>,
    /// Resources that stay although their host or the environment goes (`keep_on_destroy`).
    pub kept: Vec<String>,
    /// Hosts with no running instance before this apply: planned as fresh machines.
    pub new_hosts: Vec<String>,
    /// The content of every object the plan uploads, by its digest: sent to the provider with the
    /// operations, never shown nor saved with the plan (it may hold secrets).
    #[serde(skip)]
    pub object_contents: BTreeMap<String, Vec<u8>>,
    /// Secrets the cloud side needs that are not set (a DKIM key): placeholders were planned,
    /// and apply refuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_secrets: Vec<String>,
}

/// `add`, `change`, `destroy` counts, as Terraform prints them (a replace is one add and one
/// destroy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudSummary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl CloudPlan {
    pub fn summary(&self) -> CloudSummary {
        let mut s = CloudSummary::default();
        for c in &self.changes {
            match c.action {
                CloudAction::Create => s.add += 1,
                CloudAction::Update => s.change += 1,
                CloudAction::Replace => {
                    s.add += 1;
                    s.destroy += 1
                }
                CloudAction::Delete => s.destroy += 1,
            }
        }
        s
    }

    pub fn destroys(&self) -> bool {
        self.changes
            .iter()
            .any(|c| matches!(c.action, CloudAction::Delete | CloudAction::Replace))
    }

    /// Every operation in execution order (stable within a phase).
    pub fn ops(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .changes
            .iter()
            .flat_map(|c| c.ops.iter().cloned())
            .collect();
        ops.sort_by_key(|o| o.phase);
        ops
    }
}

// ---------------------------------------------------------------------------------------------
// Desired state, from the environment.

#[derive(Debug, Clone)]
struct DesiredInstance {
    host: String,
    ami: String,
    instance_type: String,
    private_ip: Option<String>,
    key_name: Option<String>,
    roles: String,
    groups: Vec<String>,
    public_ip: bool,
    reverse_dns: Option<String>,
    public_hostnames: Vec<String>,
    /// Every role the host holds, included ones too.
    all_roles: BTreeSet<String>,
    volumes: Vec<DesiredVolume>,
}

#[derive(Debug, Clone)]
struct DesiredVolume {
    role: String,
    size_gb: u32,
    device: String,
    keep: bool,
}

/// Whether the plan converges the environment or removes everything it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Converge,
    Destroy,
}

/// The security group name of a role (`<env>-<role>`), or of a role's load balancer
/// (key `<role>_lb`: `<env>-<role>-lb`).
pub fn group_name(env: &str, role: &str) -> String {
    match role.strip_suffix(lb::GROUP_SUFFIX) {
        Some(base) => format!("{env}-{base}-lb"),
        None => format!("{env}-{role}"),
    }
}

/// A ClientToken that is the same for the same launch (AWS returns the first instance when the
/// same token comes again), and new when the host is replaced (another AMI).
pub fn client_token(env: &str, host: &str, ami: &str, generation: usize) -> String {
    let digest = Sha256::digest(format!("{env}\0{host}\0{ami}\0{generation}").as_bytes());
    format!("infra-{}", &crate::state::hex(&digest)[..32])
}

/// [`plan_with`] with the site's templates and no secrets set (a DKIM record gets a
/// placeholder, listed in `missing_secrets`).
pub fn plan(
    env: &Environment,
    facts: &CloudFacts,
    mode: Mode,
) -> Result<CloudPlan, Box<Diagnostic>> {
    let (renderer, _) = Renderer::new(env.site);
    plan_with(
        env,
        facts,
        mode,
        &renderer,
        &Secrets::from_values(BTreeMap::new()),
    )
}

/// The plan of the cloud side of `env` against what the provider found. The roles' `dns:`
/// entries are rendered with `renderer`; a DKIM record's key comes from `secrets`.
/// An inventory whose AWS settings cannot work with what exists is an error at its `provider`;
/// a `dns:` entry that cannot be written, at the entry.
pub fn plan_with(
    env: &Environment,
    facts: &CloudFacts,
    mode: Mode,
    renderer: &Renderer,
    secrets: &Secrets,
) -> Result<CloudPlan, Box<Diagnostic>> {
    let inv = env.inventory;
    let prov = &inv.provider.value;
    let err = |message: String| {
        Box::new(Diagnostic::error(message).at(env.site.loc(&env.file, &inv.provider, 1)))
    };
    if prov.kind != ProviderKind::Aws {
        return Err(err("the cloud plan is for `provider.type: aws`".into()));
    }
    let region = prov
        .region
        .clone()
        .ok_or_else(|| err("provider.region is missing: add e.g. `region: us-east-1`".into()))?;
    let mut p = Planner {
        env: env.name.clone(),
        facts,
        changes: Vec::new(),
        kept: Vec::new(),
        new_instances: BTreeSet::new(),
    };
    let (instances, roles, lbs) = if mode == Mode::Converge {
        (
            desired_instances(env).map_err(err)?,
            records::role_records(env, renderer, secrets)?,
            lb::desired(env, renderer)?,
        )
    } else {
        (Vec::new(), records::RoleRecords::default(), Vec::new())
    };
    let (vpc, subnet) = p.network(env, mode).map_err(err)?;
    let lb_subnet = p.lb_subnet(env, &vpc, !lbs.is_empty()).map_err(err)?;
    let groups = p.security_groups(env, &vpc, mode);
    p.instances(&instances, &subnet, &groups);
    p.volumes(env, &instances, &subnet);
    p.addresses(&instances);
    let subnets: Vec<Ref> = [subnet.clone()].into_iter().chain(lb_subnet).collect();
    let aliases = p.load_balancers(&lbs, &vpc, &subnets, &groups);
    p.zones(env, &instances, &roles, &aliases, &vpc, mode)?;
    p.network_teardown(mode);
    if mode == Mode::Destroy {
        // Converge: the objects are planned once rendered (`objects::plan`, by the caller).
        let (changes, kept) = objects::plan(env, facts, &Default::default(), mode)?;
        p.changes.extend(changes);
        p.kept.extend(kept);
    }
    let new_hosts = p.new_instances.iter().cloned().collect();
    Ok(CloudPlan {
        provider: "aws".into(),
        region,
        facts_fingerprint: fingerprint(facts),
        changes: p.changes,
        kept: p.kept,
        new_hosts,
        object_contents: BTreeMap::new(),
        missing_secrets: roles.missing_secrets.into_iter().collect(),
    })
}

fn desired_instances(env: &Environment) -> Result<Vec<DesiredInstance>, String> {
    let inv = env.inventory;
    let prov = &inv.provider.value;
    let site = env.site;
    let with_group = roles_with_groups(env, &held_roles(env));
    let mut out = Vec::new();
    for (name, h) in &env.hosts {
        let host = &inv.hosts[name].value;
        let ami = prov.ami.clone().ok_or_else(|| {
            "provider.ami is missing: add the AMI id to launch, e.g. `ami: ami-0123456789abcdef0`"
                .to_string()
        })?;
        let instance_type = h.view.instance_type.clone().ok_or_else(|| {
            format!(
                "host {name} has no instance_type: set it on the host or as provider.instance_type"
            )
        })?;
        let roles: Vec<_> = h
            .view
            .all_roles
            .iter()
            .filter_map(|r| site.roles.get(r).map(|l| &l.value))
            .collect();
        let groups = roles
            .iter()
            .filter(|r| with_group.contains(r.name.value.as_str()))
            .map(|r| group_name(&env.name, &r.name.value))
            .collect();
        let public_ip = roles.iter().any(|r| r.public_ip);
        let reverse_dns = roles
            .iter()
            .any(|r| r.reverse_dns.as_ref().is_some_and(|v| v.value))
            .then(|| h.view.public_hostnames.first().cloned())
            .flatten();
        let volumes = roles
            .iter()
            .filter_map(|r| {
                r.volume.as_ref().map(|v| DesiredVolume {
                    role: r.name.value.clone(),
                    size_gb: v.size_gb,
                    device: v.device.clone(),
                    keep: v.keep_on_destroy,
                })
            })
            .collect();
        out.push(DesiredInstance {
            host: name.clone(),
            ami,
            instance_type,
            private_ip: host.private_ip.map(|ip| ip.to_string()),
            key_name: prov.key_name.clone(),
            roles: h.view.roles.join(","),
            groups,
            public_ip,
            reverse_dns,
            public_hostnames: h.view.public_hostnames.clone(),
            all_roles: h.view.all_roles.iter().cloned().collect(),
            volumes,
        });
    }
    Ok(out)
}

struct Planner<'f> {
    env: String,
    facts: &'f CloudFacts,
    changes: Vec<CloudChange>,
    kept: Vec<String>,
    /// Hosts whose instance is launched by this plan (new or replaced).
    new_instances: BTreeSet<String>,
}

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn added(name: &str, value: String) -> Attr {
    Attr {
        name: name.into(),
        before: None,
        after: Some(value),
        forces_replacement: false,
    }
}

fn removed(name: &str, value: String) -> Attr {
    Attr {
        name: name.into(),
        before: Some(value),
        after: None,
        forces_replacement: false,
    }
}

fn changed(name: &str, before: String, after: String) -> Attr {
    Attr {
        name: name.into(),
        before: Some(before),
        after: Some(after),
        forces_replacement: false,
    }
}

impl Planner<'_> {
    fn push(&mut self, address: String, action: CloudAction, attrs: Vec<Attr>, ops: Vec<CloudOp>) {
        let ops = ops
            .into_iter()
            .map(|op| Op {
                phase: match &op {
                    CloudOp::ChangeRecords { changes, zone, .. } => record_phase(changes, zone),
                    other => other.phase(),
                },
                resource: address.clone(),
                op,
            })
            .collect();
        self.changes.push(CloudChange {
            address,
            action,
            attrs,
            ops,
        });
    }

    fn tags(&self, name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut t = BTreeMap::new();
        t.insert(TAG_ENV.to_string(), self.env.clone());
        t.insert("Name".to_string(), name.to_string());
        for (k, v) in extra {
            t.insert(k.to_string(), v.to_string());
        }
        t
    }

    /// The VPC and subnet the instances go in: named by id, found by tag, or created.
    fn network(&mut self, env: &Environment, mode: Mode) -> Result<(Ref, Ref), String> {
        let prov = &env.inventory.provider.value;
        let f = self.facts;
        if mode == Mode::Destroy {
            let vpc = f.vpc.as_ref().map(|v| Ref::Id(v.id.clone()));
            let subnet = f.subnet.as_ref().map(|s| Ref::Id(s.id.clone()));
            return Ok((
                vpc.unwrap_or(Ref::New("aws_vpc.main".into())),
                subnet.unwrap_or(Ref::New("aws_subnet.main".into())),
            ));
        }
        let found_vpc = f.vpc.as_ref().map(|v| (v.id.as_str(), v.cidr.as_str()));
        let vpc = match existing("VPC", "vpc", &prov.vpc_id, &prov.vpc_cidr, found_vpc)? {
            Some(r) => r,
            None => {
                let cidr = prov.vpc_cidr.clone().ok_or_else(|| {
                    "provider has neither vpc_id nor vpc_cidr: name an existing VPC with `vpc_id: vpc-...` or let infra create one with `vpc_cidr: 10.10.0.0/16`".to_string()
                })?;
                self.push(
                    "aws_vpc.main".into(),
                    CloudAction::Create,
                    vec![
                        added("cidr_block", q(&cidr)),
                        added("internet_gateway", "true".into()),
                        added("tags.Name", q(&self.env)),
                    ],
                    vec![CloudOp::CreateVpc { cidr }],
                );
                Ref::New("aws_vpc.main".into())
            }
        };
        if let Some(v) = f
            .vpc
            .as_ref()
            .filter(|v| v.owned && v.internet_gateway.is_none())
        {
            self.push(
                "aws_internet_gateway.main".into(),
                CloudAction::Create,
                vec![added("vpc_id", q(&v.id))],
                vec![CloudOp::CreateInternetGateway {
                    vpc: Ref::Id(v.id.clone()),
                }],
            );
        }
        let found_subnet = f.subnet.as_ref().map(|s| (s.id.as_str(), s.cidr.as_str()));
        let subnet = match existing(
            "subnet",
            "subnet",
            &prov.subnet_id,
            &prov.subnet_cidr,
            found_subnet,
        )? {
            Some(r) => r,
            None => {
                let cidr = prov.subnet_cidr.clone().ok_or_else(|| {
                    "provider has neither subnet_id nor subnet_cidr: add `subnet_cidr: 10.10.1.0/24` (inside vpc_cidr)".to_string()
                })?;
                let mut attrs = vec![added("cidr_block", q(&cidr))];
                if let Some(az) = &prov.availability_zone {
                    attrs.push(added("availability_zone", q(az)));
                }
                attrs.push(added("map_public_ip_on_launch", "true".into()));
                self.push(
                    "aws_subnet.main".into(),
                    CloudAction::Create,
                    attrs,
                    vec![CloudOp::CreateSubnet {
                        vpc: vpc.clone(),
                        cidr,
                        availability_zone: prov.availability_zone.clone(),
                    }],
                );
                Ref::New("aws_subnet.main".into())
            }
        };
        Ok((vpc, subnet))
    }

    /// One group per role that opens ports or is named in an `exposes.to`; returns name -> ref.
    fn security_groups(
        &mut self,
        env: &Environment,
        vpc: &Ref,
        mode: Mode,
    ) -> BTreeMap<String, Ref> {
        let wanted = if mode == Mode::Converge {
            wanted_rules(env)
        } else {
            BTreeMap::new()
        };
        let found = FoundGroups::new(&self.facts.security_groups);
        let refs = self.group_refs(&wanted, &found);
        for (role, rules) in &wanted {
            self.group_change(role, rules, vpc, &refs, &found);
        }
        self.gone_groups(&wanted, &found);
        refs
    }

    /// The group of each wanted role, by group name: the found one's id, or the one to create.
    fn group_refs(
        &self,
        wanted: &BTreeMap<String, Rules>,
        found: &FoundGroups,
    ) -> BTreeMap<String, Ref> {
        let mut refs = BTreeMap::new();
        for role in wanted.keys() {
            let name = group_name(&self.env, role);
            let r = match found.by_role.get(role.as_str()) {
                Some(g) => Ref::Id(g.id.clone()),
                None => Ref::New(format!("aws_security_group.{role}")),
            };
            refs.insert(name, r);
        }
        refs
    }

    /// One wanted group: created if missing, missing rules authorized, unwanted rules revoked.
    fn group_change(
        &mut self,
        role: &str,
        rules: &Rules,
        vpc: &Ref,
        refs: &BTreeMap<String, Ref>,
        found: &FoundGroups,
    ) {
        let name = group_name(&self.env, role);
        let have_group = found.by_role.get(role).copied();
        let mut ops = Vec::new();
        let mut attrs = Vec::new();
        if have_group.is_none() {
            attrs.push(added("name", q(&name)));
            ops.push(CloudOp::CreateSecurityGroup {
                vpc: vpc.clone(),
                name: name.clone(),
                role: role.to_string(),
            });
        }
        let have: Rules = have_group
            .map(|g| {
                g.rules
                    .iter()
                    .map(|r| (r.port, RuleSource::found(r, &found.id_to_role)))
                    .collect()
            })
            .unwrap_or_default();
        for (attr, op) in self.authorize_rules(rules, &have, &refs[&name], refs) {
            attrs.push(attr);
            ops.push(op);
        }
        if let Some(g) = have_group {
            for rule in &g.rules {
                let src = RuleSource::found(rule, &found.id_to_role);
                if !rules.contains(&(rule.port, src.clone())) {
                    let (attr, op) = self.revoke(g, rule, &src);
                    attrs.push(attr);
                    ops.push(op);
                }
            }
        }
        if !ops.is_empty() {
            let action = if have_group.is_none() {
                CloudAction::Create
            } else {
                CloudAction::Update
            };
            self.push(format!("aws_security_group.{role}"), action, attrs, ops);
        }
    }

    /// The attribute line and `AuthorizeIngress` op of each wanted rule the group lacks.
    fn authorize_rules(
        &self,
        rules: &Rules,
        have: &Rules,
        group: &Ref,
        refs: &BTreeMap<String, Ref>,
    ) -> Vec<(Attr, CloudOp)> {
        let mut out = Vec::new();
        for (port, src) in rules.difference(have) {
            let source = match src {
                RuleSource::World => Source::World,
                RuleSource::Role(r) => Source::Group(refs[&group_name(&self.env, r)].clone()),
                // Only found on groups, never wanted.
                RuleSource::Cidr(_) | RuleSource::Group(_) => continue,
            };
            let attr = added(
                &format!("ingress {port}"),
                format!("from {}", src.label(&self.env)),
            );
            let op = CloudOp::AuthorizeIngress {
                group: group.clone(),
                port: *port,
                source,
            };
            out.push((attr, op));
        }
        out
    }

    /// The attribute line and the op that revoke one found rule of group `g`.
    fn revoke(&self, g: &GroupFact, rule: &RuleFact, src: &RuleSource) -> (Attr, CloudOp) {
        (
            removed(
                &format!("ingress {}", rule.port),
                format!("from {}", src.label(&self.env)),
            ),
            CloudOp::RevokeIngress {
                group: g.id.clone(),
                port: rule.port,
                source: rule.source.clone(),
            },
        )
    }

    /// Groups of roles no host holds any more: their rules revoked, the groups deleted.
    fn gone_groups(&mut self, wanted: &BTreeMap<String, Rules>, found: &FoundGroups) {
        // Their rules go first (groups refer to each other), the groups after the instances that
        // used them.
        let f = self.facts;
        for g in f
            .security_groups
            .iter()
            .filter(|g| !wanted.contains_key(&g.role))
        {
            let mut attrs = vec![removed("name", q(&g.name))];
            let mut ops = Vec::new();
            for rule in &g.rules {
                let src = RuleSource::found(rule, &found.id_to_role);
                let (attr, op) = self.revoke(g, rule, &src);
                attrs.push(attr);
                ops.push(op);
            }
            ops.push(CloudOp::DeleteSecurityGroup { id: g.id.clone() });
            self.push(
                format!("aws_security_group.{}", g.role),
                CloudAction::Delete,
                attrs,
                ops,
            );
        }
    }

    /// Each wanted host's instance created, replaced or updated; stray instances terminated.
    fn instances(
        &mut self,
        wanted: &[DesiredInstance],
        subnet: &Ref,
        groups: &BTreeMap<String, Ref>,
    ) {
        let f = self.facts;
        for d in wanted {
            let group_refs: Vec<Ref> = d.groups.iter().map(|g| groups[g].clone()).collect();
            self.extra_instances(d);
            let Some(have) = f.instance(&d.host) else {
                self.create_instance(d, subnet, &group_refs);
                continue;
            };
            let forced = replacing_attrs(have, d);
            if forced.is_empty() {
                self.update_instance(d, have, &group_refs);
            } else {
                self.replace_instance(d, have, forced, subnet, &group_refs);
            }
        }
        self.destroy_instances(wanted);
    }

    /// The `RunInstance` of `d`; `generation` makes the launch token of a replacement new.
    fn run_instance(
        &self,
        d: &DesiredInstance,
        subnet: &Ref,
        group_refs: &[Ref],
        generation: usize,
    ) -> CloudOp {
        CloudOp::RunInstance {
            host: d.host.clone(),
            ami: d.ami.clone(),
            instance_type: d.instance_type.clone(),
            subnet: subnet.clone(),
            private_ip: d.private_ip.clone(),
            key_name: d.key_name.clone(),
            groups: group_refs.to_vec(),
            tags: self.tags(&d.host, &[(TAG_HOST, &d.host), (TAG_ROLES, &d.roles)]),
            client_token: client_token(&self.env, &d.host, &d.ami, generation),
        }
    }

    /// Extra instances of one host (a launch that was retried by hand, say) go.
    fn extra_instances(&mut self, d: &DesiredInstance) {
        let f = self.facts;
        for extra in f
            .instances
            .iter()
            .filter(|i| i.host == d.host)
            .filter(|i| f.instance(&d.host).is_some_and(|first| first.id != i.id))
        {
            self.push(
                format!("aws_instance.{}[{}]", d.host, extra.id),
                CloudAction::Delete,
                vec![removed("id", q(&extra.id))],
                vec![CloudOp::TerminateInstance {
                    id: extra.id.clone(),
                }],
            );
        }
    }

    /// A host with no instance: launched.
    fn create_instance(&mut self, d: &DesiredInstance, subnet: &Ref, group_refs: &[Ref]) {
        self.new_instances.insert(d.host.clone());
        let run = self.run_instance(d, subnet, group_refs, 0);
        self.push(
            format!("aws_instance.{}", d.host),
            CloudAction::Create,
            launch_attrs(d),
            vec![run],
        );
    }

    /// A host whose instance has another AMI or private IP: terminated and launched again.
    fn replace_instance(
        &mut self,
        d: &DesiredInstance,
        have: &InstanceFact,
        mut attrs: Vec<Attr>,
        subnet: &Ref,
        group_refs: &[Ref],
    ) {
        self.new_instances.insert(d.host.clone());
        attrs.push(changed("id", q(&have.id), KNOWN_AFTER_APPLY.into()));
        // A new launch after a replace needs a token of its own.
        let generation = self.facts.instances.len() + 1;
        let run = self.run_instance(d, subnet, group_refs, generation);
        self.push(
            format!("aws_instance.{}", d.host),
            CloudAction::Replace,
            attrs,
            vec![
                CloudOp::TerminateInstance {
                    id: have.id.clone(),
                },
                run,
            ],
        );
    }

    /// A host whose instance stays: its type, state, groups and roles tag brought in line.
    fn update_instance(&mut self, d: &DesiredInstance, have: &InstanceFact, group_refs: &[Ref]) {
        let mut attrs = Vec::new();
        let mut ops = Vec::new();
        if have.instance_type != d.instance_type {
            attrs.push(changed(
                "instance_type",
                q(&have.instance_type),
                q(&d.instance_type),
            ));
            ops.push(CloudOp::ChangeInstanceType {
                id: have.id.clone(),
                instance_type: d.instance_type.clone(),
            });
        } else if have.state == "stopped" || have.state == "stopping" {
            attrs.push(changed("state", q(&have.state), q("running")));
            ops.push(CloudOp::StartInstance {
                id: have.id.clone(),
            });
        }
        let have_groups = self.found_group_names(have);
        let mut want_groups = d.groups.clone();
        want_groups.sort();
        if have_groups != want_groups {
            attrs.push(changed(
                "security_groups",
                list(&have_groups),
                list(&want_groups),
            ));
            ops.push(CloudOp::SetInstanceGroups {
                id: have.id.clone(),
                groups: group_refs.to_vec(),
            });
        }
        if have.roles != d.roles {
            attrs.push(changed("tags.infra:roles", q(&have.roles), q(&d.roles)));
            ops.push(CloudOp::SetTags {
                id: have.id.clone(),
                tags: [(TAG_ROLES.to_string(), d.roles.clone())].into(),
            });
        }
        if !ops.is_empty() {
            self.push(
                format!("aws_instance.{}", d.host),
                CloudAction::Update,
                attrs,
                ops,
            );
        }
    }

    /// The names of a found instance's security groups (the id of one not found), sorted.
    fn found_group_names(&self, have: &InstanceFact) -> Vec<String> {
        let group_names: BTreeMap<&str, &str> = self
            .facts
            .security_groups
            .iter()
            .map(|g| (g.id.as_str(), g.name.as_str()))
            .collect();
        let mut names: Vec<String> = have
            .security_groups
            .iter()
            .map(|id| {
                group_names
                    .get(id.as_str())
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| id.clone())
            })
            .collect();
        names.sort();
        names
    }

    /// Instances of hosts that are not wanted (any more): terminated.
    fn destroy_instances(&mut self, wanted: &[DesiredInstance]) {
        let f = self.facts;
        let wanted_hosts: BTreeSet<&str> = wanted.iter().map(|d| d.host.as_str()).collect();
        for i in f
            .instances
            .iter()
            .filter(|i| !wanted_hosts.contains(i.host.as_str()))
        {
            let extra = f.instance(&i.host).is_some_and(|first| first.id != i.id);
            let address = if extra {
                format!("aws_instance.{}[{}]", i.host, i.id)
            } else {
                format!("aws_instance.{}", i.host)
            };
            self.push(
                address,
                CloudAction::Delete,
                vec![
                    removed("id", q(&i.id)),
                    removed("instance_type", q(&i.instance_type)),
                    removed("private_ip", q(i.private_ip.as_deref().unwrap_or(""))),
                ],
                vec![CloudOp::TerminateInstance { id: i.id.clone() }],
            );
        }
    }

    /// The instance `host` will have after this apply.
    fn instance_ref(&self, host: &str) -> Ref {
        match self.facts.instance(host) {
            Some(i) if !self.new_instances.contains(host) => Ref::Id(i.id.clone()),
            _ => Ref::New(format!("aws_instance.{host}")),
        }
    }

    /// Each wanted volume created or attached to its host; volumes no role wants deleted or kept.
    fn volumes(&mut self, env: &Environment, wanted: &[DesiredInstance], subnet: &Ref) {
        let mut wanted_keys = BTreeSet::new();
        for d in wanted {
            for v in &d.volumes {
                wanted_keys.insert((d.host.clone(), v.role.clone()));
                self.volume(d, v, subnet);
            }
        }
        let f = self.facts;
        for v in &f.volumes {
            if !wanted_keys.contains(&(v.host.clone(), v.role.clone())) {
                self.unwanted_volume(env, v);
            }
        }
    }

    /// One wanted volume: created and attached, or attached to its host if it is elsewhere.
    fn volume(&mut self, d: &DesiredInstance, v: &DesiredVolume, subnet: &Ref) {
        let f = self.facts;
        let instance = self.instance_ref(&d.host);
        match f
            .volumes
            .iter()
            .find(|x| x.host == d.host && x.role == v.role)
        {
            None => self.create_volume(d, v, subnet, instance),
            Some(have) => self.attach_volume(d, v, have, instance),
        }
    }

    /// A volume that does not exist: created and attached to `instance`.
    fn create_volume(
        &mut self,
        d: &DesiredInstance,
        v: &DesiredVolume,
        subnet: &Ref,
        instance: Ref,
    ) {
        let address = format!("aws_ebs_volume.{}-{}", d.host, v.role);
        let attach = CloudOp::AttachVolume {
            volume: Ref::New(address.clone()),
            instance: instance.clone(),
            device: v.device.clone(),
        };
        self.push(
            address,
            CloudAction::Create,
            vec![
                added("size", format!("{}", v.size_gb)),
                added("device_name", q(&v.device)),
                added("instance_id", instance.to_string()),
                added("keep_on_destroy", v.keep.to_string()),
            ],
            vec![
                CloudOp::CreateVolume {
                    host: d.host.clone(),
                    role: v.role.clone(),
                    size_gb: v.size_gb,
                    subnet: subnet.clone(),
                    keep: v.keep,
                },
                attach,
            ],
        );
    }

    /// A found volume not attached to `instance`: detached from where it is, attached there.
    fn attach_volume(
        &mut self,
        d: &DesiredInstance,
        v: &DesiredVolume,
        have: &VolumeFact,
        instance: Ref,
    ) {
        let attached_here = match (&instance, &have.attached_to) {
            (Ref::Id(id), Some(at)) => id == at,
            _ => false,
        };
        if attached_here {
            return;
        }
        let mut ops = Vec::new();
        if let Some(at) = &have.attached_to {
            // Attached to an instance that is not this host's: free it first,
            // unless that instance is terminated by this plan anyway.
            let terminated = self
                .changes
                .iter()
                .flat_map(|c| &c.ops)
                .any(|o| matches!(&o.op, CloudOp::TerminateInstance { id } if id == at));
            if !terminated {
                ops.push(CloudOp::DetachVolume {
                    id: have.id.clone(),
                    instance: at.clone(),
                });
            }
        }
        ops.push(CloudOp::AttachVolume {
            volume: Ref::Id(have.id.clone()),
            instance: instance.clone(),
            device: v.device.clone(),
        });
        self.push(
            format!("aws_ebs_volume.{}-{}", d.host, v.role),
            CloudAction::Update,
            vec![changed(
                "instance_id",
                q(have.attached_to.as_deref().unwrap_or("")),
                instance.to_string(),
            )],
            ops,
        );
    }

    /// A found volume no wanted host's role asks for: deleted, unless it is to be kept.
    fn unwanted_volume(&mut self, env: &Environment, v: &VolumeFact) {
        let address = format!("aws_ebs_volume.{}-{}", v.host, v.role);
        // The role says whether its volume may go; the tag written at creation says it
        // when the role is gone from the site.
        let keep = env
            .site
            .roles
            .get(&v.role)
            .and_then(|r| r.value.volume.as_ref())
            .map_or(v.keep, |vol| vol.keep_on_destroy);
        if keep {
            self.kept.push(format!(
                "{address} ({}, {} GB): keep_on_destroy; delete it by hand when it is no longer needed",
                v.id, v.size_gb
            ));
            return;
        }
        let mut ops = Vec::new();
        if let Some(at) = &v.attached_to {
            ops.push(CloudOp::DetachVolume {
                id: v.id.clone(),
                instance: at.clone(),
            });
        }
        ops.push(CloudOp::DeleteVolume { id: v.id.clone() });
        self.push(
            address,
            CloudAction::Delete,
            vec![
                removed("id", q(&v.id)),
                removed("size", format!("{}", v.size_gb)),
            ],
            ops,
        );
    }

    fn addresses(&mut self, wanted: &[DesiredInstance]) {
        let f = self.facts;
        let mut wanted_hosts = BTreeSet::new();
        for d in wanted.iter().filter(|d| d.public_ip) {
            wanted_hosts.insert(d.host.clone());
            let address = format!("aws_eip.{}", d.host);
            let instance = self.instance_ref(&d.host);
            match f.address(&d.host) {
                None => {
                    let mut attrs = vec![
                        added("public_ip", KNOWN_AFTER_APPLY.into()),
                        added("instance", instance.to_string()),
                    ];
                    let eip = Ref::New(address.clone());
                    let mut ops = vec![
                        CloudOp::AllocateAddress {
                            host: d.host.clone(),
                        },
                        CloudOp::AssociateAddress {
                            address: eip.clone(),
                            instance,
                        },
                    ];
                    if let Some(name) = &d.reverse_dns {
                        attrs.push(added("reverse_dns", q(name)));
                        ops.push(CloudOp::SetReverseDns {
                            address: eip,
                            name: name.clone(),
                        });
                    }
                    self.push(address, CloudAction::Create, attrs, ops);
                }
                Some(have) => {
                    let mut attrs = Vec::new();
                    let mut ops = Vec::new();
                    let eip = Ref::Id(have.allocation_id.clone());
                    let associated =
                        matches!((&instance, &have.instance), (Ref::Id(a), Some(b)) if a == b);
                    if !associated {
                        attrs.push(changed(
                            "instance",
                            q(have.instance.as_deref().unwrap_or("")),
                            instance.to_string(),
                        ));
                        ops.push(CloudOp::AssociateAddress {
                            address: eip.clone(),
                            instance,
                        });
                    }
                    if let Some(name) = &d.reverse_dns {
                        let have_name =
                            have.reverse_dns.as_deref().map(|n| n.trim_end_matches('.'));
                        if have_name != Some(name.as_str()) {
                            attrs.push(changed("reverse_dns", q(have_name.unwrap_or("")), q(name)));
                            ops.push(CloudOp::SetReverseDns {
                                address: eip,
                                name: name.clone(),
                            });
                        }
                    }
                    if !ops.is_empty() {
                        self.push(address, CloudAction::Update, attrs, ops);
                    }
                }
            }
        }
        for a in f
            .addresses
            .iter()
            .filter(|a| !wanted_hosts.contains(&a.host))
        {
            self.push(
                format!("aws_eip.{}", a.host),
                CloudAction::Delete,
                vec![
                    removed("public_ip", q(&a.public_ip)),
                    removed("allocation_id", q(&a.allocation_id)),
                ],
                vec![CloudOp::ReleaseAddress {
                    allocation_id: a.allocation_id.clone(),
                    association_id: a.association_id.clone(),
                }],
            );
        }
    }

    fn network_teardown(&mut self, mode: Mode) {
        if mode != Mode::Destroy {
            return;
        }
        let f = self.facts;
        if let Some(s) = f.subnet.as_ref().filter(|s| s.owned) {
            self.push(
                "aws_subnet.main".into(),
                CloudAction::Delete,
                vec![removed("cidr_block", q(&s.cidr))],
                vec![CloudOp::DeleteSubnet { id: s.id.clone() }],
            );
        }
        if let Some(v) = f.vpc.as_ref().filter(|v| v.owned) {
            self.push(
                "aws_vpc.main".into(),
                CloudAction::Delete,
                vec![removed("cidr_block", q(&v.cidr))],
                vec![CloudOp::DeleteVpc {
                    id: v.id.clone(),
                    internet_gateway: v.internet_gateway.clone(),
                }],
            );
        }
    }
}

/// Wanted ingress rules of one group: (port, the world or a role).
type Rules = BTreeSet<(Port, RuleSource)>;

/// Role -> wanted rules, for held roles with ports or exposes or named in an `exposes.to`.
/// The roles some host of the environment holds (with includes).
fn held_roles<'e>(env: &'e Environment) -> BTreeSet<&'e str> {
    env.hosts
        .values()
        .flat_map(|h| h.view.all_roles.iter().map(String::as_str))
        .collect()
}

/// The roles that get a security group, the one rule both the groups and the instances use:
/// a role some host holds that opens a port, exposes one, or is named in the `exposes` of a
/// held role.
fn roles_with_groups<'e>(env: &'e Environment, held: &BTreeSet<&'e str>) -> BTreeSet<&'e str> {
    let site = env.site;
    let named: BTreeSet<&str> = held
        .iter()
        .filter_map(|r| site.roles.get(*r))
        .flat_map(|r| r.value.exposes.iter())
        .flat_map(|e| e.to.iter().map(|t| t.value.as_str()))
        .collect();
    held.iter()
        .copied()
        .filter(|role| {
            site.roles.get(*role).is_some_and(|l| {
                !l.value.ports.is_empty()
                    || !l.value.exposes.is_empty()
                    || l.value.load_balancer.is_some()
                    || named.contains(role)
            })
        })
        .collect()
}

fn wanted_rules(env: &Environment) -> BTreeMap<String, Rules> {
    let site = env.site;
    let held = held_roles(env);
    let mut wanted: BTreeMap<String, Rules> = BTreeMap::new();
    for role in roles_with_groups(env, &held) {
        let Some(r) = site.roles.get(role).map(|l| &l.value) else {
            continue;
        };
        let rules = wanted.entry(role.to_string()).or_default();
        for port in &r.ports {
            rules.insert((*port, RuleSource::World));
        }
        for e in &r.exposes {
            for to in &e.to {
                if held.contains(to.value.as_str()) {
                    rules.insert((e.port, RuleSource::Role(to.value.clone())));
                }
            }
        }
        // Behind a load balancer: the role's port from the load balancer's group only, and
        // the listeners from the world.
        if let Some(balancer) = &r.load_balancer {
            let key = lb::group_key(role);
            let tcp = |number| Port {
                number,
                proto: infra_protocol::Proto::Tcp,
            };
            rules.insert((
                tcp(balancer.value.port.value),
                RuleSource::Role(key.clone()),
            ));
            let lb_rules = wanted.entry(key).or_default();
            for number in lb::listener_ports(&balancer.value) {
                lb_rules.insert((tcp(number), RuleSource::World));
            }
        }
    }
    wanted
}

/// The security groups the provider found, by role and by id.
struct FoundGroups<'f> {
    by_role: BTreeMap<&'f str, &'f GroupFact>,
    id_to_role: BTreeMap<&'f str, &'f str>,
}

impl<'f> FoundGroups<'f> {
    /// Indexes `groups` (a later group of the same role or id wins).
    fn new(groups: &'f [GroupFact]) -> Self {
        FoundGroups {
            by_role: groups.iter().map(|g| (g.role.as_str(), g)).collect(),
            id_to_role: groups
                .iter()
                .map(|g| (g.id.as_str(), g.role.as_str()))
                .collect(),
        }
    }
}

/// The attribute lines of a launch.
fn launch_attrs(d: &DesiredInstance) -> Vec<Attr> {
    vec![
        added("ami", q(&d.ami)),
        added("instance_type", q(&d.instance_type)),
        added(
            "private_ip",
            d.private_ip
                .as_deref()
                .map_or_else(|| KNOWN_AFTER_APPLY.to_string(), q),
        ),
        added("security_groups", list(&d.groups)),
        added("tags.infra:roles", q(&d.roles)),
    ]
}

/// The changes (AMI, private IP) that force `have` to be replaced; empty when it can stay.
fn replacing_attrs(have: &InstanceFact, d: &DesiredInstance) -> Vec<Attr> {
    let mut attrs = Vec::new();
    if have.ami != d.ami {
        let mut a = changed("ami", q(&have.ami), q(&d.ami));
        a.forces_replacement = true;
        attrs.push(a);
    }
    let ip_moves = d
        .private_ip
        .as_ref()
        .is_some_and(|ip| have.private_ip.as_ref() != Some(ip));
    if ip_moves {
        let mut a = changed(
            "private_ip",
            q(have.private_ip.as_deref().unwrap_or("")),
            q(d.private_ip.as_deref().unwrap_or("")),
        );
        a.forces_replacement = true;
        attrs.push(a);
    }
    attrs
}

/// A VPC or subnet that exists: the one named by `<key>_id`, or the environment's own (whose
/// CIDR cannot move). `None` when it is to be created.
fn existing(
    what: &str,
    key: &str,
    id: &Option<String>,
    cidr: &Option<String>,
    found: Option<(&str, &str)>,
) -> Result<Option<Ref>, String> {
    match (id, found) {
        (Some(id), Some((fid, _))) if fid == id => Ok(Some(Ref::Id(id.clone()))),
        (Some(id), _) => Err(format!(
            "provider.{key}_id {id} was not found: check the id and the region, or remove {key}_id and set {key}_cidr to let infra create the {what}"
        )),
        (None, Some((fid, fcidr))) => match cidr {
            Some(c) if c != fcidr => Err(format!(
                "the environment's {what} {fid} has CIDR {fcidr}, the inventory says {key}_cidr {c}: a {what}'s CIDR cannot change; put back {fcidr} or destroy the environment first"
            )),
            _ => Ok(Some(Ref::Id(fid.to_string()))),
        },
        (None, None) => Ok(None),
    }
}

/// Where a rule lets traffic in from, as the plan compares wanted rules with found ones.
/// Wanted rules are from the world or a role; a found rule may also name a CIDR, or a group that
/// is no role's of this environment (such rules are revoked).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RuleSource {
    World,
    /// The security group of this role.
    Role(String),
    Cidr(String),
    /// A security group by id.
    Group(String),
}

impl RuleSource {
    /// A found rule's source: `0.0.0.0/0` is the world, a group of a role is that role.
    fn found(rule: &RuleFact, id_to_role: &BTreeMap<&str, &str>) -> RuleSource {
        match &rule.source {
            SourceFact::Cidr(c) if c == "0.0.0.0/0" => RuleSource::World,
            SourceFact::Cidr(c) => RuleSource::Cidr(c.clone()),
            SourceFact::Group(id) => match id_to_role.get(id.as_str()) {
                Some(role) => RuleSource::Role(role.to_string()),
                None => RuleSource::Group(id.clone()),
            },
        }
    }

    /// As the plan shows it: `from <label>`.
    fn label(&self, env: &str) -> String {
        match self {
            RuleSource::World => "0.0.0.0/0".into(),
            RuleSource::Role(role) => group_name(env, role),
            RuleSource::Cidr(s) | RuleSource::Group(s) => s.clone(),
        }
    }
}
