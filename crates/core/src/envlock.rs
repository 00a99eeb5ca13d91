//! The scripts that keep a static environment's lock on its lock host: an `flock` on
//! `/var/lib/infra/locks/ENV.lock` held by a process that lives as long as its stdin (its own
//! ssh channel), the file naming the holder (a JSON line, then `pid=N`). Text only; running
//! them is the binary's.

use crate::shell::{w, Script};

/// The command line ssh hands the remote login shell to run `script` with `sh -c`.
pub fn remote_command(script: &str) -> String {
    format!("sh -c {}", crate::shell::quote(script))
}

/// Where the lock file is, and a refusal when `flock` is missing.
fn head(env: &str) -> Script {
    let mut s = Script::new();
    s.raw("set -u\numask 077\nd=/var/lib/infra/locks\n");
    s.line("f=\"$d\"/{}", &[w(&format!("{env}.lock"))]);
    s.raw("command -v flock >/dev/null 2>&1 || { echo 'flock (util-linux) is not installed' >&2; exit 70; }\n");
    s
}

/// Takes the lock and prints `locked`, then holds it until stdin ends; or, when it is still
/// held after 3 s, prints `busy` and the lock file (who holds it) and exits.
pub fn acquire(env: &str, holder_json: &str) -> String {
    let mut s = head(env);
    s.raw("mkdir -p \"$d\" || exit 70\nexec 9>>\"$f\" || exit 70\n");
    // A few seconds' grace: a holder whose infra was just killed is still letting go.
    s.raw("if ! flock -w 3 9; then echo busy; cat \"$f\"; exit 0; fi\n");
    s.line(
        ": > \"$f\"; printf '%s\\npid=%s\\n' {} \"$$\" >> \"$f\"",
        &[w(holder_json)],
    );
    s.raw("echo locked\nexec cat > /dev/null\n");
    s.into_string()
}

/// Prints `free`, or `busy` and the lock file.
pub fn inspect(env: &str) -> String {
    let mut s = head(env);
    s.raw("[ -e \"$f\" ] || { echo free; exit 0; }\nexec 9<\"$f\" || exit 70\n");
    s.raw("if flock -n 9; then echo free; else echo busy; cat \"$f\"; fi\n");
    s.into_string()
}

/// Ends the holder process if lock `id` holds the lock, waits for the lock to be free and
/// prints `released`; else prints `free`, or `busy` and the lock file.
pub fn force_unlock(env: &str, id: &str) -> String {
    let mut s = head(env);
    s.raw("[ -e \"$f\" ] || { echo free; exit 0; }\nexec 9<\"$f\" || exit 70\n");
    s.raw("if flock -n 9; then echo free; exit 0; fi\n");
    s.line(
        "grep -qF -- {} \"$f\" || { echo busy; cat \"$f\"; exit 0; }",
        &[w(&format!("\"id\":\"{id}\""))],
    );
    s.raw("pid=$(sed -n 's/^pid=//p' \"$f\")\n[ -n \"$pid\" ] && kill \"$pid\"\n");
    s.raw("if flock -w 20 9; then echo released; else echo 'its holder did not end' >&2; exit 70; fi\n");
    s.into_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_enter_the_scripts_quoted() {
        let a = super::acquire("lab'; rm -rf /", r#"{"id":"x'$(reboot)"}"#);
        assert!(a.contains(r#"f="$d"/'lab'\''; rm -rf /.lock'"#), "{a}");
        assert!(a.contains(r#"'{"id":"x'\''$(reboot)"}'"#), "{a}");
        let f = super::force_unlock("lab", "a'b");
        assert!(f.contains(r#"grep -qF -- '"id":"a'\''b"'"#), "{f}");
    }
}
