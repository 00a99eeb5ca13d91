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
    files: BTreeMap<PathBuf, String>,
}

impl SourceMap {
    pub fn insert(&mut self, file: PathBuf, text: String) {
        self.files.insert(file, text);
    }

    pub fn text(&self, file: &Path) -> Option<&str> {
        self.files.get(file).map(String::as_str)
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
            .text(file)
            .and_then(|text| text.lines().nth(line.saturating_sub(1)))
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
