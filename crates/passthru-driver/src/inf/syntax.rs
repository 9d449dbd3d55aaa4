//! INF syntax: sections, entries, line continuations, comments and quoted strings.
//!
//! The rules follow Microsoft's "General Syntax Rules for INF Files": a `;` outside double
//! quotes starts a comment; a `\` as the last character of a line (after the comment is
//! removed) joins it with the next line; `key = value, value, ...` splits at the first `=`
//! outside quotes; values split at commas outside quotes; `""` inside quotes is one `"`;
//! whitespace around values is dropped. Section names are case-insensitive, and a section that
//! appears twice is one section (Windows merges them).

use std::collections::HashMap;

use super::InfWarning;

/// A section before string substitution.
#[derive(Debug, Clone)]
pub(crate) struct RawSection {
    pub(crate) name: String,
    /// 1-based line of the first header.
    pub(crate) line: usize,
    pub(crate) entries: Vec<RawEntry>,
}

/// One logical line inside a section.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    /// 1-based line where the logical line starts.
    pub(crate) line: usize,
    pub(crate) key: Option<String>,
    pub(crate) values: Vec<String>,
}

/// Splits `text` into sections. Problems become warnings; nothing here fails.
pub(crate) fn lex(text: &str, warnings: &mut Vec<InfWarning>) -> Vec<RawSection> {
    let mut sections: Vec<RawSection> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    let mut lines = text.lines().enumerate().peekable();
    let mut outside_noted = false;
    while let Some((index, first)) = lines.next() {
        let line_no = index + 1;
        let (mut logical, mut open_quote) = strip_comment(first);
        // Continuations: a trailing backslash joins the next physical line.
        while let Some(stripped) = logical.trim_end().strip_suffix('\\') {
            let Some((_, next)) = lines.next() else {
                warnings.push(InfWarning::new(
                    line_no,
                    "the last line ends with a line-continuation backslash",
                ));
                logical = stripped.to_owned();
                break;
            };
            let (next_text, next_open) = strip_comment(next);
            logical = format!("{stripped}{next_text}");
            open_quote = next_open;
        }
        if open_quote {
            warnings.push(InfWarning::new(
                line_no,
                "a quoted string is not closed before the end of the line; it ends there",
            ));
        }
        let trimmed = logical.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let Some(end) = header.find(']') else {
                warnings.push(InfWarning::new(
                    line_no,
                    format!("section header `{trimmed}` has no closing `]`; its lines are ignored"),
                ));
                current = None;
                continue;
            };
            let name = header[..end].trim().to_owned();
            let at = *by_name.entry(name.to_ascii_lowercase()).or_insert_with(|| {
                sections.push(RawSection {
                    name,
                    line: line_no,
                    entries: Vec::new(),
                });
                sections.len() - 1
            });
            current = Some(at);
            continue;
        }
        let Some(section) = current else {
            if !outside_noted {
                warnings.push(InfWarning::new(
                    line_no,
                    "text before the first section header is ignored",
                ));
                outside_noted = true;
            }
            continue;
        };
        let (key, values) = split_entry(trimmed);
        sections[section].entries.push(RawEntry {
            line: line_no,
            key,
            values,
        });
    }
    sections
}

/// Removes a comment (a `;` outside quotes). Returns the text and whether a quote is still open.
fn strip_comment(line: &str) -> (String, bool) {
    let mut in_quotes = false;
    for (at, ch) in line.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => return (line[..at].to_owned(), false),
            _ => {}
        }
    }
    (line.to_owned(), in_quotes)
}

/// Splits `key = v1, v2` into its key (if there is an unquoted `=`) and unquoted values.
fn split_entry(line: &str) -> (Option<String>, Vec<String>) {
    let mut in_quotes = false;
    let mut equals = None;
    for (at, ch) in line.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            '=' if !in_quotes => {
                equals = Some(at);
                break;
            }
            _ => {}
        }
    }
    match equals {
        Some(at) => {
            let key = unquote(line[..at].trim());
            (Some(key), split_values(&line[at + 1..]))
        }
        None => (None, split_values(line)),
    }
}

/// Splits at unquoted commas and unquotes every token. `a,,b` gives an empty middle value, as
/// INF field positions matter (`file,,,0x4000`).
fn split_values(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let mut values = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (at, ch) in text.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                values.push(unquote(text[start..at].trim()));
                start = at + 1;
            }
            _ => {}
        }
    }
    values.push(unquote(text[start..].trim()));
    values
}

/// Removes the quotes of a token; `""` inside quotes stands for one `"`. Whitespace inside
/// quotes is kept, whitespace between quoted and unquoted parts is kept as written.
fn unquote(token: &str) -> String {
    if !token.contains('"') {
        return token.to_owned();
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars().peekable();
    let mut in_quotes = false;
    while let Some(ch) = chars.next() {
        if ch == '"' {
            if in_quotes && chars.peek() == Some(&'"') {
                out.push('"');
                chars.next();
            } else {
                in_quotes = !in_quotes;
            }
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_ok(text: &str) -> Vec<RawSection> {
        let mut warnings = Vec::new();
        let sections = lex(text, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        sections
    }

    #[test]
    fn keys_values_quotes_and_comments() {
        let sections = lex_ok(concat!(
            "[Strings]\n",
            "Name = \"a; not a comment\" ; a comment\n",
            "Quote = \"say \"\"hi\"\"\", second , ,\n",
            "HKR,\"Global\\NVTweak\",Value,%REG_DWORD%,1\n",
        ));
        let entries = &sections[0].entries;
        assert_eq!(entries[0].key.as_deref(), Some("Name"));
        assert_eq!(entries[0].values, ["a; not a comment"]);
        assert_eq!(entries[1].values, ["say \"hi\"", "second", "", ""]);
        assert_eq!(entries[2].key, None);
        assert_eq!(
            entries[2].values,
            ["HKR", "Global\\NVTweak", "Value", "%REG_DWORD%", "1"]
        );
    }

    #[test]
    fn continuation_lines_join() {
        let sections = lex_ok("[Install]\nCopyFiles = a, \\\n   b ; why\n  , c\n");
        assert_eq!(sections[0].entries.len(), 2);
        assert_eq!(sections[0].entries[0].values, ["a", "b"]);
        assert_eq!(sections[0].entries[0].line, 2);
    }

    #[test]
    fn repeated_sections_merge_case_insensitively() {
        let sections = lex_ok("[A]\nx=1\n[b]\ny=2\n[a]\nz=3\n");
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].entries.len(), 2);
    }

    #[test]
    fn malformed_lines_warn() {
        let mut warnings = Vec::new();
        let sections = lex(
            "stray\n[Broken\nx=1\n[Ok]\nq=\"open\nlast=\\",
            &mut warnings,
        );
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].entries.len(), 2);
        let text: Vec<_> = warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(warnings.len(), 4, "{text:?}");
    }
}
