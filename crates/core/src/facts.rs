//! Facts: the one shell command that reads everything a host's plan needs, and its parser.

use crate::desired::DesiredHost;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Where infra keeps its state on a host: `pending` holds the service actions recorded before
/// files change and removed once done (`reload nginx`); `backup/` the files a run replaced.
/// Both scripts honour `INFRA_STATE_DIR` instead (for tests).
pub const STATE_DIR: &str = "/var/lib/infra";

/// How services are managed on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitSystem {
    /// systemd is PID 1: `systemctl`.
    Systemd,
    /// No systemd: `/etc/init.d` scripts through `service`, links in `/etc/rcN.d`.
    #[default]
    Sysv,
}

/// Owner, group and mode of a path, and what kind of file it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFact {
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub kind: PathKind,
    /// For regular files.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    File,
    Dir,
    Link,
    Other,
}

/// State of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceFact {
    pub exists: bool,
    pub running: bool,
    pub enabled: bool,
}

/// Everything read from one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub init: InitSystem,
    pub paths: BTreeMap<String, PathFact>,
    pub installed: BTreeSet<String>,
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    pub services: BTreeMap<String, ServiceFact>,
    /// Indexes (in apply order) of the commands whose `unless` / `creates` says done.
    pub commands_done: BTreeSet<usize>,
    pub links: BTreeMap<String, String>,
    /// Mount point -> source device, for the volumes' mount points that are mounted.
    pub mounts: BTreeMap<String, String>,
    /// `(action, service)` lines of the pending file, in order.
    pub pending: Vec<(String, String)>,
    /// sha256 of the raw output: a saved plan is only applied to a host whose facts still match.
    pub fingerprint: String,
}

/// The fingerprint of a host planned before its machine exists.
pub const FRESH: &str = "new machine";

impl Facts {
    /// A machine that does not exist yet: what a fresh Debian image is assumed to hold for the
    /// plan (nothing managed). The host phase gathers the real facts once it is up.
    pub fn fresh() -> Facts {
        Facts {
            init: InitSystem::Systemd,
            fingerprint: FRESH.to_string(),
            ..Facts::default()
        }
    }
}

/// `'text'` for sh, whatever the text holds.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(sh_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The POSIX sh script that prints every fact `desired` needs, one tab-separated line each.
/// It changes nothing on the host.
pub fn script(desired: &DesiredHost) -> String {
    let mut s = String::from(
        "export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
    s.push_str("if [ -d /run/systemd/system ]; then init=systemd; else init=sysv; fi\nprintf 'init\\t%s\\n' \"$init\"\n");
    for v in &desired.volumes {
        s.push_str(&format!(
            "findmnt -n -o SOURCE --mountpoint {m} 2>/dev/null | while read -r d; do printf 'mount\\t%s\\t%s\\n' {m} \"$d\"; done\n",
            m = sh_quote(&v.mount)
        ));
    }
    let mut paths: Vec<&str> = desired.files().map(|f| f.dest.as_str()).collect();
    paths.extend(desired.dirs().map(|d| d.path.as_str()));
    let links: Vec<&str> = desired
        .roles
        .iter()
        .flat_map(|r| r.links.iter().map(|l| l.path.as_str()))
        .collect();
    paths.extend(links.iter().copied());
    if !paths.is_empty() {
        s.push_str(&format!(
            "stat --printf 'stat\\t%a\\t%U\\t%G\\t%F\\t%n\\n' -- {} 2>/dev/null\n",
            quoted_list(paths.iter().copied())
        ));
    }
    let files: Vec<&str> = desired.files().map(|f| f.dest.as_str()).collect();
    if !files.is_empty() {
        s.push_str(&format!(
            // One sha256sum for every file; destinations hold no spaces (validation).
            "sha256sum -- {} 2>/dev/null | while read -r h f; do printf 'hash\\t%s\\t%s\\n' \"$h\" \"$f\"; done\n",
            quoted_list(files.iter().copied())
        ));
    }
    if !desired.packages.is_empty() {
        // dpkg's own database, read by one grep rather than dpkg-query (which parses all of
        // it, several times the CPU): each stanza starts with `Package:`, and `Status:` comes
        // within the next three lines (after `Essential:` and `Protected:`, when present).
        s.push_str(&format!(
            "grep -Fx -A3 {} /var/lib/dpkg/status 2>/dev/null | while read -r k a b c; do case $k in Package:) p=$a;; Status:) [ -n \"$p\" ] && printf 'pkg\\t%s\\t%s %s %s\\n' \"$p\" \"$a\" \"$b\" \"$c\"; p=;; esac; done\n",
            desired
                .packages
                .iter()
                .map(|p| format!("-e {}", sh_quote(&format!("Package: {p}"))))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let users: Vec<&str> = desired
        .roles
        .iter()
        .flat_map(|r| r.users.iter().map(|u| u.name.as_str()))
        .collect();
    if !users.is_empty() {
        s.push_str(&format!(
            "for u in {}; do getent passwd \"$u\" >/dev/null && printf 'user\\t%s\\n' \"$u\"; done\n",
            quoted_list(users.iter().copied())
        ));
    }
    let groups: Vec<&str> = desired
        .roles
        .iter()
        .flat_map(|r| r.groups.iter().map(|g| g.name.as_str()))
        .collect();
    if !groups.is_empty() {
        s.push_str(&format!(
            "for g in {}; do getent group \"$g\" >/dev/null && printf 'group\\t%s\\n' \"$g\"; done\n",
            quoted_list(groups.iter().copied())
        ));
    }
    for svc in desired.services() {
        let q = sh_quote(&svc.name);
        s.push_str(&format!(
            "svc={q}; e=0; r=0; n=0\n\
             if [ \"$init\" = systemd ]; then\n\
             \x20 systemctl cat \"$svc\" >/dev/null 2>&1 && e=1\n\
             \x20 systemctl is-active --quiet \"$svc\" && r=1\n\
             \x20 systemctl is-enabled --quiet \"$svc\" 2>/dev/null && n=1\n\
             else\n\
             \x20 [ -x \"/etc/init.d/$svc\" ] && e=1\n\
             \x20 [ $e = 1 ] && \"/etc/init.d/$svc\" status >/dev/null 2>&1 </dev/null && r=1\n\
             \x20 for l in /etc/rc2.d/S??\"$svc\"; do [ -e \"$l\" ] && n=1; done\n\
             fi\n\
             printf 'svc\\t%s\\t%s\\t%s\\t%s\\n' \"$svc\" $e $r $n\n"
        ));
    }
    for (i, c) in desired.commands().enumerate() {
        let mut tests = Vec::new();
        if let Some(p) = &c.creates {
            tests.push(format!("[ -e {} ]", sh_quote(p)));
        }
        if let Some(u) = &c.unless {
            tests.push(format!("sh -c {} >/dev/null 2>&1 </dev/null", sh_quote(u)));
        }
        s.push_str(&format!(
            "if {}; then printf 'cmd\\t{i}\\t1\\n'; else printf 'cmd\\t{i}\\t0\\n'; fi\n",
            tests.join(" || ")
        ));
    }
    if !links.is_empty() {
        s.push_str(&format!(
            "for l in {}; do [ -L \"$l\" ] && printf 'link\\t%s\\t%s\\n' \"$l\" \"$(readlink \"$l\")\"; done\n",
            quoted_list(links.iter().copied())
        ));
    }
    s.push_str(&format!(
        "P=\"${{INFRA_STATE_DIR:-{STATE_DIR}}}/pending\"\n[ -f \"$P\" ] && while read -r a b; do [ -n \"$b\" ] && printf 'pending\\t%s\\t%s\\n' \"$a\" \"$b\"; done < \"$P\"\n"
    ));
    s.push_str("exit 0\n");
    s
}

/// A line of the facts output that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected facts line {line}: {text:?}")]
pub struct FactsError {
    pub line: usize,
    pub text: String,
}

/// Parses the output of [`script`].
pub fn parse(output: &str) -> Result<Facts, FactsError> {
    let mut facts = Facts {
        fingerprint: hex(&Sha256::digest(output.as_bytes())),
        ..Facts::default()
    };
    let mut hashes = BTreeMap::new();
    for (i, line) in output.lines().enumerate() {
        let err = || FactsError {
            line: i + 1,
            text: line.to_string(),
        };
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["init", "systemd"] => facts.init = InitSystem::Systemd,
            ["init", "sysv"] => facts.init = InitSystem::Sysv,
            ["stat", mode, owner, group, kind, path] => {
                let kind = match *kind {
                    "regular file" | "regular empty file" => PathKind::File,
                    "directory" => PathKind::Dir,
                    "symbolic link" => PathKind::Link,
                    _ => PathKind::Other,
                };
                let mode = u32::from_str_radix(mode, 8).map_err(|_| err())?;
                facts.paths.insert(
                    path.to_string(),
                    PathFact {
                        mode,
                        owner: owner.to_string(),
                        group: group.to_string(),
                        kind,
                        sha256: None,
                    },
                );
            }
            ["hash", hash, path] => {
                hashes.insert(path.to_string(), hash.to_string());
            }
            ["pkg", name, status] => {
                // The Status field: wanted, error flag, state.
                if *status == "install ok installed" {
                    facts.installed.insert(name.to_string());
                }
            }
            ["user", name] => {
                facts.users.insert(name.to_string());
            }
            ["group", name] => {
                facts.groups.insert(name.to_string());
            }
            ["svc", name, e, r, n] => {
                facts.services.insert(
                    name.to_string(),
                    ServiceFact {
                        exists: *e == "1",
                        running: *r == "1",
                        enabled: *n == "1",
                    },
                );
            }
            ["cmd", index, done] => {
                if *done == "1" {
                    facts
                        .commands_done
                        .insert(index.parse().map_err(|_| err())?);
                }
            }
            ["link", path, target] => {
                facts.links.insert(path.to_string(), target.to_string());
            }
            ["mount", point, device] => {
                facts.mounts.insert(point.to_string(), device.to_string());
            }
            ["pending", action, service] => facts
                .pending
                .push((action.to_string(), service.to_string())),
            [""] => {}
            _ => return Err(err()),
        }
    }
    for (path, hash) in hashes {
        if let Some(p) = facts.paths.get_mut(&path) {
            p.sha256 = Some(hash);
        }
    }
    Ok(facts)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of content, as hex.
pub fn sha256(content: &[u8]) -> String {
    hex(&Sha256::digest(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn facts_output_parses() {
        let out = "init\tsysv\n\
                   stat\t644\troot\troot\tregular file\t/etc/nginx/nginx.conf\n\
                   stat\t755\troot\troot\tdirectory\t/var/www\n\
                   hash\tabc123\t/etc/nginx/nginx.conf\n\
                   pkg\tnginx\tinstall ok installed\n\
                   pkg\tredis-server\tdeinstall ok config-files\n\
                   pkg\tmemcached\tinstall ok half-configured\n\
                   user\twww\n\
                   svc\tnginx\t1\t1\t0\n\
                   cmd\t0\t1\ncmd\t1\t0\n\
                   link\t/etc/x\t/etc/y\n\
                   pending\treload\tnginx\n";
        let f = parse(out).unwrap();
        assert_eq!(f.init, InitSystem::Sysv);
        let conf = &f.paths["/etc/nginx/nginx.conf"];
        assert_eq!(
            (conf.mode, conf.kind, conf.sha256.as_deref()),
            (0o644, PathKind::File, Some("abc123"))
        );
        assert_eq!(f.paths["/var/www"].kind, PathKind::Dir);
        assert_eq!(f.installed.iter().collect::<Vec<_>>(), vec!["nginx"]);
        assert_eq!(
            f.services["nginx"],
            ServiceFact {
                exists: true,
                running: true,
                enabled: false
            }
        );
        assert_eq!(f.commands_done.iter().copied().collect::<Vec<_>>(), vec![0]);
        assert_eq!(f.links["/etc/x"], "/etc/y");
        assert_eq!(f.pending, vec![("reload".to_string(), "nginx".to_string())]);
        assert_eq!(f.fingerprint.len(), 64);
        assert!(parse("bogus line").is_err());
    }
}
