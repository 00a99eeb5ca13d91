//! The apply script: one POSIX sh program per host that runs exactly a plan's steps, in order,
//! and reports each one on stdout as `@@infra<TAB>step<TAB>N<TAB>changed|ok|failed`.

use crate::desired::DesiredHost;
use crate::facts::{sh_quote, InitSystem, STATE_DIR};
use crate::model::OnChange;
use crate::plan::{HostPlan, ServiceAction, Step};
use base64::Engine;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Seconds a service action may take before it is reported failed.
pub const SERVICE_TIMEOUT: u32 = 300;
/// Seconds a command may take.
pub const COMMAND_TIMEOUT: u32 = 1800;

/// The marker that starts every line the script reports.
pub const MARKER: &str = "@@infra";

/// The plan asks for content the desired state does not have (a stale saved plan).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("host {host}: the plan writes {dest}, which the site no longer renders")]
    MissingFile { host: String, dest: String },
    #[error("host {host}: {dest} renders differently from when the plan was made")]
    ContentChanged { host: String, dest: String },
}

const PRELUDE: &str = r#"set -u
umask 022
export LC_ALL=C DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
me=$(id -un):$(id -gn)
S=${INFRA_STATE_DIR:-__STATE__}
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

/// Builds the script for `plan`, taking file contents from `desired` (checked against the
/// hashes the plan was made with).
/// Before `apt-get install`: a `policy-rc.d` that keeps the packages' maintainer scripts from
/// starting their daemons (on systemd and sysvinit alike), so a daemon first runs when its
/// service step starts it, with the config this run wrote, not the package's default. One left
/// by a killed run (its marker line) is taken as ours; anyone else's is left alone.
const NO_START: &str = "P=/usr/sbin/policy-rc.d; own=
if [ ! -e \"$P\" ] || grep -qx '# infra: no daemon starts during apt-get' \"$P\" 2>/dev/null; then
  printf '#!/bin/sh\\n# infra: no daemon starts during apt-get\\nexit 101\\n' > \"$P\" && chmod 755 \"$P\" && own=1
fi
";

/// After `apt-get install`: removes the `policy-rc.d` that [`NO_START`] wrote.
const ALLOW_START: &str = "[ -z \"$own\" ] || rm -f \"$P\"\n";

pub fn apply_script(plan: &HostPlan, desired: &DesiredHost) -> Result<String, ScriptError> {
    let contents: BTreeMap<&str, &[u8]> = desired
        .files()
        .map(|f| (f.dest.as_str(), f.content.as_slice()))
        .collect();
    let on_change: BTreeMap<&str, OnChange> = desired
        .services()
        .map(|s| (s.name.as_str(), s.on_change))
        .collect();
    // dest -> the service actions its change asks for, journaled before the file is written.
    let mut journal: BTreeMap<&str, Vec<(&'static str, &str)>> = BTreeMap::new();
    for step in &plan.steps {
        if let Step::Service {
            name,
            triggered_by,
            action,
            ..
        } = step
        {
            let verb = match (action, on_change.get(name.as_str())) {
                (ServiceAction::Restart, _) | (_, Some(OnChange::Restart)) => "restart",
                _ => "reload",
            };
            for dest in triggered_by {
                journal
                    .entry(dest.as_str())
                    .or_default()
                    .push((verb, name.as_str()));
            }
        }
    }
    // Which step wrote each file, to put the previous version back when a check fails.
    let mut written: BTreeMap<&str, usize> = BTreeMap::new();
    let mut s = PRELUDE.replace("__STATE__", STATE_DIR);
    let svc = |verb: &str, name: &str| -> String {
        let n = sh_quote(name);
        match (plan.init, verb) {
            (InitSystem::Systemd, "reload") => format!("timeout {SERVICE_TIMEOUT} systemctl reload-or-restart {n}"),
            // Disabling a service no installed package provides has nothing to do.
            (InitSystem::Systemd, "disable") => format!(
                "if systemctl cat {n} >/dev/null 2>&1; then timeout {SERVICE_TIMEOUT} systemctl disable {n}; fi"
            ),
            (InitSystem::Systemd, v) => format!("timeout {SERVICE_TIMEOUT} systemctl {v} {n}"),
            (InitSystem::Sysv, "disable") => {
                format!("if [ -e /etc/init.d/{n} ]; then update-rc.d {n} disable; fi")
            }
            (InitSystem::Sysv, "enable") => format!(
                "{{ [ -x /etc/init.d/{name} ] || {{ echo 'no /etc/init.d/{name} on this host (it has no systemd)'; false; }}; }} && update-rc.d {n} defaults && update-rc.d {n} enable"
            ),
            // A service found stopped when it is time to reload it is started instead.
            (InitSystem::Sysv, "reload") => format!(
                "if /etc/init.d/{name} status >/dev/null 2>&1; then timeout {SERVICE_TIMEOUT} service {n} reload; else timeout {SERVICE_TIMEOUT} service {n} start; fi"
            ),
            (InitSystem::Sysv, v) => format!("timeout {SERVICE_TIMEOUT} service {n} {v}"),
        }
    };
    for (i, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(s, "# step {i}: {}", step.address());
        match step {
            Step::Volume {
                device, fs, mount, ..
            } => {
                let (d, f, m) = (sh_quote(device), sh_quote(fs), sh_quote(mount));
                // Wait for the attachment to show; format only a device without a filesystem,
                // and then carry over what the mount point already held (data of a package
                // installed before the volume came); mount by UUID from fstab (nofail: the host
                // still boots without it).
                let _ = writeln!(
                    s,
                    "dev={d}; n=0; while [ ! -b \"$dev\" ] && [ $n -lt 120 ]; do sleep 1; n=$((n+1)); done\n\
                     if [ ! -b \"$dev\" ]; then echo \"no block device $dev: is the volume attached?\" > \"$log\"; fail {i}; fi\n\
                     if ! blkid -o value -s TYPE \"$dev\" >/dev/null 2>&1; then\n\
                     \x20 mkfs -t {f} -q \"$dev\" > \"$log\" 2>&1 || fail {i}\n\
                     \x20 if [ -d {m} ] && [ -n \"$(ls -A {m})\" ]; then\n\
                     \x20   t=$(mktemp -d) && mount -t {f} \"$dev\" \"$t\" && cp -a {m}/. \"$t\"/ && umount \"$t\" && rmdir \"$t\" || fail {i}\n\
                     \x20 fi\n\
                     fi\n\
                     mkdir -p {m} && uuid=$(blkid -o value -s UUID \"$dev\") || fail {i}\n\
                     grep -q \"^UUID=$uuid \" /etc/fstab 2>/dev/null || printf 'UUID=%s %s %s defaults,nofail 0 2\\n' \"$uuid\" {m} {f} >> /etc/fstab || fail {i}\n\
                     mount {m} > \"$log\" 2>&1 || mount -t {f} \"$dev\" {m} > \"$log\" 2>&1 || fail {i}\n\
                     say {i} changed"
                );
            }
            Step::Packages { names, .. } => {
                let list: Vec<String> = names.iter().map(|n| sh_quote(n)).collect();
                let _ = writeln!(
                    s,
                    "{NO_START}apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold {} > \"$log\" 2>&1; rc=$?\n{ALLOW_START}[ $rc = 0 ] || fail {i}\nsay {i} changed",
                    list.join(" ")
                );
            }
            Step::Group { name, system, .. } => {
                let _ = writeln!(
                    s,
                    "getent group {n} >/dev/null || groupadd {} {n} > \"$log\" 2>&1 || fail {i}\nsay {i} changed",
                    if *system { "--system" } else { "" },
                    n = sh_quote(name)
                );
            }
            Step::User {
                name,
                system,
                home,
                shell,
                groups,
                ..
            } => {
                let mut args = Vec::new();
                if *system {
                    args.push("--system".to_string());
                }
                if let Some(h) = home {
                    args.push(format!("--home-dir {}", sh_quote(h)));
                    if !*system {
                        args.push("--create-home".into());
                    }
                }
                if let Some(sh) = shell {
                    args.push(format!("--shell {}", sh_quote(sh)));
                }
                if !groups.is_empty() {
                    args.push(format!("--groups {}", sh_quote(&groups.join(","))));
                }
                let _ = writeln!(
                    s,
                    "getent passwd {n} >/dev/null || useradd {} {n} > \"$log\" 2>&1 || fail {i}\nsay {i} changed",
                    args.join(" "),
                    n = sh_quote(name)
                );
            }
            Step::Dir { path, after, .. } => {
                let p = sh_quote(path);
                let _ = writeln!(
                    s,
                    "{{ mkdir -p {p} && chown {o}:{g} {p} && chmod {m} {p}; }} > \"$log\" 2>&1 || fail {i}\nsay {i} changed",
                    o = sh_quote(&after.owner),
                    g = sh_quote(&after.group),
                    m = after.mode
                );
            }
            Step::File {
                dest, after, check, ..
            } => {
                let content =
                    contents
                        .get(dest.as_str())
                        .ok_or_else(|| ScriptError::MissingFile {
                            host: plan.host.clone(),
                            dest: dest.clone(),
                        })?;
                if after.sha256.as_deref() != Some(crate::facts::sha256(content).as_str()) {
                    return Err(ScriptError::ContentChanged {
                        host: plan.host.clone(),
                        dest: dest.clone(),
                    });
                }
                let d = sh_quote(dest);
                for (verb, name) in journal.get(dest.as_str()).into_iter().flatten() {
                    let _ = writeln!(s, "pending_add {verb} {}", sh_quote(name));
                }
                let _ = writeln!(
                    s,
                    "backup {i} {d}\n\
                     f={d}; dir=${{f%/*}}; [ -d \"$dir\" ] || mkdir -p \"$dir\"\n\
                     tmp=\"$dir/.infra-$$.${{f##*/}}.tmp\"; [ -e \"$tmp\" ] && rm -f \"$tmp\""
                );
                write_tmp(&mut s, content, after.mode, i);
                // Owner and mode are set before the file takes its place, with as few
                // processes as it takes: a new file already has the script's own user and
                // group (unless its directory is setgid), and the mode `umask` gave it.
                let mut fix = Vec::new();
                let (o, g) = (sh_quote(&after.owner), sh_quote(&after.group));
                fix.push(format!(
                    "{{ [ {o}:{g} = \"$me\" ] && ! [ -g \"$dir\" ]; }} || chown {o}:{g} \"$tmp\""
                ));
                if umask_for(after.mode).is_none() {
                    fix.push(format!("chmod {} \"$tmp\"", after.mode));
                }
                fix.push(format!("mv -f \"$tmp\" {d}"));
                let _ = writeln!(
                    s,
                    "{{ {}; }} >> \"$log\" 2>&1 || {{ rm -f \"$tmp\"; fail {i}; }}",
                    fix.join(" && ")
                );
                if let Some(c) = check {
                    // The old file is back: its service needs nothing from this run, unless
                    // a file written earlier in it, or an unfinished run, asked for it too.
                    let undo: String = journal
                        .get(dest.as_str())
                        .into_iter()
                        .flatten()
                        .filter(|(_, svc)| {
                            !plan.steps.iter().any(|st| match st {
                                Step::Service {
                                    name, triggered_by, ..
                                } if name == svc => triggered_by
                                    .iter()
                                    .any(|t| t == "pending" || written.contains_key(t.as_str())),
                                _ => false,
                            })
                        })
                        .map(|(_, svc)| format!("pending_done {}; ", sh_quote(svc)))
                        .collect();
                    let _ = writeln!(
                        s,
                        "sh -c {} > \"$log\" 2>&1 < /dev/null || {{ r=$?; restore {i} {d}; {undo}(exit $r) || fail {i}; }}",
                        sh_quote(c)
                    );
                }
                let _ = writeln!(s, "say {i} changed");
                written.insert(dest.as_str(), i);
            }
            Step::Link { path, target, .. } => {
                let _ = writeln!(
                    s,
                    "ln -sfn {} {} > \"$log\" 2>&1 || fail {i}\nsay {i} changed",
                    sh_quote(target),
                    sh_quote(path)
                );
            }
            Step::Service {
                action,
                name,
                triggered_by,
                check,
                ..
            } => {
                // A check already run by every file that triggers this action is not run again.
                let checked_by_files = triggered_by.iter().all(|t| {
                    plan.steps.iter().any(|st| matches!(st, Step::File { dest, check: Some(fc), .. } if dest == t && Some(fc) == check.as_ref()))
                });
                if let (Some(c), false, false) = (check, triggered_by.is_empty(), checked_by_files)
                {
                    let restores: String = triggered_by
                        .iter()
                        .filter_map(|d| {
                            written
                                .get(d.as_str())
                                .map(|w| format!("restore {w} {}; ", sh_quote(d)))
                        })
                        .collect();
                    let _ = writeln!(
                        s,
                        "sh -c {} > \"$log\" 2>&1 < /dev/null || {{ r=$?; {restores}pending_done {n}; (exit $r) || fail {i}; }}",
                        sh_quote(c),
                        n = sh_quote(name)
                    );
                }
                let _ = writeln!(
                    s,
                    "{{ {}; }} > \"$log\" 2>&1 < /dev/null || fail {i}",
                    svc(action.as_str(), name)
                );
                if !matches!(action, ServiceAction::Enable | ServiceAction::Disable) {
                    let _ = writeln!(s, "pending_done {}", sh_quote(name));
                }
                let _ = writeln!(s, "say {i} changed");
            }
            Step::Command { run, .. } => {
                let _ = writeln!(
                    s,
                    "timeout {COMMAND_TIMEOUT} sh -c {} > \"$log\" 2>&1 < /dev/null || fail {i}\nsay {i} changed",
                    sh_quote(run)
                );
            }
        }
    }
    s.push_str("rm -f \"$S\"/backup/* \"$log\"\nprintf '@@infra\\tdone\\n'\n");
    Ok(s)
}

/// The umask under which the shell's `>` creates a file with exactly `mode` (0666 & ~umask),
/// when there is one: no execute or special bits.
fn umask_for(mode: crate::model::Mode) -> Option<u32> {
    (mode.0 & !0o666 == 0).then_some(0o777 & !mode.0)
}

/// Writes `content` to "$tmp" and leaves `log` holding any error. Text goes through the shell's
/// own `printf` (no process); content that is not UTF-8 or holds a NUL byte, through `base64 -d`.
/// The file is created under the umask that gives it its mode, when one does.
fn write_tmp(s: &mut String, content: &[u8], mode: crate::model::Mode, i: usize) {
    let umask = umask_for(mode).unwrap_or(0o077);
    let _ = write!(s, "umask {umask:03o}; ");
    match std::str::from_utf8(content) {
        Ok(text) if !text.contains('\0') => {
            let _ = writeln!(s, "printf %s {} > \"$tmp\" 2>\"$log\"", sh_quote(text));
        }
        _ => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(content);
            let mut body = String::new();
            for chunk in encoded.as_bytes().chunks(76) {
                body.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                body.push('\n');
            }
            let _ = write!(
                s,
                "base64 -d > \"$tmp\" 2>\"$log\" <<'INFRA_EOF'\n{body}INFRA_EOF\n"
            );
        }
    }
    let _ = writeln!(
        s,
        "rc=$?; umask 022; [ $rc = 0 ] || {{ rm -f \"$tmp\"; fail {i}; }}"
    );
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
