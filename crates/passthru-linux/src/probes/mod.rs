//! Refusal probes: reasons not to take a device away from the host, each with what to do.
//!
//! Pure functions over a [`HostFs`], so they run on a live host, a fixture tree or a replayed
//! snapshot alike. Host-wide facts (mounts, routes, open device files, `/proc/iomem`) are read
//! once into [`RefusalProbes`]; [`RefusalProbes::check`] then judges one device.
//!
//! Severity follows the rules: [`Severity::Blocked`] cannot be overridden (no IOMMU;
//! the controller of the root filesystem); [`Severity::NeedsForce`] refuses unless `--force`
//! (a boot framebuffer, the text console, a mounted filesystem, the default route, a GPU in
//! use);
//! [`Severity::Unknown`] says what cannot be told without root instead of guessing.

mod console;
mod framebuffer;
mod in_use;
mod iommu;
mod network;
mod storage;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

pub use console::{ConsoleUse, fbcon_map_from_cmdline};
pub use framebuffer::{IomemEntry, addresses_hidden, parse_iomem};
pub use in_use::{DeviceOpeners, Opener, describe as describe_openers};
pub use network::{RouteUse, default_route_interfaces, parse_ipv4_defaults, parse_ipv6_defaults};
pub use storage::{MountUse, StorageUse, parse_mountinfo};

/// How strongly a finding stands in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Cannot be done at all, not even with `--force`.
    Blocked,
    /// Refused unless `--force`; the message explains the risk.
    NeedsForce,
    /// Worth knowing; does not stop anything.
    Warning,
    /// passthru cannot tell (usually: not root); the message says what it could not check.
    Unknown,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// No IOMMU is active.
    NoIommu,
    /// The device is in no IOMMU group.
    NoIommuGroup,
    /// A boot framebuffer (efifb, simplefb/BOOTFB, vesafb) lives in the device's memory.
    BootFramebuffer,
    /// The kernel's text console (fbcon) draws on one of the device's framebuffers.
    ConsoleFramebuffer,
    /// The device holds the root filesystem.
    RootFilesystem,
    /// The device holds another mounted filesystem or active swap.
    MountedFilesystem,
    /// The device carries the default route.
    DefaultRoute,
    /// The device's driver module is in use (NVIDIA).
    DriverInUse,
    /// Programs have the device's DRM or NVIDIA device files open.
    DeviceFilesOpen,
}

/// One reason not to assign a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The device.
    pub device: PciAddress,
    /// What it is about.
    pub kind: FindingKind,
    /// How strongly it stands in the way.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// What to do.
    pub help: String,
}

impl Finding {
    /// Whether `--force` may go ahead despite this finding.
    pub fn force_overrides(&self) -> bool {
        self.severity != Severity::Blocked
    }

    fn new(
        device: PciAddress,
        kind: FindingKind,
        severity: Severity,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Self {
            device,
            kind,
            severity,
            message: message.into(),
            help: help.into(),
        }
    }
}

/// Host-wide facts the probes judge devices by, read once.
#[derive(Debug, Clone)]
pub struct RefusalProbes {
    iomem: Result<Vec<IomemEntry>, String>,
    console: ConsoleUse,
    storage: Result<StorageUse, String>,
    routes: Result<RouteUse, String>,
    openers: Result<DeviceOpeners, String>,
}

impl RefusalProbes {
    /// Reads `/proc/iomem`, the console's framebuffer, mounts and swaps, default routes and
    /// open device files.
    pub fn read(fs: &dyn HostFs) -> Self {
        Self {
            iomem: framebuffer::read_iomem(fs),
            console: console::read_console_use(fs),
            storage: storage::read_storage_use(fs),
            routes: network::read_route_use(fs),
            openers: in_use::read_openers(fs),
        }
    }

    /// Every finding for `device`, most severe first.
    pub fn check(&self, fs: &dyn HostFs, device: PciAddress) -> Vec<Finding> {
        let mut findings = iommu::findings(fs, device);
        findings.extend(framebuffer::findings(fs, &self.iomem, device));
        findings.extend(console::findings(&self.console, device));
        findings.extend(storage::findings(&self.storage, device));
        findings.extend(network::findings(&self.routes, device));
        findings.extend(in_use::findings(fs, &self.openers, device));
        findings.sort_by_key(|finding| finding.severity);
        findings
    }

    /// Processes holding `/dev/vfio/<group>`: a VM (or another VFIO user) has the group.
    /// Empty when none do or when open files could not be read.
    pub fn vfio_group_users(&self, group: u32) -> &[Opener] {
        self.openers
            .as_ref()
            .ok()
            .and_then(|openers| openers.by_vfio_group.get(&group))
            .map_or(&[], Vec::as_slice)
    }

    /// How many processes' open files were hidden (not root); then [`Self::vfio_group_users`]
    /// may miss a VM.
    pub fn hidden_processes(&self) -> usize {
        self.openers
            .as_ref()
            .map_or(0, |openers| openers.unreadable)
    }
}

#[cfg(test)]
mod tests;
