//! Loading a site folder (roles, inventories, templates) into memory, collecting parse errors.

use crate::diagnostic::{Diagnostic, SourceMap};
use crate::model::{Inventory, Role, Sp};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A parsed file with the path it came from (relative to the site root).
#[derive(Debug)]
pub struct Loaded<T> {
    pub file: PathBuf,
    pub value: T,
}

/// A file under `templates/`: Tera templates end in `.j2`; any file can be a static `source`.
#[derive(Debug, Clone)]
pub struct TemplateFile {
    /// Path relative to `templates/`, with `/` separators: the name roles refer to.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl TemplateFile {
    pub fn is_tera(&self) -> bool {
        self.name.ends_with(".j2")
    }
}

/// Everything read from a site folder.
#[derive(Debug, Default)]
pub struct Site {
    pub root: PathBuf,
    pub roles: BTreeMap<String, Loaded<Role>>,
    pub inventories: BTreeMap<String, Loaded<Inventory>>,
    pub templates: BTreeMap<String, TemplateFile>,
    pub sources: SourceMap,
    /// Role files that exist but did not parse: references to them are not "unknown".
    pub broken_roles: std::collections::BTreeSet<String>,
    /// Inventories that exist but did not parse.
    pub broken_inventories: std::collections::BTreeSet<String>,
}

/// The site could not be read at all (as opposed to a site with mistakes in it).
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{root} is not an infra site: it has no roles/ or inventories/ folder (run from a site, or pass -C DIR)")]
    NotASite { root: PathBuf },
    #[error("{path} is a symbolic link back to {target}, a folder it is inside: the templates walk would never end (remove or retarget the link)")]
    Loop { path: PathBuf, target: PathBuf },
    #[error("the templates under {path} hold {what}: is a symbolic link repeating a folder?")]
    TooBig { path: PathBuf, what: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Site {
    /// Reads every role, inventory and template under `root`. Files that do not parse are left
    /// out and reported as diagnostics, so one run shows every mistake.
    pub fn load(root: &Path) -> Result<(Site, Vec<Diagnostic>), SiteError> {
        if !root.join("roles").is_dir() && !root.join("inventories").is_dir() {
            return Err(SiteError::NotASite {
                root: root.to_path_buf(),
            });
        }
        let mut site = Site {
            root: root.to_path_buf(),
            ..Site::default()
        };
        let mut diags = Vec::new();
        for (stem, rel, text) in read_yaml_dir(root, "roles")? {
            match parse_yaml::<Role>(&rel, &text, &mut diags) {
                Some(value) => {
                    let file = rel.clone();
                    site.roles.insert(stem, Loaded { file, value });
                }
                None => {
                    site.broken_roles.insert(stem);
                }
            }
            site.sources.insert(rel, text);
        }
        for (stem, rel, text) in read_yaml_dir(root, "inventories")? {
            match parse_yaml::<Inventory>(&rel, &text, &mut diags) {
                Some(value) => {
                    let file = rel.clone();
                    site.inventories.insert(stem, Loaded { file, value });
                }
                None => {
                    site.broken_inventories.insert(stem);
                }
            }
            site.sources.insert(rel, text);
        }
        let tdir = root.join("templates");
        if tdir.is_dir() {
            let mut files = Vec::new();
            walk(&tdir, &mut files)?;
            for path in files {
                let bytes = fs::read(&path).map_err(|source| SiteError::Read {
                    path: path.clone(),
                    source,
                })?;
                let name = path
                    .strip_prefix(&tdir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let rel = Path::new("templates").join(&name);
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    site.sources.insert(rel, text.to_string());
                }
                site.templates
                    .insert(name.clone(), TemplateFile { name, bytes });
            }
        }
        Ok((site, diags))
    }

    /// Whether `name` is a role of the site (one whose file did not parse counts: its own
    /// diagnostic says what is wrong, and references to it are not reported again).
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.contains_key(name) || self.broken_roles.contains(name)
    }

    /// Whether every file parsed, so rendering can be trusted to report real problems only.
    pub fn parsed_cleanly(&self) -> bool {
        self.broken_roles.is_empty() && self.broken_inventories.is_empty()
    }

    /// Location of a spanned value written in `file`.
    pub fn loc<T>(
        &self,
        file: &Path,
        sp: &Sp<T>,
        width: usize,
    ) -> crate::diagnostic::SourceLocation {
        self.sources.location(
            file,
            sp.referenced.line() as usize,
            sp.referenced.column() as usize,
            width,
        )
    }
}

/// `(stem, relative path, text)` of every `*.yaml` / `*.yml` in `root/sub`, sorted.
fn read_yaml_dir(root: &Path, sub: &str) -> Result<Vec<(String, PathBuf, String)>, SiteError> {
    let dir = root.join(sub);
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let entries = fs::read_dir(&dir).map_err(|source| SiteError::Read {
        path: dir.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SiteError::Read {
            path: dir.clone(),
            source,
        })?;
        let path = entry.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        if !is_yaml || !path.is_file() {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = fs::read_to_string(&path).map_err(|source| SiteError::Read {
            path: path.clone(),
            source,
        })?;
        let rel = Path::new(sub).join(path.file_name().unwrap_or_default());
        out.push((stem.to_string(), rel, text));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// The deepest folder nesting and the most entries the templates walk reads: links between
/// folders can make a tree far bigger than the disk holds without any loop.
const MAX_WALK_DEPTH: usize = 64;
const MAX_WALK_ENTRIES: usize = 200_000;

/// Every file under `dir`, sorted. Symlinks to folders are followed, but one that leads back to
/// a folder it is inside is a loop, and an error naming it.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SiteError> {
    let mut ancestors = Vec::new();
    let mut seen = 0;
    walk_in(dir, out, &mut ancestors, &mut seen)?;
    out.sort();
    Ok(())
}

fn walk_in(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    ancestors: &mut Vec<(u64, u64, PathBuf)>,
    seen: &mut usize,
) -> Result<(), SiteError> {
    use std::os::unix::fs::MetadataExt;
    let read_err = |source| SiteError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let meta = fs::metadata(dir).map_err(read_err)?;
    let id = (meta.dev(), meta.ino());
    if let Some((_, _, first)) = ancestors.iter().find(|(d, i, _)| (*d, *i) == id) {
        return Err(SiteError::Loop {
            path: dir.to_path_buf(),
            target: first.clone(),
        });
    }
    if ancestors.len() >= MAX_WALK_DEPTH {
        return Err(SiteError::TooBig {
            path: dir.to_path_buf(),
            what: format!("folders nested more than {MAX_WALK_DEPTH} deep"),
        });
    }
    ancestors.push((id.0, id.1, dir.to_path_buf()));
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        *seen += 1;
        if *seen > MAX_WALK_ENTRIES {
            return Err(SiteError::TooBig {
                path: dir.to_path_buf(),
                what: format!("more than {MAX_WALK_ENTRIES} files and folders"),
            });
        }
        if path.is_dir() {
            walk_in(&path, out, ancestors, seen)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    ancestors.pop();
    Ok(())
}

/// The most events aliases may replay in one YAML document: site files are hand-written config,
/// and the parser's default (a million) lets a "billion laughs" file take seconds to refuse.
const MAX_ALIAS_EVENTS: usize = 10_000;

/// The YAML parser's options for everything a user writes (site files, `--var` values).
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_EVENTS;
    options
}

/// Parses one YAML file; a syntax or schema error becomes a diagnostic at its position.
fn parse_yaml<T: serde::de::DeserializeOwned>(
    rel: &Path,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    match serde_saphyr::from_str_with_options::<T>(text, yaml_options()) {
        Ok(v) => Some(v),
        Err(e) => {
            let message = strip_position(&e.without_snippet().to_string());
            let (message, hint) = explain_yaml_error(&message);
            let mut sources = SourceMap::default();
            sources.insert(rel.to_path_buf(), text.to_string());
            let location = e
                .location()
                .map(|l| sources.location(rel, l.line() as usize, l.column() as usize, 1));
            let location = location.unwrap_or_else(|| sources.location(rel, 1, 1, 1));
            let hint = hint.or_else(|| syntax_hint(&message, location.snippet.as_deref()));
            diags.push(Diagnostic::error(message).at(location).hint_opt(hint));
            None
        }
    }
}

/// serde-saphyr appends " at line L, column C"; the location is shown separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Help for the YAML parser's terser syntax errors.
fn syntax_hint(message: &str, snippet: Option<&str>) -> Option<String> {
    if snippet.is_some_and(|l| l.starts_with('\t') || l.trim_start_matches(' ').starts_with('\t')) {
        return Some("YAML indentation must be spaces; this line is indented with a tab".into());
    }
    if message.contains("did not find expected key") {
        return Some("check this line's indentation against the lines above it".into());
    }
    if message.contains("illegal placement of ':'")
        || message.contains("trailing content after double-quoted")
    {
        return Some("a `[`, `{` or `\"` opened on an earlier line may not be closed".into());
    }
    None
}

/// Turns the parser's wording into ours, with a hint where we can give one.
fn explain_yaml_error(message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once("`, expected one of ") {
            let names: Vec<&str> = expected.split(", ").map(|s| s.trim_matches('`')).collect();
            let hint = crate::suggest::did_you_mean(field, names.iter().copied());
            return (format!("unknown field `{field}`"), hint);
        }
        if let Some((field, expected)) = rest.split_once("`, expected ") {
            let name = expected.trim_matches('`');
            return (
                format!("unknown field `{field}`"),
                Some(format!("the only field allowed here is `{name}`")),
            );
        }
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return (
            format!("`{key}` is written twice in the same map"),
            Some("remove or rename one of them".to_string()),
        );
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return (
            format!("missing field `{field}`"),
            Some(format!("add `{field}:`")),
        );
    }
    (message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_gets_a_suggestion() {
        let (m, h) = explain_yaml_error("unknown field `rolez`, expected one of `roles`, `vars`");
        assert_eq!(m, "unknown field `rolez`");
        assert_eq!(h.as_deref(), Some("did you mean `roles`?"));
    }

    #[test]
    fn a_symlink_loop_under_templates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("roles");
        std::fs::create_dir_all(&t).unwrap();
        let sub = dir.path().join("templates/a/b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("x.j2"), "x").unwrap();
        std::os::unix::fs::symlink("..", sub.join("up")).unwrap();
        // A link to a folder that is not an ancestor is followed.
        std::os::unix::fs::symlink("a/b", dir.path().join("templates/copy")).unwrap();
        let e = Site::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link back to"), "{e}");
        std::fs::remove_file(sub.join("up")).unwrap();
        let (site, _) = Site::load(dir.path()).unwrap();
        assert_eq!(
            site.templates.keys().collect::<Vec<_>>(),
            ["a/b/x.j2", "copy/x.j2"]
        );
    }

    /// The fuzz test's billion laughs took 5 s (debug build) to refuse with the parser's default.
    #[test]
    fn an_alias_bomb_is_refused_early() {
        let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
        let mut prev = 'a';
        for c in "bcdefghijklmnop".chars() {
            text.push_str(&format!(
                "{c}: &{c} [{}]\n",
                vec![format!("*{prev}"); 9].join(",")
            ));
            prev = c;
        }
        let mut diags = Vec::new();
        let parsed: Option<serde_json::Value> =
            parse_yaml(Path::new("roles/x.yaml"), &text, &mut diags);
        assert!(parsed.is_none());
        assert!(diags[0].message.contains("alias"), "{}", diags[0].message);
    }

    #[test]
    fn position_suffix_is_stripped() {
        assert_eq!(
            strip_position("invalid u32 at line 3, column 8"),
            "invalid u32"
        );
    }
}
