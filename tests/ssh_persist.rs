//! `ssh.control_persist` on two real sandbox hosts (one behind the other as jump host): the
//! first run logs in and leaves its masters; later runs reuse them with no new login; a changed
//! ssh setting, or a master that died, means a new login, with the host key checked again.
//! Needs root.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUBNET: &str = "10.213.60";

/// Fields drop in order: the sandbox goes down while its state (inside the site) still exists.
struct Lab {
    sandbox: Sandbox,
    site: SiteDir,
    control: tempfile::TempDir,
}

impl Lab {
    fn infra(&self, args: &[&str]) -> Run {
        let control = self.control_dir().display().to_string();
        infra_env(
            self.site.path(),
            args,
            &[("INFRA_SSH_CONTROL_DIR", control.as_str())],
        )
    }

    fn inventory(&self, ssh_extra: &str) {
        let text = format!(
            "{}  known_hosts_file: .infra/known_hosts/lab\n  jump_host: gw\n{ssh_extra}{}",
            self.sandbox.inventory("lab", "lab.test"),
            hosts_yaml(SUBNET, &[("gw", "motd", 10), ("web", "motd", 11)])
        );
        self.site.write("inventories/lab.yaml", &text);
    }

    /// Where the kept sockets go: a directory infra makes itself (mode 0700).
    fn control_dir(&self) -> PathBuf {
        self.control.path().join("cm")
    }

    /// The control sockets in the control dir (not the lock and log files beside them).
    fn sockets(&self) -> Vec<PathBuf> {
        if !self.control_dir().exists() {
            return Vec::new();
        }
        use std::os::unix::fs::FileTypeExt;
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.control_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_socket()).unwrap_or(false))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in self.sockets() {
            let _ = master(&s, "exit");
        }
    }
}

/// `ssh -S SOCKET -O CMD`: whether the master behind a control socket answers.
fn master(socket: &Path, cmd: &str) -> bool {
    Command::new("ssh")
        .arg("-S")
        .arg(socket)
        .args(["-O", cmd, "unused"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn note(run: &Run) -> String {
    run.stderr
        .lines()
        .find(|l| l.contains("hosts planned with"))
        .unwrap_or_else(|| panic!("no planning note in:\n{}", run.stderr))
        .to_string()
}

fn setup() -> Lab {
    require_root();
    let site = SiteDir::new();
    site.write("roles/motd.yaml", MOTD_ROLE)
        .write("templates/motd.j2", "{{ host.name }} of lab\n");
    let sandbox = site.up(SUBNET, &[("gw", 10), ("web", 11)]);
    let control = tempfile::tempdir().unwrap();
    let lab = Lab {
        sandbox,
        site,
        control,
    };
    lab.inventory("  control_persist: 60s\n");
    lab
}

#[test]
fn kept_connections_are_reused_until_something_changes() {
    let lab = setup();

    // The first run logs in to both hosts and leaves one master each.
    let first = lab.infra(&["plan", "lab"]);
    first.assert_code(0);
    assert!(
        note(&first)
            .ends_with("2 hosts planned with 2 remote commands after login; 2 new SSH logins"),
        "{}",
        first.stderr
    );
    let sockets = lab.sockets();
    assert_eq!(sockets.len(), 2, "one kept master per host: {sockets:?}");
    for s in &sockets {
        assert!(master(s, "check"), "{} has no live master", s.display());
    }

    // The next runs log in no more; apply works over the kept connections.
    let apply = lab.infra(&["apply", "lab", "--yes"]);
    apply.assert_code(0);
    assert!(
        note(&apply).ends_with("0 new SSH logins, 2 kept connections reused"),
        "{}",
        apply.stderr
    );
    assert_eq!(
        lab.sandbox.exec("web", "cat /etc/motd.infra").stdout,
        "web of lab\n"
    );
    let again = lab.infra(&["plan", "lab", "--detailed-exitcode"]);
    again.assert_code(0);
    assert!(
        note(&again).ends_with("0 new SSH logins, 2 kept connections reused"),
        "{}",
        again.stderr
    );
    assert_eq!(lab.sockets(), sockets, "no new master");

    // A changed ssh setting is a different connection: new logins, new masters.
    lab.inventory("  control_persist: 60s\n  options: {ServerAliveCountMax: \"4\"}\n");
    let changed = lab.infra(&["plan", "lab", "--detailed-exitcode"]);
    changed.assert_code(0);
    assert!(
        note(&changed).ends_with("; 2 new SSH logins"),
        "{}",
        changed.stderr
    );
    let sockets = lab.sockets();
    assert_eq!(sockets.len(), 4, "two more masters: {sockets:?}");

    // web is rebuilt (new host key) and its connections go with its old sshd: the next run
    // finds a dead master, logs in afresh and refuses the new key; gw is still reused.
    lab.sandbox
        .run(&["rekey", lab.sandbox.state.to_str().unwrap(), "web"]);
    lab.sandbox.exec("web", "pkill -f 'sshd: root' || true");
    let refused = lab.infra(&["plan", "lab"]);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("host web (10.213.60.11): its SSH host key changed"),
        "{}",
        refused.stderr
    );

    // Without control_persist a run keeps nothing: no socket is added.
    lab.inventory("");
    let before = lab.sockets();
    let cold = lab.infra(&["plan", "lab", "--limit", "gw"]);
    cold.assert_code(0);
    assert!(
        note(&cold)
            .ends_with("1 hosts planned with 1 remote commands after login; 1 new SSH logins"),
        "{}",
        cold.stderr
    );
    assert_eq!(lab.sockets(), before);
}

#[test]
fn a_control_dir_others_can_enter_is_refused() {
    let site = site_copy();
    let open = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    edit(
        site.path(),
        "inventories/sandbox.yaml",
        "  jump_host: salt\n",
        "  jump_host: salt\n  control_persist: 10m\n",
    );
    let dir = open.path().display().to_string();
    let run = infra_env(
        site.path(),
        &["plan", "sandbox"],
        &[("INFRA_SSH_CONTROL_DIR", dir.as_str())],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("others can enter it (its mode is not 0700)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&dir), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("set INFRA_SSH_CONTROL_DIR to a private directory"),
        "{}",
        run.stderr
    );
}
