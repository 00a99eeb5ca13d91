"""Dump what an environment looks like in AWS (or moto), independently of the project's code.

The Rust integration tests run this against a moto server to check what the project did, with
boto3 rather than with the project's own AWS client. Read-only calls only.

Usage: moto_state.py ENV   (region from AWS_DEFAULT_REGION, default us-east-1; endpoint from
AWS_ENDPOINT_URL, which boto3 honours)

Prints one JSON object (sorted keys, indent 1) with everything tagged infra:env=ENV: instances
(terminated ones included), security_groups (by name, rules as "22/tcp from 0.0.0.0/0" or
"3306/tcp from <group name>"), volumes, addresses (with their PTR record), vpcs and subnets;
plus every Route 53 hosted zone in the account with its tags, its A records (`a_records`: name ->
value, or sorted values) and every record set (`records`: "NAME TYPE" -> ttl, sorted values, alias
target and its hosted zone); load_balancers (by name: type, scheme, DNS name, canonical zone, security group names,
subnets with their zones, listeners by port with protocol, certificates and default action) and
target_groups (by name: port, protocol, health check, registered targets by host, role tag) of
the environment. Any API error
exits non-zero with the error on stderr and nothing on stdout.

moto_state.py --bucket NAME prints the S3 bucket instead: {"exists": false}, or its tags,
public_access_block (the four settings), encryption (the default algorithm), and objects by key
with the sha256 of the bytes GetObject returns, their metadata and server-side encryption.
"""

import json
import os
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def paginate(client, operation, key, **kwargs):
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page[key]


def rules(group, group_names):
    """Ingress rules as sorted strings like "22/tcp from 0.0.0.0/0"."""
    out = []
    for perm in group["IpPermissions"]:
        proto = perm["IpProtocol"]
        if proto == "-1":
            what = "all"
        else:
            low, high = perm.get("FromPort"), perm.get("ToPort")
            ports = str(low) if low == high else f"{low}-{high}"
            what = f"{ports}/{proto}"
        sources = [r["CidrIp"] for r in perm.get("IpRanges", [])]
        sources += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
        sources += [group_names.get(p["GroupId"], p["GroupId"]) for p in perm.get("UserIdGroupPairs", [])]
        out += [f"{what} from {source}" for source in sources]
    return sorted(out)


def zone(route53, z):
    zone_id = z["Id"].split("/")[-1]
    tag_set = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)
    a_records = {}
    record_sets = {}
    for rrset in paginate(route53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone_id):
        values = [r["Value"] for r in rrset.get("ResourceRecords", [])]
        name = rrset["Name"].rstrip(".")
        record_sets[f"{name} {rrset['Type']}"] = {
            "ttl": rrset.get("TTL"),
            "values": sorted(values),
            "alias": rrset["AliasTarget"]["DNSName"].rstrip(".") if "AliasTarget" in rrset else None,
            "alias_zone": rrset["AliasTarget"]["HostedZoneId"] if "AliasTarget" in rrset else None,
        }
        if rrset["Type"] != "A":
            continue
        if "AliasTarget" in rrset:
            values.append(rrset["AliasTarget"]["DNSName"])
        a_records.setdefault(name, []).extend(values)
    return {
        "private": z["Config"]["PrivateZone"],
        "id": zone_id,
        "tags": tags(tag_set["ResourceTagSet"]),
        "a_records": {name: v[0] if len(v) == 1 else sorted(v) for name, v in a_records.items()},
        "records": record_sets,
    }


def balancers(env, group_names, host_of):
    """The environment's ELBv2 load balancers and target groups (found by their tags)."""
    elb = boto3.client("elbv2", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    ec2 = boto3.client("ec2", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))

    def tagged(arns):
        out = {}
        for i in range(0, len(arns), 20):
            for d in elb.describe_tags(ResourceArns=arns[i:i + 20])["TagDescriptions"]:
                out[d["ResourceArn"]] = tags(d)
        return out

    all_tgs = list(paginate(elb, "describe_target_groups", "TargetGroups"))
    tg_names = {t["TargetGroupArn"]: t["TargetGroupName"] for t in all_tgs}

    def action(a):
        if a["Type"] == "forward":
            return {"type": "forward", "target_group": tg_names.get(a.get("TargetGroupArn"), a.get("TargetGroupArn"))}
        if a["Type"] == "redirect":
            r = a["RedirectConfig"]
            return {"type": "redirect", "protocol": r.get("Protocol"), "port": r.get("Port"), "status": r.get("StatusCode")}
        return {"type": a["Type"]}

    lbs = list(paginate(elb, "describe_load_balancers", "LoadBalancers"))
    lb_tags = tagged([l["LoadBalancerArn"] for l in lbs])
    load_balancers = {}
    for l in lbs:
        t = lb_tags.get(l["LoadBalancerArn"], {})
        if t.get("infra:env") != env:
            continue
        listeners = {}
        for li in paginate(elb, "describe_listeners", "Listeners", LoadBalancerArn=l["LoadBalancerArn"]):
            listeners[str(li["Port"])] = {
                "arn": li["ListenerArn"],
                "protocol": li["Protocol"],
                "certificates": sorted(c["CertificateArn"] for c in li.get("Certificates", [])),
                "actions": [action(a) for a in li["DefaultActions"]],
            }
        subnets = [a["SubnetId"] for a in l.get("AvailabilityZones", [])]
        zones = {}
        if subnets:
            for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"]:
                zones[s["SubnetId"]] = s["AvailabilityZone"]
        load_balancers[l["LoadBalancerName"]] = {
            "type": l["Type"],
            "scheme": l["Scheme"],
            "dns_name": l["DNSName"],
            "zone_id": l["CanonicalHostedZoneId"],
            "security_groups": sorted(group_names.get(g, g) for g in l.get("SecurityGroups", [])),
            "subnet_zones": sorted(zones.values()),
            "listeners": listeners,
            "tags": t,
        }
    tg_tags = tagged([t["TargetGroupArn"] for t in all_tgs])
    target_groups = {}
    for t in all_tgs:
        tt = tg_tags.get(t["TargetGroupArn"], {})
        if tt.get("infra:env") != env:
            continue
        health = elb.describe_target_health(TargetGroupArn=t["TargetGroupArn"])["TargetHealthDescriptions"]
        target_groups[t["TargetGroupName"]] = {
            "arn": t["TargetGroupArn"],
            "port": t["Port"],
            "protocol": t["Protocol"],
            "health": {
                "path": t.get("HealthCheckPath"),
                "matcher": t.get("Matcher", {}).get("HttpCode"),
                "interval": t.get("HealthCheckIntervalSeconds"),
                "healthy": t.get("HealthyThresholdCount"),
                "unhealthy": t.get("UnhealthyThresholdCount"),
            },
            "targets": sorted(
                f"{host_of.get(h['Target']['Id'], h['Target']['Id'])}:{h['Target'].get('Port')}"
                for h in health
                if h.get("TargetHealth", {}).get("State") != "draining"
            ),
            "tags": tt,
        }
    return load_balancers, target_groups


def inspect(env):
    ec2 = boto3.client("ec2", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    route53 = boto3.client("route53")
    env_filter = [{"Name": "tag:infra:env", "Values": [env]}]

    # Every instance and group (not only this env's) so that references resolve.
    all_instances = [
        i
        for r in paginate(ec2, "describe_instances", "Reservations")
        for i in r["Instances"]
    ]
    host_of = {i["InstanceId"]: tags(i).get("infra:host") for i in all_instances}
    all_groups = list(paginate(ec2, "describe_security_groups", "SecurityGroups"))
    group_names = {g["GroupId"]: g["GroupName"] for g in all_groups}

    instances = [
        {
            "id": i["InstanceId"],
            "host": tags(i).get("infra:host"),
            "state": i["State"]["Name"],
            "type": i["InstanceType"],
            "ami": i["ImageId"],
            "private_ip": i.get("PrivateIpAddress"),
            "security_groups": sorted(g["GroupName"] for g in i.get("SecurityGroups", [])),
            "tags": tags(i),
        }
        for i in all_instances
        if tags(i).get("infra:env") == env
    ]
    security_groups = {
        g["GroupName"]: {"role": tags(g).get("infra:role"), "rules": rules(g, group_names)}
        for g in all_groups
        if tags(g).get("infra:env") == env
    }

    volumes = []
    for v in paginate(ec2, "describe_volumes", "Volumes", Filters=env_filter):
        attachment = (v.get("Attachments") or [{}])[0]
        volumes.append({
            "id": v["VolumeId"],
            "host": tags(v).get("infra:host"),
            "role": tags(v).get("infra:role"),
            "size": v["Size"],
            "state": v["State"],
            "attached_to_host": host_of.get(attachment.get("InstanceId")),
            "device": attachment.get("Device"),
            "tags": tags(v),
        })

    addresses = []
    for a in ec2.describe_addresses(Filters=env_filter)["Addresses"]:
        attrs = list(paginate(
            ec2, "describe_addresses_attribute", "Addresses",
            AllocationIds=[a["AllocationId"]], Attribute="domain-name",
        ))
        addresses.append({
            "allocation_id": a["AllocationId"],
            "public_ip": a["PublicIp"],
            "host": tags(a).get("infra:host"),
            "instance_host": host_of.get(a.get("InstanceId")),
            "ptr": attrs[0].get("PtrRecord") if attrs else None,
        })

    zones = {
        z["Name"].rstrip("."): zone(route53, z)
        for z in paginate(route53, "list_hosted_zones", "HostedZones")
    }

    vpcs = [
        {"id": v["VpcId"], "cidr": v["CidrBlock"], "tags": tags(v)}
        for v in paginate(ec2, "describe_vpcs", "Vpcs", Filters=env_filter)
    ]
    subnets = [
        {
            "id": s["SubnetId"],
            "cidr": s["CidrBlock"],
            "az": s["AvailabilityZone"],
            "map_public_ip_on_launch": s["MapPublicIpOnLaunch"],
            "tags": tags(s),
        }
        for s in paginate(ec2, "describe_subnets", "Subnets", Filters=env_filter)
    ]

    load_balancers, target_groups = balancers(env, group_names, host_of)

    key = lambda *fields: lambda d: tuple(d[f] or "" for f in fields)  # noqa: E731
    return {
        "load_balancers": load_balancers,
        "target_groups": target_groups,
        "instances": sorted(instances, key=key("host", "id")),
        "security_groups": security_groups,
        "volumes": sorted(volumes, key=key("host", "role", "id")),
        "addresses": sorted(addresses, key=key("host", "allocation_id")),
        "zones": zones,
        "vpcs": sorted(vpcs, key=key("id")),
        "subnets": sorted(subnets, key=key("id")),
    }


def bucket(name):
    import hashlib

    s3 = boto3.client("s3", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchBucket"):
            return {"exists": False}
        raise
    try:
        tag_set = s3.get_bucket_tagging(Bucket=name)["TagSet"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchTagSet":
            raise
        tag_set = []
    try:
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchPublicAccessBlockConfiguration":
            raise
        block = None
    try:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        encryption = rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        encryption = None
    objects = {}
    for o in paginate(s3, "list_objects_v2", "Contents", Bucket=name):
        got = s3.get_object(Bucket=name, Key=o["Key"])
        body = got["Body"].read()
        objects[o["Key"]] = {
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
            "metadata": got.get("Metadata", {}),
            "content_type": got.get("ContentType"),
            "sse": got.get("ServerSideEncryption"),
            "last_modified": o["LastModified"].isoformat(),
        }
    return {
        "exists": True,
        "tags": {t["Key"]: t["Value"] for t in tag_set},
        "public_access_block": block,
        "encryption": encryption,
        "objects": objects,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bucket":
        try:
            print(json.dumps(bucket(sys.argv[2]), sort_keys=True, indent=1))
        except (BotoCoreError, ClientError) as e:
            sys.exit(f"moto_state.py: {e}")
        sys.exit(0)
    if len(sys.argv) != 2:
        sys.exit("usage: inspect.py ENV | --bucket NAME")
    try:
        state = inspect(sys.argv[1])
    except (BotoCoreError, ClientError) as e:
        sys.exit(f"inspect.py: {e}")
    print(json.dumps(state, sort_keys=True, indent=1))
