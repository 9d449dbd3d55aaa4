//! Edge cases of the decoder. Agreement with lspci on real dumps is tested by
//! `tests/lspci_oracle.rs`; the spot checks on real dumps here keep the main facts covered
//! where lspci is not installed (values as `lspci -F FILE -vvv` prints them).

use super::*;
use crate::pci::dump::parse_dump;

fn config_of(dump: &str) -> Vec<u8> {
    let mut devices = parse_dump(dump).unwrap();
    assert_eq!(devices.len(), 1);
    devices.remove(0).config
}

fn decoded(bytes: &[u8]) -> Capabilities {
    match decode(bytes) {
        CapabilityReadout::Decoded(caps) => *caps,
        other => panic!("not decoded: {other:?}"),
    }
}

/// A 256-byte endpoint image with the capability list at 0x40 and the given capabilities
/// (offset, bytes); each capability's "next" byte is set by the caller.
fn image_with(capabilities: &[(usize, &[u8])]) -> Vec<u8> {
    let mut bytes = vec![0u8; 256];
    bytes[0..4].copy_from_slice(&[0x86, 0x80, 0x34, 0x12]);
    bytes[0x06] = 0x10; // capability list present
    bytes[0x34] = 0x40;
    for (offset, cap) in capabilities {
        bytes[*offset..offset + cap.len()].copy_from_slice(cap);
    }
    bytes
}

const GTX_550_TI: &str = include_str!(
    "../../../../../fixtures/pci-config/gpu/10de-1244_GF116-GeForce-GTX-550-Ti_h310_01-00.0.txt"
);
const I82576: &str = include_str!(
    "../../../../../fixtures/pci-config/net/8086-10c9_Device-10c9_pciutils-cap-pcie-2_01-00.0.txt"
);
const RX_5600_XT: &str = include_str!(
    "../../../../../fixtures/pci-config/gpu/1002-731f_Device_amd-gfx-2020-12-10_28-00.0.txt"
);
const HASWELL_ROOT_PORT: &str = include_str!(
    "../../../../../fixtures/pci-config/bridge/8086-2f02_Xeon-E7-v3-Xeon-E5-v3-Core-i7-PCI-Express-Root-P_x99qd4_00-01.0.txt"
);
const POWERED_OFF_AUDIO: &str = include_str!(
    "../../../../../fixtures/pci-config/audio/10de-0bea_GF108-HDMI-audio-powered-off-reads-ffff_e6430_01-00.1.txt"
);
const RS690_BROKEN_ECAPS: &str = include_str!(
    "../../../../../fixtures/pci-config/bridge/1002-7911_ATI-Technologies-Inc-RS690-Host-Bridge_pciutils-broken-ecaps_00-00.0.txt"
);

#[test]
fn a_discrete_gpu_decodes_like_lspci_shows_it() {
    let caps = decoded(&config_of(GTX_550_TI));
    assert_eq!(caps.bytes_read, 4096);
    let pcie = caps.pcie.as_ref().unwrap();
    assert_eq!(pcie.port_type, PciePortType::Endpoint);
    assert_eq!(pcie.version, 2);
    assert!(!pcie.flr);
    assert!(!caps.supports_flr());
    let pm = caps.power_management.as_ref().unwrap();
    assert_eq!((pm.offset, pm.version, pm.no_soft_reset), (0x60, 3, true));
    let msi = caps.msi.as_ref().unwrap();
    assert_eq!(msi.offset, 0x68);
    assert!(caps.acs.is_none() && caps.sriov.is_none() && caps.resizable_bars.is_empty());
    assert_eq!(
        caps.list.first().map(|entry| entry.name.as_str()),
        Some("Power Management")
    );
    assert!(caps.problems.is_empty(), "{:?}", caps.problems);
}

#[test]
fn an_sriov_nic_decodes_vfs_msix_and_flr() {
    let caps = decoded(&config_of(I82576));
    assert!(caps.pcie.as_ref().unwrap().flr);
    let msix = caps.msix.as_ref().unwrap();
    assert_eq!(
        (msix.offset, msix.enabled, msix.table_size),
        (0x70, true, 10)
    );
    let msi = caps.msi.as_ref().unwrap();
    assert_eq!(
        (
            msi.enabled,
            msi.vectors,
            msi.per_vector_masking,
            msi.address_64bit
        ),
        (false, 1, true, true)
    );
    let sriov = caps.sriov.as_ref().unwrap();
    assert_eq!(
        *sriov,
        Sriov {
            offset: 0x160,
            vf_enabled: true,
            initial_vfs: 8,
            total_vfs: 8,
            num_vfs: 1,
            vf_offset: 384,
            vf_stride: 2,
            vf_device: 0x10ca,
        }
    );
    let names: Vec<&str> = caps.list.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Power Management",
            "MSI",
            "MSI-X",
            "PCI Express",
            "AER",
            "Device Serial Number",
            "ARI",
            "SR-IOV"
        ]
    );
}

#[test]
fn resizable_bar_and_acs_of_a_navi_gpu() {
    let caps = decoded(&config_of(RX_5600_XT));
    assert_eq!(
        caps.resizable_bars,
        vec![
            // Resized to 8 GiB by a kernel patch, beyond what the card claims to support.
            ResizableBar {
                bar: 0,
                supported_sizes: vec![256 << 20, 512 << 20, 1 << 30],
                current_size: 8 << 30,
            },
            ResizableBar {
                bar: 2,
                supported_sizes: (1..=8).map(|shift| 1u64 << (20 + shift)).collect(),
                current_size: 256 << 20,
            },
        ]
    );
    let acs = caps.acs.as_ref().unwrap();
    assert_eq!(
        (acs.offset, acs.capability & 0x7f, acs.control),
        (0x2a0, 0, 0)
    );
    let pcie = caps.pcie.as_ref().unwrap();
    assert_eq!(pcie.port_type, PciePortType::LegacyEndpoint);
    assert_eq!(
        pcie.link_status,
        Some(LinkInfo {
            speed_gts: 16.0,
            width: 16
        })
    );
}

#[test]
fn a_root_port_decodes_acs_slot_and_link() {
    let caps = decoded(&config_of(HASWELL_ROOT_PORT));
    let pcie = caps.pcie.as_ref().unwrap();
    assert_eq!(pcie.port_type, PciePortType::RootPort);
    let acs = caps.acs.as_ref().unwrap();
    let redirect = Acs::SOURCE_VALIDATION
        | Acs::P2P_REQUEST_REDIRECT
        | Acs::P2P_COMPLETION_REDIRECT
        | Acs::UPSTREAM_FORWARDING;
    assert_eq!(acs.capability & redirect, redirect);
    assert!(pcie.link_capability.is_some() && pcie.link_status.is_some());
}

#[test]
fn all_ones_is_unavailable_with_a_reason() {
    let CapabilityReadout::Unavailable { reason } = decode(&config_of(POWERED_OFF_AUDIO)) else {
        panic!("all-ones config must be unavailable");
    };
    assert!(reason.contains("powered off"), "{reason}");
}

#[test]
fn the_64_byte_header_alone_needs_root_and_shorter_is_unavailable() {
    let full = config_of(GTX_550_TI);
    let CapabilityReadout::NeedsRoot { header, bytes_read } = decode(&full[..64]) else {
        panic!("64 bytes must need root");
    };
    assert_eq!(bytes_read, 64);
    let header = header.unwrap();
    assert_eq!(
        (header.vendor, header.device, header.class),
        (0x10de, 0x1244, 0x030000)
    );
    assert!(header.multifunction);
    assert!(matches!(
        decode(&full[..63]),
        CapabilityReadout::Unavailable { .. }
    ));
    assert!(matches!(decode(&[]), CapabilityReadout::Unavailable { .. }));
}

#[test]
fn a_cardbus_bridge_read_without_root_needs_root() {
    let mut bytes = vec![0u8; 128];
    bytes[0..2].copy_from_slice(&[0x4c, 0x10]);
    bytes[0x0e] = HEADER_TYPE_CARDBUS;
    assert!(matches!(
        decode(&bytes),
        CapabilityReadout::NeedsRoot {
            bytes_read: 128,
            ..
        }
    ));
    bytes.resize(256, 0);
    assert!(matches!(decode(&bytes), CapabilityReadout::Decoded(_)));
}

#[test]
fn odd_sizes_decode_what_is_there_and_say_what_is_cut_off() {
    let full = config_of(I82576);
    // MSI-X at 0x70 is complete at 0x74; the PCI Express capability at 0xa0 is not.
    let caps = decoded(&full[..0xa4]);
    assert!(caps.msix.is_some());
    let pcie = caps.pcie.as_ref().unwrap();
    assert!(!pcie.flr && pcie.link_status.is_none());
    assert!(
        caps.problems.iter().any(|p| p.contains("cut off")),
        "{:?}",
        caps.problems
    );
    // A 0x161-byte image ends inside the SR-IOV capability's header.
    let caps = decoded(&full[..0x161]);
    assert!(caps.sriov.is_none());
    assert!(
        caps.problems.iter().any(|p| p.contains("beyond")),
        "{:?}",
        caps.problems
    );
}

#[test]
fn a_looping_standard_list_stops_with_a_problem() {
    let bytes = image_with(&[
        (0x40, &[0x05, 0x50, 0x00, 0x00]),
        (0x50, &[0x01, 0x40, 0x03, 0x00, 0x08, 0x00]),
    ]);
    let caps = decoded(&bytes);
    assert_eq!(caps.list.len(), 2);
    assert!(caps.power_management.as_ref().unwrap().no_soft_reset);
    assert!(
        caps.problems[0].contains("loops back to 0x40"),
        "{:?}",
        caps.problems
    );
}

#[test]
fn pointers_into_the_header_and_broken_ids_stop_the_walk() {
    let caps = decoded(&image_with(&[(0x40, &[0x05, 0x10, 0x00, 0x00])]));
    assert_eq!(caps.list.len(), 1);
    assert!(
        caps.problems[0].contains("into the 64-byte header"),
        "{:?}",
        caps.problems
    );
    let caps = decoded(&image_with(&[
        (0x40, &[0x05, 0x48, 0x00, 0x00]),
        (0x48, &[0xff, 0x00]),
    ]));
    assert_eq!(caps.list.len(), 1);
    assert!(caps.problems[0].contains("id 0xff"), "{:?}", caps.problems);
}

#[test]
fn duplicate_capabilities_keep_the_first() {
    let caps = decoded(&image_with(&[
        (0x40, &[0x11, 0x50, 0x03, 0x80]),
        (0x50, &[0x11, 0x00, 0x00, 0x00]),
    ]));
    let msix = caps.msix.as_ref().unwrap();
    assert_eq!(
        (msix.offset, msix.enabled, msix.table_size),
        (0x40, true, 4)
    );
    assert!(
        caps.problems[0].contains("second MSI-X"),
        "{:?}",
        caps.problems
    );
}

#[test]
fn advanced_features_flr_counts_as_flr() {
    let caps = decoded(&image_with(&[(0x40, &[0x13, 0x00, 0x06, 0x03])]));
    assert!(caps.af_flr && caps.supports_flr());
    // FLR without Transactions Pending: the kernel does not use it.
    let caps = decoded(&image_with(&[(0x40, &[0x13, 0x00, 0x06, 0x02])]));
    assert!(!caps.af_flr && !caps.supports_flr());
}

#[test]
fn msi_vector_counts_follow_multiple_message_capable() {
    for (field, vectors) in [(0u8, 1u8), (1, 2), (5, 32), (7, 128)] {
        let caps = decoded(&image_with(&[(0x40, &[0x05, 0x00, field << 1, 0x00])]));
        assert_eq!(caps.msi.unwrap().vectors, vectors);
    }
}

#[test]
fn integrated_endpoints_have_no_link_and_slots_belong_to_downstream_ports() {
    // Root-complex integrated endpoint (type 9) with the slot bit set: no link, no slot.
    let caps = decoded(&image_with(&[(
        0x40,
        &[0x10, 0x00, 0x92, 0x01, 0, 0, 0, 0x10],
    )]));
    let pcie = caps.pcie.unwrap();
    assert_eq!(pcie.port_type, PciePortType::RootComplexIntegratedEndpoint);
    assert!(pcie.flr && !pcie.slot_implemented && pcie.link_status.is_none());
    // Downstream switch port (type 6) with a slot, link 8 GT/s x4.
    let caps = decoded(&image_with(&[(
        0x40,
        &[
            0x10, 0x00, 0x62, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x43, 0, 0, 0, 0, 0, 0x43, 0,
        ],
    )]));
    let pcie = caps.pcie.unwrap();
    assert!(pcie.slot_implemented);
    assert_eq!(
        pcie.link_capability,
        Some(LinkInfo {
            speed_gts: 8.0,
            width: 4
        })
    );
    assert_eq!(pcie.port_type, PciePortType::DownstreamPort);
}

/// A 4096-byte PCI Express endpoint image with the given extended capabilities.
fn extended_image(capabilities: &[(usize, u32, &[u8])]) -> Vec<u8> {
    let mut bytes = image_with(&[(0x40, &[0x10, 0x00, 0x02, 0x00])]);
    bytes.resize(4096, 0);
    for (offset, header, body) in capabilities {
        bytes[*offset..offset + 4].copy_from_slice(&header.to_le_bytes());
        bytes[offset + 4..offset + 4 + body.len()].copy_from_slice(body);
    }
    bytes
}

/// Extended capability header: id, version 1, next.
fn ext(id: u32, next: u32) -> u32 {
    id | 1 << 16 | next << 20
}

#[test]
fn a_mirrored_extended_space_is_not_walked() {
    // The RS690 host bridge mirrors its header at 0x100; read as a list it is garbage
    // (id 0x1002, next 0x790). Give it a PCI Express capability so that it would be walked.
    let mut bytes = config_of(RS690_BROKEN_ECAPS);
    bytes[0x06] |= 0x10;
    bytes[0x34] = 0x40;
    bytes[0x40..0x44].copy_from_slice(&[0x10, 0x00, 0x02, 0x00]);
    let caps = decoded(&bytes);
    assert!(
        caps.list.iter().all(|entry| !entry.extended),
        "{:?}",
        caps.list
    );
    assert!(
        caps.problems
            .iter()
            .any(|p| p.contains("mirrors the header")),
        "{:?}",
        caps.problems
    );
    // Break the mirror at 0x200 and the garbage is walked as a list, with the guards holding:
    // 0x100 reads as id 0x1002 pointing to 0x790, which holds a copy of header offset 0x90.
    bytes[0x200] ^= 0xff;
    let caps = decoded(&bytes);
    let extended: Vec<(u16, u16)> = caps
        .list
        .iter()
        .filter(|entry| entry.extended)
        .map(|entry| (entry.offset, entry.id))
        .collect();
    assert_eq!(extended.first(), Some(&(0x100, 0x1002)), "{extended:x?}");
    assert!(
        caps.list
            .iter()
            .all(|entry| usize::from(entry.offset) + 4 <= bytes.len())
    );
    // As shipped (no capability list, so no PCI Express) nothing is walked and nothing is wrong.
    let caps = decoded(&config_of(RS690_BROKEN_ECAPS));
    assert!(caps.list.is_empty() && caps.problems.is_empty(), "{caps:?}");
}

#[test]
fn a_looping_or_backward_extended_list_stops_with_a_problem() {
    let caps = decoded(&extended_image(&[
        (0x100, ext(0x01, 0x140), &[]),
        (0x140, ext(0x03, 0x100), &[]),
    ]));
    assert_eq!(caps.list.iter().filter(|entry| entry.extended).count(), 2);
    assert!(
        caps.problems[0].contains("loops back to 0x100"),
        "{:?}",
        caps.problems
    );
    let caps = decoded(&extended_image(&[(0x100, ext(0x01, 0x040), &[])]));
    assert!(
        caps.problems[0].contains("below 0x100"),
        "{:?}",
        caps.problems
    );
    let mut bytes = extended_image(&[(0x100, ext(0x01, 0x200), &[])]);
    bytes[0x200..0x204].fill(0xff);
    assert!(decoded(&bytes).problems[0].contains("all ones"));
    let bytes = extended_image(&[(0x100, ext(0x01, 0xffc), &[])]);
    assert!(decoded(&bytes[..0xffe]).problems[0].contains("beyond"));
}

#[test]
fn resizable_bar_entries_decode_sizes_and_reject_nonsense() {
    // Two BARs: BAR 0 supports 256 MiB..16 GiB and 256 TiB, is 16 GiB; BAR 2 supports 1 MiB,
    // has an undefined current size.
    let bar0_cap = (0x1fu32 << 8) << 4;
    let bar0_ctl = 0x0001_0000 | 14 << 8 | 2 << 5;
    let bar2_cap = 1u32 << 4;
    let bar2_ctl = 63 << 8 | 2;
    let mut body = Vec::new();
    for word in [bar0_cap, bar0_ctl, bar2_cap, bar2_ctl] {
        body.extend_from_slice(&word.to_le_bytes());
    }
    let caps = decoded(&extended_image(&[(0x100, ext(0x15, 0), &body)]));
    assert_eq!(caps.resizable_bars.len(), 2);
    assert_eq!(caps.resizable_bars[0].bar, 0);
    assert_eq!(caps.resizable_bars[0].current_size, 16 << 30);
    assert_eq!(
        caps.resizable_bars[0].supported_sizes,
        vec![256 << 20, 512 << 20, 1 << 30, 2 << 30, 4 << 30, 1 << 48]
    );
    assert_eq!(caps.resizable_bars[1].bar, 2);
    assert_eq!(caps.resizable_bars[1].current_size, 0);
    assert!(
        caps.problems[0].contains("undefined size code 63"),
        "{:?}",
        caps.problems
    );

    let zero_bars = 0u32.to_le_bytes().repeat(2);
    let caps = decoded(&extended_image(&[(0x100, ext(0x15, 0), &zero_bars)]));
    assert!(caps.resizable_bars.is_empty());
    assert!(
        caps.problems[0].contains("claims 0 BARs"),
        "{:?}",
        caps.problems
    );
}

#[test]
fn capability_names_cover_known_and_unknown_ids() {
    assert_eq!(names::standard(0x10), "PCI Express");
    assert_eq!(names::standard(0x7a), "Unknown 0x7a");
    assert_eq!(names::extended(0x0015), "Resizable BAR");
    assert_eq!(names::extended(0x1234), "Unknown 0x1234");
}
