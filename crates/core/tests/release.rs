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
