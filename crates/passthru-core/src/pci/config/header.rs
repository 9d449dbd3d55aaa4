//! The standard 64-byte header every PCI function has.

use serde::{Deserialize, Serialize};

use super::image::ConfigImage;

/// Size of the standard header, and of what an unprivileged read of sysfs `config` returns.
pub const HEADER_SIZE: usize = 64;

/// Header type of an ordinary function (endpoint).
pub const HEADER_TYPE_ENDPOINT: u8 = 0;
/// Header type of a PCI-to-PCI bridge (root ports and switch ports included).
pub const HEADER_TYPE_BRIDGE: u8 = 1;
/// Header type of a CardBus bridge.
pub const HEADER_TYPE_CARDBUS: u8 = 2;

/// Status register bit 4: the function has a capability list.
const STATUS_CAPABILITY_LIST: u16 = 1 << 4;

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

impl ConfigHeader {
    /// Whether the status register announces a capability list.
    pub fn has_capability_list(&self) -> bool {
        self.status & STATUS_CAPABILITY_LIST != 0
    }

    /// Offset of the register holding the first capability pointer, for the header types
    /// that have one (0x34 for endpoints and bridges, 0x14 for CardBus bridges).
    pub fn capability_pointer_register(&self) -> Option<usize> {
        match self.header_type {
            HEADER_TYPE_ENDPOINT | HEADER_TYPE_BRIDGE => Some(0x34),
            HEADER_TYPE_CARDBUS => Some(0x14),
            _ => None,
        }
    }

    /// How many bytes an unprivileged reader gets for this function: the kernel
    /// (`pci_read_config` in `drivers/pci/pci-sysfs.c`) gives non-root readers 64 bytes, or
    /// 128 for CardBus bridges, whose header is longer.
    pub fn unprivileged_size(&self) -> usize {
        if self.header_type == HEADER_TYPE_CARDBUS {
            2 * HEADER_SIZE
        } else {
            HEADER_SIZE
        }
    }
}

/// Decodes the standard header; `None` when fewer than 64 bytes are present.
pub fn decode_header(bytes: &[u8]) -> Option<ConfigHeader> {
    let image = ConfigImage::new(bytes);
    if image.len() < HEADER_SIZE {
        return None;
    }
    let header_type = image.u8(0x0e)?;
    Some(ConfigHeader {
        vendor: image.u16(0x00)?,
        device: image.u16(0x02)?,
        command: image.u16(0x04)?,
        status: image.u16(0x06)?,
        revision: image.u8(0x08)?,
        class: image.u32(0x08)? >> 8,
        header_type: header_type & 0x7f,
        multifunction: header_type & 0x80 != 0,
        interrupt_pin: image.u8(0x3d)?,
    })
}
