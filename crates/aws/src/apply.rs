//! Apply: executes a cloud plan's operations in order, resolving what earlier operations created,
//! waiting where AWS is eventually consistent, and reporting each step as a JSON line.

use crate::discover::zone_id;
use crate::{emit, sdk, AwsError, Clients};
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, DomainType, InstanceType, IpPermission, IpRange,
    ResourceType, Tag, TagSpecification, UserIdGroupPair, VolumeType,
};
use aws_sdk_route53::client::Waiters as _;
use aws_sdk_route53::types::{
    Change, ChangeBatch, HostedZoneConfig, TagResourceType, Vpc, VpcRegion,
};
use infra_protocol::{
    describe, AliasTarget, ApplyRequest, CloudOp, ListenerAction, Port, Proto, ProviderEvent,
    RecordChange, RecordValue, Ref, Scope, Source, SourceFact, TAG_ENV, TAG_HOST, TAG_KEEP,
    TAG_ROLE, TAG_SUBNET,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one wait (an instance running, a volume attaching...) may take.
const WAIT: Duration = Duration::from_secs(900);

/// An apply that stopped: at which operation, and why.
pub struct Failure {
    pub index: Option<usize>,
    pub error: AwsError,
}

impl From<AwsError> for Failure {
    fn from(error: AwsError) -> Failure {
        Failure { index: None, error }
    }
}

/// What an operation created (its id), if anything.
type Created = Result<Option<String>, AwsError>;

/// The fields of a `RunInstance`, borrowed: more than one function should take one by one.
struct Launch<'o> {
    host: &'o str,
    ami: &'o str,
    instance_type: &'o str,
    subnet: &'o Ref,
    private_ip: Option<&'o str>,
    key_name: Option<&'o str>,
    groups: &'o [Ref],
    tags: &'o BTreeMap<String, String>,
    client_token: &'o str,
}

/// What this apply knows: ids created so far (by change address) and the hosts' addresses.
struct State<'a> {
    c: &'a Clients,
    scope: &'a Scope,
    /// The contents of the objects to upload, base64 by sha256.
    objects: &'a BTreeMap<String, String>,
    created: BTreeMap<String, String>,
    private_ips: BTreeMap<String, String>,
    public_ips: BTreeMap<String, String>,
    subnets_az: BTreeMap<String, String>,
    /// The load balancers created so far, by change address: (DNS name, hosted zone).
    load_balancers: BTreeMap<String, (String, String)>,
    /// The address of the change whose operation runs.
    current: String,
}

pub async fn apply(c: &Clients, req: &ApplyRequest) -> Result<(), Failure> {
    // No discovery first: the plan names existing resources by id and known addresses as
    // literals; what this apply creates (ids, addresses, a new subnet's zone) is recorded as it
    // goes, and a volume in an existing subnet looks the subnet's zone up once.
    let mut st = State {
        c,
        scope: &req.scope,
        objects: &req.objects,
        created: BTreeMap::new(),
        private_ips: BTreeMap::new(),
        public_ips: BTreeMap::new(),
        subnets_az: BTreeMap::new(),
        load_balancers: BTreeMap::new(),
        current: String::new(),
    };
    for (index, op) in req.ops.iter().enumerate() {
        emit(&ProviderEvent::Start {
            index,
            address: op.resource.clone(),
            text: describe(&op.op),
        });
        st.current = op.resource.clone();
        let id = st.run(index, &op.op).await.map_err(|error| Failure {
            index: Some(index),
            error: AwsError::new(
                format!("{} ({})", op.resource, describe(&op.op)),
                error.to_string(),
            ),
        })?;
        if let Some(id) = &id {
            st.created.insert(op.resource.clone(), id.clone());
        }
        emit(&ProviderEvent::Done { index, id });
    }
    let facts = crate::discover::discover(c, &req.scope).await?;
    emit(&ProviderEvent::Facts {
        facts: Box::new(facts),
    });
    Ok(())
}

/// How long a group or subnet may stay in use after what used it was deleted (a deleted load
/// balancer's network interfaces linger for a while on AWS).
const IN_USE_WAIT: Duration = Duration::from_secs(300);

/// Runs `call` again while AWS answers `DependencyViolation`, with a growing pause, for at
/// most [`IN_USE_WAIT`]; any other answer (or the last one) is returned.
async fn retry_in_use<F, Fut, E>(index: usize, what: &str, mut call: F) -> Result<(), E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: aws_sdk_ec2::error::ProvideErrorMetadata,
{
    let deadline = std::time::Instant::now() + IN_USE_WAIT;
    let mut pause = Duration::from_secs(2);
    loop {
        match call().await {
            Err(e)
                if e.code() == Some("DependencyViolation")
                    && std::time::Instant::now() + pause < deadline =>
            {
                emit(&ProviderEvent::Waiting {
                    index,
                    text: format!(
                        "{what} is still in use; trying again in {} s",
                        pause.as_secs()
                    ),
                });
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

fn tags(scope: &Scope, name: &str, extra: &[(&str, &str)]) -> Vec<Tag> {
    let mut t = vec![
        Tag::builder()
            .key(TAG_ENV)
            .value(&scope.environment)
            .build(),
        Tag::builder().key("Name").value(name).build(),
    ];
    for (k, v) in extra {
        t.push(Tag::builder().key(*k).value(*v).build());
    }
    t
}

fn spec(kind: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

fn permission(port: Port) -> aws_sdk_ec2::types::builders::IpPermissionBuilder {
    IpPermission::builder()
        .ip_protocol(match port.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
        .from_port(port.number as i32)
        .to_port(port.number as i32)
}

impl State<'_> {
    fn resolve(&self, r: &Ref) -> Result<String, AwsError> {
        match r {
            Ref::Id(id) => Ok(id.clone()),
            Ref::New(address) => self.created.get(address).cloned().ok_or_else(|| {
                AwsError::new(
                    "resolve a reference",
                    format!("{address} was not created earlier in this apply"),
                )
            }),
        }
    }

    fn resolve_all(&self, refs: &[Ref]) -> Result<Vec<String>, AwsError> {
        refs.iter().map(|r| self.resolve(r)).collect()
    }

    /// An alias target's DNS name and hosted zone: known, or a load balancer this apply made.
    fn alias(&self, a: &AliasTarget) -> Result<(String, String), AwsError> {
        match a {
            AliasTarget::Name { dns_name, zone_id } => Ok((dns_name.clone(), zone_id.clone())),
            AliasTarget::LoadBalancer(address) => {
                self.load_balancers.get(address).cloned().ok_or_else(|| {
                    AwsError::new(
                        "resolve an alias record",
                        format!("{address}: no load balancer was created earlier in this apply"),
                    )
                })
            }
        }
    }

    fn value(&self, v: &RecordValue) -> Result<String, AwsError> {
        let (map, host, what) = match v {
            RecordValue::Ip(ip) | RecordValue::Text(ip) => return Ok(ip.clone()),
            RecordValue::PublicIpOf(h) => (&self.public_ips, h, "Elastic IP"),
            RecordValue::PrivateIpOf(h) => (&self.private_ips, h, "private IP"),
        };
        map.get(host)
            .cloned()
            .ok_or_else(|| AwsError::new("resolve a record", format!("{host} has no {what}")))
    }

    /// Executes one operation: one handler per kind of operation, each returning the id of what
    /// it created, if anything.
    async fn run(&mut self, index: usize, op: &CloudOp) -> Created {
        use CloudOp::*;
        match op {
            CreateVpc { cidr } => self.create_vpc(cidr).await,
            CreateInternetGateway { vpc } => self.create_internet_gateway(vpc).await,
            CreateSubnet {
                vpc,
                cidr,
                availability_zone,
            } => self.create_subnet(vpc, cidr, availability_zone).await,
            DeleteSubnet { id } => self.delete_subnet(index, id).await,
            DeleteVpc {
                id,
                internet_gateway,
            } => self.delete_vpc(id, internet_gateway.as_deref()).await,
            CreateSecurityGroup { vpc, name, role } => {
                self.create_security_group(vpc, name, role).await
            }
            AuthorizeIngress {
                group,
                port,
                source,
            } => self.authorize_ingress(group, *port, source).await,
            RevokeIngress {
                group,
                port,
                source,
            } => self.revoke_ingress(group, *port, source).await,
            DeleteSecurityGroup { id } => self.delete_security_group(index, id).await,
            RunInstance {
                host,
                ami,
                instance_type,
                subnet,
                private_ip,
                key_name,
                groups,
                tags,
                client_token,
            } => {
                let launch = Launch {
                    host,
                    ami,
                    instance_type,
                    subnet,
                    private_ip: private_ip.as_deref(),
                    key_name: key_name.as_deref(),
                    groups,
                    tags,
                    client_token,
                };
                self.run_instance(index, launch).await
            }
            ChangeInstanceType { id, instance_type } => {
                self.change_instance_type(index, id, instance_type).await
            }
            StartInstance { id } => self.start(index, id).await.map(|()| None),
            SetInstanceGroups { id, groups } => self.set_instance_groups(id, groups).await,
            SetTags { id, tags } => self.set_tags(id, tags).await,
            TerminateInstance { id } => self.terminate_instance(index, id).await,
            CreateVolume {
                host,
                role,
                size_gb,
                subnet,
                keep,
            } => {
                self.create_volume(host, role, *size_gb, subnet, *keep)
                    .await
            }
            AttachVolume {
                volume,
                instance,
                device,
            } => self.attach_volume(index, volume, instance, device).await,
            DetachVolume { id, instance } => self.detach_volume(id, instance).await,
            DeleteVolume { id } => self.delete_volume(id).await,
            AllocateAddress { host } => self.allocate_address(host).await,
            AssociateAddress { address, instance } => {
                self.associate_address(address, instance).await
            }
            SetReverseDns { address, name } => self.set_reverse_dns(address, name).await,
            ReleaseAddress {
                allocation_id,
                association_id,
            } => self.release_address(allocation_id, association_id).await,
            CreateZone { name, vpc } => self.create_zone(name, vpc.as_ref()).await,
            ChangeRecords {
                zone,
                zone_name,
                changes,
            } => self.change_records(index, zone, zone_name, changes).await,
            DeleteZone { id } => self.delete_zone(index, id).await,
            _ => self.others(index, op).await,
        }
    }

    /// The bucket and its objects, and the load balancers.
    async fn others(&mut self, index: usize, op: &CloudOp) -> Created {
        use CloudOp::*;
        match op {
            CreateBucket { .. }
            | SecureBucket { .. }
            | PutObject { .. }
            | DeleteObject { .. }
            | DeleteBucket { .. } => self.objects(op).await.map(|()| None),
            _ => self.balancers(index, op).await,
        }
    }

    /// Load balancers, target groups, listeners, registrations (`elb.rs`).
    async fn balancers(&mut self, index: usize, op: &CloudOp) -> Created {
        use crate::elb;
        let c = self.c;
        match op {
            CloudOp::CreateLbSubnet {
                vpc,
                cidr,
                availability_zone,
            } => self.create_lb_subnet(vpc, cidr, availability_zone).await,
            CloudOp::CreateLoadBalancer {
                role,
                name,
                subnets,
                group,
            } => {
                let subnets = self.resolve_all(subnets)?;
                let group = self.resolve(group)?;
                let lb =
                    elb::create_load_balancer(c, self.scope, role, name, subnets, group).await?;
                self.load_balancers
                    .insert(self.current.clone(), (lb.dns_name, lb.zone_id));
                Ok(Some(lb.arn))
            }
            CloudOp::DeleteLoadBalancer { arn } => elb::delete_load_balancer(c, index, arn)
                .await
                .map(|()| None),
            CloudOp::CreateTargetGroup {
                role,
                name,
                vpc,
                port,
                health,
            } => {
                let t = elb::NewTargetGroup {
                    role,
                    name,
                    vpc: self.resolve(vpc)?,
                    port: *port,
                    health,
                };
                elb::create_target_group(c, self.scope, t).await.map(Some)
            }
            CloudOp::ModifyTargetGroup { arn, health } => elb::modify_target_group(c, arn, health)
                .await
                .map(|()| None),
            CloudOp::DeleteTargetGroup { arn } => {
                elb::delete_target_group(c, arn).await.map(|()| None)
            }
            CloudOp::CreateListener {
                load_balancer,
                port,
                certificate,
                action,
            } => {
                let l = self.listener(*port, certificate.as_deref(), action)?;
                elb::create_listener(c, &self.resolve(load_balancer)?, l)
                    .await
                    .map(Some)
            }
            CloudOp::ModifyListener {
                arn,
                port,
                certificate,
                action,
            } => {
                let l = self.listener(*port, certificate.as_deref(), action)?;
                elb::modify_listener(c, arn, l).await.map(|()| None)
            }
            CloudOp::DeleteListener { arn } => elb::delete_listener(c, arn).await.map(|()| None),
            CloudOp::SetLbSubnets { arn, subnets } => {
                let subnets = self.resolve_all(subnets)?;
                elb::set_subnets(c, arn, subnets).await.map(|()| None)
            }
            CloudOp::SetLbGroups { arn, groups } => {
                let groups = self.resolve_all(groups)?;
                elb::set_groups(c, arn, groups).await.map(|()| None)
            }
            CloudOp::RegisterTarget {
                target_group,
                instance,
                port,
            } => {
                let (tg, instance) = (self.resolve(target_group)?, self.resolve(instance)?);
                elb::register(c, &tg, &instance, *port).await.map(|()| None)
            }
            CloudOp::DeregisterTarget {
                target_group,
                instance,
            } => elb::deregister(c, target_group, instance)
                .await
                .map(|()| None),
            other => Err(AwsError::new(
                "apply",
                format!("{} is not a load balancer operation", describe(other)),
            )),
        }
    }

    fn listener<'l>(
        &self,
        port: u16,
        certificate: Option<&'l str>,
        action: &ListenerAction,
    ) -> Result<crate::elb::Listener<'l>, AwsError> {
        Ok(crate::elb::Listener {
            port,
            certificate,
            forward: match action {
                ListenerAction::Forward(tg) => Some(self.resolve(tg)?),
                ListenerAction::RedirectHttps => None,
            },
        })
    }

    /// The bucket and its objects (`s3.rs`).
    async fn objects(&self, op: &CloudOp) -> Result<(), AwsError> {
        let (s3, env) = (&self.c.s3, self.scope.environment.as_str());
        match op {
            CloudOp::CreateBucket { name } => {
                crate::s3::create_bucket(s3, name, &self.c.region, env).await
            }
            CloudOp::SecureBucket { name } => crate::s3::secure_bucket(s3, name).await,
            CloudOp::PutObject {
                bucket,
                key,
                digest,
                content_type,
            } => {
                let text = self.objects.get(digest).ok_or_else(|| {
                    AwsError::new(
                        "upload",
                        format!("the request carries no content for {key}"),
                    )
                })?;
                let content = aws_smithy_types::base64::decode(text)
                    .map_err(|e| AwsError::new("upload", format!("{key}: {e}")))?;
                let put = crate::s3::Put {
                    bucket,
                    key,
                    content_type: content_type.as_deref(),
                    content,
                    environment: env,
                };
                crate::s3::put_object(s3, put).await
            }
            CloudOp::DeleteObject { bucket, key } => {
                crate::s3::delete_object(s3, bucket, key).await
            }
            CloudOp::DeleteBucket { name } => crate::s3::delete_bucket(s3, name).await,
            _ => Ok(()),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Network: VPC, internet gateway, subnet.

    async fn create_vpc(&self, cidr: &str) -> Created {
        let scope = self.scope;
        let out = self
            .c
            .ec2
            .create_vpc()
            .cidr_block(cidr)
            .tag_specifications(spec(
                ResourceType::Vpc,
                tags(scope, &scope.environment, &[]),
            ))
            .send()
            .await
            .map_err(|e| sdk("CreateVpc", e))?;
        let vpc = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| AwsError::new("CreateVpc", "no VPC id in the answer"))?
            .to_string();
        self.internet_gateway(&vpc).await?;
        Ok(Some(vpc))
    }

    async fn create_internet_gateway(&self, vpc: &Ref) -> Created {
        let vpc = self.resolve(vpc)?;
        self.internet_gateway(&vpc).await.map(Some)
    }

    async fn create_subnet(
        &mut self,
        vpc: &Ref,
        cidr: &str,
        availability_zone: &Option<String>,
    ) -> Created {
        let ec2 = &self.c.ec2;
        let scope = self.scope;
        let out = ec2
            .create_subnet()
            .vpc_id(self.resolve(vpc)?)
            .cidr_block(cidr)
            .set_availability_zone(availability_zone.clone())
            .tag_specifications(spec(
                ResourceType::Subnet,
                tags(scope, &scope.environment, &[]),
            ))
            .send()
            .await
            .map_err(|e| sdk("CreateSubnet", e))?;
        let s = out
            .subnet()
            .ok_or_else(|| AwsError::new("CreateSubnet", "no subnet in the answer"))?;
        let id = s.subnet_id().unwrap_or_default().to_string();
        self.subnets_az.insert(
            id.clone(),
            s.availability_zone().unwrap_or_default().to_string(),
        );
        ec2.modify_subnet_attribute()
            .subnet_id(&id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| sdk("ModifySubnetAttribute", e))?;
        Ok(Some(id))
    }

    /// The load balancers' subnet: tagged `infra:subnet=lb`, no public IPs on launch (no
    /// instance goes in it).
    async fn create_lb_subnet(
        &mut self,
        vpc: &Ref,
        cidr: &str,
        availability_zone: &Option<String>,
    ) -> Created {
        let scope = self.scope;
        let name = format!("{}-lb", scope.environment);
        let out = self
            .c
            .ec2
            .create_subnet()
            .vpc_id(self.resolve(vpc)?)
            .cidr_block(cidr)
            .set_availability_zone(availability_zone.clone())
            .tag_specifications(spec(
                ResourceType::Subnet,
                tags(scope, &name, &[(TAG_SUBNET, "lb")]),
            ))
            .send()
            .await
            .map_err(|e| sdk("CreateSubnet", e))?;
        Ok(out.subnet().and_then(|s| s.subnet_id()).map(str::to_string))
    }

    async fn delete_subnet(&self, index: usize, id: &str) -> Created {
        let ec2 = &self.c.ec2;
        retry_in_use(index, id, || async {
            ec2.delete_subnet().subnet_id(id).send().await.map(|_| ())
        })
        .await
        .map_err(|e| sdk("DeleteSubnet", e))?;
        Ok(None)
    }

    async fn delete_vpc(&self, id: &str, internet_gateway: Option<&str>) -> Created {
        let ec2 = &self.c.ec2;
        if let Some(igw) = internet_gateway {
            ec2.detach_internet_gateway()
                .internet_gateway_id(igw)
                .vpc_id(id)
                .send()
                .await
                .map_err(|e| sdk("DetachInternetGateway", e))?;
            ec2.delete_internet_gateway()
                .internet_gateway_id(igw)
                .send()
                .await
                .map_err(|e| sdk("DeleteInternetGateway", e))?;
        }
        ec2.delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map_err(|e| sdk("DeleteVpc", e))?;
        Ok(None)
    }

    // -----------------------------------------------------------------------------------------
    // Security groups and their rules.

    async fn create_security_group(&self, vpc: &Ref, name: &str, role: &str) -> Created {
        let scope = self.scope;
        let env = &scope.environment;
        let out = self
            .c
            .ec2
            .create_security_group()
            .group_name(name)
            .description(format!("infra: role {role} of {env}"))
            .vpc_id(self.resolve(vpc)?)
            .tag_specifications(spec(
                ResourceType::SecurityGroup,
                tags(scope, name, &[(TAG_ROLE, role)]),
            ))
            .send()
            .await
            .map_err(|e| sdk("CreateSecurityGroup", e))?;
        Ok(out.group_id().map(str::to_string))
    }

    async fn authorize_ingress(&self, group: &Ref, port: Port, source: &Source) -> Created {
        let perm = match source {
            Source::World => {
                permission(port).ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            }
            Source::Group(g) => permission(port).user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(self.resolve(g)?)
                    .build(),
            ),
        };
        self.c
            .ec2
            .authorize_security_group_ingress()
            .group_id(self.resolve(group)?)
            .ip_permissions(perm.build())
            .send()
            .await
            .map_err(|e| sdk("AuthorizeSecurityGroupIngress", e))?;
        Ok(None)
    }

    async fn revoke_ingress(&self, group: &str, port: Port, source: &SourceFact) -> Created {
        let perm = match source {
            SourceFact::Cidr(c) => {
                permission(port).ip_ranges(IpRange::builder().cidr_ip(c).build())
            }
            SourceFact::Group(g) => {
                permission(port).user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build())
            }
        };
        self.c
            .ec2
            .revoke_security_group_ingress()
            .group_id(group)
            .ip_permissions(perm.build())
            .send()
            .await
            .map_err(|e| sdk("RevokeSecurityGroupIngress", e))?;
        Ok(None)
    }

    async fn delete_security_group(&self, index: usize, id: &str) -> Created {
        let ec2 = &self.c.ec2;
        retry_in_use(index, id, || async {
            ec2.delete_security_group()
                .group_id(id)
                .send()
                .await
                .map(|_| ())
        })
        .await
        .map_err(|e| sdk("DeleteSecurityGroup", e))?;
        Ok(None)
    }

    // -----------------------------------------------------------------------------------------
    // Instances.

    async fn run_instance(&mut self, index: usize, launch: Launch<'_>) -> Created {
        let ec2 = &self.c.ec2;
        let host = launch.host;
        let mut instance_tags = Vec::new();
        for (k, v) in launch.tags {
            instance_tags.push(Tag::builder().key(k).value(v).build());
        }
        let groups = launch
            .groups
            .iter()
            .map(|g| self.resolve(g))
            .collect::<Result<Vec<_>, _>>()?;
        let out = ec2
            .run_instances()
            .image_id(launch.ami)
            .instance_type(InstanceType::from(launch.instance_type))
            .min_count(1)
            .max_count(1)
            .subnet_id(self.resolve(launch.subnet)?)
            .set_private_ip_address(launch.private_ip.map(str::to_string))
            .set_key_name(launch.key_name.map(str::to_string))
            .set_security_group_ids(Some(groups))
            .tag_specifications(spec(ResourceType::Instance, instance_tags))
            .client_token(launch.client_token)
            .send()
            .await
            .map_err(|e| sdk("RunInstances", e))?;
        let i = out
            .instances()
            .first()
            .ok_or_else(|| AwsError::new("RunInstances", "no instance in the answer"))?;
        let id = i.instance_id().unwrap_or_default().to_string();
        if let Some(ip) = i.private_ip_address() {
            self.private_ips.insert(host.to_string(), ip.to_string());
        }
        emit(&ProviderEvent::Waiting {
            index,
            text: format!("waiting for {host} ({id}) to run"),
        });
        ec2.wait_until_instance_running()
            .instance_ids(&id)
            .wait(WAIT)
            .await
            .map_err(|e| sdk(format!("wait for {id} to run"), e))?;
        Ok(Some(id))
    }

    async fn change_instance_type(&self, index: usize, id: &str, instance_type: &str) -> Created {
        let ec2 = &self.c.ec2;
        ec2.stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| sdk("StopInstances", e))?;
        emit(&ProviderEvent::Waiting {
            index,
            text: format!("waiting for {id} to stop"),
        });
        ec2.wait_until_instance_stopped()
            .instance_ids(id)
            .wait(WAIT)
            .await
            .map_err(|e| sdk(format!("wait for {id} to stop"), e))?;
        ec2.modify_instance_attribute()
            .instance_id(id)
            .instance_type(AttributeValue::builder().value(instance_type).build())
            .send()
            .await
            .map_err(|e| sdk("ModifyInstanceAttribute", e))?;
        self.start(index, id).await?;
        Ok(None)
    }

    async fn set_instance_groups(&self, id: &str, groups: &[Ref]) -> Created {
        let groups = groups
            .iter()
            .map(|g| self.resolve(g))
            .collect::<Result<Vec<_>, _>>()?;
        self.c
            .ec2
            .modify_instance_attribute()
            .instance_id(id)
            .set_groups(Some(groups))
            .send()
            .await
            .map_err(|e| sdk("ModifyInstanceAttribute", e))?;
        Ok(None)
    }

    async fn set_tags(&self, id: &str, tags: &BTreeMap<String, String>) -> Created {
        self.c
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| sdk("CreateTags", e))?;
        Ok(None)
    }

    async fn terminate_instance(&self, index: usize, id: &str) -> Created {
        let ec2 = &self.c.ec2;
        ec2.terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| sdk("TerminateInstances", e))?;
        emit(&ProviderEvent::Waiting {
            index,
            text: format!("waiting for {id} to terminate"),
        });
        ec2.wait_until_instance_terminated()
            .instance_ids(id)
            .wait(WAIT)
            .await
            .map_err(|e| sdk(format!("wait for {id} to terminate"), e))?;
        Ok(None)
    }

    // -----------------------------------------------------------------------------------------
    // Volumes.

    async fn create_volume(
        &self,
        host: &str,
        role: &str,
        size_gb: u32,
        subnet: &Ref,
        keep: bool,
    ) -> Created {
        let ec2 = &self.c.ec2;
        let subnet = self.resolve(subnet)?;
        let az = match self.subnets_az.get(&subnet) {
            Some(az) => az.clone(),
            None => {
                let out = ec2
                    .describe_subnets()
                    .subnet_ids(&subnet)
                    .send()
                    .await
                    .map_err(|e| sdk("DescribeSubnets", e))?;
                out.subnets()
                    .first()
                    .and_then(|s| s.availability_zone())
                    .unwrap_or_default()
                    .to_string()
            }
        };
        let keep = keep.to_string();
        let out = ec2
            .create_volume()
            .availability_zone(az)
            .size(size_gb as i32)
            .volume_type(VolumeType::Gp3)
            .tag_specifications(spec(
                ResourceType::Volume,
                tags(
                    self.scope,
                    &format!("{host}-{role}"),
                    &[(TAG_HOST, host), (TAG_ROLE, role), (TAG_KEEP, &keep)],
                ),
            ))
            .send()
            .await
            .map_err(|e| sdk("CreateVolume", e))?;
        Ok(out.volume_id().map(str::to_string))
    }

    async fn attach_volume(
        &self,
        index: usize,
        volume: &Ref,
        instance: &Ref,
        device: &str,
    ) -> Created {
        let ec2 = &self.c.ec2;
        let volume = self.resolve(volume)?;
        let instance = self.resolve(instance)?;
        emit(&ProviderEvent::Waiting {
            index,
            text: format!("waiting for {volume} to be available"),
        });
        ec2.wait_until_volume_available()
            .volume_ids(&volume)
            .wait(WAIT)
            .await
            .map_err(|e| sdk(format!("wait for {volume} to be available"), e))?;
        ec2.attach_volume()
            .volume_id(&volume)
            .instance_id(&instance)
            .device(device)
            .send()
            .await
            .map_err(|e| sdk("AttachVolume", e))?;
        ec2.wait_until_volume_in_use()
            .volume_ids(&volume)
            .wait(WAIT)
            .await
            .map_err(|e| sdk(format!("wait for {volume} to attach"), e))?;
        Ok(None)
    }

    async fn detach_volume(&self, id: &str, instance: &str) -> Created {
        let ec2 = &self.c.ec2;
        ec2.detach_volume()
            .volume_id(id)
            .instance_id(instance)
            .send()
            .await
            .map_err(|e| sdk("DetachVolume", e))?;
        ec2.wait_until_volume_available()
            .volume_ids(id)
            .wait(WAIT)
            .await
            .map_err(|e| sdk(format!("wait for {id} to detach"), e))?;
        Ok(None)
    }

    async fn delete_volume(&self, id: &str) -> Created {
        self.c
            .ec2
            .delete_volume()
            .volume_id(id)
            .send()
            .await
            .map_err(|e| sdk("DeleteVolume", e))?;
        Ok(None)
    }

    // -----------------------------------------------------------------------------------------
    // Elastic IPs.

    async fn allocate_address(&mut self, host: &str) -> Created {
        let out = self
            .c
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(spec(
                ResourceType::ElasticIp,
                tags(self.scope, host, &[(TAG_HOST, host)]),
            ))
            .send()
            .await
            .map_err(|e| sdk("AllocateAddress", e))?;
        if let Some(ip) = out.public_ip() {
            self.public_ips.insert(host.to_string(), ip.to_string());
        }
        Ok(out.allocation_id().map(str::to_string))
    }

    async fn associate_address(&self, address: &Ref, instance: &Ref) -> Created {
        self.c
            .ec2
            .associate_address()
            .allocation_id(self.resolve(address)?)
            .instance_id(self.resolve(instance)?)
            .allow_reassociation(true)
            .send()
            .await
            .map_err(|e| sdk("AssociateAddress", e))?;
        Ok(None)
    }

    async fn set_reverse_dns(&self, address: &Ref, name: &str) -> Created {
        self.c
            .ec2
            .modify_address_attribute()
            .allocation_id(self.resolve(address)?)
            .domain_name(name)
            .send()
            .await
            .map_err(|e| sdk("ModifyAddressAttribute (reverse DNS)", e))?;
        Ok(None)
    }

    async fn release_address(
        &self,
        allocation_id: &str,
        association_id: &Option<String>,
    ) -> Created {
        let ec2 = &self.c.ec2;
        if let Some(assoc) = association_id {
            ec2.disassociate_address()
                .association_id(assoc)
                .send()
                .await
                .map_err(|e| sdk("DisassociateAddress", e))?;
        }
        ec2.release_address()
            .allocation_id(allocation_id)
            .send()
            .await
            .map_err(|e| sdk("ReleaseAddress", e))?;
        Ok(None)
    }

    // -----------------------------------------------------------------------------------------
    // DNS: hosted zones and their A records.

    async fn create_zone(&self, name: &str, vpc: Option<&Ref>) -> Created {
        let env = self.scope.environment.as_str();
        let mut req = self
            .c
            .r53
            .create_hosted_zone()
            .name(name)
            // Unique per call: AWS refuses a reused reference. A killed run that
            // created the zone finds it by name and tag next time.
            .caller_reference(format!(
                "infra-{env}-{name}-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
            ));
        if let Some(vpc) = vpc {
            req = req
                .hosted_zone_config(
                    HostedZoneConfig::builder()
                        .private_zone(true)
                        .comment(format!("infra: internal names of {env}"))
                        .build(),
                )
                .vpc(
                    Vpc::builder()
                        .vpc_id(self.resolve(vpc)?)
                        .vpc_region(VpcRegion::from(self.c.region.as_str()))
                        .build(),
                );
        }
        let out = req.send().await.map_err(|e| sdk("CreateHostedZone", e))?;
        let id = out
            .hosted_zone()
            .map(|z| zone_id(z.id()).to_string())
            .ok_or_else(|| AwsError::new("CreateHostedZone", "no zone in the answer"))?;
        self.c
            .r53
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(&id)
            .add_tags(
                aws_sdk_route53::types::Tag::builder()
                    .key(TAG_ENV)
                    .value(env)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk("ChangeTagsForResource", e))?;
        Ok(Some(id))
    }

    async fn change_records(
        &self,
        index: usize,
        zone: &Ref,
        zone_name: &str,
        changes: &[RecordChange],
    ) -> Created {
        let zone = self.resolve(zone)?;
        // A delete must name the set exactly as it is now.
        let current = crate::records::record_sets(self.c, &zone).await?;
        let resolve = |ch: &RecordChange| -> Result<crate::records::Resolved, AwsError> {
            let values = ch
                .values
                .iter()
                .map(|v| self.value(v))
                .collect::<Result<Vec<_>, _>>()?;
            let alias = match &ch.alias {
                None => None,
                Some(a) => Some(self.alias(a)?),
            };
            Ok((values, alias))
        };
        let batch = crate::records::batch(&current, changes, &resolve)?;
        self.change_batch(index, &zone, zone_name, batch).await?;
        Ok(None)
    }

    async fn delete_zone(&self, index: usize, id: &str) -> Created {
        let current = crate::records::record_sets(self.c, id).await?;
        let batch = crate::records::delete_all(&current)?;
        self.change_batch(index, id, id, batch).await?;
        self.c
            .r53
            .delete_hosted_zone()
            .id(id)
            .send()
            .await
            .map_err(|e| sdk("DeleteHostedZone", e))?;
        Ok(None)
    }

    // -----------------------------------------------------------------------------------------
    // Steps some operations share.

    async fn start(&self, index: usize, id: &str) -> Result<(), AwsError> {
        let ec2 = &self.c.ec2;
        ec2.start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| sdk("StartInstances", e))?;
        emit(&ProviderEvent::Waiting {
            index,
            text: format!("waiting for {id} to run"),
        });
        ec2.wait_until_instance_running()
            .instance_ids(id)
            .wait(WAIT)
            .await
            .map_err(|e| sdk(format!("wait for {id} to run"), e))?;
        Ok(())
    }

    /// Creates and attaches an internet gateway, and routes 0.0.0.0/0 of the main route table
    /// through it. Returns the gateway id.
    async fn internet_gateway(&self, vpc: &str) -> Result<String, AwsError> {
        let ec2 = &self.c.ec2;
        let env = self.scope.environment.as_str();
        let out = ec2
            .create_internet_gateway()
            .tag_specifications(spec(
                ResourceType::InternetGateway,
                tags(self.scope, env, &[]),
            ))
            .send()
            .await
            .map_err(|e| sdk("CreateInternetGateway", e))?;
        let igw = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| AwsError::new("CreateInternetGateway", "no gateway id in the answer"))?
            .to_string();
        ec2.attach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| sdk("AttachInternetGateway", e))?;
        let tables = ec2
            .describe_route_tables()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(vpc)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk("DescribeRouteTables", e))?;
        let main = tables
            .route_tables()
            .iter()
            .find(|t| t.associations().iter().any(|a| a.main() == Some(true)))
            .or_else(|| tables.route_tables().first())
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| {
                AwsError::new("DescribeRouteTables", format!("{vpc} has no route table"))
            })?;
        ec2.create_route()
            .route_table_id(main)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&igw)
            .send()
            .await
            .map_err(|e| sdk("CreateRoute", e))?;
        Ok(igw)
    }

    /// One ChangeResourceRecordSets for a zone, and the wait until it is in sync.
    async fn change_batch(
        &self,
        index: usize,
        zone: &str,
        zone_name: &str,
        batch: Vec<Change>,
    ) -> Result<(), AwsError> {
        if batch.is_empty() {
            return Ok(());
        }
        let out = self
            .c
            .r53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(
                ChangeBatch::builder()
                    .comment(format!("infra: {}", self.scope.environment))
                    .set_changes(Some(batch))
                    .build()
                    .map_err(|e| AwsError::new("build a change batch", e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| sdk(format!("ChangeResourceRecordSets on {zone_name}"), e))?;
        if let Some(info) = out.change_info() {
            emit(&ProviderEvent::Waiting {
                index,
                text: format!("waiting for the records of {zone_name} to be in sync"),
            });
            self.c
                .r53
                .wait_until_resource_record_sets_changed()
                .id(info.id())
                .wait(WAIT)
                .await
                .map_err(|e| sdk(format!("wait for the records of {zone_name}"), e))?;
        }
        Ok(())
    }
}
