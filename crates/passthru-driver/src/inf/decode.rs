//! Turning INF bytes into text: Windows writes INF files as UTF-16 (with a byte-order mark) or
//! in the machine's ANSI code page; tools on other systems also produce UTF-8.

use serde::Serialize;

/// The encoding an INF file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// UTF-16 little endian (byte-order mark `FF FE`, or detected from zero bytes).
    Utf16Le,
    /// UTF-16 big endian (byte-order mark `FE FF`).
    Utf16Be,
    /// UTF-8, with or without a byte-order mark.
    Utf8,
    /// Not valid UTF-8: read as Windows-1252, the ANSI code page of western Windows.
    Windows1252,
}

/// Decoded text plus what was found on the way.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub(crate) text: String,
    pub(crate) encoding: TextEncoding,
    /// Whether some bytes could not be decoded and were replaced by U+FFFD.
    pub(crate) had_errors: bool,
}

/// Decodes an INF file. Never fails: undecodable bytes become U+FFFD and `had_errors` is set.
pub(crate) fn decode(bytes: &[u8]) -> Decoded {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, encoding_rs::UTF_16LE, TextEncoding::Utf16Le);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, encoding_rs::UTF_16BE, TextEncoding::Utf16Be);
    }
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    if looks_like_utf16le_without_bom(body) {
        return utf16(body, encoding_rs::UTF_16LE, TextEncoding::Utf16Le);
    }
    match std::str::from_utf8(body) {
        Ok(text) => Decoded {
            text: text.to_owned(),
            encoding: TextEncoding::Utf8,
            had_errors: false,
        },
        Err(_) => {
            let (text, had_errors) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(body);
            Decoded {
                text: text.into_owned(),
                encoding: TextEncoding::Windows1252,
                had_errors,
            }
        }
    }
}

fn utf16(body: &[u8], encoding: &'static encoding_rs::Encoding, which: TextEncoding) -> Decoded {
    // An odd byte count means a truncated file; encoding_rs reports the dangling byte as an
    // error and we pass that on.
    let (text, had_errors) = encoding.decode_without_bom_handling(body);
    Decoded {
        text: text.into_owned(),
        encoding: which,
        had_errors,
    }
}

/// Some tools strip the byte-order mark. INF text starts with ASCII (`;`, `[`, a letter), so a
/// zero in every odd position of the first few code units gives UTF-16 LE away.
fn looks_like_utf16le_without_bom(body: &[u8]) -> bool {
    let probe = &body[..body.len().min(64)];
    probe.len() >= 8
        && probe
            .chunks_exact(2)
            .all(|unit| unit[1] == 0 && unit[0] != 0 && unit[0].is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le_with_bom(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn reads_each_encoding() {
        let text = "[Version]\r\nProvider=%Mfg%\r\n";
        let le = decode(&utf16le_with_bom(text));
        assert_eq!(
            (le.text.as_str(), le.encoding),
            (text, TextEncoding::Utf16Le)
        );

        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        let be = decode(&be);
        assert_eq!(
            (be.text.as_str(), be.encoding),
            (text, TextEncoding::Utf16Be)
        );

        let no_bom: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(decode(&no_bom).encoding, TextEncoding::Utf16Le);

        let utf8 = decode("; Gerät\n[Strings]\n".as_bytes());
        assert_eq!(utf8.encoding, TextEncoding::Utf8);
        assert!(utf8.text.contains("Gerät"));
    }

    #[test]
    fn ansi_bytes_are_windows_1252() {
        // 0xE4 is "ä" and 0x99 is "™" in Windows-1252; neither is valid UTF-8 here.
        let decoded = decode(b"[Strings]\nName=\"Ger\xE4t\x99\"\n");
        assert_eq!(decoded.encoding, TextEncoding::Windows1252);
        assert!(decoded.text.contains("Gerät™"));
        assert!(!decoded.had_errors);
    }

    #[test]
    fn truncated_utf16_is_flagged_not_fatal() {
        let mut bytes = utf16le_with_bom("[Version]");
        bytes.push(b'x');
        let decoded = decode(&bytes);
        assert!(decoded.had_errors);
        assert!(decoded.text.starts_with("[Version]"));
    }
}
