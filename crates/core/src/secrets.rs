//! Secrets: values read from a file outside git and from the environment, and their redaction.

use crate::model::SecretsConfig;
use crate::quoting;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default prefix of environment variables that set secrets.
pub const DEFAULT_ENV_PREFIX: &str = "INFRA_SECRET_";

/// The secret values available to one environment.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: BTreeMap<String, String>,
    /// What redaction looks for, longest first: (text, secret name). See [`needles`].
    needles: Vec<(String, String)>,
    /// The same needles, found in one pass ([`Secrets::found_in`]).
    scanner: Scanner,
    digest_key: DigestKey,
}

/// Many needles looked for in one pass over a text (Aho-Corasick): which names' needles a text
/// holds. A file is scanned once, not once per needle of every secret.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    automaton: Option<aho_corasick::AhoCorasick>,
    /// The name of each needle, by pattern index.
    names: Vec<String>,
}

impl Scanner {
    /// A scanner for (needle, name) pairs; empty needles are ignored.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Scanner {
        let (patterns, names): (Vec<String>, Vec<String>) =
            pairs.into_iter().filter(|(n, _)| !n.is_empty()).unzip();
        if patterns.is_empty() {
            return Scanner::default();
        }
        // A contiguous NFA: built in microseconds (a scanner is built per set of unset names a
        // rendering meets; a DFA's construction cost more than the scans it saves). Needles come from the environment's
        // own secrets, a handful per value: building fails only past aho-corasick's size
        // limits, far beyond any secrets file.
        let automaton = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&patterns)
            .expect("the secrets' needles fit an Aho-Corasick automaton");
        Scanner {
            automaton: Some(automaton),
            names,
        }
    }

    /// The placeholders of the secrets in `values` (name -> value or placeholder, as a host's
    /// templates saw them) that `secrets` does not set, and their encodings ([`needles`]).
    pub fn unset(secrets: &Secrets, values: &BTreeMap<String, String>) -> Scanner {
        Scanner::new(
            values
                .iter()
                .filter(|(name, _)| secrets.get(name).is_none())
                .flat_map(|(name, v)| needles(v).into_iter().map(|n| (n, name.clone()))),
        )
    }

    /// The names whose needles appear in `text` (a string or bytes), sorted, each once.
    pub fn names_in(&self, text: impl AsRef<[u8]>) -> Vec<String> {
        let Some(automaton) = &self.automaton else {
            return Vec::new();
        };
        let found: std::collections::BTreeSet<&String> = automaton
            .find_overlapping_iter(text.as_ref())
            .map(|m| &self.names[m.pattern().as_usize()])
            .collect();
        found.into_iter().cloned().collect()
    }
}

/// The key of the digests a plan shows for a file holding a secret (see [`DigestKey::keyed`]).
/// Derived from every secret value of the environment (HMAC-SHA256 under a fixed label of each
/// name and value, length-prefixed, sorted by name): two operators with the same secrets get
/// the same plan, and a plan file gives no way to test a guessed secret without all the others.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DigestKey([u8; 32]);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    fn derive(values: &BTreeMap<String, String>) -> DigestKey {
        let mut message = Vec::new();
        for (name, value) in values {
            for part in [name.as_bytes(), value.as_bytes()] {
                message.extend_from_slice(&(part.len() as u64).to_be_bytes());
                message.extend_from_slice(part);
            }
        }
        DigestKey(hmac_sha256(b"infra plan digest key v1", &message))
    }

    /// `hmac-sha256:<hex>`: HMAC-SHA256 of a content's sha256 (hex), so the host's plain
    /// sha256 of its current file is keyed the same way as the rendered content's.
    pub fn keyed(&self, sha256_hex: &str) -> String {
        format!(
            "hmac-sha256:{}",
            crate::state::hex(&hmac_sha256(&self.0, sha256_hex.as_bytes()))
        )
    }
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Lines of a multi-line value shorter than this are left alone, so output is not shredded.
pub const MIN_LINE: usize = 4;

/// A secrets file that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secrets file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secrets file {path} is not a YAML map of name: value ({message})")]
    Parse { path: PathBuf, message: String },
    #[error(
        "secrets file {path} has mode {mode:04o}: other users can read it (run `chmod 600 {path}`)"
    )]
    Mode { path: PathBuf, mode: u32 },
}

impl Secrets {
    /// Reads the environment's secrets: the file named in the inventory (if it exists; a fresh
    /// clone has none) and then `<prefix><NAME>` environment variables, which win.
    pub fn load(
        config: &SecretsConfig,
        site_root: &Path,
        env_vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Secrets, SecretsError> {
        let mut values = BTreeMap::new();
        if let Some(file) = &config.file {
            let path = expand_path(file, site_root);
            if path.is_file() {
                refuse_open_mode(&path)?;
                let text = std::fs::read_to_string(&path).map_err(|source| SecretsError::Read {
                    path: path.clone(),
                    source,
                })?;
                let map: BTreeMap<String, serde_json::Value> = serde_saphyr::from_str(&text)
                    .map_err(|e| SecretsError::Parse {
                        path: path.clone(),
                        message: e.without_snippet().to_string(),
                    })?;
                for (k, v) in map {
                    let s = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    values.insert(k, s);
                }
            }
        }
        let prefix = config.env_prefix.as_deref().unwrap_or(DEFAULT_ENV_PREFIX);
        for (key, value) in env_vars {
            if let Some(name) = key.strip_prefix(prefix) {
                if !name.is_empty() {
                    values.insert(name.to_ascii_lowercase(), value);
                }
            }
        }
        Ok(Secrets::from_values(values))
    }

    pub fn from_values(values: BTreeMap<String, String>) -> Secrets {
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &values {
            for needle in needles(value) {
                found.entry(needle).or_insert_with(|| name.clone());
            }
        }
        let mut needles: Vec<(String, String)> = found.into_iter().collect();
        needles.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let digest_key = DigestKey::derive(&values);
        let scanner = Scanner::new(needles.iter().cloned());
        Secrets {
            values,
            needles,
            scanner,
            digest_key,
        }
    }

    /// The key of the digests plans show for files holding a secret.
    pub fn digest_key(&self) -> &DigestKey {
        &self.digest_key
    }

    /// Every secret's name and value, sorted by name.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The text templates see in place of a secret that is not set.
    pub fn placeholder(name: &str) -> String {
        format!("<missing secret: {name}>")
    }

    /// The text shown in place of a secret's value in any output.
    pub fn redacted(name: &str) -> String {
        format!("<secret: {name}>")
    }

    /// The names of the secrets whose values (or a line or an encoding of one, see
    /// [`needles`]) appear in `text` (a string or a file's bytes), sorted.
    pub fn found_in(&self, text: impl AsRef<[u8]>) -> Vec<String> {
        self.scanner.names_in(text)
    }

    /// `text` with every secret value, every line of a multi-line one and their common
    /// encodings replaced by `<secret: NAME>`, longest first so a value that contains another
    /// is still hidden whole.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (needle, name) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), &Secrets::redacted(name));
            }
        }
        out
    }
}

/// What redaction looks for for one value: the value, the forms it takes once quoted or
/// encoded (sh and SQL quoting, a JSON string, base64 standard and URL-safe with and without
/// padding, percent-encoding), and for a multi-line value each line of its own (trimmed; lines
/// shorter than [`MIN_LINE`] and PEM `-----BEGIN`/`-----END` lines stay, they are no secret).
pub fn needles(value: &str) -> Vec<String> {
    if value.is_empty() {
        return Vec::new();
    }
    let b64 = |e: &base64::engine::GeneralPurpose, v: &str| e.encode(v.as_bytes());
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or_default()
        .to_string();
    let whole = [
        value.to_string(),
        quoting::sh_body(value),
        quoting::sql_body(value),
        value.replace('\'', "''"),
        json,
    ];
    let mut out: Vec<String> = Vec::new();
    for form in &whole {
        out.push(form.clone());
        if form.contains('\n') {
            out.extend(
                form.lines()
                    .map(str::trim)
                    .filter(|l| is_secret_line(l))
                    .map(str::to_string),
            );
        }
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    for e in &engines {
        out.push(b64(e, value));
        out.push(b64(e, &format!("{value}\n")));
    }
    out.push(quoting::percent(value, true));
    out.push(quoting::percent(value, false));
    out.retain(|n| !n.is_empty());
    out.sort();
    out.dedup();
    out
}

/// A line of a multi-line secret worth hiding on its own.
fn is_secret_line(line: &str) -> bool {
    line.chars().count() >= MIN_LINE
        && !line.starts_with("-----BEGIN ")
        && !line.starts_with("-----END ")
}

/// A secrets file other users can read (or change) is refused.
fn refuse_open_mode(path: &Path) -> Result<(), SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| SecretsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::Mode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// `~/x` from $HOME; a relative path from the site root.
pub fn expand_path(path: &str, site_root: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = PathBuf::from(path);
    if p.is_absolute() {
        p
    } else {
        site_root.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets::from_values(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn redaction_hides_every_value_longest_first() {
        let s = secrets(&[("short", "abc"), ("long", "xxabcxx")]);
        assert_eq!(
            s.redact("a=xxabcxx b=abc"),
            "a=<secret: long> b=<secret: short>"
        );
        assert_eq!(s.found_in("has abc"), vec!["short".to_string()]);
    }

    #[test]
    fn one_pass_finds_every_secret_even_inside_another() {
        let s = secrets(&[("short", "abc"), ("long", "xxabcxx"), ("other", "zzz")]);
        assert_eq!(s.found_in("a=xxabcxx"), vec!["long", "short"]);
        assert_eq!(s.found_in("nothing here"), Vec::<String>::new());
        assert_eq!(s.found_in("zzz then abc"), vec!["other", "short"]);
        assert_eq!(secrets(&[]).found_in("abc"), Vec::<String>::new());
    }

    #[test]
    fn unset_secrets_placeholders_are_found_quoted_or_encoded() {
        let s = secrets(&[("set", "value1")]);
        let values: BTreeMap<String, String> = [
            ("set".to_string(), "value1".to_string()),
            ("gone".to_string(), Secrets::placeholder("gone")),
            ("idle".to_string(), Secrets::placeholder("idle")),
        ]
        .into();
        let unset = Scanner::unset(&s, &values);
        let quoted = quoting::sh_body(&Secrets::placeholder("gone"));
        assert_eq!(unset.names_in(format!("a='{quoted}' value1")), vec!["gone"]);
        let encoded = quoting::percent(&Secrets::placeholder("idle"), true);
        assert_eq!(unset.names_in(format!("u={encoded}")), vec!["idle"]);
        assert_eq!(unset.names_in("value1"), Vec::<String>::new());
    }

    #[test]
    fn environment_variables_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("infra-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.yaml"), "redis_password: fromfile\nother: 1\n").unwrap();
        set_mode(&dir.join("s.yaml"), 0o600);
        let config = SecretsConfig {
            file: Some("s.yaml".into()),
            env_prefix: Some("T_".into()),
        };
        let env = vec![
            ("T_REDIS_PASSWORD".to_string(), "fromenv".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let s = Secrets::load(&config, &dir, env).unwrap();
        assert_eq!(s.get("redis_password"), Some("fromenv"));
        assert_eq!(s.get("other"), Some("1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_file_others_can_read_is_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, "a: b\n").unwrap();
        let config = SecretsConfig {
            file: Some(path.display().to_string()),
            env_prefix: None,
        };
        for mode in [0o644, 0o640, 0o604, 0o660] {
            set_mode(&path, mode);
            let err = Secrets::load(&config, dir.path(), Vec::new()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "secrets file {p} has mode {mode:04o}: other users can read it (run `chmod 600 {p}`)",
                    p = path.display()
                )
            );
        }
        set_mode(&path, 0o600);
        let s = Secrets::load(&config, dir.path(), Vec::new()).unwrap();
        assert_eq!(s.get("a"), Some("b"));
    }

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\nAw=\n-----END PRIVATE KEY-----\n";

    #[test]
    fn every_line_of_a_multi_line_value_is_hidden_on_its_own() {
        let s = secrets(&[("key", PEM)]);
        // As a failing command prints it: one line at a time, indented.
        let shown: Vec<String> = PEM.lines().map(|l| s.redact(&format!("  {l}"))).collect();
        assert_eq!(
            shown,
            vec![
                "  -----BEGIN PRIVATE KEY-----",
                "  <secret: key>",
                "  <secret: key>",
                "  Aw=",
                "  -----END PRIVATE KEY-----",
            ]
        );
        assert_eq!(s.redact(&format!("x{PEM}y")), "x<secret: key>y");
        assert_eq!(s.found_in("BKcwggSjAgEAAoIBAQC7"), vec!["key".to_string()]);
    }

    #[test]
    fn common_encodings_of_the_whole_value_are_hidden() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let v = "p'a\"s/s w+?\\d\n$(x)";
        let s = secrets(&[("pw", v)]);
        let forms = [
            quoting::sh(v),
            quoting::sql(v),
            serde_json::to_string(v).unwrap(),
            STANDARD.encode(v),
            URL_SAFE_NO_PAD.encode(v),
            quoting::percent(v, true),
            quoting::percent(v, false),
            format!("'{}'", v.replace('\'', "''")),
        ];
        for form in forms {
            let out = s.redact(&format!("[{form}]"));
            assert!(!out.contains("s/s w"), "{form} -> {out}");
            assert!(out.contains("<secret: pw>"), "{form} -> {out}");
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let hex = |b: [u8; 32]| crate::state::hex(&b);
        assert_eq!(
            hex(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block is hashed first.
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_digest_key_depends_on_every_secret_and_nothing_else() {
        let a = secrets(&[("x", "1"), ("y", "2")]);
        let same = secrets(&[("y", "2"), ("x", "1")]);
        let other = secrets(&[("x", "1"), ("y", "3")]);
        let shifted = secrets(&[("x", "12"), ("y", "")]);
        assert_eq!(a.digest_key(), same.digest_key());
        assert_ne!(a.digest_key(), other.digest_key());
        assert_ne!(a.digest_key(), shifted.digest_key());
        let h = crate::state::sha256(b"content");
        let k = a.digest_key().keyed(&h);
        assert!(k.starts_with("hmac-sha256:") && k.len() == 12 + 64, "{k}");
        assert_eq!(k, same.digest_key().keyed(&h));
        assert_ne!(k, other.digest_key().keyed(&h));
    }

    #[test]
    fn a_missing_file_is_no_error() {
        let config = SecretsConfig {
            file: Some("/nonexistent/infra/secrets.yaml".into()),
            env_prefix: None,
        };
        let s = Secrets::load(&config, Path::new("/"), Vec::new()).unwrap();
        assert_eq!(s.get("x"), None);
    }
}
