//! Files: rendered content written through a temp file in the same directory, owner and mode
//! set before it takes its place, its `check` run after, the previous file put back when the
//! check fails. A role's `once:` file on a host other than its once-host is removed (backed up
//! first, its services notified as by a change). Facts: the shared `stat`, and one `sha256sum`
//! of every destination.

use super::service::Trigger;
use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::{AbsentFile, DesiredHost, RoleState};
use crate::render::RenderedFile;
use crate::shell::{n, w, Arg, Script};
use crate::state::{Action, FileState, PathKind};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A file written (`Create`, `Update`), or removed (`Delete`: `before` and `after` both hold
/// the state it had, `diff` is none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub role: String,
    pub dest: String,
    pub before: Option<FileState>,
    pub after: FileState,
    /// Unified diff, `--- current` / `+++ rendered`; none for a file holding a secret.
    pub diff: Option<String>,
    /// The file holds a secret: shown as changed keyed digests only (`hmac-sha256:HEX`).
    pub sensitive: bool,
    pub check: Option<String>,
    pub notify: Vec<String>,
    /// `unsafe_parent: allow`: root writes it even in a directory another user controls.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_parent: bool,
}

/// sha256 of each destination that is a readable file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub sha256: BTreeMap<String, String>,
}

/// Files whose current content the plan wants for a diff: changed and holding no secret.
pub fn files_to_diff(desired: &DesiredHost, facts: &super::Facts) -> Vec<String> {
    desired
        .files()
        .filter(|f| f.secrets.is_empty())
        .filter(|f| {
            facts
                .paths
                .get(&f.dest)
                .is_some_and(|p| p.kind == PathKind::File)
                && facts.file.sha256.get(&f.dest) != Some(&f.sha256)
        })
        .map(|f| f.dest.clone())
        .collect()
}

impl Kind for Step {
    fn paths(desired: &DesiredHost) -> Vec<&str> {
        desired
            .files()
            .map(|f| f.dest.as_str())
            .chain(desired.absent_files().map(|f| f.dest.as_str()))
            .collect()
    }

    fn probe(desired: &DesiredHost, s: &mut Script) {
        // Files to remove are only stat'ed: their content is not shown (it may hold a secret).
        let files: Vec<&str> = desired.files().map(|f| f.dest.as_str()).collect();
        if !files.is_empty() {
            // One sha256sum for every file; destinations hold no spaces (validation).
            s.line("sha256sum -- {} 2>/dev/null | while read -r h f; do printf 'hash\\t%s\\t%s\\n' \"$h\" \"$f\"; done", &[Arg::Words(&files)]);
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let ["hash", hash, path] = fields else {
            return None;
        };
        facts.file.sha256.insert(path.to_string(), hash.to_string());
        Some(Ok(()))
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        for f in &role.files {
            if let Some(step) = plan_file(&role.role, f, p) {
                p.steps.push(step.into());
            }
        }
        for f in &role.absent_files {
            if let Some(step) = plan_removal(&role.role, f, p) {
                p.steps.push(step.into());
            }
        }
    }

    fn address(&self) -> String {
        match self.action {
            Action::Delete => format!("file {} (remove)", self.dest),
            _ => format!("file {}", self.dest),
        }
    }

    fn script(&self, i: usize, wr: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        if self.action == Action::Delete {
            self.remove(i, wr, s);
            return Ok(());
        }
        let content = self.content(wr)?;
        let d = w(&self.dest);
        let (o, g) = (w(&self.after.owner), w(&self.after.group));
        let allow = Arg::Const(if self.unsafe_parent { "1" } else { "0" });
        s.line(
            "f={}; dir=${f%/*}; [ -d \"$dir\" ] || mkdir -p \"$dir\"",
            &[d],
        )
        .line("dest_ok {} \"$f\" {} {} {}", &[n(i), o, g, allow]);
        for (verb, name) in wr.journal.get(self.dest.as_str()).into_iter().flatten() {
            s.line("pending_add {} {}", &[Arg::Const(verb.as_str()), w(name)]);
        }
        s.line("backup {} \"$f\"", &[n(i)]);
        self.write(content, i, s);
        if let Some(c) = &self.check {
            let undo = self.undo_on_failed_check(wr);
            s.line(
                "sh -c {} > \"$log\" 2>&1 < /dev/null || { r=$?; restore {} {}; {}(exit $r) || fail {}; }",
                &[w(c), n(i), d, Arg::Frag(&undo), n(i)],
            );
        }
        s.line("say {} changed", &[n(i)]);
        let steps = wr.steps;
        if let Some(super::Step::File(me)) = steps.get(i) {
            wr.written.insert(me.dest.as_str(), i);
        }
        Ok(())
    }
}

impl Step {
    /// Removes the file, through the same directory checks as a write (as the directory's
    /// owner when `dest_ok` says so), after journaling its services' actions and backing it up
    /// (a failed service check puts it back).
    fn remove(&self, i: usize, wr: &mut Writer, s: &mut Script) {
        let (o, g) = (w(&self.after.owner), w(&self.after.group));
        let allow = Arg::Const(if self.unsafe_parent { "1" } else { "0" });
        s.line("f={}", &[w(&self.dest)])
            .line("dest_ok {} \"$f\" {} {} {}", &[n(i), o, g, allow]);
        for (verb, name) in wr.journal.get(self.dest.as_str()).into_iter().flatten() {
            s.line("pending_add {} {}", &[Arg::Const(verb.as_str()), w(name)]);
        }
        s.line("backup {} \"$f\"", &[n(i)])
            .line(
                "if [ -n \"$as\" ]; then setpriv --reuid={} --regid={} --clear-groups rm -f -- \"$f\"; else rm -f -- \"$f\"; fi 2>\"$log\" || fail {}",
                &[o, g, n(i)],
            )
            .line("say {} changed", &[n(i)]);
        if let Some(super::Step::File(me)) = wr.steps.get(i) {
            wr.written.insert(me.dest.as_str(), i);
        }
    }

    /// The rendered content, checked against the hash the plan was made with.
    fn content<'a>(&self, wr: &Writer<'a>) -> Result<&'a [u8], ScriptError> {
        let content =
            wr.contents
                .get(self.dest.as_str())
                .ok_or_else(|| ScriptError::MissingFile {
                    host: wr.host.to_string(),
                    dest: self.dest.clone(),
                })?;
        // The content's sha256, or its keyed digest for a file holding a secret.
        let digest = wr.digests.get(self.dest.as_str()).copied();
        if self.after.sha256.as_deref() != digest {
            return Err(ScriptError::ContentChanged {
                host: wr.host.to_string(),
                dest: self.dest.clone(),
            });
        }
        Ok(content)
    }

    /// `content` through `put_file` (prelude): a `mktemp` file in the destination's directory,
    /// owner and mode set before it takes its place, as the user `dest_ok` chose. Text goes
    /// through the shell's own `printf`; content that is not UTF-8 or holds a NUL byte, through
    /// `base64 -d`.
    fn write(&self, content: &[u8], i: usize, s: &mut Script) {
        let put = "put_file \"$f\" {} {} {} 2>\"$log\" || fail {}";
        let args = [
            w(&self.after.owner),
            w(&self.after.group),
            Arg::Mode(self.after.mode),
            n(i),
        ];
        match std::str::from_utf8(content) {
            Ok(text) if !text.contains('\0') => {
                s.push("printf %s {} | ", &[w(text)]).line(put, &args);
            }
            _ => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(content);
                s.raw("base64 -d <<'INFRA_EOF' | ").line(put, &args);
                for chunk in encoded.as_bytes().chunks(76) {
                    // base64's alphabet holds no quote, no `$` and no newline: a word of its own.
                    let line = std::str::from_utf8(chunk).unwrap_or_default();
                    s.push("{}", &[Arg::Base64(line)]).raw("\n");
                }
                s.raw("INFRA_EOF\n");
            }
        }
    }

    /// The old file is back: its service needs nothing from this run, unless a file written
    /// earlier in it, or an unfinished run, asked for it too.
    fn undo_on_failed_check(&self, wr: &Writer) -> Script {
        let mut undo = Script::new();
        for (_, svc) in wr.journal.get(self.dest.as_str()).into_iter().flatten() {
            let asked_elsewhere = wr.steps.iter().any(|st| match st {
                super::Step::Service(sv) if sv.name == *svc => {
                    sv.triggered_by.iter().any(|t| match t {
                        Trigger::Pending => true,
                        Trigger::File(f) => wr.written.contains_key(f.as_str()),
                    })
                }
                _ => false,
            });
            if !asked_elsewhere {
                undo.push("pending_done {}; ", &[w(svc)]);
            }
        }
        undo
    }
}

/// The step for one file, or none when it already matches.
/// Changes are found by plain sha256 (the host's and the content's); a file holding a secret
/// records both as keyed digests (`RenderedFile::digest`), so the plan shows no plain hash of it.
fn plan_file(role: &str, f: &RenderedFile, p: &mut Planner) -> Option<Step> {
    debug_assert_eq!(f.sha256, crate::state::sha256(&f.content), "{}", f.dest);
    let hash = f.sha256.clone();
    let mut after = FileState {
        owner: f.owner.clone(),
        group: f.group.clone(),
        mode: f.mode,
        sha256: Some(hash.clone()),
    };
    let fact = p.facts.paths.get(&f.dest);
    let mut before = fact.map(|pf| pf.state(p.facts.file.sha256.get(&f.dest).cloned()));
    let content_changed = before
        .as_ref()
        .is_none_or(|b| b.sha256.as_deref() != Some(&hash))
        || fact.is_some_and(|pf| pf.kind != PathKind::File);
    let meta_changed = before
        .as_ref()
        .is_some_and(|b| b.owner != after.owner || b.group != after.group || b.mode != after.mode);
    if !content_changed && !meta_changed {
        return None;
    }
    let sensitive = !f.secrets.is_empty();
    if sensitive {
        after.sha256 = Some(f.digest.clone());
        if let Some(b) = before.as_mut() {
            b.sha256 = b.sha256.as_deref().map(|h| p.secrets.digest_key().keyed(h));
        }
    }
    let diff = (!sensitive && content_changed).then(|| {
        let old = p.current.get(&f.dest).map(|c| String::from_utf8_lossy(c));
        let new = String::from_utf8_lossy(&f.content);
        p.secrets
            .redact(&unified_diff(old.as_deref().unwrap_or(""), &new))
    });
    if content_changed {
        for svc in &f.notify {
            p.mark(svc, Trigger::File(f.dest.clone()));
        }
    }
    Some(Step {
        action: if before.is_none() {
            Action::Create
        } else {
            Action::Update
        },
        role: role.to_string(),
        dest: f.dest.clone(),
        before,
        after,
        diff,
        sensitive,
        check: f.check.clone(),
        notify: f.notify.clone(),
        unsafe_parent: f.unsafe_parent,
    })
}

/// The removal of a file the host must not have, or none when it has no such path.
fn plan_removal(role: &str, f: &AbsentFile, p: &mut Planner) -> Option<Step> {
    let fact = p.facts.paths.get(&f.dest)?;
    let before = fact.state(None);
    for svc in &f.notify {
        p.mark(svc, Trigger::File(f.dest.clone()));
    }
    Some(Step {
        action: Action::Delete,
        role: role.to_string(),
        dest: f.dest.clone(),
        before: Some(before.clone()),
        after: before,
        diff: None,
        sensitive: false,
        check: None,
        notify: f.notify.clone(),
        unsafe_parent: f.unsafe_parent,
    })
}

/// `--- current` / `+++ rendered` unified diff with 3 lines of context.
pub fn unified_diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("current", "rendered")
        .to_string()
}
