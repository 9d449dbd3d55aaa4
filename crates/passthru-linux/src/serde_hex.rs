//! JSON shapes for ids and addresses: ids as lower-case hex without `0x` (`"10de"`, as lspci
//! `-nn` prints them), 64-bit addresses as `0x`-prefixed hex strings (JSON numbers lose
//! precision above 2^53).

/// Writes the low `digits.len()` hex digits of `value` into `digits`, lower case and
/// zero-padded (`{:04x}`), and returns them as text. A survey writes tens of thousands of
/// ids; this spares each a trip through the formatting machinery.
fn lower_hex(digits: &mut [u8], value: u64) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = value;
    for digit in digits.iter_mut().rev() {
        *digit = HEX[(rest & 0xf) as usize];
        rest >>= 4;
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(digits).unwrap_or_default()
}

/// `Option<u16>` as `"10de"` or `null`.
pub(crate) mod id16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<u16>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(id) => serializer.serialize_str(super::lower_hex(&mut [0; 4], u64::from(*id))),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u16>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| {
            u16::from_str_radix(&text, 16)
                .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a 16-bit hex id")))
        })
        .transpose()
    }
}

/// `Option<u8>` as `"a1"` or `null`.
pub(crate) mod id8 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<u8>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(id) => serializer.serialize_str(super::lower_hex(&mut [0; 2], u64::from(*id))),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u8>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| {
            u8::from_str_radix(&text, 16)
                .map_err(|_| serde::de::Error::custom(format!("`{text}` is not an 8-bit hex id")))
        })
        .transpose()
    }
}

/// `u64` as `"0x00000000fee00000"`.
pub(crate) mod u64_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = *b"0x0000000000000000";
        super::lower_hex(&mut text[2..], *value);
        serializer.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.strip_prefix("0x")
            .and_then(|digits| u64::from_str_radix(digits, 16).ok())
            .ok_or_else(|| {
                serde::de::Error::custom(format!("`{text}` is not a 0x-prefixed hex number"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_text_matches_the_format_macros() {
        for value in [0u64, 1, 0xa, 0x10de, 0xffff, 0xfee0_0000, u64::MAX] {
            assert_eq!(
                lower_hex(&mut [0; 4], value & 0xffff),
                format!("{:04x}", value & 0xffff)
            );
            assert_eq!(
                lower_hex(&mut [0; 2], value & 0xff),
                format!("{:02x}", value & 0xff)
            );
            assert_eq!(lower_hex(&mut [0; 16], value), format!("{value:016x}"));
        }
    }

    #[test]
    fn ids_and_addresses_round_trip_through_json() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Shapes {
            #[serde(with = "id16")]
            vendor: Option<u16>,
            #[serde(with = "id8")]
            revision: Option<u8>,
            #[serde(with = "u64_text")]
            start: u64,
        }
        let shapes = Shapes {
            vendor: Some(0x10de),
            revision: Some(0xa1),
            start: 0xfee0_0000,
        };
        let json = serde_json::to_string(&shapes).unwrap();
        assert_eq!(
            json,
            r#"{"vendor":"10de","revision":"a1","start":"0x00000000fee00000"}"#
        );
        assert_eq!(serde_json::from_str::<Shapes>(&json).unwrap(), shapes);
    }
}
