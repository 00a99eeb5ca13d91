//! The apply script: one POSIX sh program per host that runs exactly a plan's steps, in order,
//! and reports each one on stdout as `@@infra<TAB>step<TAB>N<TAB>changed|ok|failed`.

use crate::desired::DesiredHost;
use crate::kinds::service::journal;
use crate::kinds::Writer;
use crate::plan::HostPlan;
use crate::shell::{n, w, Arg, Script};
use std::collections::BTreeMap;

pub use crate::kinds::command::COMMAND_TIMEOUT;
pub use crate::kinds::service::SERVICE_TIMEOUT;

/// The marker that starts every line the script reports.
pub const MARKER: &str = "@@infra";

pub use crate::kinds::ScriptError;

/// Before the lock: where the state lives, and the lock itself. The script holds the host's
/// lock for its whole life by running itself again under `flock -o` (the lock's descriptor is
/// kept by `flock` alone, so no daemon a step starts inherits it and holds the host forever).
/// A second run refuses at once with the holder's record (`@@infra<TAB>locked<TAB>...`).
const PRELUDE: &str = r#"set -u
umask 022
export LC_ALL=C DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
S=${INFRA_STATE_DIR:-/var/lib/infra}
P="$S/pending"
if [ "${1:-}" != locked ]; then
  { mkdir -p "$S" && chmod 700 "$S"; } 2>/dev/null || { printf '@@infra\tfatal\tcannot create %s\n' "$S"; exit 1; }
  command -v flock >/dev/null || { printf '@@infra\tfatal\tflock (util-linux) is missing on this host: install it\n'; exit 1; }
  flock -n -o -E 75 "$S/lock" sh "$0" locked; rc=$?
  if [ $rc = 75 ]; then
    h=; [ -f "$S/holder" ] && IFS= read -r h < "$S/holder"
    printf '@@infra\tlocked\t%s\n' "${h:-?}"
  fi
  exit $rc
fi
"#;

/// Under the lock: the holder's record, this run's own directory (backups, step log, the
/// journal's next version; those of killed runs removed, with the temp files a killed run left
/// in the directories it was writing to, which its `dirs` lists), and the helpers every step uses.
const LOCKED: &str = r#"from=${SSH_CLIENT:-local}; from=${from%% *}
printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$who" "$from" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" $$ > "$S/holder"
for j in "$S"/runs/*/dirs; do
  [ -f "$j" ] || continue
  while IFS= read -r d; do rm -f -- "$d"/.infra.??????????; done < "$j"
done
rm -rf "$S/runs" "$S/backup" "$S/step.log" "$S/pending.new"
R="$S/runs/$run"
mkdir -p "$R" || { printf '@@infra\tfatal\tcannot create %s\n' "$R"; exit 1; }
me=$(id -un):$(id -gn)
log="$R/step.log"
say() { printf '@@infra\tstep\t%s\t%s\n' "$1" "$2"; }
fail() {
  rc=${2:-$?}
  say "$1" failed
  tail -n 25 "$log" 2>/dev/null | while IFS= read -r l; do printf '@@infra\tout\t%s\n' "$l"; done
  printf '@@infra\tout\t(exit status %s)\n' "$rc"
  rm -rf "$R"
  exit 1
}
pending_add() { grep -Fqx "$1 $2" "$P" 2>/dev/null || printf '%s %s\n' "$1" "$2" >> "$P"; }
pending_done() {
  [ -f "$P" ] || return 0
  while read -r a b; do [ "$b" = "$1" ] || printf '%s %s\n' "$a" "$b"; done < "$P" > "$R/pending.new" && mv -f "$R/pending.new" "$P"
}
backup() { if [ -e "$2" ] || [ -L "$2" ]; then cp -pP "$2" "$R/$1"; else : > "$R/$1.absent"; fi; }
restore() {
  if [ -e "$R/$1.absent" ]; then rm -f "$2"
  elif [ -f "$R/$1" ] && ! [ -L "$R/$1" ]; then
    as=; [ -f "$R/$1.as" ] && read -r as < "$R/$1.as"
    stat -c '%u %g %a' "$R/$1" > "$R/$1.meta" && read -r o g m < "$R/$1.meta" || return
    # Written as the directory's owner: put back as them too, never as root.
    [ -z "$as" ] || o=$as
    put_file "$2" "$o" "$g" "$m" < "$R/$1"
  fi
}
"#;

/// Symlink-safe writes. `dest_ok STEP FILE OWNER GROUP ALLOW` refuses a destination that is a
/// symbolic link, and one in a directory (or above it) that a user other than root controls
/// (owns it, or may write to it without the sticky bit), since that user could swap the file
/// for a link while root writes it. When that user is the file's owner (and group), the file
/// is written as them instead (`$as`): a link they plant then leads only where they could write
/// anyway. `ALLOW` (`unsafe_parent: allow`) writes as root all the same. `put_file FILE OWNER
/// GROUP MODE` writes stdin to a `mktemp` file in FILE's directory, sets owner (`chown -h`) and
/// mode, and renames it into place (`mv -T`: never into a directory). The directory goes into
/// the run's `dirs` first: a run killed mid-write leaves a temp file there, which the next run
/// removes (mktemp's `.infra.` and 10 characters; the host lock keeps other runs away).
const WRITES: &str = r#"dest_ok() {
  n=$1 f=$2 o=$3 g=$4 ok=$5 as= why=
  if [ -L "$f" ]; then
    printf '%s is a symbolic link (to %s): refusing to follow it; remove the link, or name the path it points to instead\n' "$f" "$(readlink "$f")" > "$log"
    fail "$n" 1
  fi
  d=${f%/*}; set --
  while [ -n "$d" ]; do set -- "$@" "$d"; d=${d%/*}; done
  stat -Lc '%u:%U:%G:%a:%n' -- "$@" / > "$R/stat" 2> "$log" || fail "$n"
  while IFS=: read -r uid user grp mode name; do
    m=$((0$mode)); free=$((m & 01000))
    if [ $free = 0 ] && [ $((m & 02)) != 0 ]; then why="$name is writable by every user"
    elif [ "$uid" != 0 ] && [ "$user" != "$o" ]; then why="$name is owned by $user"
    elif [ $free = 0 ] && [ $((m & 020)) != 0 ] && { [ "$grp" != "$g" ] || [ "$uid" = 0 ]; }; then why="$name is writable by group $grp"
    elif [ "$uid" != 0 ]; then as=$o
    fi
  done < "$R/stat"
  [ "$as" != "${me%%:*}" ] || as=
  if [ -n "$why" ] && [ "$ok" = 1 ]; then as=
  elif [ -n "$why" ]; then
    printf 'refusing to write %s: %s, who could swap it for a link while it is written; make that directory root'"'"'s and writable by root alone, or give the file to that user (owner:, infra then writes it as them), or add unsafe_parent: allow to this file in its role if you trust them\n' "$f" "$why" > "$log"
    fail "$n" 1
  fi
  printf '%s\n' "$as" > "$R/$n.as"
}
put_file() {
  printf '%s\n' "${1%/*}" >> "$R/dirs"
  if [ -n "$as" ]; then
    setpriv --reuid="$2" --regid="$3" --clear-groups sh -c 't=$(mktemp "${1%/*}/.infra.XXXXXXXXXX") && { cat > "$t" && chmod "$2" "$t" && mv -fT "$t" "$1" || { rm -f "$t"; false; }; }' sh "$1" "$4"
  else
    t=$(mktemp "${1%/*}/.infra.XXXXXXXXXX") && { cat > "$t" && { { [ "$2:$3" = "$me" ] && ! [ -g "${1%/*}" ]; } || chown -h "$2:$3" "$t"; } && chmod "$4" "$t" && mv -fT "$t" "$1" || { rm -f "$t"; false; }; }
  fi
}
"#;

/// Who runs an apply, as the host's lock records it: the run's id and `user@controller`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTag {
    id: String,
    who: String,
}

impl RunTag {
    /// A tag from any text: the id keeps only `[A-Za-z0-9_-]` (it names a directory on the
    /// host), `who` loses control characters (the holder record is one tab-separated line).
    pub fn new(id: &str, who: &str) -> RunTag {
        let id: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .take(64)
            .collect();
        RunTag {
            id: if id.is_empty() { "run".into() } else { id },
            who: who
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(200)
                .collect(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Default for RunTag {
    fn default() -> RunTag {
        RunTag::new("run", "unknown")
    }
}

/// The run holding a host's lock, from its record there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub run: String,
    pub who: String,
    /// The address it came from (`SSH_CLIENT`'s first field) or `local`.
    pub from: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub since: String,
}

/// How a script is built beyond its plan: only test hooks, and only in a build with the
/// `test-hooks` feature (the workspace's tests turn it on; a release build has none).
#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    /// Which run this is, recorded on the host while it holds the host's lock.
    pub run: RunTag,
    /// Crash tests: the script sleeps right after writing this file, so a test can kill the
    /// run at that exact point.
    #[cfg(feature = "test-hooks")]
    pub pause_after: Option<String>,
}

impl ScriptOptions {
    /// The options a test asked for through the environment: `INFRA_TEST_PAUSE_AFTER=/path`.
    pub fn from_env(run: RunTag) -> ScriptOptions {
        ScriptOptions {
            run,
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
        digests: desired
            .files()
            .map(|f| (f.dest.as_str(), f.digest.as_str()))
            .collect(),
        journal: journal(&plan.steps, desired),
        written: BTreeMap::new(),
        release: desired.release.as_ref(),
        apt_sources: &desired.apt_sources,
    };
    let mut s = Script::new();
    s.raw(PRELUDE);
    s.line("run={} who={}", &[w(&options.run.id), w(&options.run.who)]);
    s.raw(LOCKED).raw(WRITES);
    for (i, step) in plan.steps.iter().enumerate() {
        s.line("# step {}: {}", &[n(i), Arg::Comment(&step.address())]);
        step.script(i, &mut writer, &mut s)?;
        options.after_step(step, &mut s);
    }
    s.raw("rm -rf \"$R\"\nprintf '@@infra\\tdone\\n'\n");
    Ok(s.into_string())
}

/// One line the script printed, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Step {
        index: usize,
        status: StepStatus,
    },
    Output(String),
    Done,
    Fatal(String),
    /// Another run holds the host's lock: nothing was done.
    Locked(Holder),
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
        ("locked", first, rest) => {
            let text = [first, rest]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\t");
            let mut f = text.split('\t').map(str::to_string);
            let mut next = || f.next().unwrap_or_else(|| "?".into());
            Some(Report::Locked(Holder {
                run: next(),
                who: next(),
                from: next(),
                since: next(),
            }))
        }
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
        assert_eq!(
            parse_report("@@infra\tlocked\tab12\tann@ctl\t10.0.0.1\t2026-01-02T03:04:05Z\t77"),
            Some(Report::Locked(Holder {
                run: "ab12".into(),
                who: "ann@ctl".into(),
                from: "10.0.0.1".into(),
                since: "2026-01-02T03:04:05Z".into(),
            }))
        );
        let Some(Report::Locked(h)) = parse_report("@@infra\tlocked\t?") else {
            panic!("a lock with no record");
        };
        assert_eq!((h.run.as_str(), h.since.as_str()), ("?", "?"));
    }
}
