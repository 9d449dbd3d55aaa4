//! BARs and the sysfs `resource` file.
//!
//! Format (kernel `drivers/pci/pci-sysfs.c`, `resource_show`): one line per resource,
//! `"0x%016llx 0x%016llx 0x%016llx\n"` = start, end, flags. Line index is the resource index:
//! 0..=5 are BARs, 6 the expansion ROM, 7..=12 the SR-IOV VF BARs (with `CONFIG_PCI_IOV`),
//! and on bridges 13..=16 the bridge windows. A 64-bit BAR at index i leaves line i+1 zero.

use serde::{Deserialize, Serialize};

/// `IORESOURCE_IO` (include/linux/ioport.h).
pub const IORESOURCE_IO: u64 = 0x100;
/// `IORESOURCE_MEM`.
pub const IORESOURCE_MEM: u64 = 0x200;
/// `IORESOURCE_PREFETCH`.
pub const IORESOURCE_PREFETCH: u64 = 0x2000;
/// `IORESOURCE_MEM_64`.
pub const IORESOURCE_MEM_64: u64 = 0x0010_0000;
/// `IORESOURCE_ROM_SHADOW`: the boot GPU's ROM shadowed at 0xC0000 (only on ROM resources).
pub const IORESOURCE_ROM_SHADOW: u64 = 0x2;

/// Resource index of the expansion ROM.
pub const ROM_INDEX: usize = 6;
/// First resource index of the SR-IOV VF BARs.
pub const SRIOV_FIRST_INDEX: usize = 7;
/// Last resource index of the SR-IOV VF BARs.
pub const SRIOV_LAST_INDEX: usize = 12;

/// What address space a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BarKind {
    /// 32-bit memory BAR.
    Memory32,
    /// 64-bit memory BAR (uses two BAR registers).
    Memory64,
    /// I/O port BAR.
    Io,
}

/// One assigned resource of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// Resource index (0..=5 for BARs; 7..=12 for VF BARs).
    pub index: u8,
    /// Address space.
    pub kind: BarKind,
    /// Prefetchable memory.
    pub prefetchable: bool,
    /// Start address as the host assigned it.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The decoded `resource` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// BAR0..BAR5 that have a size.
    pub bars: Vec<Bar>,
    /// Expansion ROM size in bytes, when the device has one.
    pub rom_size: Option<u64>,
    /// Whether the ROM is the shadow copy at 0xC0000 (a boot GPU).
    pub rom_shadowed: bool,
    /// SR-IOV VF BARs (per-VF sizes as the kernel reports them).
    pub vf_bars: Vec<Bar>,
}

impl Resources {
    /// Total memory-mapped bytes of BAR0..BAR5 (what a VM must map). Saturates instead of
    /// overflowing on nonsense sizes from a damaged file.
    pub fn mmio_total(&self) -> u64 {
        self.bars
            .iter()
            .filter(|bar| bar.kind != BarKind::Io)
            .fold(0, |total, bar| total.saturating_add(bar.size))
    }

    /// Bytes in 64-bit prefetchable BARs (these go above 4 GiB in a guest: "high MMIO").
    pub fn mmio_64bit_prefetchable(&self) -> u64 {
        self.bars
            .iter()
            .filter(|bar| bar.kind == BarKind::Memory64 && bar.prefetchable)
            .fold(0, |total, bar| total.saturating_add(bar.size))
    }
}

/// Why a `resource` file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of `resource` is malformed: `{text}`")]
pub struct ResourceError {
    /// 1-based line number.
    pub line: usize,
    /// The offending text (truncated to 80 characters).
    pub text: String,
}

/// `0x` and 1 to 16 hex digits. By hand: a big host has tens of thousands of these, and
/// `from_str_radix` checks signs and overflow digit by digit.
fn parse_hex(field: &str) -> Option<u64> {
    let digits = field.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    // `from_str_radix`, which this replaces, took one leading `+`.
    let digits = match digits.strip_prefix('+') {
        Some("") => return None,
        Some(rest) => rest,
        None => digits,
    };
    digits.bytes().try_fold(0u64, |value, digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(nibble))
    })
}

/// A line exactly as the kernel prints it: three `0x` and 16 digits fields, one space apart.
/// Most of a big host's lines are such; taking the fields by position skips the whitespace
/// scan. Anything else is left to [`any_spacing_line`], which reads the same three fields.
fn kernel_line(line: &str) -> Option<(u64, u64, u64)> {
    const FIELD: usize = 18;
    let field = |index: usize| line.get(index * (FIELD + 1)..index * (FIELD + 1) + FIELD);
    let bytes = line.as_bytes();
    if bytes.len() != 3 * FIELD + 2 || bytes[FIELD] != b' ' || bytes[2 * FIELD + 1] != b' ' {
        return None;
    }
    Some((
        parse_hex(field(0)?)?,
        parse_hex(field(1)?)?,
        parse_hex(field(2)?)?,
    ))
}

/// Three whitespace-separated hex fields.
fn any_spacing_line(line: &str) -> Option<(u64, u64, u64)> {
    let mut fields = line.split_ascii_whitespace();
    let (Some(start), Some(end), Some(flags), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    Some((parse_hex(start)?, parse_hex(end)?, parse_hex(flags)?))
}

/// Decodes the text of a sysfs `resource` file.
pub fn parse_resource(text: &str) -> Result<Resources, ResourceError> {
    let mut resources = Resources::default();
    // An unused resource: most lines of a function's file (a VF has 2 or 3 BARs of 13 lines).
    const UNUSED: &str = "0x0000000000000000 0x0000000000000000 0x0000000000000000";
    for (index, line) in text.lines().enumerate() {
        if line == UNUSED {
            continue;
        }
        let malformed = || ResourceError {
            line: index + 1,
            text: line.chars().take(80).collect(),
        };
        let Some((start, end, flags)) = kernel_line(line).or_else(|| any_spacing_line(line)) else {
            return Err(malformed());
        };
        if end == 0 || end < start {
            continue;
        }
        // Only a resource spanning all 2^64 addresses has no size that fits: damaged input.
        let Some(size) = (end - start).checked_add(1) else {
            return Err(malformed());
        };
        if index == ROM_INDEX {
            resources.rom_size = Some(size);
            resources.rom_shadowed = flags & IORESOURCE_ROM_SHADOW != 0;
            continue;
        }
        let kind = if flags & IORESOURCE_IO != 0 {
            BarKind::Io
        } else if flags & IORESOURCE_MEM_64 != 0 {
            BarKind::Memory64
        } else if flags & IORESOURCE_MEM != 0 {
            BarKind::Memory32
        } else {
            continue;
        };
        let bar = Bar {
            index: index as u8,
            kind,
            prefetchable: flags & IORESOURCE_PREFETCH != 0,
            start,
            size,
        };
        match index {
            0..=5 => resources.bars.push(bar),
            SRIOV_FIRST_INDEX..=SRIOV_LAST_INDEX => resources.vf_bars.push(bar),
            // Bridge windows are not BARs of the device.
            _ => {}
        }
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    // kvm-vfio.md §3.3 fixture C (synthetic dGPU built from the kernel's rules).
    const DGPU: &str = "\
0x00000000fb000000 0x00000000fbffffff 0x0000000000040200
0x00000000e0000000 0x00000000efffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x00000000f0000000 0x00000000f1ffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x000000000000e000 0x000000000000e07f 0x0000000000040101
0x00000000fc000000 0x00000000fc07ffff 0x0000000000046200
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
";

    #[test]
    fn decodes_a_gpu_layout() {
        let resources = parse_resource(DGPU).unwrap();
        assert_eq!(resources.bars.len(), 4);
        assert_eq!(resources.bars[0].kind, BarKind::Memory32);
        assert_eq!(resources.bars[0].size, 16 << 20);
        assert_eq!(resources.bars[1].kind, BarKind::Memory64);
        assert!(resources.bars[1].prefetchable);
        assert_eq!(resources.bars[1].size, 256 << 20);
        assert_eq!(resources.bars[3].kind, BarKind::Io);
        assert_eq!(resources.rom_size, Some(512 << 10));
        assert!(!resources.rom_shadowed);
        assert_eq!(resources.mmio_total(), (16 + 256 + 32) << 20);
        assert_eq!(resources.mmio_64bit_prefetchable(), (256 + 32) << 20);
    }

    #[test]
    fn shadowed_boot_rom_is_flagged() {
        let text = "0x0000000000000000 0x0000000000000000 0x0000000000000000\n".repeat(6)
            + "0x00000000000c0000 0x00000000000dffff 0x0000000000000212\n";
        let resources = parse_resource(&text).unwrap();
        assert!(resources.rom_shadowed);
        assert_eq!(resources.rom_size, Some(128 << 10));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let error = parse_resource("0x0 0x1 0x200\ngarbage\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(parse_resource("0x0 0x1\n").is_err());
        assert!(parse_resource("0x0 0x1 0x200 0x4\n").is_err());
    }

    #[test]
    fn impossible_sizes_are_errors_and_totals_saturate() {
        let whole_space = "0x0000000000000000 0xffffffffffffffff 0x0000000000040200\n";
        assert_eq!(parse_resource(whole_space).unwrap_err().line, 1);
        let huge = "0x0000000000000001 0xffffffffffffffff 0x0000000000040200\n".repeat(2);
        assert_eq!(parse_resource(&huge).unwrap().mmio_total(), u64::MAX);
    }

    #[test]
    fn hex_fields_need_the_prefix_and_at_most_16_digits() {
        assert_eq!(parse_hex("0x00000000fb000000"), Some(0xfb00_0000));
        assert_eq!(parse_hex("0xFFFFFFFFFFFFFFFF"), Some(u64::MAX));
        assert_eq!(parse_hex("0x0"), Some(0));
        assert_eq!(parse_hex("0x+1"), Some(1));
        for bad in [
            "",
            "0x",
            "fb000000",
            "0x10000000000000000",
            "0x+",
            "0x-1",
            "0xg",
            "0x 1",
        ] {
            assert_eq!(parse_hex(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn hex_fields_parse_like_from_str_radix(field in "(0x)?[0-9a-fA-F+-]{0,18}") {
            let expected = field
                .strip_prefix("0x")
                .filter(|digits| !digits.is_empty() && digits.len() <= 16)
                .and_then(|digits| u64::from_str_radix(digits, 16).ok());
            proptest::prop_assert_eq!(parse_hex(&field), expected);
        }
    }

    proptest::proptest! {
        #[test]
        fn kernel_lines_read_like_any_spacing(
            line in "(0x[0-9a-f]{16}|[ 0x+a-fé0-9]{18}) (0x[0-9a-f]{16}|[ 0x+a-f0-9]{18}) (0x[0-9a-f]{16}|[ 0x+a-f0-9]{17,19})",
        ) {
            if let Some(fields) = kernel_line(&line) {
                proptest::prop_assert_eq!(Some(fields), any_spacing_line(&line));
            }
        }
    }

    #[test]
    fn empty_file_has_no_bars() {
        assert_eq!(parse_resource("").unwrap(), Resources::default());
    }
}
