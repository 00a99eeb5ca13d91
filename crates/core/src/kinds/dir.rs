//! Directories: created with their owner, group and mode, or corrected, with the files'
//! care about links and directories other users control (`dest_ok`). Facts: the shared
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
        let m = Arg::Mode(self.after.mode);
        // chown and chmod would act on a link's target: `dest_ok` refuses a link where the
        // directory should be, and a parent another user controls (they could swap the
        // directory for a link before the chmod), unless that user is its owner: then it is
        // made as them.
        s.line(
            "f={}; d=${f%/*}; [ -d \"${d:-/}\" ] || mkdir -p \"$d\"",
            &[p],
        )
        .line("dest_ok {} \"$f\" {} {} 0", &[n(i), o, g])
        .line(
            "if [ -n \"$as\" ]; then setpriv --reuid={} --regid={} --clear-groups sh -c 'mkdir -p \"$1\" && chmod \"$2\" \"$1\"' sh \"$f\" {}; else mkdir -p \"$f\" && chown -h {}:{} \"$f\" && chmod {} \"$f\"; fi > \"$log\" 2>&1 || fail {}",
            &[o, g, m, o, g, m, n(i)],
        )
        .line("say {} changed", &[n(i)]);
        Ok(())
    }
}
