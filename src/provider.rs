//! Runs the cloud provider program (`infra-aws`): finds it, sends it one JSON request and reads
//! its JSON lines back. The SDK lives in that program, so this binary never links it.

use infra_core::cloud::CloudPlan;
use infra_protocol::{
    ApplyRequest, CloudFacts, HostKeysRequest, LockReply, LockRequest, ProviderEvent, Scope,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The provider program failed or could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot run the AWS provider {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("AWS ({environment}): {message}")]
    Failed {
        environment: String,
        message: String,
        /// Operations that finished before the failure.
        done: usize,
    },
    #[error("the AWS provider {path} {message}")]
    Protocol { path: PathBuf, message: String },
}

impl ProviderError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ProviderError::Spawn { .. } => Some(
                "build it with `cargo build --workspace` (it sits next to the infra binary), or set INFRA_AWS_PROVIDER to its path".into(),
            ),
            ProviderError::Failed { done, .. } if *done > 0 => Some(format!(
                "{done} cloud operations finished before this one; run the same command again: infra finds what exists by its tags and goes on from there"
            )),
            ProviderError::Failed { .. } => Some(
                "check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID...), the region, and AWS_ENDPOINT_URL if you use one".into(),
            ),
            ProviderError::Protocol { .. } => None,
        }
    }
}

/// Where the `infra-aws` program is: `INFRA_AWS_PROVIDER`, next to this binary, or on PATH.
pub fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("INFRA_AWS_PROVIDER") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        let sibling = exe.with_file_name("infra-aws");
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("infra-aws")
}

/// Progress of an apply, for the view.
pub enum Progress<'a> {
    Start { address: &'a str, text: &'a str },
    Waiting { text: &'a str },
    Done { address: &'a str },
}

/// The answer a request ends with: facts, a lock reply or host keys.
enum Answer {
    Facts(Box<CloudFacts>),
    Lock(LockReply),
    HostKeys(BTreeMap<String, Vec<String>>),
}

fn run(
    verb: &str,
    request: &impl serde::Serialize,
    environment: &str,
    on_event: &mut dyn FnMut(&ProviderEvent),
) -> Result<Answer, ProviderError> {
    let path = program();
    let mut child = Command::new(&path)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ProviderError::Spawn {
            path: path.clone(),
            source,
        })?;
    let protocol = |message: String| ProviderError::Protocol {
        path: path.clone(),
        message,
    };
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| protocol("has no stdin".into()))?;
        let text = serde_json::to_vec(request).map_err(|e| protocol(e.to_string()))?;
        stdin
            .write_all(&text)
            .map_err(|e| protocol(format!("did not take the request: {e}")))?;
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| protocol("has no stdout".into()))?;
    let mut answer = None;
    let mut failure = None;
    let mut done = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| protocol(format!("output unreadable: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: ProviderEvent = serde_json::from_str(&line)
            .map_err(|e| protocol(format!("printed `{line}`, not an event: {e}")))?;
        match &event {
            ProviderEvent::Facts { facts: f } => answer = Some(Answer::Facts(f.clone())),
            ProviderEvent::Lock { reply } => answer = Some(Answer::Lock(reply.clone())),
            ProviderEvent::HostKeys { keys } => answer = Some(Answer::HostKeys(keys.clone())),
            ProviderEvent::Error { message, .. } => failure = Some(message.clone()),
            ProviderEvent::Done { .. } => done += 1,
            _ => {}
        }
        on_event(&event);
    }
    let status = child
        .wait()
        .map_err(|e| protocol(format!("could not be waited for: {e}")))?;
    if let Some(message) = failure {
        return Err(ProviderError::Failed {
            environment: environment.to_string(),
            message,
            done,
        });
    }
    match (answer, status.success()) {
        (Some(f), true) => Ok(f),
        (_, false) => Err(ProviderError::Failed {
            environment: environment.to_string(),
            message: format!("the provider exited with {status}"),
            done,
        }),
        (None, true) => Err(protocol("ended without its answer".into())),
    }
}

fn unexpected(verb: &str) -> ProviderError {
    ProviderError::Protocol {
        path: program(),
        message: format!("answered `{verb}` with another kind of answer"),
    }
}

fn facts(verb: &str, answer: Answer) -> Result<CloudFacts, ProviderError> {
    match answer {
        Answer::Facts(f) => Ok(*f),
        _ => Err(unexpected(verb)),
    }
}

/// Takes, releases or reads the environment lock (`infra-aws lock`).
pub fn lock(req: &LockRequest) -> Result<LockReply, ProviderError> {
    match run("lock", req, &req.scope.environment, &mut |_| {})? {
        Answer::Lock(reply) => Ok(reply),
        _ => Err(unexpected("lock")),
    }
}

/// The SSH host keys the new instances of `req` printed on their console (`infra-aws
/// host-keys`), by host; a host whose keys did not show within the wait is absent.
pub fn host_keys(
    req: &HostKeysRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<BTreeMap<String, Vec<String>>, ProviderError> {
    let answer = run("host-keys", req, &req.scope.environment, &mut |e| {
        if let ProviderEvent::Waiting { text, .. } = e {
            progress(Progress::Waiting { text })
        }
    })?;
    match answer {
        Answer::HostKeys(keys) => Ok(keys),
        _ => Err(unexpected("host-keys")),
    }
}

/// Everything the environment owns in the cloud.
pub fn discover(scope: &Scope) -> Result<CloudFacts, ProviderError> {
    facts(
        "discover",
        run("discover", scope, &scope.environment, &mut |_| {})?,
    )
}

/// Executes the plan's operations in order; returns the facts after.
/// The content of each object the operations upload, base64, by its plan digest.
fn object_contents(
    plan: &CloudPlan,
    ops: &[infra_protocol::Op],
) -> Result<BTreeMap<String, String>, String> {
    use base64::Engine as _;
    let mut out = BTreeMap::new();
    for op in ops {
        if let infra_protocol::CloudOp::PutObject { digest, key, .. } = &op.op {
            let content = plan.object_contents.get(digest).ok_or_else(|| {
                format!("was asked to upload `{key}` without its content: plan again")
            })?;
            out.insert(
                digest.clone(),
                base64::engine::general_purpose::STANDARD.encode(content),
            );
        }
    }
    Ok(out)
}

pub fn apply(
    scope: &Scope,
    plan: &CloudPlan,
    progress: &mut dyn FnMut(Progress),
) -> Result<CloudFacts, ProviderError> {
    let ops = plan.ops();
    let objects = object_contents(plan, &ops).map_err(|message| ProviderError::Protocol {
        path: program(),
        message,
    })?;
    let req = ApplyRequest {
        scope: scope.clone(),
        ops,
        objects,
    };
    let addresses: Vec<String> = req.ops.iter().map(|o| o.resource.clone()).collect();
    let answer = run("apply", &req, &scope.environment, &mut |e| match e {
        ProviderEvent::Start { address, text, .. } => progress(Progress::Start { address, text }),
        ProviderEvent::Waiting { text, .. } => progress(Progress::Waiting { text }),
        ProviderEvent::Done { index, .. } => progress(Progress::Done {
            address: addresses.get(*index).map(String::as_str).unwrap_or("?"),
        }),
        _ => {}
    })?;
    facts("apply", answer)
}
