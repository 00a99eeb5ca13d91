//! A moto server of a test's own on a chosen address (loopback, or a sandbox bridge so that
//! sandbox hosts can reach it), with boto3 read-backs (`moto_state.py`). Included by path
//! (`#[path = "aws/moto.rs"] mod moto;`) by the tests that need it.
#![allow(dead_code)]

use crate::common::{free_port, provider, repo, Run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub host: String,
    pub port: u16,
}

pub fn moto_python() -> PathBuf {
    let p = std::env::var_os("INFRA_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/infra-ci/moto/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import moto, boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "moto is not installed at {}: .ci/run installs it, or set INFRA_MOTO_PYTHON",
        p.display()
    );
    p
}

impl Moto {
    /// moto on `host` (e.g. `127.0.0.1`, or a bridge address) at a free port.
    pub fn start_on(host: &str) -> Moto {
        let python = moto_python();
        let port = free_port();
        let child = Command::new(python)
            .arg(repo().join("tests/aws/moto_server.py"))
            .args(["-H", host, "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Moto {
            child,
            host: host.to_string(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect((host, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {host}:{port} in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// What points infra and boto3 at this server and nowhere else.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url()),
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

    pub fn infra(&self, dir: &Path, args: &[&str]) -> Run {
        crate::common::infra_with(dir, args, &self.env())
    }

    /// Everything tagged with `env` (and every hosted zone), as boto3 sees it
    /// (`moto_state.py ENV`).
    pub fn state(&self, env: &str) -> Value {
        let out = Command::new(moto_python())
            .arg(repo().join("tests/aws/moto_state.py"))
            .arg(env)
            .envs(self.env())
            .output()
            .expect("run moto_state.py");
        assert!(
            out.status.success(),
            "moto_state.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("moto_state.py prints JSON")
    }

    /// Runs a boto3 snippet against this server (test set-up, not a check); its stdout.
    pub fn boto3(&self, code: &str) -> String {
        let out = Command::new(moto_python())
            .args(["-c", &format!("import boto3\n{code}")])
            .envs(self.env())
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The bucket `name` as boto3 sees it (`moto_state.py --bucket NAME`).
    pub fn bucket(&self, name: &str) -> Value {
        let out = Command::new(moto_python())
            .arg(repo().join("tests/aws/moto_state.py"))
            .args(["--bucket", name])
            .envs(self.env())
            .output()
            .expect("run moto_state.py");
        assert!(
            out.status.success(),
            "moto_state.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("moto_state.py prints JSON")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
