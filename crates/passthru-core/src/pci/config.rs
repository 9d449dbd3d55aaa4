//! Decoding PCI configuration space: the header and the capabilities passthrough cares about.
//!
//! Without `CAP_SYS_ADMIN` the kernel returns only the first 64 bytes of `config`, which hold
//! the header but not the capability list. The decoder never guesses: with 64 bytes it says
//! that capabilities need root ([`CapabilityReadout::NeedsRoot`]).

use serde::{Deserialize, Serialize};

/// The fields of the standard header (first 64 bytes) that passthru uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigHeader {
    /// Vendor id (offset 0x00).
    pub vendor: u16,
    /// Device id (offset 0x02).
    pub device: u16,
    /// Command register (offset 0x04); bit 10 = INTx disable.
    pub command: u16,
    /// Status register (offset 0x06); bit 4 = capability list present.
    pub status: u16,
    /// Revision id (offset 0x08).
    pub revision: u8,
    /// Class code (offsets 0x09..=0x0b).
    pub class: u32,
    /// Header type without the multifunction bit: 0 endpoint, 1 PCI bridge, 2 CardBus.
    pub header_type: u8,
    /// Multifunction bit of the header type.
    pub multifunction: bool,
    /// Interrupt pin (offset 0x3d): 0 = none, 1..=4 = INTA..INTD.
    pub interrupt_pin: u8,
}

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

/// A PCIe link's speed and width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Transfer rate in GT/s (2.5, 5, 8, 16, 32, 64), or 0 when unknown.
    pub speed_gts: f32,
    /// Lane count.
    pub width: u8,
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

/// Access Control Services extended capability (id 0x000d): capability and control bits.
///
/// Bit meanings (both registers): 0 Source Validation, 1 Translation Blocking, 2 P2P Request
/// Redirect, 3 P2P Completion Redirect, 4 Upstream Forwarding, 5 P2P Egress Control, 6 Direct
/// Translated P2P.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acs {
    /// Offset in config space.
    pub offset: u16,
    /// ACS Capability register (low 7 bits are the feature bits).
    pub capability: u16,
    /// ACS Control register.
    pub control: u16,
}

/// SR-IOV extended capability (id 0x0010).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sriov {
    /// Offset in config space.
    pub offset: u16,
    /// VF Enable in the SR-IOV control register.
    pub vf_enabled: bool,
    /// InitialVFs.
    pub initial_vfs: u16,
    /// TotalVFs.
    pub total_vfs: u16,
    /// NumVFs.
    pub num_vfs: u16,
    /// First VF offset.
    pub vf_offset: u16,
    /// VF stride.
    pub vf_stride: u16,
    /// VF device id.
    pub vf_device: u16,
}

/// One BAR of a Resizable BAR extended capability (id 0x0015).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizableBar {
    /// BAR index the entry controls.
    pub bar: u8,
    /// Supported sizes in bytes, smallest first.
    pub supported_sizes: Vec<u64>,
    /// Currently programmed size in bytes.
    pub current_size: u64,
}

/// One entry of the capability lists, in chain order (for display).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityEntry {
    /// Offset in config space.
    pub offset: u16,
    /// Capability id (extended ids are 16-bit).
    pub id: u16,
    /// Whether this is an extended (PCIe, offset ≥ 0x100) capability.
    pub extended: bool,
    /// Short name, e.g. `MSI-X` or `ACS`.
    pub name: String,
}

/// Everything decoded from a config space that had more than the 64-byte header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Bytes of config space that were readable (256 or 4096, or odd sizes from broken reads).
    pub bytes_read: usize,
    /// The standard header.
    pub header: ConfigHeader,
    /// All capabilities found, in chain order.
    pub list: Vec<CapabilityEntry>,
    /// PCI Express capability.
    pub pcie: Option<PcieCapability>,
    /// Power Management capability.
    pub power_management: Option<PowerManagement>,
    /// MSI capability.
    pub msi: Option<Msi>,
    /// MSI-X capability.
    pub msix: Option<Msix>,
    /// Advanced Features capability with FLR (conventional PCI devices).
    pub af_flr: bool,
    /// ACS extended capability.
    pub acs: Option<Acs>,
    /// SR-IOV extended capability.
    pub sriov: Option<Sriov>,
    /// Resizable BAR entries.
    pub resizable_bars: Vec<ResizableBar>,
    /// Problems found while walking the chains (loops, pointers out of range, garbage).
    pub problems: Vec<String>,
}

/// What could be learned from a `config` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum CapabilityReadout {
    /// Capabilities decoded.
    Decoded(Box<Capabilities>),
    /// Only the 64-byte header was readable: capabilities need root.
    NeedsRoot {
        /// The header, which is readable without privileges.
        header: Option<ConfigHeader>,
        /// Bytes readable.
        bytes_read: usize,
    },
    /// Nothing usable (file missing, unreadable, too short, or all `0xff`).
    Unavailable {
        /// Why, in words.
        reason: String,
    },
}

fn read_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

/// Decodes the standard header; `None` when fewer than 64 bytes are present.
pub fn decode_header(bytes: &[u8]) -> Option<ConfigHeader> {
    if bytes.len() < 64 {
        return None;
    }
    Some(ConfigHeader {
        vendor: read_u16(bytes, 0x00),
        device: read_u16(bytes, 0x02),
        command: read_u16(bytes, 0x04),
        status: read_u16(bytes, 0x06),
        revision: bytes[0x08],
        class: u32::from_le_bytes([bytes[0x09], bytes[0x0a], bytes[0x0b], 0]),
        header_type: bytes[0x0e] & 0x7f,
        multifunction: bytes[0x0e] & 0x80 != 0,
        interrupt_pin: bytes[0x3d],
    })
}

/// Decodes a config-space image (as read from sysfs `config`, or from an `lspci -xxxx` dump).
pub fn decode(bytes: &[u8]) -> CapabilityReadout {
    let Some(header) = decode_header(bytes) else {
        return CapabilityReadout::Unavailable {
            reason: format!("config space is only {} bytes long", bytes.len()),
        };
    };
    if header.vendor == 0xffff {
        return CapabilityReadout::Unavailable {
            reason:
                "config space reads all ones (device powered off, removed or after a failed reset)"
                    .to_owned(),
        };
    }
    if bytes.len() <= 64 {
        return CapabilityReadout::NeedsRoot {
            header: Some(header),
            bytes_read: bytes.len(),
        };
    }
    CapabilityReadout::Decoded(Box::new(Capabilities {
        bytes_read: bytes.len(),
        header,
        list: Vec::new(),
        pcie: None,
        power_management: None,
        msi: None,
        msix: None,
        af_flr: false,
        acs: None,
        sriov: None,
        resizable_bars: Vec::new(),
        problems: vec!["capability decoding is not implemented yet".to_owned()],
    }))
}
