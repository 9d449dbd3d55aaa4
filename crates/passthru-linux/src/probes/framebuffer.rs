//! Boot framebuffers in a GPU's memory (`/proc/iomem`).
//!
//! Firmware framebuffer drivers claim part of the boot GPU's BAR: `efifb`, `vesafb`, and on
//! simpledrm-era kernels the `BOOTFB` resource of the simple-framebuffer device (with
//! `simplefb`/`simpledrm` below it). Taking the GPU away then blanks the console, and vfio-pci
//! or QEMU fail with "BAR N: can't reserve" (harvester/pcidevices#81, siderolabs/talos#14356).
//! `/proc/iomem` shows every address as zero to non-root readers, so without root the answer
//! is "cannot tell", never a guess.

use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use passthru_core::pci::resource::{BarKind, parse_resource};

use super::{Finding, FindingKind, Severity};
use crate::sysfs;

/// Resource names of firmware framebuffers.
const FRAMEBUFFER_NAMES: &[&str] = &[
    "BOOTFB",
    "efifb",
    "vesafb",
    "simple-framebuffer",
    "simplefb",
    "simpledrm",
];

/// One line of `/proc/iomem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IomemEntry {
    /// Nesting level (two spaces per level).
    pub depth: usize,
    /// First address.
    pub start: u64,
    /// Last address.
    pub end: u64,
    /// Who claimed it (`0000:01:00.0`, `BOOTFB`, `System RAM`, ...).
    pub name: String,
}

/// Parses `/proc/iomem` (`"%*s%0*llx-%0*llx : %s\n"`, indented by nesting); malformed lines are
/// skipped.
pub fn parse_iomem(text: &str) -> Vec<IomemEntry> {
    text.lines()
        .filter_map(|line| {
            let trimmed = line.trim_start_matches(' ');
            let depth = (line.len() - trimmed.len()) / 2;
            let (range, name) = trimmed.split_once(" : ")?;
            let (start, end) = range.split_once('-')?;
            Some(IomemEntry {
                depth,
                start: u64::from_str_radix(start.trim(), 16).ok()?,
                end: u64::from_str_radix(end.trim(), 16).ok()?,
                name: name.trim().to_owned(),
            })
        })
        .collect()
}

/// Whether the reader saw only zero addresses (non-root readers do).
pub fn addresses_hidden(entries: &[IomemEntry]) -> bool {
    !entries.is_empty()
        && entries
            .iter()
            .all(|entry| entry.start == 0 && entry.end == 0)
}

pub(super) fn read_iomem(fs: &dyn HostFs) -> Result<Vec<IomemEntry>, String> {
    let text = fs
        .read_text(Path::new("/proc/iomem"))
        .map_err(|error| format!("could not read /proc/iomem: {error}"))?;
    Ok(parse_iomem(&text))
}

fn is_display(fs: &dyn HostFs, device: PciAddress) -> bool {
    fs.read_text(&sysfs::device_dir(device).join("class"))
        .ok()
        .and_then(|text| u32::from_str_radix(text.trim_start_matches("0x"), 16).ok())
        .is_some_and(|class| class >> 16 == 0x03)
}

/// The device's memory ranges: its BARs from `resource` and the iomem entries named after it.
fn device_ranges(fs: &dyn HostFs, entries: &[IomemEntry], device: PciAddress) -> Vec<(u64, u64)> {
    let name = device.to_string();
    let mut ranges: Vec<(u64, u64)> = entries
        .iter()
        .filter(|entry| entry.name == name)
        .map(|entry| (entry.start, entry.end))
        .collect();
    if let Some(resources) = fs
        .read_text(&sysfs::device_dir(device).join("resource"))
        .ok()
        .and_then(|text| parse_resource(&text).ok())
    {
        ranges.extend(
            resources
                .bars
                .iter()
                .filter(|bar| bar.kind != BarKind::Io && bar.size > 0)
                .map(|bar| (bar.start, bar.start + (bar.size - 1))),
        );
    }
    ranges
}

pub(super) fn findings(
    fs: &dyn HostFs,
    iomem: &Result<Vec<IomemEntry>, String>,
    device: PciAddress,
) -> Option<Finding> {
    if !is_display(fs, device) {
        return None;
    }
    let unknown = |why: String| {
        Finding::new(
            device,
            FindingKind::BootFramebuffer,
            Severity::Unknown,
            format!("cannot tell whether a boot framebuffer uses {device}: {why}"),
            "run as root so passthru can read the addresses in /proc/iomem",
        )
    };
    let entries = match iomem {
        Ok(entries) => entries,
        Err(why) => return Some(unknown(why.clone())),
    };
    if addresses_hidden(entries) {
        return Some(unknown(
            "/proc/iomem shows no addresses without root".into(),
        ));
    }
    let ranges = device_ranges(fs, entries, device);
    let framebuffer = entries.iter().find(|entry| {
        FRAMEBUFFER_NAMES.contains(&entry.name.as_str())
            && entry.end >= entry.start
            && ranges
                .iter()
                .any(|(start, end)| entry.start <= *end && *start <= entry.end)
    })?;
    Some(Finding::new(
        device,
        FindingKind::BootFramebuffer,
        Severity::NeedsForce,
        format!(
            "a boot framebuffer ({}, {:#x}-{:#x}) lives in the memory of {device}: the host's \
             console draws on this GPU",
            framebuffer.name, framebuffer.start, framebuffer.end
        ),
        "taking it away blanks the console, and vfio-pci or QEMU may fail with \"BAR can't \
         reserve\". Use another GPU for the console, or boot with `initcall_blacklist=sysfb_init` \
         (simpledrm/BOOTFB kernels) or `video=efifb:off` (older efifb kernels); --force takes \
         the GPU anyway",
    ))
}
