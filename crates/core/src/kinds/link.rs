//! Symbolic links: made or pointed at their target (`ln -sfnT`: an existing directory at the
//! path is an error, never a place to make the link in). Facts: each link's target.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::{DesiredHost, RoleState};
use crate::shell::{n, w, Arg, Script};
use crate::state::Action;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub role: String,
    pub path: String,
    pub target: String,
    pub before: Option<String>,
}

/// Link path -> its target, for the paths that are symbolic links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub targets: BTreeMap<String, String>,
}

impl Kind for Step {
    fn paths(desired: &DesiredHost) -> Vec<&str> {
        desired
            .roles
            .iter()
            .flat_map(|r| r.links.iter().map(|l| l.path.as_str()))
            .collect()
    }

    fn probe(desired: &DesiredHost, s: &mut Script) {
        let links = Self::paths(desired);
        if !links.is_empty() {
            s.line("for l in {}; do [ -L \"$l\" ] && printf 'link\\t%s\\t%s\\n' \"$l\" \"$(readlink \"$l\")\"; done", &[Arg::Words(&links)]);
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let ["link", path, target] = fields else {
            return None;
        };
        facts
            .link
            .targets
            .insert(path.to_string(), target.to_string());
        Some(Ok(()))
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        for l in &role.links {
            let before = p.facts.link.targets.get(l.path.as_str()).cloned();
            if before.as_deref() != Some(l.target.as_str()) {
                p.steps.push(
                    Step {
                        action: if before.is_none() {
                            Action::Create
                        } else {
                            Action::Update
                        },
                        role: role.role.clone(),
                        path: l.path.to_string(),
                        target: l.target.to_string(),
                        before,
                    }
                    .into(),
                );
            }
        }
    }

    fn address(&self) -> String {
        format!("link {}", self.path)
    }

    fn script(&self, i: usize, _w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        s.line(
            "ln -sfnT -- {} {} > \"$log\" 2>&1 || fail {}",
            &[w(&self.target), w(&self.path), n(i)],
        )
        .line("say {} changed", &[n(i)]);
        Ok(())
    }
}
