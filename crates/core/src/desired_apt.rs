//! An apt source as a host wants it (a role's `apt_sources:` entry, rendered): the files it
//! becomes (a deb822 `.sources` file, its key in /etc/apt/keyrings), the names apt gives its
//! lists, and the cheap check that a key file is an OpenPGP public key.

use serde::Serialize;

/// Where the `.sources` files go: `infra-<name>.sources`.
pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// Where the keys go: `infra-<name>.asc` (armored) or `infra-<name>.gpg` (binary), the
/// extensions apt reads `Signed-By` files by.
pub const KEYRING_DIR: &str = "/etc/apt/keyrings";
/// Where apt keeps the Release and Packages files it downloaded.
pub const LISTS_DIR: &str = "/var/lib/apt/lists";

/// One apt source of a host, from the first role (in apply order) naming it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DesiredAptSource {
    pub name: String,
    pub role: String,
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    /// The key's file in the site, relative to templates/.
    pub key_origin: String,
    #[serde(skip)]
    pub key: Vec<u8>,
    pub key_sha256: String,
    /// An ASCII-armored key (`.asc`), else a binary one (`.gpg`).
    pub armored: bool,
}

impl DesiredAptSource {
    pub fn sources_path(&self) -> String {
        sources_path(&self.name)
    }

    pub fn key_path(&self) -> String {
        let ext = if self.armored { "asc" } else { "gpg" };
        format!("{KEYRING_DIR}/infra-{}.{ext}", self.name)
    }

    /// The deb822 `.sources` file (no `Components:` for a flat repository).
    pub fn sources_text(&self) -> String {
        let mut t = format!(
            "# Managed by infra (role {}): apt source {}.\nTypes: deb\nURIs: {}\nSuites: {}\n",
            self.role, self.name, self.uri, self.suite,
        );
        if !self.components.is_empty() {
            t.push_str(&format!("Components: {}\n", self.components.join(" ")));
        }
        if !self.architectures.is_empty() {
            t.push_str(&format!(
                "Architectures: {}\n",
                self.architectures.join(" ")
            ));
        }
        t.push_str(&format!("Signed-By: {}\n", self.key_path()));
        t
    }

    /// The start of the names of this source's files under [`LISTS_DIR`].
    pub fn list_prefix(&self) -> String {
        list_prefix(&self.uri, &self.suite)
    }
}

pub fn sources_path(name: &str) -> String {
    format!("{SOURCES_DIR}/infra-{name}.sources")
}

/// The start of the list files apt writes for `uri` and `suite` (apt's `URItoFileName` of
/// `URI/dists/SUITE/`, or of `URI/SUITE` for a flat repository, whose suite ends with `/`):
/// the scheme and any user and password dropped, characters outside apt's set %-escaped, `/`
/// made `_`. E.g. `deb.debian.org_debian_dists_bookworm_`, flat `apt.example.org_jessie_`.
pub fn list_prefix(uri: &str, suite: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{host}/{path}")
        }
        None => rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_string(),
    };
    let full = if is_flat(suite) {
        format!("{}/{}", rest.trim_end_matches('/'), suite)
    } else {
        format!("{}/dists/{}/", rest.trim_end_matches('/'), suite)
    };
    let mut out = String::new();
    for b in full.bytes() {
        if b <= 0x20 || b >= 0x7f || b"\\|{}[]<>\"^~_=!@#$%&*".contains(&b) {
            out.push_str(&format!("%{b:02x}"));
        } else if b == b'/' {
            out.push('_');
        } else {
            out.push(b as char);
        }
    }
    out
}

/// The source's name and whether the path is its `.sources` file, for a file infra wrote
/// (`/etc/apt/sources.list.d/infra-NAME.sources`, `/etc/apt/keyrings/infra-NAME.asc|.gpg`).
pub fn managed_name(path: &str) -> Option<(&str, bool)> {
    if let Some(rest) = path.strip_prefix(SOURCES_DIR) {
        let name = rest.strip_prefix("/infra-")?.strip_suffix(".sources")?;
        return Some((name, true));
    }
    let rest = path.strip_prefix(KEYRING_DIR)?.strip_prefix("/infra-")?;
    let name = rest
        .strip_suffix(".asc")
        .or_else(|| rest.strip_suffix(".gpg"))?;
    Some((name, false))
}

/// Whether `bytes` is an OpenPGP public key: `Ok(true)` armored, `Ok(false)` binary, else why
/// not. Cheap: the armor's header line, or the first packet's tag (6, a public key).
pub fn key_kind(bytes: &[u8]) -> Result<bool, &'static str> {
    const PUBLIC: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
    const SECRET: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----";
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.contains(SECRET) {
            return Err(
                "is an OpenPGP private key: only the repository's public key belongs in the site",
            );
        }
        if text.contains(PUBLIC) {
            return if text.contains("-----END PGP PUBLIC KEY BLOCK-----") {
                Ok(true)
            } else {
                Err("is cut short: it has no `-----END PGP PUBLIC KEY BLOCK-----` line")
            };
        }
    }
    let Some(&first) = bytes.first() else {
        return Err("is empty");
    };
    let tag = match first {
        b if b & 0xc0 == 0xc0 => b & 0x3f,
        b if b & 0x80 != 0 => (b >> 2) & 0x0f,
        _ => 0,
    };
    match tag {
        6 if bytes.len() >= 8 => Ok(false),
        5 => Err("is an OpenPGP private key: only the repository's public key belongs in the site"),
        _ => Err("is not an OpenPGP public key (neither `-----BEGIN PGP PUBLIC KEY BLOCK-----` armor nor a binary key packet)"),
    }
}

/// Why a rendered `uri` cannot be one, if it cannot.
pub fn uri_problem(uri: &str) -> Option<&'static str> {
    let scheme_ok = [
        "http://",
        "https://",
        "file:/",
        "mirror+http://",
        "mirror+https://",
    ]
    .iter()
    .any(|s| uri.starts_with(s));
    if !scheme_ok {
        Some("is not an http://, https:// or file:/ URI")
    } else if uri
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        Some("holds a space, a quote or a control character")
    } else {
        None
    }
}

/// Whether `suite` names a flat repository (`deb URI jessie/`): it ends with `/`, its index
/// is at `URI/SUITE` rather than under `dists/`, and it has no components.
pub fn is_flat(suite: &str) -> bool {
    suite.ends_with('/')
}

/// Why a rendered `suite` cannot be one, if it cannot. One trailing `/` is allowed: a flat
/// repository.
pub fn suite_problem(suite: &str) -> Option<&'static str> {
    let path = suite.strip_suffix('/').unwrap_or(suite);
    let ok = !path.is_empty()
        && !path.starts_with(['-', '/'])
        && !path.ends_with('/')
        && !path.split('/').any(|p| p == ".." || p == ".")
        && suite
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+' | '~'));
    (!ok).then_some("is not a suite (letters, digits, `.`, `_`, `-`, `+`, `~`, `/` inside)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prefixes_are_apts_file_names() {
        assert_eq!(
            list_prefix("http://deb.debian.org/debian", "bookworm"),
            "deb.debian.org_debian_dists_bookworm_"
        );
        assert_eq!(
            list_prefix("https://artifacts.elastic.co/packages/8.x/apt/", "stable"),
            "artifacts.elastic.co_packages_8.x_apt_dists_stable_"
        );
        assert_eq!(
            list_prefix("http://u:p@10.0.0.1:8080/my_repo", "a/b"),
            "10.0.0.1:8080_my%5frepo_dists_a_b_"
        );
        // A flat repository: apt fetches URI/SUITE/InRelease.
        assert_eq!(
            list_prefix("http://apt.dev.grnet.gr", "jessie/"),
            "apt.dev.grnet.gr_jessie_"
        );
    }

    #[test]
    fn a_flat_repository_has_no_components_line() {
        let a = DesiredAptSource {
            name: "synnefo".into(),
            role: "synnefo-apt".into(),
            uri: "http://apt.dev.grnet.gr".into(),
            suite: "jessie/".into(),
            components: vec![],
            architectures: vec![],
            key_origin: "keys/k.asc".into(),
            key: vec![],
            key_sha256: String::new(),
            armored: true,
        };
        assert_eq!(
            a.sources_text(),
            "# Managed by infra (role synnefo-apt): apt source synnefo.\nTypes: deb\n\
             URIs: http://apt.dev.grnet.gr\nSuites: jessie/\n\
             Signed-By: /etc/apt/keyrings/infra-synnefo.asc\n"
        );
        assert_eq!(a.list_prefix(), "apt.dev.grnet.gr_jessie_");
    }

    #[test]
    fn a_flat_suite_ends_with_one_slash() {
        assert_eq!(suite_problem("jessie/"), None);
        assert_eq!(suite_problem("a/b/"), None);
        assert!(suite_problem("/").is_some());
        assert!(suite_problem("jessie//").is_some());
        assert!(suite_problem("../").is_some());
        assert!(suite_problem("./").is_some());
        assert!(is_flat("jessie/") && !is_flat("bookworm"));
    }

    #[test]
    fn keys_are_told_apart_cheaply() {
        assert_eq!(
            key_kind(
                b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ\n-----END PGP PUBLIC KEY BLOCK-----\n"
            ),
            Ok(true)
        );
        assert_eq!(key_kind(&[0x99, 1, 13, 4, 0, 0, 0, 0, 1]), Ok(false));
        assert_eq!(key_kind(&[0xc6, 1, 13, 4, 0, 0, 0, 0, 1]), Ok(false));
        assert!(key_kind(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n").is_err());
        assert!(key_kind(&[0x95, 1, 2, 3, 4, 5, 6, 7, 8]).is_err());
        assert!(key_kind(b"hello").is_err());
        assert!(key_kind(b"").is_err());
        assert!(key_kind(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQ").is_err());
    }

    #[test]
    fn uris_and_suites_are_one_word() {
        assert_eq!(
            uri_problem("https://artifacts.elastic.co/packages/8.x/apt"),
            None
        );
        assert_eq!(uri_problem("file:/srv/repo"), None);
        for bad in [
            "ftp://x/",
            "x",
            "http://a b/",
            "http://x/\nTypes: deb-src",
            "http://x/\"",
        ] {
            assert!(uri_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(suite_problem("bookworm-backports"), None);
        assert_eq!(suite_problem("a/b"), None);
        // "a/" is a flat repository's suite (a_flat_suite_ends_with_one_slash).
        for bad in ["", "-x", "a b", "../x", "a//", "/", "x$(id)", "x\ny"] {
            assert!(suite_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn managed_files_name_their_source() {
        assert_eq!(
            managed_name("/etc/apt/sources.list.d/infra-elastic-8.sources"),
            Some(("elastic-8", true))
        );
        assert_eq!(
            managed_name("/etc/apt/keyrings/infra-elastic-8.gpg"),
            Some(("elastic-8", false))
        );
        assert_eq!(managed_name("/etc/apt/sources.list.d/x.sources"), None);
    }
}
