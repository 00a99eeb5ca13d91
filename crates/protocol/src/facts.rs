//! What a provider found: `CloudFacts`, everything an environment owns in the cloud, by tag.

use crate::op::{HealthCheck, RecordType};
use crate::port::Port;
use serde::{Deserialize, Serialize};

/// Everything an environment owns in the cloud, as one paginated describe per kind found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudFacts {
    pub vpc: Option<VpcFact>,
    pub subnet: Option<SubnetFact>,
    pub security_groups: Vec<GroupFact>,
    pub instances: Vec<InstanceFact>,
    pub volumes: Vec<VolumeFact>,
    pub addresses: Vec<AddressFact>,
    pub zones: Vec<ZoneFact>,
    /// The bucket named by `provider.bucket`, if it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketFact>,
    /// The second subnet of the environment's load balancers (`aws_subnet.lb`): tagged
    /// `infra:subnet=lb`, or named by `provider.lb_subnet_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_subnet: Option<SubnetFact>,
    /// The second subnet infra made earlier, when `provider.lb_subnet_id` now names another:
    /// deleted once the load balancers have moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_lb_subnet: Option<SubnetFact>,
    /// The roles' application load balancers, found by their `infra:env` and `infra:role` tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<LoadBalancerFact>,
    /// The roles' target groups, found by the same tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_groups: Vec<TargetGroupFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcFact {
    pub id: String,
    pub cidr: String,
    /// Created by infra (tagged with the environment), so infra may change and delete it.
    pub owned: bool,
    pub internet_gateway: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetFact {
    pub id: String,
    pub cidr: String,
    pub availability_zone: String,
    pub owned: bool,
}

/// Where an ingress rule lets traffic in from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFact {
    Cidr(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleFact {
    pub port: Port,
    pub source: SourceFact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFact {
    pub id: String,
    pub name: String,
    pub role: String,
    pub rules: Vec<RuleFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFact {
    pub id: String,
    pub host: String,
    /// `pending`, `running`, `stopping`, `stopped` (terminated ones are not listed).
    pub state: String,
    pub ami: String,
    pub instance_type: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub security_groups: Vec<String>,
    pub roles: String,
    pub launch_time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeFact {
    pub id: String,
    pub host: String,
    pub role: String,
    pub size_gb: u32,
    pub attached_to: Option<String>,
    pub device: Option<String>,
    pub keep: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressFact {
    pub allocation_id: String,
    pub public_ip: String,
    pub host: String,
    pub instance: Option<String>,
    pub association_id: Option<String>,
    pub reverse_dns: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneFact {
    pub id: String,
    /// Without the trailing dot.
    pub name: String,
    pub private: bool,
    pub owned: bool,
    pub records: Vec<RecordFact>,
}

/// One value of a record set (a set of several values is several facts), or an alias record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordFact {
    /// Without the trailing dot, lowercase.
    pub name: String,
    /// As Route53 stores it (a TXT value quoted); empty for an alias.
    pub value: String,
    #[serde(rename = "type", default = "record_type_a")]
    pub record_type: RecordType,
    #[serde(default = "record_ttl")]
    pub ttl: i64,
    /// An alias record's target: its DNS name (without the trailing dot) and hosted zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<(String, String)>,
}

fn record_type_a() -> RecordType {
    RecordType::A
}

fn record_ttl() -> i64 {
    crate::RECORD_TTL
}

/// The environment's S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketFact {
    pub name: String,
    /// The value of its `infra:env` tag: infra created it for that environment.
    pub environment: Option<String>,
    /// All four Block Public Access settings are on.
    pub public_access_blocked: bool,
    /// It has a default encryption configuration.
    pub encrypted: bool,
    /// Every object in it (listed only when the bucket is this environment's), sorted by key.
    pub objects: Vec<ObjectFact>,
}

/// One object of the bucket, with the metadata infra writes on the objects it uploads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectFact {
    pub key: String,
    /// `infra-environment` metadata: the environment that published it.
    pub environment: Option<String>,
    /// `infra-sha256` metadata: the sha256 of its content when infra wrote it.
    pub sha256: Option<String>,
}

impl CloudFacts {
    /// The running (or starting) instance of `host`: the oldest one when there are several.
    pub fn instance(&self, host: &str) -> Option<&InstanceFact> {
        self.instances
            .iter()
            .filter(|i| i.host == host)
            .min_by(|a, b| (&a.launch_time, &a.id).cmp(&(&b.launch_time, &b.id)))
    }

    pub fn address(&self, host: &str) -> Option<&AddressFact> {
        self.addresses.iter().find(|a| a.host == host)
    }
}

/// An application load balancer of a role, with its listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerFact {
    pub arn: String,
    pub name: String,
    pub role: String,
    /// Without the trailing dot.
    pub dns_name: String,
    /// Its canonical hosted zone (an alias record's target zone).
    pub zone_id: String,
    pub listeners: Vec<ListenerFact>,
    /// Its subnets' ids, sorted.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Its security groups' ids, sorted.
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// One listener of a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerFact {
    pub arn: String,
    pub port: u16,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// The default certificate (HTTPS).
    pub certificate: Option<String>,
    /// The target group its default action forwards to.
    pub forward: Option<String>,
    /// Its default action redirects to https (port 443, 301).
    pub redirect_https: bool,
}

/// A target group of a role, with the instances registered in it (draining ones left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroupFact {
    pub arn: String,
    pub name: String,
    pub role: String,
    pub port: u16,
    pub health: HealthCheck,
    /// Instance ids, sorted.
    pub targets: Vec<String>,
}
