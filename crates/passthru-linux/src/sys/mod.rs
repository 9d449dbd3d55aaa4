//! The code that touches the running kernel, one module per platform (crosvm's `sys/` rule).
//! Everything else in this crate is platform-neutral.

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use unsupported as platform;

pub use platform::{open_kernel_port, probe_vfio};

/// The running kernel cannot be reached from this build (it is not a Linux build).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this passthru was built for {0}; changing Linux driver bindings and VFIO checks need \
     the Linux build, run on the Linux host itself"
)]
pub struct Unsupported(pub &'static str);
