//! Names and paths from the site, checked as they are parsed: a value that cannot be a service,
//! user, group or package name, or a clean absolute path, is refused with its file and line by
//! every command, before anything is planned or run.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why `text` cannot be a user or group name, if it cannot.
fn account_problem(text: &str) -> Option<&'static str> {
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = text
        .trim_end_matches('$')
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    (!first_ok || !rest_ok || text.len() > 32).then_some(
        "is not a user or group name (a letter or `_`, then letters, digits, `_`, `-` or `.`; at most 32)",
    )
}

/// Why `text` cannot be a Debian package name, if it cannot.
fn package_problem(text: &str) -> Option<&'static str> {
    let ok = text.len() >= 2
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    (!ok).then_some("is not a Debian package name (lowercase letters, digits, `+`, `-`, `.`)")
}

/// Why `text` cannot be a service (unit or init script) name, if it cannot.
fn service_problem(text: &str) -> Option<&'static str> {
    let ok = text.len() <= 200
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | ':' | '-'));
    (!ok).then_some(
        "is not a service name (a letter or digit, then letters, digits, `@`, `.`, `_`, `:`, `-`)",
    )
}

/// Why `text` cannot be a managed path, if it cannot: absolute, normalised, no whitespace,
/// quote or control character (the facts read paths back from tab-separated lines).
pub fn path_problem(text: &str) -> Option<&'static str> {
    if !text.starts_with('/') {
        Some("is not an absolute path")
    } else if text.len() > 1 && text.ends_with('/') {
        Some("ends with `/`")
    } else if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        Some("contains a space, a quote or a control character")
    } else if text.split('/').any(|part| part == ".." || part == ".") || text.contains("//") {
        Some("is not normalised (it has `.`, `..` or `//`)")
    } else {
        None
    }
}

/// Why a file's rendered `dest` cannot be one, if it cannot.
pub fn dest_problem(dest: &str) -> Option<&'static str> {
    if dest.starts_with('/') && dest.ends_with('/') {
        Some("names a directory, not a file")
    } else {
        path_problem(dest)
    }
}

/// Why `text` cannot be an apt source's name, if it cannot: it names
/// `/etc/apt/sources.list.d/infra-<name>.sources` and the key file beside it.
fn apt_name_problem(text: &str) -> Option<&'static str> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!ok).then_some(
        "is not an apt source name (lowercase letters, digits and `-`, not starting with `-`; at most 64)",
    )
}

/// Why `text` cannot be an apt component or architecture (`main`, `amd64`), if it cannot.
fn apt_word_problem(text: &str) -> Option<&'static str> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'));
    (!ok).then_some(
        "is not an apt component or architecture (letters, digits, `.`, `_`, `-`, `/`, `+`)",
    )
}

/// Why `text` cannot be a label (command name, link target), if it cannot: one line of text.
fn line_problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        Some("is empty")
    } else if text.chars().any(char::is_control) {
        Some("contains a newline, tab or other control character")
    } else {
        None
    }
}

/// Why `text` cannot be a value in the generated ssh config, if it cannot: one line, no `"`
/// (a value with spaces is written in double quotes there).
fn ssh_value_problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        Some("is empty")
    } else if text.chars().any(|c| c.is_control() || c == '"') {
        Some("contains a newline, a control character or `\"`, which the ssh config cannot hold")
    } else {
        None
    }
}

/// Why `text` cannot be an ssh_config keyword, if it cannot.
fn ssh_keyword_problem(text: &str) -> Option<&'static str> {
    let ok = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric());
    (!ok).then_some("is not an ssh_config keyword (letters and digits, e.g. KexAlgorithms)")
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $problem:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                match $problem(&text) {
                    Some(problem) => Err(format!("{text:?} {problem}")),
                    None => Ok($name(text)),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                $name::try_from(text.to_string())
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

checked_name!(
    /// A local user or group name.
    Account,
    account_problem
);
impl Account {
    /// `root`, the default owner and group.
    pub fn root() -> Account {
        Account("root".into())
    }
}

checked_name!(
    /// A Debian package name.
    Package,
    package_problem
);
checked_name!(
    /// A service: a systemd unit or an `/etc/init.d` script.
    ServiceName,
    service_problem
);
checked_name!(
    /// A clean absolute path.
    AbsPath,
    path_problem
);
impl AbsPath {
    /// `/usr/bin/python3`, the interpreter a release's virtualenv uses by default.
    pub fn python3() -> AbsPath {
        AbsPath("/usr/bin/python3".into())
    }
}

checked_name!(
    /// One line of text: a command's name, a link's target.
    Line,
    line_problem
);

checked_name!(
    /// The name of an apt source (`apt_sources[].name`).
    AptName,
    apt_name_problem
);
checked_name!(
    /// An apt component or architecture.
    AptWord,
    apt_word_problem
);

checked_name!(
    /// A value the inventory puts into the generated ssh config (address, path, option).
    SshValue,
    ssh_value_problem
);
checked_name!(
    /// An ssh_config keyword (`KexAlgorithms`).
    SshKeyword,
    ssh_keyword_problem
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_not_names() {
        for bad in [
            "-rf", "a b", "x;y", "$(id)", "`id`", "a'b", "a\"b", "a\nb", "é", "",
        ] {
            assert!(Account::try_from(bad.to_string()).is_err(), "{bad:?}");
            assert!(Package::try_from(bad.to_string()).is_err(), "{bad:?}");
            assert!(ServiceName::try_from(bad.to_string()).is_err(), "{bad:?}");
            assert!(AbsPath::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        for good in ["www-data", "Debian-exim", "_apt", "opendkim"] {
            assert!(Account::try_from(good.to_string()).is_ok(), "{good}");
        }
        for good in ["postgresql-15", "g++", "python3.11"] {
            assert!(Package::try_from(good.to_string()).is_ok(), "{good}");
        }
        for good in [
            "nginx",
            "getty@tty1",
            "postgresql@15-main",
            "rabbitmq-server",
        ] {
            assert!(ServiceName::try_from(good.to_string()).is_ok(), "{good}");
        }
        assert!(AbsPath::try_from("/".to_string()).is_ok());
        assert!(AbsPath::try_from("/etc/../x".to_string()).is_err());
        assert!(Line::try_from("init db".to_string()).is_ok());
        assert!(Line::try_from("a\nb".to_string()).is_err());
        assert!(SshValue::try_from("x\nProxyCommand y".to_string()).is_err());
        assert!(SshValue::try_from("a \"b".to_string()).is_err());
        assert!(SshValue::try_from("~/my keys/id".to_string()).is_ok());
        assert!(SshKeyword::try_from("Kex Algorithms".to_string()).is_err());
    }
}
