//! The primitive kernel actions that sysfs steps are made of: one sysfs write or one module
//! command each. A step computes its actions from the plan (for `--dry-run`) or from the
//! kernel's current state (for undo), and performs them through a [`KernelPort`].

use std::fmt;
use std::path::PathBuf;

use passthru_core::pci::PciAddress;
use passthru_core::plan::StepError;
use passthru_core::runner::CommandSpec;

use super::port::{KernelPort, WriteError, WriteFailure, WriteKind};
use crate::errno::Errno;
use crate::sysfs;

/// One kernel action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Writes `driver_override` (a driver name, or an empty line to clear it).
    SetOverride {
        /// The device.
        device: PciAddress,
        /// The new value; `None` clears.
        driver: Option<String>,
    },
    /// `echo <device> > /sys/bus/pci/drivers/<driver>/unbind`.
    Unbind {
        /// The device.
        device: PciAddress,
        /// The driver it is bound to.
        driver: String,
    },
    /// `echo <device> > /sys/bus/pci/drivers/<driver>/bind`.
    Bind {
        /// The device.
        device: PciAddress,
        /// The driver to bind.
        driver: String,
    },
    /// `echo <device> > /sys/bus/pci/drivers_probe`.
    Probe {
        /// The device.
        device: PciAddress,
    },
    /// `modprobe <module>`.
    LoadModule {
        /// Module name as `modprobe` takes it.
        module: String,
    },
    /// `rmmod <module>`: removes exactly this module, none of its dependencies.
    UnloadModule {
        /// Module name.
        module: String,
    },
}

impl Action {
    /// The sysfs file written, for write actions.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Self::SetOverride { device, .. } => Some(sysfs::driver_override(*device)),
            Self::Unbind { driver, .. } => Some(sysfs::driver_dir(driver).join("unbind")),
            Self::Bind { driver, .. } => Some(sysfs::driver_dir(driver).join("bind")),
            Self::Probe { .. } => Some(PathBuf::from(sysfs::DRIVERS_PROBE)),
            Self::LoadModule { .. } | Self::UnloadModule { .. } => None,
        }
    }

    /// The bytes written, for write actions. `driver_override` is cleared with a lone newline
    /// (what libvirt writes; an empty write does the same on current kernels).
    fn payload(&self) -> Option<String> {
        match self {
            Self::SetOverride { driver, .. } => {
                Some(format!("{}\n", driver.as_deref().unwrap_or("")))
            }
            Self::Unbind { device, .. } | Self::Bind { device, .. } | Self::Probe { device } => {
                Some(format!("{device}\n"))
            }
            Self::LoadModule { .. } | Self::UnloadModule { .. } => None,
        }
    }

    fn write_kind(&self) -> WriteKind {
        match self {
            Self::Unbind { .. } => WriteKind::Unbind,
            Self::Bind { .. } | Self::Probe { .. } => WriteKind::Bind,
            _ => WriteKind::Attribute,
        }
    }

    /// The command run, for module actions.
    pub fn command(&self) -> Option<CommandSpec> {
        match self {
            Self::LoadModule { module } => Some(CommandSpec::new("modprobe", [module.as_str()])),
            Self::UnloadModule { module } => Some(CommandSpec::new("rmmod", [module.as_str()])),
            _ => None,
        }
    }

    /// Performs the action. Errors name the device and driver and say what to do.
    pub fn perform(&self, port: &mut dyn KernelPort) -> Result<(), StepError> {
        if let Self::Bind { device, driver } = self {
            // Loading a module binds matching devices by itself; binding again would fail.
            if sysfs::current_driver(port.fs(), *device)
                .ok()
                .flatten()
                .as_deref()
                == Some(driver)
            {
                return Ok(());
            }
        }
        if let Some(command) = self.command() {
            return run_command(port, &command);
        }
        let (Some(path), Some(payload)) = (self.path(), self.payload()) else {
            return Ok(());
        };
        port.write(&path, payload.as_bytes(), self.write_kind())
            .map_err(|error| self.explain(&error))
    }

    /// Turns a failed write into an error a person can act on.
    fn explain(&self, error: &WriteError) -> StepError {
        let stuck_help = |device: &PciAddress, driver: &str| {
            format!(
                "the kernel is still waiting inside the {driver} driver, usually for a program \
                 that has {device} open (a display server, nvidia-persistenced, a CUDA or \
                 OpenGL program): find it with `fuser -v /dev/dri/* /dev/nvidia*` and stop it; \
                 the pending write may then finish. If it never does, only a reboot frees the \
                 device; `passthru undo` restores the rest afterwards"
            )
        };
        match (self, &error.failure) {
            (Self::Unbind { device, driver }, WriteFailure::TimedOut(after)) => {
                StepError::new(format!(
                    "unbinding {device} from {driver} is stuck: the write to `{}` did not \
                     return within {} s",
                    error.path.display(),
                    after.as_secs()
                ))
                .with_help(stuck_help(device, driver))
            }
            (Self::Bind { device, driver }, WriteFailure::TimedOut(after)) => {
                StepError::new(format!(
                    "binding {device} to {driver} is stuck: the write to `{}` did not return \
                     within {} s",
                    error.path.display(),
                    after.as_secs()
                ))
                .with_help(stuck_help(device, driver))
            }
            (Self::Probe { device }, WriteFailure::TimedOut(after)) => StepError::new(format!(
                "probing a driver for {device} is stuck: the write to `{}` did not return \
                 within {} s",
                error.path.display(),
                after.as_secs()
            ))
            .with_help(stuck_help(device, "new")),
            (_, WriteFailure::TimedOut(_)) => StepError::new(format!(
                "{}: the device is locked by another operation that does not finish",
                error
            ))
            .with_help("check `dmesg` for a hung task; a reboot may be needed"),
            (_, WriteFailure::Rejected(errno)) => self.explain_rejection(*errno, error),
            (_, WriteFailure::Other(_)) => StepError::new(error.to_string()),
        }
    }

    fn explain_rejection(&self, errno: Errno, error: &WriteError) -> StepError {
        let base = StepError::new(format!("{}: {error}", self.describe()));
        if errno == Errno::EACCES || errno == Errno::EPERM {
            return base.with_help("sysfs writes need root: run passthru with sudo");
        }
        match self {
            Self::Unbind { device, driver } if errno == Errno::ENODEV => base.with_help(format!(
                "{device} is no longer bound to {driver}; run `passthru survey` to see its state"
            )),
            Self::Bind { device, driver } if errno == Errno::ENODEV => base.with_help(format!(
                "{driver} does not accept {device} (its driver_override names another driver, \
                 or the driver does not support this device)"
            )),
            Self::Bind { device, .. } if errno == Errno::EBUSY => {
                base.with_help(format!("{device} is already bound to another driver"))
            }
            Self::Probe { device } if errno == Errno::ENODEV => base.with_help(format!(
                "the kernel does not know {device}: was it removed or renumbered?"
            )),
            _ => base.with_help("`dmesg | tail` shows what the kernel said about it"),
        }
    }

    /// What the action does, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::SetOverride {
                device,
                driver: Some(driver),
            } => format!("setting driver_override of {device} to {driver}"),
            Self::SetOverride {
                device,
                driver: None,
            } => format!("clearing driver_override of {device}"),
            Self::Unbind { device, driver } => format!("unbinding {device} from {driver}"),
            Self::Bind { device, driver } => format!("binding {device} to {driver}"),
            Self::Probe { device } => format!("probing a driver for {device}"),
            Self::LoadModule { module } => format!("loading module {module}"),
            Self::UnloadModule { module } => format!("unloading module {module}"),
        }
    }
}

impl fmt::Display for Action {
    /// The exact shell equivalent (`echo vfio-pci > /sys/bus/pci/devices/.../driver_override`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(command) = self.command() {
            return write!(f, "{command}");
        }
        match (self.path(), self.payload()) {
            (Some(path), Some(payload)) => {
                let value = payload.trim_end_matches('\n');
                if value.is_empty() {
                    write!(f, "echo > {}", path.display())
                } else {
                    write!(f, "echo {value} > {}", path.display())
                }
            }
            _ => Ok(()),
        }
    }
}

fn run_command(port: &mut dyn KernelPort, command: &CommandSpec) -> Result<(), StepError> {
    let output = port.run(command).map_err(|error| {
        StepError::new(format!("could not run `{command}`: {error}"))
            .with_help("passthru needs kmod's `modprobe` and `rmmod` on PATH")
    })?;
    if output.success() {
        return Ok(());
    }
    let said = output.stderr_text();
    let said = said.trim();
    let how = if output.timed_out {
        "did not finish in time and was stopped".to_owned()
    } else {
        match output.status {
            Some(code) => format!("failed with exit status {code}"),
            None => "was killed".to_owned(),
        }
    };
    let mut message = format!("`{command}` {how}");
    if !said.is_empty() {
        message.push_str(": ");
        message.push_str(said);
    }
    Err(StepError::new(message).with_help(
        "check that the module exists for the running kernel (`modinfo <module>`) and see `dmesg`",
    ))
}

/// Performs `actions` in order, stopping at the first failure; then performs `cleanup` in
/// any case. Returns the first error.
pub fn perform_all(
    port: &mut dyn KernelPort,
    actions: &[Action],
    cleanup: &[Action],
) -> Result<(), StepError> {
    let mut first_error = None;
    for action in actions {
        if let Err(error) = action.perform(port) {
            first_error = Some(error);
            break;
        }
    }
    for action in cleanup {
        if let Err(error) = action.perform(port) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}
