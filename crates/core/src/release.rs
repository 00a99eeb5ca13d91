//! The small scripts the engine runs on a host outside its apply script, for a release the
//! apply script built (`kinds::release`): switch `current` to it, run the once-per-environment
//! commands in it, prune old releases; and the probe (with its parser) that `infra releases`
//! and `infra rollback` read a host's releases with. Pure builders: every value enters as a
//! quoted word.

use crate::desired::DesiredRelease;
use crate::kinds::release::{BUILD_TIMEOUT, BUILT_MARKER};
use crate::shell::{n, w, Arg, Script};

/// The start of every script here: a known environment, and `$rp`, the release path.
const HEAD: &str = "set -u\numask 022\nexport LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";

/// Lines of `releases.log` kept by [`prune_script`].
pub const LOG_LINES: usize = 1000;

/// What a switch script's exit status says.
pub mod exit {
    /// `current` points to the release and every reload command succeeded.
    pub const OK: i32 = 0;
    /// Refused (the release is not built, or the commit is malformed): nothing changed.
    pub const REFUSED: i32 = 1;
    /// `current` was switched, but a reload command failed.
    pub const RELOAD_FAILED: i32 = 2;
}

/// The first seven characters of a commit, as plans and progress lines show it.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// Whether `text` can name a release directory: hexadecimal, 4 to 64 characters.
pub fn is_commit(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A script that refuses at once (a malformed commit never reaches a path).
fn refuse(what: &str) -> String {
    let mut s = Script::new();
    s.raw(HEAD)
        .line("printf '%s\\n' {} >&2", &[w(what)])
        .line("exit {}", &[n(exit::REFUSED as usize)]);
    s.into_string()
}

/// Points `PATH/current` at `releases/<to>` atomically (a new link renamed over the old one),
/// appends `<UTC time>\t<to>` to `PATH/releases.log`, then runs the `reload` commands as root.
/// Refused, with nothing changed, unless `releases/<to>` is completely built. Exit status:
/// see [`exit`].
pub fn switch_script(rel: &DesiredRelease, to: &str) -> String {
    if !is_commit(to) {
        return refuse(&format!("`{to}` is not a commit"));
    }
    let mut s = Script::new();
    s.raw(HEAD)
        .line("rp={} to={}", &[w(&rel.path), w(to)])
        .line(
            "[ -f \"$rp/releases/$to/{}\" ] || { printf 'release %s is not built on this host (%s has no %s): nothing switched\\n' \"$to\" \"$rp/releases/$to\" {} >&2; exit {}; }",
            &[Arg::Const(BUILT_MARKER), Arg::Const(BUILT_MARKER), n(exit::REFUSED as usize)],
        )
        .line(
            "ln -sfnT \"releases/$to\" \"$rp/current.new\" && mv -fT \"$rp/current.new\" \"$rp/current\" || exit {}",
            &[n(exit::REFUSED as usize)],
        )
        .raw("printf '%s\\t%s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" \"$to\" >> \"$rp/releases.log\"\n");
    for cmd in &rel.reload {
        s.line(
            "timeout {} sh -c {} < /dev/null || { r=$?; printf 'reload command failed (exit status %s): %s\\n' \"$r\" {} >&2; exit {}; }",
            &[n(BUILD_TIMEOUT as usize), w(cmd), w(cmd), n(exit::RELOAD_FAILED as usize)],
        );
    }
    s.raw("exit 0\n");
    s.into_string()
}

/// Runs the role's `once` commands in `releases/<commit>`, as the release's user, with the
/// `env_file` sourced, in order; the first failure stops them (exit status non-zero).
pub fn once_script(rel: &DesiredRelease, commit: &str) -> String {
    if !is_commit(commit) {
        return refuse(&format!("`{commit}` is not a commit"));
    }
    let mut s = Script::new();
    s.raw(HEAD)
        .line(
            "rp={} c={} ru={} bt={}",
            &[w(&rel.path), w(commit), w(&rel.user), n(BUILD_TIMEOUT as usize)],
        )
        .raw("rd=\"$rp/releases/$c\"\n")
        .line(
            "[ -f \"$rd/{}\" ] || { printf 'release %s is not built on this host\\n' \"$c\" >&2; exit 1; }",
            &[Arg::Const(BUILT_MARKER)],
        )
        .raw(AS_USER);
    if let Some(env) = &rel.env_file {
        s.line(
            "[ -r {} ] || { printf '%s is missing: the release reads it (env_file)\\n' {} >&2; exit 1; }",
            &[w(env), w(env)],
        )
        .line("set -a; . {}; set +a", &[w(env)]);
    }
    s.raw("cd \"$rd\" || exit 1\n");
    for cmd in &rel.once {
        s.line(
            "as_user sh -c {} < /dev/null || { r=$?; printf 'once command failed (exit status %s): %s\\n' \"$r\" {} >&2; exit 1; }",
            &[w(cmd), w(cmd)],
        );
    }
    s.raw("exit 0\n");
    s.into_string()
}

/// `as_user CMD...`: runs a command as `$ru` (its groups, its home), within `$bt` seconds.
const AS_USER: &str = r#"rg=$(id -g "$ru") || exit 1
rh=$(getent passwd "$ru" | cut -d: -f6); [ -n "$rh" ] || rh=$rd
as_user() { timeout "$bt" setpriv --reuid="$ru" --regid="$rg" --init-groups env HOME="$rh" USER="$ru" LOGNAME="$ru" "$@"; }
"#;

/// Removes built releases beyond the role's `keep`, newest switch first (releases built but
/// never switched to count as the oldest); the current one and the previous one are never
/// removed. Prints `pruned<TAB>COMMIT` for each. `releases.log` keeps its last [`LOG_LINES`].
pub fn prune_script(rel: &DesiredRelease) -> String {
    let keep = rel.keep.max(2) as usize;
    let mut s = Script::new();
    s.raw(HEAD)
        .line("rp={} keep={}", &[w(&rel.path), n(keep)])
        .line(PRUNE, &[Arg::Const(BUILT_MARKER), Arg::Const(BUILT_MARKER), Arg::Const(BUILT_MARKER)])
        .line(
            "if [ -f \"$rp/releases.log\" ]; then tail -n {} \"$rp/releases.log\" > \"$rp/releases.log.new\" && mv -f \"$rp/releases.log.new\" \"$rp/releases.log\"; fi",
            &[n(LOG_LINES)],
        )
        .raw("exit 0\n");
    s.into_string()
}

/// The recency order of `$rp`'s built releases (current first, then by last switch, then the
/// never switched), and the removal of those past `$keep`.
const PRUNE: &str = r#"o=$(mktemp) || exit 1
trap 'rm -f "$o"' EXIT
cur=; if [ -L "$rp/current" ]; then cur=$(readlink "$rp/current"); cur=${cur##*/}; printf '%s\n' "$cur" > "$o"; fi
add() {
  case $1 in ''|.|..|*/*) return ;; esac
  [ -f "$rp/releases/$1/{}" ] && ! grep -Fqx -- "$1" "$o" && printf '%s\n' "$1" >> "$o"
  return 0
}
if [ -f "$rp/releases.log" ]; then
  tac "$rp/releases.log" | while IFS="$(printf '\t')" read -r t c; do add "$c"; done
fi
for d in "$rp"/releases/*/; do d=${d%/}; [ -f "$d/{}" ] && add "${d##*/}"; done
tail -n +$((keep + 1)) "$o" | while IFS= read -r c; do
  [ "$c" = "$cur" ] && continue
  rm -f "$rp/releases/$c/{}" && rm -rf -- "$rp/releases/$c" && printf 'pruned\t%s\n' "$c"
done"#;

/// Prints what `PATH` holds: the commit `current` points to, each built release, and the
/// newest lines of `releases.log` (read by [`parse_releases`]).
pub fn releases_probe(rel: &DesiredRelease) -> String {
    let mut s = Script::new();
    s.raw(HEAD).line("rp={}", &[w(&rel.path)]);
    crate::kinds::release::probe_body(&mut s);
    s.raw("exit 0\n");
    s.into_string()
}

/// A host's releases, from [`releases_probe`]'s output.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseInfo {
    /// The commit `current` points to.
    pub current: Option<String>,
    /// Built releases with the last time each was switched to (UTC), newest switch first;
    /// those never switched to come last, by name.
    pub kept: Vec<(String, Option<String>)>,
    /// `releases.log`, oldest first: (UTC time, commit).
    pub history: Vec<(String, String)>,
}

impl ReleaseInfo {
    /// The release to roll back to: the history entry before the current one's latest that
    /// is still built (and is not the current one).
    pub fn previous(&self) -> Option<&str> {
        let cur = self.current.as_deref();
        let last_cur = self
            .history
            .iter()
            .rposition(|(_, c)| Some(c.as_str()) == cur)
            .unwrap_or(self.history.len());
        self.history[..last_cur]
            .iter()
            .rev()
            .map(|(_, c)| c.as_str())
            .find(|c| Some(*c) != cur && self.is_kept(c))
    }

    /// Whether `commit` is a built release here.
    pub fn is_kept(&self, commit: &str) -> bool {
        self.kept.iter().any(|(c, _)| c == commit)
    }

    /// The kept releases whose commit starts with `prefix` (for `rollback --to`).
    pub fn matching(&self, prefix: &str) -> Vec<&str> {
        self.kept
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| !prefix.is_empty() && c.starts_with(prefix))
            .collect()
    }
}

/// A line of the releases probe's output that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected releases line {line}: {text:?}")]
pub struct ReleasesError {
    pub line: usize,
    pub text: String,
}

/// Parses [`releases_probe`]'s output.
pub fn parse_releases(output: &str) -> Result<ReleaseInfo, ReleasesError> {
    let mut facts = crate::kinds::Facts::default();
    for (i, line) in output.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields == [""] {
            continue;
        }
        match crate::kinds::parse(&fields, &mut facts) {
            Some(Ok(())) if line.starts_with("rel_") => {}
            _ => {
                return Err(ReleasesError {
                    line: i + 1,
                    text: line.to_string(),
                })
            }
        }
    }
    let f = facts.release;
    let mut kept: Vec<(String, Option<String>)> = f
        .built
        .iter()
        .map(|c| {
            let at = f.history.iter().rev().find(|(_, h)| h == c);
            (c.clone(), at.map(|(t, _)| t.clone()))
        })
        .collect();
    // Newest switch first (UTC times sort as text), never switched last.
    kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kept.sort_by_key(|(_, t)| t.is_none());
    Ok(ReleaseInfo {
        current: f.current,
        kept,
        history: f.history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel() -> DesiredRelease {
        crate::kinds::release::tests::release(Some("abcd1234"))
    }

    #[test]
    fn switch_refuses_a_malformed_commit_and_quotes_the_rest() {
        let s = switch_script(&rel(), "../../etc");
        assert!(s.contains("'`../../etc` is not a commit'"), "{s}");
        assert!(!s.contains("ln "), "{s}");
        let s = switch_script(&rel(), "abcd1234");
        assert!(s.contains("rp='/var/www/cts' to='abcd1234'\n"), "{s}");
        assert!(s.contains("ln -sfnT \"releases/$to\" \"$rp/current.new\" && mv -fT \"$rp/current.new\" \"$rp/current\""), "{s}");
        assert!(
            s.contains("timeout 1800 sh -c 'supervisorctl signal HUP g'"),
            "{s}"
        );
    }

    #[test]
    fn once_runs_each_command_as_the_user_with_the_env_file() {
        let s = once_script(&rel(), "abcd1234");
        assert!(s.contains("ru='www-data'"), "{s}");
        assert!(s.contains("set -a; . '/etc/cts/env'; set +a"), "{s}");
        assert!(
            s.contains("as_user sh -c 'venv/bin/python manage.py migrate' < /dev/null"),
            "{s}"
        );
        assert!(once_script(&rel(), "x y").contains("is not a commit"));
    }

    #[test]
    fn prune_keeps_at_least_the_current_and_the_previous() {
        let mut r = rel();
        r.keep = 1;
        assert!(prune_script(&r).contains("keep=2\n"));
        r.keep = 7;
        assert!(prune_script(&r).contains("keep=7\n"));
    }

    #[test]
    fn releases_parse_with_the_previous_one() {
        let out = "rel_current\taaaa\nrel_built\taaaa\nrel_built\tbbbb\nrel_built\tcccc\nrel_built\tdddd\n\
                   rel_log\t2026-01-01T00:00:00Z\tcccc\nrel_log\t2026-01-02T00:00:00Z\tbbbb\n\
                   rel_log\t2026-01-03T00:00:00Z\taaaa\n";
        let info = parse_releases(out).unwrap();
        assert_eq!(info.current.as_deref(), Some("aaaa"));
        let t = |s: &str| Some(s.to_string());
        assert_eq!(
            info.kept,
            vec![
                ("aaaa".into(), t("2026-01-03T00:00:00Z")),
                ("bbbb".into(), t("2026-01-02T00:00:00Z")),
                ("cccc".into(), t("2026-01-01T00:00:00Z")),
                ("dddd".into(), None),
            ]
        );
        assert_eq!(info.previous(), Some("bbbb"));
        assert_eq!(info.matching("cc"), vec!["cccc"]);
        assert!(info.matching("").is_empty());
        // Rolled back to bbbb (logged): the previous is the one live before that, aaaa.
        let rolled = format!("{out}rel_log\t2026-01-04T00:00:00Z\tbbbb\n")
            .replace("rel_current\taaaa", "rel_current\tbbbb");
        let info = parse_releases(&rolled).unwrap();
        assert_eq!(info.previous(), Some("aaaa"));
        // No history: no previous.
        assert_eq!(
            parse_releases("rel_current\taaaa\nrel_built\taaaa\n")
                .unwrap()
                .previous(),
            None
        );
        assert!(parse_releases("stat\t644\troot\troot\tdirectory\t/x\n").is_err());
        assert!(parse_releases("garbage\n").is_err());
    }
}
