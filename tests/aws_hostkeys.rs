//! Out-of-band host keys for machines infra launches, against moto and real sandbox hosts: moto
//! (tests/aws/moto_server.py) appends to an instance's console output the file named by its
//! private IP in INFRA_MOTO_CONSOLE_DIR, as cloud-init prints a booted machine's SSH host keys;
//! a sandbox host answers at that IP. With the host's real keys on its console the apply pins
//! them and connects with strict checking; with a wrong key the machine is refused and nothing
//! is changed on it. Needs root; subnet 10.213.101.0/24.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUBNET: &str = "10.213.101";

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(console: &Path) -> Moto {
    let python = std::env::var_os("INFRA_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/infra-ci/moto/bin/python"));
    let port = free_port();
    let child = Command::new(&python)
        .arg(repo().join("tests/aws/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INFRA_MOTO_CONSOLE_DIR", console)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start moto with {}: {e} (.ci/run installs it)",
                python.display()
            )
        });
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not listen on {port} in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

struct Lab {
    // Dropped in order: moto, then the sandbox while its state (in the site) still exists.
    moto: Moto,
    sandbox: Sandbox,
    site: SiteDir,
}

impl Lab {
    fn infra(&self, args: &[&str]) -> Run {
        infra_with(self.site.path(), args, &aws_env(self.moto.port))
    }

    fn inventory(&self, web_ip: &str) {
        self.inventory_with(web_ip, "");
    }

    /// The inventory, with `ssh_extra` lines in its ssh section.
    fn inventory_with(&self, web_ip: &str, ssh_extra: &str) {
        let state = self.sandbox.state.display();
        let text = format!(
            "environment: keys\ndomain: keys.test\ninternal_domain: keys.internal\n\
             provider:\n  type: aws\n  region: us-east-1\n  ami: ami-0123456789abcdef0\n  \
             instance_type: t3.small\n  vpc_cidr: 10.213.0.0/16\n  subnet_cidr: {SUBNET}.0/24\n  \
             availability_zone: us-east-1a\n\
             ssh:\n  user: root\n  identity_file: {state}/id_ed25519\n  jump_host: gw\n  \
             jump_address: private\n{ssh_extra}\
             hosts:\n  gw: {{roles: [motd], private_ip: {SUBNET}.10}}\n  \
             web: {{roles: [motd], private_ip: {web_ip}}}\n"
        );
        std::fs::write(self.site.path().join("inventories/keys.yaml"), text).unwrap();
    }

    /// What cloud-init prints on the console of the machine at `ip`: `keys`.
    fn console(&self, ip: &str, keys: &str) {
        let text = format!(
            "[   9.1] cloud-init[612]: Generating public/private ed25519 key pair.\n\
             -----BEGIN SSH HOST KEY KEYS-----\n{keys}-----END SSH HOST KEY KEYS-----\n"
        );
        std::fs::write(self.site.path().join("console").join(ip), text).unwrap();
    }

    /// The real public host keys of sandbox host `host`.
    fn keys_of(&self, host: &str) -> String {
        let out = self.sandbox.exec(
            host,
            "cat /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/ssh_host_ed25519_key.pub",
        );
        out.assert_code(0);
        out.stdout
    }

    fn motd(&self, host: &str) -> String {
        self.sandbox.exec(host, "cat /etc/motd.infra").stdout
    }
}

fn setup() -> Lab {
    require_root();
    let site = SiteDir::new();
    site.write("roles/motd.yaml", MOTD_ROLE)
        .write("templates/motd.j2", "{{ host.name }} of keys\n");
    std::fs::create_dir_all(site.path().join("console")).unwrap();
    let sandbox = site.up(SUBNET, &[("gw", 10), ("web", 11), ("web2", 12)]);
    let moto = start_moto(&site.path().join("console"));
    Lab {
        moto,
        sandbox,
        site,
    }
}

#[test]
fn launched_machines_are_reached_only_with_the_keys_their_console_showed() {
    let lab = setup();
    let known = lab.site.path().join(".infra/known_hosts/keys");

    // The console shows each machine's real keys: pinned, then reached with strict checking.
    lab.inventory(&format!("{SUBNET}.11"));
    lab.console(&format!("{SUBNET}.10"), &lab.keys_of("gw"));
    lab.console(&format!("{SUBNET}.11"), &lab.keys_of("web"));
    let first = lab.infra(&["apply", "keys", "--yes"]);
    first.assert_code(0);
    assert!(
        first.stderr.contains(
            "pinned the SSH host keys of gw, web from their console output; they are reached with strict checking"
        ),
        "{}",
        first.stderr
    );
    assert_eq!(lab.motd("web"), "web of keys\n");
    let pinned = std::fs::read_to_string(&known).unwrap();
    let web_ed25519 = lab
        .keys_of("web")
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        pinned.contains(&format!("{SUBNET}.11 {web_ed25519}\n")),
        "{pinned}"
    );

    // web is launched anew at .12, whose console shows a key that is not the machine's: the
    // machine is refused with the host-key error and nothing is changed on it.
    let wrong = tempfile::tempdir().unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(wrong.path().join("key"))
        .status()
        .unwrap();
    assert!(status.success());
    let wrong_key = std::fs::read_to_string(wrong.path().join("key.pub")).unwrap();
    lab.console(&format!("{SUBNET}.12"), &wrong_key);
    lab.inventory(&format!("{SUBNET}.12"));
    let refused = lab.infra(&["apply", "keys", "--yes"]);
    refused.assert_code(1);
    let error = format!(
        "error: host web ({SUBNET}.12): its SSH host key is not the one its console output showed (pinned in {}); nothing was done on it",
        known.display()
    );
    assert!(refused.stderr.contains(&error), "{}", refused.stderr);
    assert_eq!(lab.motd("web2"), "", "the refused host was changed");

    // ssh.host_keys: strict, known_hosts gone (a fresh checkout): the keys come from the
    // consoles again; a console without keys means no connection at all.
    std::fs::remove_file(&known).unwrap();
    lab.inventory_with(&format!("{SUBNET}.12"), "  host_keys: strict\n");
    std::fs::write(
        lab.site.path().join("console").join(format!("{SUBNET}.12")),
        "[   3.2] booting, no keys yet\n",
    )
    .unwrap();
    let no_keys = lab.infra(&["apply", "keys", "--yes"]);
    no_keys.assert_code(1);
    assert!(
        no_keys
            .stderr
            .contains("error: keys: no SSH host keys on the console output of web "),
        "{}",
        no_keys.stderr
    );
    assert!(
        no_keys.stderr.contains("ssh.host_keys: accept-new"),
        "{}",
        no_keys.stderr
    );
    assert_eq!(
        lab.motd("web2"),
        "",
        "a host without known keys was changed"
    );
    // With the machine's real keys on its console it converges, strictly checked (gw's keys
    // were pinned by the refused run already).
    lab.console(&format!("{SUBNET}.12"), &lab.keys_of("web2"));
    let fixed = lab.infra(&["apply", "keys", "--yes"]);
    fixed.assert_code(0);
    assert!(
        fixed
            .stderr
            .contains("pinned the SSH host keys of web from their console output"),
        "{}",
        fixed.stderr
    );
    assert_eq!(lab.motd("web2"), "web of keys\n");
}
