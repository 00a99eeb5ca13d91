//! The environment lock: `apply` and `destroy` take it before they change anything and give it
//! up at the end, failed or not; `plan` never takes it. An aws environment's lock is an item in
//! DynamoDB (written by the provider program with a conditional put); a static one's is an
//! `flock` on a host (`lock.host`, else the jump host, else the first host by name) held by a
//! process tied to its own ssh channel, so it frees itself when infra dies. A lock left by a
//! killed run is reported with its age; `infra force-unlock ENV ID` breaks it.

use crate::provider::{self, ProviderError};
use crate::transport::ssh::{SshConfig, SshError};
use infra_core::cloud;
use infra_core::environment::Environment;
use infra_core::model::{Connection, ProviderKind};
use infra_protocol::{LockAction, LockHolder, LockReply, LockRequest, DEFAULT_LOCK_TABLE};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which command holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Destroy,
    Rollback,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Apply => "apply",
            Operation::Destroy => "destroy",
            Operation::Rollback => "rollback",
        }
    }
}

/// Why the environment lock could not be taken, given up or broken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "environment {env} is locked by {}; nothing was changed",
        held_by(holder)
    )]
    Held {
        env: String,
        holder: Box<LockHolder>,
    },
    #[error("environment {env}: `{id}` does not hold its lock ({}); nothing was unlocked", match holder {
        Some(h) => format!("it is locked by {}", held_by(h)),
        None => "nobody holds it".to_string(),
    })]
    NotHolder {
        env: String,
        id: String,
        holder: Option<Box<LockHolder>>,
    },
    #[error("environment {env}: cannot {what} its lock on host {host}: {message}")]
    Host {
        env: String,
        host: String,
        what: &'static str,
        message: String,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Ssh(#[from] SshError),
}

impl LockError {
    pub fn hint(&self) -> Option<String> {
        match self {
            LockError::Held { env, holder } => Some(format!(
                "wait for that run to end; if it is over (killed, its machine gone), free the lock with `infra force-unlock {env} {}`",
                holder.id
            )),
            LockError::NotHolder { env, holder: Some(h), .. } => Some(format!(
                "force-unlock takes the ID of the run holding the lock: `infra force-unlock {env} {}`, once you are sure that run is over",
                h.id
            )),
            LockError::NotHolder { .. } => None,
            LockError::Host { host, .. } => Some(format!(
                "infra keeps the lock of a static environment on {host} (see `lock.host`): it needs ssh to it, `flock` (util-linux) there and /var/lib/infra writable by the ssh user"
            )),
            LockError::Provider(e) => e.hint(),
            LockError::Ssh(e) => e.hint(),
        }
    }
}

/// `ID: who, operation, since T (AGE ago)`.
pub fn held_by(h: &LockHolder) -> String {
    format!(
        "{}: {}, {}, since {} ({} ago)",
        h.id,
        h.who,
        h.operation,
        utc(h.since),
        age(now().saturating_sub(h.since))
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-12-02 09:14:05 UTC`.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `45 s`, `12 min`, `3 h 5 min`, `2 days`.
fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days", secs / 86_400),
    }
}

/// `user@hostname` of this machine.
fn who() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(user_of_uid)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// The name /etc/passwd gives this process's user.
fn user_of_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    })
}

/// 16 random hex digits.
fn random_id() -> String {
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let seed = u64::from(std::process::id()) ^ now().rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
        bytes = seed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where an environment's lock lives.
enum Place {
    /// The DynamoDB table's request, its action to be set by each use.
    Aws(Box<LockRequest>),
    Host {
        host: String,
        local: bool,
    },
}

fn place(env: &Environment) -> Place {
    let inv = env.inventory;
    if inv.provider.value.kind == ProviderKind::Aws {
        let named = inv.lock.dynamodb_table.as_ref().map(|t| t.value.clone());
        return Place::Aws(Box::new(LockRequest {
            scope: cloud::scope(env),
            create_table: named.is_none(),
            table: named.unwrap_or_else(|| DEFAULT_LOCK_TABLE.to_string()),
            action: LockAction::Inspect,
        }));
    }
    let host = inv
        .lock
        .host
        .as_ref()
        .or(inv.ssh.jump_host.as_ref())
        .map(|h| h.value.clone())
        .or_else(|| inv.hosts.keys().next().cloned())
        .unwrap_or_default();
    Place::Host {
        local: inv.connection_of(&host) == Connection::Local,
        host,
    }
}

/// The environment's lock, held by this run until released or dropped.
pub struct EnvLock {
    env: String,
    id: String,
    held: Option<Held>,
    /// Cleared once the lock is given up (the signal watcher then has nothing to release).
    holding: Arc<AtomicBool>,
}

enum Held {
    Aws { req: LockRequest },
    Host(HostHolder),
}

/// The process on the lock host that holds the `flock` while its stdin stays open.
struct HostHolder {
    host: String,
    child: Child,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
    /// The ssh config the holder's ssh reads (its directory lives as long as this).
    _ssh: Option<SshConfig>,
}

impl EnvLock {
    /// Takes the lock of `env` for `op`; refuses at once, naming the holder, when it is held.
    pub fn acquire(env: &Environment, op: Operation) -> Result<EnvLock, LockError> {
        let holder = LockHolder {
            id: random_id(),
            who: who(),
            operation: op.name().to_string(),
            environment: env.name.clone(),
            since: now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let holding = Arc::new(AtomicBool::new(true));
        let held = match place(env) {
            Place::Aws(req) => {
                let req = LockRequest {
                    action: LockAction::Acquire {
                        holder: holder.clone(),
                    },
                    ..*req
                };
                match provider::lock(&req)? {
                    LockReply::Acquired => {
                        let mut release = req.clone();
                        release.action = LockAction::Release {
                            id: holder.id.clone(),
                        };
                        release_on_signal(release, holding.clone());
                        Held::Aws { req }
                    }
                    LockReply::Held { holder } => {
                        return Err(LockError::Held {
                            env: env.name.clone(),
                            holder: Box::new(holder),
                        })
                    }
                    other => {
                        return Err(LockError::Provider(ProviderError::Protocol {
                            path: provider::program(),
                            message: format!("answered a lock request with {other:?}"),
                        }))
                    }
                }
            }
            Place::Host { host, local } => Held::Host(host_acquire(env, &host, local, &holder)?),
        };
        Ok(EnvLock {
            env: env.name.clone(),
            id: holder.id,
            held: Some(held),
            holding,
        })
    }

    /// The random ID this run holds the lock under.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn give_up(&mut self) -> Result<(), LockError> {
        self.holding.store(false, Ordering::SeqCst);
        match self.held.take() {
            None => Ok(()),
            Some(Held::Aws { mut req }) => {
                req.action = LockAction::Release {
                    id: self.id.clone(),
                };
                match provider::lock(&req)? {
                    LockReply::Released | LockReply::Free | LockReply::Acquired => Ok(()),
                    LockReply::Held { holder } => Err(LockError::NotHolder {
                        env: self.env.clone(),
                        id: self.id.clone(),
                        holder: Some(Box::new(holder)),
                    }),
                }
            }
            Some(Held::Host(mut h)) => {
                // End of stdin ends the holder, which frees the flock.
                drop(h.stdin.take());
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                loop {
                    match h.child.try_wait() {
                        Ok(Some(_)) => return Ok(()),
                        Ok(None) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        _ => {
                            let _ = h.child.kill();
                            let _ = h.child.wait();
                            return Err(LockError::Host {
                                env: self.env.clone(),
                                host: h.host,
                                what: "release",
                                message: "its holder did not end in 20 s; the ssh connection was cut, so it frees itself once the host notices".into(),
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Ctrl-C or SIGTERM while an aws lock is held: the lock is given up (`release`), then the run
/// ends as the signal would have ended it (exit 130 or 143); a second signal ends it at once. A
/// static lock needs none of this: its holder ends with the run's ssh channel.
fn release_on_signal(release: LockRequest, holding: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    // Registered here, before the caller goes on: a signal from now on finds the handler.
    let (Ok(mut int), Ok(mut term)) = rt.block_on(async {
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    }) else {
        return;
    };
    let watcher = move || {
        rt.block_on(async move {
            let code = tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
            };
            if holding.swap(false, Ordering::SeqCst) {
                eprintln!(
                    "\ninterrupted: releasing the lock of {} (interrupt again to quit at once)",
                    release.scope.environment
                );
                let giving_up = tokio::task::spawn_blocking(move || provider::lock(&release));
                tokio::select! {
                    _ = giving_up => {},
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
            }
            std::process::exit(code);
        });
    };
    let _ = std::thread::Builder::new()
        .name("lock-signals".into())
        .spawn(watcher);
}

/// The lock is given up when the run ends, however it ends (short of being killed).
impl Drop for EnvLock {
    fn drop(&mut self) {
        if let Err(e) = self.give_up() {
            eprintln!("warning: {e}");
        }
    }
}

/// Runs `script` on the lock host: over its own ssh channel, or here for `connection: local`.
fn spawn(
    env: &Environment,
    host: &str,
    local: bool,
    text: String,
) -> Result<(Child, Option<SshConfig>), LockError> {
    let (mut cmd, ssh) = if local {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(&text);
        (cmd, None)
    } else {
        let ssh = SshConfig::new(env)?;
        let remote = infra_core::envlock::remote_command(&text);
        (ssh.command(host, &remote), Some(ssh))
    };
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LockError::Host {
            env: env.name.clone(),
            host: host.to_string(),
            what: "reach",
            message: format!("cannot run ssh: {e}"),
        })?;
    Ok((child, ssh))
}

/// The holder a lock file names (its first line, JSON), if it is readable.
fn parse_holder(env: &str, lines: &[String]) -> LockHolder {
    lines
        .iter()
        .find_map(|l| serde_json::from_str::<LockHolder>(l).ok())
        .unwrap_or_else(|| LockHolder {
            id: "?".into(),
            who: "unknown (its holder file is unreadable)".into(),
            operation: "?".into(),
            environment: env.to_string(),
            since: now(),
            version: "?".into(),
        })
}

/// Everything a finished lock script printed, or its error.
fn finish(
    env: &Environment,
    host: &str,
    what: &'static str,
    mut child: Child,
    first: Option<String>,
    mut out: BufReader<ChildStdout>,
) -> Result<(Option<String>, Vec<String>), LockError> {
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().ok();
    let first = first.filter(|f| !f.is_empty());
    if first.is_none() || !status.is_some_and(|s| s.success()) {
        let message = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("the lock script ended without an answer")
            .trim()
            .to_string();
        return Err(LockError::Host {
            env: env.name.clone(),
            host: host.to_string(),
            what,
            message,
        });
    }
    Ok((first, rest.lines().map(str::to_string).collect()))
}

fn host_acquire(
    env: &Environment,
    host: &str,
    local: bool,
    holder: &LockHolder,
) -> Result<HostHolder, LockError> {
    let json = serde_json::to_string(holder).unwrap_or_default();
    let script = infra_core::envlock::acquire(&env.name, &json);
    let (mut child, ssh) = spawn(env, host, local, script)?;
    let stdout = child.stdout.take();
    let stdin = child.stdin.take();
    let Some(stdout) = stdout else {
        return Err(LockError::Host {
            env: env.name.clone(),
            host: host.to_string(),
            what: "take",
            message: "no output from the lock script".into(),
        });
    };
    let mut out = BufReader::new(stdout);
    let mut first = String::new();
    let _ = out.read_line(&mut first);
    if first.trim() == "locked" {
        return Ok(HostHolder {
            host: host.to_string(),
            child,
            stdin,
            _stdout: out,
            _ssh: ssh,
        });
    }
    drop(stdin);
    let (_, rest) = finish(
        env,
        host,
        "take",
        child,
        Some(first.trim().to_string()),
        out,
    )?;
    Err(LockError::Held {
        env: env.name.clone(),
        holder: Box::new(parse_holder(&env.name, &rest)),
    })
}

/// Who holds the lock of `env`, if anyone.
pub fn inspect(env: &Environment) -> Result<Option<LockHolder>, LockError> {
    match place(env) {
        Place::Aws(req) => {
            // `place` made it an inspection.
            match provider::lock(&req)? {
                LockReply::Held { holder } => Ok(Some(holder)),
                _ => Ok(None),
            }
        }
        Place::Host { host, local } => {
            let script = infra_core::envlock::inspect(&env.name);
            let (first, rest) = run_host(env, &host, local, "read", script)?;
            Ok((first == "busy").then(|| parse_holder(&env.name, &rest)))
        }
    }
}

/// Runs a short lock script on the lock host: its first line and the rest.
fn run_host(
    env: &Environment,
    host: &str,
    local: bool,
    what: &'static str,
    script: String,
) -> Result<(String, Vec<String>), LockError> {
    let (mut child, _ssh) = spawn(env, host, local, script)?;
    drop(child.stdin.take());
    let Some(stdout) = child.stdout.take() else {
        return Err(LockError::Host {
            env: env.name.clone(),
            host: host.to_string(),
            what,
            message: "no output from the lock script".into(),
        });
    };
    let mut out = BufReader::new(stdout);
    let mut first = String::new();
    let _ = out.read_line(&mut first);
    let (first, rest) = finish(env, host, what, child, Some(first.trim().to_string()), out)?;
    Ok((first.unwrap_or_default(), rest))
}

/// Breaks the lock of `env` if `id` holds it: the holder it had.
pub fn force_unlock(env: &Environment, id: &str) -> Result<LockHolder, LockError> {
    let not_holder = |holder: Option<LockHolder>| LockError::NotHolder {
        env: env.name.clone(),
        id: id.to_string(),
        holder: holder.map(Box::new),
    };
    let current = inspect(env)?;
    let Some(holder) = current.filter(|h| h.id == id) else {
        return Err(not_holder(inspect(env)?));
    };
    match place(env) {
        Place::Aws(req) => {
            let req = LockRequest {
                action: LockAction::Release { id: id.to_string() },
                ..*req
            };
            match provider::lock(&req)? {
                LockReply::Released => Ok(holder),
                LockReply::Held { holder } => Err(not_holder(Some(holder))),
                _ => Err(not_holder(None)),
            }
        }
        Place::Host { host, local } => {
            // The holder process is ended: its flock goes with it.
            let script = infra_core::envlock::force_unlock(&env.name, id);
            let (first, rest) = run_host(env, &host, local, "break", script)?;
            match first.as_str() {
                "released" => Ok(holder),
                "busy" => Err(not_holder(Some(parse_holder(&env.name, &rest)))),
                _ => Err(not_holder(None)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_and_ages_in_words() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_668_045), "2025-12-02 09:34:05 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(age(45), "45 s");
        assert_eq!(age(12 * 60 + 5), "12 min");
        assert_eq!(age(3 * 3600 + 5 * 60), "3 h 5 min");
        assert_eq!(age(2 * 86_400 + 7), "2 days");
    }

    #[test]
    fn holders_read_as_the_refusal_names_them() {
        let h = LockHolder {
            id: "3f9a".into(),
            who: "alice@ws1".into(),
            operation: "apply".into(),
            environment: "production".into(),
            since: now() - 12 * 60,
            version: "0.1.0".into(),
        };
        let text = held_by(&h);
        assert!(text.starts_with("3f9a: alice@ws1, apply, since "), "{text}");
        assert!(text.ends_with(" (12 min ago)"), "{text}");
        let garbled = parse_holder("production", &["not json".into()]);
        assert_eq!(garbled.id, "?");
        let line = serde_json::to_string(&h).unwrap();
        assert_eq!(parse_holder("production", &[line, "pid=42".into()]), h);
    }
}
