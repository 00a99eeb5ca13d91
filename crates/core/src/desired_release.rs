//! A role's `release:` as one host gets it (its Tera fields rendered), apart from `desired` so
//! that `render`, which builds it, and `desired`, which holds it, do not import each other.

use crate::diagnostic::SourceLocation;
use crate::model::{PipConfig, VenvConfig};
use serde::Serialize;

/// A role's `release:` for one host, its Tera fields rendered. `commit` is unknown to the core:
/// the binary resolves `ref_` on the controller and fills it (with `label` and `commits`)
/// before planning; a release whose commit is `None` plans nothing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DesiredRelease {
    pub role: String,
    /// Absolute: `repo` (bare mirror), `releases/<commit>`, `current`, `releases.log` in it.
    pub path: String,
    /// The URL the host fetches from.
    pub repo: String,
    /// The URL the controller resolves `ref_` from, when not `repo`.
    pub controller_repo: Option<String>,
    #[serde(rename = "ref")]
    pub ref_: String,
    /// The full commit `ref_` resolves to (filled by the binary).
    pub commit: Option<String>,
    /// What the plan shows beside the commit: the ref, as written (the binary may change it).
    pub label: String,
    /// How many commits lie between the live release and `commit`, when the binary knows.
    pub commits: Option<u32>,
    /// The name of the secret holding the key the host fetches with.
    pub ssh_key: Option<String>,
    /// That secret's value; `None` when it is not set. Never serialized or printed.
    #[serde(skip)]
    pub ssh_key_value: Option<SecretText>,
    pub user: String,
    pub requirements: Option<String>,
    pub venv: VenvConfig,
    pub pip: PipConfig,
    pub env_file: Option<String>,
    pub build: Vec<String>,
    pub once: Vec<String>,
    pub reload: Vec<String>,
    pub keep: u32,
    /// Where `ref` is written (the role file), for messages about it.
    #[serde(skip)]
    pub ref_at: SourceLocation,
}

impl DesiredRelease {
    /// The URL the controller resolves refs from: `controller_repo`, else `repo`.
    pub fn controller_url(&self) -> &str {
        self.controller_repo.as_deref().unwrap_or(&self.repo)
    }
}

/// A secret's value: shown by `Debug` as `<secret>`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}
