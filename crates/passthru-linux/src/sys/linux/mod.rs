//! The running Linux kernel: sysfs writes with time limits, module commands, VFIO ioctls.

mod port;
mod timed_write;
pub mod vfio;

use std::path::Path;

use passthru_core::pci::PciAddress;

pub use port::SysfsPort;
pub use timed_write::timed_write;

use super::Unsupported;
use crate::bind::{KernelPort, Timeouts};
use crate::vfio::ProbeTrace;

/// The kernel port for the host rooted at `root` (`/` in production).
pub fn open_kernel_port(
    root: &Path,
    timeouts: Timeouts,
) -> Result<Box<dyn KernelPort>, Unsupported> {
    Ok(Box::new(SysfsPort::new(root).with_timeouts(timeouts)))
}

/// Runs the VFIO probe of `device` in `group` (see [`vfio::probe`]).
pub fn probe_vfio(
    root: &Path,
    device: PciAddress,
    group: u32,
    reset: bool,
) -> Result<ProbeTrace, Unsupported> {
    Ok(vfio::probe(root, device, group, reset))
}
