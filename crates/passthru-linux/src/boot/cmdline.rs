//! Kernel command lines: split into parameters, find a parameter, and add or remove parameters
//! so that removing what was added gives back the original text byte for byte.
//!
//! The kernel splits its command line at spaces outside double quotes (`key="a b"` is one
//! parameter) and treats `-` and `_` in a parameter *name* as the same character, so
//! `vfio-pci.ids=` and `vfio_pci.ids=` set the same thing (`parameqn` in `kernel/params.c`).
//! The same text appears in `GRUB_CMDLINE_LINUX_DEFAULT`, in a BLS entry's `options` line and in
//! `/etc/kernel/cmdline`, so one editor serves all of them.

/// One parameter of a command line and where it sits in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter exactly as written (`vfio-pci.ids=10de:1b80`).
    pub text: &'a str,
    /// Byte offset of its first character.
    pub start: usize,
}

impl<'a> Param<'a> {
    /// Byte offset just past its last character.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// The name, normalized so that `-` and `_` compare equal (`vfio_pci.ids`).
    pub fn name(&self) -> String {
        normalized_name(self.text)
    }

    /// The value after the first `=`, without surrounding double quotes; `None` for a flag.
    pub fn value(&self) -> Option<&'a str> {
        let (_, value) = self.text.split_once('=')?;
        Some(
            value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value),
        )
    }
}

/// The normalized name of a parameter written as `text` (`name` or `name=value`).
pub fn normalized_name(text: &str) -> String {
    let name = text.split_once('=').map_or(text, |(name, _)| name);
    name.replace('-', "_")
}

/// Splits a command line into parameters the way the kernel does: at ASCII whitespace outside
/// double quotes. An unterminated quote runs to the end of the text, as in the kernel.
pub fn params(line: &str) -> Vec<Param<'_>> {
    let bytes = line.as_bytes();
    let mut params = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index].is_ascii_whitespace() {
            index += 1;
            continue;
        }
        let start = index;
        let mut quoted = false;
        while index < bytes.len() {
            let byte = bytes[index];
            if byte == b'"' {
                quoted = !quoted;
            } else if byte.is_ascii_whitespace() && !quoted {
                break;
            }
            index += 1;
        }
        params.push(Param {
            text: &line[start..index],
            start,
        });
    }
    params
}

/// Whether every double quote is closed. A line with an open quote would swallow anything
/// appended to it, so passthru refuses to edit such a line.
pub fn quotes_balanced(line: &str) -> bool {
    line.bytes().filter(|&byte| byte == b'"').count() % 2 == 0
}

/// Every value given to parameter `name` (normalized comparison), in order.
pub fn values_of<'a>(line: &'a str, name: &str) -> Vec<Option<&'a str>> {
    let wanted = normalized_name(name);
    params(line)
        .into_iter()
        .filter(|param| param.name() == wanted)
        .map(|param| param.value())
        .collect()
}

/// Whether `line` already carries `param` with the same value (names compared normalized).
pub fn contains(line: &str, param: &str) -> bool {
    let wanted_name = normalized_name(param);
    let wanted_value = Param {
        text: param,
        start: 0,
    }
    .value();
    params(line)
        .iter()
        .any(|existing| existing.name() == wanted_name && existing.value() == wanted_value)
}

/// Appends each of `wanted` that `line` does not carry yet. Returns the new text and the
/// parameters actually added (what a later [`remove`] must take away again).
///
/// Each parameter is appended as one space plus the parameter, except into an empty line,
/// so that [`remove`] can take away exactly the bytes that were added.
pub fn add(line: &str, wanted: &[String]) -> (String, Vec<String>) {
    let mut text = line.to_owned();
    let mut added = Vec::new();
    for param in wanted {
        if param.is_empty() || contains(&text, param) {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(param);
        added.push(param.clone());
    }
    (text, added)
}

/// Removes each of `unwanted` (exact text), last occurrence first, together with the one
/// whitespace character in front of it (or, for the first parameter, the one after it).
/// Returns the new text and the parameters that were found and removed.
pub fn remove(line: &str, unwanted: &[String]) -> (String, Vec<String>) {
    let mut text = line.to_owned();
    let mut removed = Vec::new();
    for param in unwanted.iter().rev() {
        let found = params(&text)
            .into_iter()
            .rev()
            .find(|existing| existing.text == param)
            .map(|existing| (existing.start, existing.end()));
        let Some((start, end)) = found else {
            continue;
        };
        let bytes = text.as_bytes();
        let (cut_start, cut_end) = if start > 0 && bytes[start - 1].is_ascii_whitespace() {
            (start - 1, end)
        } else if end < bytes.len() && bytes[end].is_ascii_whitespace() {
            (start, end + 1)
        } else {
            (start, end)
        };
        text.replace_range(cut_start..cut_end, "");
        removed.push(param.clone());
    }
    removed.reverse();
    (text, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn splits_like_the_kernel_including_quoted_values() {
        let line = r#"BOOT_IMAGE=/vmlinuz root=UUID=1 ro  quiet dyndbg="file a.c +p"  x"#;
        let texts: Vec<&str> = params(line).iter().map(|p| p.text).collect();
        assert_eq!(
            texts,
            [
                "BOOT_IMAGE=/vmlinuz",
                "root=UUID=1",
                "ro",
                "quiet",
                r#"dyndbg="file a.c +p""#,
                "x"
            ]
        );
        assert_eq!(params(line)[4].value(), Some("file a.c +p"));
    }

    #[test]
    fn names_compare_with_dashes_and_underscores_equal() {
        let line = "quiet vfio_pci.ids=10de:1b80 iommu=pt";
        assert!(contains(line, "vfio-pci.ids=10de:1b80"));
        assert!(!contains(line, "vfio-pci.ids=10de:1b81"));
        assert_eq!(values_of(line, "vfio-pci.ids"), [Some("10de:1b80")]);
        assert_eq!(values_of(line, "quiet"), [None]);
    }

    #[test]
    fn adding_twice_adds_once() {
        let wanted = strings(&["intel_iommu=on", "iommu=pt"]);
        let (once, added) = add("quiet splash", &wanted);
        assert_eq!(once, "quiet splash intel_iommu=on iommu=pt");
        assert_eq!(added, wanted);
        let (twice, added_again) = add(&once, &wanted);
        assert_eq!(twice, once);
        assert!(added_again.is_empty());
    }

    #[test]
    fn parameters_the_user_already_had_are_neither_added_nor_removed() {
        let wanted = strings(&["iommu=pt", "intel_iommu=on"]);
        let (line, added) = add("iommu=pt quiet", &wanted);
        assert_eq!(added, strings(&["intel_iommu=on"]));
        let (back, _) = remove(&line, &added);
        assert_eq!(back, "iommu=pt quiet");
    }

    #[test]
    fn removal_of_an_added_parameter_keeps_later_user_edits() {
        let (line, added) = add("quiet", &strings(&["iommu=pt"]));
        let edited = format!("{line} mitigations=off");
        let (back, removed) = remove(&edited, &added);
        assert_eq!(back, "quiet mitigations=off");
        assert_eq!(removed, added);
    }

    #[test]
    fn edge_cases_round_trip() {
        for original in ["", " ", "quiet ", "  quiet", "a\tb", "x=\"a b\""] {
            let wanted = strings(&["iommu=pt", "vfio-pci.ids=1002:73ff"]);
            let (line, added) = add(original, &wanted);
            let (back, _) = remove(&line, &added);
            assert_eq!(back, original, "{original:?}");
        }
    }

    #[test]
    fn an_open_quote_is_detected() {
        assert!(quotes_balanced(r#"quiet x="a b""#));
        assert!(!quotes_balanced(r#"quiet x="a b"#));
    }

    fn arb_param() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_.]{1,8}",
            "[a-z_.-]{1,8}=[a-zA-Z0-9:,/.=-]{0,10}",
            "[a-z]{1,6}=\"[a-z ]{0,8}\"",
        ]
    }

    fn arb_line() -> impl Strategy<Value = String> {
        (
            "[ \t]{0,2}",
            prop::collection::vec((arb_param(), "[ \t]{1,3}"), 0..8),
        )
            .prop_map(|(lead, items)| {
                let mut line = lead;
                for (param, gap) in items {
                    line.push_str(&param);
                    line.push_str(&gap);
                }
                line
            })
    }

    proptest! {
        /// Adding passthru's parameters and then removing exactly the ones that were added
        /// gives back the original command line, byte for byte, whatever the user wrote.
        #[test]
        fn add_then_remove_is_identity(
            original in arb_line(),
            wanted in prop::collection::vec(
                prop_oneof![
                    Just("intel_iommu=on".to_owned()),
                    Just("iommu=pt".to_owned()),
                    Just("passthru.vfio=1".to_owned()),
                    "vfio-pci\\.ids=[0-9a-f]{4}:[0-9a-f]{4}",
                    arb_param(),
                ],
                0..5,
            ),
        ) {
            let (line, added) = add(&original, &wanted);
            for param in &wanted {
                prop_assert!(contains(&line, param), "{param} missing from {line:?}");
            }
            let (back, removed) = remove(&line, &added);
            prop_assert_eq!(&removed, &added);
            prop_assert_eq!(back, original);
        }

        /// Splitting never panics and the pieces are exactly the non-space runs of the text.
        #[test]
        fn params_cover_the_text(line in "\\PC{0,40}") {
            for param in params(&line) {
                prop_assert_eq!(&line[param.start..param.end()], param.text);
                prop_assert!(!param.text.is_empty());
            }
        }
    }
}
