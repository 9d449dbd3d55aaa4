//! The extended capability list (offsets 0x100..=0xfff, PCI Express only) and the capabilities
//! passthru decodes from it: ACS, SR-IOV and Resizable BAR.
//!
//! Register layouts: PCI Express Base Specification (rev. 6.0) §7.6 "PCI Express Extended
//! Capabilities" (list), §7.7.8 "ACS Extended Capability", §9.3.3 "SR-IOV Extended
//! Capability", §7.8.6 "Resizable BAR Extended Capability".

use serde::{Deserialize, Serialize};

use super::image::ConfigImage;
use super::{Capabilities, CapabilityEntry, decode_once, names, truncated};

const ID_ACS: u16 = 0x000d;
const ID_SRIOV: u16 = 0x0010;
const ID_RESIZABLE_BAR: u16 = 0x0015;

/// Where the extended list starts.
const EXTENDED_START: usize = 0x100;
/// End of the extended config space.
const EXTENDED_END: usize = 0x1000;

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

impl Acs {
    /// ACS Source Validation.
    pub const SOURCE_VALIDATION: u16 = 1 << 0;
    /// ACS Translation Blocking.
    pub const TRANSLATION_BLOCKING: u16 = 1 << 1;
    /// ACS P2P Request Redirect.
    pub const P2P_REQUEST_REDIRECT: u16 = 1 << 2;
    /// ACS P2P Completion Redirect.
    pub const P2P_COMPLETION_REDIRECT: u16 = 1 << 3;
    /// ACS Upstream Forwarding.
    pub const UPSTREAM_FORWARDING: u16 = 1 << 4;
    /// ACS P2P Egress Control.
    pub const P2P_EGRESS_CONTROL: u16 = 1 << 5;
    /// ACS Direct Translated P2P.
    pub const DIRECT_TRANSLATED_P2P: u16 = 1 << 6;
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

/// Walks the extended capability list into `caps`.
///
/// Guards, after the kernel's `pci_find_next_ext_capability()` and `pci_cfg_space_size()`:
/// an image of 256 bytes or less has no extended space; a first header of 0 or all ones means
/// no extended capabilities; a device that repeats its 256 bytes through the extended space
/// has none either (the RS690 host bridge in the fixtures does this, which read as a list is
/// garbage); pointers below 0x100, past the image or seen before end the walk, and so does a
/// header that reads all ones.
pub(super) fn walk(image: ConfigImage<'_>, caps: &mut Capabilities) {
    if image.len() <= EXTENDED_START {
        return;
    }
    let Some(first) = image.u32(EXTENDED_START) else {
        caps.problems.push(format!(
            "extended config space is cut off at {} bytes; extended capabilities are unknown",
            image.len()
        ));
        return;
    };
    if first == 0 || first == u32::MAX {
        return;
    }
    if mirrors_header(image) {
        caps.problems.push(
            "extended config space mirrors the header (the device decodes only 256 bytes); \
             it has no extended capabilities"
                .to_owned(),
        );
        return;
    }
    let mut visited = [false; EXTENDED_END / 4];
    let mut offset = EXTENDED_START;
    loop {
        let Some(header) = image.u32(offset) else {
            caps.problems.push(format!(
                "extended capability at {offset:#05x} lies beyond the {} bytes read; the rest of the list is unknown",
                image.len()
            ));
            return;
        };
        if header == u32::MAX {
            caps.problems.push(format!(
                "extended capability list is broken at {offset:#05x} (reads all ones); the rest of the list was ignored"
            ));
            return;
        }
        if header == 0 {
            // lspci and the kernel both end the list silently here.
            return;
        }
        let slot = &mut visited[offset / 4];
        if *slot {
            caps.problems.push(format!(
                "extended capability list loops back to {offset:#05x}; the rest of the list was ignored"
            ));
            return;
        }
        *slot = true;
        let id = (header & 0xffff) as u16;
        caps.list.push(CapabilityEntry {
            offset: offset as u16,
            id,
            extended: true,
            name: names::extended(id),
        });
        match id {
            ID_ACS => decode_once(caps, image, offset, "ACS", |caps| {
                let acs = acs(image, offset)?;
                Some(caps.acs.get_or_insert(acs).offset)
            }),
            ID_SRIOV => decode_once(caps, image, offset, "SR-IOV", |caps| {
                let sriov = sriov(image, offset)?;
                Some(caps.sriov.get_or_insert(sriov).offset)
            }),
            ID_RESIZABLE_BAR => resizable_bar(image, offset, caps),
            _ => {}
        }
        let next = ((header >> 20) & 0xffc) as usize;
        if next == 0 {
            return;
        }
        if next < EXTENDED_START {
            caps.problems.push(format!(
                "extended capability at {offset:#05x} points back to {next:#04x}, below 0x100; the rest of the list was ignored"
            ));
            return;
        }
        offset = next;
    }
}

/// Whether every 256-byte block of the extended space starts with the header's first dword,
/// the kernel's test for a device that decodes only 256 bytes and repeats them
/// (`pci_ext_cfg_is_aliased()` in `drivers/pci/probe.c`). Blocks past the image are not
/// compared.
fn mirrors_header(image: ConfigImage<'_>) -> bool {
    let header = image.u32(0);
    (EXTENDED_START..EXTENDED_END)
        .step_by(EXTENDED_START)
        .map_while(|block| image.u32(block))
        .all(|dword| Some(dword) == header)
}

fn acs(image: ConfigImage<'_>, offset: usize) -> Option<Acs> {
    Some(Acs {
        offset: offset as u16,
        capability: image.u16(offset + 4)?,
        control: image.u16(offset + 6)?,
    })
}

fn sriov(image: ConfigImage<'_>, offset: usize) -> Option<Sriov> {
    Some(Sriov {
        offset: offset as u16,
        vf_enabled: image.u16(offset + 0x08)? & 0x0001 != 0,
        initial_vfs: image.u16(offset + 0x0c)?,
        total_vfs: image.u16(offset + 0x0e)?,
        num_vfs: image.u16(offset + 0x10)?,
        vf_offset: image.u16(offset + 0x14)?,
        vf_stride: image.u16(offset + 0x16)?,
        vf_device: image.u16(offset + 0x1a)?,
    })
}

/// Smallest size a Resizable BAR can have: 1 MiB (capability bit 4, size code 0).
const REBAR_MIN_SHIFT: u32 = 20;
/// Size codes above this would not fit a `u64` (code 43 = 2^63 bytes).
const REBAR_MAX_SIZE_CODE: u32 = 63 - REBAR_MIN_SHIFT;

/// Decodes every entry of a Resizable BAR capability. Each entry is a capability dword
/// (bits 31:4 = 1 MiB .. 128 TiB supported) and a control dword (bits 2:0 BAR index, 7:5 the
/// number of entries, valid in the first entry only, 13:8 the current size code, 31:16 the
/// supported sizes 256 TiB .. 8 EiB added by the PCIe 5.0 ECN).
fn resizable_bar(image: ConfigImage<'_>, offset: usize, caps: &mut Capabilities) {
    if !caps.resizable_bars.is_empty() {
        caps.problems.push(format!(
            "second Resizable BAR capability at {offset:#05x} ignored"
        ));
        return;
    }
    let Some(first_control) = image.u32(offset + 8) else {
        caps.problems
            .push(truncated("Resizable BAR", offset, image));
        return;
    };
    let count = (first_control >> 5) & 0x7;
    if !(1..=6).contains(&count) {
        caps.problems.push(format!(
            "Resizable BAR capability at {offset:#05x} claims {count} BARs (1 to 6 are valid); it was ignored"
        ));
        return;
    }
    for entry in 0..count as usize {
        let entry_offset = offset + 4 + 8 * entry;
        let (Some(capability), Some(control)) =
            (image.u32(entry_offset), image.u32(entry_offset + 4))
        else {
            caps.problems
                .push(truncated("Resizable BAR", offset, image));
            return;
        };
        let low_sizes = (0..28).filter(|bit| capability >> (4 + bit) & 1 != 0);
        let high_sizes = (0..16)
            .filter(|bit| control >> (16 + bit) & 1 != 0)
            .map(|bit| bit + 28);
        let supported_sizes = low_sizes
            .chain(high_sizes)
            .map(|code| 1u64 << (REBAR_MIN_SHIFT + code))
            .collect();
        let size_code = (control >> 8) & 0x3f;
        let current_size = if size_code <= REBAR_MAX_SIZE_CODE {
            1u64 << (REBAR_MIN_SHIFT + size_code)
        } else {
            caps.problems.push(format!(
                "Resizable BAR entry {entry} at {offset:#05x} has the undefined size code {size_code}; its current size is shown as 0"
            ));
            0
        };
        caps.resizable_bars.push(ResizableBar {
            bar: (control & 0x7) as u8,
            supported_sizes,
            current_size,
        });
    }
}
