//! Quoting of values for the languages templates write: sh words, SQL string literals, URL parts,
//! C-style double-quoted strings.

/// `'text'` for POSIX sh, whatever the text holds (a `'` becomes `'\''`; a newline stays inside
/// the quotes).
pub fn sh(text: &str) -> String {
    format!("'{}'", sh_body(text))
}

/// The inside of [`sh`]'s quotes.
pub fn sh_body(text: &str) -> String {
    text.replace('\'', "'\\''")
}

/// `'text'` as an SQL string literal that no value can leave, whichever way the server reads
/// backslashes: `'` is doubled, `\` doubled, newline and carriage return written `\n` and `\r`.
/// The value is exact where backslashes are escapes: MariaDB/MySQL by default, psql's `\set`,
/// and PostgreSQL's `E'...'` (write `E{{ v | sql }}`). Where they are not (PostgreSQL's plain
/// `'...'`, MariaDB's NO_BACKSLASH_ESCAPES) it is still one literal, with the backslashes doubled.
pub fn sql(text: &str) -> String {
    format!("'{}'", sql_body(text))
}

/// The inside of [`sql`]'s quotes.
pub fn sql_body(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// `"name"` as an SQL identifier (PostgreSQL, and MariaDB with ANSI_QUOTES): `"` doubled.
pub fn sql_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Percent-encoding of every byte outside RFC 3986's unreserved set (for a URL's user,
/// password or path part). `upper` picks the hex digits' case.
pub fn percent(text: &str, upper: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// `"text"` with C-style escapes, as config files that split their lines into quoted arguments
/// read it (Redis's `requirepass "..."`): `"` and `\` escaped, newline, carriage return and tab
/// as `\n`, `\r`, `\t`, any other control character as `\xHH`. Not for sh: `$` stays as it is.
pub fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && u32::from(c) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_keeps_everything_inside_one_word() {
        assert_eq!(sh("a'b"), "'a'\\''b'");
        assert_eq!(sh("$(x)\n\"y"), "'$(x)\n\"y'");
        assert_eq!(sh(""), "''");
    }

    #[test]
    fn sql_doubles_quotes_and_escapes_backslashes() {
        assert_eq!(sql("o'k"), "'o''k'");
        assert_eq!(sql("a\\'; DROP"), "'a\\\\''; DROP'");
        assert_eq!(sql("l1\nl2\r"), "'l1\\nl2\\r'");
        assert_eq!(sql_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn double_quoted_escapes_quotes_backslashes_and_controls() {
        assert_eq!(double_quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            double_quoted("l1\nl2\t\u{1}$(x)'"),
            "\"l1\\nl2\\t\\x01$(x)'\""
        );
    }

    #[test]
    fn percent_leaves_only_unreserved_bytes() {
        assert_eq!(percent("a b/é~", true), "a%20b%2F%C3%A9~");
        assert_eq!(percent(":@", false), "%3a%40");
    }
}
