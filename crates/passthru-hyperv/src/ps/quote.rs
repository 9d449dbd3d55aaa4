//! Quoting values into PowerShell source.

/// Quotes `text` as a PowerShell single-quoted string. Inside single quotes only the quote
/// characters are special; PowerShell also treats the typographic quotes U+2018..U+201B as
/// single quotes, so each of them is doubled too.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A PowerShell boolean literal.
pub fn boolean(value: bool) -> &'static str {
    if value { "$true" } else { "$false" }
}

/// A byte count as PowerShell source, with the largest exact multiplier suffix
/// (`34359738368` → `32GB`, `134217728` → `128MB`), which is how people write MMIO sizes.
pub fn bytes(value: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TB"),
        (1 << 30, "GB"),
        (1 << 20, "MB"),
        (1 << 10, "KB"),
    ];
    for (size, suffix) in UNITS {
        if value >= size && value.is_multiple_of(size) {
            return format!("{}{suffix}", value / size);
        }
    }
    value.to_string()
}

/// `text` as one argument of a command line people copy into PowerShell, cmd.exe or a Unix
/// shell: as it is when that is safe, else in double quotes (which all three understand).
pub fn cli_argument(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '\\' | '/'));
    if plain {
        text.to_owned()
    } else {
        format!("\"{}\"", text.replace('"', "\\\""))
    }
}

/// Whether `name` can be passed to a `-Name`/`-VMName` parameter literally. Those parameters
/// accept wildcards, so a VM whose name contains `*`, `?`, `[` or `]` could match other VMs;
/// passthru refuses such names rather than guess how each cmdlet escapes them.
pub fn safe_vm_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['*', '?', '[', ']']) && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_every_single_quote_form() {
        assert_eq!(string("Win11"), "'Win11'");
        assert_eq!(string("it's"), "'it''s'");
        assert_eq!(string("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(string("$env:x `n"), "'$env:x `n'");
        assert_eq!(string(""), "''");
    }

    #[test]
    fn byte_counts_use_exact_suffixes() {
        assert_eq!(bytes(32 << 30), "32GB");
        assert_eq!(bytes(128 << 20), "128MB");
        assert_eq!(bytes(33280 << 20), "33280MB");
        assert_eq!(bytes(3 << 30), "3GB");
        assert_eq!(bytes(1000), "1000");
        assert_eq!(bytes(0), "0");
    }

    #[test]
    fn command_line_arguments_are_quoted_when_needed() {
        assert_eq!(cli_argument("exampleName"), "exampleName");
        assert_eq!(cli_argument("Win11 GPU"), "\"Win11 GPU\"");
        assert_eq!(cli_argument("a&b"), "\"a&b\"");
        assert_eq!(cli_argument("虚拟机"), "虚拟机");
    }

    #[test]
    fn wildcard_names_are_refused() {
        assert!(safe_vm_name("Win 11 (GPU)"));
        assert!(safe_vm_name("虚拟机"));
        assert!(!safe_vm_name("a[1]"));
        assert!(!safe_vm_name("*"));
        assert!(!safe_vm_name(""));
    }
}
