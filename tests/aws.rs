//! The cloud section against moto (a local EC2 + Route53): the production inventory's machines,
//! groups, volumes, addresses and names created as the roles require, changes converged, hosts
//! removed, and a run killed right after its launches. Each test runs its own moto server
//! (tests/aws/moto_server.py) on a free loopback port and checks the result with boto3
//! (tests/aws/moto_state.py), not with infra's own AWS client.

mod common;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server of this test's own, stopped on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

fn moto_python() -> PathBuf {
    let p = std::env::var_os("INFRA_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/infra-ci/moto/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import moto, boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "moto is not installed at {}: .ci/run installs it (python3 -m venv /opt/infra-ci/moto && /opt/infra-ci/moto/bin/pip install 'moto[server]==5.2.5'), or set INFRA_MOTO_PYTHON",
        p.display()
    );
    p
}

impl Moto {
    pub fn start() -> Moto {
        let python = moto_python();
        let port = free_port();
        let child = Command::new(python)
            .arg(repo().join("tests/aws/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {port} in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// The SDK's settings for this server, and the mail role's DKIM key as its secret.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = aws_env(self.port);
        env.push(("INFRA_SECRET_DKIM_PRIVATE_KEY".into(), dkim_key().0.clone()));
        env
    }

    pub fn infra(&self, dir: &Path, args: &[&str]) -> Run {
        infra_with(dir, args, &self.env())
    }

    /// Everything tagged with `env` (and every hosted zone), as boto3 sees it.
    pub fn state(&self, env: &str) -> Value {
        let out = Command::new(moto_python())
            .arg(repo().join("tests/aws/moto_state.py"))
            .arg(env)
            .envs(self.env())
            .output()
            .expect("run moto_state.py");
        assert!(
            out.status.success(),
            "moto_state.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("moto_state.py prints JSON")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Instances that are not terminated, by host.
fn live(state: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for i in state["instances"].as_array().unwrap() {
        if i["state"] != "terminated" && i["state"] != "shutting-down" {
            out.entry(i["host"].as_str().unwrap().to_string())
                .or_default()
                .push(i.clone());
        }
    }
    out
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The plan's lines with runs of spaces squeezed (attribute lines are aligned).
fn squeezed(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn hosts_json(dir: &Path, env: &str) -> Vec<Value> {
    let r = infra(dir, &["hosts", env, "--out", "json"]);
    r.assert_code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn production_in_moto_is_what_the_roles_require() {
    let moto = Moto::start();
    let site = site_copy();
    let dir = site.path();
    let first = moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"]);
    first.assert_code(0);
    assert!(
        first
            .stderr
            .contains("Cloud apply complete: 85 added, 0 changed, 0 destroyed."),
        "{}",
        first.stderr
    );

    let state = moto.state("production");
    let hosts = hosts_json(dir, "production");
    let live = live(&state);
    assert_eq!(live.len(), hosts.len(), "one instance per host: {live:?}");
    let group_rules: BTreeMap<String, BTreeSet<String>> = state["security_groups"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, g)| (name.clone(), strs(&g["rules"])))
        .collect();
    check_instances(dir, &hosts, &live, &group_rules);
    check_group_rules(&group_rules);
    let with_volume = check_volumes(&state);
    let addresses = check_addresses(&state, &hosts);
    check_records(&state, &hosts, &addresses);

    // Nothing left to do.
    let again = moto.infra(
        dir,
        &["plan", "production", "--cloud-only", "--detailed-exitcode"],
    );
    again.assert_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    check_destroy(&moto, dir, hosts.len(), with_volume.len());
}

/// One instance per host, tagged, in its roles' security groups; SSH as the catalogue says.
fn check_instances(
    dir: &Path,
    hosts: &[Value],
    live: &BTreeMap<String, Vec<Value>>,
    group_rules: &BTreeMap<String, BTreeSet<String>>,
) {
    let (site_model, _) = infra_core::site::Site::load(dir).unwrap();
    for h in hosts {
        let name = h["name"].as_str().unwrap();
        let inst = &live[name];
        assert_eq!(inst.len(), 1, "{name}: {inst:?}");
        let i = &inst[0];
        assert_eq!(i["state"], "running", "{name}");
        assert_eq!(i["type"], h["instance_type"], "{name}");
        assert_eq!(i["private_ip"], h["private_ip"], "{name}");
        assert_eq!(i["ami"], "ami-0123456789abcdef0");
        let roles: Vec<&str> = h["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(i["tags"]["infra:env"], "production");
        assert_eq!(i["tags"]["infra:host"], name);
        assert_eq!(i["tags"]["Name"], name);
        assert_eq!(i["tags"]["infra:roles"], roles.join(","));
        // Each role that opens a port has its group on the host, and every host is in base.
        let groups = strs(&i["security_groups"]);
        assert!(groups.contains("production-base"), "{name}: {groups:?}");
        for r in h["all_roles"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            let role = &site_model.roles[r].value;
            if !role.ports.is_empty() || !role.exposes.is_empty() {
                assert!(
                    groups.contains(&format!("production-{r}")),
                    "{name} lacks the group of {r}"
                );
            }
        }
        // SSH: open to the world only on the jump host (salt), and on source, whose role
        // serves git over SSH (gitolite); every host takes SSH from the jump host.
        let rules: BTreeSet<&String> = groups.iter().flat_map(|g| &group_rules[g]).collect();
        let world_ssh = rules.contains(&"22/tcp from 0.0.0.0/0".to_string());
        assert_eq!(
            world_ssh,
            name == "salt" || name == "source",
            "{name}: {rules:?}"
        );
        assert!(
            rules.contains(&"22/tcp from production-salt".to_string()),
            "{name}: {rules:?}"
        );
    }
}

fn check_group_rules(group_rules: &BTreeMap<String, BTreeSet<String>>) {
    // Ports open to the world, and exposes open to the groups of the roles named only.
    assert_eq!(
        group_rules["production-base"],
        strs(&serde_json::json!(["22/tcp from production-salt"]))
    );
    assert_eq!(
        group_rules["production-postgres"],
        strs(&serde_json::json!(["5432/tcp from production-app"]))
    );
    let mail = &group_rules["production-mail"];
    assert!(mail.contains("25/tcp from 0.0.0.0/0") && mail.contains("25/tcp from production-base"));
    let db = &group_rules["production-db"];
    assert!(db.contains("3306/tcp from production-app"));
    assert!(!db.iter().any(|r| r.contains("0.0.0.0/0")), "{db:?}");
}

/// Returns the hosts that have a volume.
fn check_volumes(state: &Value) -> BTreeSet<&'static str> {
    // Volumes: one per role that needs one, attached to its host at the role's device.
    let volumes: BTreeMap<String, &Value> = state["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["host"].as_str().unwrap().to_string(), v))
        .collect();
    let with_volume: BTreeSet<&str> = ["salt", "source", "db1", "db2", "pg1", "elastic1"].into();
    assert_eq!(
        volumes.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        with_volume
    );
    for (host, v) in &volumes {
        assert_eq!(v["attached_to_host"], host.as_str());
        assert_eq!(v["device"], "/dev/xvdf");
        assert_eq!(v["state"], "in-use");
    }
    assert_eq!(volumes["db1"]["size"], 100);
    assert_eq!(volumes["pg1"]["size"], 50);

    with_volume
}

/// Returns the Elastic IPs by host.
fn check_addresses<'a>(state: &'a Value, hosts: &[Value]) -> BTreeMap<String, &'a Value> {
    // Elastic IPs where a role needs a public IP; reverse DNS where the role requires it.
    let addresses: BTreeMap<String, &Value> = state["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["host"].as_str().unwrap().to_string(), a))
        .collect();
    let public: BTreeSet<String> = hosts
        .iter()
        .filter(|h| h["public_ip"].is_string())
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(addresses.keys().cloned().collect::<BTreeSet<_>>(), public);
    for (host, a) in &addresses {
        assert_eq!(a["instance_host"], host.as_str());
        let ptr = if host == "mail" {
            Value::from("mail.webplatform.org.")
        } else {
            Value::Null
        };
        assert_eq!(a["ptr"], ptr, "{host}");
    }

    addresses
}

fn check_records(state: &Value, hosts: &[Value], addresses: &BTreeMap<String, &Value>) {
    // Route53: public hostnames at the Elastic IPs, every host in the private internal zone.
    let zones = &state["zones"];
    assert_eq!(zones["webplatform.org"]["private"], false);
    assert_eq!(zones["production.wpdn"]["private"], true);
    assert_eq!(zones["production.wpdn"]["tags"]["infra:env"], "production");
    let public_records = zones["webplatform.org"]["a_records"].as_object().unwrap();
    let internal_records = zones["production.wpdn"]["a_records"].as_object().unwrap();
    let mut hostnames = BTreeSet::new();
    for h in hosts {
        let name = h["name"].as_str().unwrap();
        assert_eq!(
            internal_records[&format!("{name}.production.wpdn")],
            h["private_ip"],
            "{name}"
        );
        for hn in h["public_hostnames"].as_array().unwrap() {
            hostnames.insert(hn.as_str().unwrap());
            // Hosts sharing a hostname share its record set (accounts1 and accounts2).
            let have = &public_records[hn.as_str().unwrap()];
            let ip = &addresses[name]["public_ip"];
            assert!(
                have == ip || have.as_array().is_some_and(|a| a.contains(ip)),
                "{hn}: {have} lacks {ip}"
            );
        }
    }
    assert_eq!(
        public_records["accounts.webplatform.org"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(public_records.len(), hostnames.len());
    assert_eq!(internal_records.len(), hosts.len());
}

fn check_destroy(moto: &Moto, dir: &Path, hosts: usize, with_volume: usize) {
    // `infra destroy`: refused without a terminal to confirm on, then everything goes but
    // the volumes whose role keeps them.
    let refused = moto.infra(dir, &["destroy", "production"]);
    refused.assert_code(1);
    assert!(refused
        .stderr
        .contains("refusing to apply without confirmation"));
    assert_eq!(crate::live(&moto.state("production")).len(), hosts);
    let destroy = moto.infra(dir, &["destroy", "production", "--yes"]);
    destroy.assert_code(0);
    let out = squeezed(&destroy.stdout);
    assert!(out.contains("- aws_instance.salt"), "{out}");
    assert!(out.contains("# kept: aws_ebs_volume.db1-db"), "{out}");
    let after = moto.state("production");
    assert!(crate::live(&after).is_empty());
    assert!(after["security_groups"].as_object().unwrap().is_empty());
    assert!(after["addresses"].as_array().unwrap().is_empty());
    assert!(after["vpcs"].as_array().unwrap().is_empty());
    assert!(
        after["zones"].as_object().unwrap().is_empty(),
        "{}",
        after["zones"]
    );
    let kept: Vec<&Value> = after["volumes"].as_array().unwrap().iter().collect();
    assert_eq!(kept.len(), with_volume);
    assert!(kept.iter().all(|v| v["state"] == "available"));
}

#[test]
fn changes_to_type_ports_and_roles_converge() {
    let moto = Moto::start();
    let site = site_copy();
    let dir = site.path();
    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(0);
    edit(
        dir,
        "inventories/production.yaml",
        "app1:       {roles: [app], private_ip: 10.10.1.50, instance_type: t3.medium}",
        "app1:       {roles: [app], private_ip: 10.10.1.50, instance_type: t3.large}",
    );
    edit(dir, "roles/postgres.yaml", "\"5432/tcp\"", "\"6432/tcp\"");
    edit(
        dir,
        "inventories/production.yaml",
        "bots1:      {roles: [bots],",
        "bots1:      {roles: [bots, memcache],",
    );
    let plan = moto.infra(
        dir,
        &["plan", "production", "--cloud-only", "--detailed-exitcode"],
    );
    plan.assert_code(2);
    let out = squeezed(&plan.stdout);
    for line in [
        "# aws_instance.app1 will be updated in-place",
        "~ aws_instance.app1",
        "~ instance_type = \"t3.medium\" -> \"t3.large\"",
        "~ aws_security_group.postgres",
        "+ ingress 6432/tcp = from production-app",
        "- ingress 5432/tcp = from production-app",
        "~ aws_instance.bots1",
        "~ security_groups = [\"production-base\"] -> [\"production-base\", \"production-memcache\"]",
        "~ tags.infra:roles = \"bots\" -> \"bots,memcache\"",
        "Cloud: 0 to add, 3 to change, 0 to destroy.",
    ] {
        assert!(out.contains(line), "plan lacks {line:?}:\n{out}");
    }
    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(0);
    let state = moto.state("production");
    let live = live(&state);
    assert_eq!(live["app1"][0]["type"], "t3.large");
    assert_eq!(live["app1"][0]["state"], "running");
    assert_eq!(live["bots1"][0]["tags"]["infra:roles"], "bots,memcache");
    assert!(strs(&live["bots1"][0]["security_groups"]).contains("production-memcache"));
    assert_eq!(
        strs(&state["security_groups"]["production-postgres"]["rules"]),
        strs(&serde_json::json!(["6432/tcp from production-app"]))
    );
    // memcached now answers bots1 too: the memcache group lets the new member in.
    assert!(
        strs(&state["security_groups"]["production-memcache"]["rules"])
            .contains("11211/tcp from production-app")
    );
    moto.infra(
        dir,
        &["plan", "production", "--cloud-only", "--detailed-exitcode"],
    )
    .assert_code(0);
}

#[test]
fn removed_hosts_are_destroyed_after_confirmation() {
    let moto = Moto::start();
    let site = site_copy();
    let dir = site.path();
    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(0);
    let before = moto.state("production");
    // elastic's volume may go with its host; db's is kept (keep_on_destroy: true).
    edit(
        dir,
        "roles/elastic.yaml",
        "keep_on_destroy: true",
        "keep_on_destroy: false",
    );
    for host in ["db2:", "elastic1:", "app2:"] {
        let path = dir.join("inventories/production.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with(host))
            .collect();
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    }
    let plan = moto.infra(dir, &["plan", "production", "--cloud-only"]);
    plan.assert_code(0);
    let out = squeezed(&plan.stdout);
    for line in [
        "# aws_instance.db2 will be destroyed",
        "- aws_instance.db2",
        "- aws_instance.elastic1",
        "- aws_instance.app2",
        "- aws_eip.app2",
        "- aws_route53_record.db2.production.wpdn_A",
        "- aws_route53_record.app2.production.wpdn_A",
        "# kept: aws_ebs_volume.db2-db",
    ] {
        assert!(out.contains(line), "plan lacks {line:?}:\n{out}");
    }
    assert!(!out.contains("- aws_ebs_volume.db2-db"), "{out}");

    let refused = moto.infra(dir, &["apply", "production", "--cloud-only"]);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("refusing to apply without confirmation"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        live(&moto.state("production")),
        live(&before),
        "a refused apply changed the cloud"
    );

    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(0);
    let after = moto.state("production");
    let live_after = live(&after);
    for gone in ["db2", "elastic1", "app2"] {
        assert!(!live_after.contains_key(gone), "{gone} still runs");
    }
    assert_eq!(live_after.len(), 16);
    let volumes: BTreeMap<&str, &Value> = after["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["host"].as_str().unwrap(), v))
        .collect();
    assert_eq!(
        volumes["db2"]["state"], "available",
        "db2's volume is kept, detached"
    );
    assert!(!volumes.contains_key("elastic1"), "elastic1's volume goes");
    assert!(!after["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["host"] == "app2"));
    let internal = after["zones"]["production.wpdn"]["a_records"]
        .as_object()
        .unwrap();
    assert!(!internal.contains_key("db2.production.wpdn"));
    assert_eq!(internal.len(), 16);
    moto.infra(
        dir,
        &["plan", "production", "--cloud-only", "--detailed-exitcode"],
    )
    .assert_code(0);
}

#[test]
fn an_apply_killed_after_its_launches_creates_no_duplicate() {
    let moto = Moto::start();
    let site = site_copy();
    let dir = site.path();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infra"));
    cmd.arg("-C")
        .arg(dir)
        .args(["apply", "production", "--cloud-only", "--yes"])
        .envs(moto.env())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id() as i32;
    let mut launched = 0;
    let mut seen = Vec::new();
    let mut lock_id = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        lock_id = lock_id.or_else(|| lock_id_in(&line));
        if line.starts_with("aws_instance.") && line.contains(": done") {
            launched += 1;
            if launched == 5 {
                // infra and infra-aws together, as a SIGKILL of the terminal's process group.
                kill_group(pgid);
                break;
            }
        }
    }
    let _ = child.wait();
    assert_eq!(
        launched,
        5,
        "the apply ended before 5 launches:\n{}",
        seen.join("\n")
    );
    let mid = live(&moto.state("production"));
    assert!(
        (5..19).contains(&mid.len()),
        "killed after 5 launches, {} instances run",
        mid.len()
    );

    let plan = moto.infra(dir, &["plan", "production", "--cloud-only"]);
    plan.assert_code(0);
    let creates = plan.stdout.matches("+ aws_instance.").count();
    assert_eq!(creates, 19 - mid.len(), "{}", plan.stdout);
    // The killed run's lock stays until it is broken.
    let id = lock_id.expect("the apply took the lock");
    moto.infra(dir, &["force-unlock", "production", &id, "--yes"])
        .assert_code(0);

    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(0);
    let after = live(&moto.state("production"));
    assert_eq!(after.len(), 19);
    for (host, instances) in &after {
        assert_eq!(
            instances.len(),
            1,
            "{host} has {} instances",
            instances.len()
        );
    }
    for (host, i) in &mid {
        assert_eq!(
            after[host][0]["id"], i[0]["id"],
            "{host} was launched again"
        );
    }
    moto.infra(
        dir,
        &["plan", "production", "--cloud-only", "--detailed-exitcode"],
    )
    .assert_code(0);
}

fn kill_group(pgid: i32) {
    let status = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL -{pgid}");
}

/// The lock ID in infra's `took the lock of ENV (ID)` note.
fn lock_id_in(line: &str) -> Option<String> {
    let rest = line.split("took the lock of ").nth(1)?;
    let id = rest.split('(').nth(1)?.split(')').next()?;
    Some(id.to_string())
}

/// The environment lock in DynamoDB (moto): an apply killed while it holds the lock leaves
/// it; the next apply refuses at once, naming the holder and its age, and changes nothing;
/// `plan` takes no lock; `force-unlock` with a wrong ID refuses, with the holder's ID breaks
/// it; an apply then goes through and gives the lock back.
#[test]
fn a_second_apply_refuses_while_a_killed_apply_holds_the_lock() {
    let moto = Moto::start();
    let site = site_copy();
    let dir = site.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("-C")
        .arg(dir)
        .args(["apply", "production", "--cloud-only", "--yes"])
        .envs(moto.env())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    let mut seen = Vec::new();
    let mut id = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        id = lock_id_in(&line);
        if id.is_some() {
            kill_group(pgid);
            break;
        }
    }
    let _ = child.wait();
    let id = id.unwrap_or_else(|| panic!("the apply took no lock:\n{}", seen.join("\n")));
    assert_eq!(id.len(), 16, "{id}");
    let before = moto.state("production");

    let second = moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"]);
    second.assert_code(1);
    let refusal = format!("environment production is locked by {id}: ");
    assert!(second.stderr.contains(&refusal), "{}", second.stderr);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let what = format!("@{}, apply, since 20", host.trim());
    assert!(second.stderr.contains(&what), "{}", second.stderr);
    assert!(second.stderr.contains(" UTC ("), "{}", second.stderr);
    assert!(
        second.stderr.contains(" ago); nothing was changed"),
        "{}",
        second.stderr
    );
    assert!(
        second
            .stderr
            .contains(&format!("infra force-unlock production {id}")),
        "{}",
        second.stderr
    );
    assert_eq!(
        moto.state("production"),
        before,
        "the refused apply changed the cloud"
    );
    // destroy takes the same lock.
    let destroy = moto.infra(dir, &["destroy", "production", "--yes"]);
    destroy.assert_code(1);
    assert!(destroy.stderr.contains(&refusal), "{}", destroy.stderr);

    // plan takes no lock.
    moto.infra(dir, &["plan", "production", "--cloud-only"])
        .assert_code(0);

    let wrong = moto.infra(
        dir,
        &["force-unlock", "production", "0123456789abcdef", "--yes"],
    );
    wrong.assert_code(1);
    assert!(
        wrong.stderr.contains(&format!(
            "`0123456789abcdef` does not hold its lock (it is locked by {id}: "
        )),
        "{}",
        wrong.stderr
    );
    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(1);
    // Without --yes and no terminal to ask on, nothing is broken.
    moto.infra(dir, &["force-unlock", "production", &id])
        .assert_code(1);

    let right = moto.infra(dir, &["force-unlock", "production", &id, "--yes"]);
    right.assert_code(0);
    let applied = moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"]);
    applied.assert_code(0);
    // ... and gave the lock back: the next one takes it again.
    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(0);
    an_interrupted_apply_gives_the_lock_back(&moto, dir);
}

/// Ctrl-C (SIGINT) while an apply holds the lock: the lock is given up, the run ends with 130,
/// and the next apply goes through.
fn an_interrupted_apply_gives_the_lock_back(moto: &Moto, dir: &Path) {
    edit(dir, "inventories/production.yaml", "t3.small", "t3.medium");
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("-C")
        .arg(dir)
        .args(["apply", "production", "--cloud-only", "--yes"])
        .envs(moto.env())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while lock_id_in(&seen).is_none() {
        assert!(
            err.read_line(&mut seen).unwrap() > 0,
            "no lock taken:\n{seen}"
        );
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert_eq!(child.wait().unwrap().code(), Some(130), "{seen}{rest}");
    assert!(
        rest.contains("interrupted: releasing the lock of production"),
        "{rest}"
    );
    moto.infra(dir, &["apply", "production", "--cloud-only", "--yes"])
        .assert_code(0);
}

/// An RSA key for the mail role's DKIM record, made once per test process by openssl:
/// (PEM private key, base64 of its DER public key as `openssl rsa -pubout` gives it).
fn dkim_key() -> &'static (String, String) {
    static KEY: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("dkim.key");
        let ok = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "openssl genrsa failed: install openssl");
        let out = Command::new("openssl")
            .args(["rsa", "-pubout", "-outform", "DER", "-in"])
            .arg(&key)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        let b64 = Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&out.stdout)?;
                c.wait_with_output()
            })
            .unwrap();
        (
            std::fs::read_to_string(&key).unwrap(),
            String::from_utf8(b64.stdout).unwrap(),
        )
    })
}

/// A small environment of the repository's roles (mail; accounts on two hosts; the others the
/// catalogue's counts require), whose public zone exists before infra with someone else's record.
const DNS_INVENTORY: &str = "environment: dnstest
domain: webplatform.org
internal_domain: dnstest.wpdn
provider:
  type: aws
  region: us-east-1
  ami: ami-0123456789abcdef0
  instance_type: t3.small
  vpc_cidr: 10.30.0.0/16
  subnet_cidr: 10.30.1.0/24
ssh:
  user: admin
  jump_host: salt
hosts:
  salt:      {roles: [salt], private_ip: 10.30.1.10}
  source:    {roles: [source], private_ip: 10.30.1.11}
  mail:      {roles: [mail], private_ip: 10.30.1.12}
  data1:     {roles: [postgres, queue, sessions], private_ip: 10.30.1.25}
  db1:       {roles: [db, masterdb], private_ip: 10.30.1.20}
  app1:      {roles: [app], private_ip: 10.30.1.50}
  accounts1: {roles: [accounts], private_ip: 10.30.1.60}
  accounts2: {roles: [accounts], private_ip: 10.30.1.61}
";

/// Runs a boto3 snippet against moto (test set-up, not a check).
fn boto3(moto: &Moto, code: &str) {
    let out = Command::new(moto_python())
        .args([
            "-c",
            &format!("import boto3\nr53 = boto3.client('route53')\n{code}"),
        ])
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn record_sets(state: &Value, zone: &str) -> BTreeMap<String, Value> {
    state["zones"][zone]["records"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Route53 beyond A records: the mail role's MX, SPF, DKIM (the key's public half, as openssl
/// derives it) and DMARC, accounts' two Elastic IPs in one A record set, a registry record for
/// every set infra owns; someone else's record left alone; a second plan clean; the role's
/// records and a removed host's value gone with them; destroy leaves only the zone's own SOA
/// and NS and the other owner's record.
#[test]
fn records_of_every_type_are_written_owned_and_removed() {
    let moto = Moto::start();
    let site = site_copy();
    let dir = site.path();
    std::fs::write(dir.join("inventories/dnstest.yaml"), DNS_INVENTORY).unwrap();
    boto3(
        &moto,
        "z = r53.create_hosted_zone(Name='webplatform.org', CallerReference='theirs')['HostedZone']['Id']\n\
         r53.change_resource_record_sets(HostedZoneId=z, ChangeBatch={'Changes': [{'Action': 'CREATE', \
         'ResourceRecordSet': {'Name': 'www.webplatform.org', 'Type': 'CNAME', 'TTL': 60, \
         'ResourceRecords': [{'Value': 'cdn.example.net.'}]}}]})",
    );
    let spki = &dkim_key().1;
    let env = moto.env();
    let run = |args: &[&str]| infra_with(dir, args, &env);
    // Without the key, apply refuses before it changes anything.
    let refused = infra_with(
        dir,
        &["apply", "dnstest", "--cloud-only", "--yes"],
        &aws_env(moto.port),
    );
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("dkim_private_key"),
        "{}",
        refused.stderr
    );
    assert!(live(&moto.state("dnstest")).is_empty());
    let plan = run(&["plan", "dnstest", "--cloud-only"]);
    plan.assert_code(0);
    let out = squeezed(&plan.stdout);
    for line in [
        "+ aws_route53_record.webplatform.org_MX",
        "+ records = [\"10 mail.webplatform.org.\"]",
        "+ owner = \"infra env=dnstest\"",
        "+ records = [(known after apply), (known after apply)]",
    ] {
        assert!(out.contains(line), "plan lacks {line:?}:\n{out}");
    }
    run(&["apply", "dnstest", "--cloud-only", "--yes"]).assert_code(0);

    check_written(&moto.state("dnstest"), spki);
    run(&["plan", "dnstest", "--cloud-only", "--detailed-exitcode"]).assert_code(0);

    // The mail role's records go with its `dns:`; accounts2 goes, and with it its value.
    let mail = std::fs::read_to_string(dir.join("roles/mail.yaml")).unwrap();
    let cut = mail.find("\ndns:\n").expect("mail.yaml has dns:");
    std::fs::write(dir.join("roles/mail.yaml"), &mail[..cut + 1]).unwrap();
    edit(
        dir,
        "inventories/dnstest.yaml",
        "  accounts2: {roles: [accounts], private_ip: 10.30.1.61}\n",
        "",
    );
    let plan = run(&["plan", "dnstest", "--cloud-only"]);
    plan.assert_code(0);
    let out = squeezed(&plan.stdout);
    for line in [
        "- aws_route53_record.webplatform.org_MX",
        "- aws_route53_record.infra._domainkey.webplatform.org_TXT",
        "~ aws_route53_record.accounts.webplatform.org_A",
        "- aws_route53_record.accounts2.dnstest.wpdn_A",
    ] {
        assert!(out.contains(line), "plan lacks {line:?}:\n{out}");
    }
    run(&["apply", "dnstest", "--cloud-only", "--yes"]).assert_code(0);
    check_removed(&moto.state("dnstest"));

    run(&["destroy", "dnstest", "--yes"]).assert_code(0);
    let end = moto.state("dnstest");
    let left: BTreeSet<String> = record_sets(&end, "webplatform.org").into_keys().collect();
    assert_eq!(
        left,
        BTreeSet::from([
            "webplatform.org NS".to_string(),
            "webplatform.org SOA".to_string(),
            "www.webplatform.org CNAME".to_string(),
        ])
    );
    assert!(!end["zones"]
        .as_object()
        .unwrap()
        .contains_key("dnstest.wpdn"));
}

/// The Elastic IP of `host`.
fn eip_of(state: &Value, host: &str) -> String {
    state["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["host"] == host)
        .unwrap_or_else(|| panic!("{host} has no Elastic IP"))["public_ip"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The records of the first apply, as boto3 sees them.
fn check_written(state: &Value, spki: &str) {
    let sets = record_sets(state, "webplatform.org");
    let eip = |host: &str| eip_of(state, host);
    let set = |name: &str| -> &Value {
        sets.get(name)
            .unwrap_or_else(|| panic!("no record set {name}: {sets:#?}"))
    };
    assert_eq!(
        set("webplatform.org MX")["values"],
        serde_json::json!(["10 mail.webplatform.org."])
    );
    assert_eq!(set("webplatform.org MX")["ttl"], 300);
    assert_eq!(
        set("webplatform.org TXT")["values"],
        serde_json::json!(["\"v=spf1 mx -all\""])
    );
    assert_eq!(
        set("_dmarc.webplatform.org TXT")["values"],
        serde_json::json!(["\"v=DMARC1; p=quarantine; rua=mailto:postmaster@webplatform.org\""])
    );
    // The DKIM value is split into quoted strings of at most 255 characters.
    let dkim = set("infra._domainkey.webplatform.org TXT")["values"][0]
        .as_str()
        .unwrap()
        .to_string();
    let joined: String = dkim.split("\" \"").map(|p| p.trim_matches('"')).collect();
    assert_eq!(joined, format!("v=DKIM1; k=rsa; p={spki}"));
    assert!(dkim
        .split("\" \"")
        .all(|p| p.trim_matches('"').len() <= 255));
    let mut both = vec![eip("accounts1"), eip("accounts2")];
    both.sort();
    assert_eq!(
        set("accounts.webplatform.org A")["values"],
        serde_json::json!(both)
    );
    assert_eq!(
        set("mail.webplatform.org A")["values"],
        serde_json::json!([eip("mail")])
    );
    // Each of them registered to the environment; the other owner's record untouched.
    for owned in [
        "webplatform.org MX",
        "webplatform.org TXT",
        "_dmarc.webplatform.org TXT",
        "infra._domainkey.webplatform.org TXT",
        "accounts.webplatform.org A",
        "mail.webplatform.org A",
    ] {
        let (name, t) = owned.split_once(' ').unwrap();
        let reg = format!("_infra-owner.{}.{name} TXT", t.to_lowercase());
        assert_eq!(
            set(&reg)["values"],
            serde_json::json!(["\"infra env=dnstest\""]),
            "{reg}"
        );
    }
    assert_eq!(
        set("www.webplatform.org CNAME")["values"],
        serde_json::json!(["cdn.example.net."])
    );
    let internal = record_sets(state, "dnstest.wpdn");
    assert_eq!(
        internal["accounts2.dnstest.wpdn A"]["values"],
        serde_json::json!(["10.30.1.61"])
    );
    assert!(!internal.keys().any(|k| k.starts_with("_infra-owner")));
}

/// The records once the mail role's `dns:` and accounts2 are gone.
fn check_removed(after: &Value) {
    let eip = |host: &str| eip_of(after, host);
    let sets = record_sets(after, "webplatform.org");
    for gone in [
        "webplatform.org MX",
        "webplatform.org TXT",
        "_dmarc.webplatform.org TXT",
        "infra._domainkey.webplatform.org TXT",
        "_infra-owner.mx.webplatform.org TXT",
        "_infra-owner.txt.infra._domainkey.webplatform.org TXT",
    ] {
        assert!(!sets.contains_key(gone), "{gone} is still there");
    }
    assert_eq!(
        sets["accounts.webplatform.org A"]["values"],
        serde_json::json!([eip("accounts1")])
    );
}
