//! Reading `lspci -xxx`/`-xxxx` dumps (the hex rows `00: 86 80 ...` up to `ff0:`) back into
//! config-space bytes, so fake hosts use real captured config images.

/// One device block of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedDevice {
    /// The block's first line (`06:00.0 VGA compatible controller: ...`).
    pub header: String,
    /// The slot at the start of the header (`06:00.0`, or `0000:06:00.0`).
    pub slot: String,
    /// Config space: 64, 256 or 4096 bytes; rows missing from the dump read `0xff`, as
    /// `lspci -F` fills them.
    pub config: Vec<u8>,
}

/// Why a dump could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the lspci dump is malformed: {problem}")]
pub struct DumpError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// A device block being read: its header line and its hex rows `(offset, bytes)`.
type Block = (String, Vec<(usize, Vec<u8>)>);

/// Parses every device block of a dump. Decoded `-v` lines between the header and the hex
/// rows are skipped, as `lspci -F` skips them.
pub fn parse(text: &str) -> Result<Vec<DumpedDevice>, DumpError> {
    let mut devices = Vec::new();
    let mut current: Option<Block> = None;
    let finish = |current: Option<Block>, devices: &mut Vec<DumpedDevice>| {
        if let Some((header, rows)) = current
            && !rows.is_empty()
        {
            devices.push(assemble(header, rows));
        }
    };
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            finish(current.take(), &mut devices);
            continue;
        }
        if let Some((offset, bytes)) = hex_row(line) {
            let Some((_, rows)) = current.as_mut() else {
                return Err(DumpError {
                    line: index + 1,
                    problem: "a hex row before any device header".to_owned(),
                });
            };
            if bytes.is_empty() || bytes.len() > 16 {
                return Err(DumpError {
                    line: index + 1,
                    problem: format!("a hex row must hold 1 to 16 bytes, not {}", bytes.len()),
                });
            }
            rows.push((offset, bytes));
        } else if !line.starts_with(char::is_whitespace) && looks_like_slot(line) {
            finish(current.take(), &mut devices);
            current = Some((line.to_owned(), Vec::new()));
        }
    }
    finish(current, &mut devices);
    Ok(devices)
}

/// Parses a dump that holds exactly one device.
pub fn parse_one(text: &str) -> Result<DumpedDevice, DumpError> {
    let mut devices = parse(text)?;
    match devices.len() {
        1 => Ok(devices.remove(0)),
        count => Err(DumpError {
            line: 1,
            problem: format!("expected one device, found {count}"),
        }),
    }
}

fn looks_like_slot(line: &str) -> bool {
    let slot = line.split_whitespace().next().unwrap_or_default();
    slot.contains(':')
        && slot.contains('.')
        && slot
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

/// `10: 00 00 ...` → (0x10, bytes).
fn hex_row(line: &str) -> Option<(usize, Vec<u8>)> {
    let (offset, rest) = line.split_once(':')?;
    if offset.is_empty() || offset.len() > 3 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // A slot header (`06:00.0 VGA ...`) also starts with hex and a colon.
    if rest.starts_with(|c: char| c.is_ascii_hexdigit()) {
        return None;
    }
    let offset = usize::from_str_radix(offset, 16).ok()?;
    let bytes = rest
        .split_whitespace()
        .map(|byte| {
            (byte.len() == 2)
                .then(|| u8::from_str_radix(byte, 16).ok())
                .flatten()
        })
        .collect::<Option<Vec<u8>>>()?;
    Some((offset, bytes))
}

fn assemble(header: String, rows: Vec<(usize, Vec<u8>)>) -> DumpedDevice {
    let end = rows
        .iter()
        .map(|(offset, bytes)| offset + bytes.len())
        .max()
        .unwrap_or(0);
    let size = [64, 256, 4096]
        .into_iter()
        .find(|size| end <= *size)
        .unwrap_or(4096);
    let mut config = vec![0xff; size];
    for (offset, bytes) in rows {
        for (index, byte) in bytes.into_iter().enumerate() {
            if let Some(slot) = config.get_mut(offset + index) {
                *slot = byte;
            }
        }
    }
    let slot = header
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    DumpedDevice {
        header,
        slot,
        config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_a_block_with_decoded_lines_in_between() {
        let text = "01:00.0 Ethernet controller: Intel Corporation Device 10c9 (rev 01)\n\tSubsystem: Intel\n\tRegion 0: Memory at e0800000 (32-bit)\n00: 86 80 c9 10 07 04 10 00 01 00 00 02 10 00 80 00\n10: 00 00 80 e0\n\n02:00.0 Other\n00: ff ff\n";
        let devices = parse(text).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].slot, "01:00.0");
        assert_eq!(devices[0].config.len(), 64);
        assert_eq!(&devices[0].config[..4], &[0x86, 0x80, 0xc9, 0x10]);
        assert_eq!(devices[0].config[0x13], 0xe0);
        assert_eq!(devices[0].config[0x20], 0xff);
    }

    #[test]
    fn rejects_rows_without_a_header() {
        assert!(parse("00: 86 80\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(text in "([0-9a-f]{2,3}: ([0-9a-f]{2} ){0,18}\n|[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7] x\n|\n|\tjunk\n){0,20}") {
            let _ = parse(&text);
        }
    }
}
