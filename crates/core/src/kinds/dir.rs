//! Directories: created with their owner, group and mode, or corrected. Facts: the shared
//! `stat` of their paths.

use super::{Kind, Planner, ScriptError, Writer};
use crate::desired::{DesiredHost, RoleState, DIR_MODE};
use crate::shell::{n, w, Arg, Script};
use crate::state::{Action, FileState, PathKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub role: String,
    pub path: String,
    pub before: Option<FileState>,
    pub after: FileState,
}

/// Directories have no facts beyond the shared `stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts;

impl Kind for Step {
    fn paths(desired: &DesiredHost) -> Vec<&str> {
        desired.dirs().map(|d| d.path.as_str()).collect()
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        for d in &role.dirs {
            let after = FileState {
                owner: d.owner.to_string(),
                group: d.group.to_string(),
                mode: d.mode.unwrap_or(DIR_MODE),
                sha256: None,
            };
            let fact = p.facts.paths.get(d.path.as_str());
            let before = fact.map(|f| f.state(None));
            let action = match (&before, fact) {
                (None, _) => Some(Action::Create),
                (Some(_), Some(f)) if f.kind != PathKind::Dir => Some(Action::Update),
                (Some(b), _) if *b != after => Some(Action::Update),
                _ => None,
            };
            if let Some(action) = action {
                p.steps.push(
                    Step {
                        action,
                        role: role.role.clone(),
                        path: d.path.to_string(),
                        before,
                        after,
                    }
                    .into(),
                );
            }
        }
    }

    fn address(&self) -> String {
        format!("dir {}", self.path)
    }

    fn script(&self, i: usize, _w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        let p = w(&self.path);
        let (o, g) = (w(&self.after.owner), w(&self.after.group));
        // chown and chmod would act on a link's target: a link where the directory should be
        // is refused; `chown -h` all the same.
        s.line(
            "if [ -L {} ]; then printf '%s is a symbolic link (to %s): refusing to change it as a directory; remove the link\\n' {} \"$(readlink {})\" > \"$log\"; fail {} 1; fi",
            &[p, p, p, n(i)],
        )
        .line(
            "{ mkdir -p {} && chown -h {}:{} {} && chmod {} {}; } > \"$log\" 2>&1 || fail {}",
            &[p, o, g, p, Arg::Mode(self.after.mode), p, n(i)],
        )
        .line("say {} changed", &[n(i)]);
        Ok(())
    }
}
