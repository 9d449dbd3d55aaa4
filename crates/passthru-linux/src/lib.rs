//! Linux host support: reading sysfs into an inventory, binding devices to vfio-pci at run
//! time, proving them usable through VFIO, and making assignments persistent across reboots.
//!
//! The reading and planning code is platform-neutral (it works on any [`HostFs`], including a
//! replayed snapshot on another OS); only the code that touches the running kernel lives in
//! `sys/linux`.
//!
//! [`HostFs`]: passthru_core::hostfs::HostFs

pub mod assign;
pub mod bind;
pub mod boot;
pub mod checks;
pub mod cmdline;
pub mod errno;
pub mod fake_sysfs;
pub mod inventory;
pub mod probes;
mod serde_hex;
pub mod snapshot;
pub mod survey;
pub mod sys;
pub mod sysfs;
pub mod vfio;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
