//! Validation: every check of a site and its environments, each problem a diagnostic.

use crate::diagnostic::Diagnostic;
use crate::environment::Environment;
use crate::model::{Connection, ProviderKind, Sp};
use crate::render::Renderer;
use crate::secrets::Secrets;
use crate::site::Site;
use crate::suggest::did_you_mean;
use std::collections::{BTreeMap, BTreeSet};

/// Checks that need no inventory: each role on its own and the include graph.
pub fn check_roles(site: &Site) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for (stem, role) in &site.roles {
        diags.extend(role_name_mismatch(site, stem, role));
        diags.extend(reserved_role_name(site, role));
        diags.extend(unknown_role_references(site, stem, role));
        diags.extend(count_min_above_max(site, stem, role));
        diags.extend(reverse_dns_without_name(site, stem, role));
        diags.extend(reverse_dns_behind_lb(site, stem, role));
        diags.extend(bad_secret_names(site, role));
        diags.extend(check_file_entries(site, stem, role));
        diags.extend(unguarded_commands(site, stem, role));
        diags.extend(release_problems(site, stem, role));
        diags.extend(rollout_fields(site, stem, role));
        diags.extend(apt_source_problems(site, stem, role));
        diags.extend(tls_problems(site, stem, role));
        diags.extend(dns_problems(site, stem, role));
        diags.extend(lb_problems(site, stem, role));
    }
    diags.extend(duplicate_apt_sources(site));
    diags.extend(include_cycles(site));
    diags
}

/// The problems of a role's `dns:` entries that need no host: exactly one of `value`, `values`
/// and `dkim`; `dkim` on a TXT record and naming a secret of the role; no secrets in the Tera
/// strings (the plan shows them).
fn dns_problems(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    use infra_protocol::RecordType;
    let file = &role.file;
    let mut diags = Vec::new();
    for (i, entry) in role.value.dns.iter().enumerate() {
        let e = &entry.value;
        let given = usize::from(e.value.is_some())
            + usize::from(!e.values.is_empty())
            + usize::from(e.dkim.is_some());
        let at = site.loc(file, entry, 1);
        if given != 1 {
            diags.push(
                Diagnostic::error(format!(
                    "`dns[{i}]` of role `{stem}` needs exactly one of `value`, `values` and `dkim`"
                ))
                .at(at.clone())
                .hint("e.g. `value: \"10 mail.{{ env.domain }}.\"`, or `values: [..]` for several, or `dkim: <secret>` for a DKIM key's TXT record"),
            );
        }
        if let Some(k) = &e.dkim {
            if e.record_type.value != RecordType::Txt {
                diags.push(
                    Diagnostic::error(format!(
                        "`dns[{i}].dkim` of role `{stem}` is on a {} record; a DKIM key is a TXT record",
                        e.record_type.value
                    ))
                    .at(site.loc(file, &e.record_type, 1))
                    .hint("write `type: TXT`"),
                );
            }
            let names: Vec<&str> = role
                .value
                .secrets
                .iter()
                .map(|s| s.value.as_str())
                .collect();
            if !names.contains(&k.value.as_str()) {
                let mut d = Diagnostic::error(format!(
                    "`dns[{i}].dkim` of role `{stem}` names `{}`, which is not a secret of the role",
                    k.value
                ))
                .at(site.loc(file, k, k.value.chars().count()));
                d = match did_you_mean(&k.value, names.iter().copied()) {
                    Some(s) => d.hint(format!(
                        "{s} (the role's secrets; add `{}` under `secrets:` if it is a new one)",
                        k.value
                    )),
                    None => d.hint(format!(
                        "add `{}` under the role's `secrets:` (its value: the PEM RSA private key)",
                        k.value
                    )),
                };
                diags.push(d);
            }
        }
        for (field, text) in crate::render::dns_fields(&role.value) {
            if field.starts_with(&format!("dns[{i}]."))
                && crate::render::mentions_secrets(&text.value)
            {
                diags.push(
                    Diagnostic::error(format!("`{field}` of role `{stem}` uses a secret"))
                        .at(site.loc(file, text, text.value.chars().count()))
                        .hint("DNS records are public and the plan shows them; a DKIM key's record comes from `dkim: <secret>`"),
                );
            }
        }
    }
    diags
}

/// The problems of a role's `load_balancer:` that need no host: listeners only 80 and 443,
/// 443 with a certificate (and a certificate only with 443), a port, the port not also in
/// `ports:` (behind a load balancer it is open to the load balancer only), a health check AWS
/// accepts, no secrets in its Tera strings.
fn lb_problems(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let Some(lb) = &role.value.load_balancer else {
        return Vec::new();
    };
    let file = &role.file;
    let mut diags = Vec::new();
    let mut err = |at: crate::diagnostic::SourceLocation, message: String, hint: &str| {
        diags.push(
            Diagnostic::error(format!("`load_balancer` of role `{stem}`: {message}"))
                .at(at)
                .hint(hint.to_string()),
        );
    };
    let l = &lb.value;
    if l.port.value == 0 {
        err(
            site.loc(file, &l.port, 1),
            "port 0 is not a port".into(),
            "give the port the role's hosts serve on, e.g. `port: 8000`",
        );
    }
    let mut seen = BTreeSet::new();
    for p in &l.listeners {
        if !crate::cloud::lb::LISTENER_PORTS.contains(&p.value) || !seen.insert(p.value) {
            err(
                site.loc(file, p, p.value.to_string().len()),
                format!("listener {} is not allowed (or given twice)", p.value),
                "listeners are 80 (HTTP) and 443 (HTTPS, with `certificate`), each at most once",
            );
        }
    }
    let has_443 = l.listeners.iter().any(|p| p.value == 443);
    match (&l.certificate, has_443) {
        (None, true) => err(
            site.loc(file, lb, 1),
            "listener 443 needs a `certificate`".into(),
            "add `certificate:` with the ARN of an ACM certificate, or drop 443",
        ),
        (Some(c), false) => err(
            site.loc(file, c, c.value.chars().count()),
            "a `certificate` without listener 443".into(),
            "add 443 to `listeners:`, or remove the certificate",
        ),
        _ => {}
    }
    if let Some(p) = role
        .value
        .ports
        .iter()
        .find(|p| p.number == l.port.value && p.proto == infra_protocol::Proto::Tcp)
    {
        err(
            site.loc(file, &l.port, l.port.value.to_string().len()),
            format!("port {} is also in `ports:` (open to the world)", p.number),
            "behind a load balancer the port is opened to the load balancer only: remove it from `ports:`",
        );
    }
    if let Some(h) = &l.health {
        for (at, message) in lb_health_problems(site, file, &h.value) {
            err(at, message, "path: /health, matcher: \"200\" (or 200-299, 200,302), interval: 6-300 seconds, healthy and unhealthy: 2-10");
        }
    }
    for (field, text) in crate::render::lb_fields(&role.value) {
        if crate::render::mentions_secrets(&text.value) {
            err(
                site.loc(file, text, text.value.chars().count()),
                format!("`{field}` uses a secret"),
                "the plan shows it: a certificate is named by its ARN",
            );
        }
    }
    diags
}

/// The values of a load balancer's health check AWS refuses: where, and what.
fn lb_health_problems(
    site: &Site,
    file: &std::path::Path,
    h: &crate::model::LbHealth,
) -> Vec<(crate::diagnostic::SourceLocation, String)> {
    let mut out = Vec::new();
    if let Some(p) = &h.path {
        let v = &p.value;
        if !v.starts_with('/')
            || v.len() > 1024
            || v.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            out.push((
                site.loc(file, p, v.chars().count()),
                format!("health path {v:?} is not a URL path"),
            ));
        }
    }
    if let Some(m) = &h.matcher {
        let code = |c: Option<&str>| {
            c.and_then(|c| c.parse::<u16>().ok())
                .is_some_and(|c| (200..=499).contains(&c))
        };
        let ok = !m.value.is_empty()
            && m.value.split(',').all(|part| {
                let mut ends = part.split('-');
                let (a, b, rest) = (ends.next(), ends.next(), ends.next());
                code(a) && (b.is_none() || code(b)) && rest.is_none()
            });
        if !ok {
            out.push((
                site.loc(file, m, m.value.chars().count()),
                format!("health matcher {:?} is not a list of HTTP codes", m.value),
            ));
        }
    }
    if let Some(i) = &h.interval {
        if !(6..=300).contains(&i.value) {
            out.push((
                site.loc(file, i, i.value.to_string().len()),
                format!("health interval {} is out of 6-300 seconds", i.value),
            ));
        }
    }
    for c in [&h.healthy, &h.unhealthy].into_iter().flatten() {
        if !(2..=10).contains(&c.value) {
            out.push((
                site.loc(file, c, c.value.to_string().len()),
                format!("health threshold {} is out of 2-10", c.value),
            ));
        }
    }
    out
}

/// A role's `name` that differs from its file's stem.
fn role_name_mismatch(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Option<Diagnostic> {
    let r = &role.value;
    let file = &role.file;
    (r.name.value != stem).then(|| {
        Diagnostic::error(format!(
            "role file `{}` is named `{}`, but its `name` is `{}`",
            file.display(),
            stem,
            r.name.value
        ))
        .at(site.loc(file, &r.name, r.name.value.chars().count()))
        .hint(format!("set `name: {stem}` or rename the file"))
    })
}

/// A role named `<x>_lb` or `<x>-lb`: its security group would be the one of role `<x>`'s
/// load balancer (`<env>-<x>-lb`), open to the world on the listeners.
fn reserved_role_name(
    site: &Site,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Option<Diagnostic> {
    let name = &role.value.name;
    let base = name
        .value
        .strip_suffix("_lb")
        .or_else(|| name.value.strip_suffix("-lb"))?;
    Some(
        Diagnostic::error(format!(
            "role name `{}` ends in `_lb`/`-lb`, which names the security group of role `{base}`'s load balancer",
            name.value
        ))
        .at(site.loc(&role.file, name, name.value.chars().count()))
        .hint("rename the role (and its file), e.g. `{base}-balanced`".replace("{base}", base)),
    )
}

/// Unknown roles in `includes`, `requires_on_same_host` and `exposes.to`, with a did-you-mean.
fn unknown_role_references(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let r = &role.value;
    let file = &role.file;
    let mut diags = Vec::new();
    let mut unknown = |list: &[Sp<String>], field: &str| {
        for item in list {
            if !site.has_role(&item.value) {
                diags.push(
                    Diagnostic::error(format!(
                        "unknown role `{}` in `{field}` of role `{stem}`",
                        item.value
                    ))
                    .at(site.loc(file, item, item.value.chars().count()))
                    .hint_opt(did_you_mean(
                        &item.value,
                        site.roles.keys().map(String::as_str),
                    )),
                );
            }
        }
    };
    unknown(&r.includes, "includes");
    unknown(&r.requires_on_same_host, "requires_on_same_host");
    for e in &r.exposes {
        unknown(&e.to, "exposes.to");
    }
    diags
}

/// A `count` whose `min` is above its `max`.
fn count_min_above_max(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Option<Diagnostic> {
    let c = role.value.count.as_ref()?;
    let (Some(min), Some(max)) = (c.value.min, c.value.max) else {
        return None;
    };
    (min > max).then(|| {
        Diagnostic::error(format!(
            "role `{stem}`: count.min {min} is above count.max {max}"
        ))
        .at(site.loc(&role.file, c, 1))
    })
}

/// `reverse_dns: true` on a role without both `public_ip: true` and a `hostname`.
fn reverse_dns_without_name(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Option<Diagnostic> {
    let r = &role.value;
    let rdns = r.reverse_dns.as_ref()?;
    (rdns.value && (!r.public_ip || r.hostname.is_none())).then(|| {
        Diagnostic::error(format!(
            "role `{stem}` asks for reverse DNS but has no {}",
            if r.public_ip { "`hostname`" } else { "`public_ip: true`" }
        ))
        .at(site.loc(&role.file, rdns, 4))
        .hint("reverse DNS maps the public IP to the role's hostname: set both `public_ip: true` and `hostname`")
    })
}

/// `reverse_dns: true` on a role whose hostname its load balancer answers for: the name's A
/// record is then the balancer's alias, not the instance's address, and AWS refuses a reverse
/// record that does not point back at the same address.
fn reverse_dns_behind_lb(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Option<Diagnostic> {
    let r = &role.value;
    let rdns = r.reverse_dns.as_ref().filter(|v| v.value)?;
    let lb = r.load_balancer.as_ref()?;
    let role_name = r.hostname.as_ref()?;
    let normal = crate::cloud::records::normal;
    let shared =
        (lb.value.hostname.as_ref()).is_none_or(|h| normal(&h.value) == normal(&role_name.value));
    shared.then(|| {
        Diagnostic::error(format!(
            "role `{stem}` asks for reverse DNS of `{}`, which its load balancer answers for",
            role_name.value
        ))
        .at(site.loc(&role.file, rdns, 4))
        .hint("the name must resolve to the instance's own address: give `load_balancer.hostname` another name, or drop `reverse_dns`")
    })
}

/// Secret names that are not lowercase letters, digits and `_`.
fn bad_secret_names(
    site: &Site,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let valid = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    role.value
        .secrets
        .iter()
        .filter(|s| !valid(&s.value))
        .map(|s| {
            Diagnostic::error(format!(
                "secret name `{}` is not lowercase letters, digits and _",
                s.value
            ))
            .at(site.loc(&role.file, s, s.value.chars().count()))
            .hint("secret names become environment variables INFRA_SECRET_<NAME>")
        })
        .collect()
}

/// Each file entry of a role in turn: its `template` or `source`, then its `notify`.
fn check_file_entries(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let services = notifiable_services(site, stem);
    let mut diags = Vec::new();
    for entry in &role.value.files {
        diags.extend(file_entry_origin(site, &role.file, entry));
        diags.extend(unquoted_secrets(site, &entry.value));
        diags.extend(notify_naming_no_service(
            site,
            stem,
            &role.file,
            &entry.value,
            &services,
        ));
    }
    diags
}

/// Services a role can notify: its own and those of the roles it includes.
fn notifiable_services<'s>(site: &'s Site, stem: &str) -> BTreeSet<&'s str> {
    let expanded = crate::environment::expand_roles(site, [stem]);
    expanded
        .iter()
        .filter_map(|n| site.roles.get(n))
        .flat_map(|r| r.value.services.iter().map(|s| s.name.as_str()))
        .collect()
}

/// A file entry with both or neither of `template` and `source`, or one naming a missing file.
fn file_entry_origin(
    site: &Site,
    file: &std::path::Path,
    entry: &Sp<crate::model::FileEntry>,
) -> Option<Diagnostic> {
    match (&entry.value.template, &entry.value.source) {
        (Some(_), Some(_)) => Some(
            Diagnostic::error("file entry has both `template` and `source`")
                .at(site.loc(file, entry, 1))
                .hint("`template` is rendered with Tera, `source` is copied as is: keep one"),
        ),
        (None, None) => Some(
            Diagnostic::error("file entry has neither `template` nor `source`")
                .at(site.loc(file, entry, 1))
                .hint("add `template: path/in/templates.j2` or `source: path/in/templates`"),
        ),
        (Some(t), None) => template_problem(site, file, t),
        (None, Some(s)) => source_problem(site, file, s),
    }
}

/// Why a file entry's content is shell code, if it is: an executable mode, a `.sh` name, a
/// `#!` line, or `sourced: true`.
fn script_reason(entry: &crate::model::FileEntry, text: &str) -> Option<String> {
    if let Some(m) = entry.mode.filter(|m| m.0 & 0o111 != 0) {
        return Some(format!("its mode {:04o} makes it executable", m.0));
    }
    if entry.dest.value.ends_with(".sh") {
        return Some("its destination ends in .sh".into());
    }
    if text.starts_with("#!") {
        return Some("it starts with #!".into());
    }
    entry
        .sourced
        .then(|| "its entry says `sourced: true`".into())
}

/// A secret written into a script template (or a shell-sourced file) without a quoting
/// filter: a `'` in its value would end the quotes around it, and the rest would run.
fn unquoted_secrets(site: &Site, entry: &crate::model::FileEntry) -> Vec<Diagnostic> {
    let Some(t) = &entry.template else {
        return Vec::new();
    };
    let Some(file) = site.templates.get(&t.value) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&file.bytes);
    let Some(reason) = script_reason(entry, &text) else {
        return Vec::new();
    };
    let path = std::path::Path::new("templates").join(&t.value);
    unquoted_secret_uses(&text)
        .into_iter()
        .map(|(offset, name)| {
            let line = text[..offset].matches('\n').count() + 1;
            let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
            Diagnostic::error(format!(
                "secret `{name}` is written into shell code without a quoting filter ({} is a script: {reason})",
                entry.dest.value
            ))
            .at(site.sources.location(&path, line, col, "secrets.".len() + name.len()))
            .hint(format!(
                "write `{{{{ secrets.{name} | sh }}}}` for one sh word, `{{{{ secrets.{name} | sql }}}}` for an SQL string literal (sent on stdin, in a quoted here-document), `(secrets.{name} | url)` inside a URL that is then `| sh`; never on a command line"
            ))
        })
        .collect()
}

/// The byte offset and name of each `secrets.NAME` in a `{{ }}` or `{% %}` tag of `text` that
/// no quoting filter (`render::QUOTING_FILTERS`) applies to: one right after it (before the
/// next `~`, `)` or `,`), or, in a `{{ }}`, the tag's last filter. `{% if %}` tests print
/// nothing and are left alone.
pub fn unquoted_secret_uses(text: &str) -> Vec<(usize, String)> {
    let quoting = |segment: &str| {
        segment.split('|').skip(1).any(|f| {
            let name: String = f
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            crate::render::QUOTING_FILTERS.contains(&name.as_str())
        })
    };
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = text[at..].find(['{']).map(|i| at + i) {
        let kind = text[open..].chars().nth(1);
        let close = match kind {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                at = open + 1;
                continue;
            }
        };
        let start = open + 2;
        let Some(end) = text[start..].find(close).map(|i| start + i) else {
            break;
        };
        let tag = &text[start..end];
        let head = tag.trim_start().trim_start_matches('-').trim_start();
        let is_test = kind == Some('%') && (head.starts_with("if ") || head.starts_with("elif "));
        // `{{ (...) | sh }}`: the tag ends with a quoting filter and nothing after it.
        let last_filter_quotes = kind == Some('{') && tag.contains('|') && {
            let last = tag.rsplit('|').next().unwrap_or_default();
            let last = last.trim().trim_end_matches('-').trim_end();
            crate::render::QUOTING_FILTERS.contains(&last)
        };
        let mut from = 0;
        while let Some(i) = tag[from..].find("secrets.").map(|i| from + i) {
            let name_start = i + "secrets.".len();
            let name: String = tag[name_start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = &tag[name_start + name.len()..];
            let segment = after.split(['~', ')', ',']).next().unwrap_or_default();
            let word_before = i > 0
                && tag[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !name.is_empty()
                && !word_before
                && !is_test
                && !quoting(segment)
                && !last_filter_quotes
            {
                found.push((start + i, name.clone()));
            }
            from = name_start;
        }
        at = end + 2;
    }
    found
}

/// A `template` missing from templates/ (with a did-you-mean) or not ending in .j2.
fn template_problem(site: &Site, file: &std::path::Path, t: &Sp<String>) -> Option<Diagnostic> {
    if !site.templates.contains_key(&t.value) {
        let names = site
            .templates
            .values()
            .filter(|t| t.is_tera())
            .map(|t| t.name.as_str());
        Some(
            Diagnostic::error(format!("template `{}` not found in templates/", t.value))
                .at(site.loc(file, t, t.value.chars().count()))
                .hint_opt(did_you_mean(&t.value, names)),
        )
    } else if !t.value.ends_with(".j2") {
        Some(
            Diagnostic::error(format!("template `{}` does not end in .j2", t.value))
                .at(site.loc(file, t, t.value.chars().count()))
                .hint("Tera templates end in .j2; use `source:` for a file copied as is"),
        )
    } else {
        None
    }
}

/// A `source` missing from templates/, with a did-you-mean.
fn source_problem(site: &Site, file: &std::path::Path, s: &Sp<String>) -> Option<Diagnostic> {
    if site.templates.contains_key(&s.value) {
        return None;
    }
    let names = site.templates.keys().map(String::as_str);
    Some(
        Diagnostic::error(format!("source `{}` not found in templates/", s.value))
            .at(site.loc(file, s, s.value.chars().count()))
            .hint_opt(did_you_mean(&s.value, names)),
    )
}

/// `notify` entries naming no service of the role or the roles it includes.
fn notify_naming_no_service(
    site: &Site,
    stem: &str,
    file: &std::path::Path,
    entry: &crate::model::FileEntry,
    services: &BTreeSet<&str>,
) -> Vec<Diagnostic> {
    // With a broken role file the services it defines are unknown: say nothing.
    if !site.broken_roles.is_empty() {
        return Vec::new();
    }
    entry
        .notify
        .iter()
        .filter(|n| !services.contains(n.value.as_str()))
        .map(|n| {
            Diagnostic::error(format!(
                "`notify: {}` names no service of role `{stem}` or the roles it includes",
                n.value
            ))
            .at(site.loc(file, n, n.value.chars().count()))
            .hint_opt(
                did_you_mean(&n.value, services.iter().copied())
                    .or_else(|| Some(format!("add `{}` under `services:`", n.value))),
            )
        })
        .collect()
}

/// Components against the suite: none for a flat repository (`suite: jessie/`), at least one
/// otherwise. A templated suite is not flat (its value is only known per host).
fn apt_components_problem(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
    a: &Sp<crate::model::AptSource>,
) -> Option<Diagnostic> {
    let src = &a.value;
    let templated = src.suite.value.contains("{{") || src.suite.value.contains("{%");
    let flat = !templated && crate::desired_apt::is_flat(&src.suite.value);
    if flat && !src.components.is_empty() {
        return Some(
            Diagnostic::error(format!(
                "apt source `{}` of role `{stem}` is a flat repository (suite `{}`) with components",
                src.name.value, src.suite.value
            ))
            .at(site.loc(&role.file, &src.suite, src.suite.value.chars().count()))
            .hint("a flat repository has none: write `components: []`, or a suite without the trailing `/`"),
        );
    }
    if !flat && src.components.is_empty() {
        return Some(
            Diagnostic::error(format!(
                "apt source `{}` of role `{stem}` names no component",
                src.name.value
            ))
            .at(site.loc(&role.file, a, 1))
            .hint("add `components: [main]` (the repository's documentation names them); a flat repository's suite ends with `/` (`suite: jessie/`)"),
        );
    }
    None
}

/// A role's `apt_sources:`: each names at least one component, except a flat repository (a
/// suite ending with `/`, written as it is, not templated), which names none; and its `key` is
/// a file under templates/ holding an OpenPGP public key (armored or binary).
fn apt_source_problems(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for a in &role.value.apt_sources {
        let src = &a.value;
        diags.extend(apt_components_problem(site, stem, role, a));
        let key = &src.key;
        let at = site.loc(&role.file, key, key.value.chars().count());
        match site.templates.get(&key.value) {
            None => diags.push(
                Diagnostic::error(format!(
                    "key `{}` of apt source `{}` not found in templates/",
                    key.value, src.name.value
                ))
                .at(at)
                .hint_opt(
                    did_you_mean(&key.value, site.templates.keys().map(String::as_str)).or_else(
                        || {
                            Some(format!(
                                "put the repository's public key at templates/{}",
                                key.value
                            ))
                        },
                    ),
                ),
            ),
            Some(file) => {
                if let Err(why) = crate::desired_apt::key_kind(&file.bytes) {
                    diags.push(
                        Diagnostic::error(format!(
                            "key `{}` of apt source `{}` {why}",
                            key.value, src.name.value
                        ))
                        .at(at)
                        .hint("use the repository's signing key as it publishes it (e.g. `curl -fsSL URL/KEY.gpg`), armored or binary"),
                    );
                }
            }
        }
    }
    diags
}

/// An apt source name given twice: in one role, or by two roles (a host holding both would
/// have one file for two sources).
fn duplicate_apt_sources(site: &Site) -> Vec<Diagnostic> {
    let mut first: BTreeMap<&str, (&str, &std::path::Path, usize)> = BTreeMap::new();
    let mut diags = Vec::new();
    for (stem, role) in &site.roles {
        for a in &role.value.apt_sources {
            let name = a.value.name.value.as_str();
            let line = a.value.name.referenced.line() as usize;
            if let Some((other, file, at)) = first.get(name) {
                diags.push(
                    Diagnostic::error(format!(
                        "apt source `{name}` is defined twice: by role `{other}` and role `{stem}`"
                    ))
                    .at(site.loc(&role.file, &a.value.name, name.len()))
                    .note(format!("the first is at {}:{at}", file.display()))
                    .hint("give one another `name`, or move the source to a role both include"),
                );
            } else {
                first.insert(name, (stem.as_str(), role.file.as_path(), line));
            }
        }
    }
    diags
}

/// A role's `tls:`: both secrets declared under the role's `secrets:`, `notify` naming
/// services of the role or the roles it includes.
fn tls_problems(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let Some(tls) = &role.value.tls else {
        return Vec::new();
    };
    let declared: BTreeSet<&str> = role
        .value
        .secrets
        .iter()
        .map(|s| s.value.as_str())
        .collect();
    let mut diags = Vec::new();
    for (field, secret) in [("cert", &tls.value.cert), ("key", &tls.value.key)] {
        if !declared.contains(secret.value.as_str()) {
            diags.push(
                Diagnostic::error(format!(
                    "`tls.{field}: {}` is not a secret of role `{stem}`",
                    secret.value
                ))
                .at(site.loc(&role.file, secret, secret.value.chars().count()))
                .hint(format!(
                    "add `{}` to the role's `secrets:` (its value: the PEM text)",
                    secret.value
                )),
            );
        }
    }
    if tls.value.cert.value == tls.value.key.value {
        diags.push(
            Diagnostic::error("`tls.cert` and `tls.key` name the same secret")
                .at(site.loc(&role.file, &tls.value.key, tls.value.key.value.len()))
                .hint("the certificate and its private key are two secrets"),
        );
    }
    if site.broken_roles.is_empty() {
        let services = notifiable_services(site, stem);
        for n in &tls.value.notify {
            if !services.contains(n.value.as_str()) {
                diags.push(
                    Diagnostic::error(format!(
                        "`notify: {}` names no service of role `{stem}` or the roles it includes",
                        n.value
                    ))
                    .at(site.loc(&role.file, n, n.value.chars().count()))
                    .hint_opt(did_you_mean(&n.value, services.iter().copied())),
                );
            }
        }
    }
    diags
}

/// Commands with neither `unless` nor `creates`, so not idempotent.
fn unguarded_commands(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    role.value
        .commands
        .iter()
        .filter(|c| c.value.unless.is_none() && c.value.creates.is_none())
        .map(|c| {
            Diagnostic::error(format!(
                "command `{}` of role `{stem}` has neither `unless` nor `creates`",
                c.value.name
            ))
            .at(site.loc(&role.file, c, 1))
            .hint("commands must be idempotent: add `unless: <test command>` or `creates: <path>`")
        })
        .collect()
}

/// Each include cycle once, reported at the include that closes it.
fn include_cycles(site: &Site) -> Vec<Diagnostic> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit(
        site: &Site,
        name: &str,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        seen: &mut BTreeSet<BTreeSet<String>>,
        diags: &mut Vec<Diagnostic>,
    ) {
        let Some(role) = site.roles.get(name) else {
            return;
        };
        marks.insert(name.to_string(), Mark::Active);
        stack.push(name.to_string());
        for inc in &role.value.includes {
            match marks.get(&inc.value) {
                Some(Mark::Active) => {
                    let start = stack.iter().position(|s| *s == inc.value).unwrap_or(0);
                    let cycle: Vec<String> = stack[start..].to_vec();
                    let key: BTreeSet<String> = cycle.iter().cloned().collect();
                    if seen.insert(key) {
                        let mut path = cycle.join(" -> ");
                        path.push_str(" -> ");
                        path.push_str(&inc.value);
                        diags.push(
                            Diagnostic::error(format!("include cycle: {path}"))
                                .at(site.loc(&role.file, inc, inc.value.chars().count()))
                                .hint(format!(
                                    "remove `{}` from the includes of role `{name}`",
                                    inc.value
                                )),
                        );
                    }
                }
                Some(Mark::Done) => {}
                None => visit(site, &inc.value, marks, stack, seen, diags),
            }
        }
        stack.pop();
        marks.insert(name.to_string(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut diags = Vec::new();
    for name in site.roles.keys() {
        if !marks.contains_key(name) {
            visit(
                site,
                name,
                &mut marks,
                &mut Vec::new(),
                &mut seen,
                &mut diags,
            );
        }
    }
    diags
}

/// A role's `after`, `health`: unknown roles (with a did-you-mean), a role after itself, a
/// health check with both or neither of `http` and `command`, an HTTP path or Host header that
/// is not one.
fn rollout_fields(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let r = &role.value;
    let file = &role.file;
    let mut diags = Vec::new();
    for a in &r.after {
        let at = site.loc(file, a, a.value.chars().count().max(1));
        if !site.has_role(&a.value) {
            diags.push(
                Diagnostic::error(format!(
                    "unknown role `{}` in `after` of role `{stem}`",
                    a.value
                ))
                .at(at)
                .hint_opt(
                    did_you_mean(&a.value, site.roles.keys().map(String::as_str)).map(|d| {
                        format!("{d} (`after` names roles whose hosts are applied first)")
                    }),
                ),
            );
        } else if a.value == stem {
            diags.push(
                Diagnostic::error(format!("role `{stem}` is `after` itself"))
                    .at(at)
                    .hint("`after` names other roles, whose hosts are applied before this role's: remove it"),
            );
        }
    }
    if let Some(h) = &r.health {
        diags.extend(health_problems(site, file, h, stem));
    }
    diags
}

/// The problems of one `health:`, each at its line.
fn health_problems(
    site: &Site,
    file: &std::path::Path,
    h: &Sp<crate::model::Health>,
    stem: &str,
) -> Vec<Diagnostic> {
    let at = site.loc(file, h, "health".len());
    let mut diags = Vec::new();
    match (&h.value.http, &h.value.command) {
        (Some(_), Some(_)) => diags.push(
            Diagnostic::error(format!("health of role `{stem}` has both `http` and `command`"))
                .at(at.clone())
                .hint("keep one: `http: {port: 80, path: /health/}` asks the host's web server, `command:` runs a shell command as root (exit 0 = healthy)"),
        ),
        (None, None) => diags.push(
            Diagnostic::error(format!("health of role `{stem}` has neither `http` nor `command`"))
                .at(at.clone())
                .hint("add `http: {port: 80, path: /health/}` (curl on the host, status 200 expected) or `command: \"...\"` (exit 0 = healthy)"),
        ),
        _ => {}
    }
    if let Some(http) = &h.value.http {
        let bad = |c: char| c.is_whitespace() || c.is_control();
        if !http.path.starts_with('/') || http.path.contains(bad) {
            diags.push(
                Diagnostic::error(format!(
                    "health.http.path `{}` of role `{stem}` is not a URL path",
                    http.path
                ))
                .at(at.clone())
                .hint("write the path as in the URL, starting with `/` and without spaces, e.g. `path: /health/`"),
            );
        }
        if let Some(host) = &http.host {
            let ok = !host.is_empty()
                && host.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
                });
            if !ok {
                diags.push(
                    Diagnostic::error(format!(
                        "health.http.host `{host}` of role `{stem}` is not a host name"
                    ))
                    .at(at.clone())
                    .hint("the Host header names the virtual host, e.g. `host: cts.example.org`"),
                );
            }
        }
    }
    diags
}

/// Hosts that `after:` orders after each other in a circle, reported at the `after` entry
/// of the first role of the chain.
fn after_cycles(env: &Environment) -> Vec<Diagnostic> {
    let hosts: Vec<String> = env.hosts.keys().cloned().collect();
    let Err(cycle) = crate::rollout::waves(env, &hosts) else {
        return Vec::new();
    };
    let Some(first) = cycle.links.first() else {
        return Vec::new();
    };
    let site = env.site;
    let at = site.roles.get(&first.role).and_then(|r| {
        let a = r.value.after.iter().find(|a| a.value == first.after)?;
        Some(site.loc(&r.file, a, a.value.chars().count().max(1)))
    });
    vec![Diagnostic::error(format!("environment `{}`: {cycle}", env.name))
        .at_opt(at)
        .hint(format!(
            "no order applies every host after the hosts it waits for: remove `{}` from the `after` of role `{}`, or move the roles so that no host holds both ends of the chain",
            first.after, first.role
        ))]
}

fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks of one inventory against the roles: names, roles, counts, placement, provider, SSH.
pub fn check_inventory(env: &Environment) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    diags.extend(environment_name_mismatch(env));
    diags.extend(no_hosts(env));
    diags.extend(check_hosts(env));
    diags.extend(unknown_role_vars(env));
    diags.extend(check_connections(env));
    diags.extend(unknown_jump_host(env));
    diags.extend(lock_settings(env));
    diags.extend(control_persist_not_a_duration(env));
    diags.extend(missing_aws_settings(env));
    diags.extend(hostnames_that_do_not_render(env));
    diags.extend(role_counts(env));
    diags.extend(two_releases_on_a_host(env));
    diags.extend(after_cycles(env));
    diags
}

/// An inventory whose `environment` is not its file's stem.
fn environment_name_mismatch(env: &Environment) -> Option<Diagnostic> {
    let site = env.site;
    let inv = env.inventory;
    let file = &env.file;
    (inv.environment.value != env.name).then(|| {
        Diagnostic::error(format!(
            "inventory `{}` says `environment: {}`",
            file.display(),
            inv.environment.value
        ))
        .at(site.loc(
            file,
            &inv.environment,
            inv.environment.value.chars().count(),
        ))
        .hint(format!(
            "set `environment: {}` or rename the file",
            env.name
        ))
    })
}

/// An environment without hosts.
fn no_hosts(env: &Environment) -> Option<Diagnostic> {
    env.inventory.hosts.is_empty().then(|| {
        Diagnostic::error(format!("environment `{}` has no hosts", env.name))
            .at_opt(env.site.sources.find_key(&env.file, "hosts:"))
    })
}

/// Each host in turn: its name, roles, address, private IP and same-host requirements.
fn check_hosts(env: &Environment) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut ips: BTreeMap<String, String> = BTreeMap::new();
    for (name, host) in &env.inventory.hosts {
        diags.extend(invalid_host_name(env, name, host));
        diags.extend(host_without_roles(env, name, host));
        diags.extend(host_role_references(env, name, host));
        diags.extend(address_for_provider(env, name, host));
        diags.extend(duplicate_private_ip(env, name, host, &mut ips));
        diags.extend(missing_same_host_roles(env, name, host));
    }
    diags
}

/// A host name that is not a valid DNS label.
fn invalid_host_name(
    env: &Environment,
    name: &str,
    host: &Sp<crate::model::Host>,
) -> Option<Diagnostic> {
    let site = env.site;
    let file = &env.file;
    (!valid_host_name(name)).then(|| {
        Diagnostic::error(format!("host name `{name}` is not a valid DNS label"))
            .at_opt(
                site.sources
                    .find_key(file, &format!("{name}:"))
                    .or(Some(site.loc(file, host, 1))),
            )
            .hint("use lowercase letters, digits and `-` (at most 63), e.g. `app1`")
    })
}

/// A host with an empty `roles` list.
fn host_without_roles(
    env: &Environment,
    name: &str,
    host: &Sp<crate::model::Host>,
) -> Option<Diagnostic> {
    host.value.roles.is_empty().then(|| {
        Diagnostic::error(format!("host `{name}` has no roles"))
            .at(env.site.loc(&env.file, host, 1))
            .hint("add `roles: [...]`")
    })
}

/// Unknown roles on a host (with a did-you-mean) and roles listed twice.
fn host_role_references(
    env: &Environment,
    name: &str,
    host: &Sp<crate::model::Host>,
) -> Vec<Diagnostic> {
    let site = env.site;
    let file = &env.file;
    let mut diags = Vec::new();
    let mut seen_roles = BTreeSet::new();
    for r in &host.value.roles {
        if !site.has_role(&r.value) {
            diags.push(
                Diagnostic::error(format!("unknown role `{}` on host `{name}`", r.value))
                    .at(site.loc(file, r, r.value.chars().count()))
                    .hint_opt(did_you_mean(
                        &r.value,
                        site.roles.keys().map(String::as_str),
                    )),
            );
        } else if site.roles.contains_key(&r.value) && !seen_roles.insert(r.value.as_str()) {
            diags.push(
                Diagnostic::warning(format!(
                    "role `{}` is listed twice on host `{name}`",
                    r.value
                ))
                .at(site.loc(file, r, r.value.chars().count())),
            );
        }
    }
    diags
}

/// Static hosts need an `address` (unless `connection: local`); aws hosts must not have one.
fn address_for_provider(
    env: &Environment,
    name: &str,
    host: &Sp<crate::model::Host>,
) -> Option<Diagnostic> {
    let inv = env.inventory;
    let h = &host.value;
    let host_loc = env.site.loc(&env.file, host, 1);
    let local = inv.connection_of(name) == Connection::Local;
    match inv.provider.value.kind {
        ProviderKind::Static if h.address.is_none() && !local => Some(
            Diagnostic::error(format!("static host `{name}` has no `address`"))
                .at(host_loc)
                .hint("static hosts already exist: give the address SSH reaches them at, or `connection: local` for the machine infra runs on"),
        ),
        ProviderKind::Aws if h.address.is_some() => Some(
            Diagnostic::error(format!(
                "host `{name}` has an `address`, but the provider is aws"
            ))
            .at(host_loc)
            .hint("aws hosts get their addresses from EC2; set `private_ip` to fix one"),
        ),
        _ => None,
    }
}

/// A host whose `private_ip` an earlier host already has (`ips` maps each IP to its host).
fn duplicate_private_ip(
    env: &Environment,
    name: &str,
    host: &Sp<crate::model::Host>,
    ips: &mut BTreeMap<String, String>,
) -> Option<Diagnostic> {
    let ip = host.value.private_ip?;
    let other = ips.insert(ip.to_string(), name.to_string())?;
    Some(
        Diagnostic::error(format!(
            "hosts `{other}` and `{name}` both have private_ip {ip}"
        ))
        .at(env.site.loc(&env.file, host, 1)),
    )
}

/// Meta-roles on a host whose `requires_on_same_host` role is not on that host.
fn missing_same_host_roles(
    env: &Environment,
    name: &str,
    host: &Sp<crate::model::Host>,
) -> Vec<Diagnostic> {
    let site = env.site;
    let mut diags = Vec::new();
    let Some(resolved) = env.hosts.get(name) else {
        return diags;
    };
    for r in &host.value.roles {
        let Some(role) = site.roles.get(&r.value) else {
            continue;
        };
        for req in &role.value.requires_on_same_host {
            if !resolved.view.all_roles.contains(&req.value) && site.roles.contains_key(&req.value)
            {
                diags.push(
                    Diagnostic::error(format!(
                        "host `{name}` has role `{}`, which requires role `{}` on the same host",
                        r.value, req.value
                    ))
                    .at(site.loc(&env.file, r, r.value.chars().count()))
                    .hint(format!("add `{}` to the roles of `{name}`", req.value)),
                );
            }
        }
    }
    diags
}

/// Unknown roles under `role_vars`, with a did-you-mean.
fn unknown_role_vars(env: &Environment) -> Vec<Diagnostic> {
    let site = env.site;
    let file = &env.file;
    env.inventory
        .role_vars
        .iter()
        .filter(|(role, _)| !site.has_role(role))
        .map(|(role, rv)| {
            Diagnostic::error(format!("unknown role `{role}` in `role_vars`"))
                .at_opt(
                    site.sources
                        .find_key(file, &format!("{role}:"))
                        .or(Some(site.loc(file, rv, 1))),
                )
                .hint_opt(did_you_mean(role, site.roles.keys().map(String::as_str)))
        })
        .collect()
}

/// An `ssh.jump_host` that is not a host of the inventory, with a did-you-mean.
fn unknown_jump_host(env: &Environment) -> Option<Diagnostic> {
    let inv = env.inventory;
    let j = inv.ssh.jump_host.as_ref()?;
    (!inv.hosts.contains_key(&j.value)).then(|| {
        Diagnostic::error(format!(
            "ssh.jump_host `{}` is not a host of this inventory",
            j.value
        ))
        .at(env.site.loc(&env.file, j, j.value.chars().count()))
        .hint_opt(did_you_mean(&j.value, inv.hosts.keys().map(String::as_str)))
    })
}

/// `lock:` settings that do not fit the provider, a lock host that is not a host, a table name
/// DynamoDB would refuse.
fn lock_settings(env: &Environment) -> Vec<Diagnostic> {
    let inv = env.inventory;
    let aws = inv.provider.value.kind == crate::model::ProviderKind::Aws;
    let mut diags = Vec::new();
    if let Some(t) = &inv.lock.dynamodb_table {
        let at = env.site.loc(&env.file, t, t.value.chars().count().max(1));
        let valid = (3..=255).contains(&t.value.len())
            && t.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !aws {
            diags.push(
                Diagnostic::error("lock.dynamodb_table is for aws inventories")
                    .at(at)
                    .hint("a static inventory's lock lives on a host: write `lock: {host: NAME}`, or leave `lock` out for the jump host (else the first host by name)"),
            );
        } else if !valid {
            diags.push(
                Diagnostic::error(format!(
                    "lock.dynamodb_table `{}` is not a DynamoDB table name",
                    t.value
                ))
                .at(at)
                .hint("3 to 255 letters, digits, `_`, `-` or `.`; leave it out for infra's own table `infra-locks`"),
            );
        }
    }
    if let Some(h) = &inv.lock.host {
        let at = env.site.loc(&env.file, h, h.value.chars().count().max(1));
        if aws {
            diags.push(
                Diagnostic::error("lock.host is for static inventories")
                    .at(at)
                    .hint("an aws inventory's lock lives in DynamoDB: write `lock: {dynamodb_table: NAME}`, or leave `lock` out for `infra-locks`"),
            );
        } else if !inv.hosts.contains_key(&h.value) {
            diags.push(
                Diagnostic::error(format!(
                    "lock.host `{}` is not a host of this inventory",
                    h.value
                ))
                .at(at)
                .hint_opt(did_you_mean(&h.value, inv.hosts.keys().map(String::as_str))),
            );
        }
    }
    diags
}

/// An `ssh.control_persist` that is not a duration.
fn control_persist_not_a_duration(env: &Environment) -> Option<Diagnostic> {
    let p = env.inventory.ssh.control_persist.as_ref()?;
    crate::model::parse_duration(&p.value).is_none().then(|| {
        Diagnostic::error(format!(
            "ssh.control_persist `{}` is not a duration",
            p.value
        ))
        .at(env.site.loc(&env.file, p, p.value.chars().count().max(1)))
        .hint("write seconds or a number with a unit, as OpenSSH's ControlPersist: `90s`, `10m`, `1h`; leave it out to close connections at the end of every run")
    })
}

/// The settings an aws provider cannot do without, all in one diagnostic.
fn missing_aws_settings(env: &Environment) -> Option<Diagnostic> {
    let inv = env.inventory;
    let p = &inv.provider.value;
    if p.kind != ProviderKind::Aws {
        return None;
    }
    let mut missing = Vec::new();
    if p.region.is_none() {
        missing.push("region");
    }
    if p.ami.is_none() {
        missing.push("ami");
    }
    if p.instance_type.is_none() && inv.hosts.values().any(|h| h.value.instance_type.is_none()) {
        missing.push("instance_type");
    }
    if p.vpc_id.is_none() && p.vpc_cidr.is_none() {
        missing.push("vpc_id or vpc_cidr");
    }
    if p.subnet_id.is_none() && p.subnet_cidr.is_none() {
        missing.push("subnet_id or subnet_cidr");
    }
    (!missing.is_empty()).then(|| {
        Diagnostic::error(format!("provider aws is missing {}", missing.join(", ")))
            .at(env.site.loc(&env.file, &inv.provider, 1))
            .hint("see the README's \"Site format\" for the aws settings")
    })
}

/// Public hostnames are Tera strings too: each role's first host it does not render for.
fn hostnames_that_do_not_render(env: &Environment) -> Vec<Diagnostic> {
    let site = env.site;
    let mut diags = Vec::new();
    for (role_name, role) in &site.roles {
        let Some(h) = &role.value.hostname else {
            continue;
        };
        for host in env.hosts_with_role(role_name) {
            if let Err(e) =
                crate::environment::render_hostname(&h.value, &host.view.name, env.inventory)
            {
                diags.push(crate::environment::hostname_error(
                    site, role_name, role, &e,
                ));
                break;
            }
        }
    }
    diags
}

/// How many hosts hold each role with a `count`.
fn role_counts(env: &Environment) -> Vec<Diagnostic> {
    env.site
        .roles
        .iter()
        .filter_map(|(role_name, role)| role_count_mismatch(env, role_name, role))
        .collect()
}

/// A role held by fewer hosts than its `count.min` or more than its `count.max`.
fn role_count_mismatch(
    env: &Environment,
    role_name: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Option<Diagnostic> {
    let site = env.site;
    let count = role.value.count.as_ref()?;
    let holders: Vec<&str> = env
        .hosts_with_role(role_name)
        .iter()
        .map(|h| h.view.name.as_str())
        .collect();
    let n = holders.len() as u32;
    let c = count.value;
    let too_few = c.min.is_some_and(|m| n < m);
    let too_many = c.max.is_some_and(|m| n > m);
    if !too_few && !too_many {
        return None;
    }
    let found = if holders.is_empty() {
        "none".to_string()
    } else {
        format!("{n} ({})", holders.join(", "))
    };
    let count_loc = site.loc(&role.file, count, 5);
    Some(
        Diagnostic::error(format!(
            "environment `{}` needs {} host{} with role `{role_name}`, found {found}",
            env.name,
            c,
            if c.max == Some(1) || (c.max.is_none() && c.min == Some(1)) {
                ""
            } else {
                "s"
            },
        ))
        .at_opt(site.sources.find_key(&env.file, "hosts:"))
        .note(format!(
            "role `{role_name}` sets count: {c} at {}:{}",
            count_loc.file.display(),
            count_loc.line
        ))
        .hint(count_hint(role_name, c, too_few)),
    )
}

/// What to do about a count mismatch: add the role to a host, or remove it from the extra ones.
fn count_hint(role_name: &str, c: crate::model::Count, too_few: bool) -> String {
    if too_few {
        format!("add `{role_name}` to the roles of a host")
    } else {
        format!(
            "remove `{role_name}` from all but {} of these hosts",
            c.max.unwrap_or(0)
        )
    }
}

/// `connection: local`: static inventories only, and at most one such host per environment
/// (they would all be the machine infra runs on).
fn check_connections(env: &Environment) -> Vec<Diagnostic> {
    let site = env.site;
    let inv = env.inventory;
    let file = &env.file;
    let mut diags = Vec::new();
    let at = |c: &Sp<Connection>| site.loc(file, c, c.value.to_string().len());
    if inv.provider.value.kind == ProviderKind::Aws {
        let written = inv.connection.iter().chain(
            inv.hosts
                .values()
                .filter_map(|h| h.value.connection.as_ref()),
        );
        for c in written.filter(|c| c.value == Connection::Local) {
            diags.push(
                Diagnostic::error("`connection: local` in an aws inventory")
                    .at(at(c))
                    .hint("aws hosts are machines infra launches and reaches over SSH; apply a machine to itself with a static inventory whose host has `connection: local`"),
            );
        }
        return diags;
    }
    let local: Vec<&String> = inv
        .hosts
        .keys()
        .filter(|n| inv.connection_of(n) == Connection::Local)
        .collect();
    let Some((first, others)) = local.split_first() else {
        return diags;
    };
    for name in others {
        let host = &inv.hosts[*name];
        let mut d = Diagnostic::error(format!(
            "hosts `{first}` and `{name}` both have `connection: local`, but there is only one machine infra runs on"
        ))
        .at(host.value.connection.as_ref().map_or_else(|| site.loc(file, host, 1), at));
        if let (None, Some(c)) = (&host.value.connection, &inv.connection) {
            let l = at(c);
            d = d.note(format!(
                "`{name}` inherits `connection: local` from {}:{}",
                l.file.display(),
                l.line
            ));
        }
        diags.push(d.hint(format!(
            "keep `connection: local` on one host; give `{name}` `connection: ssh` and an `address`, or put it in an inventory of its own"
        )));
    }
    diags
}

pub use crate::names::dest_problem;

/// A role's `release:`: its key is a secret of the role, `keep` is at least 1, the
/// requirements file and local wheel directories lie inside the checkout, commands are not
/// empty. (The Tera fields are checked once rendered, per host.)
fn release_problems(
    site: &Site,
    stem: &str,
    role: &crate::site::Loaded<crate::model::Role>,
) -> Vec<Diagnostic> {
    let Some(release) = &role.value.release else {
        return Vec::new();
    };
    let (r, file) = (&release.value, &role.file);
    let mut diags = Vec::new();
    if let Some(k) = &r.ssh_key {
        if !role.value.secrets.iter().any(|s| s.value == k.value) {
            diags.push(
                Diagnostic::error(format!(
                    "`release.ssh_key` of role `{stem}` names `{}`, which is not a secret of the role",
                    k.value
                ))
                .at(site.loc(file, k, k.value.chars().count()))
                .hint(format!(
                    "add `{}` under the role's `secrets:`; its value (the private key) comes from the secrets file or INFRA_SECRET_{}",
                    k.value,
                    k.value.to_uppercase()
                )),
            );
        }
    }
    for (field, text) in crate::render::release_fields(r) {
        let Some(text) = text.filter(|t| crate::render::mentions_secrets(&t.value)) else {
            continue;
        };
        diags.push(
            Diagnostic::error(format!("`release.{field}` of role `{stem}` uses a secret"))
                .at(site.loc(file, text, text.value.chars().count()))
                .hint("the plan shows this field: fetch with `ssh_key:` instead of a password in the URL"),
        );
    }
    if let Some(k) = r.keep.as_ref().filter(|k| k.value == 0) {
        diags.push(
            Diagnostic::error(format!("`release.keep` of role `{stem}` is 0"))
                .at(site.loc(file, k, 1))
                .hint(
                    "keep at least 1 release (the current and the previous one are never removed)",
                ),
        );
    }
    if let Some(q) = &r.requirements {
        if let Some(problem) = checkout_path_problem(&q.value) {
            diags.push(
                Diagnostic::error(format!("`release.requirements` `{}` {problem}", q.value))
                    .at(site.loc(file, q, q.value.chars().count()))
                    .hint("name the file relative to the repository's top, e.g. requirements.txt"),
            );
        }
    }
    for link in &r.pip.find_links {
        let problem = if link.contains("://") {
            None
        } else if link.starts_with('/') {
            crate::names::path_problem(link)
        } else {
            checkout_path_problem(link)
        };
        if let Some(problem) = problem {
            diags.push(
                Diagnostic::error(format!("`release.pip.find_links` `{link}` {problem}"))
                    .at(site.loc(file, release, 1))
                    .hint("a URL, an absolute directory, or one relative to the checkout (e.g. wheelhouse)"),
            );
        }
    }
    for (field, list) in [
        ("build", &r.build),
        ("once", &r.once),
        ("reload", &r.reload),
    ] {
        for c in list.iter().filter(|c| c.value.trim().is_empty()) {
            diags.push(
                Diagnostic::error(format!(
                    "an empty command in `release.{field}` of role `{stem}`"
                ))
                .at(site.loc(file, c, 1))
                .hint("remove it, or write the shell command to run"),
            );
        }
    }
    diags
}

/// Why `text` cannot be a path inside a checkout, if it cannot: relative, normalised, no
/// whitespace, quote or control character.
fn checkout_path_problem(text: &str) -> Option<&'static str> {
    if text.starts_with('/') {
        Some("is absolute, but it is read inside the checkout")
    } else if text.is_empty() {
        Some("is empty")
    } else if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        Some("contains a space, a quote or a control character")
    } else if text
        .trim_end_matches('/')
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        Some("is not normalised (it has `.`, `..` or `//`)")
    } else {
        None
    }
}

/// Hosts that would get two releases (from two of their roles): one error per pair of roles,
/// at the second role's `release:`, naming the hosts.
fn two_releases_on_a_host(env: &Environment) -> Vec<Diagnostic> {
    let site = env.site;
    let mut pairs: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for (name, h) in &env.hosts {
        let with: Vec<&str> = h
            .view
            .all_roles
            .iter()
            .filter(|r| {
                site.roles
                    .get(*r)
                    .is_some_and(|x| x.value.release.is_some())
            })
            .map(String::as_str)
            .collect();
        if let [first, second, ..] = with.as_slice() {
            pairs.entry((first, second)).or_default().push(name);
        }
    }
    let mut diags = Vec::new();
    for ((a, b), hosts) in pairs {
        let (Some(ra), Some(rb)) = (site.roles.get(a), site.roles.get(b)) else {
            continue;
        };
        let (Some(rel_a), Some(rel_b)) = (&ra.value.release, &rb.value.release) else {
            continue;
        };
        let first = site.loc(&ra.file, rel_a, 1);
        diags.push(
            Diagnostic::error(format!(
                "host{} `{}` of environment `{}` would get two releases: from role `{a}` and role `{b}`",
                if hosts.len() > 1 { "s" } else { "" },
                hosts.join("`, `"),
                env.name
            ))
            .at(site.loc(&rb.file, rel_b, 1))
            .note(format!(
                "the first is at {}:{}",
                first.file.display(),
                first.line
            ))
            .hint("a host deploys one application: give these roles different hosts, or keep `release:` in one role"),
        );
    }
    diags
}

/// What rendering every host of an environment found.
#[derive(Debug, Default)]
pub struct RenderCheck {
    pub diagnostics: Vec<Diagnostic>,
    /// Secrets some file needed that are not set.
    pub missing_secrets: BTreeSet<String>,
    pub hosts: usize,
    pub files: usize,
}

/// Renders every host of the environment (hosts in parallel, one chunk per core): template
/// errors, each once with the hosts it hit, and two files for one destination on a host.
pub fn check_rendering(env: &Environment, renderer: &Renderer, secrets: &Secrets) -> RenderCheck {
    let hosts: Vec<&crate::environment::ResolvedHost> = env.hosts.values().collect();
    let rendered = crate::render::render_hosts(env, renderer, secrets, &hosts);
    let mut check = RenderCheck {
        hosts: hosts.len(),
        ..RenderCheck::default()
    };
    // The same problem on many hosts is reported once, with the hosts it hit.
    let mut by_key: BTreeMap<String, (Diagnostic, Vec<String>)> = BTreeMap::new();
    for (host, out) in hosts.iter().zip(rendered) {
        check.files += out.files.len();
        check
            .missing_secrets
            .extend(out.missing_secrets().map(str::to_string));
        for d in out.diagnostics {
            let key = format!("{:?}{}{:?}", d.location, d.message, d.notes);
            let entry = by_key.entry(key).or_insert_with(|| (d, Vec::new()));
            entry.1.push(host.view.name.clone());
        }
    }
    // `publish:` objects: rendered for every host of their roles, like files.
    check
        .diagnostics
        .extend(crate::cloud::objects::render(env, renderer, secrets).1);
    for (_, (d, mut hosts)) in by_key {
        hosts.sort();
        check.diagnostics.push(d.note(format!(
            "environment `{}`, host{} {}",
            env.name,
            if hosts.len() == 1 { "" } else { "s" },
            hosts.join(", ")
        )));
    }
    if env.inventory.provider.value.kind == ProviderKind::Aws {
        if let Err(d) = crate::cloud::records::check(env, renderer) {
            check
                .diagnostics
                .push(d.note(format!("environment `{}`", env.name)));
        }
    }
    check
}

/// Merges diagnostics that say the same thing at the same place (e.g. one template error in
/// two environments), keeping every note.
pub fn merge_duplicates(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for d in diags {
        let key = format!("{:?}{:?}{}", d.severity, d.location, d.message);
        match index.get(&key) {
            Some(&i) => {
                for n in d.notes {
                    if !out[i].notes.contains(&n) {
                        out[i].notes.push(n);
                    }
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{dest_problem, unquoted_secret_uses};

    #[test]
    fn a_secret_in_shell_code_needs_a_quoting_filter() {
        let names = |t: &str| -> Vec<String> {
            unquoted_secret_uses(t)
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        };
        assert_eq!(names("PW='{{ secrets.pw }}'\n"), vec!["pw"]);
        assert_eq!(names("PW={{secrets.pw|upper}}"), vec!["pw"]);
        assert_eq!(names("{% set x = secrets.pw %}{{ x | sh }}"), vec!["pw"]);
        assert_eq!(names("{{ 'a' ~ secrets.a | sh ~ secrets.b }}"), vec!["b"]);
        assert!(names("PW={{ secrets.pw | sh }}").is_empty());
        assert!(names("{{- secrets.pw|sql -}}").is_empty());
        assert!(names("{{ ('u:' ~ (secrets.pw | url) ~ '@h') | sh }}").is_empty());
        assert!(names("{{ ('u:' ~ secrets.pw) | sh }}").is_empty());
        assert!(names("{% if secrets.pw is defined %}x{% endif %}").is_empty());
        assert!(names("{{ mysecrets.pw }} {# secrets.pw #} secrets.pw").is_empty());
        let (offset, _) = unquoted_secret_uses("a\nb {{ secrets.pw }}")[0];
        assert_eq!(offset, 7);
    }

    #[test]
    fn destinations_must_be_clean_absolute_paths() {
        assert_eq!(dest_problem("/etc/nginx/nginx.conf"), None);
        assert_eq!(dest_problem("etc/x"), Some("is not an absolute path"));
        assert_eq!(
            dest_problem("/etc/x/"),
            Some("names a directory, not a file")
        );
        assert!(dest_problem("/etc/x\"").is_some());
        assert!(dest_problem("/etc/a b").is_some());
        assert!(dest_problem("/etc/../x").is_some());
        assert!(dest_problem("/etc//x").is_some());
    }
}
