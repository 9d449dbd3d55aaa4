//! Binding PCI devices to drivers at run time, as reversible, journaled steps.
//!
//! - [`SysfsStep`] implements [`passthru_core::plan::Step`] (`KIND = "linux-sysfs"`): load a
//!   module, set or clear `driver_override`, unbind, `drivers_probe`, and the checks that read
//!   the `driver` link and `/dev/vfio/N`.
//! - [`KernelPort`] is what the steps act through: the real kernel
//!   (`crate::sys::linux::SysfsPort`, every write in a child process with a time limit) or the
//!   fake kernel of [`crate::testing`].
//! - [`recipe`] turns chosen devices into the step sequences of `assign` and `release`.

pub mod action;
mod modules;
pub mod port;
mod preview;
pub mod recipe;
mod step;

pub use action::Action;
pub use modules::unload_order;
pub use port::{KernelPort, Timeouts, WriteError, WriteFailure, WriteKind};
pub use preview::preview_undo;
pub use recipe::{BindTarget, DeviceBinding, bind_steps, release_steps};
pub use step::SysfsStep;

#[cfg(test)]
mod tests;
