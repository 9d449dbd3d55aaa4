//! Decoding PCI configuration space: the header and the capabilities passthrough cares about.
//!
//! Without `CAP_SYS_ADMIN` the kernel returns only the first 64 bytes of `config`, which hold
//! the header but not the capability list. The decoder never guesses: with 64 bytes it says
//! that capabilities need root ([`CapabilityReadout::NeedsRoot`]).
//!
//! The decoder accepts images of any length (64, 256 and 4096 bytes are what sysfs returns;
//! dumps and broken reads give odd sizes) and never panics: every read is bounds-checked, both
//! capability lists are walked with guards against loops and stray pointers, and whatever
//! looks wrong is reported in [`Capabilities::problems`] instead of being guessed at.
//! `docs/pci-capabilities.md` explains what each decoded bit means for passthrough.

mod extended;
mod header;
mod image;
mod names;
mod standard;

use serde::{Deserialize, Serialize};

pub use extended::{Acs, ResizableBar, Sriov};
pub use header::{
    ConfigHeader, HEADER_SIZE, HEADER_TYPE_BRIDGE, HEADER_TYPE_CARDBUS, HEADER_TYPE_ENDPOINT,
    decode_header,
};
pub use standard::{LinkInfo, Msi, Msix, PcieCapability, PciePortType, PowerManagement};

use image::ConfigImage;

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
    /// Advanced Features capability with FLR (conventional PCI devices), counted only with
    /// Transactions Pending too, as the kernel's `pci_af_flr()` requires.
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

impl Capabilities {
    fn empty(header: ConfigHeader, bytes_read: usize) -> Self {
        Self {
            bytes_read,
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
            problems: Vec::new(),
        }
    }

    /// Whether the function advertises Function Level Reset, through the PCI Express
    /// capability (DevCap bit 28) or the Advanced Features capability.
    pub fn supports_flr(&self) -> bool {
        self.af_flr || self.pcie.as_ref().is_some_and(|pcie| pcie.flr)
    }
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

/// Decodes a config-space image (as read from sysfs `config`, or from an `lspci -xxxx` dump).
///
/// - fewer than 64 bytes: [`CapabilityReadout::Unavailable`] (not even the header is there;
///   an unprivileged read returns 64 bytes, so this is a broken read, not a permission matter);
/// - vendor id `0xffff`: [`CapabilityReadout::Unavailable`] (the function did not answer);
/// - exactly what an unprivileged read returns (64 bytes, 128 for CardBus bridges):
///   [`CapabilityReadout::NeedsRoot`] with the header;
/// - more: [`CapabilityReadout::Decoded`].
pub fn decode(bytes: &[u8]) -> CapabilityReadout {
    let Some(header) = decode_header(bytes) else {
        return CapabilityReadout::Unavailable {
            reason: format!(
                "config space is only {} bytes long, shorter than the 64-byte header (a truncated read)",
                bytes.len()
            ),
        };
    };
    if header.vendor == 0xffff {
        return CapabilityReadout::Unavailable {
            reason: "config space reads all ones: the device is powered off (for example a \
                     laptop GPU in D3cold), was removed, or did not come back from a reset"
                .to_owned(),
        };
    }
    if bytes.len() <= header.unprivileged_size() {
        return CapabilityReadout::NeedsRoot {
            header: Some(header),
            bytes_read: bytes.len(),
        };
    }
    let image = ConfigImage::new(bytes);
    let mut caps = Capabilities::empty(header, bytes.len());
    if standard::walk(image, &caps.header.clone(), &mut caps) {
        extended::walk(image, &mut caps);
    }
    CapabilityReadout::Decoded(Box::new(caps))
}

/// Stores a capability with `decode` (which keeps the first of each kind, as the kernel's
/// `pci_find_capability()` does, and returns the offset of the kept one) and records
/// truncation and duplicates as problems.
fn decode_once(
    caps: &mut Capabilities,
    image: ConfigImage<'_>,
    offset: usize,
    name: &str,
    decode: impl FnOnce(&mut Capabilities) -> Option<u16>,
) {
    match decode(caps) {
        Some(kept) if usize::from(kept) != offset => caps.problems.push(format!(
            "second {name} capability at {offset:#x} ignored (the first is at {kept:#x})"
        )),
        Some(_) => {}
        None => caps.problems.push(truncated(name, offset, image)),
    }
}

fn truncated(name: &str, offset: usize, image: ConfigImage<'_>) -> String {
    format!(
        "{name} capability at {offset:#x} is cut off by the end of the {} bytes read",
        image.len()
    )
}

#[cfg(test)]
mod tests;
