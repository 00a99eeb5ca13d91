//! Shell text built by type: the code's own constant fragments, and values (from the site, the
//! inventory or a host) that only ever enter a script as single-quoted words.

use crate::model::Mode;
use std::fmt::Write;

/// `'text'` for sh, whatever the text holds.
pub fn quote(text: &str) -> String {
    crate::quoting::sh(text)
}

/// A value filled into a template's `{}`.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// Any text: one single-quoted word, whatever it holds.
    Word(&'a str),
    /// Any texts: single-quoted words separated by spaces.
    Words(&'a [&'a str]),
    /// A word the code owns (an action name, a constant path): as it is.
    Const(&'static str),
    /// A line of base64 (its alphabet holds nothing sh treats specially); anything else in it
    /// is dropped.
    Base64(&'a str),
    /// Text for a `#` comment: control characters (a newline would end the comment) become `?`.
    Comment(&'a str),
    /// A number the code computed (step index, timeout).
    Num(u64),
    /// A file mode, as four octal digits.
    Mode(Mode),
    /// A fragment built by this module, so already safe.
    Frag(&'a Script),
}

/// A POSIX sh program under construction. Its text comes only from `&'static str` templates
/// (the code's own) and [`Arg`]s, so a value cannot become code by forgetting to quote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script(String);

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Appends a constant fragment.
    pub fn raw(&mut self, text: &'static str) -> &mut Script {
        self.0.push_str(text);
        self
    }

    /// Appends `template` with each `{}` replaced by the next argument.
    pub fn push(&mut self, template: &'static str, args: &[Arg]) -> &mut Script {
        let mut pieces = template.split("{}");
        if let Some(first) = pieces.next() {
            self.0.push_str(first);
        }
        let mut args = args.iter();
        for piece in pieces {
            match args.next() {
                Some(arg) => self.arg(*arg),
                None => debug_assert!(false, "too few arguments for {template:?}"),
            }
            self.0.push_str(piece);
        }
        debug_assert!(args.next().is_none(), "too many arguments for {template:?}");
        self
    }

    /// [`Script::push`], then a newline.
    pub fn line(&mut self, template: &'static str, args: &[Arg]) -> &mut Script {
        self.push(template, args);
        self.0.push('\n');
        self
    }

    fn arg(&mut self, arg: Arg) {
        match arg {
            Arg::Word(w) => self.0.push_str(&quote(w)),
            Arg::Words(ws) => {
                let quoted: Vec<String> = ws.iter().map(|w| quote(w)).collect();
                self.0.push_str(&quoted.join(" "));
            }
            Arg::Const(c) => self.0.push_str(c),
            Arg::Base64(b) => self.0.extend(
                b.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')),
            ),
            Arg::Comment(c) => self
                .0
                .extend(c.chars().map(|c| if c.is_control() { '?' } else { c })),
            Arg::Num(n) => {
                let _ = write!(self.0, "{n}");
            }
            Arg::Mode(m) => {
                let _ = write!(self.0, "{m}");
            }
            Arg::Frag(f) => self.0.push_str(&f.0),
        }
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A word of a fragment: `Arg::Word` for short.
pub fn w(text: &str) -> Arg<'_> {
    Arg::Word(text)
}

/// A number: `Arg::Num` for short.
pub fn n(number: usize) -> Arg<'static> {
    Arg::Num(number as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn values_enter_only_as_words() {
        let mut s = Script::new();
        s.line(
            "mkdir -p {} && chmod {} {} # {}",
            &[
                w("/tmp/a b'$(touch x)"),
                Arg::Mode(Mode(0o640)),
                w("-rf"),
                n(3),
            ],
        );
        assert_eq!(
            s.as_str(),
            "mkdir -p '/tmp/a b'\\''$(touch x)' && chmod 0640 '-rf' # 3\n"
        );
        let mut list = Script::new();
        list.push("for x in {}; do :; done", &[Arg::Words(&["a", "b c"])]);
        assert_eq!(list.as_str(), "for x in 'a' 'b c'; do :; done");
    }
}
