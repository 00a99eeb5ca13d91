//! The apply script: one POSIX sh program per host that runs exactly a plan's steps, in order,
//! and reports each one on stdout as `@@infra<TAB>step<TAB>N<TAB>changed|ok|failed`.

use crate::desired::DesiredHost;
use crate::kinds::service::journal;
use crate::kinds::Writer;
use crate::plan::HostPlan;
use crate::shell::{n, Arg, Script};
use std::collections::BTreeMap;

pub use crate::kinds::command::COMMAND_TIMEOUT;
pub use crate::kinds::service::SERVICE_TIMEOUT;

/// The marker that starts every line the script reports.
pub const MARKER: &str = "@@infra";

pub use crate::kinds::ScriptError;

const PRELUDE: &str = r#"set -u
umask 022
export LC_ALL=C DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
me=$(id -un):$(id -gn)
S=${INFRA_STATE_DIR:-/var/lib/infra}
P="$S/pending"
mkdir -p "$S/backup" && chmod 700 "$S" || { printf '@@infra\tfatal\tcannot create %s\n' "$S"; exit 1; }
rm -f "$S"/backup/*
log="$S/step.log"
say() { printf '@@infra\tstep\t%s\t%s\n' "$1" "$2"; }
fail() {
  rc=$?
  say "$1" failed
  tail -n 25 "$log" 2>/dev/null | while IFS= read -r l; do printf '@@infra\tout\t%s\n' "$l"; done
  printf '@@infra\tout\t(exit status %s)\n' "$rc"
  exit 1
}
pending_add() { grep -qx "$1 $2" "$P" 2>/dev/null || printf '%s %s\n' "$1" "$2" >> "$P"; }
pending_done() { [ -f "$P" ] || return 0; grep -v " $1\$" "$P" > "$P.new"; mv -f "$P.new" "$P"; }
backup() { if [ -e "$2" ] || [ -L "$2" ]; then cp -pP "$2" "$S/backup/$1"; else : > "$S/backup/$1.absent"; fi; }
restore() {
  if [ -e "$S/backup/$1.absent" ]; then rm -f "$2"; elif [ -e "$S/backup/$1" ]; then cp -pP "$S/backup/$1" "$2"; fi
}
"#;

/// How a script is built beyond its plan: only test hooks, and only in a build with the
/// `test-hooks` feature (the workspace's tests turn it on; a release build has none).
#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    /// Crash tests: the script sleeps right after writing this file, so a test can kill the
    /// run at that exact point.
    #[cfg(feature = "test-hooks")]
    pub pause_after: Option<String>,
}

impl ScriptOptions {
    /// The options a test asked for through the environment: `INFRA_TEST_PAUSE_AFTER=/path`.
    pub fn from_env() -> ScriptOptions {
        ScriptOptions {
            #[cfg(feature = "test-hooks")]
            pause_after: std::env::var("INFRA_TEST_PAUSE_AFTER").ok(),
        }
    }

    /// Whatever this step adds after its own fragment.
    fn after_step(&self, _step: &crate::kinds::Step, _s: &mut Script) {
        #[cfg(feature = "test-hooks")]
        if let crate::kinds::Step::File(f) = _step {
            if self.pause_after.as_deref() == Some(f.dest.as_str()) {
                _s.raw("sleep 600\n");
            }
        }
    }
}

/// Builds the script for `plan`, taking file contents from `desired` (checked against the
/// hashes the plan was made with): the prelude, then each step's fragment from its kind.
pub fn apply_script(plan: &HostPlan, desired: &DesiredHost) -> Result<String, ScriptError> {
    apply_script_with(plan, desired, &ScriptOptions::default())
}

/// [`apply_script`] with [`ScriptOptions`].
pub fn apply_script_with(
    plan: &HostPlan,
    desired: &DesiredHost,
    options: &ScriptOptions,
) -> Result<String, ScriptError> {
    let mut writer = Writer {
        host: &plan.host,
        init: plan.init,
        steps: &plan.steps,
        contents: desired
            .files()
            .map(|f| (f.dest.as_str(), f.content.as_slice()))
            .collect(),
        journal: journal(&plan.steps, desired),
        written: BTreeMap::new(),
    };
    let mut s = Script::new();
    s.raw(PRELUDE);
    for (i, step) in plan.steps.iter().enumerate() {
        s.line("# step {}: {}", &[n(i), Arg::Comment(&step.address())]);
        step.script(i, &mut writer, &mut s)?;
        options.after_step(step, &mut s);
    }
    s.raw("rm -f \"$S\"/backup/* \"$log\"\nprintf '@@infra\\tdone\\n'\n");
    Ok(s.into_string())
}

/// One line the script printed, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Step { index: usize, status: StepStatus },
    Output(String),
    Done,
    Fatal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Changed,
    Failed,
}

/// Parses a line of the script's stdout; other lines are not reports.
pub fn parse_report(line: &str) -> Option<Report> {
    let rest = line.strip_prefix(MARKER)?.strip_prefix('\t')?;
    let mut parts = rest.splitn(3, '\t');
    match (parts.next()?, parts.next(), parts.next()) {
        ("step", Some(i), Some(status)) => Some(Report::Step {
            index: i.parse().ok()?,
            status: match status {
                "changed" => StepStatus::Changed,
                "failed" => StepStatus::Failed,
                _ => return None,
            },
        }),
        ("out", Some(text), None) => Some(Report::Output(text.to_string())),
        ("out", Some(a), Some(b)) => Some(Report::Output(format!("{a}\t{b}"))),
        ("done", None, None) => Some(Report::Done),
        ("fatal", Some(text), _) => Some(Report::Fatal(text.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse() {
        assert_eq!(
            parse_report("@@infra\tstep\t3\tchanged"),
            Some(Report::Step {
                index: 3,
                status: StepStatus::Changed
            })
        );
        assert_eq!(
            parse_report("@@infra\tout\tnginx: [emerg] bad"),
            Some(Report::Output("nginx: [emerg] bad".into()))
        );
        assert_eq!(parse_report("@@infra\tdone"), Some(Report::Done));
        assert_eq!(parse_report("hello"), None);
    }
}
