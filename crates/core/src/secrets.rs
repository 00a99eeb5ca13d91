//! Secrets: values read from a file outside git and from the environment, and their redaction.

use crate::model::SecretsConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default prefix of environment variables that set secrets.
pub const DEFAULT_ENV_PREFIX: &str = "INFRA_SECRET_";

/// The secret values available to one environment.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

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
        Ok(Secrets { values })
    }

    pub fn from_values(values: BTreeMap<String, String>) -> Secrets {
        Secrets { values }
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

    /// The names of the secrets whose values appear in `text`.
    pub fn found_in(&self, text: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(_, v)| !v.is_empty() && text.contains(v.as_str()))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `text` with every secret value replaced by `<secret: NAME>`, longest values first so a
    /// value that contains another is still hidden whole.
    pub fn redact(&self, text: &str) -> String {
        let mut pairs: Vec<(&String, &String)> =
            self.values.iter().filter(|(_, v)| !v.is_empty()).collect();
        pairs.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        let mut out = text.to_string();
        for (name, value) in pairs {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &Secrets::redacted(name));
            }
        }
        out
    }
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
    fn environment_variables_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("infra-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.yaml"), "redis_password: fromfile\nother: 1\n").unwrap();
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
