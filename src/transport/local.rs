//! Local transport (`connection: local`): a host's scripts run with `sh` on the machine infra
//! runs on, as the user running infra, with no SSH: the same scripts, the same wrapper.

use crate::transport::{stream, BoxFuture, Login, Output, Transport, TransportError, WRAPPER};
use std::process::Stdio;
use tokio::process::Command;

/// The machine infra runs on, as one host of the run.
pub struct Local {
    host: String,
}

impl Local {
    pub fn new(host: &str) -> Local {
        Local {
            host: host.to_string(),
        }
    }

    fn error(&self, what: &str, message: String) -> TransportError {
        TransportError::Run {
            host: self.host.clone(),
            what: what.to_string(),
            message,
        }
    }

    /// `sh -c SCRIPT` as an SSH login would run it: from a fixed place (`/`), with a login's
    /// environment (nothing else of infra's: no `INFRA_SECRET_*` values), in a process group
    /// of its own, so a Ctrl-C meant for infra ends infra, whose closed pipe then stops the
    /// script (as a dropped SSH connection would), rather than the script mid-step.
    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .current_dir("/")
            .env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| login_variable(k)))
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    async fn run_script(
        &self,
        what: &str,
        script: &str,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Output, TransportError> {
        let err = |message: String| self.error(what, message);
        let mut child = Local::sh(WRAPPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("cannot run sh: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(err("no pipes to sh".into()));
        };
        let (out, err_text) = stream(stdin, stdout, stderr, script, on_line)
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = child.wait().await.map_err(|e| err(e.to_string()))?;
        Ok(Output {
            code: status.code(),
            stdout: out,
            stderr: err_text,
        })
    }

    async fn read_script(&self, what: &str, script: &str) -> Result<Output, TransportError> {
        let out = Local::sh(script)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| self.error(what, format!("cannot run sh: {e}")))?;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// What a login over SSH passes on: who and where the user is, the path, the locale.
fn login_variable(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    ["HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG"].contains(&name.as_ref())
        || name.starts_with("LC_")
}

impl Transport for Local {
    fn login(&self) -> Login {
        Login::Local
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

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
