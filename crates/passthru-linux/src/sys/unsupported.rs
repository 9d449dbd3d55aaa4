//! Stand-ins for platforms where the Linux kernel cannot be reached.

use std::path::Path;

use passthru_core::pci::PciAddress;

use super::Unsupported;
use crate::bind::{KernelPort, Timeouts};
use crate::vfio::ProbeTrace;

/// See the Linux version.
pub fn open_kernel_port(
    _root: &Path,
    _timeouts: Timeouts,
) -> Result<Box<dyn KernelPort>, Unsupported> {
    Err(Unsupported(std::env::consts::OS))
}

/// See the Linux version.
pub fn probe_vfio(
    _root: &Path,
    _device: PciAddress,
    _group: u32,
    _reset: bool,
) -> Result<ProbeTrace, Unsupported> {
    Err(Unsupported(std::env::consts::OS))
}
