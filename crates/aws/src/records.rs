//! Route53 record sets: every set of a zone read back as facts (all types infra writes, alias
//! targets included; the zone's own SOA and NS left out), and the change batches that write
//! and delete them.

use crate::{sdk, AwsError, Clients};
use aws_sdk_route53::types::{
    AliasTarget as R53Alias, Change, ChangeAction, ResourceRecord, ResourceRecordSet, RrType,
};
use infra_protocol::{RecordAction, RecordChange, RecordFact, RecordType};

fn rr_type(t: RecordType) -> RrType {
    RrType::from(t.as_str())
}

/// A name as Route53 returns it, as infra compares it: lowercase, no trailing dot, `\052` as `*`.
pub fn normal(name: &str) -> String {
    name.trim_end_matches('.')
        .replace("\\052", "*")
        .to_ascii_lowercase()
}

/// Every record set of zone `id`, paginated.
pub async fn record_sets(c: &Clients, id: &str) -> Result<Vec<ResourceRecordSet>, AwsError> {
    let mut out = Vec::new();
    let mut start: Option<(String, RrType, Option<String>)> = None;
    loop {
        let mut req = c.r53.list_resource_record_sets().hosted_zone_id(id);
        if let Some((name, ty, ident)) = &start {
            req = req
                .start_record_name(name)
                .start_record_type(ty.clone())
                .set_start_record_identifier(ident.clone());
        }
        let page = req
            .send()
            .await
            .map_err(|e| sdk(format!("list the records of zone {id}"), e))?;
        out.extend(page.resource_record_sets().iter().cloned());
        match (
            page.is_truncated(),
            page.next_record_name(),
            page.next_record_type(),
        ) {
            (true, Some(n), Some(t)) => {
                start = Some((
                    n.to_string(),
                    t.clone(),
                    page.next_record_identifier().map(str::to_string),
                ))
            }
            _ => break,
        }
    }
    Ok(out)
}

/// Whether a set is the zone's own (its SOA, and the NS at its apex): never infra's.
fn zone_own(set: &ResourceRecordSet, zone_name: &str) -> bool {
    match set.r#type() {
        RrType::Soa => true,
        RrType::Ns => normal(set.name()) == normal(zone_name),
        _ => false,
    }
}

/// The sets of a zone as facts: one per value (an alias set is one fact with no value).
pub async fn facts(c: &Clients, id: &str, zone_name: &str) -> Result<Vec<RecordFact>, AwsError> {
    let mut out = Vec::new();
    for set in record_sets(c, id).await? {
        if zone_own(&set, zone_name) {
            continue;
        }
        let Some(t) = RecordType::parse(set.r#type().as_str()) else {
            continue;
        };
        let name = normal(set.name());
        let ttl = set.ttl().unwrap_or(0);
        if let Some(a) = set.alias_target() {
            out.push(RecordFact {
                name,
                value: String::new(),
                record_type: t,
                ttl,
                alias: Some((normal(a.dns_name()), a.hosted_zone_id().to_string())),
            });
            continue;
        }
        for v in set.resource_records() {
            out.push(RecordFact {
                name: name.clone(),
                value: v.value().to_string(),
                record_type: t,
                ttl,
                alias: None,
            });
        }
    }
    out.sort();
    Ok(out)
}

fn bad(e: aws_sdk_route53::error::BuildError) -> AwsError {
    AwsError::new("build a record", e.to_string())
}

/// One change of a set with resolved values (or an alias target: name, zone).
pub fn change(
    action: ChangeAction,
    name: &str,
    t: RecordType,
    ttl: i64,
    values: &[String],
    alias: Option<(&str, &str)>,
) -> Result<Change, AwsError> {
    let mut set = ResourceRecordSet::builder().name(name).r#type(rr_type(t));
    match alias {
        Some((dns_name, zone)) => {
            set = set.alias_target(
                R53Alias::builder()
                    .dns_name(dns_name)
                    .hosted_zone_id(zone)
                    .evaluate_target_health(false)
                    .build()
                    .map_err(bad)?,
            );
        }
        None => {
            set = set.ttl(ttl);
            for v in values {
                set =
                    set.resource_records(ResourceRecord::builder().value(v).build().map_err(bad)?);
            }
        }
    }
    Change::builder()
        .action(action)
        .resource_record_set(set.build().map_err(bad)?)
        .build()
        .map_err(bad)
}

/// The delete of a set exactly as it is now (Route53 wants the current TTL and values), or
/// nothing when it is already gone.
pub fn delete_as_found(
    sets: &[ResourceRecordSet],
    name: &str,
    t: RecordType,
) -> Option<ResourceRecordSet> {
    sets.iter()
        .find(|s| normal(s.name()) == name && s.r#type() == &rr_type(t))
        .cloned()
}

/// What an upsert writes: its values, or an alias target (DNS name, hosted zone).
pub type Resolved = (Vec<String>, Option<(String, String)>);

/// The batch of `changes`: deletes first (as the sets are now), then upserts, with values and
/// alias targets resolved by `resolve`.
pub fn batch(
    current: &[ResourceRecordSet],
    changes: &[RecordChange],
    resolve: &dyn Fn(&RecordChange) -> Result<Resolved, AwsError>,
) -> Result<Vec<Change>, AwsError> {
    let mut out = Vec::new();
    for ch in changes.iter().filter(|c| c.action == RecordAction::Delete) {
        if let Some(set) = delete_as_found(current, &ch.name, ch.record_type) {
            out.push(
                Change::builder()
                    .action(ChangeAction::Delete)
                    .resource_record_set(set)
                    .build()
                    .map_err(bad)?,
            );
        }
    }
    for ch in changes.iter().filter(|c| c.action == RecordAction::Upsert) {
        let (values, alias) = resolve(ch)?;
        out.push(change(
            ChangeAction::Upsert,
            &ch.name,
            ch.record_type,
            ch.ttl,
            &values,
            alias.as_ref().map(|(d, z)| (d.as_str(), z.as_str())),
        )?);
    }
    Ok(out)
}

/// Deletes of every set of a zone but its own SOA and NS (before the zone is deleted).
pub fn delete_all(sets: &[ResourceRecordSet]) -> Result<Vec<Change>, AwsError> {
    let apex = sets
        .iter()
        .find(|s| s.r#type() == &RrType::Soa)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    sets.iter()
        .filter(|s| !zone_own(s, &apex))
        .map(|s| {
            Change::builder()
                .action(ChangeAction::Delete)
                .resource_record_set(s.clone())
                .build()
                .map_err(bad)
        })
        .collect()
}
