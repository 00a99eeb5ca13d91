//! Application load balancers against moto, through the real SDK, read back with boto3
//! (tests/aws/moto_state.py), never with infra's own client: a role with `load_balancer:` on
//! two hosts gets an internet-facing ALB in two zones (infra's second subnet), its group open to
//! the world on 80 and 443 only, the role's port open to that group only, an HTTPS listener
//! with the ACM certificate (made in moto) forwarding to a target group with the health check,
//! 80 redirecting 301 to https, both instances registered, and the hostname an alias record to
//! the ALB's DNS name. A second plan is clean; a new health path changes the target group in
//! place, a renewed certificate the listener, a weighted forward made by hand is put back; the
//! load balancer follows `lb_subnet_id` to another subnet (infra's goes) and back; a host
//! leaving the role is deregistered; removing `load_balancer:` removes all of it; destroy
//! leaves nothing.

mod common;
#[path = "aws/moto.rs"]
mod moto;

use common::*;
use moto::Moto;
use serde_json::{json, Value};
use std::path::Path;

const API: &str = "name: api
hostname: \"api.{{ env.domain }}\"
ports: [22]
load_balancer:
  port: 8000
  listeners: [80, 443]
  certificate: \"{{ vars.certificate_arn }}\"
  health: {path: /health, interval: 15, healthy: 2, unhealthy: 2}
";

fn inventory(cert: &str) -> String {
    format!(
        "environment: lbtest
domain: example.org
internal_domain: lbtest.internal
vars:
  certificate_arn: {cert}
provider:
  type: aws
  region: us-east-1
  ami: ami-0123456789abcdef0
  instance_type: t3.small
  vpc_cidr: 10.41.0.0/16
  subnet_cidr: 10.41.1.0/24
  availability_zone: us-east-1a
  lb_subnet_cidr: 10.41.2.0/24
  lb_availability_zone: us-east-1b
ssh:
  user: admin
hosts:
  api1: {{roles: [api], private_ip: 10.41.1.10}}
  api2: {{roles: [api, web], private_ip: 10.41.1.11}}
"
    )
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The plan's lines with runs of spaces squeezed (attribute lines are aligned).
fn squeezed(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn plan_has(moto: &Moto, dir: &Path, lines: &[&str]) {
    let plan = moto.infra(dir, &["plan", "lbtest", "--cloud-only"]);
    plan.assert_code(0);
    let out = squeezed(&plan.stdout);
    for line in lines {
        assert!(out.contains(line), "plan lacks {line:?}:\n{out}");
    }
}

fn apply(moto: &Moto, dir: &Path) {
    moto.infra(dir, &["apply", "lbtest", "--cloud-only", "--yes"])
        .assert_code(0);
}

fn clean(moto: &Moto, dir: &Path) {
    moto.infra(
        dir,
        &["plan", "lbtest", "--cloud-only", "--detailed-exitcode"],
    )
    .assert_code(0);
}

fn rules(state: &Value, group: &str) -> Value {
    state["security_groups"][group]["rules"].clone()
}

#[test]
fn a_load_balancer_is_built_changed_and_removed() {
    let moto = Moto::start_on("127.0.0.1");
    let cert = moto.boto3(
        "acm = boto3.client('acm')\n\
         print(acm.request_certificate(DomainName='api.example.org')['CertificateArn'])",
    );
    assert!(cert.starts_with("arn:aws:acm:"), "{cert}");
    let site = tempfile::tempdir().unwrap();
    let dir = site.path();
    write(dir, "roles/api.yaml", API);
    write(dir, "roles/web.yaml", "name: web\n");
    write(dir, "inventories/lbtest.yaml", &inventory(&cert));

    plan_has(
        &moto,
        dir,
        &[
            "+ aws_lb.api",
            "+ aws_lb_listener.api_443",
            &format!("+ certificate_arn = \"{cert}\""),
            "+ default_action = redirect 301 to https",
            "+ aws_lb_target_group_attachment.api_api2",
            "+ aws_security_group.api_lb",
            "+ ingress 8000/tcp = from lbtest-api-lb",
            "+ aws_subnet.lb",
        ],
    );
    apply(&moto, dir);
    let state = moto.state("lbtest");
    check_built(&state, &cert);
    clean(&moto, dir);

    changes_in_place(&moto, dir, &state, &cert);
    weighted_forward_is_put_back(&moto, dir);
    follows_its_subnet(&moto, dir);

    // api2 leaves the role: deregistered, its instance stays.
    edit(
        dir,
        "inventories/lbtest.yaml",
        "roles: [api, web]",
        "roles: [web]",
    );
    plan_has(&moto, dir, &["- aws_lb_target_group_attachment.api_api2"]);
    apply(&moto, dir);
    let state = moto.state("lbtest");
    assert_eq!(
        state["target_groups"]["lbtest-api-8000"]["targets"],
        json!(["api1:8000"])
    );
    clean(&moto, dir);

    // Without `load_balancer:` nothing of it is left; the role keeps its group.
    let cut = API.find("load_balancer:").unwrap();
    write(dir, "roles/api.yaml", &API[..cut]);
    plan_has(
        &moto,
        dir,
        &[
            "- aws_lb.api",
            "- aws_lb_listener.api_443",
            "- aws_subnet.lb",
        ],
    );
    apply(&moto, dir);
    let state = moto.state("lbtest");
    check_gone(&state);
    assert_eq!(
        rules(&state, "lbtest-api"),
        json!(["22/tcp from 0.0.0.0/0"])
    );
    clean(&moto, dir);

    // Back again, then destroy: nothing left.
    write(dir, "roles/api.yaml", API);
    apply(&moto, dir);
    assert_eq!(
        moto.state("lbtest")["load_balancers"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
    moto.infra(dir, &["destroy", "lbtest", "--yes"])
        .assert_code(0);
    let end = moto.state("lbtest");
    check_gone(&end);
    assert_eq!(end["security_groups"], json!({}));
    assert_eq!(end["subnets"], json!([]));
}

/// A new health path changes the same target group, a renewed certificate the same listener.
fn changes_in_place(moto: &Moto, dir: &Path, state: &Value, cert: &str) {
    // A new health path: the same target group, changed in place.
    let arn = state["target_groups"]["lbtest-api-8000"]["arn"].clone();
    edit(dir, "roles/api.yaml", "path: /health", "path: /ready");
    plan_has(
        moto,
        dir,
        &[
            "~ aws_lb_target_group.api",
            "~ health_check.path = \"/health\" -> \"/ready\"",
        ],
    );
    apply(moto, dir);
    let state = moto.state("lbtest");
    let tg = &state["target_groups"]["lbtest-api-8000"];
    assert_eq!(tg["arn"], arn);
    assert_eq!(tg["health"]["path"], "/ready");
    clean(moto, dir);

    // A renewed certificate: the same listener, changed in place.
    let renewed = moto.boto3(
        "acm = boto3.client('acm')\n\
         print(acm.request_certificate(DomainName='api.example.org')['CertificateArn'])",
    );
    let listener = state["load_balancers"]["lbtest-api"]["listeners"]["443"]["arn"].clone();
    edit(dir, "inventories/lbtest.yaml", cert, &renewed);
    plan_has(
        moto,
        dir,
        &[&format!("~ certificate_arn = \"{cert}\" -> \"{renewed}\"")],
    );
    apply(moto, dir);
    let state = moto.state("lbtest");
    let l443 = &state["load_balancers"]["lbtest-api"]["listeners"]["443"];
    assert_eq!(l443["certificates"], json!([renewed]));
    assert_eq!(l443["arn"], listener);
    clean(moto, dir);
}

/// A weighted forward made by hand (half to a second target group) is not read as converged:
/// the plan puts the single forward to the role's target group back.
fn weighted_forward_is_put_back(moto: &Moto, dir: &Path) {
    let state = moto.state("lbtest");
    let listener = &state["load_balancers"]["lbtest-api"]["listeners"]["443"]["arn"];
    let ours = &state["target_groups"]["lbtest-api-8000"]["arn"];
    let (listener, ours) = (listener.as_str().unwrap(), ours.as_str().unwrap());
    moto.boto3(&format!(
        "elb = boto3.client('elbv2')\n\
         vpc = elb.describe_target_groups(TargetGroupArns=['{ours}'])['TargetGroups'][0]['VpcId']\n\
         other = elb.create_target_group(Name='hand-made', Protocol='HTTP', Port=8000, VpcId=vpc)['TargetGroups'][0]['TargetGroupArn']\n\
         groups = [{{'TargetGroupArn': '{ours}', 'Weight': 50}}, {{'TargetGroupArn': other, 'Weight': 50}}]\n\
         elb.modify_listener(ListenerArn='{listener}', DefaultActions=[{{'Type': 'forward', 'ForwardConfig': {{'TargetGroups': groups}}}}])"
    ));
    plan_has(
        moto,
        dir,
        &[
            "~ aws_lb_listener.api_443",
            "~ default_action = other -> forward to",
        ],
    );
    apply(moto, dir);
    let state = moto.state("lbtest");
    assert_eq!(
        state["load_balancers"]["lbtest-api"]["listeners"]["443"]["actions"],
        json!([{"type": "forward", "target_group": "lbtest-api-8000"}])
    );
    clean(moto, dir);
    moto.boto3(
        "elb = boto3.client('elbv2')\n\
         arn = elb.describe_target_groups(Names=['hand-made'])['TargetGroups'][0]['TargetGroupArn']\n\
         elb.delete_target_group(TargetGroupArn=arn)",
    );
}

/// `lb_subnet_id` naming a subnet made by hand: the load balancer moves to it and infra's lb
/// subnet goes; back to `lb_subnet_cidr`: a new one is made and the load balancer moves back.
fn follows_its_subnet(moto: &Moto, dir: &Path) {
    let state = moto.state("lbtest");
    let vpc = state["vpcs"][0]["id"].as_str().unwrap();
    let other = moto.boto3(&format!(
        "ec2 = boto3.client('ec2')\n\
         print(ec2.create_subnet(VpcId='{vpc}', CidrBlock='10.41.3.0/24', AvailabilityZone='us-east-1c')['Subnet']['SubnetId'])"
    ));
    let (cidr, named) = (
        "  lb_subnet_cidr: 10.41.2.0/24\n",
        format!("  lb_subnet_id: {other}\n"),
    );
    edit(dir, "inventories/lbtest.yaml", cidr, &named);
    plan_has(
        moto,
        dir,
        &["~ aws_lb.api", "~ subnets = [", "- aws_subnet.lb"],
    );
    apply(moto, dir);
    let state = moto.state("lbtest");
    let zones = |state: &Value| state["load_balancers"]["lbtest-api"]["subnet_zones"].clone();
    assert_eq!(zones(&state), json!(["us-east-1a", "us-east-1c"]));
    let cidrs: Vec<&Value> = state["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["cidr"])
        .collect();
    assert_eq!(cidrs, [&json!("10.41.1.0/24")], "infra's lb subnet is gone");
    clean(moto, dir);

    edit(dir, "inventories/lbtest.yaml", &named, cidr);
    plan_has(moto, dir, &["+ aws_subnet.lb", "~ aws_lb.api"]);
    apply(moto, dir);
    assert_eq!(
        zones(&moto.state("lbtest")),
        json!(["us-east-1a", "us-east-1b"])
    );
    clean(moto, dir);
    moto.boto3(&format!(
        "boto3.client('ec2').delete_subnet(SubnetId='{other}')"
    ));
}

/// The first apply as boto3 sees it.
fn check_built(state: &Value, cert: &str) {
    let lbs = state["load_balancers"].as_object().unwrap();
    assert_eq!(lbs.len(), 1, "{lbs:#?}");
    let lb = &lbs["lbtest-api"];
    assert_eq!(lb["type"], "application");
    assert_eq!(lb["scheme"], "internet-facing");
    assert_eq!(lb["security_groups"], json!(["lbtest-api-lb"]));
    assert_eq!(lb["subnet_zones"], json!(["us-east-1a", "us-east-1b"]));
    assert_eq!(lb["tags"]["infra:role"], "api");
    let listener = |port: &str| {
        let mut l = lb["listeners"][port].clone();
        l.as_object_mut().unwrap().remove("arn");
        l
    };
    assert_eq!(
        listener("443"),
        json!({"protocol": "HTTPS", "certificates": [cert],
               "actions": [{"type": "forward", "target_group": "lbtest-api-8000"}]})
    );
    assert_eq!(
        listener("80"),
        json!({"protocol": "HTTP", "certificates": [],
               "actions": [{"type": "redirect", "protocol": "HTTPS", "port": "443", "status": "HTTP_301"}]})
    );
    let tg = &state["target_groups"]["lbtest-api-8000"];
    assert_eq!(tg["port"], 8000);
    assert_eq!(tg["protocol"], "HTTP");
    assert_eq!(
        tg["health"],
        json!({"path": "/health", "matcher": "200", "interval": 15, "healthy": 2, "unhealthy": 2})
    );
    assert_eq!(tg["targets"], json!(["api1:8000", "api2:8000"]));
    // The listeners from the world; the role's port from the load balancer's group only.
    assert_eq!(
        rules(state, "lbtest-api-lb"),
        json!(["443/tcp from 0.0.0.0/0", "80/tcp from 0.0.0.0/0"])
    );
    assert_eq!(
        rules(state, "lbtest-api"),
        json!(["22/tcp from 0.0.0.0/0", "8000/tcp from lbtest-api-lb"])
    );
    // The hostname: an alias to the load balancer, owned by the environment.
    let records = &state["zones"]["example.org"]["records"];
    assert_eq!(records["api.example.org A"]["alias"], lb["dns_name"]);
    assert_eq!(records["api.example.org A"]["alias_zone"], lb["zone_id"]);
    assert_eq!(records["api.example.org A"]["values"], json!([]));
    assert_eq!(
        records["_infra-owner.a.api.example.org TXT"]["values"],
        json!(["\"infra env=lbtest\""])
    );
    let subnets = state["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 2, "{subnets:#?}");
    assert!(subnets
        .iter()
        .any(|s| s["cidr"] == "10.41.2.0/24" && s["az"] == "us-east-1b"));
}

/// No load balancer, target group, group or subnet of the load balancer, nor its alias.
fn check_gone(state: &Value) {
    assert_eq!(state["load_balancers"], json!({}));
    assert_eq!(state["target_groups"], json!({}));
    assert!(state["security_groups"].get("lbtest-api-lb").is_none());
    assert!(!state["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["cidr"] == "10.41.2.0/24"));
    let records = state["zones"]["example.org"]["records"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(!records.contains_key("api.example.org A"), "{records:#?}");
    assert!(
        !records.contains_key("_infra-owner.a.api.example.org TXT"),
        "{records:#?}"
    );
}
