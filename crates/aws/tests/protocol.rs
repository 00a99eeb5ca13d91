//! The provider program's contract with infra, against a moto server: `discover` answers one
//! `facts` line, `apply` reports each operation and ends with the facts, and a failure is an
//! `error` line and exit 1, never "nothing exists"; `lock` takes and gives up one conditional
//! DynamoDB item. (Building this test also builds the `infra-aws` binary that the workspace's
//! other tests run.)

use infra_protocol::{
    ApplyRequest, CloudOp, LockAction, LockHolder, LockReply, LockRequest, Op, ProviderEvent, Scope,
};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn moto() -> Moto {
    let python = std::env::var_os("INFRA_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/infra-ci/moto/bin/python"));
    assert!(
        python.is_file(),
        "moto is not installed at {}: .ci/run installs it, or set INFRA_MOTO_PYTHON",
        python.display()
    );
    let port = free_port();
    let server = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/aws/moto_server.py");
    let child = Command::new(python)
        .arg(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let m = Moto(child, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    m
}

fn provider(endpoint: &str, verb: &str, input: &str) -> (i32, Vec<ProviderEvent>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra-aws"))
        .arg(verb)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event: {l}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scope() -> Scope {
    Scope {
        environment: "t".into(),
        region: "us-east-1".into(),
        vpc_id: None,
        subnet_id: None,
        domain: "t.test".into(),
        internal_domain: "t.internal".into(),
        bucket: None,
        objects_only: false,
        lb_subnet_id: None,
    }
}

#[test]
fn discover_then_apply_then_discover() {
    let m = moto();
    let url = format!("http://127.0.0.1:{}", m.1);
    let (code, events, err) = provider(&url, "discover", &serde_json::to_string(&scope()).unwrap());
    assert_eq!(code, 0, "{err}");
    match &events[..] {
        [ProviderEvent::Facts { facts }] => {
            assert!(facts.vpc.is_none() && facts.instances.is_empty())
        }
        other => panic!("{other:?}"),
    }
    let req = ApplyRequest {
        scope: scope(),
        ops: vec![Op {
            phase: 10,
            resource: "aws_vpc.main".into(),
            op: CloudOp::CreateVpc {
                cidr: "10.9.0.0/16".into(),
            },
        }],
        objects: Default::default(),
    };
    let (code, events, err) = provider(&url, "apply", &serde_json::to_string(&req).unwrap());
    assert_eq!(code, 0, "{err}");
    assert!(
        matches!(&events[0], ProviderEvent::Start { index: 0, address, .. } if address == "aws_vpc.main")
    );
    assert!(
        matches!(&events[1], ProviderEvent::Done { index: 0, id: Some(id) } if id.starts_with("vpc-"))
    );
    match events.last() {
        Some(ProviderEvent::Facts { facts }) => {
            let vpc = facts.vpc.as_ref().expect("the new VPC, found by its tag");
            assert_eq!(vpc.cidr, "10.9.0.0/16");
            assert!(vpc.owned && vpc.internet_gateway.is_some());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn failures_are_error_lines_and_exit_1() {
    // Nothing listens here: a read that fails is an error, not an empty environment.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, events, _) = provider(&url, "discover", &serde_json::to_string(&scope()).unwrap());
    assert_eq!(code, 1);
    match &events[..] {
        [ProviderEvent::Error {
            index: None,
            message,
        }] => {
            assert!(message.contains("describe"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let (code, events, _) = provider(&url, "apply", "{not json");
    assert_eq!(code, 1);
    assert!(
        matches!(&events[..], [ProviderEvent::Error { message, .. }] if message.contains("parse the request"))
    );
    let m = moto();
    let url = format!("http://127.0.0.1:{}", m.1);
    let req = ApplyRequest {
        scope: scope(),
        ops: vec![Op {
            phase: 34,
            resource: "aws_instance.x".into(),
            op: CloudOp::TerminateInstance {
                id: "i-0000000000000000f".into(),
            },
        }],
        objects: Default::default(),
    };
    let (code, events, _) = provider(&url, "apply", &serde_json::to_string(&req).unwrap());
    assert_eq!(code, 1);
    match events.last() {
        Some(ProviderEvent::Error {
            index: Some(0),
            message,
        }) => {
            assert!(
                message.contains("aws_instance.x") && message.contains("TerminateInstances"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// One `lock` request: its single answer.
fn lock(url: &str, table: &str, create_table: bool, action: LockAction) -> LockReply {
    let req = LockRequest {
        scope: scope(),
        table: table.into(),
        create_table,
        action,
    };
    let (code, events, err) = provider(url, "lock", &serde_json::to_string(&req).unwrap());
    assert_eq!(code, 0, "{err}");
    match &events[..] {
        [ProviderEvent::Lock { reply }] => reply.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_lock_is_one_conditional_item_in_dynamodb() {
    let m = moto();
    let url = format!("http://127.0.0.1:{}", m.1);
    let holder = |id: &str| LockHolder {
        id: id.into(),
        who: "alice@ws1".into(),
        operation: "apply".into(),
        environment: "t".into(),
        since: 1_764_668_045,
        version: "0.1.0".into(),
    };
    // No table yet: free; the first acquire creates the default table.
    assert_eq!(
        lock(&url, "infra-locks", true, LockAction::Inspect),
        LockReply::Free
    );
    let take = |id: &str| LockAction::Acquire { holder: holder(id) };
    assert_eq!(
        lock(&url, "infra-locks", true, take("a1")),
        LockReply::Acquired
    );
    // A second acquire is refused with the first holder, whole.
    assert_eq!(
        lock(&url, "infra-locks", true, take("b2")),
        LockReply::Held {
            holder: holder("a1")
        }
    );
    // Only the holder releases it.
    let release = |id: &str| LockAction::Release { id: id.into() };
    assert_eq!(
        lock(&url, "infra-locks", true, release("b2")),
        LockReply::Held {
            holder: holder("a1")
        }
    );
    assert_eq!(
        lock(&url, "infra-locks", true, release("a1")),
        LockReply::Released
    );
    assert_eq!(
        lock(&url, "infra-locks", true, LockAction::Inspect),
        LockReply::Free
    );
    assert_eq!(
        lock(&url, "infra-locks", true, take("b2")),
        LockReply::Acquired
    );
    // A table the inventory names is never created: its absence is an error line, exit 1.
    let req = LockRequest {
        scope: scope(),
        table: "named-table".into(),
        create_table: false,
        action: take("c3"),
    };
    let (code, events, _) = provider(&url, "lock", &serde_json::to_string(&req).unwrap());
    assert_eq!(code, 1);
    match &events[..] {
        [ProviderEvent::Error { message, .. }] => {
            assert!(
                message.contains("the table named-table does not exist"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}
