//! Precedence, discovery and validation on small sites written to a temp dir.

use infra_core::diagnostic::Diagnostic;
use infra_core::environment::Environment;
use infra_core::render::{Renderer, SharedContext};
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::validate;
use infra_core::vars::VarOverride;
use std::collections::BTreeMap;
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

fn load(dir: &Path) -> Site {
    let (site, diags) = Site::load(dir).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    site
}

/// Renders one host; returns dest -> content.
fn render(
    site: &Site,
    env: &str,
    host: &str,
    overrides: &[&str],
) -> Result<BTreeMap<String, String>, Vec<Diagnostic>> {
    let overrides: Vec<VarOverride> = overrides
        .iter()
        .map(|o| VarOverride::parse(o).unwrap())
        .collect();
    let env = Environment::resolve(site, env, &overrides).unwrap();
    let (renderer, diags) = Renderer::new(site);
    assert!(diags.is_empty(), "{diags:?}");
    let shared = SharedContext::new(&env);
    let out = renderer.render_host(&env, &shared, &env.hosts[host], &Secrets::default());
    if !out.diagnostics.is_empty() {
        return Err(out.diagnostics);
    }
    Ok(out
        .files
        .into_iter()
        .map(|f| (f.dest, String::from_utf8(f.content).unwrap()))
        .collect())
}

const PRECEDENCE_ROLES: &[(&str, &str)] = &[
    ("roles/base.yaml", "name: base\ndefaults: {level: base, only_base: b, nested: {a: base, b: base}}\n"),
    (
        "roles/web.yaml",
        "name: web\nincludes: [base]\ndefaults: {level: web, nested: {b: web, c: web}}\nfiles:\n  - {template: show.j2, dest: /show}\n  - {template: show.j2, dest: /show-file, vars: {level: file}}\n",
    ),
    ("templates/show.j2", "{{ vars.level }} {{ vars.only_base }} {{ vars.nested.a }}{{ vars.nested.b }} {{ vars.nested.c }}{% if vars.extra is defined %} {{ vars.extra }}{% endif %}\n"),
];

fn inventory(vars: &str, role_vars: &str, host_vars: &str) -> String {
    format!(
        "environment: test\ndomain: example.org\ninternal_domain: test.internal\nprovider: {{type: static}}\nvars: {vars}\nrole_vars: {role_vars}\nhosts:\n  w1: {{roles: [web], address: 10.0.0.1, vars: {host_vars}}}\n"
    )
}

#[test]
fn role_defaults_are_the_lowest_and_included_roles_come_first() {
    let inv = inventory("{}", "{}", "{}");
    let mut files = PRECEDENCE_ROLES.to_vec();
    files.push(("inventories/test.yaml", &inv));
    let dir = site(&files);
    let out = render(&load(dir.path()), "test", "w1", &[]).unwrap();
    // web's defaults override base's (included first); maps merge deeply.
    assert_eq!(out["/show"], "web b baseweb web\n");
}

#[test]
fn each_level_overrides_the_one_below() {
    let site_files = |vars: &str, role_vars: &str, host_vars: &str| {
        let inv = inventory(vars, role_vars, host_vars);
        let mut files: Vec<(String, String)> = PRECEDENCE_ROLES
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        files.push(("inventories/test.yaml".into(), inv));
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in &files {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        dir
    };
    let d = site_files("{level: inv}", "{}", "{}");
    assert_eq!(
        render(&load(d.path()), "test", "w1", &[]).unwrap()["/show"],
        "inv b baseweb web\n"
    );
    let d = site_files("{level: inv}", "{web: {level: role_vars}}", "{}");
    assert_eq!(
        render(&load(d.path()), "test", "w1", &[]).unwrap()["/show"],
        "role_vars b baseweb web\n"
    );
    // role_vars of an included role apply too, below the including role's.
    let d = site_files(
        "{}",
        "{base: {nested: {c: rv_base}}, web: {level: rv_web}}",
        "{}",
    );
    assert_eq!(
        render(&load(d.path()), "test", "w1", &[]).unwrap()["/show"],
        "rv_web b baseweb rv_base\n"
    );
    let d = site_files(
        "{level: inv}",
        "{web: {level: role_vars}}",
        "{level: host, nested: {a: host}}",
    );
    let site = load(d.path());
    let out = render(&site, "test", "w1", &[]).unwrap();
    assert_eq!(out["/show"], "host b hostweb web\n");
    // The file entry's vars beat host vars ...
    assert_eq!(out["/show-file"], "file b hostweb web\n");
    // ... and --var beats everything, including file vars.
    let out = render(&site, "test", "w1", &["level=cli", "extra=[1, 2]"]).unwrap();
    assert_eq!(out["/show"], "cli b hostweb web [1, 2]\n");
    assert_eq!(out["/show-file"], "cli b hostweb web [1, 2]\n");
}

const DISCOVERY_ROLES: &[(&str, &str)] = &[
    ("roles/base.yaml", "name: base\n"),
    ("roles/db.yaml", "name: db\nincludes: [base]\n"),
    ("roles/masterdb.yaml", "name: masterdb\nrequires_on_same_host: [db]\ncount: {min: 1, max: 1}\n"),
    ("roles/cache.yaml", "name: cache\n"),
    (
        "roles/app.yaml",
        "name: app\nincludes: [base]\nfiles:\n  - {template: app.j2, dest: /etc/app.conf}\n",
    ),
    (
        "templates/app.j2",
        "{% set m = one(role=\"masterdb\") %}master={{ m.name }}@{{ m.private_ip }}\n\
         dbs={% for h in by_role.db %}{{ h.name }} {% endfor %}\n\
         bases={{ hosts(role=\"base\") | length }}\n\
         addrs={{ addrs(role=\"db\", port=3306) | join(sep=\",\") }}\n\
         all={% for h in hosts %}{{ h.name }}:{{ h.fqdn }} {% endfor %}\n\
         me={{ host.name }} {{ host.all_roles | join(sep=\",\") }} {{ env.name }} {{ env.domain }}\n",
    ),
];

fn discovery_site(hosts: &str) -> tempfile::TempDir {
    let inv = format!(
        "environment: prod\ndomain: example.org\ninternal_domain: prod.internal\nprovider: {{type: static}}\nhosts:\n{hosts}"
    );
    let mut files = DISCOVERY_ROLES.to_vec();
    files.push(("inventories/prod.yaml", &inv));
    site(&files)
}

#[test]
fn discovery_computes_addresses_from_the_inventory() {
    let dir = discovery_site(
        "  db2: {roles: [db], address: 10.0.0.12}\n  db1: {roles: [db, masterdb], address: 10.0.0.11}\n  app1: {roles: [app], address: 10.0.0.21}\n",
    );
    let out = render(&load(dir.path()), "prod", "app1", &[]).unwrap();
    assert_eq!(
        out["/etc/app.conf"],
        "master=db1@10.0.0.11\ndbs=db1 db2 \nbases=3\naddrs=10.0.0.11:3306,10.0.0.12:3306\n\
         all=app1:app1.prod.internal db1:db1.prod.internal db2:db2.prod.internal \n\
         me=app1 base,app prod example.org\n"
    );
}

#[test]
fn one_fails_unless_exactly_one_host_holds_the_role() {
    let dir = discovery_site(
        "  db1: {roles: [db], address: 10.0.0.11}\n  app1: {roles: [app], address: 10.0.0.21}\n",
    );
    let err = render(&load(dir.path()), "prod", "app1", &[]).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err[0].message,
        "one(role=\"masterdb\"): no host in environment `prod` holds role `masterdb`"
    );
    let loc = err[0].location.as_ref().unwrap();
    assert_eq!(
        (loc.file.to_str().unwrap(), loc.line),
        ("templates/app.j2", 1)
    );

    let dir = discovery_site(
        "  db1: {roles: [db, masterdb], address: 10.0.0.11}\n  db2: {roles: [db, masterdb], address: 10.0.0.12}\n  app1: {roles: [app], address: 10.0.0.21}\n",
    );
    let err = render(&load(dir.path()), "prod", "app1", &[]).unwrap_err();
    assert_eq!(
        err[0].message,
        "one(role=\"masterdb\"): 2 hosts hold role `masterdb` (db1, db2), exactly one is needed"
    );
}

#[test]
fn a_role_that_does_not_exist_is_an_error_in_discovery() {
    let mut files = DISCOVERY_ROLES.to_vec();
    files.retain(|(p, _)| *p != "templates/app.j2");
    files.push(("templates/app.j2", "{{ hosts(role=\"nope\") | length }}"));
    let inv = "environment: prod\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nhosts:\n  app1: {roles: [app], address: 10.0.0.21}\n";
    files.push(("inventories/prod.yaml", inv));
    let dir = site(&files);
    let err = render(&load(dir.path()), "prod", "app1", &[]).unwrap_err();
    assert_eq!(
        err[0].message,
        "hosts(role=\"nope\"): there is no role `nope` in roles/"
    );
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
    diags
}

fn messages(diags: &[Diagnostic]) -> Vec<String> {
    let mut m: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    m.sort();
    m
}

#[test]
fn count_and_requires_on_same_host_are_checked_per_environment() {
    let dir = discovery_site(
        "  db1: {roles: [db, masterdb], address: 10.0.0.11}\n  cache1: {roles: [cache, masterdb], address: 10.0.0.12}\n  app1: {roles: [app], address: 10.0.0.21}\n",
    );
    let diags = all_diagnostics(dir.path());
    assert_eq!(
        messages(&diags),
        vec![
            "environment `prod` needs exactly 1 host with role `masterdb`, found 2 (cache1, db1)".to_string(),
            "host `cache1` has role `masterdb`, which requires role `db` on the same host".to_string(),
            "one(role=\"masterdb\"): 2 hosts hold role `masterdb` (cache1, db1), exactly one is needed".to_string(),
        ]
    );
    let req = diags
        .iter()
        .find(|d| d.message.starts_with("host `cache1`"))
        .unwrap();
    let loc = req.location.as_ref().unwrap();
    assert_eq!(
        (loc.file.to_str().unwrap(), loc.line, loc.column),
        ("inventories/prod.yaml", 7, 27)
    );
    assert_eq!(
        req.hint.as_deref(),
        Some("add `db` to the roles of `cache1`")
    );
}

#[test]
fn include_cycles_are_reported_once_with_their_path() {
    let dir = site(&[
        ("roles/a.yaml", "name: a\nincludes: [b]\n"),
        ("roles/b.yaml", "name: b\nincludes: [c]\n"),
        ("roles/c.yaml", "name: c\nincludes: [a]\n"),
        ("roles/d.yaml", "name: d\nincludes: [a]\n"),
    ]);
    let diags = all_diagnostics(dir.path());
    assert_eq!(
        messages(&diags),
        vec!["include cycle: a -> b -> c -> a".to_string()]
    );
    let loc = diags[0].location.as_ref().unwrap();
    assert_eq!(
        (loc.file.to_str().unwrap(), loc.line, loc.column),
        ("roles/c.yaml", 2, 12)
    );
}

#[test]
fn two_files_for_one_destination_on_a_host() {
    let dir = site(&[
        ("roles/a.yaml", "name: a\nfiles:\n  - {source: x, dest: /etc/x}\n"),
        ("roles/b.yaml", "name: b\nfiles:\n  - {source: x, dest: \"/etc/{{ vars.n }}\"}\n"),
        ("templates/x", "x\n"),
        (
            "inventories/p.yaml",
            "environment: p\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nvars: {n: x}\nhosts:\n  h1: {roles: [a, b], address: 10.0.0.1}\n",
        ),
    ]);
    let diags = all_diagnostics(dir.path());
    assert_eq!(
        messages(&diags),
        vec!["two files for /etc/x: from role `a` and role `b`".to_string()]
    );
}

#[test]
fn output_is_byte_for_byte_stable() {
    let dir = site(&[
        ("roles/a.yaml", "name: a\ndefaults: {m: {zeta: 1, alpha: 2, mid: 3}}\nfiles:\n  - {template: t.j2, dest: /t}\n"),
        ("templates/t.j2", "{% for k, v in vars.m %}{{ k }}={{ v }} {% endfor %}"),
        (
            "inventories/p.yaml",
            "environment: p\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nhosts:\n  h1: {roles: [a], address: 10.0.0.1}\n",
        ),
    ]);
    let site = load(dir.path());
    let first = render(&site, "p", "h1", &[]).unwrap();
    assert_eq!(first["/t"], "alpha=2 mid=3 zeta=1 ");
    for _ in 0..20 {
        assert_eq!(render(&site, "p", "h1", &[]).unwrap(), first);
    }
}

#[test]
fn secrets_render_with_their_value_or_a_named_placeholder() {
    let files = [
        ("roles/r.yaml", "name: r\nsecrets: [pw]\nfiles:\n  - {template: t.j2, dest: /t}\n"),
        ("templates/t.j2", "requirepass {{ secrets.pw }}\n"),
        (
            "inventories/p.yaml",
            "environment: p\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nhosts:\n  h1: {roles: [r], address: 10.0.0.1}\n",
        ),
    ];
    let dir = site(&files);
    let site = load(dir.path());
    let env = Environment::resolve(&site, "p", &[]).unwrap();
    let (renderer, _) = Renderer::new(&site);
    let shared = SharedContext::new(&env);
    let out = renderer.render_host(&env, &shared, &env.hosts["h1"], &Secrets::default());
    assert_eq!(out.files[0].content, b"requirepass <missing secret: pw>\n");
    assert_eq!(out.files[0].missing_secrets, vec!["pw".to_string()]);
    let secrets = Secrets::from_values([("pw".to_string(), "s3cr3t-value".to_string())].into());
    let out = renderer.render_host(&env, &shared, &env.hosts["h1"], &secrets);
    assert_eq!(out.files[0].content, b"requirepass s3cr3t-value\n");
    assert_eq!(out.files[0].secrets, vec!["pw".to_string()]);
    assert!(out.files[0].missing_secrets.is_empty());
}

#[test]
fn an_undeclared_secret_is_an_undefined_variable_with_a_hint() {
    let dir = site(&[
        ("roles/owner.yaml", "name: owner\nsecrets: [pw]\n"),
        ("roles/r.yaml", "name: r\nfiles:\n  - {template: t.j2, dest: /t}\n"),
        ("templates/t.j2", "x\nrequirepass {{ secrets.pw }}\n"),
        (
            "inventories/p.yaml",
            "environment: p\ndomain: e.org\ninternal_domain: p.i\nprovider: {type: static}\nhosts:\n  h1: {roles: [r], address: 10.0.0.1}\n",
        ),
    ]);
    let diags = all_diagnostics(dir.path());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].message.starts_with("Field `pw` is not defined"),
        "{}",
        diags[0].message
    );
    let loc = diags[0].location.as_ref().unwrap();
    assert_eq!(
        (loc.file.to_str().unwrap(), loc.line, loc.column),
        ("templates/t.j2", 2, 24)
    );
    assert!(diags[0]
        .hint
        .as_ref()
        .unwrap()
        .contains("secret declared by role owner"));
}
