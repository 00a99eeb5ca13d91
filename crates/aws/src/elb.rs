//! Application load balancers (ELBv2): the roles' load balancers with their listeners, and
//! their target groups with the instances registered, found by the `infra:env` and
//! `infra:role` tags; and the calls that create, change and delete them.

use crate::{emit, sdk, AwsError, Clients};
use aws_sdk_elasticloadbalancingv2::client::Waiters;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Matcher,
    ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum, Tag, TargetDescription,
    TargetHealthDescription, TargetHealthStateEnum, TargetTypeEnum,
};
use infra_protocol::{
    HealthCheck, ListenerFact, LoadBalancerFact, ProviderEvent, Scope, TargetGroupFact, TAG_ENV,
    TAG_ROLE,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a deleted load balancer may take to go.
const WAIT: Duration = Duration::from_secs(600);

type Tags = BTreeMap<String, String>;

fn tags(scope: &Scope, name: &str, role: &str) -> Vec<Tag> {
    [
        (TAG_ENV, scope.environment.as_str()),
        ("Name", name),
        (TAG_ROLE, role),
    ]
    .into_iter()
    .map(|(k, v)| Tag::builder().key(k).value(v).build())
    .collect()
}

/// The tags of each of `arns` (DescribeTags takes 20 at a time).
async fn tags_of(c: &Clients, arns: &[String]) -> Result<BTreeMap<String, Tags>, AwsError> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let answer = c
            .elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| sdk("describe the tags of load balancers", e))?;
        for d in answer.tag_descriptions() {
            let tags: Tags = d
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect();
            out.insert(d.resource_arn().unwrap_or_default().to_string(), tags);
        }
    }
    Ok(out)
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v
}

/// The role of a resource tagged with this environment.
fn ours(tags: Option<&Tags>, scope: &Scope) -> Option<String> {
    let tags = tags?;
    (tags.get(TAG_ENV) == Some(&scope.environment))
        .then(|| tags.get(TAG_ROLE).cloned())
        .flatten()
}

/// The environment's load balancers (with listeners) and target groups (with targets).
pub async fn discover(
    c: &Clients,
    scope: &Scope,
) -> Result<(Vec<LoadBalancerFact>, Vec<TargetGroupFact>), AwsError> {
    let (lbs, tgs) = tokio::try_join!(load_balancers(c, scope), target_groups(c, scope))?;
    Ok((lbs, tgs))
}

async fn load_balancers(c: &Clients, scope: &Scope) -> Result<Vec<LoadBalancerFact>, AwsError> {
    let pages: Vec<_> = c
        .elb
        .describe_load_balancers()
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| sdk("describe load balancers", e))?;
    let all: Vec<_> = pages
        .iter()
        .flat_map(|p| p.load_balancers())
        .filter(|l| l.r#type() == Some(&LoadBalancerTypeEnum::Application))
        .collect();
    let arns: Vec<String> = all
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .collect();
    let tags = tags_of(c, &arns).await?;
    let mut out = Vec::new();
    for l in all {
        let arn = l.load_balancer_arn().unwrap_or_default().to_string();
        let Some(role) = ours(tags.get(&arn), scope) else {
            continue;
        };
        out.push(LoadBalancerFact {
            listeners: listeners(c, &arn).await?,
            name: l.load_balancer_name().unwrap_or_default().to_string(),
            role,
            dns_name: l
                .dns_name()
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_string(),
            zone_id: l.canonical_hosted_zone_id().unwrap_or_default().to_string(),
            subnets: sorted(
                (l.availability_zones().iter()).filter_map(|z| z.subnet_id().map(str::to_string)),
            ),
            security_groups: sorted(l.security_groups().iter().cloned()),
            arn,
        });
    }
    out.sort_by(|a, b| (&a.role, &a.arn).cmp(&(&b.role, &b.arn)));
    Ok(out)
}

async fn listeners(c: &Clients, lb: &str) -> Result<Vec<ListenerFact>, AwsError> {
    let pages: Vec<_> = c
        .elb
        .describe_listeners()
        .load_balancer_arn(lb)
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| sdk(format!("describe the listeners of {lb}"), e))?;
    let mut out = Vec::new();
    for l in pages.iter().flat_map(|p| p.listeners()) {
        let action = l.default_actions().first();
        let forward = action.and_then(|a| {
            a.target_group_arn().map(str::to_string).or_else(|| {
                // A weighted forward over several groups is not what infra makes: read as
                // no forward, so the plan puts the single one back.
                match a.forward_config()?.target_groups() {
                    [one] => one.target_group_arn().map(str::to_string),
                    _ => None,
                }
            })
        });
        let redirect_https = action.is_some_and(|a| {
            a.r#type() == Some(&ActionTypeEnum::Redirect)
                && a.redirect_config().is_some_and(|r| {
                    r.protocol()
                        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
                        && r.status_code() == Some(&RedirectActionStatusCodeEnum::Http301)
                })
        });
        out.push(ListenerFact {
            arn: l.listener_arn().unwrap_or_default().to_string(),
            port: l.port().unwrap_or(0).clamp(0, 65535) as u16,
            protocol: l
                .protocol()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            certificate: l
                .certificates()
                .iter()
                .find(|c| c.is_default() != Some(false))
                .and_then(|c| c.certificate_arn())
                .map(str::to_string),
            forward: if redirect_https { None } else { forward },
            redirect_https,
        });
    }
    out.sort_by_key(|l| l.port);
    Ok(out)
}

async fn target_groups(c: &Clients, scope: &Scope) -> Result<Vec<TargetGroupFact>, AwsError> {
    let pages: Vec<_> = c
        .elb
        .describe_target_groups()
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| sdk("describe target groups", e))?;
    let all: Vec<_> = pages.iter().flat_map(|p| p.target_groups()).collect();
    let arns: Vec<String> = all
        .iter()
        .filter_map(|t| t.target_group_arn().map(str::to_string))
        .collect();
    let tags = tags_of(c, &arns).await?;
    let mut out = Vec::new();
    for t in all {
        let arn = t.target_group_arn().unwrap_or_default().to_string();
        let Some(role) = ours(tags.get(&arn), scope) else {
            continue;
        };
        let int = |v: Option<i32>, default: i32| v.unwrap_or(default).clamp(0, 65535);
        out.push(TargetGroupFact {
            targets: targets(c, &arn).await?,
            name: t.target_group_name().unwrap_or_default().to_string(),
            role,
            port: int(t.port(), 0) as u16,
            health: HealthCheck {
                path: t.health_check_path().unwrap_or("/").to_string(),
                matcher: t
                    .matcher()
                    .and_then(|m| m.http_code())
                    .unwrap_or("200")
                    .to_string(),
                interval: int(t.health_check_interval_seconds(), 30) as u16,
                healthy: int(t.healthy_threshold_count(), 5).min(255) as u8,
                unhealthy: int(t.unhealthy_threshold_count(), 2).min(255) as u8,
            },
            arn,
        });
    }
    out.sort_by(|a, b| (&a.role, &a.arn).cmp(&(&b.role, &b.arn)));
    Ok(out)
}

/// The instances registered in a target group (those draining out left out), sorted.
/// The targets registered in `tg`, with their health.
async fn target_health(c: &Clients, tg: &str) -> Result<Vec<TargetHealthDescription>, AwsError> {
    let answer = c
        .elb
        .describe_target_health()
        .target_group_arn(tg)
        .send()
        .await
        .map_err(|e| sdk(format!("describe the targets of {tg}"), e))?;
    Ok(answer.target_health_descriptions.unwrap_or_default())
}

async fn targets(c: &Clients, tg: &str) -> Result<Vec<String>, AwsError> {
    let mut out: Vec<String> = target_health(c, tg)
        .await?
        .iter()
        .filter(|d| {
            d.target_health()
                .and_then(|h| h.state())
                .is_none_or(|s| s != &TargetHealthStateEnum::Draining)
        })
        .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Changes.

/// A created load balancer: its ARN, DNS name and canonical hosted zone.
pub struct Created {
    pub arn: String,
    pub dns_name: String,
    pub zone_id: String,
}

pub async fn create_load_balancer(
    c: &Clients,
    scope: &Scope,
    role: &str,
    name: &str,
    subnets: Vec<String>,
    group: String,
) -> Result<Created, AwsError> {
    let answer = c
        .elb
        .create_load_balancer()
        .name(name)
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnets))
        .security_groups(group)
        .set_tags(Some(tags(scope, name, role)))
        .send()
        .await
        .map_err(|e| sdk("CreateLoadBalancer", e))?;
    let lb = answer
        .load_balancers()
        .first()
        .ok_or_else(|| AwsError::new("CreateLoadBalancer", "no load balancer in the answer"))?;
    let arn = lb
        .load_balancer_arn()
        .ok_or_else(|| AwsError::new("CreateLoadBalancer", "no ARN in the answer"))?;
    Ok(Created {
        arn: arn.to_string(),
        dns_name: lb
            .dns_name()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_string(),
        zone_id: lb
            .canonical_hosted_zone_id()
            .unwrap_or_default()
            .to_string(),
    })
}

pub async fn delete_load_balancer(c: &Clients, index: usize, arn: &str) -> Result<(), AwsError> {
    c.elb
        .delete_load_balancer()
        .load_balancer_arn(arn)
        .send()
        .await
        .map_err(|e| sdk("DeleteLoadBalancer", e))?;
    emit(&ProviderEvent::Waiting {
        index,
        text: format!("waiting for {arn} to be deleted"),
    });
    c.elb
        .wait_until_load_balancers_deleted()
        .load_balancer_arns(arn)
        .wait(WAIT)
        .await
        .map_err(|e| sdk(format!("wait for {arn} to be deleted"), e))?;
    Ok(())
}

fn matcher(h: &HealthCheck) -> Matcher {
    Matcher::builder().http_code(&h.matcher).build()
}

/// The health check's settings on a create or a modify target group request (the SDK's two
/// builders are distinct types with the same setters).
macro_rules! with_health {
    ($request:expr, $h:expr) => {
        $request
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&$h.path)
            .health_check_interval_seconds(i32::from($h.interval))
            .healthy_threshold_count(i32::from($h.healthy))
            .unhealthy_threshold_count(i32::from($h.unhealthy))
            .matcher(matcher($h))
    };
}

/// A listener's port, protocol, certificate and default action on a create or a modify
/// listener request (distinct builder types with the same setters).
macro_rules! with_listener {
    ($request:expr, $l:expr) => {
        $request
            .port(i32::from($l.port))
            .protocol(protocol($l.certificate))
            .set_certificates(
                $l.certificate
                    .map(|a| vec![Certificate::builder().certificate_arn(a).build()]),
            )
            .default_actions(action($l.forward.as_deref()))
    };
}

/// A new target group of instances on `port` over HTTP, with the health check.
pub struct NewTargetGroup<'a> {
    pub role: &'a str,
    pub name: &'a str,
    pub vpc: String,
    pub port: u16,
    pub health: &'a HealthCheck,
}

pub async fn create_target_group(
    c: &Clients,
    scope: &Scope,
    t: NewTargetGroup<'_>,
) -> Result<String, AwsError> {
    let h = t.health;
    let request = c
        .elb
        .create_target_group()
        .name(t.name)
        .protocol(ProtocolEnum::Http)
        .port(i32::from(t.port))
        .vpc_id(t.vpc)
        .target_type(TargetTypeEnum::Instance);
    let answer = with_health!(request, h)
        .set_tags(Some(tags(scope, t.name, t.role)))
        .send()
        .await
        .map_err(|e| sdk("CreateTargetGroup", e))?;
    answer
        .target_groups()
        .first()
        .and_then(|g| g.target_group_arn())
        .map(str::to_string)
        .ok_or_else(|| AwsError::new("CreateTargetGroup", "no target group in the answer"))
}

pub async fn modify_target_group(c: &Clients, arn: &str, h: &HealthCheck) -> Result<(), AwsError> {
    let request = c.elb.modify_target_group().target_group_arn(arn);
    with_health!(request, h)
        .send()
        .await
        .map_err(|e| sdk("ModifyTargetGroup", e))?;
    Ok(())
}

pub async fn delete_target_group(c: &Clients, arn: &str) -> Result<(), AwsError> {
    c.elb
        .delete_target_group()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| sdk("DeleteTargetGroup", e))?;
    Ok(())
}

/// A listener's default action: forward to a target group (its ARN), or redirect to https.
fn action(forward: Option<&str>) -> Action {
    match forward {
        Some(tg) => Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(tg)
            .build(),
        None => Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol("HTTPS")
                    .port("443")
                    .status_code(RedirectActionStatusCodeEnum::Http301)
                    .build(),
            )
            .build(),
    }
}

/// A listener as the provider writes it: HTTPS with `certificate`, else HTTP.
pub struct Listener<'a> {
    pub port: u16,
    pub certificate: Option<&'a str>,
    /// The target group to forward to; `None`: redirect to https.
    pub forward: Option<String>,
}

fn protocol(certificate: Option<&str>) -> ProtocolEnum {
    if certificate.is_some() {
        ProtocolEnum::Https
    } else {
        ProtocolEnum::Http
    }
}

pub async fn create_listener(
    c: &Clients,
    load_balancer: &str,
    l: Listener<'_>,
) -> Result<String, AwsError> {
    let request = c.elb.create_listener().load_balancer_arn(load_balancer);
    let answer = with_listener!(request, l)
        .send()
        .await
        .map_err(|e| sdk("CreateListener", e))?;
    answer
        .listeners()
        .first()
        .and_then(|l| l.listener_arn())
        .map(str::to_string)
        .ok_or_else(|| AwsError::new("CreateListener", "no listener ARN in the answer"))
}

pub async fn modify_listener(c: &Clients, arn: &str, l: Listener<'_>) -> Result<(), AwsError> {
    let request = c.elb.modify_listener().listener_arn(arn);
    with_listener!(request, l)
        .send()
        .await
        .map_err(|e| sdk("ModifyListener", e))?;
    Ok(())
}

/// Moves load balancer `arn` to `subnets` (one per availability zone).
pub async fn set_subnets(c: &Clients, arn: &str, subnets: Vec<String>) -> Result<(), AwsError> {
    c.elb
        .set_subnets()
        .load_balancer_arn(arn)
        .set_subnets(Some(subnets))
        .send()
        .await
        .map_err(|e| sdk("SetSubnets", e))?;
    Ok(())
}

pub async fn set_groups(c: &Clients, arn: &str, groups: Vec<String>) -> Result<(), AwsError> {
    c.elb
        .set_security_groups()
        .load_balancer_arn(arn)
        .set_security_groups(Some(groups))
        .send()
        .await
        .map_err(|e| sdk("SetSecurityGroups", e))?;
    Ok(())
}

pub async fn delete_listener(c: &Clients, arn: &str) -> Result<(), AwsError> {
    c.elb
        .delete_listener()
        .listener_arn(arn)
        .send()
        .await
        .map_err(|e| sdk("DeleteListener", e))?;
    Ok(())
}

fn target(instance: &str, port: Option<u16>) -> TargetDescription {
    TargetDescription::builder()
        .id(instance)
        .set_port(port.map(i32::from))
        .build()
}

pub async fn register(c: &Clients, tg: &str, instance: &str, port: u16) -> Result<(), AwsError> {
    c.elb
        .register_targets()
        .target_group_arn(tg)
        .targets(target(instance, Some(port)))
        .send()
        .await
        .map_err(|e| sdk("RegisterTargets", e))?;
    Ok(())
}

/// Deregisters `instance` from `tg` on each port it is registered on (a target registered on
/// a port other than the group's is only removed when its port is given).
pub async fn deregister(c: &Clients, tg: &str, instance: &str) -> Result<(), AwsError> {
    let registered: Vec<TargetDescription> = target_health(c, tg)
        .await?
        .iter()
        .filter_map(|d| d.target())
        .filter(|t| t.id() == Some(instance))
        .map(|t| target(instance, t.port().and_then(|p| u16::try_from(p).ok())))
        .collect();
    if registered.is_empty() {
        return Ok(());
    }
    c.elb
        .deregister_targets()
        .target_group_arn(tg)
        .set_targets(Some(registered))
        .send()
        .await
        .map_err(|e| sdk("DeregisterTargets", e))?;
    Ok(())
}
