//! The words a host's state and its changes are told in, shared by every kind, the facts and
//! the plan: the init system, what a path is, Terraform's actions, a file's state, digests.

use crate::model::Mode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where infra keeps its state on a host: `pending` holds the service actions recorded before
/// files change and removed once done (`reload nginx`); `backup/` the files a run replaced.
/// Both scripts honour `INFRA_STATE_DIR` instead (for tests).
pub const STATE_DIR: &str = "/var/lib/infra";

/// How services are managed on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitSystem {
    /// systemd is PID 1: `systemctl`.
    Systemd,
    /// No systemd: `/etc/init.d` scripts through `service`, links in `/etc/rcN.d`.
    #[default]
    Sysv,
}

/// Owner, group and mode of a path, and what kind of file it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFact {
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub kind: PathKind,
}

impl PathFact {
    /// As a plan shows it, with the content hash when there is one.
    pub fn state(&self, sha256: Option<String>) -> FileState {
        FileState {
            owner: self.owner.clone(),
            group: self.group.clone(),
            mode: Mode(self.mode),
            sha256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    File,
    Dir,
    Link,
    Other,
}

/// Terraform's action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// Owner, group, mode and content hash of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub owner: String,
    pub group: String,
    pub mode: Mode,
    pub sha256: Option<String>,
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// sha256 of content, as hex.
pub fn sha256(content: &[u8]) -> String {
    hex(&Sha256::digest(content))
}
