//! Commands: run when their `unless` fails or their `creates` path is absent. Facts: which
//! commands say they are done, numbered in apply order.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::{DesiredHost, RoleState};
use crate::shell::{n, w, Arg, Script};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Seconds a command may take.
pub const COMMAND_TIMEOUT: u32 = 1800;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub role: String,
    pub name: String,
    pub run: String,
}

/// Indexes (in apply order) of the commands whose `unless` / `creates` says done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub done: BTreeSet<usize>,
}

impl Kind for Step {
    fn probe(desired: &DesiredHost, s: &mut Script) {
        for (i, c) in desired.commands().enumerate() {
            let mut test = Script::new();
            if let Some(p) = &c.creates {
                test.push("[ -e {} ]", &[w(p)]);
            }
            if let Some(u) = &c.unless {
                if !test.is_empty() {
                    test.raw(" || ");
                }
                test.push("sh -c {} >/dev/null 2>&1 </dev/null", &[w(u)]);
            }
            s.line(
                "if {}; then printf 'cmd\\t{}\\t1\\n'; else printf 'cmd\\t{}\\t0\\n'; fi",
                &[Arg::Frag(&test), n(i), n(i)],
            );
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let ["cmd", index, done] = fields else {
            return None;
        };
        let Ok(index) = index.parse() else {
            return Some(Err(BadLine));
        };
        if *done == "1" {
            facts.command.done.insert(index);
        }
        Some(Ok(()))
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        for c in &role.commands {
            if !p.facts.command.done.contains(&p.command_index) {
                p.steps.push(
                    Step {
                        role: role.role.clone(),
                        name: c.name.to_string(),
                        run: c.run.clone(),
                    }
                    .into(),
                );
            }
            p.command_index += 1;
        }
    }

    fn address(&self) -> String {
        format!("command {}", self.name)
    }

    fn script(&self, i: usize, _w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        s.line(
            "timeout {} sh -c {} > \"$log\" 2>&1 < /dev/null || fail {}",
            &[n(COMMAND_TIMEOUT as usize), w(&self.run), n(i)],
        )
        .line("say {} changed", &[n(i)]);
        Ok(())
    }
}
