//! JSON shapes for ids and addresses: ids as lower-case hex without `0x` (`"10de"`, as lspci
//! `-nn` prints them), 64-bit addresses as `0x`-prefixed hex strings (JSON numbers lose
//! precision above 2^53).

/// `Option<u16>` as `"10de"` or `null`.
pub(crate) mod id16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<u16>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(id) => serializer.collect_str(&format_args!("{id:04x}")),
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
            Some(id) => serializer.collect_str(&format_args!("{id:02x}")),
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
        serializer.collect_str(&format_args!("{value:#018x}"))
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
