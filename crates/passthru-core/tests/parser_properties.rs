//! Property tests of the parsers of host input: `pci::config::decode`, `pci::dump::parse_dump`
//! and `pci::resource::parse_resource`. They never panic, and what they return is consistent
//! with the input. The fuzz targets in `fuzz/` run the same code with coverage guidance.

use std::path::Path;
use std::sync::LazyLock;

use passthru_core::pci::PciAddress;
use passthru_core::pci::config::{Capabilities, CapabilityReadout, decode};
use passthru_core::pci::dump::{DumpedDevice, MAX_CONFIG_SIZE, parse_dump};
use passthru_core::pci::resource::{
    BarKind, IORESOURCE_IO, SRIOV_FIRST_INDEX, SRIOV_LAST_INDEX, parse_resource,
};
use proptest::prelude::*;

/// Config images of the real dumps, the starting points for mutations.
static REAL_IMAGES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pci-config");
    let mut images = Vec::new();
    for folder in ["gpu", "audio", "net", "nvme", "bridge", "other"] {
        for entry in fs_err::read_dir(root.join(folder)).unwrap() {
            let text = fs_err::read_to_string(entry.unwrap().path()).unwrap();
            images.extend(
                parse_dump(&text)
                    .unwrap()
                    .into_iter()
                    .map(|device| device.config),
            );
        }
    }
    images.sort();
    images
});

/// The invariants every decoded readout keeps, whatever the bytes.
fn check_invariants(bytes: &[u8], caps: &Capabilities) {
    assert_eq!(caps.bytes_read, bytes.len());
    let mut seen = std::collections::BTreeSet::new();
    for entry in &caps.list {
        let offset = usize::from(entry.offset);
        assert!(seen.insert(offset), "offset {offset:#x} listed twice");
        if entry.extended {
            assert!(
                (0x100..0x1000).contains(&offset) && offset % 4 == 0,
                "{entry:?}"
            );
            assert!(offset + 4 <= bytes.len(), "{entry:?} past the image");
        } else {
            assert!(
                (0x40..0x100).contains(&offset) && offset % 4 == 0,
                "{entry:?}"
            );
            assert!(offset + 2 <= bytes.len(), "{entry:?} past the image");
            assert!(entry.id <= 0xff);
        }
    }
    let listed = |offset: u16, id: u16, extended: bool| {
        caps.list
            .iter()
            .any(|entry| entry.offset == offset && entry.id == id && entry.extended == extended)
    };
    if let Some(pcie) = &caps.pcie {
        assert!(listed(pcie.offset, 0x10, false));
        if let Some(link) = pcie.link_status {
            assert!(link.width < 64);
        }
    }
    if let Some(pm) = &caps.power_management {
        assert!(listed(pm.offset, 0x01, false) && pm.version < 8);
    }
    if let Some(msi) = &caps.msi {
        assert!(listed(msi.offset, 0x05, false) && msi.vectors.is_power_of_two());
    }
    if let Some(msix) = &caps.msix {
        assert!(listed(msix.offset, 0x11, false) && (1..=2048).contains(&msix.table_size));
    }
    if let Some(acs) = &caps.acs {
        assert!(listed(acs.offset, 0x0d, true));
    }
    if let Some(sriov) = &caps.sriov {
        assert!(listed(sriov.offset, 0x10, true));
    }
    assert!(caps.resizable_bars.len() <= 6);
    for bar in &caps.resizable_bars {
        assert!(bar.bar < 8);
        assert!(bar.supported_sizes.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            bar.supported_sizes
                .iter()
                .all(|size| size.is_power_of_two())
        );
    }
    if caps.list.iter().any(|entry| entry.extended) {
        assert!(
            caps.pcie.is_some()
                || caps
                    .list
                    .iter()
                    .any(|entry| entry.id == 0x07 && !entry.extended)
        );
    }
}

fn decode_checked(bytes: &[u8]) -> CapabilityReadout {
    let readout = decode(bytes);
    match &readout {
        CapabilityReadout::Decoded(caps) => {
            assert!(bytes.len() > 64);
            check_invariants(bytes, caps);
        }
        CapabilityReadout::NeedsRoot { bytes_read, header } => {
            assert_eq!(*bytes_read, bytes.len());
            assert!((64..=128).contains(bytes_read) && header.is_some());
        }
        CapabilityReadout::Unavailable { reason } => assert!(!reason.is_empty()),
    }
    readout
}

fn list_of(readout: &CapabilityReadout) -> Vec<(u16, u16, bool)> {
    match readout {
        CapabilityReadout::Decoded(caps) => caps
            .list
            .iter()
            .map(|entry| (entry.offset, entry.id, entry.extended))
            .collect(),
        _ => Vec::new(),
    }
}

fn address() -> impl Strategy<Value = PciAddress> {
    (0u32..0x1_0000, any::<u8>(), 0u8..32, 0u8..8).prop_map(|(domain, bus, device, function)| {
        PciAddress::new(domain, bus, device, function).unwrap()
    })
}

/// Writes devices in lspci's dump format, with decoded lines in between as `-vvv` adds them.
fn render(devices: &[DumpedDevice], decorations: bool) -> String {
    let mut text = String::new();
    for device in devices {
        text.push_str(&format!("{} {}\n", device.address, device.description));
        if decorations {
            text.push_str(
                "\tCapabilities: [40] Power Management version 3\n\t\tStatus: D0 NoSoftRst+\n",
            );
        }
        for (row, chunk) in device.config.chunks(16).enumerate() {
            let bytes: Vec<String> = chunk.iter().map(|byte| format!("{byte:02x}")).collect();
            text.push_str(&format!("{:02x}: {}\n", row * 16, bytes.join(" ")));
        }
        text.push('\n');
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4200)) {
        decode_checked(&bytes);
    }

    #[test]
    fn decode_keeps_its_invariants_on_mutated_real_dumps(
        pick in any::<prop::sample::Index>(),
        writes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
    ) {
        let mut bytes = REAL_IMAGES[pick.index(REAL_IMAGES.len())].clone();
        if !bytes.is_empty() {
            for (at, value) in writes {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
        }
        decode_checked(&bytes);
    }

    #[test]
    fn a_truncated_read_lists_a_prefix_of_the_full_chain(
        pick in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let full = &REAL_IMAGES[pick.index(REAL_IMAGES.len())];
        let cut = cut.index(full.len() + 1);
        let whole = list_of(&decode_checked(full));
        let part = list_of(&decode_checked(&full[..cut]));
        prop_assert!(whole.starts_with(&part), "{part:x?} is not a prefix of {whole:x?}");
    }

    #[test]
    fn parse_dump_never_panics(text in "\\PC{0,600}") {
        let _ = parse_dump(&text);
    }

    #[test]
    fn parse_dump_never_panics_on_dump_like_lines(
        lines in prop::collection::vec(
            prop_oneof![
                "[0-9a-f]{2}:[0-9a-f]{2}\\.[0-9] [a-z ]{0,10}",
                "[0-9a-f]{4,6}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-9a-f]",
                "[0-9a-f]{1,9}: ([0-9a-f]{1,3} ?){0,20}",
                "\t[A-Za-z]{0,12}",
                Just(String::new()),
            ],
            0..40,
        ),
    ) {
        let _ = parse_dump(&lines.join("\n"));
    }

    #[test]
    fn rendered_dumps_read_back_exactly(
        devices in prop::collection::vec(
            (address(), "[A-Za-z][A-Za-z0-9 :\\[\\]()-]{0,40}", prop::collection::vec(any::<u8>(), 0..=MAX_CONFIG_SIZE)),
            0..4,
        ),
        decorations in any::<bool>(),
    ) {
        let mut line = 1;
        let devices: Vec<DumpedDevice> = devices
            .into_iter()
            .map(|(address, description, config)| {
                let device = DumpedDevice { address, description, line, config };
                line += 2 + device.config.len().div_ceil(16) + if decorations { 2 } else { 0 };
                device
            })
            .collect();
        let parsed = parse_dump(&render(&devices, decorations)).unwrap();
        prop_assert_eq!(parsed, devices);
    }

    #[test]
    fn parse_resource_never_panics(text in "\\PC{0,400}") {
        if let Ok(resources) = parse_resource(&text) {
            let _ = (resources.mmio_total(), resources.mmio_64bit_prefetchable());
        }
    }

    #[test]
    fn parse_resource_reads_every_kernel_shaped_file(
        lines in prop::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 0..17),
    ) {
        let text: String = lines
            .iter()
            .map(|(start, end, flags)| format!("0x{start:016x} 0x{end:016x} 0x{flags:016x}\n"))
            .collect();
        let resources = parse_resource(&text);
        // Only a resource spanning all 2^64 addresses has a size that does not fit.
        let impossible = lines.iter().any(|&(start, end, _)| start == 0 && end == u64::MAX);
        prop_assert_eq!(resources.is_err(), impossible);
        let Ok(resources) = resources else { return Ok(()); };
        prop_assert!(resources.bars.len() <= 6);
        let _ = (resources.mmio_total(), resources.mmio_64bit_prefetchable());
        for bar in &resources.bars {
            let (start, end, _) = lines[usize::from(bar.index)];
            prop_assert!(bar.index <= 5);
            prop_assert_eq!((bar.start, bar.size), (start, end - start + 1));
        }
        for bar in &resources.vf_bars {
            let (start, end, flags) = lines[usize::from(bar.index)];
            prop_assert!((SRIOV_FIRST_INDEX..=SRIOV_LAST_INDEX).contains(&usize::from(bar.index)));
            prop_assert_eq!((bar.start, bar.size), (start, end - start + 1));
            prop_assert_eq!(bar.kind == BarKind::Io, flags & IORESOURCE_IO != 0);
        }
    }
}
