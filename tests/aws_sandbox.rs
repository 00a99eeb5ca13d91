//! The whole AWS path in one test, as the README's quick start runs it
//! (tests/sandbox/aws-demo.sh): moto for the cloud, and a sandbox host booted at each new
//! instance's private IP; `infra apply aws-sandbox` creates the instances, reaches them through
//! the jump host, formats and mounts their volumes and configures them, and the app answers over
//! HTTP at the end. Needs root.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;

struct Demo {
    site: tempfile::TempDir,
    port: u16,
}

impl Demo {
    fn script() -> PathBuf {
        repo().join("tests/sandbox/aws-demo.sh")
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(Self::script())
            .args(args)
            .env("INFRA_SITE", self.site.path())
            .env("INFRA_BIN", env!("CARGO_BIN_EXE_infra"))
            .env("INFRA_MOTO_PORT", self.port.to_string())
            .env("NO_COLOR", "1")
            .output()
            .expect("run aws-demo.sh");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn infra(&self, args: &[&str]) -> Run {
        infra_with(self.site.path(), args, &aws_env(self.port))
    }

    fn exec(&self, host: &str, script: &str) -> Run {
        sandbox_exec(&self.site.path().join(".infra/aws-sandbox"), host, script)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

#[test]
fn moto_plus_sandbox_hosts_from_nothing_to_a_serving_app() {
    require_root();
    let demo = Demo {
        site: site_copy(),
        port: free_port(),
    };
    let first = demo.run(&[]);
    first.assert_code(0);
    assert!(
        first.stdout.contains("infra apply exited 0"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("answers: hello from webplatform"),
        "the app does not answer over HTTP:\n{}\n{}",
        first.stdout,
        first.stderr
    );
    // The cloud phase ran first, then the host phase on the machines it launched.
    let cloud_done = first
        .stderr
        .find("Cloud apply complete: ")
        .expect("cloud phase");
    let hosts_start = first
        .stderr
        .find("waiting for SSH on the new machines")
        .expect("host phase waits for the new machines");
    assert!(cloud_done < hosts_start);

    // The volumes were formatted and mounted by the host phase.
    let mount = demo.exec("queue1", "findmnt -n -o SOURCE,FSTYPE /var/lib/postgresql");
    mount.assert_code(0);
    assert_eq!(
        mount.stdout.split_whitespace().collect::<Vec<_>>(),
        ["/dev/xvdf", "ext4"]
    );
    let fstab = demo.exec("queue1", "cat /etc/fstab");
    assert!(
        fstab
            .stdout
            .contains(" /var/lib/postgresql ext4 defaults,nofail 0 2"),
        "{}",
        fstab.stdout
    );
    // postgres runs on the volume, with the cluster carried over onto it.
    let pg = demo.exec("queue1", "runuser -u postgres -- psql -tAc 'select 1' 2>&1");
    assert_eq!(pg.stdout.trim(), "1", "{}", pg.stderr);

    // Only the jump host takes SSH from the controller: the others were reached through it.
    assert!(
        !direct_ssh_works(&demo.site.path().join(".infra/aws-sandbox"), "app1"),
        "app1 must not accept SSH from the controller"
    );
    let hosts = demo.infra(&["plan", "aws-sandbox", "--detailed-exitcode"]);
    hosts.assert_code(0);
    assert!(hosts.stdout.contains("No changes."), "{}", hosts.stdout);
    assert!(
        hosts
            .stderr
            .contains("8 hosts planned with 8 remote commands after login"),
        "{}",
        hosts.stderr
    );
}
