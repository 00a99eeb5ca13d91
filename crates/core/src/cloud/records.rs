//! Route53 record sets: what the environment wants in its two zones (every host's internal
//! name, the roles' hostnames at their Elastic IPs, the roles' `dns:` entries), merged per name
//! and type, and the plan of each zone against what exists. In the public zone infra changes
//! only the record sets its ownership registry (`_infra-owner.<type>.<name>` TXT) gives to the
//! environment; the internal zone is wholly the environment's.

use super::lb::LbAlias;
use super::{added, changed, q, removed, CloudAction, CloudChange, DesiredInstance, Mode};
use super::{record_phase, Planner};
use crate::diagnostic::{Diagnostic, SourceLocation};
use crate::environment::Environment;
use crate::render::{dns_fields, Renderer, SharedContext};
use crate::secrets::Secrets;
use infra_protocol::{
    AliasTarget, CloudOp, Op, RecordAction, RecordChange, RecordFact, RecordType, RecordValue, Ref,
    ZoneFact, KNOWN_AFTER_APPLY, OWNER_PREFIX, RECORD_TTL,
};
use std::collections::{BTreeMap, BTreeSet};

/// A record set as wanted: TTL and values (or an alias), and who wants it.
#[derive(Debug, Clone)]
pub(crate) struct RecordSet {
    pub ttl: i64,
    pub values: BTreeSet<RecordValue>,
    pub alias: Option<AliasTarget>,
    /// The first host that set the TTL, and where (for the message when another differs).
    origin: Origin,
}

#[derive(Debug, Clone)]
struct Origin {
    host: String,
    role: String,
    at: Option<SourceLocation>,
}

/// Record sets by (name, type).
pub(crate) type Wanted = BTreeMap<(String, RecordType), RecordSet>;

/// One `dns:` entry rendered for one host.
#[derive(Debug, Clone)]
pub(crate) struct RoleRecord {
    name: String,
    record_type: RecordType,
    ttl: Option<i64>,
    values: Vec<RecordValue>,
    origin: Origin,
}

/// The roles' `dns:` entries rendered for their hosts, and the secrets they needed that are
/// not set (a placeholder was planned).
#[derive(Debug, Default)]
pub(crate) struct RoleRecords {
    pub records: Vec<RoleRecord>,
    pub missing_secrets: BTreeSet<String>,
}

/// The registry record of the set (`name`, `t`).
pub fn owner_name(name: &str, t: RecordType) -> String {
    format!("{OWNER_PREFIX}.{}.{name}", t.as_str().to_lowercase())
}

/// The registry record's value, as Route53 stores it.
pub fn owner_value(env: &str) -> String {
    txt(&format!("infra env={env}"))
}

/// A TXT value as Route53 stores it: quoted, `"` and `\` escaped, split into strings of at most
/// 255 characters.
pub fn txt(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let parts: Vec<String> = chars
        .chunks(255)
        .map(|c| {
            let s: String = c.iter().collect();
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    if parts.is_empty() {
        "\"\"".into()
    } else {
        parts.join(" ")
    }
}

/// A record name as compared: lowercase, without the trailing dot.
pub(crate) fn normal(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

pub(crate) fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// Every role's `dns:` entries rendered for each host holding the role.
pub(crate) fn role_records(
    env: &Environment,
    renderer: &Renderer,
    secrets: &Secrets,
) -> Result<RoleRecords, Box<Diagnostic>> {
    let site = env.site;
    let shared = SharedContext::new(env);
    let mut out = RoleRecords::default();
    for host in env.hosts.values() {
        for role_name in &host.view.all_roles {
            let Some(role) = site.roles.get(role_name) else {
                continue;
            };
            if role.value.dns.is_empty() {
                continue;
            }
            let fields = dns_fields(&role.value);
            let rendered = renderer.render_role_fields(env, &shared, host, &role.file, &fields)?;
            let by_field: BTreeMap<&str, &str> = fields
                .iter()
                .map(|(f, _)| f.as_str())
                .zip(rendered.iter().map(String::as_str))
                .collect();
            for (i, entry) in role.value.dns.iter().enumerate() {
                let e = &entry.value;
                let origin = Origin {
                    host: host.view.name.clone(),
                    role: role_name.clone(),
                    at: Some(site.loc(&role.file, entry, 1)),
                };
                let err = |message: String, hint: &str| {
                    Box::new(
                        Diagnostic::error(format!(
                            "`dns[{i}]` of role `{role_name}` on host `{}`: {message}",
                            host.view.name
                        ))
                        .at(site.loc(&role.file, entry, 1))
                        .hint(hint),
                    )
                };
                let name = normal(by_field[format!("dns[{i}].name").as_str()]);
                let mut texts: Vec<&str> = Vec::new();
                if e.value.is_some() {
                    texts.push(by_field[format!("dns[{i}].value").as_str()]);
                }
                for j in 0..e.values.len() {
                    texts.push(by_field[format!("dns[{i}].values[{j}]").as_str()]);
                }
                let mut values = Vec::new();
                for t in texts {
                    values.push(
                        record_value(e.record_type.value, t).map_err(|m| err(m, VALUE_HINT))?,
                    );
                }
                if let Some(secret) = &e.dkim {
                    let text = match secrets.get(&secret.value) {
                        Some(pem) => super::dkim::record(pem).map_err(|m| {
                            err(
                                format!("the secret `{}` {m}", secret.value),
                                "give the PEM RSA private key opendkim signs with (opendkim-genkey writes one)",
                            )
                        })?,
                        None => {
                            out.missing_secrets.insert(secret.value.clone());
                            format!("v=DKIM1; k=rsa; p=(secret {} not set)", secret.value)
                        }
                    };
                    values.push(RecordValue::Text(txt(&text)));
                }
                out.records.push(RoleRecord {
                    name,
                    record_type: e.record_type.value,
                    ttl: e.ttl.as_ref().map(|t| i64::from(t.value)),
                    values,
                    origin,
                });
            }
        }
    }
    Ok(out)
}

const VALUE_HINT: &str = "A: an IPv4 address; AAAA: an IPv6 address; CNAME: a name; MX: `10 mail.example.org.`; TXT: the text, unquoted (infra quotes it); SRV: `0 5 5060 sip.example.org.`";

/// One rendered value of a record of type `t`, as Route53 stores it.
fn record_value(t: RecordType, text: &str) -> Result<RecordValue, String> {
    let text = text.trim();
    if text == KNOWN_AFTER_APPLY {
        return Err("the value is not known before apply (an address of a machine not launched yet); a role's `hostname:` gives its hosts' Elastic IPs".into());
    }
    if text.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(format!("{text:?} holds a control or non-ASCII character"));
    }
    let is_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 255
            && s.split('.').all(|l| {
                l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            && !s.trim_end_matches('.').split('.').any(str::is_empty)
    };
    let number = |s: &str| s.parse::<u16>().is_ok();
    let ok = match t {
        RecordType::A => text.parse::<std::net::Ipv4Addr>().is_ok(),
        RecordType::Aaaa => text.parse::<std::net::Ipv6Addr>().is_ok(),
        RecordType::Cname => is_name(text),
        RecordType::Mx => matches!(text.split_whitespace().collect::<Vec<_>>().as_slice(),
            [p, n] if number(p) && is_name(n)),
        RecordType::Srv => matches!(text.split_whitespace().collect::<Vec<_>>().as_slice(),
            [p, w, port, n] if number(p) && number(w) && number(port) && is_name(n)),
        RecordType::Txt => return Ok(RecordValue::Text(txt(text))),
    };
    if !ok {
        return Err(format!("{text:?} is not a {t} value"));
    }
    Ok(match t {
        RecordType::A | RecordType::Aaaa => RecordValue::Ip(text.to_string()),
        _ => RecordValue::Text(text.split_whitespace().collect::<Vec<_>>().join(" ")),
    })
}

/// A record set as found: TTL, values, alias target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Found {
    ttl: i64,
    values: BTreeSet<String>,
    alias: Option<(String, String)>,
}

fn found_sets(records: &[RecordFact]) -> BTreeMap<(String, RecordType), Found> {
    let mut out: BTreeMap<(String, RecordType), Found> = BTreeMap::new();
    for r in records {
        let f = out.entry((normal(&r.name), r.record_type)).or_default();
        f.ttl = r.ttl;
        if let Some(a) = &r.alias {
            f.alias = Some(a.clone());
        } else {
            f.values.insert(r.value.clone());
        }
    }
    out
}

/// Adds `values` to the set (`name`, `t`), or starts it; a TTL that differs from the one
/// another host set is an error naming both.
fn merge(
    wanted: &mut Wanted,
    name: &str,
    t: RecordType,
    ttl: Option<i64>,
    values: Vec<RecordValue>,
    origin: &Origin,
) -> Result<(), Box<Diagnostic>> {
    let ttl = ttl.unwrap_or(RECORD_TTL);
    let set = wanted
        .entry((name.to_string(), t))
        .or_insert_with(|| RecordSet {
            ttl,
            values: BTreeSet::new(),
            alias: None,
            origin: origin.clone(),
        });
    if set.alias.is_some() {
        let first = &set.origin;
        return Err(Box::new(
            Diagnostic::error(format!(
                "record set {name} {t} is the alias of role `{}`'s load balancer; host `{}` (role `{}`) wants values in it",
                first.role, origin.host, origin.role
            ))
            .at_opt(origin.at.clone().or_else(|| first.at.clone()))
            .hint("give the load balancer another `hostname:`, or give the `dns:` entry another name"),
        ));
    }
    if set.ttl != ttl {
        let first = &set.origin;
        return Err(Box::new(
            Diagnostic::error(format!(
                "record set {name} {t}: host `{}` (role `{}`) wants ttl {ttl}, host `{}` (role `{}`) wants ttl {}",
                origin.host, origin.role, first.host, first.role, set.ttl
            ))
            .at_opt(origin.at.clone().or_else(|| first.at.clone()))
            .hint("give every entry of one name and type the same `ttl` (the default is 300)"),
        ));
    }
    set.values.extend(values);
    Ok(())
}

/// The public and internal zone names, lowercase, without the trailing dot.
fn zone_names(env: &Environment) -> (String, String) {
    let inv = env.inventory;
    (normal(&inv.domain), normal(&inv.internal_domain))
}

/// The roles' records merged into the sets of their zones; a name in neither zone, a TTL two
/// hosts disagree on, and a CNAME beside anything are errors.
fn place(
    env: &Environment,
    roles: &RoleRecords,
    public_sets: &mut Wanted,
    internal_sets: &mut Wanted,
) -> Result<(), Box<Diagnostic>> {
    let (public, internal) = zone_names(env);
    for r in &roles.records {
        let sets = if in_zone(&r.name, &public) {
            &mut *public_sets
        } else if in_zone(&r.name, &internal) {
            &mut *internal_sets
        } else {
            return Err(Box::new(
                Diagnostic::error(format!(
                    "record {} of role `{}` (host `{}`) is in neither zone of the environment ({public}, {internal})",
                    r.name, r.origin.role, r.origin.host
                ))
                .at_opt(r.origin.at.clone())
                .hint("a `dns:` name must be the domain or internal_domain, or end with one of them"),
            ));
        };
        merge(
            sets,
            &r.name,
            r.record_type,
            r.ttl,
            r.values.clone(),
            &r.origin,
        )?;
    }
    check_cnames(public_sets)?;
    check_cnames(internal_sets)
}

/// What `validate` checks of the roles' `dns:` entries of an aws environment: each renders for
/// each host, to a value of its type, in one of the zones, with one TTL per set. (A DKIM key is
/// derived at plan time, where a bad key is an error.)
pub fn check(env: &Environment, renderer: &Renderer) -> Result<(), Box<Diagnostic>> {
    let roles = role_records(env, renderer, &Secrets::from_values(BTreeMap::new()))?;
    let lbs = super::lb::desired(env, renderer)?;
    let aliases = super::lb::new_aliases(&lbs);
    let mut public_sets = Wanted::new();
    add_aliases(&mut public_sets, &aliases)?;
    let behind_lb: BTreeMap<&str, &LbAlias> =
        aliases.iter().map(|a| (a.name.as_str(), a)).collect();
    let site = env.site;
    for h in env.hosts.values() {
        let roles = &h.view.all_roles;
        let public_ip =
            (roles.iter()).any(|r| site.roles.get(r).is_some_and(|l| l.value.public_ip));
        for name in h.view.public_hostnames.iter().filter(|_| public_ip) {
            let name = normal(name);
            if let Some(lb) = behind_lb.get(name.as_str()) {
                lb_hostname_holder(&h.view.name, roles.contains(&lb.role), &name, lb)?;
            }
        }
    }
    place(env, &roles, &mut public_sets, &mut Wanted::new())
}

/// Host `host` (with a public address) has the hostname `name` of `lb`'s role: it must hold
/// that role (`holds`), else its A record would silently give way to the alias.
fn lb_hostname_holder(
    host: &str,
    holds: bool,
    name: &str,
    lb: &LbAlias,
) -> Result<(), Box<Diagnostic>> {
    if holds {
        return Ok(());
    }
    Err(Box::new(
        Diagnostic::error(format!(
            "host `{host}` has the hostname {name}, which is the alias of role `{}`'s load balancer, \
             but does not hold role `{}`: its address would not be published",
            lb.role, lb.role
        ))
        .at(lb.at.clone())
        .hint("give the host's role another `hostname:`, or the load balancer another `hostname:`"),
    ))
}

/// The load balancers' alias A records; two load balancers with one hostname are an error.
fn add_aliases(sets: &mut Wanted, aliases: &[LbAlias]) -> Result<(), Box<Diagnostic>> {
    for a in aliases {
        let key = (a.name.clone(), RecordType::A);
        if let Some(other) = sets.get(&key) {
            return Err(Box::new(
                Diagnostic::error(format!(
                    "the load balancers of roles `{}` and `{}` both want the hostname {}",
                    other.origin.role, a.role, a.name
                ))
                .at(a.at.clone())
                .hint("give each load balancer its own `hostname:`"),
            ));
        }
        sets.insert(
            key,
            RecordSet {
                ttl: RECORD_TTL,
                values: BTreeSet::new(),
                alias: Some(a.target.clone()),
                origin: Origin {
                    host: "(load balancer)".into(),
                    role: a.role.clone(),
                    at: Some(a.at.clone()),
                },
            },
        );
    }
    Ok(())
}

impl Planner<'_> {
    /// The public zone (the roles' hostnames and `dns:` entries in it) and the private
    /// internal zone (every host, and `dns:` entries in it).
    pub(crate) fn zones(
        &mut self,
        env: &Environment,
        wanted: &[DesiredInstance],
        roles: &RoleRecords,
        aliases: &[LbAlias],
        vpc: &Ref,
        mode: Mode,
    ) -> Result<(), Box<Diagnostic>> {
        let (public, internal) = zone_names(env);
        let behind_lb: BTreeMap<&str, &LbAlias> =
            aliases.iter().map(|a| (a.name.as_str(), a)).collect();
        let mut public_sets = self.public_records(wanted, &public, &behind_lb)?;
        add_aliases(&mut public_sets, aliases)?;
        let mut internal_sets = self.private_records(wanted, &internal)?;
        place(env, roles, &mut public_sets, &mut internal_sets)?;
        self.zone(&public, false, &public_sets, vpc, mode)?;
        self.zone(&internal, true, &internal_sets, vpc, mode)
    }

    /// The internal zone's records: every host at its private IP.
    fn private_records(
        &self,
        wanted: &[DesiredInstance],
        zone_name: &str,
    ) -> Result<Wanted, Box<Diagnostic>> {
        let f = self.facts;
        let mut sets = Wanted::new();
        for d in wanted {
            let value = match (&d.private_ip, f.instance(&d.host)) {
                (Some(ip), _) => RecordValue::Ip(ip.clone()),
                (None, Some(i)) if !self.new_instances.contains(&d.host) => i
                    .private_ip
                    .clone()
                    .map(RecordValue::Ip)
                    .unwrap_or(RecordValue::PrivateIpOf(d.host.clone())),
                _ => RecordValue::PrivateIpOf(d.host.clone()),
            };
            let origin = Origin {
                host: d.host.clone(),
                role: "(internal name)".into(),
                at: None,
            };
            let name = format!("{}.{zone_name}", d.host);
            merge(&mut sets, &name, RecordType::A, None, vec![value], &origin)?;
        }
        Ok(sets)
    }

    /// The public zone's hostnames at their Elastic IPs: several hosts with one hostname give
    /// one record set with several values (round robin). A name behind a load balancer
    /// (`behind_lb`) is its alias instead; a host of another role with that hostname is an
    /// error (its A record would silently go).
    fn public_records(
        &self,
        wanted: &[DesiredInstance],
        zone_name: &str,
        behind_lb: &BTreeMap<&str, &LbAlias>,
    ) -> Result<Wanted, Box<Diagnostic>> {
        let f = self.facts;
        let mut sets = Wanted::new();
        for d in wanted.iter().filter(|d| d.public_ip) {
            let value = match f.address(&d.host) {
                Some(a) => RecordValue::Ip(a.public_ip.clone()),
                None => RecordValue::PublicIpOf(d.host.clone()),
            };
            for name in &d.public_hostnames {
                let name = normal(name);
                if let Some(lb) = behind_lb.get(name.as_str()) {
                    lb_hostname_holder(&d.host, d.all_roles.contains(&lb.role), &name, lb)?;
                    continue;
                }
                if in_zone(&name, zone_name) {
                    let origin = Origin {
                        host: d.host.clone(),
                        role: "hostname".into(),
                        at: None,
                    };
                    merge(
                        &mut sets,
                        &name,
                        RecordType::A,
                        None,
                        vec![value.clone()],
                        &origin,
                    )?;
                }
            }
        }
        Ok(sets)
    }

    /// One zone: created if needed, its record sets changed in one batch, deleted (if owned)
    /// on destroy.
    fn zone(
        &mut self,
        zone_name: &str,
        private: bool,
        sets: &Wanted,
        vpc: &Ref,
        mode: Mode,
    ) -> Result<(), Box<Diagnostic>> {
        let f = self.facts;
        let kind = if private { "internal" } else { "public" };
        let have = f
            .zones
            .iter()
            .find(|z| z.name == zone_name && z.private == private);
        let zone_address = format!("aws_route53_zone.{kind}");
        let zone_ref = match have {
            Some(z) => Ref::Id(z.id.clone()),
            None => Ref::New(zone_address.clone()),
        };
        if have.is_none() && !sets.is_empty() {
            let mut attrs = vec![added("name", q(zone_name))];
            if private {
                attrs.push(added("vpc_id", vpc.to_string()));
            }
            self.push(
                zone_address.clone(),
                CloudAction::Create,
                attrs,
                vec![CloudOp::CreateZone {
                    name: zone_name.to_string(),
                    vpc: private.then(|| vpc.clone()),
                }],
            );
        }
        let found = have.map(|z| found_sets(&z.records)).unwrap_or_default();
        let owner = Ownership::new(self, have, private);
        let mut deletes = self.delete_records(sets, &found, &owner, private);
        let upserts = self.upsert_records(sets, &found, &owner, private)?;
        deletes.extend(upserts);
        self.record_changes(&zone_address, zone_ref, zone_name, deletes);
        if mode == Mode::Destroy {
            if let Some(z) = have.filter(|z| z.owned) {
                self.push(
                    zone_address,
                    CloudAction::Delete,
                    vec![removed("name", q(&z.name))],
                    vec![CloudOp::DeleteZone { id: z.id.clone() }],
                );
            }
        }
        Ok(())
    }

    /// A change and an upsert for each wanted set that is missing, differs, or lacks its
    /// registry record. A set someone else owns is an error naming who wants it.
    fn upsert_records(
        &mut self,
        sets: &Wanted,
        found: &BTreeMap<(String, RecordType), Found>,
        owner: &Ownership,
        private: bool,
    ) -> Result<Vec<RecordChange>, Box<Diagnostic>> {
        let mut changes = Vec::new();
        for ((name, t), set) in sets {
            let have = found.get(&(name.clone(), *t));
            if let Some(h) = have {
                if !private && !owner.owns(name, *t, h) {
                    return Err(foreign(name, *t, set, owner.registry(name, *t)));
                }
            }
            let same = have.is_some_and(|h| same_set(h, set));
            let registry_missing = !private && !owner.registered(name, *t);
            if same && !registry_missing {
                continue;
            }
            let mut attrs = Vec::new();
            match have {
                None => {
                    attrs.push(added("type", q(t.as_str())));
                    // An alias record has no TTL of its own.
                    if set.alias.is_none() {
                        attrs.push(added("ttl", set.ttl.to_string()));
                    }
                    attrs.push(added(value_attr(set), show_wanted(set)));
                }
                Some(h) => {
                    if h.ttl != set.ttl && set.alias.is_none() {
                        attrs.push(changed("ttl", h.ttl.to_string(), set.ttl.to_string()));
                    }
                    if !same_values(h, set) {
                        attrs.push(changed(value_attr(set), show_found(h), show_wanted(set)));
                    }
                }
            }
            if !same {
                changes.push(RecordChange {
                    action: RecordAction::Upsert,
                    name: name.clone(),
                    record_type: *t,
                    ttl: set.ttl,
                    values: set.values.iter().cloned().collect(),
                    alias: set.alias.clone(),
                });
            }
            if registry_missing {
                attrs.push(added("owner", q(&format!("infra env={}", self.env))));
                changes.push(self.registry_change(RecordAction::Upsert, name, *t));
            }
            let action = if have.is_some() {
                CloudAction::Update
            } else {
                CloudAction::Create
            };
            self.changes.push(CloudChange {
                address: record_address(name, *t),
                action,
                attrs,
                ops: Vec::new(),
            });
        }
        Ok(changes)
    }

    fn registry_change(&self, action: RecordAction, name: &str, t: RecordType) -> RecordChange {
        RecordChange {
            action,
            name: owner_name(name, t),
            record_type: RecordType::Txt,
            ttl: RECORD_TTL,
            values: vec![RecordValue::Text(owner_value(&self.env))],
            alias: None,
        }
    }

    /// A change and a delete for each found set of ours that is no longer wanted (with its
    /// registry record), and for each registry record of ours whose set is gone.
    fn delete_records(
        &mut self,
        sets: &Wanted,
        found: &BTreeMap<(String, RecordType), Found>,
        owner: &Ownership,
        private: bool,
    ) -> Vec<RecordChange> {
        let mut changes = Vec::new();
        for ((name, t), h) in found {
            if sets.contains_key(&(name.clone(), *t)) || is_registry(name) {
                continue;
            }
            if !private && !owner.owns(name, *t, h) {
                continue;
            }
            let mut attrs = vec![removed(found_attr(h), show_found(h))];
            changes.push(found_delete(name, *t, h));
            if !private && owner.registered(name, *t) {
                attrs.push(removed("owner", q(&format!("infra env={}", self.env))));
                changes.push(self.registry_change(RecordAction::Delete, name, *t));
            }
            self.changes.push(CloudChange {
                address: record_address(name, *t),
                action: CloudAction::Delete,
                attrs,
                ops: Vec::new(),
            });
        }
        if !private {
            for (name, t) in &owner.ours {
                if found.contains_key(&(name.clone(), *t)) || sets.contains_key(&(name.clone(), *t))
                {
                    continue;
                }
                self.changes.push(CloudChange {
                    address: record_address(name, *t),
                    action: CloudAction::Delete,
                    attrs: vec![removed("owner", q(&format!("infra env={}", self.env)))],
                    ops: Vec::new(),
                });
                changes.push(self.registry_change(RecordAction::Delete, name, *t));
            }
        }
        changes
    }

    /// The record changes of one zone as one `ChangeRecords` batch (deletes first), hung on
    /// the zone's change, or else on its last record change.
    fn record_changes(
        &mut self,
        zone_address: &str,
        zone_ref: Ref,
        zone_name: &str,
        changes: Vec<RecordChange>,
    ) {
        if changes.is_empty() {
            return;
        }
        let phase = record_phase(&changes, &zone_ref);
        let op = Op {
            phase,
            resource: zone_address.to_string(),
            op: CloudOp::ChangeRecords {
                zone: zone_ref,
                zone_name: zone_name.to_string(),
                changes,
            },
        };
        if let Some(c) = self.changes.iter_mut().find(|c| c.address == zone_address) {
            c.ops.push(op);
        } else if let Some(c) = self
            .changes
            .iter_mut()
            .rev()
            .find(|c| c.address.starts_with("aws_route53_record."))
        {
            c.ops.push(op);
        }
    }
}

/// Who owns the record sets of the public zone: the registry records naming this environment
/// (and, from before the registry, A records at the environment's Elastic IPs).
struct Ownership {
    /// (name, type) of every set whose registry record names this environment.
    ours: BTreeSet<(String, RecordType)>,
    /// Every registry record found: (name, type) -> its values.
    registry: BTreeMap<(String, RecordType), BTreeSet<String>>,
    elastic_ips: BTreeSet<String>,
}

impl Ownership {
    fn new(p: &Planner, zone: Option<&ZoneFact>, private: bool) -> Ownership {
        let mine = owner_value(&p.env);
        let mut registry: BTreeMap<(String, RecordType), BTreeSet<String>> = BTreeMap::new();
        if !private {
            for r in zone.map(|z| z.records.as_slice()).unwrap_or_default() {
                let name = normal(&r.name);
                let Some(rest) = name
                    .strip_prefix(OWNER_PREFIX)
                    .and_then(|r| r.strip_prefix('.'))
                else {
                    continue;
                };
                let Some((t, target)) = rest.split_once('.') else {
                    continue;
                };
                let Some(t) = RecordType::parse(&t.to_ascii_uppercase()) else {
                    continue;
                };
                if r.record_type == RecordType::Txt {
                    registry
                        .entry((target.to_string(), t))
                        .or_default()
                        .insert(r.value.clone());
                }
            }
        }
        let ours = registry
            .iter()
            .filter(|(_, v)| v.contains(&mine))
            .map(|(k, _)| k.clone())
            .collect();
        Ownership {
            ours,
            registry,
            elastic_ips: p
                .facts
                .addresses
                .iter()
                .map(|a| a.public_ip.clone())
                .collect(),
        }
    }

    fn registered(&self, name: &str, t: RecordType) -> bool {
        self.ours.contains(&(name.to_string(), t))
    }

    fn registry(&self, name: &str, t: RecordType) -> Option<&BTreeSet<String>> {
        self.registry.get(&(name.to_string(), t))
    }

    /// Whether the found set is this environment's to change or delete.
    fn owns(&self, name: &str, t: RecordType, h: &Found) -> bool {
        if self.registered(name, t) {
            return true;
        }
        // Written before the registry: an A record at our Elastic IPs, with no other owner.
        t == RecordType::A
            && h.alias.is_none()
            && !h.values.is_empty()
            && h.values.iter().all(|v| self.elastic_ips.contains(v))
            && self.registry(name, t).is_none()
    }
}

/// A record set infra would write that someone else owns.
fn foreign(
    name: &str,
    t: RecordType,
    set: &RecordSet,
    registry: Option<&BTreeSet<String>>,
) -> Box<Diagnostic> {
    let whose = match registry {
        Some(v) => format!(
            "its registry record {} says {}",
            owner_name(name, t),
            v.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => format!("it has no registry record {}", owner_name(name, t)),
    };
    let o = &set.origin;
    Box::new(
        Diagnostic::error(format!(
            "record set {name} {t} exists and is not this environment's ({whose}); role `{}` on host `{}` wants it",
            o.role, o.host
        ))
        .at_opt(o.at.clone())
        .hint(format!(
            "infra does not overwrite records it does not own: delete the record set by hand, or add the TXT record {} with the value `infra env=<environment>` to hand it over",
            owner_name(name, t)
        )),
    )
}

fn is_registry(name: &str) -> bool {
    name.starts_with(&format!("{OWNER_PREFIX}."))
}

/// `aws_route53_record.<name>_<TYPE>`.
pub fn record_address(name: &str, t: RecordType) -> String {
    format!("aws_route53_record.{name}_{t}")
}

/// CNAME: one value, and no other type at its name.
fn check_cnames(sets: &Wanted) -> Result<(), Box<Diagnostic>> {
    for ((name, t), set) in sets {
        if *t != RecordType::Cname {
            continue;
        }
        let other = sets
            .iter()
            .find(|((n, ot), _)| n == name && *ot != RecordType::Cname);
        let problem = if set.values.len() > 1 {
            Some(format!("has {} values; a CNAME has one", set.values.len()))
        } else {
            other.map(|((_, ot), s)| {
                format!(
                    "shares its name with a {ot} record (host `{}`, role `{}`); DNS allows no other record beside a CNAME",
                    s.origin.host, s.origin.role
                )
            })
        };
        if let Some(p) = problem {
            return Err(Box::new(
                Diagnostic::error(format!(
                    "CNAME {name} of role `{}` (host `{}`) {p}",
                    set.origin.role, set.origin.host
                ))
                .at_opt(set.origin.at.clone())
                .hint("point the CNAME at one name, or use A records"),
            ));
        }
    }
    Ok(())
}

fn same_values(h: &Found, set: &RecordSet) -> bool {
    match (&h.alias, &set.alias) {
        (Some((dns, zone)), Some(AliasTarget::Name { dns_name, zone_id })) => {
            normal(dns) == normal(dns_name) && zone == zone_id
        }
        (None, None) => {
            let known: Option<BTreeSet<String>> = set
                .values
                .iter()
                .map(|v| match v {
                    RecordValue::Ip(s) | RecordValue::Text(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            known.is_some_and(|k| k == h.values)
        }
        _ => false,
    }
}

fn same_set(h: &Found, set: &RecordSet) -> bool {
    same_values(h, set) && (set.alias.is_some() || h.ttl == set.ttl)
}

fn value_attr(set: &RecordSet) -> &'static str {
    if set.alias.is_some() {
        "alias"
    } else {
        "records"
    }
}

fn found_attr(h: &Found) -> &'static str {
    if h.alias.is_some() {
        "alias"
    } else {
        "records"
    }
}

/// A value as the plan shows it: a TXT value as stored (already quoted), others quoted.
fn show_value(v: &str) -> String {
    if v.starts_with('"') {
        v.to_string()
    } else {
        q(v)
    }
}

fn show_wanted(set: &RecordSet) -> String {
    if let Some(a) = &set.alias {
        return match a {
            AliasTarget::Name { dns_name, .. } => q(dns_name),
            AliasTarget::LoadBalancer(_) => KNOWN_AFTER_APPLY.into(),
        };
    }
    let items: Vec<String> = set
        .values
        .iter()
        .map(|v| match v {
            RecordValue::Ip(s) | RecordValue::Text(s) => show_value(s),
            _ => KNOWN_AFTER_APPLY.into(),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn show_found(h: &Found) -> String {
    if let Some((dns, _)) = &h.alias {
        return q(dns);
    }
    let items: Vec<String> = h.values.iter().map(|v| show_value(v)).collect();
    format!("[{}]", items.join(", "))
}

/// The delete of a found set, naming it as found (the provider re-reads it before deleting).
fn found_delete(name: &str, t: RecordType, h: &Found) -> RecordChange {
    RecordChange {
        action: RecordAction::Delete,
        name: name.to_string(),
        record_type: t,
        ttl: h.ttl,
        values: h.values.iter().cloned().map(RecordValue::Text).collect(),
        alias: h.alias.as_ref().map(|(d, z)| AliasTarget::Name {
            dns_name: d.clone(),
            zone_id: z.clone(),
        }),
    }
}
