//! Reading `lspci -xxx` / `lspci -xxxx` dumps: the text format of pciutils' `lib/dump.c`,
//! which `lspci -F FILE` reads back.
//!
//! A dump is a sequence of device blocks. A block starts with a header line that begins with
//! the device's address and a space (`01:00.0 VGA compatible controller: ...`, or with a
//! domain, `0000:01:00.0 ...`); decoded lines (`-v`, `-vvv` output, indented with a tab) may
//! follow and are ignored; hex rows (`00: de 10 fc 0d ...`, an offset of 2 to 8 hex digits, a
//! colon, then bytes of two hex digits) fill the config-space image; an empty line ends the
//! block. Lines that are none of these (command lines, `lspci -t` trees, prose around
//! nvidia-bug-report sections) are ignored, as lspci ignores them.
//!
//! Differences from lspci, on purpose: a line longer than 254 characters is accepted (lspci
//! refuses the whole file, see the acer fixture's 256-character name line); bytes may be
//! separated by more than one space; a header line with an address lspci would accept but
//! that is not a valid PCI address (device above 0x1f) is an error.

use serde::{Deserialize, Serialize};

use super::address::{AddressError, PciAddress};

/// Largest config space a dump can hold (PCI Express extended config space).
pub const MAX_CONFIG_SIZE: usize = 4096;

/// One device block of a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpedDevice {
    /// The device's address (domain 0 when the header line has none).
    pub address: PciAddress,
    /// The header line after the address, e.g. `VGA compatible controller: NVIDIA ...`.
    pub description: String,
    /// 1-based line number of the header line.
    pub line: usize,
    /// The config-space image as `lspci -F` sees it: it ends after the highest offset any row
    /// gave; offsets no row gave inside it read `0xff`. Empty when the block had no hex rows
    /// (an `lspci -nn` line, say).
    pub config: Vec<u8>,
}

/// Why a dump could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// A hex row has text that is not a byte.
    #[error(
        "line {line} of the dump (config space of {device}) is not a valid hex row: {reason} in \
         `{text}`; remove what is not part of the dump (an error message printed into it, for \
         example) and try again"
    )]
    MalformedRow {
        /// 1-based line number.
        line: usize,
        /// The device the row belongs to.
        device: PciAddress,
        /// The row (truncated to 100 characters).
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A hex row reaches past 4096 bytes.
    #[error(
        "line {line} of the dump (config space of {device}) writes offset {offset:#x}, past the \
         4096 bytes a PCI Express config space has; the dump is damaged"
    )]
    OffsetOutOfRange {
        /// 1-based line number.
        line: usize,
        /// The device the row belongs to.
        device: PciAddress,
        /// The first offset out of range.
        offset: usize,
    },
    /// A header line starts like an address but is not a valid one.
    #[error("line {line} of the dump starts like a device header, but {source}")]
    BadAddress {
        /// 1-based line number.
        line: usize,
        /// Why the address is invalid.
        source: AddressError,
    },
}

/// Parses the text of a dump into its device blocks, in file order. A device listed twice (an
/// nvidia-bug-report has an `lspci -nn` section and an `lspci -xxx` section) gives two blocks.
pub fn parse_dump(text: &str) -> Result<Vec<DumpedDevice>, DumpError> {
    let mut devices: Vec<DumpedDevice> = Vec::new();
    let mut in_block = false;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if let Some((address, description)) = header_line(line, line_number)? {
            devices.push(DumpedDevice {
                address,
                description: description.to_owned(),
                line: line_number,
                config: Vec::new(),
            });
            in_block = true;
        } else if line.is_empty() {
            in_block = false;
        } else if let (true, Some(device)) = (in_block, devices.last_mut())
            && let Some((offset, bytes)) = split_row(line)
        {
            fill_row(device, line_number, line, offset, bytes)?;
        }
    }
    Ok(devices)
}

/// Recognises `[DDDD:]BB:DD.F` followed by a space (or the end of the line).
fn header_line(line: &str, line_number: usize) -> Result<Option<(PciAddress, &str)>, DumpError> {
    let (token, description) = line.split_once(' ').unwrap_or((line, ""));
    if !looks_like_address(token) {
        return Ok(None);
    }
    let address = PciAddress::parse_lenient(token).map_err(|source| DumpError::BadAddress {
        line: line_number,
        source,
    })?;
    Ok(Some((address, description)))
}

/// The shapes lspci's dump reader accepts (`##:##.#`, with an optional domain of 4 or more
/// hex digits); anything else on a line start is not a header.
fn looks_like_address(token: &str) -> bool {
    let hex = |field: &str, lengths: std::ops::RangeInclusive<usize>| {
        lengths.contains(&field.len()) && field.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let Some((rest, function)) = token.rsplit_once('.') else {
        return false;
    };
    if function.len() != 1 || !function.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut fields = rest.split(':').rev();
    let (Some(device), Some(bus)) = (fields.next(), fields.next()) else {
        return false;
    };
    let domain_ok = match (fields.next(), fields.next()) {
        (None, _) => true,
        (Some(domain), None) => hex(domain, 4..=8),
        (Some(_), Some(_)) => false,
    };
    domain_ok && hex(bus, 2..=2) && hex(device, 2..=2)
}

/// Splits `OFF: bytes` when the line starts with 2 to 8 hex digits, a colon and a space (or
/// ends after the colon).
fn split_row(line: &str) -> Option<(usize, &str)> {
    let (offset, rest) = line.split_once(':')?;
    if !(2..=8).contains(&offset.len()) || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let offset = usize::from_str_radix(offset, 16).ok()?;
    Some((offset, rest))
}

fn fill_row(
    device: &mut DumpedDevice,
    line_number: usize,
    line: &str,
    offset: usize,
    bytes: &str,
) -> Result<(), DumpError> {
    for (position, token) in bytes.split_ascii_whitespace().enumerate() {
        let value = (token.len() == 2)
            .then(|| u8::from_str_radix(token, 16).ok())
            .flatten()
            .ok_or_else(|| DumpError::MalformedRow {
                line: line_number,
                device: device.address,
                text: line.chars().take(100).collect(),
                reason: format!(
                    "`{}` is not a byte (two hex digits)",
                    token.chars().take(20).collect::<String>()
                ),
            })?;
        let at = offset + position;
        if at >= MAX_CONFIG_SIZE {
            return Err(DumpError::OffsetOutOfRange {
                line: line_number,
                device: device.address,
                offset: at,
            });
        }
        if device.config.len() <= at {
            device.config.resize(at + 1, 0xff);
        }
        device.config[at] = value;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> PciAddress {
        PciAddress::parse_lenient(text).unwrap()
    }

    #[test]
    fn reads_blocks_rows_and_ignores_decoded_lines() {
        let text = "\
01:00.0 VGA compatible controller: Example GPU (rev a1)
\tSubsystem: Example
\tCapabilities: [60] Power Management version 3
00: de 10 fc 0d 07 04 10 00 a1 00 00 03 10 00 80 00
10: 00 00 00 f5

0001:02:1f.7 Audio device: Example
00: 86 80
";
        let devices = parse_dump(text).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].address, address("0000:01:00.0"));
        assert_eq!(
            devices[0].description,
            "VGA compatible controller: Example GPU (rev a1)"
        );
        assert_eq!(devices[0].line, 1);
        assert_eq!(devices[0].config.len(), 0x14);
        assert_eq!(&devices[0].config[..4], &[0xde, 0x10, 0xfc, 0x0d]);
        assert_eq!(&devices[0].config[0x10..], &[0, 0, 0, 0xf5]);
        assert_eq!(devices[1].address, address("0001:02:1f.7"));
        assert_eq!(devices[1].config, vec![0x86, 0x80]);
    }

    #[test]
    fn missing_rows_read_all_ones_and_the_image_ends_at_the_last_row() {
        let text = "00:02.0 VGA: x\n00: 01 02\n20: 03\n";
        let config = &parse_dump(text).unwrap()[0].config;
        assert_eq!(config.len(), 0x21);
        assert!(config[2..0x20].iter().all(|&b| b == 0xff));
        assert_eq!(config[0x20], 3);
    }

    #[test]
    fn rows_after_an_empty_line_or_without_a_header_are_ignored() {
        let text = "00: 01 02\n00:02.0 VGA: x\n\n00: 01 02\n";
        let devices = parse_dump(text).unwrap();
        assert_eq!(devices.len(), 1);
        assert!(devices[0].config.is_empty());
    }

    #[test]
    fn crlf_line_ends_are_accepted() {
        let devices = parse_dump("00:02.0 VGA: x\r\n00: 01 02\r\n").unwrap();
        assert_eq!(devices[0].config, vec![1, 2]);
    }

    #[test]
    fn garbage_in_a_row_names_line_device_and_text() {
        let text = "05:00.1 Audio: x\nf10: 00 00 pcilib: sysfs_read_vpd: read failed\n";
        let error = parse_dump(text).unwrap_err();
        let DumpError::MalformedRow { line, device, .. } = &error else {
            panic!("unexpected error {error:?}");
        };
        assert_eq!((*line, *device), (2, address("05:00.1")));
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("0000:05:00.1"), "{message}");
        assert!(message.contains("`pcilib:`"), "{message}");
    }

    #[test]
    fn offsets_past_4096_are_refused() {
        let error = parse_dump("00:02.0 VGA: x\nff0: 00 00\nffe: 01 02 03\n").unwrap_err();
        assert!(matches!(
            error,
            DumpError::OffsetOutOfRange {
                line: 3,
                offset: 0x1000,
                ..
            }
        ));
        assert!(parse_dump("00:02.0 VGA: x\n1000: 00\n").is_err());
    }

    #[test]
    fn invalid_addresses_in_header_lines_are_errors() {
        let error = parse_dump("00:20.0 Bogus device\n").unwrap_err();
        assert!(matches!(error, DumpError::BadAddress { line: 1, .. }));
    }

    #[test]
    fn lines_that_only_resemble_the_format_are_not_headers_or_rows() {
        let text = "00:02.0 VGA: x\n\
                    \t00: 11\n\
                    -+-[0000:ff]-+-0b.0\n\
                    00:1f.a not a function\n\
                    0:1f.2 short bus\n\
                    123456789: 00\n\
                    0g: 00\n\
                    00:01\n";
        let devices = parse_dump(text).unwrap();
        assert_eq!(devices.len(), 1);
        assert!(devices[0].config.is_empty());
    }
}
