//! The port through which sysfs steps act on a kernel: the real one under `sys/linux`, the
//! fake one in [`crate::testing`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passthru_core::hostfs::HostFs;
use passthru_core::runner::{CommandOutput, CommandSpec};
use serde::{Deserialize, Serialize};

use crate::errno::Errno;

/// What a write does to the kernel, which decides how long it may take before it counts as
/// stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteKind {
    /// Setting an attribute (`driver_override`): returns at once unless the device is locked.
    Attribute,
    /// Unbinding a driver: runs the driver's `remove`, which can wait for its users forever.
    Unbind,
    /// Binding or probing (`bind`, `drivers_probe`): runs a driver's `probe`, which can take
    /// seconds on a GPU.
    Bind,
}

/// How long each kind of write (and each command) may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For [`WriteKind::Attribute`].
    pub attribute: Duration,
    /// For [`WriteKind::Unbind`].
    pub unbind: Duration,
    /// For [`WriteKind::Bind`].
    pub bind: Duration,
    /// For commands (`modprobe`, `rmmod`).
    pub command: Duration,
}

impl Default for Timeouts {
    /// Generous limits: a GPU driver's `remove` or `probe` may take several seconds when it
    /// works; one that has not returned after these limits is waiting for something that will
    /// not come by itself.
    fn default() -> Self {
        Self {
            attribute: Duration::from_secs(10),
            unbind: Duration::from_secs(30),
            bind: Duration::from_secs(60),
            command: Duration::from_secs(120),
        }
    }
}

impl Timeouts {
    /// The limit for one kind of write.
    pub fn for_write(&self, kind: WriteKind) -> Duration {
        match kind {
            WriteKind::Attribute => self.attribute,
            WriteKind::Unbind => self.unbind,
            WriteKind::Bind => self.bind,
        }
    }
}

/// How a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFailure {
    /// The kernel refused it (the `open` or the `write` returned this error).
    Rejected(Errno),
    /// It did not return in time; it may still be pending in the kernel.
    TimedOut(Duration),
    /// Something else went wrong on our side (could not start the writer, ...).
    Other(String),
}

/// A sysfs write that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WriteError {
    /// The host-absolute path written to.
    pub path: PathBuf,
    /// What happened.
    pub failure: WriteFailure,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.failure {
            WriteFailure::Rejected(errno) => {
                write!(f, "the kernel refused the write to `{path}` with {errno}")
            }
            WriteFailure::TimedOut(after) => write!(
                f,
                "the write to `{path}` did not return within {} s",
                after.as_secs_f32()
            ),
            WriteFailure::Other(message) => write!(f, "could not write `{path}`: {message}"),
        }
    }
}

impl WriteError {
    /// The kernel's error number, when it refused the write.
    pub fn errno(&self) -> Option<Errno> {
        match self.failure {
            WriteFailure::Rejected(errno) => Some(errno),
            _ => None,
        }
    }

    /// Whether the write timed out (the kernel may still be working on it).
    pub fn timed_out(&self) -> bool {
        matches!(self.failure, WriteFailure::TimedOut(_))
    }
}

/// What sysfs steps need from a kernel: reading the host, writing sysfs attributes with a time
/// limit, and running `modprobe`/`rmmod`.
///
/// Paths are host-absolute (`/sys/bus/pci/drivers_probe`); an implementation maps them onto
/// its root.
pub trait KernelPort {
    /// The host's files as they are now (every write shows up here at once).
    fn fs(&self) -> &dyn HostFs;

    /// Writes `payload` to a sysfs attribute, giving up after the limit for `kind`.
    fn write(&mut self, path: &Path, payload: &[u8], kind: WriteKind) -> Result<(), WriteError>;

    /// Runs a kernel-module command (`modprobe vfio-pci`, `rmmod vfio_pci`).
    fn run(&mut self, command: &CommandSpec) -> io::Result<CommandOutput>;
}

impl<T: KernelPort + ?Sized> KernelPort for Box<T> {
    fn fs(&self) -> &dyn HostFs {
        (**self).fs()
    }

    fn write(&mut self, path: &Path, payload: &[u8], kind: WriteKind) -> Result<(), WriteError> {
        (**self).write(path, payload, kind)
    }

    fn run(&mut self, command: &CommandSpec) -> io::Result<CommandOutput> {
        (**self).run(command)
    }
}
