//! Discovery: every resource of an environment, found by its `infra:env` tag, one paginated
//! describe per kind. A failed read is an error, never "nothing exists".

use crate::{sdk, AwsError, Clients};
use aws_sdk_ec2::types::{Filter, Tag};
use aws_sdk_route53::types::TagResourceType;
use infra_protocol::{
    AddressFact, CloudFacts, GroupFact, InstanceFact, Port, Proto, RuleFact, Scope, SourceFact,
    SubnetFact, VolumeFact, VpcFact, ZoneFact, TAG_ENV, TAG_HOST, TAG_KEEP, TAG_ROLE, TAG_ROLES,
    TAG_SUBNET,
};

pub fn env_filter(scope: &Scope) -> Filter {
    Filter::builder()
        .name(format!("tag:{TAG_ENV}"))
        .values(&scope.environment)
        .build()
}

pub fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

pub async fn discover(c: &Clients, scope: &Scope) -> Result<CloudFacts, AwsError> {
    let bucket = match &scope.bucket {
        Some(name) => crate::s3::discover(&c.s3, name, &scope.environment).await?,
        None => None,
    };
    if scope.objects_only {
        return Ok(CloudFacts {
            bucket,
            ..CloudFacts::default()
        });
    }
    let (vpc, subnet, security_groups, instances, volumes, addresses, zones) = tokio::try_join!(
        vpc(c, scope),
        subnet(c, scope),
        groups(c, scope),
        instances(c, scope),
        volumes(c, scope),
        addresses(c, scope),
        zones(c, scope),
    )?;
    let ((lb_subnet, stale_lb_subnet), (load_balancers, target_groups)) =
        tokio::try_join!(lb_subnets(c, scope), crate::elb::discover(c, scope))?;
    Ok(CloudFacts {
        lb_subnet,
        stale_lb_subnet,
        load_balancers,
        target_groups,
        vpc,
        subnet,
        security_groups,
        instances,
        volumes,
        addresses,
        zones,
        bucket,
    })
}

async fn vpc(c: &Clients, scope: &Scope) -> Result<Option<VpcFact>, AwsError> {
    let req = c.ec2.describe_vpcs();
    let req = match &scope.vpc_id {
        Some(id) => req.filters(Filter::builder().name("vpc-id").values(id).build()),
        None => req.filters(env_filter(scope)),
    };
    let out = req.send().await.map_err(|e| sdk("describe VPCs", e))?;
    let Some(v) = out.vpcs().first() else {
        return Ok(None);
    };
    let id = v.vpc_id().unwrap_or_default().to_string();
    let igw = c
        .ec2
        .describe_internet_gateways()
        .filters(
            Filter::builder()
                .name("attachment.vpc-id")
                .values(&id)
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk("describe internet gateways", e))?;
    Ok(Some(VpcFact {
        cidr: v.cidr_block().unwrap_or_default().to_string(),
        owned: tag(v.tags(), TAG_ENV) == Some(scope.environment.as_str()),
        internet_gateway: igw
            .internet_gateways()
            .first()
            .and_then(|g| g.internet_gateway_id())
            .map(str::to_string),
        id,
    }))
}

async fn subnet(c: &Clients, scope: &Scope) -> Result<Option<SubnetFact>, AwsError> {
    let req = c.ec2.describe_subnets();
    let req = match &scope.subnet_id {
        Some(id) => req.filters(Filter::builder().name("subnet-id").values(id).build()),
        None => req.filters(env_filter(scope)),
    };
    let out = req.send().await.map_err(|e| sdk("describe subnets", e))?;
    // The load balancers' subnet is not the instances'.
    Ok(out
        .subnets()
        .iter()
        .find(|s| scope.subnet_id.is_some() || tag(s.tags(), TAG_SUBNET) != Some("lb"))
        .map(|s| subnet_fact(s, scope)))
}

fn subnet_fact(s: &aws_sdk_ec2::types::Subnet, scope: &Scope) -> SubnetFact {
    SubnetFact {
        id: s.subnet_id().unwrap_or_default().to_string(),
        cidr: s.cidr_block().unwrap_or_default().to_string(),
        availability_zone: s.availability_zone().unwrap_or_default().to_string(),
        owned: tag(s.tags(), TAG_ENV) == Some(scope.environment.as_str()),
    }
}

/// The load balancers' second subnet: `provider.lb_subnet_id`, or the one infra created
/// (tagged `infra:subnet=lb`); and infra's one when `lb_subnet_id` names another (to delete
/// once the load balancers have moved).
async fn lb_subnets(
    c: &Clients,
    scope: &Scope,
) -> Result<(Option<SubnetFact>, Option<SubnetFact>), AwsError> {
    let tagged = Filter::builder()
        .name(format!("tag:{TAG_SUBNET}"))
        .values("lb")
        .build();
    let ours = first_subnet(c, scope, vec![env_filter(scope), tagged]).await?;
    let Some(id) = &scope.lb_subnet_id else {
        return Ok((ours, None));
    };
    let by_id = Filter::builder().name("subnet-id").values(id).build();
    let named = first_subnet(c, scope, vec![by_id]).await?;
    Ok((named, ours.filter(|s| &s.id != id)))
}

async fn first_subnet(
    c: &Clients,
    scope: &Scope,
    filters: Vec<Filter>,
) -> Result<Option<SubnetFact>, AwsError> {
    let out = c
        .ec2
        .describe_subnets()
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| sdk("describe the load balancers' subnet", e))?;
    Ok(out.subnets().first().map(|s| subnet_fact(s, scope)))
}

async fn groups(c: &Clients, scope: &Scope) -> Result<Vec<GroupFact>, AwsError> {
    let pages: Vec<_> = c
        .ec2
        .describe_security_groups()
        .filters(env_filter(scope))
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| sdk("describe security groups", e))?;
    let mut out = Vec::new();
    for g in pages.iter().flat_map(|p| p.security_groups()) {
        let mut rules = Vec::new();
        for perm in g.ip_permissions() {
            let proto = match perm.ip_protocol() {
                Some("tcp") | Some("6") => Proto::Tcp,
                Some("udp") | Some("17") => Proto::Udp,
                _ => continue,
            };
            let (Some(from), Some(to)) = (perm.from_port(), perm.to_port()) else {
                continue;
            };
            for number in from.max(1)..=to.min(65535) {
                let port = Port {
                    number: number as u16,
                    proto,
                };
                for r in perm.ip_ranges() {
                    if let Some(cidr) = r.cidr_ip() {
                        rules.push(RuleFact {
                            port,
                            source: SourceFact::Cidr(cidr.to_string()),
                        });
                    }
                }
                for p in perm.user_id_group_pairs() {
                    if let Some(id) = p.group_id() {
                        rules.push(RuleFact {
                            port,
                            source: SourceFact::Group(id.to_string()),
                        });
                    }
                }
            }
        }
        rules.sort();
        out.push(GroupFact {
            id: g.group_id().unwrap_or_default().to_string(),
            name: g.group_name().unwrap_or_default().to_string(),
            role: tag(g.tags(), TAG_ROLE).unwrap_or_default().to_string(),
            rules,
        });
    }
    out.sort_by(|a, b| a.role.cmp(&b.role));
    Ok(out)
}

async fn instances(c: &Clients, scope: &Scope) -> Result<Vec<InstanceFact>, AwsError> {
    let pages: Vec<_> = c
        .ec2
        .describe_instances()
        .filters(env_filter(scope))
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| sdk("describe instances", e))?;
    let mut out: Vec<InstanceFact> = pages
        .iter()
        .flat_map(|p| p.reservations())
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            Some(InstanceFact {
                id: i.instance_id()?.to_string(),
                host: tag(i.tags(), TAG_HOST)?.to_string(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                ami: i.image_id().unwrap_or_default().to_string(),
                instance_type: i
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                private_ip: i.private_ip_address().map(str::to_string),
                public_ip: i.public_ip_address().map(str::to_string),
                security_groups: i
                    .security_groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string))
                    .collect(),
                roles: tag(i.tags(), TAG_ROLES).unwrap_or_default().to_string(),
                launch_time: i.launch_time().map(|t| t.to_string()).unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.host, &a.launch_time, &a.id).cmp(&(&b.host, &b.launch_time, &b.id)));
    Ok(out)
}

async fn volumes(c: &Clients, scope: &Scope) -> Result<Vec<VolumeFact>, AwsError> {
    let pages: Vec<_> = c
        .ec2
        .describe_volumes()
        .filters(env_filter(scope))
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| sdk("describe volumes", e))?;
    let mut out: Vec<VolumeFact> = pages
        .iter()
        .flat_map(|p| p.volumes())
        .filter(|v| {
            !matches!(
                v.state().map(|s| s.as_str()),
                Some("deleting") | Some("deleted")
            )
        })
        .filter_map(|v| {
            let attachment = v.attachments().iter().find(|a| {
                !matches!(
                    a.state().map(|s| s.as_str()),
                    Some("detaching") | Some("detached")
                )
            });
            Some(VolumeFact {
                id: v.volume_id()?.to_string(),
                host: tag(v.tags(), TAG_HOST)?.to_string(),
                role: tag(v.tags(), TAG_ROLE)?.to_string(),
                size_gb: v.size().unwrap_or(0).max(0) as u32,
                attached_to: attachment.and_then(|a| a.instance_id()).map(str::to_string),
                device: attachment.and_then(|a| a.device()).map(str::to_string),
                keep: tag(v.tags(), TAG_KEEP) != Some("false"),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.host, &a.role, &a.id).cmp(&(&b.host, &b.role, &b.id)));
    Ok(out)
}

async fn addresses(c: &Clients, scope: &Scope) -> Result<Vec<AddressFact>, AwsError> {
    let out = c
        .ec2
        .describe_addresses()
        .filters(env_filter(scope))
        .send()
        .await
        .map_err(|e| sdk("describe Elastic IPs", e))?;
    let mut facts: Vec<AddressFact> = out
        .addresses()
        .iter()
        .filter_map(|a| {
            Some(AddressFact {
                allocation_id: a.allocation_id()?.to_string(),
                public_ip: a.public_ip().unwrap_or_default().to_string(),
                host: tag(a.tags(), TAG_HOST)?.to_string(),
                instance: a.instance_id().map(str::to_string),
                association_id: a.association_id().map(str::to_string),
                reverse_dns: None,
            })
        })
        .collect();
    if !facts.is_empty() {
        // Reverse DNS (the PTR record AWS serves for the address), one call for all of them.
        let attrs = c
            .ec2
            .describe_addresses_attribute()
            .set_allocation_ids(Some(
                facts.iter().map(|a| a.allocation_id.clone()).collect(),
            ))
            .attribute(aws_sdk_ec2::types::AddressAttributeName::DomainName)
            .send()
            .await
            .map_err(|e| sdk("describe the reverse DNS of Elastic IPs", e))?;
        for attr in attrs.addresses() {
            if let Some(f) = facts
                .iter_mut()
                .find(|f| Some(f.allocation_id.as_str()) == attr.allocation_id())
            {
                f.reverse_dns = attr
                    .ptr_record()
                    .map(|p| p.trim_end_matches('.').to_string())
                    .filter(|p| !p.is_empty());
            }
        }
    }
    facts.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(facts)
}

/// The hosted zone id without its `/hostedzone/` prefix.
pub fn zone_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

async fn zones(c: &Clients, scope: &Scope) -> Result<Vec<ZoneFact>, AwsError> {
    let mut found = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = c
            .r53
            .list_hosted_zones()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| sdk("list hosted zones", e))?;
        for z in out.hosted_zones() {
            let name = z.name().trim_end_matches('.');
            if name == scope.domain || name == scope.internal_domain {
                let private = z.config().is_some_and(|c| c.private_zone());
                found.push((zone_id(z.id()).to_string(), name.to_string(), private));
            }
        }
        if out.is_truncated() {
            marker = out.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        } else {
            break;
        }
    }
    let mut zones = Vec::new();
    for (id, name, private) in found {
        let tags = c
            .r53
            .list_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(&id)
            .send()
            .await
            .map_err(|e| sdk(format!("list the tags of zone {name}"), e))?;
        let owned = tags
            .resource_tag_set()
            .map(|s| s.tags())
            .unwrap_or_default()
            .iter()
            .any(|t| t.key() == Some(TAG_ENV) && t.value() == Some(scope.environment.as_str()));
        // A private zone of the same name may belong to another VPC: only ours counts.
        if private && !owned {
            continue;
        }
        let records = crate::records::facts(c, &id, &name).await?;
        zones.push(ZoneFact {
            id,
            name,
            private,
            owned,
            records,
        });
    }
    // Ours first, so that the planner picks the owned zone when there are two.
    zones.sort_by(|a, b| (b.owned, &a.name).cmp(&(a.owned, &b.name)));
    Ok(zones)
}
