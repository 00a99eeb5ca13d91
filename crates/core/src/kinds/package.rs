//! Packages: installed with one `apt-get install` before anything else on the host, their
//! daemons kept from starting until their service steps. Facts: dpkg's status of each package.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::DesiredHost;
use crate::shell::{n, Arg, Script};
use crate::state::Action;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Seconds `apt-get install` may take.
pub const PACKAGE_TIMEOUT: u32 = 1800;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub names: Vec<String>,
}

/// The packages dpkg says are installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub installed: BTreeSet<String>,
}

/// Before `apt-get install`: a `policy-rc.d` that keeps the packages' maintainer scripts from
/// starting their daemons (on systemd and sysvinit alike), so a daemon first runs when its
/// service step starts it, with the config this run wrote, not the package's default. One left
/// by a killed run (its marker line) is taken as ours; anyone else's is left alone.
const NO_START: &str = "prc=/usr/sbin/policy-rc.d; own=
if [ ! -e \"$prc\" ] || grep -qx '# infra: no daemon starts during apt-get' \"$prc\" 2>/dev/null; then
  printf '#!/bin/sh\\n# infra: no daemon starts during apt-get\\nexit 101\\n' > \"$prc\" && chmod 755 \"$prc\" && own=1
fi
";

impl Kind for Step {
    /// dpkg's own database, read by one grep rather than dpkg-query (which parses all of it,
    /// several times the CPU): each stanza starts with `Package:`, and `Status:` comes within
    /// the next three lines (after `Essential:` and `Protected:`, when present).
    fn probe(desired: &DesiredHost, s: &mut Script) {
        if desired.packages.is_empty() {
            return;
        }
        s.raw("grep -Fx -A3");
        for p in &desired.packages {
            let pattern = format!("Package: {p}");
            s.push(" -e {}", &[Arg::Word(&pattern)]);
        }
        s.raw(" /var/lib/dpkg/status 2>/dev/null | while read -r k a b c; do case $k in Package:) p=$a;; Status:) [ -n \"$p\" ] && printf 'pkg\\t%s\\t%s %s %s\\n' \"$p\" \"$a\" \"$b\" \"$c\"; p=;; esac; done\n");
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let ["pkg", name, status] = fields else {
            return None;
        };
        // The Status field: wanted, error flag, state.
        if *status == "install ok installed" {
            facts.package.installed.insert(name.to_string());
        }
        Some(Ok(()))
    }

    fn plan_host(p: &mut Planner) {
        let installed = &p.facts.package.installed;
        let missing: Vec<String> = p
            .desired
            .packages
            .iter()
            .filter(|name| !installed.contains(*name))
            .cloned()
            .collect();
        p.installing = !missing.is_empty();
        if p.installing {
            p.steps.push(
                Step {
                    action: Action::Create,
                    names: missing,
                }
                .into(),
            );
        }
    }

    fn address(&self) -> String {
        format!("packages {}", self.names.join(" "))
    }

    fn script(&self, i: usize, _w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        s.raw(NO_START)
            .line("timeout {} apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold {} > \"$log\" 2>&1; rc=$?", &[n(PACKAGE_TIMEOUT as usize), Arg::Words(&names)])
            .raw("[ -z \"$own\" ] || rm -f \"$prc\"\n")
            .line("[ $rc = 0 ] || fail {} $rc", &[n(i)])
            .line("say {} changed", &[n(i)]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InitSystem;

    /// The prelude's variables (the journal's path above all) stay what they were.
    #[test]
    fn the_fragment_sets_none_of_the_preludes_variables() {
        let mut w = Writer {
            host: "h",
            init: InitSystem::Sysv,
            steps: &[],
            contents: Default::default(),
            digests: Default::default(),
            journal: Default::default(),
            written: Default::default(),
            release: None,
            apt_sources: &[],
        };
        let step = Step {
            action: Action::Create,
            names: vec!["nginx".into()],
        };
        let mut s = Script::new();
        step.script(0, &mut w, &mut s).unwrap();
        for var in ["S", "P", "log", "me", "f", "dir", "tmp"] {
            let assigned = s.as_str().lines().any(|l| {
                l.split([';', ' ', '&', '|'])
                    .any(|word| word.starts_with(&format!("{var}=")))
            });
            assert!(!assigned, "sets ${var}:\n{}", s.as_str());
        }
    }
}
