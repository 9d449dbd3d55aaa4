//! [`SysfsStep`]: the reversible steps of binding PCI devices at run time.

use std::collections::BTreeSet;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use passthru_core::plan::{Step, StepError, StepView};
use serde::{Deserialize, Serialize};

use super::action::{Action, perform_all};
use super::modules::unload_order;
use super::port::KernelPort;
use crate::sysfs;

/// One reversible change to the kernel's driver bindings.
///
/// Each step carries the state it found when the plan was made, so `undo` needs nothing but the
/// journal. Undo looks at the kernel's state *now* and does only what is needed, so it is
/// safe after a step ran completely, partly, or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum SysfsStep {
    /// `modprobe <module>` (nothing when it is already loaded).
    LoadModule {
        /// Module name as `modprobe` takes it (`vfio-pci`).
        module: String,
        /// The PCI driver the module provides, checked after loading.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        driver: Option<String>,
        /// Every module loaded when the plan was made (sysfs names). Undo removes only modules
        /// outside this set.
        loaded_before: BTreeSet<String>,
    },
    /// Writes the device's `driver_override`.
    SetOverride {
        /// The device.
        device: PciAddress,
        /// The new value; `None` clears it.
        driver: Option<String>,
        /// The value found when the plan was made.
        previous: Option<String>,
    },
    /// Unbinds the device from the driver it had when the plan was made.
    Unbind {
        /// The device.
        device: PciAddress,
        /// Its driver when the plan was made; undo binds it back.
        driver: String,
        /// The module providing that driver, to load again if it went away meanwhile.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
    },
    /// `drivers_probe`: the kernel binds the device to the driver its `driver_override` names
    /// (or to its usual driver when none is named).
    Probe {
        /// The device.
        device: PciAddress,
        /// The driver that must end up bound; `None` accepts whatever binds (or nothing).
        expect: Option<String>,
        /// The device's driver before the probe (normally none); undo returns to it.
        bound_before: Option<String>,
    },
    /// Checks the `driver` link: the truth, since `drivers_probe` reports success even when
    /// nothing bound.
    ExpectDriver {
        /// The device.
        device: PciAddress,
        /// The driver that must be bound; `None` means no driver.
        driver: Option<String>,
    },
    /// Checks that `/dev/vfio/<group>` exists: vfio-pci registered a device of the group.
    ExpectVfioGroup {
        /// The IOMMU group.
        group: u32,
    },
}

impl SysfsStep {
    /// `modprobe module`, remembering which modules were loaded before (see
    /// [`sysfs::loaded_modules`]).
    pub fn load_module(
        module: impl Into<String>,
        driver: Option<&str>,
        loaded_before: BTreeSet<String>,
    ) -> Self {
        Self::LoadModule {
            module: module.into(),
            driver: driver.map(str::to_owned),
            loaded_before,
        }
    }

    /// Sets `driver_override` to `driver`; `previous` is its value now.
    pub fn set_override(device: PciAddress, driver: &str, previous: Option<String>) -> Self {
        Self::SetOverride {
            device,
            driver: Some(driver.to_owned()),
            previous,
        }
    }

    /// Clears `driver_override`; `previous` is its value now.
    pub fn clear_override(device: PciAddress, previous: Option<String>) -> Self {
        Self::SetOverride {
            device,
            driver: None,
            previous,
        }
    }

    /// Unbinds `device` from `driver` (its driver now), provided by `module`.
    pub fn unbind(device: PciAddress, driver: &str, module: Option<String>) -> Self {
        Self::Unbind {
            device,
            driver: driver.to_owned(),
            module,
        }
    }

    /// Asks the kernel to probe `device`; `expect` is the driver that must bind.
    pub fn probe(device: PciAddress, expect: Option<&str>, bound_before: Option<String>) -> Self {
        Self::Probe {
            device,
            expect: expect.map(str::to_owned),
            bound_before,
        }
    }

    /// Checks that `device` is bound to `driver` (or to nothing).
    pub fn expect_driver(device: PciAddress, driver: Option<&str>) -> Self {
        Self::ExpectDriver {
            device,
            driver: driver.map(str::to_owned),
        }
    }

    /// Checks that `/dev/vfio/<group>` exists.
    pub fn expect_vfio_group(group: u32) -> Self {
        Self::ExpectVfioGroup { group }
    }

    /// The actions `apply` performs when the kernel is in the planned state.
    pub fn planned_actions(&self) -> Vec<Action> {
        match self {
            Self::LoadModule { module, .. } => {
                if self.was_loaded() {
                    Vec::new()
                } else {
                    vec![Action::LoadModule {
                        module: module.clone(),
                    }]
                }
            }
            Self::SetOverride { device, driver, .. } => vec![Action::SetOverride {
                device: *device,
                driver: driver.clone(),
            }],
            Self::Unbind { device, driver, .. } => vec![Action::Unbind {
                device: *device,
                driver: driver.clone(),
            }],
            Self::Probe { device, .. } => vec![Action::Probe { device: *device }],
            Self::ExpectDriver { .. } | Self::ExpectVfioGroup { .. } => Vec::new(),
        }
    }

    fn was_loaded(&self) -> bool {
        match self {
            Self::LoadModule {
                module,
                loaded_before,
                ..
            } => loaded_before.contains(&sysfs::module_sysfs_name(module)),
            _ => false,
        }
    }

    /// What `undo` would do to the kernel as it is now: the actions, then the clean-up actions
    /// that run even if one of them fails. For `passthru undo --dry-run`.
    pub fn undo_actions(&self, fs: &dyn HostFs) -> Result<(Vec<Action>, Vec<Action>), StepError> {
        match self {
            Self::LoadModule {
                module,
                loaded_before,
                ..
            } => Ok((
                unload_order(fs, module, loaded_before)
                    .into_iter()
                    .map(|module| Action::UnloadModule { module })
                    .collect(),
                Vec::new(),
            )),
            Self::SetOverride {
                device, previous, ..
            } => {
                let now = read_override(fs, *device)?;
                if now == *previous {
                    Ok((Vec::new(), Vec::new()))
                } else {
                    Ok((
                        vec![Action::SetOverride {
                            device: *device,
                            driver: previous.clone(),
                        }],
                        Vec::new(),
                    ))
                }
            }
            Self::Unbind {
                device,
                driver,
                module,
            } => restore_binding(fs, *device, Some(driver), module.as_deref()),
            Self::Probe {
                device,
                bound_before,
                ..
            } => restore_binding(fs, *device, bound_before.as_deref(), None),
            Self::ExpectDriver { .. } | Self::ExpectVfioGroup { .. } => {
                Ok((Vec::new(), Vec::new()))
            }
        }
    }

    /// The binding undo must leave the device in, when this step changes bindings.
    fn binding_after_undo(&self) -> Option<(PciAddress, Option<&str>)> {
        match self {
            Self::Unbind { device, driver, .. } => Some((*device, Some(driver.as_str()))),
            Self::Probe {
                device,
                bound_before,
                ..
            } => Some((*device, bound_before.as_deref())),
            _ => None,
        }
    }
}

fn read_driver(fs: &dyn HostFs, device: PciAddress) -> Result<Option<String>, StepError> {
    sysfs::current_driver(fs, device).map_err(|error| {
        StepError::new(format!("could not read the driver of {device}: {error}"))
            .with_help("is the device still present? `passthru survey` lists what the kernel sees")
    })
}

fn read_override(fs: &dyn HostFs, device: PciAddress) -> Result<Option<String>, StepError> {
    sysfs::current_override(fs, device).map_err(|error| {
        StepError::new(format!(
            "could not read driver_override of {device}: {error}"
        ))
    })
}

/// Actions that bring `device` back to `target` (a driver, or none) from whatever it is bound
/// to now. Binding a specific driver works whatever `driver_override` says: the override is
/// set to that driver for the bind and put back afterwards (in the clean-up list).
fn restore_binding(
    fs: &dyn HostFs,
    device: PciAddress,
    target: Option<&str>,
    module: Option<&str>,
) -> Result<(Vec<Action>, Vec<Action>), StepError> {
    let current = read_driver(fs, device)?;
    if current.as_deref() == target {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut actions = Vec::new();
    let mut cleanup = Vec::new();
    if let Some(current) = current {
        actions.push(Action::Unbind {
            device,
            driver: current,
        });
    }
    if let Some(target) = target {
        if !fs.exists(&sysfs::driver_dir(target))
            && let Some(module) = module
        {
            actions.push(Action::LoadModule {
                module: module.to_owned(),
            });
        }
        let override_now = read_override(fs, device).unwrap_or(None);
        if override_now.as_deref() != Some(target) {
            actions.push(Action::SetOverride {
                device,
                driver: Some(target.to_owned()),
            });
            cleanup.push(Action::SetOverride {
                device,
                driver: override_now,
            });
        }
        actions.push(Action::Bind {
            device,
            driver: target.to_owned(),
        });
    }
    Ok((actions, cleanup))
}

fn describe_driver(driver: Option<&str>) -> String {
    driver.map_or_else(|| "no driver".to_owned(), |driver| driver.to_owned())
}

fn check_driver(
    fs: &dyn HostFs,
    device: PciAddress,
    expected: Option<&str>,
) -> Result<(), StepError> {
    let bound = read_driver(fs, device)?;
    if bound.as_deref() == expected {
        return Ok(());
    }
    let error = StepError::new(format!(
        "{device} is bound to {} instead of {}",
        describe_driver(bound.as_deref()),
        describe_driver(expected)
    ));
    Err(match (bound, expected) {
        (None, Some(expected)) => error.with_help(format!(
            "the kernel accepted the request but {expected} did not take the device; \
             `dmesg | tail` says why (for vfio-pci: no IOMMU group, or the module is missing)"
        )),
        _ => error.with_help("something else changed the binding meanwhile; run `passthru survey`"),
    })
}

impl Step for SysfsStep {
    type Host = dyn KernelPort;
    const KIND: &'static str = "linux-sysfs";

    fn view(&self) -> StepView {
        let summary = match self {
            Self::LoadModule { module, .. } if self.was_loaded() => {
                format!("Use the {module} module (already loaded)")
            }
            Self::LoadModule { module, .. } => format!("Load the {module} module"),
            Self::SetOverride {
                device,
                driver: Some(driver),
                ..
            } => format!("Let only {driver} bind {device} (driver_override)"),
            Self::SetOverride {
                device,
                driver: None,
                ..
            } => format!("Clear driver_override of {device} so its usual driver may bind it"),
            Self::Unbind { device, driver, .. } => format!("Unbind {device} from {driver}"),
            Self::Probe {
                device,
                expect: Some(driver),
                ..
            } => format!("Bind {device} to {driver} (drivers_probe)"),
            Self::Probe {
                device,
                expect: None,
                ..
            } => format!("Let the kernel find a driver for {device} (drivers_probe)"),
            Self::ExpectDriver { device, driver } => format!(
                "Check that {device} is bound to {}",
                describe_driver(driver.as_deref())
            ),
            Self::ExpectVfioGroup { group } => {
                format!("Check that VFIO group {group} exists (/dev/vfio/{group})")
            }
        };
        let mut view = StepView::new(summary);
        for action in self.planned_actions() {
            view = view.action(action.to_string());
        }
        match self {
            Self::ExpectDriver { device, .. } => view.action(format!(
                "readlink {}",
                sysfs::driver_link(*device).display()
            )),
            Self::ExpectVfioGroup { group } => view.action(format!(
                "test -e {}",
                sysfs::vfio_group_node(*group).display()
            )),
            _ => view,
        }
    }

    fn apply(&self, port: &mut Self::Host) -> Result<(), StepError> {
        match self {
            Self::LoadModule { module, driver, .. } => {
                let present = sysfs::module_loaded(port.fs(), module)
                    && driver
                        .as_deref()
                        .is_none_or(|driver| port.fs().exists(&sysfs::driver_dir(driver)));
                if present {
                    return Ok(());
                }
                perform_all(port, &self.planned_actions_unconditional(), &[])
            }
            Self::Unbind { device, driver, .. } => match read_driver(port.fs(), *device)? {
                None => Ok(()),
                Some(bound) if bound == *driver => perform_all(port, &self.planned_actions(), &[]),
                Some(bound) => Err(StepError::new(format!(
                    "{device} is bound to {bound}, not to {driver} as when the plan was made; \
                     nothing was changed for it"
                ))
                .with_help("run the command again so that passthru plans from the current state")),
            },
            _ => perform_all(port, &self.planned_actions(), &[]),
        }
    }

    fn verify(&self, port: &mut Self::Host) -> Result<(), StepError> {
        let fs = port.fs();
        match self {
            Self::LoadModule { module, driver, .. } => {
                if !sysfs::module_loaded(fs, module) {
                    return Err(StepError::new(format!(
                        "module {module} is not loaded after modprobe"
                    )));
                }
                match driver {
                    Some(driver) if !fs.exists(&sysfs::driver_dir(driver)) => {
                        Err(StepError::new(format!(
                            "module {module} is loaded but the {driver} driver is not registered"
                        )))
                    }
                    _ => Ok(()),
                }
            }
            Self::SetOverride { device, driver, .. } => {
                let now = read_override(fs, *device)?;
                if now == *driver {
                    Ok(())
                } else {
                    Err(StepError::new(format!(
                        "driver_override of {device} reads `{}` instead of `{}`",
                        now.as_deref().unwrap_or("(null)"),
                        driver.as_deref().unwrap_or("(null)")
                    )))
                }
            }
            Self::Unbind { device, .. } => check_driver(fs, *device, None),
            Self::Probe {
                device,
                expect: Some(driver),
                ..
            } => check_driver(fs, *device, Some(driver)),
            Self::Probe { expect: None, .. } => Ok(()),
            Self::ExpectDriver { device, driver } => check_driver(fs, *device, driver.as_deref()),
            Self::ExpectVfioGroup { group } => {
                if fs.exists(&sysfs::vfio_group_node(*group)) {
                    Ok(())
                } else {
                    Err(StepError::new(format!(
                        "/dev/vfio/{group} does not exist although its devices are bound to \
                         vfio-pci"
                    ))
                    .with_help("`dmesg | grep -i vfio` says why vfio-pci did not register them"))
                }
            }
        }
    }

    fn undo(&self, port: &mut Self::Host) -> Result<(), StepError> {
        let (actions, cleanup) = self.undo_actions(port.fs())?;
        perform_all(port, &actions, &cleanup)?;
        if let Some((device, driver)) = self.binding_after_undo() {
            check_driver(port.fs(), device, driver)?;
        }
        if let Self::SetOverride {
            device, previous, ..
        } = self
        {
            let now = read_override(port.fs(), *device)?;
            if now != *previous {
                return Err(StepError::new(format!(
                    "driver_override of {device} reads `{}` after restoring `{}`",
                    now.as_deref().unwrap_or("(null)"),
                    previous.as_deref().unwrap_or("(null)")
                )));
            }
        }
        Ok(())
    }
}

impl SysfsStep {
    fn planned_actions_unconditional(&self) -> Vec<Action> {
        match self {
            Self::LoadModule { module, .. } => vec![Action::LoadModule {
                module: module.clone(),
            }],
            _ => self.planned_actions(),
        }
    }
}
