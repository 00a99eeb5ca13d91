//! How a command ends: its outcome (one documented exit code each) or the error it stops on.

use infra_core::secrets::SecretsError;
use infra_core::site::SiteError;
use std::path::PathBuf;
use std::process::ExitCode;

/// How a command ended; each maps to one documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// An error; nothing was changed.
    Failed,
    /// `plan --detailed-exitcode` found changes.
    Changes,
    /// `apply` failed on some hosts.
    Partial,
    /// A release's roll stopped: its once commands failed (nothing switched), or a batch failed
    /// its health check (that batch switched back, later batches untouched).
    RollStopped,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        match o {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::Changes => ExitCode::from(2),
            Outcome::Partial | Outcome::RollStopped => ExitCode::from(3),
        }
    }
}

/// A command that could not run; printed as one `error:` line (with a hint) on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("no environment `{name}` in inventories/")]
    UnknownEnv { name: String, hint: Option<String> },
    #[error("no host `{host}` in environment `{env}`")]
    UnknownHost {
        env: String,
        host: String,
        hint: Option<String>,
    },
    #[error("host `{host}` gets no file at `{dest}`")]
    UnknownDest {
        host: String,
        dest: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    Var(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("environment `{env}` needs secrets that are not set: {}; nothing was changed", names.join(", "))]
    MissingSecrets { env: String, names: Vec<String> },
    #[error("the saved plan is stale: {} changed since it was made; nothing was changed", hosts.join(", "))]
    StalePlan { hosts: Vec<String> },
    #[error("refusing to {what} without confirmation: there is no terminal to ask on; nothing was changed")]
    NoConfirmation { what: &'static str },
    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderError),
    #[error(transparent)]
    Ssh(#[from] crate::transport::ssh::SshError),
    #[error(
        "the site changed since the plan was saved; nothing was changed{}",
        listed(differences)
    )]
    SiteChanged {
        differences: Vec<infra_core::saved::Difference>,
    },
    #[error("the saved plan differs from the plan computed now from the site and the hosts; nothing was changed{}", listed(differences))]
    PlanAltered {
        differences: Vec<infra_core::saved::Difference>,
    },
    #[error("the saved plan was made {what}; nothing was changed")]
    PlanInputs { what: String },
    #[error(transparent)]
    Lock(Box<crate::lock::LockError>),
    #[error("{env}: no SSH host keys on the console output of {} in time; infra reaches a machine it launched (any host, with ssh.host_keys: strict) only with a key it knows, so nothing was done on them", hosts.join(", "))]
    HostKeysMissing { env: String, hosts: Vec<String> },
    #[error("the saved plan is stale: the cloud resources of {env} changed since it was made; nothing was changed")]
    StaleCloud { env: String },
    #[error(transparent)]
    ReleaseRef(#[from] crate::git::RefError),
    #[error("{0}; nothing was changed")]
    Rollback(String),
}

impl From<crate::lock::LockError> for CliError {
    fn from(e: crate::lock::LockError) -> CliError {
        CliError::Lock(Box::new(e))
    }
}

impl CliError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::UnknownEnv { hint, .. }
            | CliError::UnknownHost { hint, .. }
            | CliError::UnknownDest { hint, .. } => hint.clone(),
            CliError::MissingSecrets { .. } => Some("set them in the inventory's secrets file or as INFRA_SECRET_<NAME> environment variables".into()),
            CliError::PlanAltered { .. } => Some("the file was changed after `infra plan --out` wrote it; run `infra plan ENV --out FILE` again and review the new plan".into()),
            CliError::StalePlan { .. } | CliError::StaleCloud { .. } | CliError::SiteChanged { .. } | CliError::PlanInputs { .. } => Some("run `infra plan ENV --out FILE` again and review the new plan".into()),
            CliError::NoConfirmation { what } => Some(format!("pass --yes to {what} without asking")),
            CliError::Provider(e) => e.hint(),
            CliError::Ssh(e) => e.hint(),
            CliError::Lock(e) => e.hint(),
            CliError::ReleaseRef(e) => Some(e.hint()),
            CliError::Rollback(_) => Some("`infra releases ENV` lists the releases each host keeps".into()),
            CliError::HostKeysMissing { .. } => Some("check that the image runs cloud-init and prints the host keys on the console (see `aws ec2 get-console-output --instance-id ID`); once it does, run the same command again. Or set `ssh.host_keys: accept-new` in the inventory to accept their keys on first use".into()),
            _ => None,
        }
    }
}

/// Differences, one per line; nothing when there are none.
fn listed(differences: &[infra_core::saved::Difference]) -> String {
    differences.iter().map(|d| format!("\n  {d}")).collect()
}
