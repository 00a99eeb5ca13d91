//! SSH host keys of new instances, read out of band: from each instance's console output
//! (GetConsoleOutput), where cloud-init prints them between `-----BEGIN SSH HOST KEY KEYS-----`
//! and `-----END SSH HOST KEY KEYS-----` once the machine has booted.

use crate::{emit, sdk, AwsError, Clients};
use infra_protocol::{host_keys_in_console, HostKeysRequest, ProviderEvent};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often the console outputs are read again while keys are missing.
const POLL: Duration = Duration::from_secs(3);

/// The host keys of every instance of `req` whose console shows them within its wait.
pub async fn host_keys(
    c: &Clients,
    req: &HostKeysRequest,
) -> Result<BTreeMap<String, Vec<String>>, AwsError> {
    let deadline = Instant::now() + Duration::from_secs(req.wait_seconds);
    let mut found = BTreeMap::new();
    let mut last_note: Option<Instant> = None;
    loop {
        for (host, id) in &req.instances {
            if found.contains_key(host) {
                continue;
            }
            let keys = console_keys(c, host, id).await?;
            if !keys.is_empty() {
                found.insert(host.clone(), keys);
            }
        }
        let missing: Vec<&str> = req
            .instances
            .keys()
            .filter(|h| !found.contains_key(*h))
            .map(String::as_str)
            .collect();
        if missing.is_empty() || Instant::now() >= deadline {
            return Ok(found);
        }
        if last_note.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            emit(&ProviderEvent::Waiting {
                index: 0,
                text: format!(
                    "waiting for cloud-init to print the SSH host keys of {} on the console",
                    missing.join(", ")
                ),
            });
            last_note = Some(Instant::now());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The host keys in the console output of instance `id` (none yet: empty).
async fn console_keys(c: &Clients, host: &str, id: &str) -> Result<Vec<String>, AwsError> {
    let out = c
        .ec2
        .get_console_output()
        .instance_id(id)
        .send()
        .await
        .map_err(|e| sdk(format!("read the console output of {host} ({id})"), e))?;
    let Some(encoded) = out.output() else {
        return Ok(Vec::new());
    };
    let bytes = aws_smithy_types::base64::decode(encoded.trim()).map_err(|e| {
        AwsError::new(
            format!("read the console output of {host} ({id})"),
            format!("it is not base64: {e}"),
        )
    })?;
    Ok(host_keys_in_console(&String::from_utf8_lossy(&bytes)))
}
