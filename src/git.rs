//! Controller-side git: a release's ref resolved to a commit before anything is planned. Each
//! repository is mirrored once under `.infra/git/<sha256(url)[..16]>` (`git clone --mirror`,
//! then `git fetch --prune`), never prompting (`GIT_TERMINAL_PROMPT=0`, ssh in batch mode); a
//! ref is `git rev-parse --verify REF^{commit}` there, once per (url, ref) and run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a ref could not be resolved; git's own words included.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GitError {
    #[error("cannot fetch {url}: {stderr}")]
    Fetch { url: String, stderr: String },
    #[error(
        "`{reference}` is not a branch, tag or commit of {url}{}",
        detail(stderr)
    )]
    UnknownRef {
        url: String,
        reference: String,
        stderr: String,
    },
    #[error("`{reference}` is not a ref infra passes to git (it starts with `-` or is empty)")]
    BadRef { reference: String },
    #[error("cannot run git: {0}")]
    Spawn(String),
}

fn detail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" ({stderr})")
    }
}

/// A release whose ref did not resolve: where the ref is written, and why.
#[derive(Debug, thiserror::Error)]
#[error("{at}: the release of role {role}: {source}; nothing was changed")]
pub struct RefError {
    /// `file:line` of the role's `ref`.
    pub at: String,
    pub role: String,
    #[source]
    pub source: GitError,
}

impl RefError {
    pub fn hint(&self) -> String {
        match self.source {
            GitError::Fetch { .. } => "check that this machine can fetch the repository (set `controller_repo:` in the release when the hosts' URL is not reachable from here)".into(),
            _ => "check the ref in the role, the inventory's vars or --var, and that it was pushed".into(),
        }
    }
}

/// The mirrors of one run, and what was resolved in them.
#[derive(Debug, Clone)]
pub struct Mirrors {
    /// Where relative repository paths start: the site's root.
    site_root: PathBuf,
    /// `.infra/git` under the site's root.
    dir: PathBuf,
    /// Mirrors fetched in this run, by URL (a failed fetch is remembered too).
    fetched: BTreeMap<String, Result<PathBuf, GitError>>,
    /// (url, ref) -> full commit.
    resolved: BTreeMap<(String, String), Result<String, GitError>>,
}

impl Mirrors {
    pub fn new(site_root: &Path) -> Mirrors {
        Mirrors {
            site_root: site_root.to_path_buf(),
            dir: site_root.join(".infra").join("git"),
            fetched: BTreeMap::new(),
            resolved: BTreeMap::new(),
        }
    }

    /// The full commit `reference` names in `url`'s repository, fetched once per run.
    pub fn resolve(&mut self, url: &str, reference: &str) -> Result<String, GitError> {
        let key = (url.to_string(), reference.to_string());
        if let Some(r) = self.resolved.get(&key) {
            return r.clone();
        }
        let r = self.resolve_now(url, reference);
        self.resolved.insert(key, r.clone());
        r
    }

    fn resolve_now(&mut self, url: &str, reference: &str) -> Result<String, GitError> {
        if reference.is_empty() || reference.starts_with('-') {
            return Err(GitError::BadRef {
                reference: reference.to_string(),
            });
        }
        let mirror = self.mirror(url)?;
        let spec = format!("{reference}^{{commit}}");
        let out = git(&mirror, &["rev-parse", "--verify", "--quiet", &spec])?;
        let commit = out.stdout.trim().to_string();
        if out.ok && is_full_commit(&commit) {
            return Ok(commit);
        }
        Err(GitError::UnknownRef {
            url: url.to_string(),
            reference: reference.to_string(),
            stderr: out.stderr.trim().to_string(),
        })
    }

    /// How many commits `to` has that `from` has not (`git rev-list --count FROM..TO`), in the
    /// mirror of `url` as this run fetched it; `None` when either is unknown there.
    pub fn count(&self, url: &str, from: &str, to: &str) -> Option<u32> {
        if !is_full_commit(from) || !is_full_commit(to) {
            return None;
        }
        let mirror = self.fetched.get(url)?.clone().ok()?;
        let out = git(&mirror, &["rev-list", "--count", &format!("{from}..{to}")]).ok()?;
        if !out.ok {
            return None;
        }
        out.stdout.trim().parse().ok()
    }

    /// The mirror of `url`, cloned or fetched (once per run).
    fn mirror(&mut self, url: &str) -> Result<PathBuf, GitError> {
        if let Some(r) = self.fetched.get(url) {
            return r.clone();
        }
        let r = self.fetch(url);
        self.fetched.insert(url.to_string(), r.clone());
        r
    }

    fn fetch(&self, url: &str) -> Result<PathBuf, GitError> {
        let digest = infra_core::state::sha256(url.as_bytes());
        let name = digest.get(..16).unwrap_or(&digest).to_string();
        let path = self.dir.join(&name);
        std::fs::create_dir_all(&self.dir).map_err(|e| GitError::Fetch {
            url: url.to_string(),
            stderr: format!("cannot create {}: {e}", self.dir.display()),
        })?;
        let _lock = DirLock::take(&self.dir.join(format!("{name}.lock")));
        let out = if path.join("HEAD").is_file() {
            git(&path, &["fetch", "--prune", "--quiet", "origin"])?
        } else {
            // Cloned beside, then renamed: a failed clone leaves no half mirror behind.
            let tmp = self.dir.join(format!("{name}.new"));
            let _ = std::fs::remove_dir_all(&tmp);
            let tmp_arg = tmp.to_string_lossy().to_string();
            let out = git(
                &self.site_root,
                &["clone", "--mirror", "--quiet", "--", url, &tmp_arg],
            )?;
            if out.ok {
                std::fs::rename(&tmp, &path).map_err(|e| GitError::Fetch {
                    url: url.to_string(),
                    stderr: format!("cannot move the mirror to {}: {e}", path.display()),
                })?;
            } else {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            out
        };
        if !out.ok {
            return Err(GitError::Fetch {
                url: url.to_string(),
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(path)
    }
}

/// Fills each host's release commit from its ref, resolved on this machine with `mirrors`
/// (each repository fetched once, each (url, ref) resolved once: an aws apply, which renders
/// the hosts again after the cloud phase with the plan's mirrors, deploys the commits its plan
/// showed). A ref that does not resolve stops the run before any host is reached, naming the
/// role file and line of the ref.
pub fn resolve_releases(
    mirrors: &mut Mirrors,
    hosts: &mut [(infra_core::desired::DesiredHost, String)],
) -> Result<(), RefError> {
    for (d, _) in hosts.iter_mut() {
        let Some(rel) = d.release.as_mut() else {
            continue;
        };
        let url = rel.controller_url().to_string();
        match mirrors.resolve(&url, &rel.ref_) {
            Ok(commit) => rel.commit = Some(commit),
            Err(source) => {
                return Err(RefError {
                    at: format!("{}:{}", rel.ref_at.file.display(), rel.ref_at.line),
                    role: rel.role.clone(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Sets how many commits lie between the host's live release (`current`, from its facts) and
/// the one it gets, when both are in the repository.
pub fn fill_commits(
    mirrors: &Mirrors,
    desired: &mut infra_core::desired::DesiredHost,
    current: Option<&str>,
) {
    let Some(rel) = desired.release.as_mut() else {
        return;
    };
    rel.commits = match (current, rel.commit.as_deref()) {
        (Some(from), Some(to)) if from != to => mirrors.count(
            rel.controller_repo.as_deref().unwrap_or(&rel.repo),
            from,
            to,
        ),
        _ => None,
    };
}

/// A full hexadecimal commit id (sha1 or sha256).
pub fn is_full_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a git command printed.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs git in `dir` without a terminal or a prompt.
fn git(dir: &Path, args: &[&str]) -> Result<Output, GitError> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::null());
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    let out = cmd
        .output()
        .map_err(|e| GitError::Spawn(format!("git {}: {e}", args.join(" "))))?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// An exclusive `flock` on a mirror's lock file, so two runs do not fetch into it at once.
struct DirLock {
    _file: Option<std::fs::File>,
}

impl DirLock {
    fn take(path: &Path) -> DirLock {
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ok();
        if let Some(f) = &file {
            // SAFETY: flock on a file descriptor this struct owns; released when it closes.
            unsafe {
                libc::flock(f.as_raw_fd(), libc::LOCK_EX);
            }
        }
        DirLock { _file: file }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with two commits on master, a tag v1 on the first.
    fn repo(dir: &Path) -> (String, String) {
        let run = |args: &[&str]| {
            let out = Command::new("git")
                .current_dir(dir)
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.test")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.test")
                .output()
                .expect("git runs");
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        run(&["init", "--quiet", "-b", "master"]);
        std::fs::write(dir.join("a"), "1").unwrap();
        run(&["add", "a"]);
        run(&["commit", "--quiet", "-m", "one"]);
        run(&["tag", "v1"]);
        let first = run(&["rev-parse", "HEAD"]);
        std::fs::write(dir.join("a"), "2").unwrap();
        run(&["commit", "--quiet", "-am", "two"]);
        let second = run(&["rev-parse", "HEAD"]);
        (first, second)
    }

    #[test]
    fn resolves_branches_tags_and_commits_from_a_file_url_and_a_path() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let (first, second) = repo(&src);
        let site = tmp.path().join("site");
        std::fs::create_dir(&site).unwrap();
        let mut m = Mirrors::new(&site);
        let url = format!("file://{}", src.display());
        assert_eq!(m.resolve(&url, "master").unwrap(), second);
        assert_eq!(m.resolve(&url, "v1").unwrap(), first);
        assert_eq!(m.resolve(&url, &first[..7]).unwrap(), first);
        assert_eq!(m.count(&url, &first, &second), Some(1));
        assert_eq!(m.count(&url, &second, &second), Some(0));
        assert_eq!(m.count(&url, &"0".repeat(40), &second), None);
        // A path (relative to the site's root) works too, in its own mirror.
        assert_eq!(m.resolve("../src", "master").unwrap(), second);
        let mirrors: Vec<_> = std::fs::read_dir(site.join(".infra/git"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        assert_eq!(mirrors.len(), 2);
    }

    #[test]
    fn a_new_commit_is_seen_by_the_next_run_and_once_per_run() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let (_, second) = repo(&src);
        let site = tmp.path().join("site");
        std::fs::create_dir(&site).unwrap();
        let url = src.display().to_string();
        let mut m = Mirrors::new(&site);
        assert_eq!(m.resolve(&url, "master").unwrap(), second);
        std::fs::write(src.join("a"), "3").unwrap();
        let out = Command::new("git")
            .current_dir(&src)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "commit",
                "-qam",
                "3",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        // Same run: the ref was resolved once.
        assert_eq!(m.resolve(&url, "master").unwrap(), second);
        // Next run: fetched again.
        let third = Mirrors::new(&site).resolve(&url, "master").unwrap();
        assert_ne!(third, second);
        assert!(is_full_commit(&third));
    }

    #[test]
    fn unknown_refs_and_repositories_are_errors_with_gits_words() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        repo(&src);
        let mut m = Mirrors::new(tmp.path());
        let url = format!("file://{}", src.display());
        match m.resolve(&url, "v9") {
            Err(GitError::UnknownRef { reference, .. }) => assert_eq!(reference, "v9"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            m.resolve(&url, "--upload-pack=touch /tmp/x"),
            Err(GitError::BadRef { .. })
        ));
        let missing = format!("file://{}/nope", tmp.path().display());
        match m.resolve(&missing, "master") {
            Err(e @ GitError::Fetch { .. }) => {
                let text = e.to_string();
                assert!(text.contains("nope"), "{text}");
                assert!(
                    text.contains("does not appear to be a git repository")
                        || text.contains("not found")
                        || text.contains("fatal"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        // No half mirror is left behind by the failed clone.
        let left: Vec<_> = std::fs::read_dir(tmp.path().join(".infra/git"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    fn host_with_release(url: &str, reference: &str) -> infra_core::desired::DesiredHost {
        use infra_core::desired::{DesiredHost, DesiredRelease};
        let release = DesiredRelease {
            role: "app".into(),
            path: "/srv/app".into(),
            repo: url.into(),
            controller_repo: None,
            ref_: reference.into(),
            commit: None,
            label: reference.into(),
            commits: None,
            ssh_key: None,
            ssh_key_value: None,
            user: "root".into(),
            requirements: None,
            venv: Default::default(),
            pip: Default::default(),
            env_file: None,
            build: Vec::new(),
            once: Vec::new(),
            reload: Vec::new(),
            keep: 5,
            ref_at: infra_core::diagnostic::SourceLocation {
                file: "roles/app.yaml".into(),
                line: 7,
                column: 3,
                snippet: None,
                width: 1,
            },
        };
        DesiredHost {
            name: "app1".into(),
            ..DesiredHost::default()
        }
        .with_release(Some(release))
    }

    /// An aws apply renders its hosts twice (before and after the cloud phase) with the same
    /// mirrors: the second time gets the commit the plan showed, even if the branch moved.
    #[test]
    fn a_run_resolves_each_ref_once_even_when_the_hosts_are_rendered_again() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let (_, second) = repo(&src);
        let url = format!("file://{}", src.display());
        let mut mirrors = Mirrors::new(tmp.path());
        let mut hosts = vec![(host_with_release(&url, "master"), String::new())];
        resolve_releases(&mut mirrors, &mut hosts).unwrap();
        assert_eq!(
            hosts[0].0.release.as_ref().unwrap().commit,
            Some(second.clone())
        );
        let out = Command::new("git")
            .current_dir(&src)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "3",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut again = vec![(host_with_release(&url, "master"), String::new())];
        resolve_releases(&mut mirrors, &mut again).unwrap();
        assert_eq!(again[0].0.release.as_ref().unwrap().commit, Some(second));
        // A ref that does not resolve names the role file and line.
        let mut bad = vec![(host_with_release(&url, "v9"), String::new())];
        let e = resolve_releases(&mut mirrors, &mut bad).unwrap_err();
        assert!(e.to_string().starts_with("roles/app.yaml:7: the release of role app: `v9` is not a branch, tag or commit of file://"), "{e}");
    }
}
