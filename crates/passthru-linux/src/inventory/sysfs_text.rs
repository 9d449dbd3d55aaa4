//! Small parsers for sysfs attribute text, and the wording of read failures.

use std::io;
use std::path::Path;

use passthru_core::hostfs::{HostDir, trimmed_text};
use passthru_core::pci::PciAddress;

/// The innermost message of an I/O error (`Permission denied (os error 13)`), without the
/// real path that `fs-err` adds: warnings name host paths themselves, so the same problem
/// reads the same from a live host, a `--root` tree or a replayed snapshot.
pub(crate) fn io_reason(error: &io::Error) -> String {
    // fs-err formats "failed to open file `PATH`: MESSAGE" and hides the original error.
    if let Some(inner) = error.get_ref() {
        let text = inner.to_string();
        if text.starts_with("failed to ")
            && let Some((_, message)) = text.rsplit_once("`: ")
        {
            return message.to_owned();
        }
    }
    let mut innermost: &(dyn std::error::Error + 'static) = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// A short quote of bad text for a warning.
pub(crate) fn quote(text: &str) -> String {
    let mut quoted: String = text.trim().chars().take(40).collect();
    if text.trim().chars().count() > 40 {
        quoted.push('…');
    }
    quoted.escape_debug().to_string()
}

/// `0x10de` (the kernel's `"0x%04x"`) → 0x10de. Tolerates a missing `0x`.
pub(crate) fn parse_hex_u32(text: &str, max_digits: usize) -> Option<u32> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    if digits.is_empty()
        || digits.len() > max_digits
        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The last component of a host path, as text.
pub(crate) fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|name| name.to_str())
}

/// The PCI addresses among a sysfs path's components, nearest last
/// (`/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0` → `[00:01.0, 01:00.0]`).
pub(crate) fn addresses_in_path(path: &Path) -> Vec<PciAddress> {
    path.components()
        .filter_map(|component| component.as_os_str().to_str())
        .filter_map(|name| name.parse::<PciAddress>().ok())
        .collect()
}

/// Reads the text attribute `name` of `dir` through the reused buffer `bytes`, trimmed like
/// `HostFs::read_text`.
pub(crate) fn read_text_in(
    dir: &dyn HostDir,
    name: &str,
    bytes: &mut Vec<u8>,
) -> io::Result<String> {
    dir.read_into(name, usize::MAX, bytes)?;
    Ok(trimmed_text(bytes).into_owned())
}

/// [`read_text_in`]; `Ok(None)` when the attribute does not exist.
pub(crate) fn read_optional_text_in(
    dir: &dyn HostDir,
    name: &str,
    bytes: &mut Vec<u8>,
) -> io::Result<Option<String>> {
    Ok(dir
        .read_if_exists(name, usize::MAX, bytes)?
        .then(|| trimmed_text(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_parse_with_and_without_prefix() {
        assert_eq!(parse_hex_u32("0x10de\n", 4), Some(0x10de));
        assert_eq!(parse_hex_u32("10de", 4), Some(0x10de));
        assert_eq!(parse_hex_u32("0x10de0", 4), None);
        assert_eq!(parse_hex_u32("0x", 4), None);
        assert_eq!(parse_hex_u32("zz", 4), None);
    }

    #[test]
    fn addresses_come_from_path_components() {
        let path = Path::new(
            "/sys/devices/pci0000:00/0000:00:0e.0/pci10000:e0/10000:e0:1d.0/10000:e1:00.0",
        );
        let addresses: Vec<String> = addresses_in_path(path)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            addresses,
            ["0000:00:0e.0", "10000:e0:1d.0", "10000:e1:00.0"]
        );
    }

    #[test]
    fn io_reason_drops_the_wrapping_path() {
        let error = fs_err::read("/nonexistent/passthru/file").unwrap_err();
        assert!(error.to_string().contains("/nonexistent"));
        assert!(!io_reason(&error).contains("/nonexistent"));
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("0xzz\n"), "0xzz");
        assert_eq!(quote(&"a".repeat(50)).chars().count(), 41);
        assert_eq!(quote("a\u{0}b"), "a\\0b");
    }
}
