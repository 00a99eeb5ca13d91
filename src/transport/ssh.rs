//! SSH transport: one multiplexed OpenSSH connection per host, from a generated ssh config
//! (jump host, known_hosts per environment, the user's own config included last), closed at
//! the end of the run or, with `ssh.control_persist`, kept for the next run.

use crate::transport::{stream, BoxFuture, Login, Output, Transport, TransportError, WRAPPER};
use infra_core::environment::Environment;
use infra_core::model::{Connection as HostConnection, HostKeys};
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a host could not be reached over SSH, or the run's ssh settings could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("host {host} ({address}): its SSH host key changed since it was recorded in {known_hosts}; nothing was done on it")]
    HostKeyChanged {
        host: String,
        address: String,
        known_hosts: PathBuf,
    },
    #[error("host {host} ({address}): its SSH host key is not the one its console output showed (pinned in {known_hosts}); nothing was done on it")]
    HostKeyNotPinned {
        host: String,
        address: String,
        known_hosts: PathBuf,
    },
    #[error("host {host} ({address}): its SSH host key is not in {known_hosts}, and only known keys are accepted (ssh.host_keys: strict); nothing was done on it")]
    HostKeyUnknown {
        host: String,
        address: String,
        known_hosts: PathBuf,
    },
    #[error("host {host} ({address}): cannot connect over SSH: {message}")]
    Connect {
        host: String,
        address: String,
        message: String,
    },
    #[error("cannot write the ssh config {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem}; infra keeps its SSH control sockets (ssh.control_persist) there and uses none it does not own")]
    ControlDir { path: PathBuf, problem: String },
    #[error("cannot write {value:?} into the ssh config: it holds a newline, a control character or `\"`")]
    Unwritable { value: String },
}

impl SshError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            SshError::HostKeyChanged { address, known_hosts, .. } => Some(format!(
                "if the host was rebuilt, forget its old key with `ssh-keygen -R {address} -f {}` and run again; otherwise someone may be intercepting the connection",
                known_hosts.display()
            )),
            SshError::HostKeyNotPinned { .. } => Some("infra launched this machine and read its keys from its console (GetConsoleOutput): another machine answers at its address, or someone is intercepting the connection; check the instance and its console output".into()),
            SshError::HostKeyUnknown { known_hosts, .. } => Some(format!(
                "check the host's key out of band (its console, or its administrator), then add it to {}; or set `ssh.host_keys: pinned` to accept a static host's key on first use",
                known_hosts.display()
            )),
            SshError::Connect { .. } => Some("check the address, the ssh user and key in the inventory, and that the jump host is reachable".into()),
            SshError::ControlDir { path, .. } => Some(format!(
                "remove {} (infra makes it again, mode 0700), or set INFRA_SSH_CONTROL_DIR to a private directory",
                path.display()
            )),
            _ => None,
        }
    }
}

/// The ssh settings of an environment, written as one ssh config file for the run.
pub struct SshConfig {
    /// Holds the generated config and the control sockets; removed at the end of the run.
    dir: tempfile::TempDir,
    pub known_hosts: PathBuf,
    env: String,
    /// `ssh.control_persist`: where kept connections live, and for how long.
    persist: Option<Persist>,
    /// Per host: a digest of everything its connection depends on (its config block, its
    /// jump host's, the user's config), which names its kept control socket.
    keys: BTreeMap<String, String>,
    /// `ssh.host_keys: strict`: every host needs a known key.
    strict_all: bool,
    /// Hosts whose keys were pinned for this run (from their console): only those keys go.
    pinned: std::collections::BTreeSet<String>,
    /// `ssh.port`, for the name of a host in known_hosts.
    port: Option<u16>,
    /// `secrets.env_prefix`: variables the kept master must not inherit (see `environ`).
    secret_prefix: String,
}

/// The run's own folder under `base`, `infra-ssh-PID-XXXXXX`, mode 0700 from its creation (it
/// holds the control sockets); first, the folders of runs of ours that were killed are removed.
fn run_dir(base: &Path) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    remove_stale_run_dirs(base);
    tempfile::Builder::new()
        .prefix(&format!("infra-ssh-{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
}

/// Removes `infra-ssh-PID-*` folders under `base` that this user owns and whose run is gone
/// (no process PID). A folder whose PID lives (maybe reused) is left alone; errors are ignored,
/// as this is tidying only.
fn remove_stale_run_dirs(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("infra-ssh-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Connections kept between runs.
struct Persist {
    dir: PathBuf,
    seconds: u64,
}

impl SshConfig {
    pub fn new(env: &Environment) -> Result<SshConfig, SshError> {
        let inv = env.inventory;
        let root = &env.site.root;
        let expand = |p: &str| infra_core::secrets::expand_path(p, root);
        let known_hosts = expand(
            inv.ssh
                .known_hosts_file
                .as_deref()
                .unwrap_or(&format!(".infra/known_hosts/{}", env.name)),
        );
        let dir = run_dir(Path::new("/tmp")).map_err(|source| SshError::Config {
            path: PathBuf::from("/tmp"),
            source,
        })?;
        if let Some(parent) = known_hosts.parent() {
            std::fs::create_dir_all(parent).map_err(|source| SshError::Config {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let known_hosts = std::path::absolute(&known_hosts).unwrap_or(known_hosts);
        // A `connection: local` host needs no ssh settings; when it is the jump host, infra
        // runs on the jump host itself and reaches the others directly.
        let jump = inv
            .ssh
            .jump_host
            .as_ref()
            .map(|j| j.value.clone())
            .filter(|j| inv.connection_of(j) == HostConnection::Ssh);
        let mut blocks = BTreeMap::new();
        for (name, host) in &env.hosts {
            if host.view.connection == HostConnection::Local {
                continue;
            }
            let address = host.view.address.clone().unwrap_or_else(|| name.clone());
            let hop = jump.as_deref().filter(|j| j != name);
            let text = host_block(env, name, &address, &known_hosts, hop)?;
            blocks.insert(name.clone(), text);
        }
        let user_config = match &inv.ssh.config_file {
            Some(c) => Some(expand(c)),
            None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/config")),
        };
        let include = match user_config.filter(|c| c.is_file()) {
            Some(c) => {
                let contents = std::fs::read(&c).unwrap_or_default();
                let path = word(&c.display().to_string())?.into_owned();
                (format!("\nInclude {path}\n"), contents)
            }
            None => (String::new(), Vec::new()),
        };
        let mut text = String::from("# Generated by infra for one run.\n");
        for block in blocks.values() {
            text.push_str(block);
        }
        text.push_str(&include.0);
        let persist = match inv.ssh.persist_seconds() {
            Some(seconds) => Some(Persist {
                dir: control_dir()?,
                seconds,
            }),
            None => None,
        };
        let keys = blocks
            .iter()
            .map(|(name, block)| {
                let mut h = Sha256::new();
                h.update(block);
                if let Some(j) = jump.as_ref().filter(|j| *j != name) {
                    h.update(blocks.get(j).map(String::as_str).unwrap_or(""));
                }
                h.update(&include.0);
                h.update(&include.1);
                let digest = h.finalize();
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                (name.clone(), hex)
            })
            .collect();
        let path = dir.path().join("config");
        std::fs::write(&path, text).map_err(|source| SshError::Config {
            path: path.clone(),
            source,
        })?;
        Ok(SshConfig {
            dir,
            known_hosts,
            env: env.name.clone(),
            persist,
            keys,
            secret_prefix: inv
                .secrets
                .env_prefix
                .clone()
                .unwrap_or_else(|| infra_core::secrets::DEFAULT_ENV_PREFIX.to_string()),
            strict_all: inv.ssh.host_keys == HostKeys::Strict,
            pinned: Default::default(),
            port: inv.ssh.port,
        })
    }

    /// How known_hosts names `address`: `[address]:port` unless the port is 22.
    fn known_name(&self, address: &str) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{address}]:{p}"),
            _ => address.to_string(),
        }
    }

    /// Whether known_hosts has a key for `address`.
    pub fn knows(&self, address: &str) -> bool {
        self.known_hosts.is_file()
            && std::process::Command::new("ssh-keygen")
                .arg("-F")
                .arg(self.known_name(address))
                .arg("-f")
                .arg(&self.known_hosts)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Records `keys` (lines `TYPE BASE64`, as read out of band) as the only keys of `host` at
    /// `address`, replacing what known_hosts had for it; this run reaches it with strict checking.
    pub fn pin(&mut self, host: &str, address: &str, keys: &[String]) -> Result<(), SshError> {
        use std::io::Write as _;
        self.forget(address);
        let name = self.known_name(address);
        let mut text = String::new();
        for k in keys {
            let _ = writeln!(text, "{name} {k}");
        }
        let io = |source| SshError::Config {
            path: self.known_hosts.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.known_hosts)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        self.pinned.insert(host.to_string());
        Ok(())
    }

    /// Whether `host` is reached only with a key known beforehand.
    fn strict(&self, host: &str) -> bool {
        self.strict_all || self.pinned.contains(host)
    }

    /// Forgets the recorded host keys of `address` (a machine launched anew at it has new ones).
    pub fn forget(&self, address: &str) {
        if self.known_hosts.is_file() {
            let _ = std::process::Command::new("ssh-keygen")
                .arg("-R")
                .arg(self.known_name(address))
                .arg("-f")
                .arg(&self.known_hosts)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// A plain `ssh` to `host` with this run's settings, on a connection of its own (no
    /// multiplexing), that runs `remote` there: for a process whose life is tied to its
    /// channel, as the environment lock's holder is.
    pub fn command(&self, host: &str, remote: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("ssh");
        cmd.arg("-F")
            .arg(self.path())
            .args([
                "-T",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "ControlMaster=no",
                "-o",
                "ControlPath=none",
            ])
            .arg(alias(&self.env, host))
            .arg("--")
            .arg(remote);
        cmd
    }

    /// Opens the one connection this run uses for `host`, or, with `ssh.control_persist`,
    /// takes up the one an earlier run kept.
    pub async fn connect(&self, host: &str, address: &str) -> Result<Connection, SshError> {
        if let Some(p) = &self.persist {
            return self.connect_kept(p, host, address).await;
        }
        let mut b = SessionBuilder::default();
        b.config_file(self.path())
            .known_hosts_check(if self.strict(host) {
                KnownHosts::Strict
            } else {
                KnownHosts::Add
            })
            .user_known_hosts_file(&self.known_hosts)
            .control_directory(self.dir.path())
            // If infra dies without closing, the master goes away on its own soon after.
            .control_persist(openssh::ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(30).expect("30 > 0"),
            ))
            .connect_timeout(std::time::Duration::from_secs(15));
        match b.connect_mux(alias(&self.env, host)).await {
            Ok(session) => Ok(Connection::new(host, session, Login::New, false)),
            Err(e) => Err(self.connect_error(host, address, &error_text(&e))),
        }
    }

    /// The kept connection named by the host's settings if its master still answers, else a
    /// new master that outlives the run by `p.seconds` of idleness. One run at a time per
    /// socket (a lock file beside it), so two runs never start two masters for one host.
    async fn connect_kept(
        &self,
        p: &Persist,
        host: &str,
        address: &str,
    ) -> Result<Connection, SshError> {
        let key = self
            .keys
            .get(host)
            .cloned()
            .unwrap_or_else(|| host.to_string());
        let ctl = p.dir.join(&key);
        let lock_path = p.dir.join(format!("{key}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| SshError::Config {
                path: lock_path.clone(),
                source,
            })?;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(SshError::Config {
                        path: lock_path,
                        source,
                    })
                }
            }
        }
        if ctl.exists() {
            let session = Session::resume_mux(ctl.clone().into_boxed_path(), None);
            if session.check().await.is_ok() {
                return Ok(Connection::new(host, session, Login::Reused, true));
            }
            // Its master is gone (the idle time ran out, the host went away): a stale socket.
            let _ = session.detach();
            let _ = std::fs::remove_file(&ctl);
        }
        // ssh -E appends: only this launch's messages may explain its failure.
        let log = p.dir.join(format!("{key}.log"));
        let _ = std::fs::remove_file(&log);
        let mut master = tokio::process::Command::new("ssh");
        for name in crate::environ::without_secrets(&self.secret_prefix) {
            master.env_remove(name);
        }
        let status = master
            .arg("-F")
            .arg(self.path())
            .arg("-E")
            .arg(&log)
            .arg("-S")
            .arg(&ctl)
            .args([
                "-M",
                "-f",
                "-N",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
            ])
            .arg("-o")
            .arg(format!("ControlPersist={}", p.seconds))
            .arg("-o")
            .arg(if self.strict(host) {
                "StrictHostKeyChecking=yes"
            } else {
                "StrictHostKeyChecking=accept-new"
            })
            .arg(alias(&self.env, host))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status()
            .await;
        let failed = match status {
            Ok(s) if s.success() && ctl.exists() => None,
            Ok(s) => Some(std::fs::read_to_string(&log).unwrap_or_else(|_| format!("ssh {s}"))),
            Err(e) => Some(format!("cannot run ssh: {e}")),
        };
        if let Some(text) = failed {
            let _ = std::fs::remove_file(&log);
            return Err(self.connect_error(host, address, &text));
        }
        let session = Session::resume_mux(ctl.into_boxed_path(), None);
        Ok(Connection::new(host, session, Login::New, true))
    }

    fn connect_error(&self, host: &str, address: &str, text: &str) -> SshError {
        if text.contains("host key is known for") && text.contains("strict checking") {
            SshError::HostKeyUnknown {
                host: host.to_string(),
                address: address.to_string(),
                known_hosts: self.known_hosts.clone(),
            }
        } else if self.pinned.contains(host)
            && (text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                || text.contains("Host key verification failed"))
        {
            SshError::HostKeyNotPinned {
                host: host.to_string(),
                address: address.to_string(),
                known_hosts: self.known_hosts.clone(),
            }
        } else if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || text.contains("Host key verification failed")
        {
            SshError::HostKeyChanged {
                host: host.to_string(),
                address: address.to_string(),
                known_hosts: self.known_hosts.clone(),
            }
        } else {
            SshError::Connect {
                host: host.to_string(),
                address: address.to_string(),
                message: last_line(text),
            }
        }
    }
}

/// The ssh config block of one host: its address, the inventory's ssh settings, the run's
/// known_hosts file, and the jump host to go through, if any.
fn host_block(
    env: &Environment,
    name: &str,
    address: &str,
    known_hosts: &std::path::Path,
    jump: Option<&str>,
) -> Result<String, SshError> {
    let ssh = &env.inventory.ssh;
    let mut text = String::new();
    let _ = writeln!(text, "Host {}", word(&alias(&env.name, name))?);
    let _ = writeln!(text, "  HostName {}", word(address)?);
    if let Some(u) = &ssh.user {
        let _ = writeln!(text, "  User {}", word(u)?);
    }
    if let Some(p) = ssh.port {
        let _ = writeln!(text, "  Port {p}");
    }
    if let Some(id) = &ssh.identity_file {
        let id = infra_core::secrets::expand_path(id, &env.site.root);
        let id = word(&id.display().to_string())?.into_owned();
        let _ = writeln!(text, "  IdentityFile {id}\n  IdentitiesOnly yes");
    }
    let known = word(&known_hosts.display().to_string())?.into_owned();
    let _ = writeln!(text, "  UserKnownHostsFile {known}");
    let strict = if ssh.host_keys == HostKeys::Strict {
        "yes"
    } else {
        "accept-new"
    };
    let _ = writeln!(
        text,
        "  StrictHostKeyChecking {strict}\n  BatchMode yes\n  ServerAliveInterval 15"
    );
    for (k, v) in &ssh.options {
        let _ = writeln!(text, "  {} {}", word(k)?, word(v)?);
    }
    // After the site's options (ssh takes a setting's first value): a dead link ends the
    // connection after 3 unanswered probes, 45 s.
    let _ = writeln!(text, "  ServerAliveCountMax 3");
    if let Some(j) = jump {
        let _ = writeln!(text, "  ProxyJump {}", word(&alias(&env.name, j))?);
    }
    Ok(text)
}

/// A value as ssh_config reads it back whole: in double quotes when it holds whitespace; one
/// it cannot hold (a newline would start a directive of its own) is refused.
fn word(value: &str) -> Result<std::borrow::Cow<'_, str>, SshError> {
    if value.chars().any(|c| c.is_control() || c == '"') {
        return Err(SshError::Unwritable {
            value: value.to_string(),
        });
    }
    Ok(if value.chars().any(char::is_whitespace) {
        format!("\"{value}\"").into()
    } else {
        value.into()
    })
}

/// Where kept control sockets live: `$INFRA_SSH_CONTROL_DIR`, or `/tmp/infra-cm-<uid>`.
/// Made mode 0700; refused unless it is a real directory of this user's that no one else can
/// enter (a socket there is a logged-in root shell on a host).
fn control_dir() -> Result<PathBuf, SshError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let dir = std::env::var_os("INFRA_SSH_CONTROL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/infra-cm-{uid}")));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(SshError::Config { path: dir, source }),
    }
    let problem = |problem: &str| SshError::ControlDir {
        path: dir.clone(),
        problem: problem.to_string(),
    };
    let meta = std::fs::symlink_metadata(&dir).map_err(|source| SshError::Config {
        path: dir.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(problem("not a directory"));
    }
    if meta.uid() != uid {
        return Err(problem("owned by another user"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(problem("others can enter it (its mode is not 0700)"));
    }
    // Unix socket paths are short (108 bytes): the name is 24 characters.
    if dir.as_os_str().len() > 80 {
        return Err(problem("too long a path for a unix socket inside it"));
    }
    Ok(dir)
}

fn alias(env: &str, host: &str) -> String {
    format!("infra-{env}-{host}")
}

fn error_text(e: &openssh::Error) -> String {
    let mut text = format!("{e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, "\n{s}");
        source = s.source();
    }
    text
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string()
}

/// One open connection to a host.
pub struct Connection {
    host: String,
    session: Arc<Session>,
    /// A new login, or a connection an earlier run kept.
    login: Login,
    /// Left open at the end of the run (`ssh.control_persist`).
    kept: bool,
    /// A session open while the run holds the connection (see [`Transport::hold`]).
    holder: std::sync::Mutex<Option<openssh::Child<Arc<Session>>>>,
}

impl Connection {
    fn new(host: &str, session: Session, login: Login, kept: bool) -> Connection {
        Connection {
            host: host.to_string(),
            session: Arc::new(session),
            login,
            kept,
            holder: std::sync::Mutex::new(None),
        }
    }

    fn run_error(&self, what: &str, message: String) -> TransportError {
        TransportError::Run {
            host: self.host.clone(),
            what: what.to_string(),
            message,
        }
    }

    /// Runs `script` on the host through [`WRAPPER`], calling `on_line` for each stdout line
    /// as it arrives.
    async fn run_script(
        &self,
        what: &str,
        script: &str,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Output, TransportError> {
        let err = |message: String| self.run_error(what, message);
        let mut child = self
            .session
            .command("sh")
            .arg("-c")
            .arg(WRAPPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| err(error_text(&e)))?;
        let stdin = child.stdin().take().ok_or_else(|| err("no stdin".into()))?;
        let stdout = child
            .stdout()
            .take()
            .ok_or_else(|| err("no stdout".into()))?;
        let stderr = child
            .stderr()
            .take()
            .ok_or_else(|| err("no stderr".into()))?;
        let (out, err_text) = stream(stdin, stdout, stderr, script, on_line)
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = child.wait().await.map_err(|e| err(error_text(&e)))?;
        Ok(Output {
            code: status.code(),
            stdout: out,
            stderr: err_text,
        })
    }

    /// Runs a script that changes nothing on the host: no temp file, no crash watchdog.
    async fn read_script(&self, what: &str, script: &str) -> Result<Output, TransportError> {
        let out = self
            .session
            .command("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| self.run_error(what, error_text(&e)))?;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl Transport for Connection {
    fn login(&self) -> Login {
        self.login
    }

    fn run<'a>(
        &'a self,
        what: &'a str,
        script: &'a str,
        on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(self.run_script(what, script, on_line))
    }

    fn read<'a>(
        &'a self,
        what: &'a str,
        script: &'a str,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(self.read_script(what, script))
    }

    /// Ends the connection, or leaves a kept one (`ssh.control_persist`) for the next run:
    /// its master exits by itself once idle that long.
    /// One session left open: the master counts its idle time (after which it exits, so a
    /// killed run leaves no master behind) only while no session is open. The holder reads its
    /// stdin until the run closes the connection or ends, killed or not (its channel closes).
    fn hold(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let child = Session::to_raw_command(self.session.clone(), "exec cat > /dev/null")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .await
                .ok();
            if let Ok(mut h) = self.holder.lock() {
                *h = child;
            }
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Connection {
                session,
                holder,
                kept,
                ..
            } = *self;
            let holder = holder.into_inner().ok().flatten();
            if let Some(h) = holder {
                // Its stdin closed, the holder ends: the session closes with it.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), h.wait()).await;
            }
            let Ok(session) = Arc::try_unwrap(session) else {
                return;
            };
            if kept {
                let _ = session.detach();
            } else {
                let _ = session.close().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_values_are_quoted_or_refused() {
        assert_eq!(super::word("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(super::word("/home/a b/key").unwrap(), "\"/home/a b/key\"");
        assert!(super::word("x\nProxyCommand y").is_err());
        assert!(super::word("a\"b").is_err());
    }

    #[test]
    fn the_run_dir_is_private_and_killed_runs_dirs_are_removed() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        // PIDs never go past 2^22: this run is gone.
        let stale = base.path().join("infra-ssh-4194305-abcdef");
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("config"), "x").unwrap();
        let alive = base
            .path()
            .join(format!("infra-ssh-{}-zzzzzz", std::process::id()));
        std::fs::create_dir(&alive).unwrap();
        let other = base.path().join("infra-ssh-old");
        std::fs::create_dir(&other).unwrap();
        let dir = super::run_dir(base.path()).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(!stale.exists() && alive.exists() && other.exists());
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            name.starts_with(&format!("infra-ssh-{}-", std::process::id())),
            "{name}"
        );
    }

    use super::SshConfig;
    use infra_core::environment::Environment;
    use infra_core::site::Site;

    /// The ssh config written for `inventory` (hosts all hold role `r`).
    fn config(inventory: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("roles")).unwrap();
        std::fs::create_dir_all(dir.path().join("inventories")).unwrap();
        std::fs::write(dir.path().join("roles/r.yaml"), "name: r\n").unwrap();
        std::fs::write(dir.path().join("inventories/lab.yaml"), inventory).unwrap();
        let (site, diags) = Site::load(dir.path()).unwrap();
        assert!(diags.is_empty(), "{diags:?}");
        let env = Environment::resolve(&site, "lab", &[]).unwrap();
        let ssh = SshConfig::new(&env).unwrap();
        std::fs::read_to_string(ssh.path()).unwrap()
    }

    const HEAD: &str = "environment: lab\ndomain: e.org\ninternal_domain: lab.i\nprovider: {type: static}\nssh: {jump_host: gw}\n";

    #[test]
    fn hosts_behind_the_jump_host_go_through_it() {
        let text = config(&format!(
            "{HEAD}hosts:\n  gw: {{roles: [r], address: 192.0.2.1}}\n  web: {{roles: [r], address: 10.0.0.2}}\n"
        ));
        assert!(text.contains("Host infra-lab-gw\n"), "{text}");
        assert!(text.contains("ProxyJump infra-lab-gw\n"), "{text}");
    }

    #[test]
    fn a_local_host_gets_no_block_and_a_local_jump_host_is_no_hop() {
        let text = config(&format!(
            "{HEAD}hosts:\n  gw: {{roles: [r], connection: local}}\n  web: {{roles: [r], address: 10.0.0.2}}\n"
        ));
        assert!(!text.contains("infra-lab-gw"), "{text}");
        assert!(
            text.contains("Host infra-lab-web\n  HostName 10.0.0.2\n"),
            "{text}"
        );
        assert!(!text.contains("ProxyJump"), "{text}");
    }
}
