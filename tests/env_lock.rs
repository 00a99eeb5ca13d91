//! The environment lock of a static inventory, on two real sandbox hosts: it lives on the jump
//! host, held by a process tied to the holder's own ssh channel. A second apply refuses at once
//! naming the first; `plan` takes none; when the first infra is SIGKILLed the lock frees itself;
//! `force-unlock` refuses a wrong ID and breaks the lock with the holder's. The first apply is
//! held at its confirmation prompt (on a pseudo-terminal, `script`), after it took the lock and
//! before it changed anything. Needs root.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SUBNET: &str = "10.213.100";

/// Fields drop in order: the sandbox goes down while its state (inside the site) still exists.
struct Lab {
    sandbox: Sandbox,
    site: SiteDir,
}

fn setup() -> Lab {
    require_root();
    let site = SiteDir::new();
    site.write("roles/motd.yaml", MOTD_ROLE).write(
        "templates/motd.j2",
        "{{ host.name }} of lab {{ vars.round }}\n",
    );
    let sandbox = site.up(SUBNET, &[("gw", 10), ("web", 11)]);
    let lab = Lab { sandbox, site };
    lab.round(1);
    lab
}

impl Lab {
    fn infra(&self, args: &[&str]) -> Run {
        self.site.infra(args)
    }

    /// The inventory, with `round` in every host's file (so each round has changes).
    fn round(&self, round: u32) {
        let text = format!(
            "{}  jump_host: gw\nvars: {{round: {round}}}\n{}",
            self.sandbox.inventory("lab", "lab.test"),
            hosts_yaml(SUBNET, &[("gw", "motd", 10), ("web", "motd", 11)])
        );
        self.site.write("inventories/lab.yaml", &text);
    }

    /// `infra apply lab` on a pseudo-terminal, left waiting at its confirmation prompt once it
    /// holds the lock: the process, the pid of infra itself, and the lock ID it printed.
    fn held_apply(&self) -> (Child, u32, String) {
        let pid_file = self.site.path().join("held.pid");
        let _ = std::fs::remove_file(&pid_file);
        let inner = format!(
            "echo $$ > {}; exec env NO_COLOR=1 HOME={}/.no-home {} -C {} apply lab",
            pid_file.display(),
            self.site.path().display(),
            env!("CARGO_BIN_EXE_infra"),
            self.site.path().display()
        );
        let mut child = Command::new("script")
            .args(["-qfec", &inner, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run script(1) (util-linux)");
        let mut seen = String::new();
        let mut id = None;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // The prompt has no newline: read up to the `:` that ends it.
        loop {
            let mut chunk = Vec::new();
            let n = out.read_until(b':', &mut chunk).unwrap();
            assert!(n > 0, "infra apply ended before its prompt:\n{seen}");
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if id.is_none() {
                id = lock_id_in(&seen);
            }
            if seen.contains("Only 'yes' is accepted:") {
                break;
            }
        }
        let id = id.unwrap_or_else(|| panic!("no lock taken before the prompt:\n{seen}"));
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Keep reading so the terminal never blocks infra.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut sink);
        });
        (child, pid, id)
    }

    fn motd(&self, host: &str) -> String {
        self.sandbox.exec(host, "cat /etc/motd.infra").stdout
    }
}

/// The lock ID in infra's `took the lock of ENV (ID)` note.
fn lock_id_in(text: &str) -> Option<String> {
    let rest = text.split("took the lock of ").nth(1)?;
    let id = rest.split('(').nth(1)?.split(')').next()?;
    (id.len() == 16).then(|| id.to_string())
}

fn kill(pid: u32) {
    let ok = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -KILL {pid}");
}

fn refused_by(run: &Run, id: &str) {
    run.assert_code(1);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let holder = format!(
        "error: environment lab is locked by {id}: root@{}, apply, since 20",
        host.trim()
    );
    assert!(run.stderr.contains(&holder), "{}", run.stderr);
    assert!(
        run.stderr.contains(" ago); nothing was changed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("infra force-unlock lab {id}")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_static_environment_is_locked_on_its_jump_host() {
    let lab = setup();
    let site: &Path = lab.site.path();

    // A first apply holds the lock; a second one (with other changes) refuses, naming it, and
    // changes nothing; plan takes no lock.
    let (mut first, pid, id) = lab.held_apply();
    lab.round(2);
    refused_by(&lab.infra(&["apply", "lab", "--yes"]), &id);
    assert_eq!(lab.motd("web"), "", "the refused apply wrote a file");
    lab.infra(&["plan", "lab"]).assert_code(0);
    let holder = lab
        .sandbox
        .exec("gw", "cat /var/lib/infra/locks/lab.lock")
        .stdout;
    assert!(holder.contains(&format!("\"id\":\"{id}\"")), "{holder}");

    // SIGKILL of the first infra: its ssh channel closes and the lock frees itself.
    kill(pid);
    let _ = first.wait();
    let applied = lab.infra(&["apply", "lab", "--yes"]);
    applied.assert_code(0);
    assert_eq!(lab.motd("web"), "web of lab 2\n");

    // A held lock: force-unlock refuses a wrong ID, and breaks it with the holder's.
    lab.round(3);
    let (mut held, pid, id) = lab.held_apply();
    let wrong = lab.infra(&["force-unlock", "lab", "0123456789abcdef", "--yes"]);
    wrong.assert_code(1);
    assert!(
        wrong.stderr.contains(&format!(
            "`0123456789abcdef` does not hold its lock (it is locked by {id}: "
        )),
        "{}",
        wrong.stderr
    );
    refused_by(&lab.infra(&["apply", "lab", "--yes"]), &id);
    let right = infra(site, &["force-unlock", "lab", &id, "--yes"]);
    right.assert_code(0);
    lab.infra(&["apply", "lab", "--yes"]).assert_code(0);
    assert_eq!(lab.motd("web"), "web of lab 3\n");
    kill(pid);
    let _ = held.wait();
}
