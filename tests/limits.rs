//! Bad input through the real binary: `render --out-dir` writes only inside its folder, with
//! the rendered modes (and, as root, owners); a `--var` key too deep, a symlink loop under
//! templates/ and a template that never stops writing are clear errors, not a stack overflow,
//! a hang or an allocation without bound.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const ROLE: &str = "\
name: web
files:
  - template: app/config.ini.j2
    dest: /etc/app/config.ini
    mode: \"0640\"
  - source: app/motd
    dest: /etc/motd
  - source: app/motd
    dest: /etc/app/daemon.motd
    owner: daemon
    group: daemon
    mode: \"0640\"
";

const INVENTORY: &str = "\
environment: lab
domain: example.org
internal_domain: lab.internal
provider: {type: static}
hosts:
  web1: {roles: [web], address: 10.213.90.11}
";

fn site() -> SiteDir {
    let dir = SiteDir::new();
    dir.write("roles/web.yaml", ROLE)
        .write("templates/app/config.ini.j2", "name = {{ host.name }}\n")
        .write("templates/app/motd", "managed by infra\n")
        .write("inventories/lab.yaml", INVENTORY);
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn render_out_dir_writes_inside_with_the_rendered_modes() {
    require_root();
    let dir = site();
    let top = tempfile::tempdir().unwrap();
    // DIR need not exist yet.
    let out = top.path().join("new/out");
    let out = out.as_path();
    let o = out.to_str().unwrap();
    infra(dir.path(), &["render", "lab", "web1", "--out-dir", o]).assert_code(0);
    assert_eq!(mode(&out.join("etc/app/config.ini")), 0o640);
    assert_eq!(mode(&out.join("etc/motd")), 0o644);
    // Run as root, a file gets its owner and group when they exist here (daemon is 1:1).
    let m = std::fs::metadata(out.join("etc/app/daemon.motd")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1, 1, 0o640));
    // A world-readable file already there takes the rendered mode too.
    std::fs::set_permissions(
        out.join("etc/app/config.ini"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    infra(dir.path(), &["render", "lab", "web1", "--out-dir", o]).assert_code(0);
    assert_eq!(mode(&out.join("etc/app/config.ini")), 0o640);

    // A symlinked folder inside DIR that leads out of it is not written through.
    let outside = tempfile::tempdir().unwrap();
    let out2 = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), out2.path().join("etc")).unwrap();
    let run = infra(
        dir.path(),
        &[
            "render",
            "lab",
            "web1",
            "--out-dir",
            out2.path().to_str().unwrap(),
        ],
    );
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("is a symbolic link or a file, not a folder"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    // Nor is a symlinked file.
    let out3 = tempfile::tempdir().unwrap();
    std::fs::create_dir(out3.path().join("etc")).unwrap();
    let target = outside.path().join("motd");
    std::os::unix::fs::symlink(&target, out3.path().join("etc/motd")).unwrap();
    let run = infra(
        dir.path(),
        &[
            "render",
            "lab",
            "web1",
            "--out-dir",
            out3.path().to_str().unwrap(),
        ],
    );
    run.assert_code(1);
    assert!(run.stderr.contains("is a symbolic link"), "{}", run.stderr);
    assert!(!target.exists());
}

#[test]
fn a_var_key_too_deep_is_an_error() {
    let dir = site();
    let key = vec!["a"; 6500].join(".");
    let run = infra(
        dir.path(),
        &["render", "lab", "web1", "--var", &format!("{key}=1")],
    );
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("--var: the key has 6500 parts, more than the 32 allowed"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_symlink_loop_under_templates_is_an_error() {
    let dir = site();
    std::os::unix::fs::symlink("..", dir.path().join("templates/app/loop")).unwrap();
    let run = infra(dir.path(), &["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("templates/app/loop is a symbolic link back to"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_template_that_never_stops_writing_is_an_error() {
    let dir = site();
    std::fs::write(
        dir.path().join("templates/app/config.ini.j2"),
        "{% for i in range(end=100000) %}{% for j in range(end=100000) %}0123456789abcdef{% endfor %}{% endfor %}",
    )
    .unwrap();
    let run = infra(dir.path(), &["render", "lab", "web1"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("template `app/config.ini.j2` on host `web1` renders more than 16 MiB"),
        "{}",
        run.stderr
    );
}
