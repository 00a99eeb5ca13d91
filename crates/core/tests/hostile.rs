//! Hostile values (quotes, `$(...)`, backticks, `;`, newlines, leading dashes, spaces,
//! non-ASCII) through every string field of every kind and through `--var`: the ones a field
//! accepts go through the real pipeline (site, render, facts script, plan, apply script) and the
//! scripts run with `sh` on a scratch root, where nothing they hold may execute (a sentinel file
//! stays absent); the ones a field cannot accept are refused with their file and line when the
//! site is loaded, before anything runs.

use infra_core::desired::DesiredHost;
use infra_core::environment::Environment;
use infra_core::facts;
use infra_core::plan::{files_to_diff, plan_host, HostPlan};
use infra_core::render::{Renderer, SharedContext};
use infra_core::script::apply_script;
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_core::vars::VarOverride;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What each hostile value tries: every one names the sentinel `%S%`, a file name made relative
/// to the directory the scripts run in (a name with no `/`, so it fits in one path component).
const HOSTILE: &[&str] = &[
    "'; touch %S%; '",
    "\"; touch %S%; \"",
    "$(touch %S%)",
    "`touch %S%`",
    "; touch %S%;",
    "x\ntouch %S%\n",
    "-rf --x=%S%",
    "a b %S%",
    "é ü 日本 %S%",
];

fn id(flag: &str) -> String {
    let o = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A YAML double-quoted scalar holding `text` exactly.
fn yq(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// One role whose free-text fields all hold hostile text (without spaces where a path cannot
/// have them), under `root`.
fn hostile_site(dir: &Path, root: &Path, s: &str) -> String {
    let r = root.display();
    let p = |tail: &str| yq(&format!("{r}/{tail}").replace("%S%", s));
    let target = yq(&format!("-'; touch {s}; ' é $(touch {s}) `touch {s}`"));
    let cmd_name = yq(&format!("'; touch {s}; \" $(touch {s}) é"));
    let creates = format!("{r}/c$(touch${{IFS}}{s})");
    let (user, group) = (id("-un"), id("-gn"));
    let role = format!(
        "name: h\n\
         dirs:\n  - {{path: {d}, owner: {user}, group: {group}, mode: \"0750\"}}\n\
         files:\n  - template: t.j2\n    dest: {f}\n    owner: {user}\n    group: {group}\n    mode: \"0640\"\n\
         \x20 - template: t.j2\n    dest: {g}\n    owner: {user}\n    group: {group}\n\
         links:\n  - {{path: {l}, target: {target}}}\n\
         commands:\n  - {{name: {cmd_name}, run: {run}, creates: {c}}}\n",
        d = p("d$(touch${IFS}%S%)"),
        f = p("d$(touch${IFS}%S%)/{{ vars.name }}"),
        g = p("`touch${IFS}%S%`é"),
        l = p("l;touch${IFS}%S%;"),
        run = yq(&format!("touch '{creates}'")),
        c = yq(&creates),
    );
    write(dir, "roles/h.yaml", &role);
    write(
        dir,
        "templates/t.j2",
        "v={{ vars.v }}\nname={{ vars.name }}\n",
    );
    let inventory = format!(
        "environment: test\ndomain: t.test\ninternal_domain: t.internal\n\
         provider: {{type: static}}\n\
         hosts:\n  h1: {{roles: [h], address: 127.0.0.1, vars: {{name: {}}}}}\n",
        yq(&format!("f;touch${{IFS}}{s};`touch${{IFS}}{s}`"))
    );
    write(dir, "inventories/test.yaml", &inventory);
    HOSTILE.join("\n").replace("%S%", s)
}

/// The real pipeline, from the site on disk to the host's desired state, with `--var v=...`.
fn desired(dir: &Path, var: &str) -> DesiredHost {
    let (site, diags) = Site::load(dir).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let over = [VarOverride::parse(&format!("v={var}")).unwrap()];
    let env = Environment::resolve(&site, "test", &over).unwrap();
    let (renderer, diags) = Renderer::new(&site);
    assert!(diags.is_empty(), "{diags:?}");
    let shared = SharedContext::new(&env);
    let host = &env.hosts["h1"];
    let out = renderer.render_host(&env, &shared, host, &Secrets::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    DesiredHost::from_render(&env, host, out)
}

/// Runs `script` with `sh` in the directory `state` belongs to (where the sentinel would land).
fn sh(script: &str, state: &Path) -> String {
    use std::io::Write;
    // As the wrapper runs it: from a file (the apply script runs itself again under its lock).
    let file = state.with_extension("sh");
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(script.as_bytes()))
        .unwrap();
    let out = Command::new("sh")
        .arg(&file)
        .current_dir(state.parent().unwrap())
        .env("INFRA_STATE_DIR", state)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    text
}

fn plan(d: &DesiredHost, state: &Path) -> HostPlan {
    let f = facts::parse(&sh(&facts::script(d), state)).unwrap();
    let mut current = BTreeMap::new();
    for dest in files_to_diff(d, &f) {
        current.insert(dest.clone(), std::fs::read(&dest).unwrap());
    }
    plan_host(d, &f, &current, &Secrets::default())
}

#[test]
fn hostile_values_a_field_accepts_never_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (site, root, state) = (
        tmp.path().join("site"),
        tmp.path().join("root"),
        tmp.path().join("state"),
    );
    std::fs::create_dir_all(&root).unwrap();
    let sent: PathBuf = tmp.path().join("SENT");
    let var = hostile_site(&site, &root, "SENT");
    let d = desired(&site, &var);
    let p = plan(&d, &state);
    let kinds: Vec<String> = p.steps.iter().map(|s| s.address()).collect();
    assert_eq!(p.steps.len(), 5, "{kinds:#?}");
    let out = sh(&apply_script(&p, &d).unwrap(), &state);
    assert!(out.ends_with("@@infra\tdone\n"), "{out}");
    assert!(!sent.exists(), "a hostile value ran: {kinds:#?}\n{out}");
    let again = plan(&d, &state);
    assert!(again.steps.is_empty(), "{:?}", again.steps);
    assert!(!sent.exists());
    // What was written is the values themselves, byte for byte.
    let file = d.files().next().unwrap();
    let written = std::fs::read_to_string(&file.dest).unwrap();
    assert!(written.starts_with(&format!("v={var}\n")), "{written}");
    let link = &d.roles[0].links[0];
    assert_eq!(
        std::fs::read_link(link.path.as_str()).unwrap(),
        PathBuf::from(link.target.as_str())
    );
}

/// Each field that holds a name or a managed path, as a role line with `V` for the value.
const NAME_FIELDS: &[&str] = &[
    "packages: [V]",
    "groups: [{name: V}]",
    "users: [{name: V}]",
    "users: [{name: ok, home: V}]",
    "users: [{name: ok, shell: V}]",
    "users: [{name: ok, groups: [V]}]",
    "dirs: [{path: V}]",
    "dirs: [{path: /srv/x, owner: V}]",
    "dirs: [{path: /srv/x, group: V}]",
    "files: [{source: s, dest: /srv/x, owner: V}]",
    "files: [{source: s, dest: /srv/x, group: V}]",
    "links: [{path: V, target: /x}]",
    "services: [{name: V}]",
    "apt_sources: [{name: V, uri: 'http://x/', suite: s, components: [main], key: k}]",
    "apt_sources: [{name: a, uri: 'http://x/', suite: s, components: [V], key: k}]",
    "apt_sources: [{name: a, uri: 'http://x/', suite: s, components: [main], architectures: [V], key: k}]",
];

#[test]
fn hostile_names_are_refused_with_file_and_line_before_anything_runs() {
    let mut refused = 0;
    for field in NAME_FIELDS {
        for value in HOSTILE {
            let tmp = tempfile::tempdir().unwrap();
            let line = field.replace('V', &yq(value));
            write(tmp.path(), "roles/r.yaml", &format!("name: r\n{line}\n"));
            write(tmp.path(), "templates/s", "x\n");
            let (_, diags) = Site::load(tmp.path()).unwrap();
            let at = diags.iter().find_map(|d| d.location.as_ref());
            let at = at.unwrap_or_else(|| panic!("{field} = {value:?} was accepted"));
            assert_eq!(
                (at.file.as_path(), at.line),
                (Path::new("roles/r.yaml"), 2),
                "{field} = {value:?}: {diags:?}"
            );
            refused += 1;
        }
    }
    // Command names and link targets are one line of any text: only the newline is refused.
    for field in [
        "commands: [{name: V, run: x, creates: /x}]",
        "links: [{path: /x, target: V}]",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "roles/r.yaml",
            &format!("name: r\n{}\n", field.replace('V', &yq("a\nb"))),
        );
        let (_, diags) = Site::load(tmp.path()).unwrap();
        let at = diags
            .iter()
            .find_map(|d| d.location.as_ref())
            .expect("refused");
        assert_eq!(at.line, 2, "{diags:?}");
        refused += 1;
    }
    assert_eq!(refused, NAME_FIELDS.len() * HOSTILE.len() + 2);
}

/// The inventory's values that reach the generated ssh config: one that could add a directive
/// of its own (a newline, a quote) or smuggle an option (`-o...` as a user) is refused at its line.
#[test]
fn hostile_inventory_values_for_the_ssh_config_are_refused_at_their_line() {
    let fields = [
        "ssh: {user: V}",
        "ssh: {identity_file: V}",
        "ssh: {known_hosts_file: V}",
        "ssh: {config_file: V}",
        "ssh: {options: {ProxyCommand: V}}",
        "ssh: {options: {V: x}}",
    ];
    let values = [
        "x\nProxyCommand touch /tmp/S",
        "a\"b",
        "-oProxyCommand=x y\n",
    ];
    for field in fields {
        for value in values {
            let tmp = tempfile::tempdir().unwrap();
            let inv = format!(
                "environment: t\ndomain: t.test\ninternal_domain: t.internal\nprovider: {{type: static}}\n{}\nhosts: {{}}\n",
                field.replace('V', &yq(value))
            );
            write(tmp.path(), "inventories/t.yaml", &inv);
            let (_, diags) = Site::load(tmp.path()).unwrap();
            let at = diags.iter().find_map(|d| d.location.as_ref());
            let at = at.unwrap_or_else(|| panic!("{field} = {value:?} was accepted"));
            assert_eq!(at.line, 5, "{field} = {value:?}: {diags:?}");
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let inv = format!(
        "environment: t\ndomain: t.test\ninternal_domain: t.internal\nprovider: {{type: static}}\nhosts:\n  h: {{roles: [], address: {}}}\n",
        yq("10.0.0.1\nProxyCommand x")
    );
    write(tmp.path(), "inventories/t.yaml", &inv);
    let (_, diags) = Site::load(tmp.path()).unwrap();
    assert_eq!(
        diags
            .iter()
            .find_map(|d| d.location.as_ref())
            .map(|l| l.line),
        Some(6),
        "{diags:?}"
    );
}
