//! The transport seam: how the engine runs a generated script on a host. [`Transport`] is the
//! few primitives the engine needs; the SSH connection (`ssh`) and the machine infra runs
//! on (`local`, `connection: local`) implement it, and [`Transports`] opens the right
//! one for each host of a run.

pub mod local;
pub mod ssh;

use infra_core::environment::Environment;
use infra_core::model::Connection;
use local::Local;
use ssh::{SshConfig, SshError};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// A future a transport returns: boxed, so hosts of both kinds sit side by side in one run.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a script printed and how it ended.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How a run reached a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// A new SSH login.
    New,
    /// A connection an earlier run kept open (`ssh.control_persist`).
    Reused,
    /// No login: the host is the machine infra runs on (`connection: local`).
    Local,
}

/// Why a host could not be reached or a script could not run on it.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The host could not be reached over SSH (its hint says what to do).
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// A script could not be started, fed or read, or it failed.
    #[error("host {host}: {what} failed: {message}")]
    Run {
        host: String,
        what: String,
        message: String,
    },
}

impl TransportError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            TransportError::Ssh(e) => e.hint(),
            TransportError::Run { .. } => None,
        }
    }

    /// The host did not answer, but may yet (a machine still booting): worth another try.
    pub fn may_come_up(&self) -> bool {
        matches!(self, TransportError::Ssh(SshError::Connect { .. }))
    }
}

/// One open way to run scripts on a host.
pub trait Transport: Send + Sync {
    /// How this run reached the host.
    fn login(&self) -> Login;

    /// Runs `script` as a change to the host (from a private temp file, stopped if infra goes
    /// away), calling `on_line` for each line of its stdout as it arrives.
    fn run<'a>(
        &'a self,
        what: &'a str,
        script: &'a str,
        on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Output, TransportError>>;

    /// Runs a script that changes nothing on the host and returns its whole output.
    fn read<'a>(
        &'a self,
        what: &'a str,
        script: &'a str,
    ) -> BoxFuture<'a, Result<Output, TransportError>>;

    /// Keeps the connection up while the host waits between commands (its wave, the once
    /// commands, earlier batches), however long that is; until `close` or the end of infra.
    fn hold(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Ends the connection (or leaves it for the next run, as its settings say).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// How this run reaches each host: the `connection: local` one on this machine, the others
/// over SSH (the ssh config is only written when some selected host needs it).
pub struct Transports {
    ssh: Option<SshConfig>,
    local: BTreeSet<String>,
}

impl Transports {
    /// The transports for `hosts`, the names of the hosts this run will reach.
    pub fn new<'h>(
        env: &Environment,
        hosts: impl IntoIterator<Item = &'h str>,
    ) -> Result<Transports, SshError> {
        let (local, ssh): (BTreeSet<String>, BTreeSet<String>) = hosts
            .into_iter()
            .map(str::to_string)
            .partition(|h| env.inventory.connection_of(h) == Connection::Local);
        let ssh = if ssh.is_empty() {
            None
        } else {
            Some(SshConfig::new(env)?)
        };
        Ok(Transports { ssh, local })
    }

    /// Opens the one transport this run uses for `host` (`address` is where SSH reaches it).
    pub async fn connect(
        &self,
        host: &str,
        address: &str,
    ) -> Result<Box<dyn Transport>, TransportError> {
        if self.local.contains(host) {
            return Ok(Box::new(Local::new(host)));
        }
        match &self.ssh {
            Some(ssh) => Ok(Box::new(ssh.connect(host, address).await?)),
            None => Err(TransportError::Run {
                host: host.to_string(),
                what: "connecting".into(),
                message: "no ssh settings were prepared for it".into(),
            }),
        }
    }

    /// Whether the environment's known_hosts has a key for `address`.
    pub fn knows(&self, address: &str) -> bool {
        self.ssh.as_ref().is_some_and(|s| s.knows(address))
    }

    /// Pins `keys` (read out of band) as the only SSH host keys of `host` at `address`.
    pub fn pin(&mut self, host: &str, address: &str, keys: &[String]) -> Result<(), SshError> {
        match &mut self.ssh {
            Some(ssh) => ssh.pin(host, address, keys),
            None => Ok(()),
        }
    }

    /// Forgets the recorded SSH host keys of `address` (a machine launched anew at it).
    pub fn forget(&self, address: &str) {
        if let Some(ssh) = &self.ssh {
            ssh.forget(address);
        }
    }
}

/// What runs every changing script, on whichever machine: the script arrives length-prefixed
/// on stdin, runs from a copy in the root-only state dir (it may hold secrets; removed at the
/// end, and a killed run's copy by the next run) in a session of its own. A watcher reads the
/// controller's heartbeat (a byte every [`HEARTBEAT`]) from the rest of stdin: when stdin
/// closes (infra died, the connection dropped) or stays silent for 20 s (the network went
/// away), it ends the script's whole session: TERM, then KILL 3 s later, every process whose
/// session is the script's (found in /proc: `timeout` puts commands in process groups of their
/// own, so killing the script's group missed them). Daemons a step started have sessions of
/// their own and live on.
pub const WRAPPER: &str = r#"set -u
read -r n || exit 97
S=${INFRA_STATE_DIR:-/var/lib/infra}
umask 077
{ mkdir -p "$S/scripts" && chmod 700 "$S" "$S/scripts"; } 2>/dev/null || { printf '@@infra\tfatal\tcannot create %s\n' "$S/scripts"; exit 97; }
for o in "$S"/scripts/*.sh; do p=${o##*/}; p=${p%.sh}; [ -e "$o" ] && ! kill -0 "$p" 2>/dev/null && rm -f "$o"; done
f="$S/scripts/$$.sh"
head -c "$n" > "$f"
# A background list gets /dev/null as stdin: keep the connection's stdin on fd 3 for the watcher.
exec 3<&0
setsid sh "$f" < /dev/null 3<&- &
pid=$!
sess() {
  for p in /proc/[0-9]*; do
    read -r st < "$p/stat" || continue
    st=${st##*) }; set -- $st
    [ "$4" = "$pid" ] && kill -"$sig" "${p#/proc/}"
  done
}
(
  while [ "$(timeout 20 dd bs=1 count=1 2>/dev/null <&3 | wc -c)" = 1 ]; do :; done
  # The wrapper stops this watcher once the script is gone, which the first TERM may do
  # mid-sweep: from here on it finishes its work whatever happens.
  trap '' TERM HUP INT
  sig=TERM sess; sleep 3; sig=KILL sess; sleep 1; sig=KILL sess
) > /dev/null 2>&1 &
w=$!
exec 3<&-
wait "$pid"; rc=$?
rm -f "$f"
kill "$w" 2>/dev/null
exit "$rc"
"#;

/// How often the controller tells a running script it is still there (the [`WRAPPER`] ends a
/// script that heard nothing for 20 s).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// Feeds `script` to a running [`WRAPPER`] and reads its stdout (line by line, each to
/// `on_line`) and stderr to the end, sending the heartbeat meanwhile. Stdin stays open until
/// then: closing it (or a silent one) is what stops the script.
pub async fn stream(
    mut stdin: impl AsyncWrite + Unpin,
    stdout: impl AsyncRead + Unpin,
    mut stderr: impl AsyncRead + Unpin,
    script: &str,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> std::io::Result<(String, String)> {
    stdin
        .write_all(format!("{}\n{script}", script.len()).as_bytes())
        .await?;
    stdin.flush().await?;
    let mut out = String::new();
    let mut lines = BufReader::new(stdout).lines();
    let read_err = async {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    };
    let read_out = async {
        while let Ok(Some(line)) = lines.next_line().await {
            on_line(&line);
            out.push_str(&line);
            out.push('\n');
        }
    };
    let heartbeat = async {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            if stdin.write_all(b".").await.is_err() || stdin.flush().await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let err_text = tokio::select! {
        (_, err_text) = async { tokio::join!(read_out, read_err) } => err_text,
        () = heartbeat => String::new(),
    };
    drop(stdin);
    Ok((out, err_text))
}
