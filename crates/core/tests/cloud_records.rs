//! Route53 record sets as pure planning: the roles' `dns:` entries and hostnames merged per name
//! and type, the DKIM key derived from the secret, ownership through the registry records,
//! updates, removal with the role, destroy, and the site mistakes at their file and line.

use infra_core::cloud::records::{owner_name, owner_value, txt};
use infra_core::cloud::*;
use infra_core::environment::Environment;
use infra_core::render::Renderer;
use infra_core::secrets::Secrets;
use infra_core::site::Site;
use infra_protocol::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A copy of the repository's site, with `edits` (file, from, to) made to it.
fn site_with(edits: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["roles", "inventories", "templates"] {
        copy(&repo().join(sub), &tmp.path().join(sub));
    }
    for (file, from, to) in edits {
        let path = tmp.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            from.is_empty() || text.contains(from),
            "{file} lacks {from:?}"
        );
        let text = if from.is_empty() {
            format!("{text}{to}")
        } else {
            text.replacen(from, to, 1)
        };
        std::fs::write(path, text).unwrap();
    }
    tmp
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn load(dir: &Path) -> Site {
    let (site, diags) = Site::load(dir).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    site
}

/// An RSA key made by openssl: (PEM private key, base64 of its DER SubjectPublicKeyInfo).
fn openssl_key(traditional: bool) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let mut gen = Command::new("openssl");
    gen.args(["genrsa", "-out"]).arg(&key);
    if traditional {
        gen.arg("-traditional");
    }
    let ok = gen
        .arg("1024")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "openssl genrsa failed: install openssl (Debian: openssl)"
    );
    let out = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    use base64::Engine;
    (
        std::fs::read_to_string(&key).unwrap(),
        base64::engine::general_purpose::STANDARD.encode(out.stdout),
    )
}

fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    Secrets::from_values(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn plan_of(env: &Environment, facts: &CloudFacts, s: &Secrets) -> Result<CloudPlan, String> {
    let (renderer, diags) = Renderer::new(env.site);
    assert!(diags.is_empty(), "{diags:?}");
    plan_with(env, facts, Mode::Converge, &renderer, s).map_err(|d| {
        let at = d
            .location
            .as_ref()
            .map(|l| format!("{}:{}", l.file.display(), l.line))
            .unwrap_or_default();
        format!(
            "{at}: {} | {}",
            d.message,
            d.hint.clone().unwrap_or_default()
        )
    })
}

/// Every record change of the plan's batches, by zone name: (name, type) -> change.
fn batches(p: &CloudPlan) -> BTreeMap<String, Vec<RecordChange>> {
    let mut out: BTreeMap<String, Vec<RecordChange>> = BTreeMap::new();
    for o in p.ops() {
        if let CloudOp::ChangeRecords {
            zone_name, changes, ..
        } = o.op
        {
            out.entry(zone_name).or_default().extend(changes);
        }
    }
    out
}

fn find<'c>(changes: &'c [RecordChange], name: &str, t: RecordType) -> &'c RecordChange {
    changes
        .iter()
        .find(|c| c.name == name && c.record_type == t)
        .unwrap_or_else(|| panic!("no change of {name} {t}: {changes:#?}"))
}

/// Machines and Elastic IPs of every host, as after a cloud apply; zones present and empty.
fn machines(env: &Environment) -> CloudFacts {
    let mut facts = CloudFacts::default();
    for (i, (name, h)) in env.hosts.iter().enumerate() {
        facts.instances.push(InstanceFact {
            id: format!("i-{i}"),
            host: name.clone(),
            state: "running".into(),
            ami: "ami-0123456789abcdef0".into(),
            instance_type: h.view.instance_type.clone().unwrap(),
            private_ip: h.view.private_ip.clone(),
            public_ip: None,
            security_groups: vec![],
            roles: h.view.roles.join(","),
            launch_time: "2026-12-01T00:00:00Z".into(),
        });
        if h.view.public_ip.is_some() {
            facts.addresses.push(AddressFact {
                allocation_id: format!("eipalloc-{i}"),
                public_ip: format!("198.51.100.{}", i + 1),
                host: name.clone(),
                instance: Some(format!("i-{i}")),
                association_id: Some(format!("eipassoc-{i}")),
                reverse_dns: None,
            });
        }
    }
    for (id, name, private) in [
        ("Z1", "webplatform.org", false),
        ("Z2", "production.wpdn", true),
    ] {
        facts.zones.push(ZoneFact {
            id: id.into(),
            name: name.into(),
            private,
            owned: true,
            records: vec![],
        });
    }
    facts
}

/// `facts` after the plan's record batches ran (values must be known).
fn applied(mut facts: CloudFacts, p: &CloudPlan) -> CloudFacts {
    for (zone, changes) in batches(p) {
        let z = facts.zones.iter_mut().find(|z| z.name == zone).unwrap();
        for c in changes {
            z.records
                .retain(|r| !(r.name == c.name && r.record_type == c.record_type));
            if c.action == RecordAction::Upsert {
                for v in &c.values {
                    let (RecordValue::Ip(v) | RecordValue::Text(v)) = v else {
                        panic!("unknown value {v:?}");
                    };
                    z.records.push(RecordFact {
                        name: c.name.clone(),
                        value: v.clone(),
                        record_type: c.record_type,
                        ttl: c.ttl,
                        alias: None,
                    });
                }
            }
        }
    }
    facts
}

fn record_changes(p: &CloudPlan) -> Vec<&CloudChange> {
    p.changes
        .iter()
        .filter(|c| c.address.starts_with("aws_route53_record."))
        .collect()
}

fn fact(name: &str, t: RecordType, value: &str) -> RecordFact {
    RecordFact {
        name: name.into(),
        value: value.into(),
        record_type: t,
        ttl: 300,
        alias: None,
    }
}

#[test]
fn mail_records_and_round_robin_from_nothing() {
    let site = load(&repo());
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let (pem, spki) = openssl_key(false);
    let p = plan_of(
        &env,
        &CloudFacts::default(),
        &secrets(&[("dkim_private_key", &pem)]),
    )
    .unwrap();
    assert!(p.missing_secrets.is_empty());
    let b = batches(&p);
    let public = &b["webplatform.org"];
    let mx = find(public, "webplatform.org", RecordType::Mx);
    assert_eq!(
        mx.values,
        [RecordValue::Text("10 mail.webplatform.org.".into())]
    );
    assert_eq!(mx.ttl, 300);
    assert_eq!(
        find(public, "webplatform.org", RecordType::Txt).values,
        [RecordValue::Text("\"v=spf1 mx -all\"".into())]
    );
    assert_eq!(
        find(public, "_dmarc.webplatform.org", RecordType::Txt).values,
        [RecordValue::Text(
            "\"v=DMARC1; p=quarantine; rua=mailto:postmaster@webplatform.org\"".into()
        )]
    );
    // The DKIM key: openssl's own public key of the secret.
    let dkim = find(public, "infra._domainkey.webplatform.org", RecordType::Txt);
    assert_eq!(
        dkim.values,
        [RecordValue::Text(txt(&format!("v=DKIM1; k=rsa; p={spki}")))]
    );
    // Two hosts share accounts' hostname: one record set, both Elastic IPs (round robin).
    let accounts = find(public, "accounts.webplatform.org", RecordType::A);
    assert_eq!(
        accounts.values,
        [
            RecordValue::PublicIpOf("accounts1".into()),
            RecordValue::PublicIpOf("accounts2".into())
        ]
    );
    // Every public set is registered as the environment's; the internal zone has none.
    for c in public
        .iter()
        .filter(|c| !c.name.starts_with("_infra-owner."))
    {
        let reg = find(public, &owner_name(&c.name, c.record_type), RecordType::Txt);
        assert_eq!(reg.values, [RecordValue::Text(owner_value("production"))]);
    }
    assert!(!b["production.wpdn"]
        .iter()
        .any(|c| c.name.starts_with("_infra-owner")));
    // Plan addresses and attribute lines.
    let mx = p
        .changes
        .iter()
        .find(|c| c.address == "aws_route53_record.webplatform.org_MX")
        .unwrap();
    assert_eq!(mx.action, CloudAction::Create);
    let attrs: Vec<(&str, &str)> = mx
        .attrs
        .iter()
        .map(|a| (a.name.as_str(), a.after.as_deref().unwrap()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("type", "\"MX\""),
            ("ttl", "300"),
            ("records", "[\"10 mail.webplatform.org.\"]"),
            ("owner", "\"infra env=production\""),
        ]
    );
}

#[test]
fn a_pkcs1_key_gives_the_same_record_as_openssl_and_a_missing_one_a_placeholder() {
    let site = load(&repo());
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let (pem, spki) = openssl_key(true);
    assert!(pem.contains("BEGIN RSA PRIVATE KEY"), "{pem}");
    let p = plan_of(
        &env,
        &CloudFacts::default(),
        &secrets(&[("dkim_private_key", &pem)]),
    )
    .unwrap();
    let b = batches(&p);
    let dkim = find(
        &b["webplatform.org"],
        "infra._domainkey.webplatform.org",
        RecordType::Txt,
    );
    let RecordValue::Text(v) = &dkim.values[0] else {
        panic!()
    };
    // Split into quoted strings of at most 255 characters.
    assert_eq!(v, &txt(&format!("v=DKIM1; k=rsa; p={spki}")));
    // No secret set: a placeholder is planned and the plan says which secret is missing.
    let p = plan_of(&env, &CloudFacts::default(), &secrets(&[])).unwrap();
    assert_eq!(p.missing_secrets, ["dkim_private_key"]);
    // Not a key: an error at the entry, naming the secret.
    let e = plan_of(
        &env,
        &CloudFacts::default(),
        &secrets(&[("dkim_private_key", "hunter2")]),
    )
    .unwrap_err();
    assert!(e.contains("roles/mail.yaml:"), "{e}");
    assert!(
        e.contains("the secret `dkim_private_key` it holds no PEM block"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn txt_values_are_quoted_and_split_at_255() {
    assert_eq!(txt("a \"b\" c\\"), "\"a \\\"b\\\" c\\\\\"");
    let long = "x".repeat(300);
    assert_eq!(
        txt(&long),
        format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
    );
}

#[test]
fn applied_records_plan_nothing_and_changed_ones_update_in_place() {
    let site = load(&repo());
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let (pem, _) = openssl_key(false);
    let s = secrets(&[("dkim_private_key", &pem)]);
    let facts = machines(&env);
    let first = plan_of(&env, &facts, &s).unwrap();
    let accounts = find(
        &batches(&first)["webplatform.org"],
        "accounts.webplatform.org",
        RecordType::A,
    )
    .clone();
    assert_eq!(accounts.values.len(), 2, "{accounts:?}");
    let facts = applied(facts, &first);
    let again = plan_of(&env, &facts, &s).unwrap();
    assert!(record_changes(&again).is_empty(), "{:#?}", again.changes);

    // SPF changed by hand and the DMARC TTL too: both updated in place, nothing else.
    let mut drifted = facts.clone();
    let z = &mut drifted.zones[0];
    for r in z.records.iter_mut() {
        if r.name == "webplatform.org" && r.record_type == RecordType::Txt {
            r.value = "\"v=spf1 -all\"".into();
        }
        if r.name == "_dmarc.webplatform.org" {
            r.ttl = 60;
        }
    }
    let p = plan_of(&env, &drifted, &s).unwrap();
    let changes = record_changes(&p);
    let addresses: Vec<&str> = changes.iter().map(|c| c.address.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "aws_route53_record._dmarc.webplatform.org_TXT",
            "aws_route53_record.webplatform.org_TXT"
        ]
    );
    assert!(changes.iter().all(|c| c.action == CloudAction::Update));
    let spf = changes[1];
    assert_eq!(spf.attrs[0].name, "records");
    assert_eq!(spf.attrs[0].before.as_deref(), Some("[\"v=spf1 -all\"]"));
    assert_eq!(spf.attrs[0].after.as_deref(), Some("[\"v=spf1 mx -all\"]"));
    assert_eq!(changes[0].attrs[0].name, "ttl");
    // One batch for the zone, upserts only.
    let b = batches(&p);
    assert_eq!(b.len(), 1);
    assert!(b["webplatform.org"]
        .iter()
        .all(|c| c.action == RecordAction::Upsert));
}

#[test]
fn records_of_others_are_refused_or_left_alone() {
    let site = load(&repo());
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let (pem, _) = openssl_key(false);
    let s = secrets(&[("dkim_private_key", &pem)]);
    // Someone's MX at the apex, with no registry record: the mail role wants it.
    let mut facts = machines(&env);
    facts.zones[0].records.push(fact(
        "webplatform.org",
        RecordType::Mx,
        "10 mx.elsewhere.example.",
    ));
    let e = plan_of(&env, &facts, &s).unwrap_err();
    assert!(e.contains("roles/mail.yaml:"), "{e}");
    assert!(
        e.contains("record set webplatform.org MX exists and is not this environment's (it has no registry record _infra-owner.mx.webplatform.org); role `mail` on host `mail` wants it"),
        "{e}"
    );
    // Registered to another environment: named.
    facts.zones[0].records.push(fact(
        "_infra-owner.mx.webplatform.org",
        RecordType::Txt,
        &owner_value("staging"),
    ));
    let e = plan_of(&env, &facts, &s).unwrap_err();
    assert!(
        e.contains(
            "its registry record _infra-owner.mx.webplatform.org says \"infra env=staging\""
        ),
        "{e}"
    );
    // Records nobody here wants and nobody gave us stay untouched: a CNAME, an A record at an
    // address that is none of ours.
    let mut facts = machines(&env);
    facts.zones[0].records.extend([
        fact(
            "blog2.webplatform.org",
            RecordType::Cname,
            "blog.example.net.",
        ),
        fact("old.webplatform.org", RecordType::A, "203.0.113.9"),
    ]);
    let p = plan_of(&env, &facts, &s).unwrap();
    assert!(!p
        .changes
        .iter()
        .any(|c| c.address.contains("blog2.") || c.address.contains("old.webplatform.org")));
    // An A record at one of our Elastic IPs from before the registry is ours: it goes when no
    // role wants it, and a wanted one gets its registry record.
    let ip = facts.addresses[0].public_ip.clone();
    facts.zones[0]
        .records
        .push(fact("gone.webplatform.org", RecordType::A, &ip));
    let p = plan_of(&env, &facts, &s).unwrap();
    let gone = p
        .changes
        .iter()
        .find(|c| c.address == "aws_route53_record.gone.webplatform.org_A")
        .unwrap();
    assert_eq!(gone.action, CloudAction::Delete);
}

#[test]
fn removing_the_role_deletes_its_records_and_their_registry() {
    let site = load(&repo());
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let (pem, _) = openssl_key(false);
    let s = secrets(&[("dkim_private_key", &pem)]);
    let facts = machines(&env);
    let facts = applied(facts.clone(), &plan_of(&env, &facts, &s).unwrap());
    // The mail role loses its `dns:` (the whole mail host could go too: the same records go).
    let dir = site_with(&[("roles/mail.yaml", "\ndns:\n", "\nno_dns:\n")]);
    let text = std::fs::read_to_string(dir.path().join("roles/mail.yaml")).unwrap();
    let cut = text.find("\nno_dns:\n").unwrap();
    std::fs::write(dir.path().join("roles/mail.yaml"), &text[..cut + 1]).unwrap();
    let site2 = load(dir.path());
    let env2 = Environment::resolve(&site2, "production", &[]).unwrap();
    let p = plan_of(&env2, &facts, &s).unwrap();
    let deleted: BTreeSet<&str> = record_changes(&p)
        .iter()
        .map(|c| {
            assert_eq!(c.action, CloudAction::Delete, "{c:?}");
            c.address.as_str()
        })
        .collect();
    assert_eq!(
        deleted,
        BTreeSet::from([
            "aws_route53_record.webplatform.org_MX",
            "aws_route53_record.webplatform.org_TXT",
            "aws_route53_record._dmarc.webplatform.org_TXT",
            "aws_route53_record.infra._domainkey.webplatform.org_TXT",
        ])
    );
    let b = batches(&p);
    let names: BTreeSet<(String, RecordType)> = b["webplatform.org"]
        .iter()
        .map(|c| {
            assert_eq!(c.action, RecordAction::Delete);
            (c.name.clone(), c.record_type)
        })
        .collect();
    assert_eq!(
        names.len(),
        8,
        "4 sets and their 4 registry records: {names:?}"
    );
    assert!(names.contains(&(
        "_infra-owner.mx.webplatform.org".to_string(),
        RecordType::Txt
    )));
    // Deletes go early (phase 30): nothing is created in that zone.
    assert!(p
        .ops()
        .iter()
        .all(|o| !matches!(o.op, CloudOp::ChangeRecords { .. }) || o.phase == 30));
}

#[test]
fn destroy_deletes_our_records_and_leaves_the_others() {
    let site = load(&repo());
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    let (pem, _) = openssl_key(false);
    let s = secrets(&[("dkim_private_key", &pem)]);
    let facts = machines(&env);
    let mut facts = applied(facts.clone(), &plan_of(&env, &facts, &s).unwrap());
    facts.zones[0].owned = false;
    facts.zones[0].records.push(fact(
        "www.webplatform.org",
        RecordType::Cname,
        "cdn.example.net.",
    ));
    let p = plan(&env, &facts, Mode::Destroy).unwrap();
    let b = batches(&p);
    let public = &b["webplatform.org"];
    assert!(public.iter().all(|c| c.action == RecordAction::Delete));
    assert!(!public.iter().any(|c| c.name == "www.webplatform.org"));
    let found: BTreeSet<(&str, RecordType)> = facts.zones[0]
        .records
        .iter()
        .filter(|r| r.name != "www.webplatform.org")
        .map(|r| (r.name.as_str(), r.record_type))
        .collect();
    let deleted: BTreeSet<(&str, RecordType)> = public
        .iter()
        .map(|c| (c.name.as_str(), c.record_type))
        .collect();
    assert_eq!(deleted, found);
    // The public zone is someone else's: it stays; the internal one is deleted.
    assert!(!p
        .changes
        .iter()
        .any(|c| c.address == "aws_route53_zone.public"));
    assert!(p
        .changes
        .iter()
        .any(|c| c.address == "aws_route53_zone.internal" && c.action == CloudAction::Delete));
}

/// Plans `production` of a site with `edits`, expecting an error; returns it.
fn plan_error(edits: &[(&str, &str, &str)]) -> String {
    let dir = site_with(edits);
    let site = load(dir.path());
    let env = Environment::resolve(&site, "production", &[]).unwrap();
    plan_of(&env, &CloudFacts::default(), &secrets(&[])).unwrap_err()
}

#[test]
fn record_mistakes_are_errors_at_the_entry() {
    let ttl = plan_error(&[(
        "roles/accounts.yaml",
        "",
        "dns:\n  - {type: A, name: \"accounts.{{ env.domain }}\", value: 192.0.2.1, ttl: 60}\n",
    )]);
    assert!(ttl.contains("roles/accounts.yaml:"), "{ttl}");
    assert!(
        ttl.contains("record set accounts.webplatform.org A: host `accounts1` (role `accounts`) wants ttl 60, host `accounts1` (role `hostname`) wants ttl 300"),
        "{ttl}"
    );
    let zone = plan_error(&[(
        "roles/accounts.yaml",
        "",
        "dns:\n  - {type: TXT, name: example.com, value: x}\n",
    )]);
    assert!(
        zone.contains("record example.com of role `accounts` (host `accounts1`) is in neither zone of the environment (webplatform.org, production.wpdn)"),
        "{zone}"
    );
    let cname = plan_error(&[(
        "roles/accounts.yaml",
        "",
        "dns:\n  - {type: CNAME, name: \"accounts.{{ env.domain }}\", value: \"{{ host.name }}.example.net.\"}\n",
    )]);
    assert!(cname.contains("CNAME accounts.webplatform.org of role `accounts` (host `accounts1`) has 2 values; a CNAME has one"), "{cname}");
    let mx = plan_error(&[(
        "roles/accounts.yaml",
        "",
        "dns:\n  - {type: MX, name: \"{{ env.domain }}\", value: \"mail.example.org.\"}\n",
    )]);
    assert!(
        mx.contains("`dns[0]` of role `accounts` on host `accounts1`: \"mail.example.org.\" is not a MX value"),
        "{mx}"
    );
}

#[test]
fn dns_fields_are_validated_at_their_line() {
    let dir = site_with(&[
        ("roles/mail.yaml", "dkim: dkim_private_key", "dkim: dkim_privat_key"),
        (
            "roles/accounts.yaml",
            "",
            "dns:\n  - type: MX\n    name: x.webplatform.org\n    dkim: dkim_private_key\n  - {type: TXT, name: y.webplatform.org}\n  - {type: TXT, name: z.webplatform.org, value: \"{{ secrets.a }}\"}\n",
        ),
    ]);
    let (site, diags) = Site::load(dir.path()).unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let found: Vec<String> = infra_core::validate::check_roles(&site)
        .iter()
        .map(|d| {
            let l = d.location.as_ref().unwrap();
            format!(
                "{}:{} {} | {}",
                l.file.file_name().unwrap().to_string_lossy(),
                l.line,
                d.message,
                d.hint.clone().unwrap_or_default()
            )
        })
        .collect();
    let text = found.join("\n");
    // The lines appended to accounts.yaml start after its own.
    let base = std::fs::read_to_string(repo().join("roles/accounts.yaml"))
        .unwrap()
        .lines()
        .count();
    let mail_line = 1 + std::fs::read_to_string(repo().join("roles/mail.yaml"))
        .unwrap()
        .lines()
        .position(|l| l.contains("dkim: dkim_private_key"))
        .unwrap();
    for want in [
        format!("mail.yaml:{mail_line} `dns[2].dkim` of role `mail` names `dkim_privat_key`, which is not a secret of the role | did you mean `dkim_private_key`?"),
        format!("accounts.yaml:{} `dns[0].dkim` of role `accounts` is on a MX record; a DKIM key is a TXT record", base + 2),
        format!("accounts.yaml:{} `dns[0].dkim` of role `accounts` names `dkim_private_key`, which is not a secret of the role", base + 4),
        format!("accounts.yaml:{} `dns[1]` of role `accounts` needs exactly one of `value`, `values` and `dkim`", base + 5),
        format!("accounts.yaml:{} `dns[2].value` of role `accounts` uses a secret", base + 6),
    ] {
        assert!(text.contains(&want), "lacks {want:?}:\n{text}");
    }
    // An unknown type is refused as the role is read, at its line.
    let dir = site_with(&[(
        "roles/accounts.yaml",
        "",
        "dns:\n  - {type: SPF, name: x.webplatform.org, value: x}\n",
    )]);
    let (_, diags) = Site::load(dir.path()).unwrap();
    let d = diags.first().expect("an error for type SPF");
    assert!(d.message.contains("SPF"), "{d:?}");
    assert_eq!(d.location.as_ref().unwrap().line, base + 2, "{d:?}");
}
