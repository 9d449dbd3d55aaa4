//! The standard capability list (offsets 0x40..=0xff) and the capabilities passthru decodes
//! from it: PCI Express, Power Management, MSI, MSI-X and Advanced Features.
//!
//! Register layouts: PCI Local Bus Specification 3.0 §6.7 (list), §6.8 (MSI/MSI-X); PCI Bus
//! Power Management Interface Specification 1.2 §3.2; PCI Express Base Specification (rev. 6.0)
//! §7.5.3 "PCI Express Capability Structure"; PCI Advanced Features ECN.

use serde::{Deserialize, Serialize};

use super::header::{ConfigHeader, HEADER_SIZE};
use super::image::ConfigImage;
use super::{Capabilities, CapabilityEntry, decode_once, names, truncated};

const ID_POWER_MANAGEMENT: u8 = 0x01;
const ID_MSI: u8 = 0x05;
const ID_PCIX: u8 = 0x07;
const ID_PCI_EXPRESS: u8 = 0x10;
const ID_MSIX: u8 = 0x11;
const ID_ADVANCED_FEATURES: u8 = 0x13;

/// End of the conventional config space; the standard list lives below it.
const STANDARD_SPACE_END: usize = 0x100;

/// PCI Express device/port type (PCIe capability register bits 7:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PciePortType {
    /// PCI Express endpoint.
    Endpoint,
    /// Legacy PCI Express endpoint.
    LegacyEndpoint,
    /// Root complex integrated endpoint.
    RootComplexIntegratedEndpoint,
    /// Root complex event collector.
    RootComplexEventCollector,
    /// Root port of a root complex.
    RootPort,
    /// Upstream port of a switch.
    UpstreamPort,
    /// Downstream port of a switch.
    DownstreamPort,
    /// PCI Express to PCI/PCI-X bridge.
    PcieToPciBridge,
    /// PCI/PCI-X to PCI Express bridge.
    PciToPcieBridge,
    /// A value the specification does not define.
    Unknown(u8),
}

impl PciePortType {
    /// Decodes the 4-bit Device/Port Type field.
    pub fn from_field(value: u8) -> Self {
        match value {
            0x0 => Self::Endpoint,
            0x1 => Self::LegacyEndpoint,
            0x4 => Self::RootPort,
            0x5 => Self::UpstreamPort,
            0x6 => Self::DownstreamPort,
            0x7 => Self::PcieToPciBridge,
            0x8 => Self::PciToPcieBridge,
            0x9 => Self::RootComplexIntegratedEndpoint,
            0xa => Self::RootComplexEventCollector,
            other => Self::Unknown(other),
        }
    }

    /// Whether the function has a PCI Express link of its own. Root-complex integrated
    /// endpoints and event collectors sit inside the root complex and have none (their link
    /// registers are reserved).
    pub fn has_link(self) -> bool {
        !matches!(
            self,
            Self::RootComplexIntegratedEndpoint | Self::RootComplexEventCollector
        )
    }

    /// Whether the type is a downstream-facing port, the only kind for which the Slot
    /// Implemented bit is defined (PCIe Base §7.5.3.2).
    pub fn is_downstream_port(self) -> bool {
        matches!(
            self,
            Self::RootPort | Self::DownstreamPort | Self::PciToPcieBridge
        )
    }
}

/// A PCIe link's speed and width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Transfer rate in GT/s (2.5, 5, 8, 16, 32, 64), or 0 when unknown.
    pub speed_gts: f32,
    /// Lane count.
    pub width: u8,
}

impl LinkInfo {
    /// Decodes the speed (bits 3:0) and width (bits 9:4) fields that Link Capabilities and
    /// Link Status share. Speed codes 1..=6 are 2.5 to 64 GT/s; the kernel
    /// (`pcie_link_speed[]`) and lspci read them the same way.
    pub fn from_register(register: u32) -> Self {
        let speed_gts = match register & 0xf {
            1 => 2.5,
            2 => 5.0,
            3 => 8.0,
            4 => 16.0,
            5 => 32.0,
            6 => 64.0,
            _ => 0.0,
        };
        Self {
            speed_gts,
            width: ((register >> 4) & 0x3f) as u8,
        }
    }
}

/// The PCI Express capability (id 0x10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcieCapability {
    /// Offset in config space.
    pub offset: u16,
    /// Capability version (1 or 2).
    pub version: u8,
    /// Device/port type.
    pub port_type: PciePortType,
    /// Function Level Reset supported (DevCap bit 28).
    pub flr: bool,
    /// Slot implemented (ports only).
    pub slot_implemented: bool,
    /// Link capability (maximum speed/width), when the function has a link.
    pub link_capability: Option<LinkInfo>,
    /// Link status (negotiated speed/width), when the function has a link.
    pub link_status: Option<LinkInfo>,
}

/// Power Management capability (id 0x01).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerManagement {
    /// Offset in config space.
    pub offset: u16,
    /// PM specification version.
    pub version: u8,
    /// No_Soft_Reset (PMCSR bit 3): D3hot→D0 does not reset the function, so a PM reset is
    /// not a reset.
    pub no_soft_reset: bool,
}

/// MSI capability (id 0x05).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msi {
    /// Offset in config space.
    pub offset: u16,
    /// MSI enabled.
    pub enabled: bool,
    /// Vectors the function can request (Multiple Message Capable, as a count).
    pub vectors: u8,
    /// 64-bit message address.
    pub address_64bit: bool,
    /// Per-vector masking.
    pub per_vector_masking: bool,
}

/// MSI-X capability (id 0x11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msix {
    /// Offset in config space.
    pub offset: u16,
    /// MSI-X enabled.
    pub enabled: bool,
    /// Table size (number of vectors).
    pub table_size: u16,
}

/// Walks the standard capability list into `caps` and returns whether the function can have
/// extended capabilities (it has a PCI Express or PCI-X capability, as lspci and the kernel's
/// `pci_cfg_space_size()` require).
///
/// Guards, after the kernel's `__pci_find_next_cap_ttl()`: pointers have their two low bits
/// masked, a pointer below 0x40 (into the header) or past the image ends the walk, an id of
/// 0xff (a read of absent hardware) ends it, and a pointer seen before (a loop) ends it.
pub(super) fn walk(image: ConfigImage<'_>, header: &ConfigHeader, caps: &mut Capabilities) -> bool {
    let mut can_have_extended = false;
    if !header.has_capability_list() {
        return false;
    }
    let Some(pointer_register) = header.capability_pointer_register() else {
        caps.problems.push(format!(
            "header type {:#04x} is not defined by the specification; its capabilities were not read",
            header.header_type
        ));
        return false;
    };
    let mut visited = [false; STANDARD_SPACE_END];
    let mut offset = usize::from(image.u8(pointer_register).unwrap_or(0) & !3);
    while offset != 0 {
        if offset < HEADER_SIZE {
            caps.problems.push(format!(
                "capability pointer {offset:#04x} points into the 64-byte header; the rest of the list was ignored"
            ));
            break;
        }
        if visited[offset] {
            caps.problems.push(format!(
                "capability list loops back to {offset:#04x}; the rest of the list was ignored"
            ));
            break;
        }
        visited[offset] = true;
        let (Some(id), Some(next)) = (image.u8(offset), image.u8(offset + 1)) else {
            caps.problems.push(format!(
                "capability at {offset:#04x} lies beyond the {} bytes read; the rest of the list is unknown",
                image.len()
            ));
            break;
        };
        if id == 0xff {
            caps.problems.push(format!(
                "capability list is broken at {offset:#04x} (id 0xff); the rest of the list was ignored"
            ));
            break;
        }
        caps.list.push(CapabilityEntry {
            offset: offset as u16,
            id: u16::from(id),
            extended: false,
            name: names::standard(id),
        });
        match id {
            ID_POWER_MANAGEMENT => decode_once(caps, image, offset, "Power Management", |caps| {
                let pm = power_management(image, offset)?;
                Some(caps.power_management.get_or_insert(pm).offset)
            }),
            ID_MSI => decode_once(caps, image, offset, "MSI", |caps| {
                let msi = msi(image, offset)?;
                Some(caps.msi.get_or_insert(msi).offset)
            }),
            ID_MSIX => decode_once(caps, image, offset, "MSI-X", |caps| {
                let msix = msix(image, offset)?;
                Some(caps.msix.get_or_insert(msix).offset)
            }),
            ID_PCI_EXPRESS => {
                can_have_extended = true;
                decode_once(caps, image, offset, "PCI Express", |caps| {
                    let pcie = pci_express(image, offset, &mut caps.problems)?;
                    Some(caps.pcie.get_or_insert(pcie).offset)
                });
            }
            ID_PCIX => can_have_extended = true,
            // The kernel's `pci_af_flr()` uses AF FLR only when Transactions Pending (bit 0)
            // is supported as well, because it waits on it before resetting.
            ID_ADVANCED_FEATURES => match image.u8(offset + 3) {
                Some(af_capabilities) => caps.af_flr |= af_capabilities & 0x03 == 0x03,
                None => caps
                    .problems
                    .push(truncated("Advanced Features", offset, image)),
            },
            _ => {}
        }
        offset = usize::from(next & !3);
    }
    can_have_extended
}

fn power_management(image: ConfigImage<'_>, offset: usize) -> Option<PowerManagement> {
    let capabilities = image.u16(offset + 2)?;
    let control_status = image.u16(offset + 4)?;
    Some(PowerManagement {
        offset: offset as u16,
        version: (capabilities & 0x7) as u8,
        no_soft_reset: control_status & 0x0008 != 0,
    })
}

fn msi(image: ConfigImage<'_>, offset: usize) -> Option<Msi> {
    let control = image.u16(offset + 2)?;
    let multiple_message_capable = (control >> 1) & 0x7;
    Some(Msi {
        offset: offset as u16,
        enabled: control & 0x0001 != 0,
        // Encodings 6 and 7 are reserved; 1 << 7 = 128 still fits and is what lspci shows.
        vectors: 1u8 << multiple_message_capable,
        address_64bit: control & 0x0080 != 0,
        per_vector_masking: control & 0x0100 != 0,
    })
}

fn msix(image: ConfigImage<'_>, offset: usize) -> Option<Msix> {
    let control = image.u16(offset + 2)?;
    Some(Msix {
        offset: offset as u16,
        enabled: control & 0x8000 != 0,
        table_size: (control & 0x07ff) + 1,
    })
}

/// Register offsets inside the PCI Express capability.
const PCIE_DEVICE_CAPABILITIES: usize = 0x04;
const PCIE_LINK_CAPABILITIES: usize = 0x0c;
const PCIE_LINK_STATUS: usize = 0x12;
/// DevCap bit 28: Function Level Reset Capability.
const DEVCAP_FLR: u32 = 1 << 28;

fn pci_express(
    image: ConfigImage<'_>,
    offset: usize,
    problems: &mut Vec<String>,
) -> Option<PcieCapability> {
    let flags = image.u16(offset + 2)?;
    let port_type = PciePortType::from_field(((flags >> 4) & 0xf) as u8);
    let device_capabilities = image.u32(offset + PCIE_DEVICE_CAPABILITIES);
    let link = |register: usize, width: usize| {
        let value = match width {
            4 => image.u32(offset + register),
            _ => image.u16(offset + register).map(u32::from),
        };
        value.map(LinkInfo::from_register)
    };
    let (link_capability, link_status) = if port_type.has_link() {
        (link(PCIE_LINK_CAPABILITIES, 4), link(PCIE_LINK_STATUS, 2))
    } else {
        (None, None)
    };
    let link_cut_off = port_type.has_link() && link_status.is_none();
    if device_capabilities.is_none() || link_cut_off {
        problems.push(truncated("PCI Express", offset, image));
    }
    Some(PcieCapability {
        offset: offset as u16,
        version: (flags & 0xf) as u8,
        port_type,
        flr: device_capabilities.is_some_and(|devcap| devcap & DEVCAP_FLR != 0),
        slot_implemented: port_type.is_downstream_port() && flags & 0x0100 != 0,
        link_capability,
        link_status,
    })
}
