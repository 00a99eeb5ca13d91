//! Apt sources: a role's third-party repository as a deb822 `.sources` file whose `Signed-By`
//! is a key from the site, written before any package is installed, then `apt-get update` of
//! that source alone (a signature that does not verify fails the step, with apt's words, even
//! where apt itself only warns); removed with its key and lists when no role wants it. Facts:
//! the `infra-*` files present, their hashes, the URIs and suites each `.sources` file names,
//! and whether apt has each wanted source's lists.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::DesiredHost;
use crate::desired_apt::{list_prefix, managed_name, DesiredAptSource, LISTS_DIR};
use crate::shell::{n, w, Arg, Script};
use crate::state::{sha256, Action};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Seconds `apt-get update` of one source may take.
pub const UPDATE_TIMEOUT: u32 = 600;

/// An apt source set up (`Create`, `Update`: files written as needed, then its lists
/// updated) or removed (`Delete`: its files and lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub name: String,
    /// The role wanting it (none for a removal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    pub uri: String,
    pub suite: String,
    /// The `.sources` file.
    pub sources: String,
    /// The key file (`Signed-By`); empty for a removal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The key's file in the site (under templates/).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_origin: String,
    /// What differs: `sources`, `key`, `lists` (apt has no lists of it yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// sha256 of the `.sources` file and of the key as written (checked when the script is
    /// built from a saved plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    /// Files removed: all of a removed source's, or a key of the other format.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Starts of the list files removed from /var/lib/apt/lists (a removed source's, or those
    /// of a URI or suite the source no longer names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<String>,
}

/// What the host has of infra's apt sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Source name -> its files present (`.sources`, keys).
    pub files: BTreeMap<String, BTreeSet<String>>,
    /// sha256 of the wanted sources' files.
    pub sha256: BTreeMap<String, String>,
    /// Source name -> the `URIs:` and `Suites:` values its `.sources` file holds.
    pub uris: BTreeMap<String, Vec<String>>,
    pub suites: BTreeMap<String, Vec<String>>,
    /// Wanted sources whose Release or InRelease file apt has.
    pub lists: BTreeSet<String>,
}

impl Facts {
    /// The list prefixes of what the host's `.sources` file of `name` names.
    fn prefixes(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for uri in self.uris.get(name).into_iter().flatten() {
            for suite in self.suites.get(name).into_iter().flatten() {
                out.push(list_prefix(uri, suite));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Every `infra-*` file, and the URIs and suites of the `.sources` ones: no process unless
/// one exists (the loop is the shell's own).
const PROBE: &str = "set --; for f in /etc/apt/sources.list.d/infra-*.sources /etc/apt/keyrings/infra-*.asc /etc/apt/keyrings/infra-*.gpg; do [ -f \"$f\" ] || continue; printf 'aptfile\\t%s\\n' \"$f\"; case $f in *.sources) set -- \"$@\" \"$f\";; esac; done
[ $# = 0 ] || grep -H -e '^URIs:' -e '^Suites:' -- \"$@\" 2>/dev/null | while IFS= read -r l; do printf 'aptfield\\t%s\\n' \"$l\"; done
";

impl Kind for Step {
    fn probe(desired: &DesiredHost, s: &mut Script) {
        s.raw(PROBE);
        if desired.apt_sources.is_empty() {
            return;
        }
        let paths: Vec<String> = desired
            .apt_sources
            .iter()
            .flat_map(|a| [a.sources_path(), a.key_path()])
            .collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        s.line("sha256sum -- {} 2>/dev/null | while read -r h f; do printf 'apthash\\t%s\\t%s\\n' \"$h\" \"$f\"; done", &[Arg::Words(&paths)]);
        for a in &desired.apt_sources {
            let base = format!("{LISTS_DIR}/{}", a.list_prefix());
            s.line(
                "{ [ -e {}InRelease ] || [ -e {}Release ]; } && printf 'aptlists\\t%s\\n' {}",
                &[w(&base), w(&base), w(&a.name)],
            );
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let f = &mut facts.apt_source;
        match fields {
            ["aptfile", path] => {
                if let Some((name, _)) = managed_name(path) {
                    f.files
                        .entry(name.to_string())
                        .or_default()
                        .insert(path.to_string());
                }
            }
            ["apthash", hash, path] => {
                f.sha256.insert(path.to_string(), hash.to_string());
            }
            ["aptlists", name] => {
                f.lists.insert(name.to_string());
            }
            ["aptfield", rest @ ..] => {
                let line = rest.join("\t");
                let Some((path, field)) = line.split_once(':') else {
                    return Some(Err(BadLine));
                };
                let Some((name, true)) = managed_name(path) else {
                    return Some(Ok(()));
                };
                let (key, values) = field.split_once(':').unwrap_or((field, ""));
                let target = match key {
                    "URIs" => &mut f.uris,
                    "Suites" => &mut f.suites,
                    _ => return Some(Ok(())),
                };
                target
                    .entry(name.to_string())
                    .or_default()
                    .extend(values.split_whitespace().map(str::to_string));
            }
            _ => return None,
        }
        Some(Ok(()))
    }

    fn plan_host(p: &mut Planner) {
        let facts = &p.facts.apt_source;
        let mut steps = Vec::new();
        for a in &p.desired.apt_sources {
            if let Some(step) = plan_source(a, facts) {
                steps.push(step);
            }
        }
        let wanted: BTreeSet<&str> = p
            .desired
            .apt_sources
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        for (name, files) in &facts.files {
            if wanted.contains(name.as_str()) {
                continue;
            }
            steps.push(Step {
                action: Action::Delete,
                name: name.clone(),
                role: String::new(),
                uri: facts
                    .uris
                    .get(name)
                    .map(|u| u.join(" "))
                    .unwrap_or_default(),
                suite: facts
                    .suites
                    .get(name)
                    .map(|u| u.join(" "))
                    .unwrap_or_default(),
                sources: crate::desired_apt::sources_path(name),
                key: String::new(),
                key_origin: String::new(),
                changes: Vec::new(),
                sources_sha256: None,
                key_sha256: None,
                remove: files.iter().cloned().collect(),
                lists: facts.prefixes(name),
            });
        }
        p.steps.extend(steps.into_iter().map(Into::into));
    }

    fn address(&self) -> String {
        match self.action {
            Action::Delete => format!("apt source {} (remove)", self.name),
            _ => format!("apt source {}", self.name),
        }
    }

    fn script(&self, i: usize, wr: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        if self.action == Action::Delete {
            let files = words(&self.remove);
            s.line(
                "rm -f -- {} 2>\"$log\" || fail {}",
                &[Arg::Frag(&files), n(i)],
            );
            remove_lists(&self.lists, s);
            s.line("say {} changed", &[n(i)]);
            return Ok(());
        }
        let a = self.desired(wr)?;
        s.raw("mkdir -p /etc/apt/keyrings /etc/apt/sources.list.d\n");
        let key_path = a.key_path();
        let sources_path = a.sources_path();
        write_file(&key_path, &a.key, &format!("{i}.key"), i, s);
        write_file(
            &sources_path,
            a.sources_text().as_bytes(),
            &format!("{i}.sources"),
            i,
            s,
        );
        if !self.remove.is_empty() {
            let files = words(&self.remove);
            s.line(
                "rm -f -- {} 2>\"$log\" || fail {}",
                &[Arg::Frag(&files), n(i)],
            );
        }
        remove_lists(&self.lists, s);
        self.update(i, wr.host, &sources_path, &key_path, s);
        s.line("say {} changed", &[n(i)]);
        Ok(())
    }
}

impl Step {
    /// The source as the site has it now, checked against what the plan was made with.
    fn desired<'a>(&self, wr: &Writer<'a>) -> Result<&'a DesiredAptSource, ScriptError> {
        let changed = || ScriptError::AptSourceChanged {
            host: wr.host.to_string(),
            name: self.name.clone(),
        };
        let a = wr
            .apt_sources
            .iter()
            .find(|a| a.name == self.name)
            .ok_or_else(changed)?;
        let same = self.sources_sha256.as_deref() == Some(&sha256(a.sources_text().as_bytes()))
            && self.key_sha256.as_deref() == Some(a.key_sha256.as_str());
        if same {
            Ok(a)
        } else {
            Err(changed())
        }
    }

    /// `apt-get update` of this source alone, the other lists left as they are. Any error or
    /// warning (a signature that does not verify is only a warning when older lists exist)
    /// fails the step: the previous files are put back and apt's lines are the step's output.
    fn update(&self, i: usize, host: &str, sources: &str, key: &str, s: &mut Script) {
        let out = format!("{i}.apt");
        let who = format!(
            "apt source {} ({} {}) on host {host}",
            self.name, self.uri, self.suite
        );
        let bad_sig = format!(
            "{who}: the repository's signature does not verify with the key {} (templates/{}): is it the key the repository is signed with? Nothing was installed.",
            key, self.key_origin
        );
        let other = format!(
            "{who}: apt-get update of this source failed (see apt's lines above). Nothing was installed."
        );
        s.line(
            "timeout {} apt-get update -q --error-on=any -o Dir::Etc::sourcelist={} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 > \"$R/\"{} 2>&1; rc=$?",
            &[n(UPDATE_TIMEOUT as usize), w(sources), w(&out)],
        )
        .line(
            "if [ $rc != 0 ] || grep -q -e '^E:' -e '^Err:' -e '^W:.*GPG' -e '^W:.*signature' -e '^W:.*NO_PUBKEY' -e '^W:.*not signed' -e '^W:.*Failed to fetch' \"$R/\"{}; then",
            &[w(&out)],
        )
        .line(
            "  restore {} {}; restore {} {}",
            &[
                w(&format!("{i}.key")),
                w(key),
                w(&format!("{i}.sources")),
                w(sources),
            ],
        )
        .line(
            "  if grep -q -e NO_PUBKEY -e EXPKEYSIG -e BADSIG -e 'GPG error' -e 'not signed' -e 'signature' \"$R/\"{}; then why={}; else why={}; fi",
            &[w(&out), w(&bad_sig), w(&other)],
        )
        .line(
            "  { grep -e '^W:' -e '^E:' -e '^Err:' \"$R/\"{} || tail -n 20 \"$R/\"{}; printf '%s\\n' \"$why\"; } > \"$log\"; fail {} 1",
            &[w(&out), w(&out), n(i)],
        )
        .raw("fi\n");
    }
}

/// Paths as one fragment of quoted words.
fn words(paths: &[String]) -> Script {
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut s = Script::new();
    s.push("{}", &[Arg::Words(&refs)]);
    s
}

/// Removes the list files starting with each prefix (and their partial downloads).
fn remove_lists(prefixes: &[String], s: &mut Script) {
    for p in prefixes {
        let full = format!("{LISTS_DIR}/{p}");
        let partial = format!("{LISTS_DIR}/partial/{p}");
        s.line("rm -f -- {}* {}*", &[w(&full), w(&partial)]);
    }
}

/// Writes `content` to `path` (root's, 0644) through the symlink-safe helpers, backed up as
/// `backup` first.
fn write_file(path: &str, content: &[u8], backup: &str, i: usize, s: &mut Script) {
    s.line("f={}; dest_ok {} \"$f\" root root 0", &[w(path), n(i)])
        .line("backup {} \"$f\"", &[w(backup)]);
    let put = "put_file \"$f\" root root 0644 2>\"$log\" || fail {}";
    match std::str::from_utf8(content) {
        Ok(text) if !text.contains('\0') => {
            s.push("printf %s {} | ", &[w(text)]).line(put, &[n(i)]);
        }
        _ => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(content);
            s.raw("base64 -d <<'INFRA_EOF' | ").line(put, &[n(i)]);
            for chunk in encoded.as_bytes().chunks(76) {
                let line = std::str::from_utf8(chunk).unwrap_or_default();
                s.push("{}", &[Arg::Base64(line)]).raw("\n");
            }
            s.raw("INFRA_EOF\n");
        }
    }
}

/// The step for one wanted source, or none when its files match and apt has its lists.
fn plan_source(a: &DesiredAptSource, facts: &Facts) -> Option<Step> {
    let (sources, key) = (a.sources_path(), a.key_path());
    let sources_hash = sha256(a.sources_text().as_bytes());
    let mut changes = Vec::new();
    if facts.sha256.get(&sources) != Some(&sources_hash) {
        changes.push("sources".to_string());
    }
    if facts.sha256.get(&key) != Some(&a.key_sha256) {
        changes.push("key".to_string());
    }
    if !facts.lists.contains(&a.name) {
        changes.push("lists".to_string());
    }
    if changes.is_empty() {
        return None;
    }
    let present = facts.files.get(&a.name);
    let remove: Vec<String> = present
        .into_iter()
        .flatten()
        .filter(|f| **f != sources && **f != key)
        .cloned()
        .collect();
    let prefix = a.list_prefix();
    let lists = facts
        .prefixes(&a.name)
        .into_iter()
        .filter(|p| *p != prefix)
        .collect();
    Some(Step {
        action: if present.is_some_and(|f| f.contains(&sources)) {
            Action::Update
        } else {
            Action::Create
        },
        name: a.name.clone(),
        role: a.role.clone(),
        uri: a.uri.clone(),
        suite: a.suite.clone(),
        sources,
        key,
        key_origin: a.key_origin.clone(),
        changes,
        sources_sha256: Some(sources_hash),
        key_sha256: Some(a.key_sha256.clone()),
        remove,
        lists,
    })
}
