//! Groups: created when missing (`groupadd`). Facts: which of the named groups exist.

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
}

/// The groups that exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub existing: BTreeSet<String>,
}

impl Kind for Step {
    fn probe(desired: &DesiredHost, s: &mut Script) {
        let names: Vec<&str> = desired
            .roles
            .iter()
            .flat_map(|r| r.groups.iter().map(|g| g.name.as_str()))
            .collect();
        if !names.is_empty() {
            s.line(
                "for g in {}; do getent group \"$g\" >/dev/null && printf 'group\\t%s\\n' \"$g\"; done",
                &[Arg::Words(&names)],
            );
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let ["group", name] = fields else {
            return None;
        };
        facts.group.existing.insert(name.to_string());
        Some(Ok(()))
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        for g in &role.groups {
            if !p.facts.group.existing.contains(g.name.as_str()) {
                p.steps.push(
                    Step {
                        action: Action::Create,
                        role: role.role.clone(),
                        name: g.name.to_string(),
                        system: g.system,
                    }
                    .into(),
                );
            }
        }
    }

    fn address(&self) -> String {
        format!("group {}", self.name)
    }

    fn script(&self, i: usize, _w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        let name = w(&self.name);
        let mut add = Script::new();
        add.push("groupadd", &[]);
        if self.system {
            add.raw(" --system");
        }
        s.line(
            "getent group {} >/dev/null || {} {} > \"$log\" 2>&1 || fail {}",
            &[name, Arg::Frag(&add), name, n(i)],
        )
        .line("say {} changed", &[n(i)]);
        Ok(())
    }
}
