//! `%strkey%` substitution from the `[Strings]` sections.

use std::collections::HashMap;

use super::InfWarning;
use super::syntax::RawSection;

/// The string table: `[Strings]` first, then localized `[Strings.LLLL]` sections as fallbacks
/// (US English `0409` before the others, the rest in file order).
#[derive(Debug, Default)]
pub(crate) struct StringTable {
    /// Lower-case key → value, first definition wins.
    values: HashMap<String, String>,
}

impl StringTable {
    pub(crate) fn from_sections(sections: &[RawSection]) -> Self {
        let mut ordered: Vec<&RawSection> = Vec::new();
        ordered.extend(
            sections
                .iter()
                .filter(|s| s.name.eq_ignore_ascii_case("Strings")),
        );
        ordered.extend(
            sections
                .iter()
                .filter(|s| s.name.eq_ignore_ascii_case("Strings.0409")),
        );
        ordered.extend(sections.iter().filter(|s| {
            let lower = s.name.to_ascii_lowercase();
            lower.starts_with("strings.") && lower != "strings.0409"
        }));
        let mut values = HashMap::new();
        for section in ordered {
            for entry in &section.entries {
                let Some(key) = &entry.key else { continue };
                // A string value is one token; commas in an unquoted value belong to it.
                let value = entry.values.join(",");
                values.entry(key.to_ascii_lowercase()).or_insert(value);
            }
        }
        Self { values }
    }

    /// Replaces every `%key%` in `text`. `%%` is a literal `%`. `%13%`-style numbers that are
    /// not string keys are directory ids and stay as written; other unknown keys stay as
    /// written and produce a warning.
    pub(crate) fn substitute(
        &self,
        text: &str,
        line: usize,
        warnings: &mut Vec<InfWarning>,
    ) -> String {
        if !text.contains('%') {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                // A lone `%` is kept literally.
                out.push_str(&rest[start..]);
                return out;
            };
            let key = &after[..end];
            if key.is_empty() {
                out.push('%');
            } else if let Some(value) = self.values.get(&key.to_ascii_lowercase()) {
                out.push_str(value);
            } else {
                if !key.bytes().all(|b| b.is_ascii_digit()) {
                    warnings.push(InfWarning::new(
                        line,
                        format!("`%{key}%` is not defined in any [Strings] section"),
                    ));
                }
                out.push('%');
                out.push_str(key);
                out.push('%');
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inf::syntax::lex;

    fn table(text: &str) -> StringTable {
        let mut warnings = Vec::new();
        StringTable::from_sections(&lex(text, &mut warnings))
    }

    #[test]
    fn substitutes_and_keeps_dirids() {
        let strings = table("[Strings]\nNVIDIA=\"NVIDIA Corp\"\n");
        let mut warnings = Vec::new();
        assert_eq!(
            strings.substitute("%nvidia% 100%% %13%\\x %missing% 5%", 1, &mut warnings),
            "NVIDIA Corp 100% %13%\\x %missing% 5%"
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].message.contains("%missing%"));
    }

    #[test]
    fn localized_sections_are_fallbacks() {
        let strings = table(concat!(
            "[Strings.0407]\nDisk=\"Datenträger\"\nOnly=\"nur deutsch\"\n",
            "[Strings]\nDisk=\"Disk\"\n",
            "[Strings.0409]\nOnly=\"english\"\n",
        ));
        let mut warnings = Vec::new();
        assert_eq!(strings.substitute("%Disk%", 1, &mut warnings), "Disk");
        assert_eq!(strings.substitute("%Only%", 1, &mut warnings), "english");
        assert!(warnings.is_empty());
    }
}
