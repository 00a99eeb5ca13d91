//! `tls:` on a real sandbox host (10.213.190.0/24): a CA and a server certificate made here
//! with openssl, given as secrets; an nginx role with `tls:` listens on 443 with them and
//! redirects 80 to https. curl, trusting only that CA, gets the page; the key file is 0600
//! root:root; the key shows in no plan or apply output; a renewed certificate reloads nginx,
//! which then serves it. The mistakes `validate` reports are checked without root. Needs root.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const SUBNET: &str = "10.213.190";
const NAME: &str = "web.tls.test";

/// A CA in `dir` (once), and a server certificate for NAME signed by it, as `name`.pem and
/// `name`.key.
fn certificate(dir: &Path, name: &str) -> (String, String) {
    let d = dir.display();
    sh(&format!(
        "cd {d} && [ -f ca.pem ] || openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=infra tls test CA' -keyout ca.key -out ca.pem 2>/dev/null; \
         printf 'subjectAltName=DNS:{NAME}\\n' > san.ext && \
         openssl req -newkey rsa:2048 -nodes -subj '/CN={NAME}' -keyout {name}.key -out {name}.csr 2>/dev/null && \
         openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile san.ext -out {name}.pem 2>/dev/null"
    ));
    (
        std::fs::read_to_string(dir.join(format!("{name}.pem"))).unwrap(),
        std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap(),
    )
}

/// The site: role `web` (nginx with `tls:`) on sandbox host `web`.
fn site(dir: &SiteDir, sb: &Sandbox) {
    dir.write(
        "roles/web.yaml",
        "name: web\npackages: [nginx]\n\
         tls: {cert: web_cert, key: web_key, notify: [nginx]}\n\
         secrets: [web_cert, web_key]\n\
         files:\n  - template: site.conf.j2\n    dest: /etc/nginx/sites-enabled/web.conf\n    notify: [nginx]\n    check: \"nginx -t\"\n\
         services:\n  - {name: nginx, enable: true, on_change: reload, check: \"nginx -t\"}\n",
    );
    dir.write(
        "templates/site.conf.j2",
        &format!(
            "server {{\n    listen 80;\n    server_name {NAME};\n    return 301 https://$host$request_uri;\n}}\n\n\
             server {{\n    listen 443 ssl;\n    server_name {NAME};\n\
             \x20   ssl_certificate {{{{ tls.cert_path }}}};\n    ssl_certificate_key {{{{ tls.key_path }}}};\n\
             \x20   location / {{\n        default_type text/plain;\n        return 200 \"hello over tls\\n\";\n    }}\n}}\n"
        ),
    );
    let text = format!(
        "{}secrets:\n  file: {}/secrets.yaml\n{}",
        sb.inventory("lab", "tls.test"),
        sb.state.display(),
        hosts_yaml(SUBNET, &[("web", "web", 11)])
    );
    dir.write("inventories/lab.yaml", &text);
}

fn secrets(dir: &SiteDir, cert: &str, key: &str) {
    dir.secrets(&format!(
        "web_cert: {}\nweb_key: {}\n",
        serde_json::to_string(cert).unwrap(),
        serde_json::to_string(key).unwrap()
    ));
}

/// No line of the key (its BEGIN/END lines aside) in `text`.
fn no_key_in(what: &str, text: &str, key: &str) {
    for line in key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 4)
    {
        assert!(
            !text.contains(line),
            "{what} shows a line of the key:\n{text}"
        );
    }
}

/// The serial of the certificate the host serves for NAME on 443.
fn served_serial(ca: &Path) -> String {
    sh(&format!(
        "openssl s_client -connect {SUBNET}.11:443 -servername {NAME} -CAfile {} < /dev/null 2>/dev/null | openssl x509 -noout -serial",
        ca.display()
    ))
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nginx_serves_https_with_the_certificate_from_secrets() {
    require_root();
    let dir = SiteDir::new();
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(pki.path(), "server");
    let sb = dir.up(SUBNET, &[("web", 11)]);
    site(&dir, &sb);
    secrets(&dir, &cert, &key);
    let ca = pki.path().join("ca.pem");
    let infra = |args: &[&str]| infra(dir.path(), args);

    eprintln!("=== plan and apply: the certificate's files, the key shown nowhere");
    let plan = infra(&["plan", "lab"]);
    plan.assert_code(0);
    assert!(
        plan.stdout
            .contains("+ file /etc/ssl/infra/web.crt (root:root 0644)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("+ file /etc/ssl/infra/private/web.key (root:root 0600)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("+ dir /etc/ssl/infra/private (root:root 0700)"),
        "{}",
        plan.stdout
    );
    no_key_in("plan", &format!("{}{}", plan.stdout, plan.stderr), &key);
    let json = infra(&["plan", "lab", "--json"]);
    json.assert_code(0);
    no_key_in("plan --json", &json.stdout, &key);
    let apply = infra(&["apply", "lab", "--yes"]);
    apply.assert_code(0);
    no_key_in("apply", &format!("{}{}", apply.stdout, apply.stderr), &key);

    eprintln!(
        "=== https with the certificate from secrets, http redirects, the key is root's 0600"
    );
    let resolve = format!("{NAME}:443:{SUBNET}.11");
    let body = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://{NAME}/"),
    ]);
    assert_eq!(body, "hello over tls\n");
    let redirect = curl(&[
        "-I",
        "--resolve",
        &format!("{NAME}:80:{SUBNET}.11"),
        &format!("http://{NAME}/page?x=1"),
    ]);
    assert!(redirect.starts_with("HTTP/1.1 301"), "{redirect}");
    assert!(
        redirect.contains(&format!("Location: https://{NAME}/page?x=1")),
        "{redirect}"
    );
    let modes = sb.exec(
        "web",
        "stat -c '%a %U %G %n' /etc/ssl/infra/private/web.key /etc/ssl/infra/web.crt /etc/ssl/infra/private",
    );
    assert_eq!(
        modes.stdout,
        "600 root root /etc/ssl/infra/private/web.key\n644 root root /etc/ssl/infra/web.crt\n700 root root /etc/ssl/infra/private\n"
    );
    assert_eq!(sb.exec("web", "cat /etc/ssl/infra/web.crt").stdout, cert);
    let first = served_serial(&ca);
    assert_eq!(
        first,
        sh(&format!(
            "openssl x509 -noout -serial -in {}/server.pem",
            pki.path().display()
        ))
    );
    infra(&["plan", "lab", "--detailed-exitcode"]).assert_code(0);

    renewed_certificate_reloads_nginx(&dir, pki.path(), &key, &first);
}

fn renewed_certificate_reloads_nginx(dir: &SiteDir, pki: &Path, key: &str, first: &str) {
    let infra = |args: &[&str]| dir.infra(args);
    let ca = pki.join("ca.pem");
    eprintln!("=== a renewed certificate: digests only in the plan, nginx reloads and serves it");
    let (cert2, key2) = certificate(pki, "renewed");
    secrets(dir, &cert2, &key2);
    let plan = infra(&["plan", "lab"]);
    plan.assert_code(0);
    assert!(
        plan.stdout
            .contains("~ file /etc/ssl/infra/private/web.key"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("(holds a secret: content not shown)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("~ service nginx: reload"),
        "{}",
        plan.stdout
    );
    no_key_in("plan", &plan.stdout, &key2);
    no_key_in("plan", &plan.stdout, key);
    let apply = infra(&["apply", "lab", "--yes"]);
    apply.assert_code(0);
    assert!(
        apply.stdout.contains("web : ok=4 changed=3 failed=0"),
        "two files and the reload:\n{}",
        apply.stdout
    );
    // A reload hands new connections to new workers within moments.
    let mut renewed = served_serial(&ca);
    for _ in 0..20 {
        if renewed != first {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        renewed = served_serial(&ca);
    }
    assert_ne!(renewed, first, "nginx still serves the old certificate");
    assert_eq!(
        renewed,
        sh(&format!(
            "openssl x509 -noout -serial -in {}/renewed.pem",
            pki.display()
        ))
    );
    infra(&["plan", "lab", "--detailed-exitcode"]).assert_code(0);
}

#[test]
fn tls_secrets_must_be_the_roles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "roles/web.yaml",
        "name: web\nservices:\n  - {name: nginx}\ntls: {cert: web_cert, key: nope, notify: [ngnix]}\nsecrets: [web_cert]\n",
    );
    write(
        d,
        "inventories/lab.yaml",
        "environment: lab\ndomain: tls.test\ninternal_domain: lab.internal\nprovider: {type: static}\nhosts:\n  web: {roles: [web], address: 10.0.0.1}\n",
    );
    let run = infra(d, &["validate"]);
    run.assert_code(1);
    let e = &run.stderr;
    assert!(
        e.contains("`tls.key: nope` is not a secret of role `web`"),
        "{e}"
    );
    assert!(e.contains("--> roles/web.yaml:4:28"), "{e}");
    assert!(
        e.contains("`notify: ngnix` names no service of role `web`"),
        "{e}"
    );
    assert!(e.contains("did you mean `nginx`?"), "{e}");
}
