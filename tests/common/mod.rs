//! Shared helpers for the integration tests: run the built `infra`, copy the site, edit it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root: itself a working site.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What one run of the binary printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `infra ARGS` in `dir` with a clean environment (no secrets, no colour).
pub fn infra(dir: &Path, args: &[&str]) -> Run {
    infra_env(dir, args, &[])
}

pub fn infra_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    infra_through(&[], dir, args, env)
}

/// `infra_env`, with the binary started by `prefix` (e.g. `nsenter -t PID -m --`).
pub fn infra_through(prefix: &[&str], dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(env!("CARGO_BIN_EXE_infra"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_infra")),
    };
    cmd.arg("-C").arg(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("INFRA_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1").env("HOME", dir.join(".no-home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the infra binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The folders of a site.
const SITE_DIRS: [&str; 3] = ["roles", "templates", "inventories"];

/// A copy of the repository's site (roles, templates, inventories) in a temp dir.
pub fn site_copy() -> tempfile::TempDir {
    copy_site(&repo())
}

/// A temp dir holding `from`'s roles, templates and inventories.
fn copy_site(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in SITE_DIRS {
        copy_tree(&from.join(sub), &dir.path().join(sub));
    }
    dir
}

/// Copies the tree `from` to `to`, leaving out the example apps' local leftovers
/// (`__pycache__`, `venv`, `public`).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name == "venv" || name == "public" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Writes `text` to `path` under `dir`, making the folders it needs.
pub fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes `text` to `file` with mode 0600 (infra refuses a secrets file others can read).
pub fn write_private(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
    std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// The inventory of one `connection: local` host `self` with role `web` (environment `lab`).
pub const LOCAL_INVENTORY: &str = "\
environment: lab
domain: example.org
internal_domain: lab.internal
provider: {type: static}
connection: local
hosts:
  self: {roles: [web]}
";

/// Role `motd`: one file, /etc/motd.infra from templates/motd.j2.
pub const MOTD_ROLE: &str = "name: motd\ndescription: one file, to have something to apply\n\
     files:\n  - {template: motd.j2, dest: /etc/motd.infra, mode: \"0644\"}\n";

/// A site in a temp dir (removed on drop), and the sandbox state it holds.
pub struct SiteDir {
    dir: tempfile::TempDir,
}

impl SiteDir {
    /// An empty site: its roles, templates and inventories folders.
    pub fn new() -> SiteDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in SITE_DIRS {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        SiteDir { dir }
    }

    /// A copy of `example`'s site (a folder of the repository, e.g. `examples/gwm`).
    pub fn from_example(example: &str) -> SiteDir {
        SiteDir {
            dir: copy_site(&repo().join(example)),
        }
    }

    /// A copy of the repository's site, its sandbox inventory moved from 10.213.0.0/24 to
    /// `subnet` (`10.213.N`).
    pub fn sandbox_copy(subnet: &str) -> SiteDir {
        let site = SiteDir { dir: site_copy() };
        let path = site.path().join("inventories/sandbox.yaml");
        let inv = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, inv.replace("10.213.0.", &format!("{subnet}."))).unwrap();
        site
    }

    /// Where the site is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `path` in the site, making the folders it needs.
    pub fn write(&self, path: &str, text: &str) -> &SiteDir {
        write(self.path(), path, text);
        self
    }

    /// The sandbox's state folder, `.infra/sandbox` (made).
    pub fn state(&self) -> PathBuf {
        let state = self.path().join(".infra/sandbox");
        std::fs::create_dir_all(&state).unwrap();
        state
    }

    /// Writes `yaml` as the sandbox's secrets file (`.infra/sandbox/secrets.yaml`, 0600).
    pub fn secrets(&self, yaml: &str) {
        write_private(&self.state().join("secrets.yaml"), yaml);
    }

    /// `infra hosts ENV --out json` as name -> address, each address checked to be in `subnet`
    /// (`10.213.N`).
    pub fn hosts(&self, env: &str, subnet: &str) -> BTreeMap<String, String> {
        let hosts = infra(self.path(), &["hosts", env, "--out", "json"]);
        hosts.assert_code(0);
        let list: Vec<serde_json::Value> = serde_json::from_str(&hosts.stdout).unwrap();
        list.iter()
            .map(|h| {
                let name = h["name"].as_str().unwrap().to_string();
                let ip = h["address"].as_str().unwrap().to_string();
                assert!(ip.starts_with(&format!("{subnet}.")), "{name} at {ip}");
                (name, ip)
            })
            .collect()
    }

    /// Brings up sandbox hosts `hosts` (name, last byte of the address in `subnet`, e.g.
    /// `10.213.40`), their state in the site.
    pub fn up(&self, subnet: &str, hosts: &[(&str, u8)]) -> Sandbox {
        let pairs: Vec<(String, String)> = hosts
            .iter()
            .map(|(name, last)| (name.to_string(), format!("{subnet}.{last}")))
            .collect();
        Sandbox::up(&self.state(), &format!("{subnet}.0/24"), &pairs)
    }

    /// Brings up sandbox hosts at the addresses `ips` gives them (as `hosts` returns), in
    /// `subnet`, their state in the site.
    pub fn up_at(&self, subnet: &str, ips: &BTreeMap<String, String>) -> Sandbox {
        let pairs: Vec<(String, String)> =
            ips.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
        Sandbox::up(&self.state(), &format!("{subnet}.0/24"), &pairs)
    }

    /// `infra ARGS` in the site.
    pub fn infra(&self, args: &[&str]) -> Run {
        infra(self.path(), args)
    }
}

/// A `hosts:` section: (name, roles, last byte of the address in `subnet`) a host.
pub fn hosts_yaml(subnet: &str, hosts: &[(&str, &str, u8)]) -> String {
    let mut text = String::from("hosts:\n");
    for (name, roles, last) in hosts {
        text.push_str(&format!(
            "  {name}: {{roles: [{roles}], address: {subnet}.{last}}}\n"
        ));
    }
    text
}

/// Replaces the first `from` with `to` in `file` (relative to `dir`); panics when absent, so a
/// test never silently edits nothing.
pub fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The line number (1-based) of the first line of `file` containing `needle`.
pub fn line_of(dir: &Path, file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{file} has no line with {needle:?}"))
        + 1
}

/// Every secret name the site's roles declare.
pub fn secret_names(dir: &Path) -> Vec<String> {
    let (site, _) = infra_core::site::Site::load(dir).unwrap();
    let mut names: Vec<String> = site
        .roles
        .values()
        .flat_map(|r| r.value.secrets.iter().map(|s| s.value.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `file:line:col` (1-based) of the first occurrence of `needle` in `file`.
pub fn position_of(dir: &Path, file: &str, needle: &str) -> String {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    for (i, l) in text.lines().enumerate() {
        if let Some(byte) = l.find(needle) {
            return format!("{file}:{}:{}", i + 1, l[..byte].chars().count() + 1);
        }
    }
    panic!("{file} has no {needle:?}")
}

/// Sandbox hosts for end-to-end tests (tests/sandbox/sandbox.sh), torn down on drop.
pub struct Sandbox {
    pub state: PathBuf,
}

fn sandbox_sh() -> PathBuf {
    repo().join("tests/sandbox/sandbox.sh")
}

/// End-to-end tests need root (namespaces); they fail, never skip, without it.
pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "end-to-end tests run sandbox hosts in Linux namespaces and need root: run them as root (CI does)"
    );
}

impl Sandbox {
    /// Brings up `hosts` (name, ip) in `subnet` (e.g. `10.213.40.0/24`) with state in `state`.
    pub fn up(state: &Path, subnet: &str, hosts: &[(String, String)]) -> Sandbox {
        require_root();
        let sb = Sandbox {
            state: state.to_path_buf(),
        };
        let mut cmd = Command::new(sandbox_sh());
        cmd.arg("up").arg(state).env("INFRA_SANDBOX_SUBNET", subnet);
        for (name, ip) in hosts {
            cmd.arg(format!("{name}={ip}"));
        }
        let out = cmd.output().expect("run sandbox.sh up");
        assert!(
            out.status.success(),
            "sandbox.sh up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sb
    }

    /// The head of a static inventory `env` (domain `domain`, internal domain `lab.internal`)
    /// whose hosts are reached as root with this sandbox's key; its `ssh:` section is last, open
    /// for more `  key: value` lines.
    pub fn inventory(&self, env: &str, domain: &str) -> String {
        format!(
            "environment: {env}\ndomain: {domain}\ninternal_domain: lab.internal\n\
             provider: {{type: static}}\n\
             ssh:\n  user: root\n  identity_file: {}/id_ed25519\n",
            self.state.display()
        )
    }

    /// Runs `sh -c script` inside `host`.
    pub fn exec(&self, host: &str, script: &str) -> Run {
        sandbox_exec(&self.state, host, script)
    }

    pub fn run(&self, args: &[&str]) {
        let out = Command::new(sandbox_sh())
            .args(args)
            .output()
            .expect("run sandbox.sh");
        assert!(
            out.status.success(),
            "sandbox.sh {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new(sandbox_sh())
            .arg("down")
            .arg(&self.state)
            .output();
    }
}

/// Runs `sh -c script` inside sandbox host `host` of the sandbox whose state is `state`.
pub fn sandbox_exec(state: &Path, host: &str, script: &str) -> Run {
    let out = Command::new(sandbox_sh())
        .arg("exec")
        .arg(state)
        .arg(host)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("run sandbox.sh exec");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether `host` of the sandbox whose state is `state` accepts SSH from the controller
/// directly (not through the jump host).
pub fn direct_ssh_works(state: &Path, host: &str) -> bool {
    Command::new("ssh")
        .arg("-F")
        .arg(state.join("ssh_config"))
        .args(["-o", "ConnectTimeout=3", host, "true"])
        .output()
        .expect("run ssh")
        .status
        .success()
}

/// A loopback port nothing listens on (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The provider program, built next to the infra binary by `cargo test --workspace`.
pub fn provider() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_infra")).with_file_name("infra-aws");
    assert!(
        p.is_file(),
        "{} is missing: build the workspace (`cargo build --workspace`; `cargo test --workspace` does)",
        p.display()
    );
    p
}

/// The environment that points infra (and boto3) at a moto server on `port`, and nowhere else.
pub fn aws_env(port: u16) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_MAX_ATTEMPTS", "1".into()),
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ("INFRA_AWS_PROVIDER", provider().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `infra ARGS` in `dir` with `env` added (pairs of owned strings).
pub fn infra_with(dir: &Path, args: &[&str], env: &[(String, String)]) -> Run {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    infra_env(dir, args, &pairs)
}

/// A private mount namespace with a tmpfs over /srv and one over /var/lib, kept alive by a
/// sleeping process (killed on drop, which takes the tmpfs with it): the binary's runs write
/// there and nowhere else. As root it is a plain mount namespace; otherwise a user namespace
/// mapping the user to root.
pub struct MountNamespace {
    holder: std::process::Child,
    /// `nsenter ... --`: what runs a command inside.
    pub prefix: Vec<String>,
}

impl MountNamespace {
    pub fn new() -> MountNamespace {
        use std::io::{BufRead, BufReader};
        let root = Command::new("id").arg("-u").output().expect("id -u").stdout == b"0\n";
        let mut cmd = Command::new("unshare");
        if !root {
            cmd.args(["--user", "--map-root-user"]);
        }
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs tmpfs /srv && mount -t tmpfs tmpfs /var/lib && echo ready && exec sleep 900")
            .stdout(std::process::Stdio::piped());
        let mut holder = cmd.spawn().expect("run unshare (util-linux)");
        let mut line = String::new();
        let _ = BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = holder.kill();
            let _ = holder.wait();
            panic!("cannot make a private mount namespace with tmpfs over /srv and /var/lib: run the test as root, or enable unprivileged user namespaces");
        }
        let pid = holder.id().to_string();
        let mut prefix: Vec<String> = ["nsenter", "-t", &pid, "-m"].map(String::from).into();
        if !root {
            prefix.extend(["-U", "--preserve-credentials"].map(String::from));
        }
        prefix.push("--".into());
        MountNamespace { holder, prefix }
    }

    /// `infra -C dir ARGS` inside, with `env` added.
    pub fn infra_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let prefix: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        infra_through(&prefix, dir, args, env)
    }

    /// `infra -C dir ARGS` inside.
    pub fn infra(&self, dir: &Path, args: &[&str]) -> Run {
        self.infra_env(dir, args, &[])
    }

    /// A command to run `program` inside (arguments to be added).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(&self.prefix[0]);
        c.args(&self.prefix[1..]).arg(program);
        c
    }

    /// `sh -c script` inside: its stdout (stderr in the panic if it fails).
    pub fn sh(&self, script: &str) -> String {
        let out = self
            .command("sh")
            .args(["-c", script])
            .output()
            .expect("run nsenter");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for MountNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The git repository role app deploys in the sandbox inventories (tests/sandbox/demo-repo.sh):
/// made before the sandbox hosts are up, which see it through their overlay root. Its commit.
pub fn demo_repo() -> String {
    let out = Command::new(repo().join("tests/sandbox/demo-repo.sh"))
        .output()
        .expect("run tests/sandbox/demo-repo.sh");
    assert!(
        out.status.success(),
        "tests/sandbox/demo-repo.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `sh -ec script` here, which must succeed: its stdout.
pub fn sh(script: &str) -> String {
    run_ok(Command::new("sh").args(["-ec", script]))
}

/// Runs `cmd`, which must succeed: its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `'text'` for sh (the test's own scripts on the hosts).
pub fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// 32 hex digits from /dev/urandom.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ed25519 key pair without a passphrase: `path` and `path`.pub.
pub fn keygen(path: &Path, comment: &str) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    );
}

/// `git -C dir ARGS` as `author` (name, email), no global config: its stdout.
pub fn git_as(author: (&str, &str), dir: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", author.0)
            .env("GIT_AUTHOR_EMAIL", author.1)
            .env("GIT_COMMITTER_NAME", author.0)
            .env("GIT_COMMITTER_EMAIL", author.1)
            .env("GIT_CONFIG_GLOBAL", "/dev/null"),
    )
}

/// Fails, naming `what` and .ci/run, unless /usr/bin/python3 imports `modules` (e.g.
/// `django, celery`): the sandbox hosts share this machine's packages.
pub fn require_python(modules: &str, what: &str) {
    let python = Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .expect("run /usr/bin/python3");
    assert!(
        python.status.success(),
        "{what} is not installed (the sandbox hosts share this machine's packages): run .ci/run\n{}",
        String::from_utf8_lossy(&python.stderr)
    );
}

/// The wheelhouse .ci/run fills (INFRA_CI_WHEELHOUSE, else /opt/infra-ci/wheelhouse); the
/// test fails, saying what fills it, when it holds no `prefix`*.whl.
pub fn wheelhouse(prefix: &str) -> PathBuf {
    let wheelhouse = PathBuf::from(
        std::env::var("INFRA_CI_WHEELHOUSE").unwrap_or_else(|_| "/opt/infra-ci/wheelhouse".into()),
    );
    assert!(
        !wheels(&wheelhouse, prefix).is_empty(),
        "the wheelhouse {} has no {prefix}*.whl: run .ci/run (its wheelhouse step runs `pip download --only-binary=:all: -d {} python-dotenv==1.0.1`)",
        wheelhouse.display(),
        wheelhouse.display()
    );
    wheelhouse
}

/// The files of `wheelhouse` whose names start with `prefix`.
fn wheels(wheelhouse: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(wheelhouse)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// An example app's work tree at `dir`: `app` (a folder of the repository) with the `prefix`
/// wheels of `wheelhouse` in its wheelhouse/.
pub fn app_tree(app: &str, dir: &Path, wheelhouse: &Path, prefix: &str) {
    copy_tree(&repo().join(app), dir);
    let wheelhouse_dir = dir.join("wheelhouse");
    std::fs::create_dir_all(&wheelhouse_dir).unwrap();
    for wheel in wheels(wheelhouse, prefix) {
        std::fs::copy(&wheel, wheelhouse_dir.join(wheel.file_name().unwrap())).unwrap();
    }
}

/// An app served by gitolite on a sandbox's source host (tests/sandbox/gitolite.sh): its admin
/// and deploy keys and its work tree (`APP`), in a temp dir.
pub struct Gitolite {
    work: tempfile::TempDir,
    app: String,
}

impl Gitolite {
    /// Makes the admin key (`admin`) and the deploy key (`deploy`, comment `APP-deploy`).
    pub fn new(app: &str) -> Gitolite {
        let work = tempfile::tempdir().unwrap();
        keygen(&work.path().join("admin"), "gitolite-admin");
        keygen(&work.path().join("deploy"), &format!("{app}-deploy"));
        Gitolite {
            work,
            app: app.to_string(),
        }
    }

    /// Where the app's work tree goes: `APP` in the temp dir.
    pub fn tree(&self) -> PathBuf {
        self.work.path().join(&self.app)
    }

    /// The secrets carrying the keys, as YAML lines: `gitolite_admin_pubkey` and `deploy_key`.
    pub fn secrets_yaml(&self) -> String {
        let admin = self.work.path().join("admin.pub");
        let pubkey = std::fs::read_to_string(admin).unwrap();
        let deploy_key = std::fs::read_to_string(self.work.path().join("deploy")).unwrap();
        let mut yaml = format!("gitolite_admin_pubkey: \"{}\"\n", pubkey.trim());
        yaml.push_str("deploy_key: |\n");
        for line in deploy_key.lines() {
            yaml.push_str(&format!("  {line}\n"));
        }
        yaml
    }

    /// The GIT_SSH_COMMAND with which the controller reaches gitolite as its admin.
    pub fn ssh_command(&self) -> String {
        run_ok(
            Command::new(gitolite_sh())
                .arg("ssh-command")
                .arg(self.work.path().join("admin")),
        )
        .trim()
        .to_string()
    }

    /// Makes the app's repository on the gitolite at `source` (the deploy key a reader) and
    /// pushes the work tree to it.
    pub fn publish(&self, source: &str) {
        let admin = self.work.path().join("admin");
        run_ok(
            Command::new(gitolite_sh())
                .arg("repo")
                .arg(&admin)
                .args([source, &self.app, "deploy"])
                .arg(self.work.path().join("deploy.pub")),
        );
        run_ok(
            Command::new(gitolite_sh())
                .arg("push")
                .arg(&admin)
                .args([source, &self.app])
                .arg(self.tree()),
        );
    }
}

/// tests/sandbox/gitolite.sh.
fn gitolite_sh() -> PathBuf {
    repo().join("tests/sandbox/gitolite.sh")
}

/// A secrets file for the repository's roles (tests/sandbox/make-secrets.sh, its CA and keys
/// kept in `state`): its YAML text.
pub fn make_secrets(state: &Path) -> String {
    let out = Command::new(repo().join("tests/sandbox/make-secrets.sh"))
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-secrets: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An example's sandbox inventory up, its app served by gitolite on the host `source` and its
/// database (named as the app) on the host `db`. Fields drop in order: the hosts go down while
/// their state (inside the site) still exists.
pub struct AppLab {
    pub sandbox: Sandbox,
    pub site: SiteDir,
    pub gitolite: Gitolite,
    pub ips: BTreeMap<String, String>,
    /// How the controller reaches gitolite (the admin key).
    pub git_ssh: String,
}

impl AppLab {
    /// Brings up the hosts of `site`'s sandbox inventory, each checked to be in `subnet`.
    pub fn up(site: SiteDir, gitolite: Gitolite, subnet: &str) -> AppLab {
        let ips = site.hosts("sandbox", subnet);
        let sandbox = site.up_at(subnet, &ips);
        let git_ssh = gitolite.ssh_command();
        AppLab {
            sandbox,
            site,
            gitolite,
            ips,
            git_ssh,
        }
    }

    /// `infra ARGS` in the site, reaching gitolite as its admin.
    pub fn infra(&self, args: &[&str]) -> Run {
        infra_env(
            self.site.path(),
            args,
            &[("GIT_SSH_COMMAND", self.git_ssh.as_str())],
        )
    }

    /// The address of `host`.
    pub fn ip(&self, host: &str) -> &str {
        &self.ips[host]
    }

    /// Runs `sh -c script` on `host`.
    pub fn exec(&self, host: &str, script: &str) -> Run {
        self.sandbox.exec(host, script)
    }

    /// One value from the app's database, as postgres on the db host.
    pub fn sql(&self, query: &str) -> String {
        let psql = format!(
            "runuser -u postgres -- psql -X -q -t -A -d {} -c {}",
            self.gitolite.app,
            q(query)
        );
        let r = self.exec("db", &psql);
        assert_eq!(r.code, 0, "psql {query}: {}", r.stderr);
        r.stdout.trim().to_string()
    }

    /// `supervisorctl status` on `host`.
    pub fn supervisor(&self, host: &str) -> String {
        self.exec(host, "supervisorctl status").stdout
    }

    /// Applies the source host, then makes the app's repository on its gitolite (the deploy
    /// key a reader) and pushes the work tree.
    pub fn serve_repository(&self) {
        self.infra(&["apply", "sandbox", "--yes", "--limit", "source"])
            .assert_code(0);
        self.gitolite.publish(self.ip("source"));
    }
}
