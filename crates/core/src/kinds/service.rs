//! Services: enabled and started (or disabled and stopped), reloaded or restarted when a file
//! that notifies them changed, after their `check`; the action is journaled on the host before
//! the file changes, so a run that dies in between does it next time. Facts: each service's
//! state under the host's init system, and the journal of unfinished actions.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::{DesiredHost, RoleState, ServiceSpec};
use crate::model::OnChange;
use crate::shell::{n, w, Arg, Script};
use crate::state::{InitSystem, STATE_DIR};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Seconds a service action may take before it is reported failed.
pub const SERVICE_TIMEOUT: u32 = 300;

/// What is done to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    Enable,
    Start,
    Reload,
    Restart,
    /// `enable: false`: not started at boot ...
    Disable,
    /// ... and not running.
    Stop,
}

impl ServiceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceAction::Enable => "enable",
            ServiceAction::Start => "start",
            ServiceAction::Reload => "reload",
            ServiceAction::Restart => "restart",
            ServiceAction::Disable => "disable",
            ServiceAction::Stop => "stop",
        }
    }
}

/// Why a service reloads or restarts: a file that changed, or an action an unfinished run
/// journaled. In JSON: the file's path, or `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    File(String),
    Pending,
}

impl Trigger {
    pub fn as_str(&self) -> &str {
        match self {
            Trigger::File(dest) => dest,
            Trigger::Pending => "pending",
        }
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Trigger, D::Error> {
        let text = String::deserialize(d)?;
        // Destinations are absolute paths (validation), so `pending` is never one.
        Ok(if text == "pending" {
            Trigger::Pending
        } else {
            Trigger::File(text)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: ServiceAction,
    pub role: String,
    pub name: String,
    /// The files whose change asks for it, or `pending` for an action recorded by a run that
    /// did not finish.
    pub triggered_by: Vec<Trigger>,
    pub check: Option<String>,
}

/// State of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceFact {
    pub exists: bool,
    pub running: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub states: BTreeMap<String, ServiceFact>,
    /// `(action, service)` lines of the journal, in order.
    pub pending: Vec<(ServiceAction, String)>,
}

impl Kind for Step {
    fn probe(desired: &DesiredHost, s: &mut Script) {
        for svc in desired.services() {
            s.line("svc={}; e=0; r=0; n=0", &[w(&svc.name)]).raw(PROBE);
        }
        s.line("P=\"${INFRA_STATE_DIR:-{}}/pending\"", &[Arg::Const(STATE_DIR)])
            .raw("[ -f \"$P\" ] && while read -r a b; do [ -n \"$b\" ] && printf 'pending\\t%s\\t%s\\n' \"$a\" \"$b\"; done < \"$P\"\n");
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        match fields {
            ["svc", name, e, r, n] => {
                let fact = ServiceFact {
                    exists: *e == "1",
                    running: *r == "1",
                    enabled: *n == "1",
                };
                facts.service.states.insert(name.to_string(), fact);
            }
            ["pending", action, service] => {
                let action = if *action == "restart" {
                    ServiceAction::Restart
                } else {
                    ServiceAction::Reload
                };
                facts.service.pending.push((action, service.to_string()));
            }
            _ => return None,
        }
        Some(Ok(()))
    }

    fn plan_host(p: &mut Planner) {
        for (action, svc) in &p.facts.service.pending {
            p.mark(svc, Trigger::Pending);
            let restart = p.pending_restart.entry(svc.clone()).or_default();
            *restart |= *action == ServiceAction::Restart;
        }
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        for spec in &role.services {
            plan_service(&role.role, spec, p);
        }
    }

    /// Services notified by files of roles applied after the service's own role.
    fn plan_end(p: &mut Planner) {
        let specs: BTreeMap<&str, (&str, &ServiceSpec)> = p
            .desired
            .roles
            .iter()
            .flat_map(|r| {
                r.services
                    .iter()
                    .map(move |s| (s.name.as_str(), (r.role.as_str(), s)))
            })
            .collect();
        for (svc, why) in std::mem::take(&mut p.dirty) {
            if let Some((role, spec)) = specs.get(svc.as_str()).filter(|(_, s)| s.enable) {
                let action = change_action(spec, &p.pending_restart);
                p.steps.push(step(role, spec, action, why).into());
            }
        }
    }

    fn address(&self) -> String {
        format!("service {} {}", self.name, self.action.as_str())
    }

    fn script(&self, i: usize, wr: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        let name = w(&self.name);
        self.check_before(i, wr, s);
        s.line(
            "{ {}; } > \"$log\" 2>&1 < /dev/null || fail {}",
            &[Arg::Frag(&command(wr.init, self.action, &self.name)), n(i)],
        );
        if !matches!(self.action, ServiceAction::Enable | ServiceAction::Disable) {
            s.line("pending_done {}", &[name]);
        }
        s.line("say {} changed", &[n(i)]);
        Ok(())
    }
}

/// The facts probe of one service (`$svc` set before it).
const PROBE: &str = "if [ \"$init\" = systemd ]; then
  systemctl cat \"$svc\" >/dev/null 2>&1 && e=1
  systemctl is-active --quiet \"$svc\" && r=1
  systemctl is-enabled --quiet \"$svc\" 2>/dev/null && n=1
else
  [ -x \"/etc/init.d/$svc\" ] && e=1
  [ $e = 1 ] && \"/etc/init.d/$svc\" status >/dev/null 2>&1 </dev/null && r=1
  for l in /etc/rc2.d/S??\"$svc\"; do [ -e \"$l\" ] && n=1; done
fi
printf 'svc\\t%s\\t%s\\t%s\\t%s\\n' \"$svc\" $e $r $n
";

fn step(role: &str, spec: &ServiceSpec, action: ServiceAction, why: Vec<Trigger>) -> Step {
    Step {
        action,
        role: role.to_string(),
        name: spec.name.clone(),
        triggered_by: why,
        check: spec.check.clone(),
    }
}

/// Enabled, running, and reloaded for the changes so far; or disabled and stopped, and what
/// changed in its files waits for it.
fn plan_service(role: &str, spec: &ServiceSpec, p: &mut Planner) {
    let fact = p
        .facts
        .service
        .states
        .get(&spec.name)
        .copied()
        .unwrap_or_default();
    let why = p.take(&spec.name);
    let mut push = |action, why| p.steps.push(step(role, spec, action, why).into());
    if !spec.enable {
        // A service its package brings in this run may come enabled at boot.
        if fact.enabled || (!fact.exists && p.installing) {
            push(ServiceAction::Disable, Vec::new());
        }
        if fact.running {
            push(ServiceAction::Stop, Vec::new());
        }
        return;
    }
    if !fact.enabled {
        push(ServiceAction::Enable, Vec::new());
    }
    if !fact.running {
        push(ServiceAction::Start, why);
    } else if !why.is_empty() {
        let action = change_action(spec, &p.pending_restart);
        p.steps.push(step(role, spec, action, why).into());
    }
}

/// Reload or restart for a change: the service's `on_change`, or restart when an unfinished
/// run recorded one.
fn change_action(spec: &ServiceSpec, pending_restart: &BTreeMap<String, bool>) -> ServiceAction {
    if spec.on_change == OnChange::Restart
        || pending_restart.get(&spec.name).copied().unwrap_or(false)
    {
        ServiceAction::Restart
    } else {
        ServiceAction::Reload
    }
}

/// Destination -> the service actions its change asks for (reload, or restart when the
/// service says so), to journal before the file is written.
pub(crate) fn journal<'a>(
    steps: &'a [super::Step],
    desired: &'a DesiredHost,
) -> BTreeMap<&'a str, Vec<(ServiceAction, &'a str)>> {
    let on_change: BTreeMap<&str, OnChange> = desired
        .services()
        .map(|s| (s.name.as_str(), s.on_change))
        .collect();
    let mut journal: BTreeMap<&str, Vec<(ServiceAction, &str)>> = BTreeMap::new();
    for step in steps {
        let super::Step::Service(svc) = step else {
            continue;
        };
        let verb = match (svc.action, on_change.get(svc.name.as_str())) {
            (ServiceAction::Restart, _) | (_, Some(OnChange::Restart)) => ServiceAction::Restart,
            _ => ServiceAction::Reload,
        };
        for t in &svc.triggered_by {
            journal
                .entry(t.as_str())
                .or_default()
                .push((verb, svc.name.as_str()));
        }
    }
    journal
}

impl Step {
    /// The service's check, unless every file that triggers this action already ran the same
    /// one; a failure puts those files back.
    fn check_before(&self, i: usize, wr: &Writer, s: &mut Script) {
        let Some(check) = &self.check else {
            return;
        };
        let checked_by_files = self.triggered_by.iter().all(|t| {
            wr.steps.iter().any(|st| {
                matches!(st, super::Step::File(f) if f.dest == t.as_str() && f.check.as_ref() == Some(check))
            })
        });
        if self.triggered_by.is_empty() || checked_by_files {
            return;
        }
        let mut restores = Script::new();
        for t in &self.triggered_by {
            if let Some(step) = wr.written.get(t.as_str()) {
                restores.push("restore {} {}; ", &[n(*step), w(t.as_str())]);
            }
        }
        s.line(
            "sh -c {} > \"$log\" 2>&1 < /dev/null || { r=$?; {}pending_done {}; (exit $r) || fail {}; }",
            &[w(check), Arg::Frag(&restores), w(&self.name), n(i)],
        );
    }
}

/// The command that does `action` to service `name` under `init`.
fn command(init: InitSystem, action: ServiceAction, name: &str) -> Script {
    let (nm, t) = (w(name), n(SERVICE_TIMEOUT as usize));
    let mut s = Script::new();
    match (init, action) {
        (InitSystem::Systemd, ServiceAction::Reload) => {
            s.push("timeout {} systemctl reload-or-restart {}", &[t, nm])
        }
        // Disabling a service no installed package provides has nothing to do.
        (InitSystem::Systemd, ServiceAction::Disable) => s.push(
            "if systemctl cat {} >/dev/null 2>&1; then timeout {} systemctl disable {}; fi",
            &[nm, t, nm],
        ),
        (InitSystem::Systemd, a) => s.push("timeout {} systemctl {} {}", &[t, Arg::Const(a.as_str()), nm]),
        (InitSystem::Sysv, ServiceAction::Disable) => s.push(
            "if [ -e /etc/init.d/{} ]; then update-rc.d {} disable; fi",
            &[nm, nm],
        ),
        (InitSystem::Sysv, ServiceAction::Enable) => s.push(
            "{ [ -x /etc/init.d/{} ] || { printf 'no /etc/init.d/%s on this host (it has no systemd)\\n' {}; false; }; } && update-rc.d {} defaults && update-rc.d {} enable",
            &[nm, nm, nm, nm],
        ),
        // A service found stopped when it is time to reload it is started instead.
        (InitSystem::Sysv, ServiceAction::Reload) => s.push(
            "if /etc/init.d/{} status >/dev/null 2>&1; then timeout {} service {} reload; else timeout {} service {} start; fi",
            &[nm, t, nm, t, nm],
        ),
        // Some init scripts' restart only stops (Debian's supervisor): start what it left down.
        // Their start may refuse a daemon an interrupted run left starting or stopping: after a
        // second it is either up (done) or gone (start again).
        (InitSystem::Sysv, ServiceAction::Restart) => s.push(
            "timeout {} service {} restart && { /etc/init.d/{} status >/dev/null 2>&1 || timeout {} service {} start || { sleep 1; /etc/init.d/{} status >/dev/null 2>&1 || timeout {} service {} start; }; }",
            &[t, nm, nm, t, nm, nm, t, nm],
        ),
        (InitSystem::Sysv, ServiceAction::Start) => s.push(
            "timeout {} service {} start || { sleep 1; /etc/init.d/{} status >/dev/null 2>&1 || timeout {} service {} start; }",
            &[t, nm, nm, t, nm],
        ),
        (InitSystem::Sysv, a) => s.push("timeout {} service {} {}", &[t, nm, Arg::Const(a.as_str())]),
    };
    s
}
