//! Application load balancers of roles (`load_balancer:`): the ALB, its security group (its
//! rules come from `wanted_rules`), the target group with its health check, the role's
//! instances registered in it, the listeners on 80 and 443, the second subnet an ALB needs in
//! another availability zone, and the alias record of the hostname (handed to `records`);
//! planned against what the provider found by the `infra:env` and `infra:role` tags.

use super::records::{in_zone, normal};
use super::{added, changed, group_name, q, removed, CloudAction, Planner};
use crate::diagnostic::{Diagnostic, SourceLocation};
use crate::environment::{hostname_error, render_hostname, Environment, ResolvedHost};
use crate::model::{LbHealth, LoadBalancer, Sp};
use crate::render::{lb_fields, Renderer, SharedContext};
use infra_protocol::{
    AliasTarget, CloudOp, HealthCheck, ListenerAction, ListenerFact, LoadBalancerFact, Ref,
    SubnetFact, TargetGroupFact,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The key of a role's load balancer group among the roles' groups: its address is
/// `aws_security_group.<role>_lb`, its name `<env>-<role>-lb`.
pub const GROUP_SUFFIX: &str = "_lb";

/// The group key of `role`'s load balancer.
pub fn group_key(role: &str) -> String {
    format!("{role}{GROUP_SUFFIX}")
}

/// The listener ports a load balancer may have.
pub const LISTENER_PORTS: [u16; 2] = [80, 443];

/// AWS's defaults for an HTTP target group's health check.
pub fn default_health() -> HealthCheck {
    HealthCheck {
        path: "/".into(),
        matcher: "200".into(),
        interval: 30,
        healthy: 5,
        unhealthy: 2,
    }
}

/// A name AWS accepts for a load balancer or a target group: at most 32 of `[A-Za-z0-9-]`, no
/// leading, trailing or double hyphen. A name that had to change or is too long keeps a
/// prefix and 8 hex digits of the sha256 of the wanted name (the same every time).
pub fn aws_name(wanted: &str) -> String {
    let mut clean = String::new();
    for c in wanted.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (clean.is_empty() || clean.ends_with('-')) {
            continue;
        }
        clean.push(c);
    }
    let clean = clean.trim_end_matches('-');
    if clean == wanted && clean.len() <= 32 && !clean.starts_with("internal-") {
        return clean.to_string();
    }
    let digest = crate::state::hex(&Sha256::digest(wanted.as_bytes()));
    let prefix: String = clean.chars().take(23).collect();
    let prefix = prefix.trim_end_matches('-');
    let prefix = if prefix.is_empty() || prefix.starts_with("internal") {
        "lb"
    } else {
        prefix
    };
    format!("{prefix}-{}", &digest[..8])
}

pub fn lb_address(role: &str) -> String {
    format!("aws_lb.{role}")
}

pub fn tg_address(role: &str) -> String {
    format!("aws_lb_target_group.{role}")
}

/// A role's load balancer as wanted.
#[derive(Debug, Clone)]
pub(crate) struct DesiredLb {
    pub role: String,
    pub port: u16,
    /// Sorted.
    pub listeners: Vec<u16>,
    pub certificate: Option<String>,
    pub redirect_http: bool,
    pub health: HealthCheck,
    /// The alias record's name (lowercase, no trailing dot), if any.
    pub hostname: Option<String>,
    /// The hosts holding the role, sorted.
    pub hosts: Vec<String>,
    pub at: SourceLocation,
}

/// The alias record a load balancer wants in the public zone.
#[derive(Debug, Clone)]
pub(crate) struct LbAlias {
    pub name: String,
    pub target: AliasTarget,
    pub role: String,
    pub at: SourceLocation,
}

/// The health check of `h` with AWS's defaults where left out.
pub fn health_of(h: Option<&LbHealth>) -> HealthCheck {
    let d = default_health();
    let Some(h) = h else {
        return d;
    };
    HealthCheck {
        path: h.path.as_ref().map_or(d.path, |p| p.value.clone()),
        matcher: h.matcher.as_ref().map_or(d.matcher, |m| m.value.clone()),
        interval: h.interval.as_ref().map_or(d.interval, |v| v.value),
        healthy: h.healthy.as_ref().map_or(d.healthy, |v| v.value),
        unhealthy: h.unhealthy.as_ref().map_or(d.unhealthy, |v| v.value),
    }
}

/// The listener ports of `lb`, sorted: `[80]` when none are given.
pub fn listener_ports(lb: &LoadBalancer) -> Vec<u16> {
    let mut ports: Vec<u16> = lb.listeners.iter().map(|p| p.value).collect();
    if ports.is_empty() {
        ports.push(80);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Every role's load balancer whose role some host holds (a role with `load_balancer:` and no
/// host plans nothing), its Tera strings rendered with the first host of the role.
pub(crate) fn desired(
    env: &Environment,
    renderer: &Renderer,
) -> Result<Vec<DesiredLb>, Box<Diagnostic>> {
    let site = env.site;
    let shared = SharedContext::new(env);
    let public = normal(&env.inventory.domain);
    let mut out = Vec::new();
    for (name, role) in &site.roles {
        let Some(lb) = &role.value.load_balancer else {
            continue;
        };
        let hosts: Vec<&ResolvedHost> = env
            .hosts
            .values()
            .filter(|h| h.view.all_roles.contains(name))
            .collect();
        let Some(first) = hosts.first() else {
            continue;
        };
        let fields = lb_fields(&role.value);
        let rendered = renderer.render_role_fields(env, &shared, first, &role.file, &fields)?;
        let by: BTreeMap<&str, &str> = fields
            .iter()
            .map(|(f, _)| f.as_str())
            .zip(rendered.iter().map(String::as_str))
            .collect();
        let err = |sp: &Sp<String>, message: String, hint: &str| {
            Box::new(
                Diagnostic::error(format!("`load_balancer` of role `{name}`: {message}"))
                    .at(site.loc(&role.file, sp, sp.value.chars().count()))
                    .hint(hint.to_string()),
            )
        };
        let certificate = by.get("load_balancer.certificate").map(|c| c.trim());
        if let (Some(c), Some(sp)) = (certificate, &lb.value.certificate) {
            if !c.starts_with("arn:") || c.chars().any(|ch| ch.is_whitespace()) {
                return Err(err(
                    sp,
                    format!("the certificate {c:?} is not an ARN"),
                    "give the ACM certificate's ARN, e.g. `arn:aws:acm:us-east-1:123456789012:certificate/...`",
                ));
            }
        }
        let hostname = match (by.get("load_balancer.hostname"), &role.value.hostname) {
            (Some(h), _) => Some((normal(h), lb.value.hostname.as_ref())),
            (None, Some(h)) => match render_hostname(&h.value, &first.view.name, env.inventory) {
                Ok(n) => Some((normal(&n), Some(h))),
                Err(e) => return Err(Box::new(hostname_error(site, name, role, &e))),
            },
            (None, None) => None,
        };
        if let Some((h, sp)) = &hostname {
            if !in_zone(h, &public) {
                let message = format!("the hostname {h} is not in the public zone {public}");
                let hint = "the alias record goes in the environment's `domain`: give a name that ends with it";
                return Err(match sp {
                    Some(sp) => err(sp, message, hint),
                    None => Box::new(
                        Diagnostic::error(message)
                            .at(site.loc(&role.file, lb, 1))
                            .hint(hint),
                    ),
                });
            }
        }
        let listeners = listener_ports(&lb.value);
        out.push(DesiredLb {
            role: name.clone(),
            port: lb.value.port.value,
            redirect_http: lb.value.redirect_http.unwrap_or(true) && listeners.contains(&443),
            listeners,
            certificate: certificate.map(str::to_string),
            health: health_of(lb.value.health.as_ref().map(|h| &h.value)),
            hostname: hostname.map(|(h, _)| h),
            hosts: hosts.iter().map(|h| h.view.name.clone()).collect(),
            at: site.loc(&role.file, lb, 1),
        });
    }
    Ok(out)
}

/// Whether the ids found are exactly the wanted references (a reference to something made
/// in this apply is never among them).
fn same_ids(have: &[String], want: &[Ref]) -> bool {
    let want: Option<BTreeSet<&str>> = (want.iter())
        .map(|r| match r {
            Ref::Id(id) => Some(id.as_str()),
            Ref::New(_) => None,
        })
        .collect();
    want.is_some_and(|w| w == have.iter().map(String::as_str).collect())
}

/// `[a, b]`: ids or references as the plan shows a load balancer's subnets and groups.
fn list(items: impl IntoIterator<Item = impl std::fmt::Display>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(", "))
}

/// The alias records of `lbs`, each to a load balancer made in this apply.
pub(crate) fn new_aliases(lbs: &[DesiredLb]) -> Vec<LbAlias> {
    lbs.iter()
        .filter_map(|d| alias_of(d, AliasTarget::LoadBalancer(lb_address(&d.role))))
        .collect()
}

/// The alias record of `d`'s hostname, if it has one, to `target`.
fn alias_of(d: &DesiredLb, target: AliasTarget) -> Option<LbAlias> {
    Some(LbAlias {
        name: d.hostname.clone()?,
        target,
        role: d.role.clone(),
        at: d.at.clone(),
    })
}

/// What a listener on `port` of `d` is: its certificate (443) and its action.
fn wanted_listener(d: &DesiredLb, port: u16, tg: &Ref) -> (Option<String>, ListenerAction) {
    if port == 443 {
        (d.certificate.clone(), ListenerAction::Forward(tg.clone()))
    } else if d.redirect_http {
        (None, ListenerAction::RedirectHttps)
    } else {
        (None, ListenerAction::Forward(tg.clone()))
    }
}

fn show_action(a: &ListenerAction) -> String {
    match a {
        ListenerAction::Forward(tg) => format!("forward to {tg}"),
        ListenerAction::RedirectHttps => "redirect 301 to https".into(),
    }
}

fn show_found_action(l: &ListenerFact) -> String {
    match (&l.forward, l.redirect_https) {
        (_, true) => "redirect 301 to https".into(),
        (Some(tg), false) => format!("forward to {tg}"),
        (None, false) => "other".into(),
    }
}

fn same_action(l: &ListenerFact, a: &ListenerAction) -> bool {
    match a {
        ListenerAction::RedirectHttps => l.redirect_https,
        ListenerAction::Forward(Ref::Id(arn)) => {
            !l.redirect_https && l.forward.as_ref() == Some(arn)
        }
        ListenerAction::Forward(Ref::New(_)) => false,
    }
}

fn protocol(certificate: &Option<String>) -> &'static str {
    if certificate.is_some() {
        "HTTPS"
    } else {
        "HTTP"
    }
}

/// The attribute lines of a health check that differs from `have` (all of them when new).
fn health_attrs(have: Option<&HealthCheck>, want: &HealthCheck) -> Vec<super::Attr> {
    let fields = |h: &HealthCheck| {
        [
            ("health_check.path", q(&h.path)),
            ("health_check.matcher", q(&h.matcher)),
            ("health_check.interval", h.interval.to_string()),
            ("health_check.healthy_threshold", h.healthy.to_string()),
            ("health_check.unhealthy_threshold", h.unhealthy.to_string()),
        ]
    };
    let wanted = fields(want);
    match have {
        None => wanted.into_iter().map(|(n, v)| added(n, v)).collect(),
        Some(h) => fields(h)
            .into_iter()
            .zip(wanted)
            .filter(|((_, a), (_, b))| a != b)
            .map(|((n, a), (_, b))| changed(n, a, b))
            .collect(),
    }
}

impl<'f> Planner<'f> {
    /// The load balancers' second subnet: the one found or named, or one to create, when some
    /// role has a load balancer; the one infra created deleted when none has (and on destroy).
    pub(crate) fn lb_subnet(
        &mut self,
        env: &Environment,
        vpc: &Ref,
        wanted: bool,
    ) -> Result<Option<Ref>, String> {
        let prov = &env.inventory.provider.value;
        let f = self.facts;
        // The one infra made before `lb_subnet_id` named another: gone once the load
        // balancers have moved (deletions run last).
        if let Some(s) = f.stale_lb_subnet.as_ref().filter(|s| s.owned) {
            self.delete_lb_subnet(s);
        }
        if !wanted {
            if let Some(s) = f.lb_subnet.as_ref().filter(|s| s.owned) {
                self.delete_lb_subnet(s);
            }
            return Ok(None);
        }
        let found = f
            .lb_subnet
            .as_ref()
            .map(|s| (s.id.as_str(), s.cidr.as_str()));
        let main_az = f
            .subnet
            .as_ref()
            .map(|s| s.availability_zone.clone())
            .or_else(|| prov.availability_zone.clone());
        let same_zone = |az: &str| {
            format!(
                "the load balancers' subnet is in {az}, like the instances' subnet: AWS wants an application load balancer in two availability zones; set `lb_availability_zone` (or `lb_subnet_id`) to a subnet of another zone"
            )
        };
        if let Some(r) = super::existing(
            "subnet",
            "lb_subnet",
            &prov.lb_subnet_id,
            &prov.lb_subnet_cidr,
            found,
        )? {
            let az = f.lb_subnet.as_ref().map(|s| s.availability_zone.as_str());
            if az.is_some() && az == main_az.as_deref() {
                return Err(same_zone(az.unwrap_or_default()));
            }
            return Ok(Some(r));
        }
        let (Some(cidr), Some(az)) = (&prov.lb_subnet_cidr, &prov.lb_availability_zone) else {
            return Err("a role has a `load_balancer:` and AWS wants an application load balancer in subnets of two availability zones: add `lb_subnet_cidr: 10.10.2.0/24` (inside the VPC) and `lb_availability_zone:` (another zone than `availability_zone`) to provider, or name an existing subnet with `lb_subnet_id: subnet-...`".into());
        };
        if main_az.as_deref() == Some(az.as_str()) {
            return Err(same_zone(az));
        }
        self.push(
            "aws_subnet.lb".into(),
            CloudAction::Create,
            vec![
                added("cidr_block", q(cidr)),
                added("availability_zone", q(az)),
            ],
            vec![CloudOp::CreateLbSubnet {
                vpc: vpc.clone(),
                cidr: cidr.clone(),
                availability_zone: Some(az.clone()),
            }],
        );
        Ok(Some(Ref::New("aws_subnet.lb".into())))
    }

    fn delete_lb_subnet(&mut self, s: &SubnetFact) {
        self.push(
            "aws_subnet.lb".into(),
            CloudAction::Delete,
            vec![removed("cidr_block", q(&s.cidr))],
            vec![CloudOp::DeleteSubnet { id: s.id.clone() }],
        );
    }

    /// Each wanted load balancer with its target group, listeners and registrations; the
    /// load balancers and target groups of roles that no longer want one deleted. Returns the
    /// alias records the hostnames want.
    pub(crate) fn load_balancers(
        &mut self,
        lbs: &[DesiredLb],
        vpc: &Ref,
        subnets: &[Ref],
        groups: &BTreeMap<String, Ref>,
    ) -> Vec<LbAlias> {
        let f = self.facts;
        let mut aliases = Vec::new();
        for d in lbs {
            let lb = f.load_balancers.iter().find(|l| l.role == d.role);
            let lb_ref = match lb {
                Some(l) => {
                    self.move_lb(d, l, subnets, groups);
                    Ref::Id(l.arn.clone())
                }
                None => {
                    self.create_lb(d, subnets, groups);
                    Ref::New(lb_address(&d.role))
                }
            };
            let (tg, kept) = self.target_group(d, vpc);
            self.listeners(d, lb, &lb_ref, &tg);
            self.targets(d, kept, &tg);
            let target = match lb {
                Some(l) => AliasTarget::Name {
                    dns_name: l.dns_name.clone(),
                    zone_id: l.zone_id.clone(),
                },
                None => AliasTarget::LoadBalancer(lb_address(&d.role)),
            };
            aliases.extend(alias_of(d, target));
        }
        let wanted: BTreeSet<&str> = lbs.iter().map(|d| d.role.as_str()).collect();
        for l in f
            .load_balancers
            .iter()
            .filter(|l| !wanted.contains(l.role.as_str()))
        {
            self.gone_lb(l);
        }
        for t in f
            .target_groups
            .iter()
            .filter(|t| !wanted.contains(t.role.as_str()))
        {
            self.delete_tg(tg_address(&t.role), t);
        }
        aliases
    }

    /// The security group of `d`'s load balancer: found, or made in this apply.
    fn lb_group(&self, d: &DesiredLb, groups: &BTreeMap<String, Ref>) -> Ref {
        let group_name = group_name(&self.env, &group_key(&d.role));
        groups
            .get(&group_name)
            .cloned()
            .unwrap_or_else(|| Ref::New(format!("aws_security_group.{}", group_key(&d.role))))
    }

    /// An existing load balancer in other subnets or groups than wanted (the load balancers'
    /// subnet changed in the inventory, or a change by hand): moved back in place.
    fn move_lb(
        &mut self,
        d: &DesiredLb,
        l: &LoadBalancerFact,
        subnets: &[Ref],
        groups: &BTreeMap<String, Ref>,
    ) {
        let group = self.lb_group(d, groups);
        let mut attrs = Vec::new();
        let mut ops = Vec::new();
        if !same_ids(&l.subnets, subnets) {
            attrs.push(changed("subnets", list(&l.subnets), list(subnets)));
            ops.push(CloudOp::SetLbSubnets {
                arn: l.arn.clone(),
                subnets: subnets.to_vec(),
            });
        }
        let group = std::slice::from_ref(&group);
        if !same_ids(&l.security_groups, group) {
            attrs.push(changed(
                "security_groups",
                list(&l.security_groups),
                list(group),
            ));
            ops.push(CloudOp::SetLbGroups {
                arn: l.arn.clone(),
                groups: group.to_vec(),
            });
        }
        if !ops.is_empty() {
            self.push(lb_address(&d.role), CloudAction::Update, attrs, ops);
        }
    }

    fn create_lb(&mut self, d: &DesiredLb, subnets: &[Ref], groups: &BTreeMap<String, Ref>) {
        let name = aws_name(&format!("{}-{}", self.env, d.role));
        let group_name = group_name(&self.env, &group_key(&d.role));
        let group = self.lb_group(d, groups);
        self.push(
            lb_address(&d.role),
            CloudAction::Create,
            vec![
                added("name", q(&name)),
                added("load_balancer_type", q("application")),
                added("internal", "false".into()),
                added("security_groups", format!("[{}]", q(&group_name))),
                added("subnets", list(subnets)),
                added("dns_name", infra_protocol::KNOWN_AFTER_APPLY.into()),
            ],
            vec![CloudOp::CreateLoadBalancer {
                role: d.role.clone(),
                name,
                subnets: subnets.to_vec(),
                group,
            }],
        );
    }

    /// The role's target group: kept (its health check changed in place), created, or
    /// replaced when the port changed. Returns its reference and the kept one's facts.
    fn target_group(&mut self, d: &DesiredLb, vpc: &Ref) -> (Ref, Option<&'f TargetGroupFact>) {
        let f: &'f infra_protocol::CloudFacts = self.facts;
        let found: Vec<&TargetGroupFact> = f
            .target_groups
            .iter()
            .filter(|t| t.role == d.role)
            .collect();
        let address = tg_address(&d.role);
        let keep = found.iter().find(|t| t.port == d.port).copied();
        if let Some(t) = keep {
            for other in found.iter().filter(|o| o.arn != t.arn) {
                self.delete_tg(format!("{address}[{}]", other.name), other);
            }
            if t.health != d.health {
                self.push(
                    address,
                    CloudAction::Update,
                    health_attrs(Some(&t.health), &d.health),
                    vec![CloudOp::ModifyTargetGroup {
                        arn: t.arn.clone(),
                        health: d.health.clone(),
                    }],
                );
            }
            return (Ref::Id(t.arn.clone()), Some(t));
        }
        let name = aws_name(&format!("{}-{}-{}", self.env, d.role, d.port));
        let mut attrs = vec![added("name", q(&name))];
        let mut ops = vec![CloudOp::CreateTargetGroup {
            role: d.role.clone(),
            name,
            vpc: vpc.clone(),
            port: d.port,
            health: d.health.clone(),
        }];
        let action = match found.first() {
            None => {
                attrs.push(added("port", d.port.to_string()));
                CloudAction::Create
            }
            Some(old) => {
                let mut a = changed("port", old.port.to_string(), d.port.to_string());
                a.forces_replacement = true;
                attrs.push(a);
                CloudAction::Replace
            }
        };
        attrs.push(added("protocol", q("HTTP")));
        attrs.extend(health_attrs(None, &d.health));
        for old in &found {
            ops.push(CloudOp::DeleteTargetGroup {
                arn: old.arn.clone(),
            });
        }
        self.push(address.clone(), action, attrs, ops);
        (Ref::New(address), None)
    }

    /// The listeners of `d`: created, changed in place (certificate, action), or deleted.
    fn listeners(&mut self, d: &DesiredLb, lb: Option<&LoadBalancerFact>, lb_ref: &Ref, tg: &Ref) {
        let found = lb.map(|l| l.listeners.as_slice()).unwrap_or_default();
        for &port in &d.listeners {
            let (certificate, action) = wanted_listener(d, port, tg);
            let address = format!("aws_lb_listener.{}_{port}", d.role);
            let Some(l) = found.iter().find(|l| l.port == port) else {
                let mut attrs = vec![
                    added("port", port.to_string()),
                    added("protocol", q(protocol(&certificate))),
                ];
                if let Some(c) = &certificate {
                    attrs.push(added("certificate_arn", q(c)));
                }
                attrs.push(added("default_action", show_action(&action)));
                self.push(
                    address,
                    CloudAction::Create,
                    attrs,
                    vec![CloudOp::CreateListener {
                        load_balancer: lb_ref.clone(),
                        port,
                        certificate,
                        action,
                    }],
                );
                continue;
            };
            let mut attrs = Vec::new();
            if l.protocol != protocol(&certificate) {
                attrs.push(changed(
                    "protocol",
                    q(&l.protocol),
                    q(protocol(&certificate)),
                ));
            }
            if l.certificate != certificate {
                let show = |c: &Option<String>| c.as_deref().map_or_else(|| "null".into(), q);
                attrs.push(changed(
                    "certificate_arn",
                    show(&l.certificate),
                    show(&certificate),
                ));
            }
            if !same_action(l, &action) {
                attrs.push(changed(
                    "default_action",
                    show_found_action(l),
                    show_action(&action),
                ));
            }
            if !attrs.is_empty() {
                self.push(
                    address,
                    CloudAction::Update,
                    attrs,
                    vec![CloudOp::ModifyListener {
                        arn: l.arn.clone(),
                        port,
                        certificate,
                        action,
                    }],
                );
            }
        }
        for l in found.iter().filter(|l| !d.listeners.contains(&l.port)) {
            self.delete_listener(&d.role, l);
        }
    }

    /// Each host of the role registered (a new instance once it runs); instances registered
    /// that are no host's of the role any more deregistered.
    fn targets(&mut self, d: &DesiredLb, kept: Option<&TargetGroupFact>, tg: &Ref) {
        let have: BTreeSet<&str> = kept
            .map(|t| t.targets.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let mut wanted_ids = BTreeSet::new();
        for host in &d.hosts {
            let instance = self.instance_ref(host);
            if let Ref::Id(id) = &instance {
                wanted_ids.insert(id.clone());
                if have.contains(id.as_str()) {
                    continue;
                }
            }
            self.push(
                format!("aws_lb_target_group_attachment.{}_{host}", d.role),
                CloudAction::Create,
                vec![
                    added("target_group_arn", tg.to_string()),
                    added("target_id", instance.to_string()),
                    added("port", d.port.to_string()),
                ],
                vec![CloudOp::RegisterTarget {
                    target_group: tg.clone(),
                    instance,
                    port: d.port,
                }],
            );
        }
        let Some(t) = kept else {
            return;
        };
        for id in t.targets.iter().filter(|id| !wanted_ids.contains(*id)) {
            let host = self
                .facts
                .instances
                .iter()
                .find(|i| &i.id == id)
                .map(|i| i.host.clone());
            let address = match &host {
                Some(h) if !d.hosts.contains(h) => {
                    format!("aws_lb_target_group_attachment.{}_{h}", d.role)
                }
                _ => format!("aws_lb_target_group_attachment.{}[{id}]", d.role),
            };
            self.push(
                address,
                CloudAction::Delete,
                vec![removed("target_id", q(id))],
                vec![CloudOp::DeregisterTarget {
                    target_group: t.arn.clone(),
                    instance: id.clone(),
                }],
            );
        }
    }

    fn delete_listener(&mut self, role: &str, l: &ListenerFact) {
        self.push(
            format!("aws_lb_listener.{role}_{}", l.port),
            CloudAction::Delete,
            vec![
                removed("port", l.port.to_string()),
                removed("protocol", q(&l.protocol)),
            ],
            vec![CloudOp::DeleteListener { arn: l.arn.clone() }],
        );
    }

    /// A load balancer no role wants: its listeners, then itself.
    fn gone_lb(&mut self, l: &LoadBalancerFact) {
        for listener in &l.listeners {
            self.delete_listener(&l.role, listener);
        }
        self.push(
            lb_address(&l.role),
            CloudAction::Delete,
            vec![
                removed("name", q(&l.name)),
                removed("dns_name", q(&l.dns_name)),
            ],
            vec![CloudOp::DeleteLoadBalancer { arn: l.arn.clone() }],
        );
    }

    fn delete_tg(&mut self, address: String, t: &TargetGroupFact) {
        self.push(
            address,
            CloudAction::Delete,
            vec![
                removed("name", q(&t.name)),
                removed("port", t.port.to_string()),
            ],
            vec![CloudOp::DeleteTargetGroup { arn: t.arn.clone() }],
        );
    }
}
