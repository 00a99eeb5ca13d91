//! Facts: the one shell command that reads everything a host's plan needs, and its parser.

use crate::desired::DesiredHost;
use crate::kinds;
use crate::shell::{Arg, Script};
use sha2::{Digest, Sha256};

pub use crate::state::{hex, sha256, InitSystem, PathFact, PathKind, STATE_DIR};

pub use crate::kinds::service::ServiceFact;
pub use crate::kinds::Facts;
/// `'text'` for sh, whatever the text holds.
pub use crate::shell::quote as sh_quote;

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

/// The POSIX sh script that prints every fact `desired` needs, one tab-separated line each:
/// the init system, one `stat` of every path a kind manages, then each kind's own probe. It
/// changes nothing on the host.
pub fn script(desired: &DesiredHost) -> String {
    let mut s = Script::new();
    s.raw("export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
        .raw("if [ -d /run/systemd/system ]; then init=systemd; else init=sysv; fi\nprintf 'init\\t%s\\n' \"$init\"\n");
    let paths = kinds::paths(desired);
    if !paths.is_empty() {
        s.line(
            "stat --printf 'stat\\t%a\\t%U\\t%G\\t%F\\t%n\\n' -- {} 2>/dev/null",
            &[Arg::Words(&paths)],
        );
    }
    kinds::probe(desired, &mut s);
    s.raw("exit 0\n");
    s.into_string()
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
                let (owner, group) = (owner.to_string(), group.to_string());
                let fact = PathFact {
                    mode,
                    owner,
                    group,
                    kind,
                };
                facts.paths.insert(path.to_string(), fact);
            }
            [""] => {}
            fields => match kinds::parse(fields, &mut facts) {
                Some(Ok(())) => {}
                Some(Err(kinds::BadLine)) | None => return Err(err()),
            },
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::service::ServiceAction;

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
            (
                conf.mode,
                conf.kind,
                f.file
                    .sha256
                    .get("/etc/nginx/nginx.conf")
                    .map(String::as_str)
            ),
            (0o644, PathKind::File, Some("abc123"))
        );
        assert_eq!(f.paths["/var/www"].kind, PathKind::Dir);
        assert_eq!(
            f.package.installed.iter().collect::<Vec<_>>(),
            vec!["nginx"]
        );
        assert_eq!(
            f.service.states["nginx"],
            ServiceFact {
                exists: true,
                running: true,
                enabled: false
            }
        );
        assert_eq!(f.command.done.iter().copied().collect::<Vec<_>>(), vec![0]);
        assert_eq!(f.link.targets["/etc/x"], "/etc/y");
        assert_eq!(
            f.service.pending,
            vec![(ServiceAction::Reload, "nginx".to_string())]
        );
        assert_eq!(f.fingerprint.len(), 64);
        assert!(parse("bogus line").is_err());
    }
}
