//! Releases: a role's `release:` read, validated and rendered per host into a `DesiredRelease`.

use infra_core::desired::DesiredHost;
use infra_core::diagnostic::Diagnostic;
use infra_core::environment::Environment;
use infra_core::render::{HostRender, Renderer, SharedContext};
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::validate;
use std::path::Path;

/// Writes `files` (path, text) under a fresh temp dir.
fn site(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const INVENTORY: &str = "environment: prod\ndomain: example.org\ninternal_domain: prod.internal\nprovider: {type: static}\nvars: {app: {name: cts, ref: v2}}\nhosts:\n  app1: {roles: [app], address: 10.0.0.1}\n  app2: {roles: [app], address: 10.0.0.2, vars: {app: {ref: main}}}\n";

const APP_ROLE: &str = r#"name: app
secrets: [deploy_key]
defaults: {app: {repo: "ssh://git@source/cts.git"}}
release:
  path: "/var/www/{{ vars.app.name }}"
  repo: "{{ vars.app.repo }}"
  ref: "{{ vars.app.ref }}"
  ssh_key: deploy_key
  user: www-data
  requirements: requirements.txt
  pip: {find_links: [wheelhouse], no_index: true}
  env_file: "/etc/{{ vars.app.name }}/env"
  build: ["venv/bin/python manage.py collectstatic --noinput"]
  once: ["venv/bin/python manage.py migrate --noinput"]
  reload: ["supervisorctl signal HUP cts-gunicorn"]
"#;

fn render(site: &Site, env: &str, host: &str, secrets: &Secrets) -> HostRender {
    let env = Environment::resolve(site, env, &[]).unwrap();
    let (renderer, diags) = Renderer::new(site);
    assert!(diags.is_empty(), "{diags:?}");
    let shared = SharedContext::new(&env);
    renderer.render_host(&env, &shared, &env.hosts[host], secrets)
}

fn all_diagnostics(dir: &Path) -> Vec<Diagnostic> {
    let (site, mut diags) = Site::load(dir).unwrap();
    diags.extend(validate::check_roles(&site));
    let (renderer, d) = Renderer::new(&site);
    diags.extend(d);
    for name in site.inventories.keys() {
        let env = Environment::resolve(&site, name, &[]).unwrap();
        diags.extend(validate::check_inventory(&env));
        diags.extend(validate::check_rendering(&env, &renderer, &Secrets::default()).diagnostics);
    }
    diags.retain(Diagnostic::is_error);
    diags
}

/// `(message, file:line)` of each diagnostic, sorted.
fn placed(diags: &[Diagnostic]) -> Vec<(String, String)> {
    let mut out: Vec<_> = diags
        .iter()
        .map(|d| {
            let at = d.location.as_ref().map_or(String::new(), |l| {
                format!("{}:{}", l.file.display(), l.line)
            });
            (d.message.clone(), at)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_release_renders_per_host_with_its_defaults() {
    let dir = site(&[
        ("roles/app.yaml", APP_ROLE),
        ("inventories/prod.yaml", INVENTORY),
    ]);
    let (site, diags) = Site::load(dir.path()).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    assert!(all_diagnostics(dir.path()).is_empty());
    let secrets = Secrets::from_values(
        [(
            "deploy_key".to_string(),
            "-----BEGIN KEY-----\nsecret-key-body\n".to_string(),
        )]
        .into(),
    );
    let out = render(&site, "prod", "app1", &secrets);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let r = out.release.clone().expect("app1 has a release");
    assert_eq!(r.role, "app");
    assert_eq!(r.path, "/var/www/cts");
    assert_eq!(r.repo, "ssh://git@source/cts.git");
    assert_eq!(r.controller_url(), "ssh://git@source/cts.git");
    assert_eq!((r.ref_.as_str(), r.label.as_str()), ("v2", "v2"));
    assert_eq!((r.commit, r.commits), (None, None));
    assert_eq!(r.env_file.as_deref(), Some("/etc/cts/env"));
    assert_eq!(r.user, "www-data");
    assert_eq!(r.keep, 5);
    assert_eq!(r.venv.python.as_str(), "/usr/bin/python3");
    assert!(r.venv.system_site_packages);
    assert!(r.pip.no_index && r.pip.index_url.is_none());
    assert_eq!(r.pip.find_links[0].as_str(), "wheelhouse");
    assert_eq!(r.requirements.as_deref(), Some("requirements.txt"));
    assert_eq!(r.ssh_key.as_deref(), Some("deploy_key"));
    assert_eq!(
        r.ssh_key_value.as_ref().map(|k| k.0.as_str()),
        Some("-----BEGIN KEY-----\nsecret-key-body\n")
    );
    assert_eq!(
        (r.ref_at.file.to_str().unwrap(), r.ref_at.line),
        ("roles/app.yaml", 7)
    );
    // The key's value is in no printed or serialized form of the desired state.
    let env = Environment::resolve(&site, "prod", &[]).unwrap();
    let host = DesiredHost::new(&env, &env.hosts["app1"], out.files).with_release(out.release);
    let json = serde_json::to_string(&host).unwrap();
    assert!(json.contains("\"ref\":\"v2\""), "{json}");
    assert!(!json.contains("secret-key-body"), "{json}");
    assert!(!format!("{host:?}").contains("secret-key-body"));

    // Per host: app2's vars pick another ref; no secret set: no key value, the name stays.
    let out = render(&site, "prod", "app2", &Secrets::default());
    let r = out.release.unwrap();
    assert_eq!((r.ref_.as_str(), r.label.as_str()), ("main", "main"));
    assert_eq!(r.ssh_key.as_deref(), Some("deploy_key"));
    assert!(r.ssh_key_value.is_none());
    let out = render(&site, "prod", "app2", &Secrets::default());
    assert_eq!(
        out.missing_secrets().collect::<Vec<_>>(),
        vec!["deploy_key"]
    );
    let out = render(&site, "prod", "app2", &secrets);
    assert_eq!(out.missing_secrets().count(), 0);
    // `validate` warns about it as about any secret not set.
    let env = Environment::resolve(&site, "prod", &[]).unwrap();
    let (renderer, _) = Renderer::new(&site);
    let check = validate::check_rendering(&env, &renderer, &Secrets::default());
    assert!(check.missing_secrets.contains("deploy_key"));
}

#[test]
fn a_host_without_a_release_serializes_as_before() {
    let dir = site(&[
        ("roles/web.yaml", "name: web\n"),
        (
            "inventories/prod.yaml",
            "environment: prod\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nhosts:\n  w1: {roles: [web], address: 10.0.0.1}\n",
        ),
    ]);
    let (site, _) = Site::load(dir.path()).unwrap();
    let out = render(&site, "prod", "w1", &Secrets::default());
    assert!(out.release.is_none());
    let env = Environment::resolve(&site, "prod", &[]).unwrap();
    let host = DesiredHost::new(&env, &env.hosts["w1"], out.files).with_release(out.release);
    let json = serde_json::to_string(&host).unwrap();
    assert!(!json.contains("release"), "{json}");
}

#[test]
fn release_fields_are_validated_with_file_and_line() {
    let role = r#"name: app
secrets: [other]
release:
  path: "{{ vars.dir }}"
  repo: "https://ci:{{ secrets.other }}@git.example.org/app.git"
  ref: main
  ssh_key: deploy_key
  user: www-data
  requirements: ../requirements.txt
  pip: {find_links: ["/srv/wheels", "a//b"]}
  env_file: etc/env
  build: ["  "]
  keep: 0
"#;
    let dir = site(&[
        ("roles/app.yaml", role),
        (
            "inventories/prod.yaml",
            "environment: prod\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nvars: {dir: var/www/app}\nhosts:\n  app1: {roles: [app], address: 10.0.0.1}\n",
        ),
    ]);
    let diags = all_diagnostics(dir.path());
    let s = |m: &str, at: &str| (m.to_string(), at.to_string());
    assert_eq!(
        placed(&diags),
        vec![
            s("`release.env_file` on host `app1`: `etc/env` is not an absolute path", "roles/app.yaml:11"),
            s("`release.keep` of role `app` is 0", "roles/app.yaml:13"),
            s("`release.path` on host `app1`: `var/www/app` is not an absolute path", "roles/app.yaml:4"),
            s("`release.pip.find_links` `a//b` is not normalised (it has `.`, `..` or `//`)", "roles/app.yaml:4"),
            s("`release.repo` of role `app` uses a secret", "roles/app.yaml:5"),
            s("`release.requirements` `../requirements.txt` is not normalised (it has `.`, `..` or `//`)", "roles/app.yaml:9"),
            s("`release.ssh_key` of role `app` names `deploy_key`, which is not a secret of the role", "roles/app.yaml:7"),
            s("an empty command in `release.build` of role `app`", "roles/app.yaml:12"),
        ]
    );
    // A wrong user name or an unknown field is refused as the role is read.
    for (bad, expect) in [
        ("  user: \"www data\"\n", "is not a user or group name"),
        ("  user: w\n  branch: main\n", "branch"),
        (
            "  user: w\n  venv: {python: python3}\n",
            "is not an absolute path",
        ),
    ] {
        let text = format!("name: app\nrelease:\n  path: /a\n  repo: r\n  ref: main\n{bad}");
        let dir = site(&[("roles/app.yaml", &text)]);
        let (_, diags) = Site::load(dir.path()).unwrap();
        assert!(
            diags.iter().any(|d| d.message.contains(expect)
                && d.location
                    .as_ref()
                    .is_some_and(|l| l.file == Path::new("roles/app.yaml"))),
            "{bad:?}: {diags:#?}"
        );
    }
}

#[test]
fn a_host_gets_one_release_at_most() {
    let rel = |name: &str| {
        format!("name: {name}\nrelease:\n  path: /srv/{name}\n  repo: /git/{name}\n  ref: main\n  user: www-data\n")
    };
    let dir = site(&[
        ("roles/a.yaml", &rel("a")),
        ("roles/b.yaml", &rel("b")),
        ("roles/both.yaml", "name: both\nincludes: [a]\n"),
        (
            "inventories/prod.yaml",
            "environment: prod\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nhosts:\n  h1: {roles: [both, b], address: 10.0.0.1}\n  h2: {roles: [a, b], address: 10.0.0.2}\n  h3: {roles: [a], address: 10.0.0.3}\n",
        ),
    ]);
    let diags = all_diagnostics(dir.path());
    assert_eq!(
        placed(&diags),
        vec![(
            "hosts `h1`, `h2` of environment `prod` would get two releases: from role `a` and role `b`"
                .to_string(),
            "roles/b.yaml:3".to_string()
        )]
    );
    assert_eq!(diags[0].notes, vec!["the first is at roles/a.yaml:3"]);
}

// ---- The release scripts run for real: a git repository, sh, setpriv, a virtualenv. ----

use infra_core::desired::{DesiredRelease, RoleState};
use infra_core::facts;
use infra_core::model::{PipConfig, VenvConfig};
use infra_core::plan::{plan_host, Step};
use infra_core::release::{
    once_script, parse_releases, prune_script, releases_probe, switch_script, ReleaseInfo,
};
use infra_core::script::{apply_script, parse_report, Report, StepStatus};
use std::collections::BTreeMap;
use std::process::Command as Process;

/// Runs `script` with `sh` from a file (as the transport's wrapper does): exit status, stdout
/// and stderr.
fn sh(script: &str, dir: &Path, state: &Path) -> (i32, String, String) {
    let file = dir.join("script.sh");
    std::fs::write(&file, script).unwrap();
    let out = Process::new("sh")
        .arg(&file)
        .env("INFRA_STATE_DIR", state)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Process::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git is installed (the release test needs it)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Commits `app.py` saying `version` and returns the commit.
fn commit(repo: &Path, version: &str) -> String {
    std::fs::write(repo.join("app.py"), format!("VERSION = {version:?}\n")).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", version]);
    git(repo, &["rev-parse", "HEAD"])
}

fn whoami() -> String {
    let o = Process::new("id").arg("-un").output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// What the app host is: one role with the release.
fn host(rel: &DesiredRelease) -> infra_core::desired::DesiredHost {
    infra_core::desired::DesiredHost {
        name: "local".into(),
        roles: vec![RoleState {
            role: "app".into(),
            ..RoleState::default()
        }],
        release: Some(rel.clone()),
        ..Default::default()
    }
}

/// Gathers facts, plans and runs the apply script: the plan's steps and the script's reports.
fn apply(rel: &DesiredRelease, dir: &Path) -> (Vec<Step>, Vec<Report>) {
    let d = host(rel);
    let state = dir.join("state");
    let (code, out, err) = sh(&facts::script(&d), dir, &state);
    assert_eq!(code, 0, "facts: {err}");
    let facts = facts::parse(&out).unwrap();
    let plan = plan_host(&d, &facts, &BTreeMap::new(), &Secrets::default());
    let script = apply_script(&plan, &d).unwrap();
    let (_, out, _) = sh(&script, dir, &state);
    (plan.steps, out.lines().filter_map(parse_report).collect())
}

fn release_step(steps: &[Step]) -> &infra_core::kinds::release::Step {
    match steps {
        [Step::Release(r)] => r,
        other => panic!("expected one release step: {other:?}"),
    }
}

fn probe(rel: &DesiredRelease, dir: &Path) -> ReleaseInfo {
    let (code, out, err) = sh(&releases_probe(rel), dir, &dir.join("state"));
    assert_eq!(code, 0, "{err}");
    parse_releases(&out).unwrap()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// A temp dir with a git repository `src` (commit `v1` made) and the release deploying it
/// into `app` as the current user.
struct World {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    repo: std::path::PathBuf,
    app: std::path::PathBuf,
    rel: DesiredRelease,
}

impl World {
    fn new() -> World {
        assert!(
            Path::new("/usr/bin/python3").exists(),
            "this test needs /usr/bin/python3 with the venv module and PyYAML (python3-yaml)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let repo = dir.join("src");
        std::fs::create_dir_all(repo.join("wheelhouse")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "user.email", "t@example.org"]);
        git(&repo, &["config", "user.name", "t"]);
        // PyYAML is on the system (python3-yaml): the venv sees it, pip needs no index.
        std::fs::write(repo.join("requirements.txt"), "PyYAML\n").unwrap();
        std::fs::write(repo.join("wheelhouse/.keep"), "").unwrap();
        let c1 = commit(&repo, "v1");
        std::fs::write(dir.join("env"), "GREETING='hello there'\n").unwrap();
        let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
        let build = "venv/bin/python -c 'import os, yaml, app; open(\"built.txt\", \"w\").write(yaml.safe_dump({\"v\": app.VERSION, \"g\": os.environ[\"GREETING\"]}))'";
        let rel = DesiredRelease {
            role: "app".into(),
            path: p("app"),
            repo: p("src"),
            controller_repo: None,
            ref_: "main".into(),
            commit: Some(c1),
            label: "main".into(),
            commits: None,
            ssh_key: None,
            ssh_key_value: None,
            user: whoami(),
            requirements: Some("requirements.txt".into()),
            venv: VenvConfig::default(),
            pip: PipConfig {
                index_url: None,
                find_links: vec!["wheelhouse".parse().unwrap()],
                no_index: true,
            },
            env_file: Some(p("env")),
            build: vec![build.into()],
            once: vec![format!("echo \"$GREETING $(pwd)\" >> {}", p("once.log"))],
            reload: vec![format!("echo reloaded >> {}", p("reload.log"))],
            keep: 2,
            ref_at: infra_core::diagnostic::SourceMap::default().location(
                Path::new("roles/app.yaml"),
                1,
                1,
                1,
            ),
        };
        World {
            app: dir.join("app"),
            _tmp: tmp,
            dir,
            repo,
            rel,
        }
    }

    /// Runs a script on the "host" (this machine).
    fn run(&self, script: &str) -> (i32, String, String) {
        sh(script, &self.dir, &self.dir.join("state"))
    }

    fn switch(&self, to: &str) {
        let (code, _, err) = self.run(&switch_script(&self.rel, to));
        assert_eq!(code, 0, "{err}");
    }

    fn release_dir(&self, commit: &str) -> std::path::PathBuf {
        self.app.join("releases").join(commit)
    }
}

/// v1 built beside nothing, not switched; its once commands; the switch; then no change.
fn first_deploy(w: &World) {
    let c1 = w.rel.commit.clone().unwrap();
    let (steps, reports) = apply(&w.rel, &w.dir);
    let step = release_step(&steps);
    assert_eq!(
        (step.from.as_deref(), step.to.as_str(), step.build),
        (None, c1.as_str(), true)
    );
    assert!(reports.contains(&Report::Done), "{reports:?}");
    let r1 = w.release_dir(&c1);
    assert!(r1.join(".infra-built").exists());
    assert_eq!(read(r1.join("built.txt")), "g: hello there\nv: v1\n");
    assert!(r1.join("venv/bin/python").exists());
    assert!(!w.app.join("current").exists(), "the build does not switch");

    // Once, in the new release, as the user, with the env file.
    let (code, _, err) = w.run(&once_script(&w.rel, &c1));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read(w.dir.join("once.log")),
        format!("hello there {}\n", r1.display())
    );

    // Switch: current -> releases/c1 (relative), the log, the reload.
    w.switch(&c1);
    assert_eq!(
        std::fs::read_link(w.app.join("current")).unwrap(),
        Path::new("releases").join(&c1)
    );
    assert_eq!(read(w.dir.join("reload.log")), "reloaded\n");
    assert!(read(w.app.join("releases.log")).ends_with(&format!("\t{c1}\n")));

    // The same commit again: nothing to do.
    let (steps, _) = apply(&w.rel, &w.dir);
    assert!(steps.is_empty(), "{steps:?}");
}

/// A build that fails leaves no built release and current where it was; the next run
/// removes what it (and a killed run) left, and builds v2 from a fresh checkout.
fn failed_build_then_v2(w: &mut World) -> String {
    let c1 = w.rel.commit.clone().unwrap();
    let c2 = commit(&w.repo, "v2");
    w.rel.commit = Some(c2.clone());
    let good = std::mem::replace(
        &mut w.rel.build,
        vec!["echo half > half.txt; exit 3".into()],
    );
    let (_, reports) = apply(&w.rel, &w.dir);
    let failed = Report::Step {
        index: 0,
        status: StepStatus::Failed,
    };
    assert!(reports.contains(&failed), "{reports:?}");
    assert!(
        reports.contains(&Report::Output("(exit status 3)".into())),
        "{reports:?}"
    );
    assert!(!w.release_dir(&c2).join(".infra-built").exists());
    assert!(w.release_dir(&c2).join("half.txt").exists());
    w.rel.build = good;
    std::fs::create_dir_all(w.app.join("releases/deadbeef.new")).unwrap();
    let (steps, reports) = apply(&w.rel, &w.dir);
    let step = release_step(&steps);
    assert_eq!(
        (step.from.as_deref(), step.build),
        (Some(c1.as_str()), true)
    );
    assert!(reports.contains(&Report::Done), "{reports:?}");
    assert_eq!(
        read(w.release_dir(&c2).join("built.txt")),
        "g: hello there\nv: v2\n"
    );
    assert!(
        !w.release_dir(&c2).join("half.txt").exists(),
        "a fresh checkout"
    );
    assert!(!w.app.join("releases/deadbeef.new").exists());
    w.switch(&c2);
    c2
}

/// v3 fetched into the mirror and switched; the releases and the previous one; prune; a
/// refused switch; a rollback and a roll forward that needs no build; a failing reload.
fn v3_prune_and_roll_back(w: &mut World, c1: &str, c2: &str) -> String {
    let c3 = commit(&w.repo, "v3");
    w.rel.commit = Some(c3.clone());
    let (_, reports) = apply(&w.rel, &w.dir);
    assert!(reports.contains(&Report::Done), "{reports:?}");
    w.switch(&c3);
    let info = probe(&w.rel, &w.dir);
    assert_eq!(info.current.as_deref(), Some(c3.as_str()));
    let kept: Vec<&str> = info.kept.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(kept, vec![c3.as_str(), c2, c1]);
    assert!(info.kept.iter().all(|(_, at)| at.is_some()));
    assert_eq!(info.previous(), Some(c2));

    // Prune to 2: c1 goes; current and previous stay.
    let (code, out, err) = w.run(&prune_script(&w.rel));
    assert_eq!((code, out), (0, format!("pruned\t{c1}\n")), "{err}");
    assert!(!w.release_dir(c1).exists());
    assert_eq!(probe(&w.rel, &w.dir).kept.len(), 2);

    // A switch to a release that is not built is refused, nothing changed.
    let (code, _, err) = w.run(&switch_script(&w.rel, c1));
    assert_eq!(code, 1);
    assert!(err.contains("is not built on this host"), "{err}");
    assert_eq!(probe(&w.rel, &w.dir).current.as_deref(), Some(c3.as_str()));

    // Roll back to the previous (c2); rolling forward to c3 needs no build.
    w.switch(info.previous().unwrap());
    let info = probe(&w.rel, &w.dir);
    assert_eq!(info.current.as_deref(), Some(c2));
    assert_eq!(info.previous(), Some(c3.as_str()));
    let (steps, reports) = apply(&w.rel, &w.dir);
    let step = release_step(&steps);
    assert_eq!((step.from.as_deref(), step.build), (Some(c2), false));
    assert!(reports.contains(&Report::Done), "{reports:?}");

    // A reload that fails after the switch: exit status 2, current switched.
    let reload = std::mem::replace(&mut w.rel.reload, vec!["exit 9".into()]);
    let (code, _, err) = w.run(&switch_script(&w.rel, &c3));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("reload command failed (exit status 9)"),
        "{err}"
    );
    assert_eq!(probe(&w.rel, &w.dir).current.as_deref(), Some(c3.as_str()));
    w.rel.reload = reload;
    c3
}

/// Another user builds and runs once commands as themselves, in a tree they own; root keeps
/// the mirror.
fn another_user(w: &World, c3: &str) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = Process::new("id").args(["-u", "nobody"]).output().unwrap();
    assert!(nobody.status.success(), "this test needs the user `nobody`");
    let uid: u32 = String::from_utf8_lossy(&nobody.stdout)
        .trim()
        .parse()
        .unwrap();
    let other = DesiredRelease {
        path: w.dir.join("other").to_str().unwrap().to_string(),
        user: "nobody".into(),
        requirements: None,
        env_file: None,
        build: vec!["id -un > who.txt".into()],
        once: vec!["id -un > once-who.txt".into()],
        reload: Vec::new(),
        ..w.rel.clone()
    };
    let (_, reports) = apply(&other, &w.dir);
    assert!(reports.contains(&Report::Done), "{reports:?}");
    let r3 = w.dir.join("other/releases").join(c3);
    assert_eq!(read(r3.join("who.txt")), "nobody\n");
    assert_eq!(std::fs::metadata(&r3).unwrap().uid(), uid);
    assert_eq!(std::fs::metadata(r3.join("app.py")).unwrap().uid(), uid);
    let mirror = std::fs::metadata(w.dir.join("other/repo")).unwrap();
    assert_eq!(mirror.uid(), 0, "root's mirror");
    let (code, _, err) = w.run(&once_script(&other, c3));
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(r3.join("once-who.txt")), "nobody\n");

    // A release path the user owns is refused: root would clone and write there.
    let theirs = w.dir.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(uid), None).unwrap();
    let refused = DesiredRelease {
        path: theirs.to_str().unwrap().to_string(),
        ..other
    };
    let (_, reports) = apply(&refused, &w.dir);
    let expected = format!(
        "the release path {} is owned by nobody, but root builds there (the mirror, known_hosts): make it root's and writable by root alone; the release user owns only releases/<commit>",
        theirs.display()
    );
    assert!(reports.contains(&Report::Output(expected)), "{reports:?}");
    assert!(!theirs.join("repo").exists() && !theirs.join("releases").exists());
}

#[test]
fn releases_build_switch_run_once_prune_and_roll_back_for_real() {
    let mut w = World::new();
    let c1 = w.rel.commit.clone().unwrap();
    first_deploy(&w);
    let c2 = failed_build_then_v2(&mut w);
    let c3 = v3_prune_and_roll_back(&mut w, &c1, &c2);
    another_user(&w, &c3);
}
