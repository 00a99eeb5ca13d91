//! What the engine reports: progress events as hosts are planned and applied, a host that could
//! not be planned, and each host's recap. The view prints them; nothing here prints.

use infra_core::script::StepStatus;
use std::sync::Arc;

/// Progress, for the view.
#[derive(Debug, Clone)]
pub enum Event {
    Planned {
        host: String,
        steps: usize,
    },
    Step {
        host: String,
        index: usize,
        total: usize,
        address: String,
        status: StepStatus,
    },
    Output {
        host: String,
        line: String,
    },
    /// A step of a release's roll on one host: `release 9b8e7d1 switched`, `health ok`, ...
    Release {
        host: String,
        text: String,
        failed: bool,
    },
}

pub type Sink = Arc<dyn Fn(Event) + Send + Sync>;

/// A host that could not be planned.
#[derive(Debug)]
pub struct HostError {
    pub host: String,
    pub error: String,
    pub hint: Option<String>,
}

/// How a host's apply ended.
#[derive(Debug, Clone)]
pub struct Recap {
    pub host: String,
    pub ok: usize,
    pub changed: usize,
    pub failed: bool,
    pub unreachable: bool,
    /// The failing step and the last lines of its output (secrets redacted).
    pub failure: Option<(String, Vec<String>)>,
    /// Another run held the host's lock: nothing was done on it.
    pub busy: Option<HostBusy>,
}

/// A host another run is applying: its lock's holder, as recorded on the host.
#[derive(Debug, Clone, thiserror::Error)]
#[error("host {host} is being applied by run {} ({}, from {}, since {}): wait for it to finish", .holder.run, .holder.who, .holder.from, .holder.since)]
pub struct HostBusy {
    pub host: String,
    pub holder: infra_core::script::Holder,
}
