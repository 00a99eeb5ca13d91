//! What a provider executes: `CloudOp`, one call (or short sequence of calls) to the cloud, and
//! `Op`, an operation with its place in an apply; with the references and values they carry.

use crate::facts::SourceFact;
use crate::port::Port;
use crate::KNOWN_AFTER_APPLY;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A resource: one that exists (its id), or one an earlier operation of the same apply creates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ref {
    Id(String),
    /// The address of the change that creates it, e.g. `aws_instance.app1`.
    New(String),
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Id(id) => f.write_str(id),
            Ref::New(_) => f.write_str(KNOWN_AFTER_APPLY),
        }
    }
}

/// Where a desired rule lets traffic in from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    World,
    Group(Ref),
}

/// One value of a record set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordValue {
    Ip(String),
    /// The Elastic IP of a host, allocated in this apply.
    PublicIpOf(String),
    /// The private IP of a host, launched in this apply.
    PrivateIpOf(String),
    /// A value as Route53 stores it: `10 mail.example.org.` (MX), `"v=spf1 mx -all"` (TXT,
    /// quoted), `www.example.org.` (CNAME), `0 5 5060 sip.example.org.` (SRV).
    Text(String),
}

impl fmt::Display for RecordValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordValue::Ip(v) | RecordValue::Text(v) => f.write_str(v),
            _ => f.write_str(KNOWN_AFTER_APPLY),
        }
    }
}

/// The record types infra writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "MX")]
    Mx,
    #[serde(rename = "TXT")]
    Txt,
    #[serde(rename = "SRV")]
    Srv,
}

impl RecordType {
    pub const ALL: [RecordType; 6] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Mx,
        RecordType::Txt,
        RecordType::Srv,
    ];

    /// As DNS writes it: `A`, `AAAA`, `CNAME`, `MX`, `TXT`, `SRV`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Srv => "SRV",
        }
    }

    pub fn parse(text: &str) -> Option<RecordType> {
        RecordType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn record_type_a() -> RecordType {
    RecordType::A
}

fn record_ttl() -> i64 {
    crate::RECORD_TTL
}

/// Where an alias record points: a load balancer (its DNS name and its canonical hosted zone).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasTarget {
    /// Known: `dns_name` in the hosted zone `zone_id` (the load balancer's own zone).
    Name { dns_name: String, zone_id: String },
    /// The load balancer created earlier in this apply, by its change's address.
    LoadBalancer(String),
}

impl fmt::Display for AliasTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AliasTarget::Name { dns_name, .. } => f.write_str(dns_name),
            AliasTarget::LoadBalancer(_) => f.write_str(KNOWN_AFTER_APPLY),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordAction {
    Upsert,
    Delete,
}

/// One record set written or deleted: its name and type, and for a write its TTL and values
/// (or the alias target that replaces them). A delete names the set as the plan found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    pub action: RecordAction,
    pub name: String,
    #[serde(rename = "type", default = "record_type_a")]
    pub record_type: RecordType,
    #[serde(default = "record_ttl")]
    pub ttl: i64,
    #[serde(default)]
    pub values: Vec<RecordValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<AliasTarget>,
}

/// A target group's health check (HTTP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HealthCheck {
    pub path: String,
    /// HTTP codes: `200`, `200-299`, `200,302`.
    pub matcher: String,
    /// Seconds between checks.
    pub interval: u16,
    /// Consecutive successes before a target is healthy, failures before it is not.
    pub healthy: u8,
    pub unhealthy: u8,
}

/// What a listener does with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerAction {
    /// Forward to this target group.
    Forward(Ref),
    /// Answer 301 to the same URL over https (port 443).
    RedirectHttps,
}

/// One call (or short sequence of calls) to the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CloudOp {
    /// Also creates and attaches an internet gateway, and routes 0.0.0.0/0 through it.
    CreateVpc {
        cidr: String,
    },
    CreateInternetGateway {
        vpc: Ref,
    },
    /// Instances launched in it get a public IP for their outbound traffic.
    CreateSubnet {
        vpc: Ref,
        cidr: String,
        availability_zone: Option<String>,
    },
    CreateSecurityGroup {
        vpc: Ref,
        name: String,
        role: String,
    },
    AuthorizeIngress {
        group: Ref,
        port: Port,
        source: Source,
    },
    RevokeIngress {
        group: String,
        port: Port,
        source: SourceFact,
    },
    DeleteSecurityGroup {
        id: String,
    },
    RunInstance {
        host: String,
        ami: String,
        instance_type: String,
        subnet: Ref,
        private_ip: Option<String>,
        key_name: Option<String>,
        groups: Vec<Ref>,
        tags: BTreeMap<String, String>,
        /// Deterministic: AWS returns the first instance when a killed run launches again.
        client_token: String,
    },
    /// Stops the instance, changes its type, starts it again.
    ChangeInstanceType {
        id: String,
        instance_type: String,
    },
    StartInstance {
        id: String,
    },
    SetInstanceGroups {
        id: String,
        groups: Vec<Ref>,
    },
    SetTags {
        id: String,
        tags: BTreeMap<String, String>,
    },
    /// Terminates and waits until it is gone (its volumes are then free to attach elsewhere).
    TerminateInstance {
        id: String,
    },
    CreateVolume {
        host: String,
        role: String,
        size_gb: u32,
        subnet: Ref,
        keep: bool,
    },
    /// Waits until the volume is available, attaches, waits until attached.
    AttachVolume {
        volume: Ref,
        instance: Ref,
        device: String,
    },
    DetachVolume {
        id: String,
        instance: String,
    },
    DeleteVolume {
        id: String,
    },
    AllocateAddress {
        host: String,
    },
    AssociateAddress {
        address: Ref,
        instance: Ref,
    },
    SetReverseDns {
        address: Ref,
        name: String,
    },
    /// Disassociates first when associated.
    ReleaseAddress {
        allocation_id: String,
        association_id: Option<String>,
    },
    CreateZone {
        name: String,
        /// A private zone, associated with this VPC.
        vpc: Option<Ref>,
    },
    ChangeRecords {
        zone: Ref,
        zone_name: String,
        changes: Vec<RecordChange>,
    },
    /// Deletes the zone's remaining A records first.
    DeleteZone {
        id: String,
    },
    DeleteSubnet {
        id: String,
    },
    /// Detaches and deletes its internet gateway first.
    DeleteVpc {
        id: String,
        internet_gateway: Option<String>,
    },
    /// Creates the environment's bucket, then secures it as `SecureBucket` does and tags it.
    CreateBucket {
        name: String,
    },
    /// Blocks all public access (the four settings) and sets default encryption (SSE-S3).
    SecureBucket {
        name: String,
    },
    /// Uploads an object whose content travels apart from the plan (`ApplyRequest::objects`,
    /// by `digest`: the plan's, its sha256 or for content holding a secret the environment's
    /// keyed digest), written with SSE and the metadata `infra-environment` and `infra-sha256`
    /// (the provider's sha256 of the content).
    PutObject {
        bucket: String,
        key: String,
        digest: String,
        content_type: Option<String>,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    /// Deletes the (emptied) bucket.
    DeleteBucket {
        name: String,
    },
    /// The second subnet load balancers need (another availability zone), tagged
    /// `infra:subnet=lb`; instances are not launched in it.
    CreateLbSubnet {
        vpc: Ref,
        cidr: String,
        availability_zone: Option<String>,
    },
    /// An internet-facing application load balancer in `subnets`, tagged with the role.
    CreateLoadBalancer {
        role: String,
        name: String,
        subnets: Vec<Ref>,
        group: Ref,
    },
    /// Deletes it and waits until it is gone.
    DeleteLoadBalancer {
        arn: String,
    },
    /// An HTTP target group of instances on `port`, tagged with the role.
    CreateTargetGroup {
        role: String,
        name: String,
        vpc: Ref,
        port: u16,
        health: HealthCheck,
    },
    ModifyTargetGroup {
        arn: String,
        health: HealthCheck,
    },
    DeleteTargetGroup {
        arn: String,
    },
    /// HTTPS when `certificate` is given, else HTTP.
    CreateListener {
        load_balancer: Ref,
        port: u16,
        certificate: Option<String>,
        action: ListenerAction,
    },
    ModifyListener {
        arn: String,
        port: u16,
        certificate: Option<String>,
        action: ListenerAction,
    },
    DeleteListener {
        arn: String,
    },
    RegisterTarget {
        target_group: Ref,
        instance: Ref,
        port: u16,
    },
    DeregisterTarget {
        target_group: String,
        instance: String,
    },
    /// Moves a load balancer to these subnets (one per availability zone).
    SetLbSubnets {
        arn: String,
        subnets: Vec<Ref>,
    },
    SetLbGroups {
        arn: String,
        groups: Vec<Ref>,
    },
}

impl CloudOp {
    /// Execution order: every op of a lower phase runs before any of a higher one.
    pub fn phase(&self) -> u8 {
        use CloudOp::*;
        match self {
            CreateVpc { .. } => 10,
            CreateInternetGateway { .. } => 11,
            CreateSubnet { .. } => 12,
            CreateSecurityGroup { .. } => 20,
            RevokeIngress { .. } => 21,
            AuthorizeIngress { .. } => 22,
            ChangeRecords { .. } => 30,
            ReleaseAddress { .. } => 31,
            DetachVolume { .. } => 32,
            DeleteVolume { .. } => 33,
            TerminateInstance { .. } => 34,
            RunInstance { .. } => 40,
            ChangeInstanceType { .. } => 41,
            StartInstance { .. } => 42,
            SetInstanceGroups { .. } | SetTags { .. } => 43,
            CreateVolume { .. } => 50,
            AttachVolume { .. } => 51,
            AllocateAddress { .. } => 52,
            AssociateAddress { .. } => 53,
            SetReverseDns { .. } => 66,
            CreateZone { .. } => 60,
            DeleteSecurityGroup { .. } => 70,
            DeleteZone { .. } => 75,
            DeleteSubnet { .. } => 80,
            DeleteVpc { .. } => 81,
            CreateBucket { .. } => 13,
            SecureBucket { .. } => 14,
            PutObject { .. } => 67,
            DeleteObject { .. } => 68,
            DeleteBucket { .. } => 85,
            CreateLbSubnet { .. } => 12,
            // Load balancers: registrations and listeners go before what they point at.
            DeregisterTarget { .. } => 23,
            DeleteListener { .. } => 24,
            DeleteLoadBalancer { .. } => 25,
            CreateLoadBalancer { .. } => 26,
            CreateTargetGroup { .. } | ModifyTargetGroup { .. } => 27,
            CreateListener { .. } | ModifyListener { .. } => 28,
            // After the new subnet and group exist, before the old ones are deleted.
            SetLbSubnets { .. } | SetLbGroups { .. } => 28,
            DeleteTargetGroup { .. } => 29,
            RegisterTarget { .. } => 54,
        }
    }
}

/// An operation with its place in the apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub phase: u8,
    /// The address of the change it belongs to.
    pub resource: String,
    #[serde(flatten)]
    pub op: CloudOp,
}

/// A one-line description of an operation, for progress.
pub fn describe(op: &CloudOp) -> String {
    use CloudOp::*;
    match op {
        CreateVpc { cidr } => format!("create VPC {cidr} with an internet gateway"),
        CreateInternetGateway { .. } => "create the internet gateway".into(),
        CreateSubnet { cidr, .. } => format!("create subnet {cidr}"),
        CreateSecurityGroup { name, .. } => format!("create security group {name}"),
        AuthorizeIngress { port, .. } => format!("open {port}"),
        RevokeIngress { group, port, .. } => format!("close {port} on {group}"),
        DeleteSecurityGroup { id } => format!("delete security group {id}"),
        RunInstance {
            host,
            instance_type,
            ..
        } => format!("launch {host} ({instance_type}) and wait until it runs"),
        ChangeInstanceType { id, instance_type } => {
            format!("stop {id}, change its type to {instance_type}, start it")
        }
        StartInstance { id } => format!("start {id}"),
        SetInstanceGroups { id, .. } => format!("set the security groups of {id}"),
        SetTags { id, .. } => format!("tag {id}"),
        TerminateInstance { id } => format!("terminate {id} and wait until it is gone"),
        CreateVolume {
            host,
            role,
            size_gb,
            ..
        } => format!("create the {size_gb} GB volume of {host} ({role})"),
        AttachVolume { device, .. } => format!("attach the volume at {device}"),
        DetachVolume { id, .. } => format!("detach volume {id}"),
        DeleteVolume { id } => format!("delete volume {id}"),
        AllocateAddress { host } => format!("allocate the Elastic IP of {host}"),
        AssociateAddress { .. } => "associate the Elastic IP".into(),
        SetReverseDns { name, .. } => format!("set reverse DNS to {name}"),
        ReleaseAddress { allocation_id, .. } => format!("release Elastic IP {allocation_id}"),
        CreateZone { name, vpc } => format!(
            "create the {} zone {name}",
            if vpc.is_some() { "private" } else { "public" }
        ),
        ChangeRecords {
            zone_name, changes, ..
        } => format!("write {} records in {zone_name}", changes.len()),
        DeleteZone { id } => format!("delete zone {id}"),
        DeleteSubnet { id } => format!("delete subnet {id}"),
        DeleteVpc { id, .. } => format!("delete VPC {id}"),
        CreateBucket { name } => format!("create the private bucket {name}"),
        SecureBucket { name } => format!("block public access to bucket {name} and encrypt it"),
        PutObject { bucket, key, .. } => format!("upload s3://{bucket}/{key}"),
        DeleteObject { bucket, key } => format!("delete s3://{bucket}/{key}"),
        DeleteBucket { name } => format!("delete bucket {name}"),
        CreateLbSubnet { cidr, .. } => format!("create the load balancers' subnet {cidr}"),
        CreateLoadBalancer { name, .. } => format!("create load balancer {name}"),
        DeleteLoadBalancer { arn } => {
            format!("delete load balancer {arn} and wait until it is gone")
        }
        CreateTargetGroup { name, port, .. } => format!("create target group {name} (port {port})"),
        ModifyTargetGroup { arn, .. } => format!("change the health check of {arn}"),
        DeleteTargetGroup { arn } => format!("delete target group {arn}"),
        CreateListener { port, .. } => format!("create the listener on {port}"),
        ModifyListener { port, .. } => format!("change the listener on {port}"),
        DeleteListener { arn } => format!("delete listener {arn}"),
        RegisterTarget { port, .. } => format!("register the instance on port {port}"),
        DeregisterTarget { instance, .. } => format!("deregister {instance}"),
        SetLbSubnets { subnets, .. } => format!("move the load balancer to {}", refs(subnets)),
        SetLbGroups { groups, .. } => format!("give the load balancer group {}", refs(groups)),
    }
}

fn refs(refs: &[Ref]) -> String {
    refs.iter()
        .map(Ref::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
