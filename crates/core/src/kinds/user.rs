//! Users: created when missing (`useradd`, with home, shell and groups). Facts: which of the
//! named users exist.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::{DesiredHost, RoleState};
use crate::shell::{n, w, Arg, Script};
use crate::state::Action;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub role: String,
    pub name: String,
    pub system: bool,
    pub home: Option<String>,
    pub shell: Option<String>,
    pub groups: Vec<String>,
}

/// The users that exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub existing: BTreeSet<String>,
}

impl Kind for Step {
    fn probe(desired: &DesiredHost, s: &mut Script) {
        let names: Vec<&str> = desired
            .roles
            .iter()
            .flat_map(|r| r.users.iter().map(|u| u.name.as_str()))
            .collect();
        if !names.is_empty() {
            s.line(
                "for u in {}; do getent passwd \"$u\" >/dev/null && printf 'user\\t%s\\n' \"$u\"; done",
                &[Arg::Words(&names)],
            );
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let ["user", name] = fields else {
            return None;
        };
        facts.user.existing.insert(name.to_string());
        Some(Ok(()))
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        for u in &role.users {
            if !p.facts.user.existing.contains(u.name.as_str()) {
                p.steps.push(
                    Step {
                        action: Action::Create,
                        role: role.role.clone(),
                        name: u.name.to_string(),
                        system: u.system,
                        home: u.home.as_ref().map(|h| h.to_string()),
                        shell: u.shell.as_ref().map(|h| h.to_string()),
                        groups: u.groups.iter().map(|g| g.to_string()).collect(),
                    }
                    .into(),
                );
            }
        }
    }

    fn address(&self) -> String {
        format!("user {}", self.name)
    }

    fn script(&self, i: usize, _w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        let mut args = Script::new();
        let mut sep = "";
        let mut add = |args: &mut Script, template: &'static str, value: Option<&str>| {
            args.raw(sep);
            match value {
                Some(v) => args.push(template, &[w(v)]),
                None => args.raw(template),
            };
            sep = " ";
        };
        if self.system {
            add(&mut args, "--system", None);
        }
        if let Some(h) = &self.home {
            add(&mut args, "--home-dir {}", Some(h));
            if !self.system {
                add(&mut args, "--create-home", None);
            }
        }
        if let Some(sh) = &self.shell {
            add(&mut args, "--shell {}", Some(sh));
        }
        let groups = self.groups.join(",");
        if !self.groups.is_empty() {
            add(&mut args, "--groups {}", Some(&groups));
        }
        let name = w(&self.name);
        s.line(
            "getent passwd {} >/dev/null || useradd {} {} > \"$log\" 2>&1 || fail {}",
            &[name, Arg::Frag(&args), name, n(i)],
        )
        .line("say {} changed", &[n(i)]);
        Ok(())
    }
}
