//! Diagnostics: one problem found in the site, with its file, line, column, snippet and hint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is. Errors make `validate` exit 1; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where in a site file a diagnostic points. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct SourceLocation {
    /// Path relative to the site root, e.g. `roles/app.yaml`.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The text of the line the diagnostic points at, when known.
    pub snippet: Option<String>,
    /// How many characters to underline (at least 1).
    pub width: usize,
}

/// One problem found in the site.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub location: Option<SourceLocation>,
    /// A suggestion, e.g. "did you mean `app`?".
    pub hint: Option<String>,
    /// Extra context, e.g. which hosts a template failed for.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location: None,
            hint: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn at(mut self, location: SourceLocation) -> Self {
        self.location = Some(location);
        self
    }

    pub fn at_opt(mut self, location: Option<SourceLocation>) -> Self {
        self.location = location;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The text of every file read from the site, so diagnostics can quote the offending line.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: BTreeMap<PathBuf, Source>,
}

/// A file's text and where each of its lines starts (a location is made for every file of
/// every host: finding its line must not read the file from the top).
#[derive(Debug, Default, Clone)]
struct Source {
    text: String,
    line_starts: Vec<usize>,
}

impl SourceMap {
    pub fn insert(&mut self, file: PathBuf, text: String) {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.insert(file, Source { text, line_starts });
    }

    pub fn text(&self, file: &Path) -> Option<&str> {
        self.files.get(file).map(|s| s.text.as_str())
    }

    /// Line `line` (1-based) of `file`, without its line ending.
    fn line(&self, file: &Path, line: usize) -> Option<&str> {
        let source = self.files.get(file)?;
        let start = *source.line_starts.get(line.checked_sub(1)?)?;
        let rest = source.text.get(start..)?;
        (!rest.is_empty()).then(|| rest.lines().next().unwrap_or_default())
    }

    /// A location in `file` at 1-based `line` and `column`, underlining `width` characters.
    pub fn location(
        &self,
        file: &Path,
        line: usize,
        column: usize,
        width: usize,
    ) -> SourceLocation {
        let snippet = self
            .line(file, line.max(1))
            .map(|l| l.trim_end().to_string());
        SourceLocation {
            file: file.to_path_buf(),
            line: line.max(1),
            column: column.max(1),
            snippet,
            width: width.max(1),
        }
    }

    /// The first line of `file` whose text starts (after indentation) with `needle`,
    /// for facts the YAML parser gives no position for (e.g. map keys).
    pub fn find_key(&self, file: &Path, needle: &str) -> Option<SourceLocation> {
        let text = self.text(file)?;
        text.lines().enumerate().find_map(|(i, l)| {
            let trimmed = l.trim_start();
            trimmed.starts_with(needle).then(|| {
                let col = l.len() - trimmed.len() + 1;
                self.location(
                    file,
                    i + 1,
                    col,
                    needle.trim_end_matches(':').chars().count(),
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::SourceMap;
    use std::path::{Path, PathBuf};

    #[test]
    fn a_location_quotes_its_line() {
        let mut map = SourceMap::default();
        map.insert(PathBuf::from("r.yaml"), "a: 1\r\n\nc: 3  \nd".into());
        let snippet = |line| map.location(Path::new("r.yaml"), line, 1, 1).snippet;
        assert_eq!(snippet(0).as_deref(), Some("a: 1"));
        assert_eq!(snippet(1).as_deref(), Some("a: 1"));
        assert_eq!(snippet(2).as_deref(), Some(""));
        assert_eq!(snippet(3).as_deref(), Some("c: 3"));
        assert_eq!(snippet(4).as_deref(), Some("d"));
        assert_eq!(snippet(5), None);
        map.insert(PathBuf::from("e.yaml"), "x\n".into());
        assert_eq!(map.location(Path::new("e.yaml"), 2, 1, 1).snippet, None);
        assert_eq!(map.location(Path::new("none"), 1, 1, 1).snippet, None);
    }
}
