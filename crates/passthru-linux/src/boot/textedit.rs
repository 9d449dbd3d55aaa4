//! Small, exact edits of configuration files that passthru shares with their owners:
//! a marked block that passthru owns inside someone else's file, a shell variable assignment
//! (`GRUB_CMDLINE_LINUX_DEFAULT="…"`), and a comma-separated `key: a,b` line (booster).
//!
//! Every edit is reversible to the byte: removing what was added gives back the original.

use std::ops::Range;

/// First line of a block passthru owns inside a shared file.
pub const BLOCK_BEGIN: &str =
    "# BEGIN passthru (managed; `passthru release DEVICE --persistent` removes this block)";
/// Last line of a block passthru owns inside a shared file.
pub const BLOCK_END: &str = "# END passthru";

/// Where passthru's block sits in `text`: the byte range to cut to remove it exactly.
pub fn find_block(text: &str) -> Option<Range<usize>> {
    let begin = line_start_of(text, BLOCK_BEGIN)?;
    let end_marker = begin + text[begin..].find(&format!("\n{BLOCK_END}"))? + 1;
    let mut end = end_marker + BLOCK_END.len();
    let mut start = begin;
    if text[end..].starts_with('\n') {
        end += 1;
    } else if end == text.len() && start > 0 {
        // The block was appended to a file without a final newline, together with the
        // newline that separated it: take that newline away again.
        start -= 1;
    }
    Some(start..end)
}

/// The lines inside passthru's block (without the markers), if there is one.
pub fn block_body(text: &str) -> Option<Vec<&str>> {
    let range = find_block(text)?;
    let block = &text[range];
    Some(
        block
            .lines()
            .skip_while(|line| *line != BLOCK_BEGIN)
            .skip(1)
            .take_while(|line| *line != BLOCK_END)
            .collect(),
    )
}

/// Puts `body` (lines without newlines) into passthru's block: replaces an existing block in
/// place, or appends a new one at the end.
pub fn set_block(text: &str, body: &[String]) -> String {
    let mut lines = vec![BLOCK_BEGIN.to_owned()];
    lines.extend(body.iter().cloned());
    lines.push(BLOCK_END.to_owned());
    let joined = lines.join("\n");
    if let Some(range) = find_block(text) {
        let old = &text[range.clone()];
        let replacement = if old.starts_with('\n') {
            format!("\n{joined}")
        } else if old.ends_with('\n') {
            format!("{joined}\n")
        } else {
            joined
        };
        let mut out = text.to_owned();
        out.replace_range(range, &replacement);
        return out;
    }
    if text.is_empty() || text.ends_with('\n') {
        format!("{text}{joined}\n")
    } else {
        format!("{text}\n{joined}")
    }
}

/// Removes passthru's block, if any, exactly as [`set_block`] added it.
pub fn remove_block(text: &str) -> String {
    match find_block(text) {
        Some(range) => {
            let mut out = text.to_owned();
            out.replace_range(range, "");
            out
        }
        None => text.to_owned(),
    }
}

fn line_start_of(text: &str, line: &str) -> Option<usize> {
    let mut offset = 0;
    for piece in text.split_inclusive('\n') {
        if piece.trim_end_matches('\n') == line {
            return Some(offset);
        }
        offset += piece.len();
    }
    None
}

/// How a shell assignment writes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// `VAR="value"`.
    Double,
    /// `VAR='value'`.
    Single,
    /// `VAR=value`.
    Bare,
}

/// The last assignment of a shell variable in a file (the one that wins when it is sourced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Byte range of the value inside the quotes (or of the bare word).
    pub value: Range<usize>,
    /// How the value is quoted.
    pub quoting: Quoting,
    /// Whether passthru can edit the value in place: a plain literal with no expansion,
    /// escape, command substitution or line continuation.
    pub literal: bool,
}

/// Finds the last top-level assignment `NAME=…` (also `export NAME=…`) in shell text.
pub fn last_assignment(text: &str, name: &str) -> Option<Assignment> {
    let mut found = None;
    let mut offset = 0;
    for piece in text.split_inclusive('\n') {
        let line = piece.trim_end_matches('\n');
        let indent = line.len() - line.trim_start().len();
        let mut rest = &line[indent..];
        let mut start = offset + indent;
        if let Some(after) = rest.strip_prefix("export ") {
            let skipped = rest.len() - after.trim_start().len();
            start += skipped;
            rest = &rest[skipped..];
        }
        if let Some(value_text) = rest.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            let value_start = start + name.len() + 1;
            found = Some(parse_value(value_text, value_start, line.ends_with('\\')));
        }
        offset += piece.len();
    }
    found
}

fn parse_value(value_text: &str, value_start: usize, continued: bool) -> Assignment {
    let (quoting, inner) = match value_text.chars().next() {
        Some('"') => (Quoting::Double, &value_text[1..]),
        Some('\'') => (Quoting::Single, &value_text[1..]),
        _ => (Quoting::Bare, value_text),
    };
    let close = match quoting {
        Quoting::Double => inner.find('"'),
        Quoting::Single => inner.find('\''),
        Quoting::Bare => Some(
            inner
                .find(|c: char| c.is_ascii_whitespace() || c == ';')
                .unwrap_or(inner.len()),
        ),
    };
    let body_start = value_start + usize::from(quoting != Quoting::Bare);
    let Some(close) = close else {
        return Assignment {
            value: body_start..body_start + inner.len(),
            quoting,
            literal: false,
        };
    };
    let body = &inner[..close];
    let after = inner[close + usize::from(quoting != Quoting::Bare)..].trim_start();
    let tail_ok = after.is_empty() || after.starts_with('#');
    let literal = !continued
        && tail_ok
        && match quoting {
            Quoting::Double => !body.contains(['$', '`', '\\']),
            Quoting::Single => true,
            // A bare word cannot take a space without quoting it.
            Quoting::Bare => false,
        };
    Assignment {
        value: body_start..body_start + body.len(),
        quoting,
        literal,
    }
}

/// The value of a top-level `key: value` line in a flat YAML file such as `/etc/booster.yaml`,
/// as the byte range of the value (without a trailing comment).
pub fn yaml_scalar(text: &str, key: &str) -> Option<Range<usize>> {
    let mut offset = 0;
    let mut found = None;
    for piece in text.split_inclusive('\n') {
        let line = piece.trim_end_matches('\n');
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let lead = rest.len() - rest.trim_start().len();
            let value = &rest[lead..];
            let value = value.split(" #").next().unwrap_or(value).trim_end();
            let start = offset + key.len() + 1 + lead;
            found = Some(start..start + value.len());
        }
        offset += piece.len();
    }
    found
}

/// Appends each of `items` missing from the comma-separated `list`; returns the new list and
/// the items added.
pub fn comma_list_add(list: &str, items: &[String]) -> (String, Vec<String>) {
    let mut out = list.to_owned();
    let mut added = Vec::new();
    for item in items {
        if out.split(',').any(|existing| existing.trim() == item) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(item);
        added.push(item.clone());
    }
    (out, added)
}

/// Removes each of `items` (last occurrence) from the comma-separated `list`, with the comma
/// that [`comma_list_add`] put in front of it.
pub fn comma_list_remove(list: &str, items: &[String]) -> String {
    let mut parts: Vec<&str> = if list.is_empty() {
        Vec::new()
    } else {
        list.split(',').collect()
    };
    for item in items.iter().rev() {
        if let Some(position) = parts.iter().rposition(|part| part == item) {
            parts.remove(position);
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn block_round_trips_with_and_without_final_newline() {
        for original in ["", "vfio\n", "# comment\nloop", "a\n\n"] {
            let body = vec!["vfio_pci".to_owned(), "vfio".to_owned()];
            let with_block = set_block(original, &body);
            assert_eq!(
                block_body(&with_block).unwrap(),
                ["vfio_pci", "vfio"],
                "{original:?}"
            );
            let changed = set_block(&with_block, &["vfio_pci".to_owned()]);
            assert_eq!(block_body(&changed).unwrap(), ["vfio_pci"]);
            assert_eq!(remove_block(&changed), original, "{original:?}");
            assert_eq!(remove_block(&with_block), original, "{original:?}");
        }
    }

    #[test]
    fn finds_the_winning_assignment_and_whether_it_is_a_plain_literal() {
        let text = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n#GRUB_CMDLINE_LINUX_DEFAULT=\"x\"\n  GRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\" # note\n";
        let found = last_assignment(text, "GRUB_CMDLINE_LINUX_DEFAULT").unwrap();
        assert_eq!(&text[found.value.clone()], "quiet splash");
        assert!(found.literal);
        let expanded = "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT x\"\n";
        assert!(
            !last_assignment(expanded, "GRUB_CMDLINE_LINUX_DEFAULT")
                .unwrap()
                .literal
        );
        let single = "export GRUB_CMDLINE_LINUX_DEFAULT='a b'\n";
        let found = last_assignment(single, "GRUB_CMDLINE_LINUX_DEFAULT").unwrap();
        assert_eq!(&single[found.value], "a b");
        assert_eq!(found.quoting, Quoting::Single);
        let bare = "GRUB_CMDLINE_LINUX_DEFAULT=quiet\n";
        assert!(
            !last_assignment(bare, "GRUB_CMDLINE_LINUX_DEFAULT")
                .unwrap()
                .literal
        );
        assert!(
            last_assignment("GRUB_CMDLINE_LINUX=\"\"\n", "GRUB_CMDLINE_LINUX_DEFAULT").is_none()
        );
        let open = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\n";
        assert!(
            !last_assignment(open, "GRUB_CMDLINE_LINUX_DEFAULT")
                .unwrap()
                .literal
        );
    }

    #[test]
    fn yaml_scalar_and_comma_lists() {
        let text = "universal: false\nmodules_force_load: nvme,ext4 # early\n";
        let range = yaml_scalar(text, "modules_force_load").unwrap();
        assert_eq!(&text[range], "nvme,ext4");
        let items = vec!["vfio_pci".to_owned(), "nvme".to_owned()];
        let (list, added) = comma_list_add("nvme,ext4", &items);
        assert_eq!(list, "nvme,ext4,vfio_pci");
        assert_eq!(added, ["vfio_pci"]);
        assert_eq!(comma_list_remove(&list, &added), "nvme,ext4");
    }

    proptest! {
        #[test]
        fn comma_list_add_then_remove_is_identity(
            original in prop::collection::vec("[a-z_]{1,6}", 0..5),
            items in prop::collection::vec("[a-z_]{1,6}", 0..4),
        ) {
            let list = original.join(",");
            let (with, added) = comma_list_add(&list, &items);
            prop_assert_eq!(comma_list_remove(&with, &added), list);
        }

        #[test]
        fn block_add_then_remove_is_identity(original in "[a-z#= \n]{0,40}") {
            prop_assume!(!original.contains(BLOCK_BEGIN));
            let with = set_block(&original, &["x".to_owned()]);
            prop_assert_eq!(remove_block(&with), original);
        }

        #[test]
        fn assignment_parsing_never_panics(text in "\\PC{0,60}") {
            let _ = last_assignment(&text, "GRUB_CMDLINE_LINUX_DEFAULT");
            let _ = yaml_scalar(&text, "modules_force_load");
        }
    }
}
