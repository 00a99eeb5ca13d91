//! `apt_sources:` on a real sandbox host (10.213.180.0/24): a tiny .deb built here
//! (dpkg-deb), a repository made of it (dpkg-scanpackages, a Release file signed with a
//! throwaway gpg key), served over HTTP on the sandbox bridge. A wrong key fails the apply with
//! apt's message naming the source and host, and installs nothing; the right one sets up the
//! source and installs the role's package in one apply; a second plan is clean; a key swapped
//! for a wrong one fails and the previous key is put back; removing the role removes the source,
//! its key and its lists. The mistakes `validate` reports are checked without root. Needs root.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUBNET: &str = "10.213.180";
const PACKAGE: &str = "infra-aptsrc-probe";
const SECOND: &str = "infra-aptsrc-second";

fn need(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{tool} is missing: install {package} (.ci/run does)");
}

/// A throwaway gpg key in its own GNUPGHOME under `dir`; returns the home and the armored
/// public key.
fn gpg_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let home = dir.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let h = home.display();
    sh(&format!(
        "gpg --homedir {h} --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'infra {name} <{name}@infra.test>' ed25519 sign never 2>/dev/null"
    ));
    let key = sh(&format!("gpg --homedir {h} --armor --export"));
    assert!(key.contains("BEGIN PGP PUBLIC KEY BLOCK"), "{key}");
    (home, key)
}

/// Builds `repo/` under `dir`: two packages, Packages, a Release signed (InRelease and
/// Release.gpg) with the key in `home`.
fn build_repo(dir: &Path, home: &Path) -> PathBuf {
    let repo = dir.join("repo");
    for (pkg, text) in [(PACKAGE, "probe"), (SECOND, "second")] {
        let root = dir.join(format!("build-{pkg}"));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join(format!("usr/share/{pkg}"))).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {pkg}\nVersion: 1.0\nArchitecture: all\nMaintainer: infra tests <t@infra.test>\nDescription: a package of infra's apt source test\n"
            ),
        )
        .unwrap();
        std::fs::write(root.join(format!("usr/share/{pkg}/hello")), text).unwrap();
        std::fs::create_dir_all(repo.join("pool/main")).unwrap();
        sh(&format!(
            "dpkg-deb --root-owner-group --build {} {}/pool/main/{pkg}_1.0_all.deb >/dev/null",
            root.display(),
            repo.display()
        ));
    }
    let r = repo.display();
    let h = home.display();
    sh(&format!(
        "cd {r} && mkdir -p dists/stable/main/binary-amd64 && \
         dpkg-scanpackages --arch amd64 pool/ > dists/stable/main/binary-amd64/Packages 2>/dev/null && \
         cd dists/stable && p=main/binary-amd64/Packages && \
         {{ printf 'Origin: infra-test\\nLabel: infra-test\\nSuite: stable\\nCodename: stable\\nArchitectures: amd64\\nComponents: main\\nDate: %s\\nSHA256:\\n' \"$(date -Ru)\"; \
            printf ' %s %s %s\\n' \"$(sha256sum < $p | cut -d' ' -f1)\" \"$(stat -c %s $p)\" $p; }} > Release && \
         gpg --homedir {h} --batch --yes --clearsign -o InRelease Release && \
         gpg --homedir {h} --batch --yes --armor --detach-sign -o Release.gpg Release"
    ));
    repo
}

/// Serves `root` over HTTP/1.0 on `addr` (GET only), one thread per connection; returns the
/// port.
fn serve(root: PathBuf, addr: &str) -> u16 {
    let listener = TcpListener::bind(format!("{addr}:0")).expect("bind on the sandbox bridge");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut l = String::new();
                    match reader.read_line(&mut l) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if l == "\r\n" || l == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/");
                let file = root.join(path.trim_start_matches('/'));
                let head = first.starts_with("HEAD ");
                let ok = !path.contains("..") && file.is_file();
                let body = if ok {
                    std::fs::read(&file).unwrap_or_default()
                } else {
                    Vec::new()
                };
                let status = if ok { "200 OK" } else { "404 Not Found" };
                let _ = write!(
                    conn,
                    "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if !head {
                    let _ = conn.write_all(&body);
                }
                let _ = conn.flush();
                let mut rest = Vec::new();
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(50)));
                let _ = conn.read_to_end(&mut rest);
            });
        }
    });
    port
}

/// The site: role `repo` with the source and `packages`, role `base` with one file.
fn site(dir: &SiteDir, sb: &Sandbox, key: &str, packages: &[&str], roles: &str, port: u16) {
    dir.write(
        "roles/repo.yaml",
        &format!(
            "name: repo\napt_sources:\n  - name: probe\n    uri: \"http://{{{{ vars.repo_host }}}}:{port}/\"\n    \
             suite: stable\n    components: [main]\n    architectures: [amd64]\n    key: {key}\n\
             packages: [{}]\n",
            packages.join(", ")
        ),
    )
    .write(
        "roles/base.yaml",
        "name: base\nfiles:\n  - {template: motd.j2, dest: /etc/motd.infra}\n",
    )
    .write("templates/motd.j2", "{{ host.name }}\n");
    let text = format!(
        "{}vars: {{repo_host: {SUBNET}.1}}\n{}",
        sb.inventory("lab", "lab.test"),
        hosts_yaml(SUBNET, &[("web", roles, 11)])
    );
    dir.write("inventories/lab.yaml", &text);
}

fn installed(sb: &Sandbox, pkg: &str) -> bool {
    sb.exec(
        "web",
        &format!("dpkg -s {pkg} 2>/dev/null | grep -qx 'Status: install ok installed'"),
    )
    .code
        == 0
}

fn exists(sb: &Sandbox, path: &str) -> bool {
    sb.exec("web", &format!("test -e {path}")).code == 0
}

const SOURCES: &str = "/etc/apt/sources.list.d/infra-probe.sources";
const KEY: &str = "/etc/apt/keyrings/infra-probe.asc";

/// The sandbox host, the site and the served repository.
struct Lab {
    sb: Sandbox,
    dir: SiteDir,
    port: u16,
    good: String,
    homes: Vec<PathBuf>,
    _work: tempfile::TempDir,
}

impl Lab {
    fn up() -> Lab {
        require_root();
        need("dpkg-scanpackages", "dpkg-dev");
        need("gpg", "gnupg");
        let work = tempfile::tempdir().unwrap();
        let (home, good) = gpg_key(work.path(), "good");
        let (home2, wrong) = gpg_key(work.path(), "wrong");
        let repo = build_repo(work.path(), &home);
        let dir = SiteDir::new();
        dir.write("templates/keys/good.asc", &good)
            .write("templates/keys/wrong.asc", &wrong);
        let sb = dir.up(SUBNET, &[("web", 11)]);
        let port = serve(repo, &format!("{SUBNET}.1"));
        Lab {
            sb,
            dir,
            port,
            good,
            homes: vec![home, home2],
            _work: work,
        }
    }

    fn infra(&self, args: &[&str]) -> Run {
        self.dir.infra(args)
    }

    fn site(&self, key: &str, packages: &[&str], roles: &str) {
        site(&self.dir, &self.sb, key, packages, roles, self.port);
    }

    /// The start of the names of the source's lists on the host.
    fn lists(&self) -> String {
        format!("/var/lib/apt/lists/{SUBNET}.1:{}_dists_stable_", self.port)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.homes {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(h)
                .args(["--kill", "gpg-agent"])
                .output();
        }
    }
}

#[test]
fn a_signed_source_installs_its_package_in_one_apply_and_goes_with_its_role() {
    let lab = Lab::up();
    assert!(
        !installed(&lab.sb, PACKAGE),
        "{PACKAGE} is installed before the test"
    );
    a_wrong_key_installs_nothing(&lab);
    the_right_key_installs_in_one_apply(&lab);
    a_swapped_key_fails_and_the_old_one_is_back(&lab);
    the_source_goes_with_its_role(&lab);
}

fn a_wrong_key_installs_nothing(lab: &Lab) {
    eprintln!("=== a wrong key: the apply fails naming the source and host, nothing installed");
    lab.site("keys/wrong.asc", &[PACKAGE], "base, repo");
    let plan = lab.infra(&["plan", "lab"]);
    plan.assert_code(0);
    let src_at = plan
        .stdout
        .find("+ apt source probe: http://")
        .expect(&plan.stdout);
    let pkg_at = plan
        .stdout
        .find(&format!("+ packages: {PACKAGE}"))
        .expect(&plan.stdout);
    assert!(
        src_at < pkg_at,
        "the source comes before the packages:\n{}",
        plan.stdout
    );
    let bad = lab.infra(&["apply", "lab", "--yes"]);
    bad.assert_code(3);
    let all = format!("{}{}", bad.stdout, bad.stderr);
    eprintln!("{}", bad.stdout);
    let port = lab.port;
    assert!(
        all.contains(&format!("apt source probe (http://{SUBNET}.1:{port}/ stable) on host web: the repository's signature does not verify")),
        "{all}"
    );
    assert!(
        all.contains("NO_PUBKEY") || all.contains("GPG error"),
        "apt's own words: {all}"
    );
    assert!(
        !installed(&lab.sb, PACKAGE),
        "installed despite the wrong key"
    );
    assert!(
        !exists(&lab.sb, SOURCES) && !exists(&lab.sb, KEY),
        "a failed new source is not left behind"
    );
}

fn the_right_key_installs_in_one_apply(lab: &Lab) {
    eprintln!("=== the right key: source and package in one apply; then a clean plan");
    lab.site("keys/good.asc", &[PACKAGE], "base, repo");
    let first = lab.infra(&["apply", "lab", "--yes"]);
    first.assert_code(0);
    assert!(installed(&lab.sb, PACKAGE), "{}", first.stdout);
    assert_eq!(
        lab.sb
            .exec("web", &format!("cat /usr/share/{PACKAGE}/hello"))
            .stdout,
        "probe"
    );
    let sources = lab.sb.exec("web", &format!("cat {SOURCES}")).stdout;
    let port = lab.port;
    assert!(
        sources.contains(&format!("URIs: http://{SUBNET}.1:{port}/\n")),
        "{sources}"
    );
    assert!(
        sources.contains(&format!("Signed-By: {KEY}\n")),
        "{sources}"
    );
    assert_eq!(lab.sb.exec("web", &format!("cat {KEY}")).stdout, lab.good);
    assert!(
        exists(&lab.sb, &format!("{}InRelease", lab.lists())),
        "apt has the source's lists"
    );
    lab.infra(&["plan", "lab", "--detailed-exitcode"])
        .assert_code(0);
}

fn a_swapped_key_fails_and_the_old_one_is_back(lab: &Lab) {
    eprintln!("=== the key swapped for a wrong one: fails, the previous key is back, nothing new installed");
    lab.site("keys/wrong.asc", &[PACKAGE, SECOND], "base, repo");
    let swapped = lab.infra(&["apply", "lab", "--yes"]);
    swapped.assert_code(3);
    let all = format!("{}{}", swapped.stdout, swapped.stderr);
    assert!(
        all.contains("on host web: the repository's signature does not verify"),
        "{all}"
    );
    assert!(
        !installed(&lab.sb, SECOND),
        "{SECOND} installed despite the wrong key"
    );
    assert_eq!(
        lab.sb.exec("web", &format!("cat {KEY}")).stdout,
        lab.good,
        "the old key is back"
    );
    lab.site("keys/good.asc", &[PACKAGE, SECOND], "base, repo");
    lab.infra(&["apply", "lab", "--yes"]).assert_code(0);
    assert!(installed(&lab.sb, SECOND));
    lab.infra(&["plan", "lab", "--detailed-exitcode"])
        .assert_code(0);
}

fn the_source_goes_with_its_role(lab: &Lab) {
    eprintln!("=== the role removed: the source, its key and its lists go");
    lab.site("keys/good.asc", &[PACKAGE], "base");
    let plan = lab.infra(&["plan", "lab"]);
    plan.assert_code(0);
    eprintln!("{}", plan.stdout);
    assert!(
        plan.stdout.contains("- apt source probe: "),
        "{}",
        plan.stdout
    );
    lab.infra(&["apply", "lab", "--yes"]).assert_code(0);
    assert!(!exists(&lab.sb, SOURCES) && !exists(&lab.sb, KEY));
    let left = lab
        .sb
        .exec("web", &format!("ls {}* 2>/dev/null | wc -l", lab.lists()))
        .stdout;
    assert_eq!(left.trim(), "0", "the source's lists are removed");
    lab.infra(&["plan", "lab", "--detailed-exitcode"])
        .assert_code(0);
}

#[test]
fn mistakes_in_apt_sources_are_reported_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "templates/keys/not-a-key.asc", "hello, I am not a key\n");
    write(
        d,
        "templates/keys/secret.asc",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nabc\n-----END PGP PRIVATE KEY BLOCK-----\n",
    );
    write(
        d,
        "roles/one.yaml",
        "name: one\napt_sources:\n  - name: first\n    uri: http://example.org/\n    suite: stable\n    components: [main]\n    key: keys/missing.asc\n\
         \x20 - name: second\n    uri: http://example.org/\n    suite: stable\n    components: [main]\n    key: keys/not-a-key.asc\n\
         \x20 - name: third\n    uri: http://example.org/\n    suite: stable\n    components: [main]\n    key: keys/secret.asc\n",
    );
    write(
        d,
        "roles/two.yaml",
        "name: two\napt_sources:\n  - name: first\n    uri: http://example.org/\n    suite: stable\n    components: [main]\n    key: keys/not-a-key.asc\n",
    );
    write(
        d,
        "inventories/lab.yaml",
        "environment: lab\ndomain: lab.test\ninternal_domain: lab.internal\nprovider: {type: static}\nhosts:\n  web: {roles: [one], address: 10.0.0.1}\n",
    );
    let run = infra(d, &["validate"]);
    run.assert_code(1);
    let e = &run.stderr;
    for (message, at) in [
        (
            "key `keys/missing.asc` of apt source `first` not found in templates/",
            "roles/one.yaml:7:10",
        ),
        (
            "key `keys/not-a-key.asc` of apt source `second` is not an OpenPGP public key",
            "roles/one.yaml:12:10",
        ),
        (
            "key `keys/secret.asc` of apt source `third` is an OpenPGP private key",
            "roles/one.yaml:17:10",
        ),
        (
            "apt source `first` is defined twice: by role `one` and role `two`",
            "roles/two.yaml:3:11",
        ),
    ] {
        assert!(e.contains(message), "{message}\n{e}");
        assert!(e.contains(&format!("--> {at}")), "{at}\n{e}");
    }
    // A name that cannot be a file name is refused as the role is read.
    write(
        d,
        "roles/two.yaml",
        "name: two\napt_sources:\n  - name: Bad_Name\n    uri: http://example.org/\n    suite: stable\n    components: [main]\n    key: keys/not-a-key.asc\n",
    );
    let run = infra(d, &["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("is not an apt source name"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("roles/two.yaml:3:"), "{}", run.stderr);
}
