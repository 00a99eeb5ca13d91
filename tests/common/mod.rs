//! Shared helpers for the integration tests: run the built `infra`, copy the site, edit it.
#![allow(dead_code)]

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

/// A copy of the repository's site (roles, templates, inventories) in a temp dir.
pub fn site_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["roles", "templates", "inventories"] {
        copy_dir(&repo().join(sub), &dir.path().join(sub));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
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
