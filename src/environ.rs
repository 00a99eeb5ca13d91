//! The process environment as `main` found it: secrets set as environment variables are read
//! from this copy, and leave the live environment before anything runs, so no child inherits
//! them (an ssh master kept with `ssh.control_persist` outlives the run by minutes, and its
//! `/proc/PID/environ` would hold them all that time).

use infra_core::secrets::DEFAULT_ENV_PREFIX;
use std::sync::OnceLock;

static START: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Keeps a copy of the environment and removes `INFRA_SECRET_*` from the live one. Called
/// first in `main`, while the process has one thread (removing a variable while another
/// thread reads the environment is a data race). A custom `secrets.env_prefix` is known only
/// once the inventory is read: those variables are removed from the children infra spawns
/// itself instead ([`without_secrets`]).
pub fn capture_and_scrub() {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    for (name, _) in &vars {
        if name.starts_with(DEFAULT_ENV_PREFIX) {
            std::env::remove_var(name);
        }
    }
    let _ = START.set(vars);
}

/// The environment as `main` found it (secret variables included).
pub fn vars() -> Vec<(String, String)> {
    START.get().cloned().unwrap_or_else(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    })
}

/// The names of the live environment's variables that start with `prefix`: a child command
/// removes them (`env_remove`).
pub fn without_secrets(prefix: &str) -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(prefix))
        .collect()
}
