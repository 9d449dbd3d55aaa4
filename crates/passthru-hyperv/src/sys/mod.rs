//! The operating-system specific part of the port: finding Windows PowerShell.

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{persistent_powershell, read_only_powershell};

#[cfg(not(windows))]
mod other;
#[cfg(not(windows))]
pub use other::{persistent_powershell, read_only_powershell};
