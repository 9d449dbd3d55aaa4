//! Proving that a device is usable by a VM the way QEMU would use it, through VFIO.
//!
//! The ioctls themselves live in `sys/linux/vfio.rs` and return a [`ProbeTrace`]: the answer
//! of each step, recorded as data. Everything here is platform-neutral: the facts read from
//! sysfs beforehand ([`DeviceFacts`]), and the interpretation of facts plus trace into a
//! [`VfioReport`] that says "ready for a VM" or precisely why not. That split lets the
//! interpretation be tested with recorded answers on any machine.

mod facts;
mod report;
mod trace;

pub use facts::{DeviceFacts, GroupMember};
pub use report::{
    IrqSummary, Problem, RegionSummary, ResetResult, VfioReport, interpret, sysfs_problems,
};
pub use trace::{
    Outcome, ProbeTrace, RawDependentDevice, RawDeviceInfo, RawIrqInfo, RawRegionInfo,
    irq_index_name, region_index_name, uapi,
};
