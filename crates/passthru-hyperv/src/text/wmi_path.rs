//! WMI object paths, as `Win32_PnPAllocatedResource` reports them:
//! `\\HOST\root\cimv2:Win32_PnPEntity.DeviceID="PCI\\VEN_10DE&DEV_1B06\\4&1D81E16&0&0019"`.
//!
//! SurveyDDA finds a device's interrupts and memory ranges by matching these strings with
//! wildcards (reference §3.1); passthru parses them properly instead, so that an instance id
//! containing `&` or a memory range in another device's path cannot be confused.

/// A parsed object path: class and key properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WmiPath {
    /// Class name (`Win32_IRQResource`).
    pub class: String,
    /// Key properties in order, values unescaped.
    pub keys: Vec<(String, String)>,
}

impl WmiPath {
    /// Parses a path with or without its `\\server\namespace:` prefix.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let relative = if text.starts_with(r"\\") {
            &text[text.find(':')? + 1..]
        } else {
            text
        };
        let (class, mut rest) = relative.split_once('.')?;
        if class.is_empty()
            || !class
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        let mut keys = Vec::new();
        loop {
            let (name, after) = rest.split_once('=')?;
            let name = name.trim();
            if name.is_empty() {
                return None;
            }
            let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((index, c)) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?.1),
                        '"' => {
                            end = Some(index + 1);
                            break;
                        }
                        other => value.push(other),
                    }
                }
                (value, &quoted[end?..])
            } else {
                let cut = after.find(',').unwrap_or(after.len());
                let bare = after[..cut].trim();
                if bare.is_empty() || bare.contains(|c: char| c.is_whitespace() || c == '=') {
                    return None;
                }
                (bare.to_owned(), &after[cut..])
            };
            keys.push((name.to_owned(), value));
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None if after.trim().is_empty() => break,
                None => return None,
            }
        }
        Some(Self {
            class: class.to_owned(),
            keys,
        })
    }

    /// The value of key property `name` (case-insensitive).
    pub fn key(&self, name: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Whether an IRQ number is a message-signalled one, by SurveyDDA's rule: MSI/MSI-X vectors
/// are reported as large numbers (negative 32-bit values) whose decimal form starts with
/// `42949` (reference §3.1, `IRQNumber=42949*`).
pub fn is_message_signalled(irq: u64) -> bool {
    irq.to_string().starts_with("42949")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_and_entity_paths() {
        let entity = WmiPath::parse(r#"\\DESKTOP\root\cimv2:Win32_PnPEntity.DeviceID="PCI\\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\\4&1D81E16&0&0019""#).unwrap();
        assert_eq!(entity.class, "Win32_PnPEntity");
        assert_eq!(
            entity.key("deviceid"),
            Some(r"PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019")
        );
        let irq =
            WmiPath::parse(r"\\DESKTOP\root\cimv2:Win32_IRQResource.IRQNumber=4294967294").unwrap();
        assert_eq!(irq.key("IRQNumber"), Some("4294967294"));
        let memory =
            WmiPath::parse(r#"Win32_DeviceMemoryAddress.StartingAddress="4227858432""#).unwrap();
        assert_eq!(memory.key("StartingAddress"), Some("4227858432"));
        let two = WmiPath::parse(r#"X.A="a\"b",B=2"#).unwrap();
        assert_eq!(
            two.keys,
            vec![("A".into(), "a\"b".into()), ("B".into(), "2".into())]
        );
        for bad in [
            "",
            "Win32_X",
            r#"X.A="open"#,
            "X.=1",
            r"\\host\no-colon",
            "X.A=1 junk=2",
        ] {
            assert_eq!(WmiPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn message_signalled_rule_matches_surveydda() {
        assert!(is_message_signalled(4_294_967_294));
        assert!(is_message_signalled(4_294_966_000));
        assert!(!is_message_signalled(17));
        assert!(!is_message_signalled(16));
    }
}
