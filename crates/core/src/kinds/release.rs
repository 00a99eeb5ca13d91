//! Releases: an application checked out from git into `PATH/releases/<commit>`, with its
//! virtualenv and build commands, beside the live one. The host script only BUILDS a release;
//! the engine switches `PATH/current` to it afterwards (the switch script is in `release.rs`).
//! Facts: the commit `current` points to, the releases built (marked by `.infra-built`), and
//! `releases.log`.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::{DesiredHost, DesiredRelease, RoleState};
use crate::shell::{n, w, Arg, Script};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Seconds one fetch, pip install or build command may take.
pub const BUILD_TIMEOUT: u32 = 1800;

/// The file whose presence in `releases/<commit>` says the release was built completely.
pub const BUILT_MARKER: &str = ".infra-built";

/// How many lines of `releases.log` the facts read (the newest).
pub const HISTORY_LINES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub role: String,
    pub path: String,
    /// The commit `current` points to, if any.
    pub from: Option<String>,
    /// The commit to build (and then switch to).
    pub to: String,
    /// What the commit was chosen by (the ref), for views.
    pub label: String,
    /// Commits between `from` and `to`, when the controller knows.
    pub commits: Option<u32>,
    /// `releases/<to>` must be built; false when it already is (a roll forward to a kept one).
    pub build: bool,
}

/// What a host's release directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The commit `PATH/current` points to (the link's last component).
    pub current: Option<String>,
    /// Commits under `PATH/releases` with their `.infra-built` marker.
    pub built: BTreeSet<String>,
    /// `releases.log`, oldest first: (UTC time, commit).
    pub history: Vec<(String, String)>,
}

impl Kind for Step {
    fn probe(desired: &DesiredHost, s: &mut Script) {
        if let Some(r) = &desired.release {
            s.line("rp={}", &[w(&r.path)]);
            probe_body(s);
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let f = &mut facts.release;
        match fields {
            ["rel_current", c] => f.current = Some(c.to_string()),
            ["rel_built", c] => {
                f.built.insert(c.to_string());
            }
            ["rel_log", time, c] => f.history.push((time.to_string(), c.to_string())),
            // A line of releases.log that is not `time<TAB>commit` (edited by hand): skipped.
            ["rel_log", ..] => {}
            [tag, ..] if tag.starts_with("rel_") => return Some(Err(BadLine)),
            _ => return None,
        }
        Some(Ok(()))
    }

    fn plan_role(role: &RoleState, p: &mut Planner) {
        let Some(r) = p.desired.release.as_ref().filter(|r| r.role == role.role) else {
            return;
        };
        let Some(to) = &r.commit else {
            return;
        };
        let facts = &p.facts.release;
        if facts.current.as_deref() == Some(to.as_str()) {
            return;
        }
        p.steps.push(
            Step {
                role: role.role.clone(),
                path: r.path.clone(),
                from: facts.current.clone(),
                to: to.clone(),
                label: r.label.clone(),
                commits: r.commits,
                build: !facts.built.contains(to),
            }
            .into(),
        );
    }

    fn address(&self) -> String {
        format!("release {}", self.path)
    }

    fn script(&self, i: usize, wr: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        let rel = wr.release.filter(|r| r.path == self.path).ok_or_else(|| {
            ScriptError::ReleaseChanged {
                host: wr.host.to_string(),
                path: self.path.clone(),
            }
        })?;
        s.line("rp={} rcm={}", &[w(&self.path), w(&self.to)]);
        if !self.build {
            s.line(
                "[ -f \"$rp/releases/$rcm/{}\" ] || { printf 'release %s is no longer built on this host: plan again\\n' \"$rcm\" > \"$log\"; fail {} 1; }",
                &[Arg::Const(BUILT_MARKER), n(i)],
            )
            .line("say {} changed", &[n(i)]);
            return Ok(());
        }
        // Root works in PATH (the mirror, known_hosts): refused where another user could
        // swap a directory for a link, as for any file root writes.
        s.line("mkdir -p \"$rp\" > \"$log\" 2>&1 || fail {}", &[n(i)])
            .line(OWNER_CHECK, &[n(i), n(i)])
            .line("dest_ok {} \"$rp/releases\" root root 0", &[n(i)]);
        let body = build_body(rel);
        // A plain statement, not the left of `||`: there `set -e` would be ignored inside.
        s.line(
            "( {}) > \"$log\" 2>&1 < /dev/null; rs=$?; [ \"$rs\" = 0 ] || fail {} \"$rs\"",
            &[Arg::Frag(&body), n(i)],
        )
        .line("say {} changed", &[n(i)]);
        Ok(())
    }
}

/// Appends the probe of the release at `$rp` (set by the caller).
pub(crate) fn probe_body(s: &mut Script) {
    s.raw(PROBE);
}

/// Reads `$rp`: the commit `current` points to, the built releases, the newest history.
const PROBE: &str = r#"if [ -L "$rp/current" ]; then c=$(readlink "$rp/current"); printf 'rel_current\t%s\n' "${c##*/}"; fi
for d in "$rp"/releases/*/; do
  d=${d%/}; [ -f "$d/.infra-built" ] && printf 'rel_built\t%s\n' "${d##*/}"
done
[ -f "$rp/releases.log" ] && tail -n 100 "$rp/releases.log" | while IFS= read -r l; do printf 'rel_log\t%s\n' "$l"; done
"#;

/// The release path must be root's: root clones, fetches and writes known_hosts there.
const OWNER_CHECK: &str = r#"ro=$(stat -c %U -- "$rp" 2> "$log") || fail {}
if [ "$ro" != root ]; then printf 'the release path %s is owned by %s, but root builds there (the mirror, known_hosts): make it root'"'"'s and writable by root alone; the release user owns only releases/<commit>\n' "$rp" "$ro" > "$log"; fail {} 1; fi"#;

/// Runs inside the build's subshell (`set -e`): who builds, leftovers of killed runs removed,
/// a root-only temp dir for the key and the archive.
const BUILD_SETUP: &str = r#"set -e
umask 022
rd="$rp/releases/$rcm"
rg=$(id -g "$ru")
rh=$(getent passwd "$ru" | cut -d: -f6); [ -n "$rh" ] || rh=$rd
as_user() { timeout "$bt" setpriv --reuid="$ru" --regid="$rg" --init-groups env HOME="$rh" USER="$ru" LOGNAME="$ru" "$@"; }
command -v git > /dev/null || { echo "git is not installed on this host: add the package git to a role"; exit 1; }
mkdir -p "$rp/releases"
for o in "$rp"/releases/*; do
  if [ -d "$o" ] && ! [ -L "$o" ] && ! [ -f "$o/.infra-built" ]; then rm -rf -- "$o"; fi
done
if [ -f "$rd/.infra-built" ]; then exit 0; fi
kd=$(mktemp -d); trap 'rm -rf "$kd"' EXIT
chmod 700 "$kd"
export GIT_TERMINAL_PROMPT=0
"#;

/// Fetches `$rcm` into the bare mirror `$rp/repo` (cloned the first time, `--no-local`: a
/// repository on the host itself is copied, never hardlinked, which git refuses across overlayfs
/// layers; not fetched when the commit is already there), then checks it out into `$rd` as the
/// release's user.
const FETCH_AND_CHECKOUT: &str = r#"if git -C "$rp/repo" rev-parse --git-dir > /dev/null 2>&1; then
  if ! git -C "$rp/repo" cat-file -e "$rcm^{commit}" 2>/dev/null; then
    git -C "$rp/repo" remote set-url origin "$repo"
    timeout "$bt" git -C "$rp/repo" fetch --prune origin
  fi
else
  rm -rf -- "$rp/repo.new"
  timeout "$bt" git clone --mirror --no-local -- "$repo" "$rp/repo.new"
  mv -T "$rp/repo.new" "$rp/repo"
fi
git -C "$rp/repo" cat-file -e "$rcm^{commit}" 2>/dev/null || { echo "commit $rcm is not in $repo"; exit 1; }
git -C "$rp/repo" archive --format=tar "$rcm" > "$kd/release.tar"
mkdir "$rd"
chown -h "$ru:$rg" "$rd"
cd "$rd"
as_user tar -x -f - < "$kd/release.tar"
rm -f "$kd/release.tar"
"#;

/// The subshell body that builds `releases/<commit>`: checkout, virtualenv and requirements,
/// build commands, then the marker. Every value enters as a word.
fn build_body(r: &DesiredRelease) -> Script {
    let mut s = Script::new();
    s.line(
        "ru={} repo={} bt={}",
        &[w(&r.user), w(&r.repo), n(BUILD_TIMEOUT as usize)],
    )
    .raw(BUILD_SETUP);
    ssh_key(r, &mut s);
    s.raw(FETCH_AND_CHECKOUT);
    if let Some(env) = &r.env_file {
        s.line(
            "[ -r {} ] || { echo {}' is missing: the release reads it (env_file)'; exit 1; }",
            &[w(env), w(env)],
        )
        .line("set -a; . {}; set +a", &[w(env)]);
    }
    if let Some(req) = &r.requirements {
        venv(r, req, &mut s);
    }
    for cmd in &r.build {
        s.line("as_user sh -c {}", &[w(cmd)]);
    }
    s.line("as_user touch {}", &[Arg::Const(BUILT_MARKER)]);
    s
}

/// With `ssh_key`: the secret written 0600 into the root-only temp dir (by the shell's own
/// `printf`: never on a command line), and git's ssh told to use it alone.
fn ssh_key(r: &DesiredRelease, s: &mut Script) {
    let Some(name) = &r.ssh_key else { return };
    match &r.ssh_key_value {
        Some(key) => {
            let key = key.0.trim_end_matches(['\n', '\r']);
            s.line("( umask 077; printf '%s\\n' {} > \"$kd/key\" )", &[w(key)])
                .raw("export GIT_SSH_COMMAND=\"ssh -i '$kd/key' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile='$rp/.known_hosts'\"\n");
        }
        None => {
            s.line(
                "echo 'the secret '{}' (release.ssh_key) is not set: set it in the secrets file or as INFRA_SECRET_'{}; exit 1",
                &[w(name), w(&name.to_uppercase())],
            );
        }
    }
}

/// `releases/<c>/venv` from the requirements, as the release's user; relative `find_links`
/// are inside the checkout.
fn venv(r: &DesiredRelease, req: &str, s: &mut Script) {
    let site = Arg::Const(if r.venv.system_site_packages {
        " --system-site-packages"
    } else {
        ""
    });
    s.line(
        "as_user {} -m venv{} \"$rd/venv\"",
        &[w(r.venv.python.as_str()), site],
    );
    let mut opts = Script::new();
    if let Some(url) = &r.pip.index_url {
        opts.push(" --index-url {}", &[w(url.as_str())]);
    }
    for link in &r.pip.find_links {
        if link.starts_with('/') || link.contains("://") {
            opts.push(" --find-links {}", &[w(link.as_str())]);
        } else {
            opts.push(" --find-links \"$rd\"/{}", &[w(link.as_str())]);
        }
    }
    if r.pip.no_index {
        opts.raw(" --no-index");
    }
    s.line(
        "as_user \"$rd/venv/bin/python\" -m pip install --no-cache-dir --disable-pip-version-check{} -r \"$rd\"/{}",
        &[Arg::Frag(&opts), w(req)],
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::desired::SecretText;
    use crate::kinds::Facts;
    use crate::model::{PipConfig, VenvConfig};
    use crate::secrets::Secrets;
    use std::collections::BTreeMap;

    pub(crate) fn release(commit: Option<&str>) -> DesiredRelease {
        DesiredRelease {
            role: "app".into(),
            path: "/var/www/cts".into(),
            repo: "ssh://git@source/cts.git".into(),
            controller_repo: None,
            ref_: "main".into(),
            commit: commit.map(str::to_string),
            label: "main".into(),
            commits: Some(3),
            ssh_key: None,
            ssh_key_value: None,
            user: "www-data".into(),
            requirements: Some("requirements.txt".into()),
            venv: VenvConfig::default(),
            pip: PipConfig {
                index_url: None,
                find_links: vec!["wheelhouse".parse().unwrap(), "/srv/w".parse().unwrap()],
                no_index: true,
            },
            env_file: Some("/etc/cts/env".into()),
            build: vec!["venv/bin/python manage.py collectstatic --noinput".into()],
            once: vec!["venv/bin/python manage.py migrate".into()],
            reload: vec!["supervisorctl signal HUP g".into()],
            keep: 3,
            ref_at: crate::diagnostic::SourceLocation {
                file: "roles/app.yaml".into(),
                line: 1,
                column: 1,
                snippet: None,
                width: 1,
            },
        }
    }

    fn host(r: Option<DesiredRelease>) -> DesiredHost {
        DesiredHost {
            name: "app1".into(),
            roles: vec![RoleState {
                role: "app".into(),
                ..RoleState::default()
            }],
            release: r,
            ..DesiredHost::default()
        }
    }

    fn plan(d: &DesiredHost, facts: &Facts) -> Vec<crate::kinds::Step> {
        crate::plan::plan_host(d, facts, &BTreeMap::new(), &Secrets::default()).steps
    }

    #[test]
    fn facts_parse() {
        let f = crate::facts::parse(
            "init\tsystemd\nrel_current\tabc\nrel_built\tabc\nrel_built\tdef\n\
             rel_log\t2026-01-01T00:00:00Z\tabc\n",
        )
        .unwrap();
        assert_eq!(f.release.current.as_deref(), Some("abc"));
        assert_eq!(f.release.built.len(), 2);
        assert_eq!(
            f.release.history,
            vec![("2026-01-01T00:00:00Z".into(), "abc".into())]
        );
        let f = crate::facts::parse("rel_log\tonly-one-field\nrel_log\ta\tb\tc\n").unwrap();
        assert!(
            f.release.history.is_empty(),
            "hand-edited log lines are skipped"
        );
        assert!(crate::facts::parse("rel_what\tx\n").is_err());
    }

    #[test]
    fn a_step_when_the_commit_is_not_live_and_a_build_when_not_built() {
        let mut facts = Facts::default();
        // No commit resolved: nothing to plan.
        assert!(plan(&host(Some(release(None))), &facts).is_empty());
        let d = host(Some(release(Some("bbb"))));
        let step = |from: Option<&str>, build| {
            crate::kinds::Step::Release(Step {
                role: "app".into(),
                path: "/var/www/cts".into(),
                from: from.map(str::to_string),
                to: "bbb".into(),
                label: "main".into(),
                commits: Some(3),
                build,
            })
        };
        assert_eq!(plan(&d, &facts), vec![step(None, true)]);
        facts.release.current = Some("aaa".into());
        facts.release.built.insert("aaa".into());
        assert_eq!(plan(&d, &facts), vec![step(Some("aaa"), true)]);
        facts.release.built.insert("bbb".into());
        assert_eq!(plan(&d, &facts), vec![step(Some("aaa"), false)]);
        assert_eq!(plan(&d, &facts)[0].address(), "release /var/www/cts");
        facts.release.current = Some("bbb".into());
        assert!(plan(&d, &facts).is_empty());
        assert!(plan(&host(None), &facts).is_empty());
    }

    #[test]
    fn the_probe_reads_the_release_path() {
        let d = host(Some(release(Some("bbb"))));
        let script = crate::facts::script(&d);
        assert!(script.contains("rp='/var/www/cts'\n"), "{script}");
        assert!(script.contains("rel_built"), "{script}");
        assert!(!crate::facts::script(&host(None)).contains("rel_"));
    }

    fn apply(d: &DesiredHost, facts: &Facts) -> String {
        let p = crate::plan::plan_host(d, facts, &BTreeMap::new(), &Secrets::default());
        crate::script::apply_script(&p, d).unwrap()
    }

    #[test]
    fn the_build_fragment_quotes_every_value_and_keeps_the_key_off_command_lines() {
        let mut r = release(Some("bbb"));
        r.ssh_key = Some("deploy_key".into());
        r.ssh_key_value = Some(SecretText("KEY'$(id)\n".into()));
        r.build = vec!["echo 'x' $(id)".into()];
        let s = apply(&host(Some(r.clone())), &Facts::default());
        assert!(s.contains("rp='/var/www/cts' rcm='bbb'\n"), "{s}");
        assert!(s.contains("dest_ok 0 \"$rp/releases\" root root 0"), "{s}");
        assert!(
            s.contains("( umask 077; printf '%s\\n' 'KEY'\\''$(id)' > \"$kd/key\" )"),
            "{s}"
        );
        assert!(
            s.contains("as_user sh -c 'echo '\\''x'\\'' $(id)'\n"),
            "{s}"
        );
        assert!(s.contains("--find-links \"$rd\"/'wheelhouse' --find-links '/srv/w' --no-index -r \"$rd\"/'requirements.txt'"), "{s}");
        assert!(
            s.contains("as_user '/usr/bin/python3' -m venv --system-site-packages \"$rd/venv\""),
            "{s}"
        );
        assert!(s.contains("set -a; . '/etc/cts/env'; set +a"), "{s}");
        // The key appears once: in printf's argument, a builtin.
        assert_eq!(s.matches("KEY").count(), 1);
        // A secret that is not set: the run stops with what to do.
        r.ssh_key_value = None;
        let s = apply(&host(Some(r)), &Facts::default());
        assert!(
            s.contains("'deploy_key'' (release.ssh_key) is not set"),
            "{s}"
        );
    }

    #[test]
    fn an_already_built_release_is_only_checked() {
        let mut facts = Facts::default();
        facts.release.built.insert("bbb".into());
        let s = apply(&host(Some(release(Some("bbb")))), &facts);
        assert!(
            s.contains("[ -f \"$rp/releases/$rcm/.infra-built\" ] ||"),
            "{s}"
        );
        assert!(!s.contains("git "), "{s}");
    }

    #[test]
    fn a_plan_for_another_release_path_is_refused() {
        let d = host(Some(release(Some("bbb"))));
        let p =
            crate::plan::plan_host(&d, &Facts::default(), &BTreeMap::new(), &Secrets::default());
        let mut other = release(Some("bbb"));
        other.path = "/srv/other".into();
        let err = crate::script::apply_script(&p, &host(Some(other))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host app1: the plan builds the release in /var/www/cts, which the site no longer deploys there"
        );
    }
}
