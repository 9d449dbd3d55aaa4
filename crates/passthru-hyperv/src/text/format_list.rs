//! PowerShell `Format-List` text (`Get-VMHostPartitionableGpu`, `Get-PnpDevice | FL`, ...).
//!
//! passthru itself asks PowerShell for JSON; this parser exists for what people paste: bug
//! reports, the seeds' procedures, Microsoft's documentation samples. Real `Format-List` output
//! has quirks that the parser handles (all seen in recorded output, reference §6):
//!
//! - values longer than the console are wrapped **mid-token** onto continuation lines indented
//!   to the value column (`...{064092b3-625e-43bf-` / `9eb5-dc845897dd59}\GPUPARAV`), so
//!   continuation lines are joined without a separator;
//! - the whole block may be indented (documentation samples), keys are padded to a common
//!   column, and the padding may have collapsed to one space (text copied from web pages);
//! - records are usually separated by blank lines, but not always (the seed listing runs two
//!   records together), and stray blank lines appear inside records; a record therefore ends
//!   where a key repeats, or at a line that is not part of a listing (a prompt between two
//!   commands' outputs);
//! - numbers may carry thousands separators (`1,000,000,000`), collections print as
//!   `{16, 8, 4, 2...}` and may be truncated by `$FormatEnumerationLimit`.
//!
//! Lines that are not `Key : value` (prompts, comments, prose around a paste) are skipped.

/// One object of `Format-List` output: its properties in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRecord {
    /// `(key, value)` pairs in the order printed; values are trimmed and continuation lines
    /// joined.
    pub fields: Vec<(String, String)>,
}

impl ListRecord {
    /// The value of `key` (case-insensitive, like PowerShell property names).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }

    /// The value of `key` when it is present and not empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|value| !value.is_empty())
    }

    /// The value of `key` as an unsigned number (thousands separators allowed).
    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(parse_number)
    }

    /// The value of `key` as `True`/`False`.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_bool)
    }

    /// The value of `key` as a collection (`{32}`, `{16, 8, 4, 2...}`).
    pub fn list(&self, key: &str) -> Option<ListValue> {
        self.get(key).map(parse_list)
    }

    fn has(&self, key: &str) -> bool {
        self.fields
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(key))
    }
}

/// A collection value as `Format-List` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListValue {
    /// The items that were printed.
    pub items: Vec<String>,
    /// Whether PowerShell cut the list short (`...` at the end, `$FormatEnumerationLimit`).
    pub truncated: bool,
}

/// Parses `Format-List` output into records. Never fails: unknown lines are skipped.
pub fn parse(text: &str) -> Vec<ListRecord> {
    let mut records = Vec::new();
    let mut current = ListRecord::default();
    // Column where the value of the last key started, for recognising continuation lines.
    let mut value_column: Option<usize> = None;
    for raw_line in text.lines() {
        let line = raw_line.trim_end();
        if line.trim().is_empty() {
            // A blank line may end a record or sit inside one (documentation samples); the
            // next key decides. Continuations never cross a blank line.
            value_column = None;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let (Some(column), true) = (value_column, indent > 0)
            && indent >= column
        {
            if let Some((_, value)) = current.fields.last_mut() {
                value.push_str(line.trim());
            }
            continue;
        }
        match split_key_value(line) {
            Some((key, value, column)) => {
                if current.has(key) {
                    records.push(std::mem::take(&mut current));
                }
                current.fields.push((key.to_owned(), value.to_owned()));
                value_column = Some(column);
            }
            None => {
                // A prompt or prose line between outputs ends the object before it.
                value_column = None;
                if !current.fields.is_empty() {
                    records.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.fields.is_empty() {
        records.push(current);
    }
    records
}

/// Splits `  Key   : value` into key, value and the byte column where the value starts.
fn split_key_value(line: &str) -> Option<(&str, &str, usize)> {
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    let key_len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .map_or(rest.len(), |(index, _)| index);
    if key_len == 0 || !(rest.as_bytes()[0].is_ascii_alphabetic() || rest.as_bytes()[0] == b'_') {
        return None;
    }
    let key = &rest[..key_len];
    let after_key = &rest[key_len..];
    let padding = after_key.len() - after_key.trim_start_matches(' ').len();
    // Format-List always pads at least one space before the colon; requiring it keeps
    // `C:\path` and `https://...` lines out.
    if padding == 0 || !after_key[padding..].starts_with(':') {
        return None;
    }
    let after_colon = &after_key[padding + 1..];
    if !(after_colon.is_empty() || after_colon.starts_with(' ')) {
        return None;
    }
    let value = after_colon.trim();
    let value_start = if value.is_empty() {
        indent + key_len + padding + 2
    } else {
        line.len() - after_colon.trim_start().len()
    };
    Some((key, value, value_start))
}

/// Parses an unsigned integer, allowing grouping separators (`1,000,000,000`,
/// `1 000 000` with no-break spaces, `1'000`, and `1.000.000` when every group has 3 digits).
pub fn parse_number(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let separators = [',', '\u{a0}', '\u{202f}', '\'', '.'];
    let groups: Vec<&str> = text.split(|c| separators.contains(&c)).collect();
    if groups.len() > 1 {
        let grouped = groups[0].len() <= 3
            && !groups[0].is_empty()
            && groups[1..].iter().all(|group| group.len() == 3);
        if !grouped {
            return None;
        }
    }
    let digits: String = groups.concat();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses `True`/`False` (any case).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses a collection value: `{32}`, `{16, 8, 4, 2...}`, `{}`; a bare value is a list of one.
pub fn parse_list(text: &str) -> ListValue {
    let text = text.trim();
    let inner = text
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(text);
    let (inner, truncated) = match inner.strip_suffix("...") {
        Some(rest) => (rest, true),
        None => (inner, false),
    };
    let items = inner
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    ListValue { items, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_wrapped_values_without_separator() {
        let text = "Name                          : \\\\?\\PCI#VEN_10DE&DEV_2504#{064092b3-625e-43bf-\n                                9eb5-dc845897dd59}\\GPUPARAV\nPartitionCount                : 32\n";
        let records = parse(text);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].get("name"),
            Some("\\\\?\\PCI#VEN_10DE&DEV_2504#{064092b3-625e-43bf-9eb5-dc845897dd59}\\GPUPARAV")
        );
        assert_eq!(records[0].number("PartitionCount"), Some(32));
    }

    #[test]
    fn repeated_key_starts_a_new_record_even_without_blank_line() {
        let records = parse("Name : a\nCount : 1\nName : b\nCount : 2\n");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].get("Name"), Some("b"));
    }

    #[test]
    fn blank_line_inside_a_record_does_not_split_it() {
        let records = parse("A : 1\n \nB : 2\n\nA : 3\n");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].get("B"), Some("2"));
    }

    #[test]
    fn skips_prose_prompts_and_paths() {
        let records = parse("PS> Get-Thing\nC:\\Windows\\x\nhttps://example.invalid\nKey : v\n");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].fields, vec![("Key".into(), "v".into())]);
    }

    #[test]
    fn a_prompt_between_outputs_ends_the_record() {
        let records = parse("Name : cpu\n\nPS C:\\> Get-Other\n\n__CLASS : Other\nName : gpu\n");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].get("__CLASS"), Some("Other"));
    }

    #[test]
    fn empty_values_are_kept() {
        let records = parse(
            "   MinPartitionVRAM        :\n   Name                    : GPU Partition Settings\n",
        );
        assert_eq!(records[0].get("MinPartitionVRAM"), Some(""));
        assert_eq!(records[0].non_empty("MinPartitionVRAM"), None);
    }

    #[test]
    fn numbers_with_separators() {
        assert_eq!(parse_number("1,000,000,000"), Some(1_000_000_000));
        assert_eq!(parse_number("18,446,744,073,709,551,615"), Some(u64::MAX));
        assert_eq!(parse_number("1\u{a0}000"), Some(1000));
        assert_eq!(parse_number("1.000.000"), Some(1_000_000));
        assert_eq!(parse_number("1,00"), None);
        assert_eq!(parse_number("18446744073709551616"), None);
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number(""), None);
    }

    #[test]
    fn lists_and_truncation() {
        assert_eq!(
            parse_list("{16, 8, 4, 2...}"),
            ListValue {
                items: vec!["16".into(), "8".into(), "4".into(), "2".into()],
                truncated: true
            }
        );
        assert_eq!(parse_list("{32}").items, vec!["32".to_owned()]);
        assert!(parse_list("{}").items.is_empty());
    }
}
