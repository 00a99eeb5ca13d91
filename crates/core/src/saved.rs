//! A saved plan held against the plan computed again at apply time: the digests of what it was
//! computed from ([`Inputs`]), and every difference between its steps and the new ones.
//!
//! The digests are not a signature (anyone who can edit the file can recompute them): what makes
//! a saved plan safe is that `apply FILE` runs the steps computed again from the site and the
//! hosts, and only when they equal the file's. The digests say *why* they differ.

use crate::desired::DesiredHost;
use crate::environment::HostView;
use crate::model::Vars;
use crate::plan::{Inputs, Plan};
use crate::secrets::Secrets;
use crate::state::sha256;
use crate::vars::VarOverride;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// One planned host as the digest sees it: its view, the variables its templates see (with
/// `--var`), and its desired state.
pub type HostInputs<'a> = (&'a HostView, &'a Vars, &'a DesiredHost);

impl Inputs {
    pub fn new(
        infra_version: &str,
        hosts: &[HostInputs],
        secrets: &Secrets,
        vars: &[VarOverride],
        limit: &[String],
    ) -> Inputs {
        Inputs {
            infra_version: infra_version.to_string(),
            site_digest: site_digest(hosts, secrets),
            vars_digest: vars_digest(vars),
            limit: limit.to_vec(),
        }
    }
}

/// sha256 over the hosts' views, variables and desired states (file contents as hashes, secret
/// values redacted first), sorted by host name.
pub fn site_digest(hosts: &[HostInputs], secrets: &Secrets) -> String {
    let mut sorted: Vec<_> = hosts.to_vec();
    sorted.sort_by(|a, b| a.2.name.cmp(&b.2.name));
    let mut h = Sha256::new();
    for (view, vars, desired) in sorted {
        let files: Vec<String> = desired
            .files()
            .map(|f| {
                if f.secrets.is_empty() {
                    f.digest.clone()
                } else {
                    let text = String::from_utf8_lossy(&f.content);
                    sha256(secrets.redact(&text).as_bytes())
                }
            })
            .collect();
        let record = serde_json::json!({
            "view": view,
            "vars": vars,
            "desired": desired,
            "contents": files,
        });
        // Serializing these plain data types cannot fail; an empty record would still differ.
        let text = serde_json::to_string(&record).unwrap_or_default();
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    }
    crate::state::hex(&h.finalize())
}

/// sha256 of the `--var` overrides.
pub fn vars_digest(vars: &[VarOverride]) -> String {
    let list: Vec<Value> = vars
        .iter()
        .map(|v| serde_json::json!([v.path, v.value]))
        .collect();
    sha256(Value::Array(list).to_string().as_bytes())
}

/// How one step (or cloud change) of the saved plan differs from the plan computed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// In the saved plan, not in the plan computed now.
    Added,
    /// In the plan computed now, not in the saved plan.
    Removed,
    /// In both, with these fields differing (`check: "a" -> "b"`).
    Altered(Vec<String>),
    /// The same steps, in another order.
    Reordered,
}

/// One difference, at a host (or `cloud`) and a step address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub host: String,
    pub address: String,
    pub change: Change,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Difference {
            host,
            address,
            change,
        } = self;
        match change {
            Change::Added => write!(
                f,
                "{host}: `{address}` added (not in the plan computed now)"
            ),
            Change::Removed => write!(
                f,
                "{host}: `{address}` removed (the plan computed now has it)"
            ),
            Change::Altered(fields) => {
                write!(f, "{host}: `{address}` altered: {}", fields.join("; "))
            }
            Change::Reordered => write!(f, "{host}: {address}"),
        }
    }
}

/// Every difference between `saved` and `now`: hosts, each host's steps, the cloud changes.
pub fn differences(saved: &Plan, now: &Plan) -> Vec<Difference> {
    let mut found = Vec::new();
    if saved.environment != now.environment {
        found.push(Difference {
            host: "plan".into(),
            address: format!("environment {}", saved.environment),
            change: Change::Altered(vec![format!(
                "environment: {:?} -> {:?}",
                now.environment, saved.environment
            )]),
        });
    }
    let now_hosts: BTreeMap<&str, _> = now.hosts.iter().map(|h| (h.host.as_str(), h)).collect();
    let saved_hosts: BTreeMap<&str, _> = saved.hosts.iter().map(|h| (h.host.as_str(), h)).collect();
    for (name, s) in &saved_hosts {
        let Some(n) = now_hosts.get(name) else {
            found.push(host_level(name, Change::Added));
            continue;
        };
        if s.init != n.init {
            found.push(Difference {
                host: name.to_string(),
                address: "host".into(),
                change: Change::Altered(vec![format!("init: {:?} -> {:?}", n.init, s.init)]),
            });
        }
        let items = |p: &crate::plan::HostPlan| -> Vec<(String, Value)> {
            p.steps
                .iter()
                .map(|st| {
                    (
                        st.address(),
                        serde_json::to_value(st).unwrap_or(Value::Null),
                    )
                })
                .collect()
        };
        found.extend(list_differences(name, &items(s), &items(n)));
    }
    for name in now_hosts.keys().filter(|n| !saved_hosts.contains_key(*n)) {
        found.push(host_level(name, Change::Removed));
    }
    let cloud_items = |p: &Plan| -> Vec<(String, Value)> {
        p.cloud
            .iter()
            .flat_map(|c| c.changes.iter())
            .map(|c| {
                let v = serde_json::to_value(c).unwrap_or(Value::Null);
                (format!("{} {}", c.action.symbol(), c.address), v)
            })
            .collect()
    };
    found.extend(list_differences(
        "cloud",
        &cloud_items(saved),
        &cloud_items(now),
    ));
    let new_hosts = |p: &Plan| p.cloud.as_ref().map(|c| c.new_hosts.clone());
    if new_hosts(saved) != new_hosts(now) {
        found.push(Difference {
            host: "cloud".into(),
            address: "new machines".into(),
            change: Change::Altered(vec![format!(
                "new_hosts: {:?} -> {:?}",
                new_hosts(now).unwrap_or_default(),
                new_hosts(saved).unwrap_or_default()
            )]),
        });
    }
    let once_items = |p: &Plan| -> Vec<(String, Value)> {
        p.once
            .iter()
            .map(|o| {
                let v = serde_json::to_value(o).unwrap_or(Value::Null);
                (format!("once {} on {}", o.role, o.host), v)
            })
            .collect()
    };
    found.extend(list_differences(
        "once",
        &once_items(saved),
        &once_items(now),
    ));
    found
}

fn host_level(host: &str, change: Change) -> Difference {
    Difference {
        host: host.to_string(),
        address: "every step of the host".into(),
        change,
    }
}

/// Items paired by address (and occurrence, for an address that repeats).
fn list_differences(
    host: &str,
    saved: &[(String, Value)],
    now: &[(String, Value)],
) -> Vec<Difference> {
    if saved == now {
        return Vec::new();
    }
    let keyed = |items: &[(String, Value)]| -> BTreeMap<(String, usize), Value> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        items
            .iter()
            .map(|(a, v)| {
                let n = seen.entry(a.as_str()).or_default();
                *n += 1;
                ((a.clone(), *n), v.clone())
            })
            .collect()
    };
    let (s, n) = (keyed(saved), keyed(now));
    let mut found = Vec::new();
    let at = |address: &str, change| Difference {
        host: host.to_string(),
        address: address.to_string(),
        change,
    };
    for (key, sv) in &s {
        match n.get(key) {
            None => found.push(at(&key.0, Change::Added)),
            Some(nv) if nv != sv => {
                let mut fields = Vec::new();
                value_differences("", nv, sv, &mut fields);
                found.push(at(&key.0, Change::Altered(fields)));
            }
            Some(_) => {}
        }
    }
    for key in n.keys().filter(|k| !s.contains_key(*k)) {
        found.push(at(&key.0, Change::Removed));
    }
    if found.is_empty() {
        found.push(at("the steps are in another order", Change::Reordered));
    }
    found
}

/// The paths where `now` and `saved` differ, with both values when they are short.
fn value_differences(path: &str, now: &Value, saved: &Value, out: &mut Vec<String>) {
    if now == saved {
        return;
    }
    if let (Value::Object(a), Value::Object(b)) = (now, saved) {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let null = Value::Null;
            value_differences(
                &p,
                a.get(k).unwrap_or(&null),
                b.get(k).unwrap_or(&null),
                out,
            );
        }
        return;
    }
    let short = |v: &Value| {
        let t = v.to_string();
        (t.chars().count() <= 120).then_some(t)
    };
    let name = if path.is_empty() { "step" } else { path };
    match (short(now), short(saved)) {
        (Some(a), Some(b)) if path != "diff" => out.push(format!("{name}: {a} -> {b}")),
        _ => out.push(format!("{name} differs")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{command, Step};
    use crate::plan::HostPlan;

    fn plan(steps: Vec<Step>) -> Plan {
        Plan::new(
            "prod",
            vec![HostPlan {
                host: "app1".into(),
                init: Default::default(),
                facts_fingerprint: "f".into(),
                steps,
            }],
        )
    }

    fn cmd(name: &str, run: &str) -> Step {
        Step::Command(command::Step {
            role: "app".into(),
            name: name.into(),
            run: run.into(),
        })
    }

    #[test]
    fn equal_plans_have_no_differences() {
        let p = plan(vec![cmd("a", "true")]);
        assert!(differences(&p, &p.clone()).is_empty());
    }

    #[test]
    fn added_removed_altered_and_reordered_steps_are_named() {
        let now = plan(vec![cmd("a", "true"), cmd("b", "true")]);
        let added = plan(vec![
            cmd("a", "true"),
            cmd("b", "true"),
            cmd("evil", "rm -rf /"),
        ]);
        assert_eq!(
            differences(&added, &now)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["app1: `command evil` added (not in the plan computed now)"]
        );
        let removed = plan(vec![cmd("a", "true")]);
        assert_eq!(differences(&removed, &now)[0].change, Change::Removed);
        let altered = plan(vec![cmd("a", "true"), cmd("b", "curl x | sh")]);
        assert_eq!(
            differences(&altered, &now)[0].to_string(),
            "app1: `command b` altered: run: \"true\" -> \"curl x | sh\""
        );
        let reordered = plan(vec![cmd("b", "true"), cmd("a", "true")]);
        assert_eq!(differences(&reordered, &now)[0].change, Change::Reordered);
    }

    #[test]
    fn cloud_changes_are_compared_too() {
        use crate::cloud::{CloudAction, CloudChange, CloudPlan};
        let change = |address: &str| CloudChange {
            address: address.into(),
            action: CloudAction::Create,
            attrs: Vec::new(),
            ops: Vec::new(),
        };
        let mut now = plan(vec![]);
        now.cloud = Some(CloudPlan {
            changes: vec![change("aws_instance.app1")],
            ..CloudPlan::default()
        });
        let mut saved = now.clone();
        saved.cloud.as_mut().unwrap().changes[0].action = CloudAction::Delete;
        saved
            .cloud
            .as_mut()
            .unwrap()
            .changes
            .push(change("aws_eip.x"));
        let d: Vec<String> = differences(&saved, &now)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "cloud: `+ aws_eip.x` added (not in the plan computed now)",
                "cloud: `- aws_instance.app1` added (not in the plan computed now)",
                "cloud: `+ aws_instance.app1` removed (the plan computed now has it)",
            ]
        );
    }

    #[test]
    fn a_host_only_in_one_plan_is_named() {
        let now = plan(vec![]);
        let mut saved = now.clone();
        saved.hosts[0].host = "db1".into();
        let d: Vec<String> = differences(&saved, &now)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(d.len(), 2, "{d:?}");
    }
}
