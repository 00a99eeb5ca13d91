//! The wire format, pinned: JSON as `infra` and `infra-aws` exchanged it before the protocol had
//! a crate of its own. Every line reads back into the types and writes out byte for byte the same.

use infra_protocol::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// One operation of every kind (both kinds of rule source, of reference, of record value).
const OPS: &[&str] = &[
    r#"{"phase":10,"resource":"r0","op":"create_vpc","cidr":"10.0.0.0/16"}"#,
    r#"{"phase":11,"resource":"r1","op":"create_internet_gateway","vpc":{"id":"vpc-1"}}"#,
    r#"{"phase":12,"resource":"r2","op":"create_subnet","vpc":{"new":"aws_vpc.main"},"cidr":"10.0.1.0/24","availability_zone":null}"#,
    r#"{"phase":20,"resource":"r3","op":"create_security_group","vpc":{"new":"aws_vpc.main"},"name":"prod-app","role":"app"}"#,
    r#"{"phase":22,"resource":"r4","op":"authorize_ingress","group":{"new":"aws_security_group.app"},"port":"25/tcp","source":"world"}"#,
    r#"{"phase":22,"resource":"r5","op":"authorize_ingress","group":{"id":"sg-1"},"port":"53/udp","source":{"group":{"id":"sg-2"}}}"#,
    r#"{"phase":21,"resource":"r6","op":"revoke_ingress","group":"sg-1","port":"25/tcp","source":{"cidr":"1.2.3.4/32"}}"#,
    r#"{"phase":21,"resource":"r7","op":"revoke_ingress","group":"sg-1","port":"25/tcp","source":{"group":"sg-3"}}"#,
    r#"{"phase":70,"resource":"r8","op":"delete_security_group","id":"sg-1"}"#,
    r#"{"phase":40,"resource":"r9","op":"run_instance","host":"app1","ami":"ami-1","instance_type":"t3.small","subnet":{"new":"aws_subnet.main"},"private_ip":"10.0.1.5","key_name":null,"groups":[{"id":"sg-1"},{"new":"aws_security_group.app"}],"tags":{"Name":"app1","infra:env":"prod"},"client_token":"infra-abc"}"#,
    r#"{"phase":41,"resource":"r10","op":"change_instance_type","id":"i-1","instance_type":"t3.large"}"#,
    r#"{"phase":42,"resource":"r11","op":"start_instance","id":"i-1"}"#,
    r#"{"phase":43,"resource":"r12","op":"set_instance_groups","id":"i-1","groups":[{"id":"sg-1"}]}"#,
    r#"{"phase":43,"resource":"r13","op":"set_tags","id":"i-1","tags":{"Name":"app1","infra:env":"prod"}}"#,
    r#"{"phase":34,"resource":"r14","op":"terminate_instance","id":"i-1"}"#,
    r#"{"phase":50,"resource":"r15","op":"create_volume","host":"db1","role":"db","size_gb":20,"subnet":{"id":"subnet-1"},"keep":true}"#,
    r#"{"phase":51,"resource":"r16","op":"attach_volume","volume":{"new":"aws_ebs_volume.db1-db"},"instance":{"id":"i-1"},"device":"/dev/xvdf"}"#,
    r#"{"phase":32,"resource":"r17","op":"detach_volume","id":"vol-1","instance":"i-1"}"#,
    r#"{"phase":33,"resource":"r18","op":"delete_volume","id":"vol-1"}"#,
    r#"{"phase":52,"resource":"r19","op":"allocate_address","host":"mail"}"#,
    r#"{"phase":53,"resource":"r20","op":"associate_address","address":{"new":"aws_eip.mail"},"instance":{"id":"i-1"}}"#,
    r#"{"phase":66,"resource":"r21","op":"set_reverse_dns","address":{"id":"eipalloc-1"},"name":"mail.example.org"}"#,
    r#"{"phase":31,"resource":"r22","op":"release_address","allocation_id":"eipalloc-1","association_id":"eipassoc-1"}"#,
    r#"{"phase":60,"resource":"r23","op":"create_zone","name":"example.org","vpc":null}"#,
    r#"{"phase":60,"resource":"r24","op":"create_zone","name":"prod.internal","vpc":{"new":"aws_vpc.main"}}"#,
    r#"{"phase":30,"resource":"r25","op":"change_records","zone":{"id":"Z1"},"zone_name":"example.org","changes":[{"action":"UPSERT","name":"a.example.org","type":"A","ttl":300,"values":[{"ip":"1.2.3.4"},{"public_ip_of":"mail"}]},{"action":"UPSERT","name":"b.example.org","type":"MX","ttl":60,"values":[{"text":"10 mail.example.org."}]},{"action":"UPSERT","name":"www.example.org","type":"A","ttl":300,"values":[],"alias":{"name":{"dns_name":"lb-1.elb.amazonaws.com","zone_id":"Z35SXDOTRQ7X7K"}}},{"action":"DELETE","name":"c.example.org","type":"TXT","ttl":300,"values":[{"private_ip_of":"db1"}]}]}"#,
    r#"{"phase":75,"resource":"r26","op":"delete_zone","id":"Z1"}"#,
    r#"{"phase":80,"resource":"r27","op":"delete_subnet","id":"subnet-1"}"#,
    r#"{"phase":81,"resource":"r28","op":"delete_vpc","id":"vpc-1","internet_gateway":"igw-1"}"#,
    r#"{"phase":13,"resource":"aws_s3_bucket.main","op":"create_bucket","name":"b-1"}"#,
    r#"{"phase":14,"resource":"aws_s3_bucket.main","op":"secure_bucket","name":"b-1"}"#,
    r#"{"phase":67,"resource":"aws_s3_object.config/a.json","op":"put_object","bucket":"b-1","key":"config/a.json","digest":"ab12","content_type":"application/json"}"#,
    r#"{"phase":68,"resource":"aws_s3_object.old","op":"delete_object","bucket":"b-1","key":"old"}"#,
    r#"{"phase":85,"resource":"aws_s3_bucket.main","op":"delete_bucket","name":"b-1"}"#,
];

/// Every kind of event, with facts of every kind.
const EVENTS: &[&str] = &[
    r#"{"event":"start","index":0,"address":"aws_vpc.main","text":"create"}"#,
    r#"{"event":"waiting","index":1,"text":"waiting"}"#,
    r#"{"event":"done","index":2,"id":"vpc-1"}"#,
    r#"{"event":"done","index":3,"id":null}"#,
    r#"{"event":"facts","facts":{"vpc":{"id":"vpc-1","cidr":"10.0.0.0/16","owned":true,"internet_gateway":"igw-1"},"subnet":{"id":"subnet-1","cidr":"10.0.1.0/24","availability_zone":"us-east-1a","owned":false},"security_groups":[{"id":"sg-1","name":"prod-app","role":"app","rules":[{"port":"25/tcp","source":{"cidr":"0.0.0.0/0"}},{"port":"53/udp","source":{"group":"sg-2"}}]}],"instances":[{"id":"i-1","host":"app1","state":"running","ami":"ami-1","instance_type":"t3.small","private_ip":"10.0.1.5","public_ip":null,"security_groups":["sg-1"],"roles":"app","launch_time":"2026-01-01T00:00:00Z"}],"volumes":[{"id":"vol-1","host":"db1","role":"db","size_gb":20,"attached_to":null,"device":"/dev/xvdf","keep":true}],"addresses":[{"allocation_id":"eipalloc-1","public_ip":"127.0.0.5","host":"mail","instance":"i-1","association_id":null,"reverse_dns":"mail.example.org"}],"zones":[{"id":"Z1","name":"example.org","private":false,"owned":true,"records":[{"name":"a.example.org","value":"1.2.3.4","type":"A","ttl":300},{"name":"www.example.org","value":"","type":"A","ttl":0,"alias":["lb-1.elb.amazonaws.com","Z35SXDOTRQ7X7K"]}]}]}}"#,
    r#"{"event":"facts","facts":{"vpc":null,"subnet":null,"security_groups":[],"instances":[],"volumes":[],"addresses":[],"zones":[]}}"#,
    r#"{"event":"facts","facts":{"vpc":null,"subnet":null,"security_groups":[],"instances":[],"volumes":[],"addresses":[],"zones":[],"bucket":{"name":"b-1","environment":"prod","public_access_blocked":true,"encrypted":true,"objects":[{"key":"config/a.json","environment":"prod","sha256":"ab12"}]}}}"#,
    r#"{"event":"error","index":null,"message":"boom"}"#,
    r#"{"event":"error","index":4,"message":"boom"}"#,
];

const REQUEST: &str = r#"{"scope":{"environment":"prod","region":"us-east-1","vpc_id":"vpc-1","subnet_id":null,"domain":"example.org","internal_domain":"prod.internal"},"ops":[{"phase":10,"resource":"r0","op":"create_vpc","cidr":"10.0.0.0/16"},{"phase":11,"resource":"r1","op":"create_internet_gateway","vpc":{"id":"vpc-1"}}]}"#;

fn same<T: Serialize + DeserializeOwned + Debug>(line: &str) -> T {
    let value: T = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(serde_json::to_string(&value).unwrap(), line);
    value
}

#[test]
fn every_op_reads_and_writes_unchanged() {
    let ops: Vec<Op> = OPS.iter().map(|l| same(l)).collect();
    for op in &ops {
        assert_eq!(op.phase, op.op.phase(), "{op:?}");
    }
    // Each of the 31 kinds; three twice, for their other kind of source or zone.
    let kinds: std::collections::BTreeSet<&str> = OPS
        .iter()
        .map(|l| {
            l.split("\"op\":\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(kinds.len(), 31);
    let request: ApplyRequest = same(REQUEST);
    assert_eq!(request.ops[..], ops[..2]);
    let scope: Scope = same(&serde_json::to_string(&request.scope).unwrap());
    assert_eq!(scope.internal_domain, "prod.internal");
}

#[test]
fn every_event_reads_and_writes_unchanged() {
    let events: Vec<ProviderEvent> = EVENTS.iter().map(|l| same(l)).collect();
    let Some(ProviderEvent::Facts { facts }) = events
        .iter()
        .find(|e| matches!(e, ProviderEvent::Facts { .. }))
    else {
        panic!("no facts event");
    };
    assert_eq!(facts.instance("app1").map(|i| i.id.as_str()), Some("i-1"));
    assert_eq!(
        facts.address("mail").map(|a| a.public_ip.as_str()),
        Some("127.0.0.5")
    );
    assert_eq!(
        facts.security_groups[0].rules[1],
        RuleFact {
            port: Port {
                number: 53,
                proto: Proto::Udp
            },
            source: SourceFact::Group("sg-2".into()),
        }
    );
}

#[test]
fn values_built_in_code_write_the_pinned_lines() {
    let op = Op {
        phase: 22,
        resource: "r5".into(),
        op: CloudOp::AuthorizeIngress {
            group: Ref::Id("sg-1".into()),
            port: Port {
                number: 53,
                proto: Proto::Udp,
            },
            source: Source::Group(Ref::Id("sg-2".into())),
        },
    };
    assert_eq!(serde_json::to_string(&op).unwrap(), OPS[5]);
    let change = RecordChange {
        action: RecordAction::Upsert,
        name: "b.example.org".into(),
        record_type: RecordType::Mx,
        ttl: 60,
        values: vec![RecordValue::Text("10 mail.example.org.".into())],
        alias: None,
    };
    assert_eq!(
        serde_json::to_string(&change).unwrap(),
        r#"{"action":"UPSERT","name":"b.example.org","type":"MX","ttl":60,"values":[{"text":"10 mail.example.org."}]}"#
    );
    let done = ProviderEvent::Done { index: 3, id: None };
    assert_eq!(serde_json::to_string(&done).unwrap(), EVENTS[3]);
}

#[test]
fn unknown_values_read_as_known_after_apply() {
    assert_eq!(Ref::Id("i-1".into()).to_string(), "i-1");
    assert_eq!(
        Ref::New("aws_instance.a".into()).to_string(),
        KNOWN_AFTER_APPLY
    );
    assert_eq!(RecordValue::Ip("1.1.1.1".into()).to_string(), "1.1.1.1");
    assert_eq!(
        RecordValue::PrivateIpOf("a".into()).to_string(),
        "(known after apply)"
    );
}

#[test]
fn descriptions_name_what_changes() {
    let ops: Vec<Op> = OPS
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text: Vec<String> = ops.iter().map(|o| describe(&o.op)).collect();
    assert_eq!(text[0], "create VPC 10.0.0.0/16 with an internet gateway");
    assert_eq!(text[6], "close 25/tcp on sg-1");
    assert_eq!(text[9], "launch app1 (t3.small) and wait until it runs");
    assert_eq!(text[24], "create the private zone prod.internal");
    assert_eq!(text[25], "write 4 records in example.org");
}

const SCOPE: &str = r#"{"environment":"prod","region":"us-east-1","vpc_id":null,"subnet_id":null,"domain":"example.org","internal_domain":"prod.internal"}"#;

#[test]
fn lock_and_host_key_messages_read_and_write_unchanged() {
    let holder = r#"{"id":"3f9a0c1d2e4b5a69","who":"alice@ws1","operation":"apply","environment":"prod","since":1764668045,"version":"0.1.0"}"#;
    let requests = [
        format!(
            r#"{{"scope":{SCOPE},"table":"infra-locks","create_table":true,"action":"acquire","holder":{holder}}}"#
        ),
        format!(
            r#"{{"scope":{SCOPE},"table":"tf-locks","create_table":false,"action":"release","id":"3f9a0c1d2e4b5a69"}}"#
        ),
        format!(
            r#"{{"scope":{SCOPE},"table":"tf-locks","create_table":false,"action":"inspect"}}"#
        ),
    ];
    let reqs: Vec<LockRequest> = requests.iter().map(|l| same(l)).collect();
    let LockAction::Acquire { holder: h } = &reqs[0].action else {
        panic!("{:?}", reqs[0]);
    };
    assert_eq!((h.who.as_str(), h.since), ("alice@ws1", 1_764_668_045));
    assert_eq!(reqs[2].action, LockAction::Inspect);
    for line in [
        r#"{"event":"lock","reply":{"result":"acquired"}}"#.to_string(),
        format!(r#"{{"event":"lock","reply":{{"result":"held","holder":{holder}}}}}"#),
        r#"{"event":"lock","reply":{"result":"released"}}"#.to_string(),
        r#"{"event":"lock","reply":{"result":"free"}}"#.to_string(),
        r#"{"event":"host_keys","keys":{"app1":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld"]}}"#
            .to_string(),
    ] {
        let _: ProviderEvent = same(&line);
    }
    let keys: HostKeysRequest = same(&format!(
        r#"{{"scope":{SCOPE},"instances":{{"app1":"i-1","db1":"i-2"}},"wait_seconds":600}}"#
    ));
    assert_eq!(keys.instances["db1"], "i-2");
}
