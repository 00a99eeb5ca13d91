//! The README's quick start exactly as a newcomer types it: `sudo tests/sandbox/demo.sh`, run here
//! under the environment sudo leaves (Debian's `env_reset`: secure_path's PATH, which has no
//! `~/.cargo/bin`, and the user's HOME), from the checkout itself, building `infra` on its own.
//! app1 must answer over HTTP at the end. Needs root.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;

/// Debian's sudoers `secure_path`.
const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn demo() -> PathBuf {
    repo().join("tests/sandbox/demo.sh")
}

/// Runs the demo with nothing of this process's environment but what sudo would pass on.
fn run_as_sudo_would(args: &[&str]) -> Run {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let out = Command::new("env")
        .arg("-i")
        .arg(format!("PATH={SECURE_PATH}"))
        .arg(format!("HOME={home}"))
        .args(["USER=root", "LOGNAME=root", "SHELL=/bin/bash", "TERM=dumb"])
        .args(["SUDO_USER=root", "SUDO_UID=0", "SUDO_GID=0"])
        .arg(demo())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run tests/sandbox/demo.sh");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Tears the demo's hosts down however the test ends.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        run_as_sudo_would(&["down"]);
    }
}

#[test]
fn the_quick_start_under_sudos_reset_environment_ends_with_app1_answering() {
    require_root();
    let secure = Command::new("env")
        .args([
            "-i",
            &format!("PATH={SECURE_PATH}"),
            "sh",
            "-c",
            "command -v cargo",
        ])
        .output()
        .expect("run sh");
    assert!(
        !secure.status.success(),
        "cargo is on secure_path here ({}): this test would not show that the demo finds it",
        String::from_utf8_lossy(&secure.stdout).trim()
    );
    let _down = Down;
    let run = run_as_sudo_would(&[]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("app1 answers: hello from webplatform"),
        "app1 does not answer:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}
