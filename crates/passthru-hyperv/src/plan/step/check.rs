//! Verification: after a step acted, read back what it changed.

use passthru_core::plan::StepError;

use super::{HyperVStep, check, failed};
use crate::client::HyperVHost;
use crate::model::{DeviceStatus, StopAction};
use crate::text::instance::same_gpu_path;

/// How often a device's new state is looked for before verification gives up.
const SETTLE_TRIES: u32 = 10;
/// The pause between two looks.
const SETTLE_DELAY: std::time::Duration = std::time::Duration::from_millis(300);

impl HyperVStep {
    /// [`Step::verify`]: reads back what the step changed.
    pub(super) fn check_applied(&self, host: &mut HyperVHost) -> Result<(), StepError> {
        let vm = |host: &mut HyperVHost, name: &str| host.vm(name).map_err(|error| failed(&error));
        match self {
            Self::StopVm { vm: name, .. } => {
                let machine = vm(host, name)?;
                check(machine.is_off(), || {
                    format!(
                        "'{name}' is still {}",
                        machine.state.as_deref().unwrap_or("not off")
                    )
                })
            }
            Self::SetCacheTypes { vm: name, to, .. } => {
                let machine = vm(host, name)?;
                check(machine.guest_controlled_cache_types == Some(*to), || {
                    format!(
                        "'{name}' still reports GuestControlledCacheTypes {:?}",
                        machine.guest_controlled_cache_types
                    )
                })
            }
            Self::SetMmio {
                vm: name,
                low_to,
                high_to,
                ..
            } => {
                let machine = vm(host, name)?;
                check(
                    low_to.is_none_or(|low| machine.low_mmio == Some(low))
                        && high_to.is_none_or(|high| machine.high_mmio == Some(high)),
                    || {
                        format!(
                            "'{name}' reports MMIO low {:?}, high {:?}",
                            machine.low_mmio, machine.high_mmio
                        )
                    },
                )
            }
            Self::SetStopAction { vm: name, to, .. } => {
                let machine = vm(host, name)?;
                check(
                    machine
                        .automatic_stop_action
                        .as_deref()
                        .and_then(StopAction::parse)
                        == Some(*to),
                    || {
                        format!(
                            "'{name}' reports AutomaticStopAction {:?}",
                            machine.automatic_stop_action
                        )
                    },
                )
            }
            Self::SetMemoryMinimum { vm: name, to, .. } => {
                let machine = vm(host, name)?;
                check(machine.memory.minimum == Some(*to), || {
                    format!(
                        "'{name}' reports minimum memory {:?}",
                        machine.memory.minimum
                    )
                })
            }
            Self::SetPolicy { value, to, .. } => {
                let policy = host.policy().map_err(|error| failed(&error))?;
                check(policy.get(*value) == Some(*to), || {
                    format!(
                        "{} reads {:?} after setting it",
                        value.name(),
                        policy.get(*value)
                    )
                })
            }
            Self::AddGpuAdapter {
                vm: name, existing, ..
            } => {
                let machine = vm(host, name)?;
                check(
                    machine.gpu_adapters.iter().any(|adapter| {
                        adapter.id.as_ref().is_some_and(|id| !existing.contains(id))
                    }),
                    || format!("'{name}' shows no new GPU partition adapter"),
                )
            }
            Self::RemoveGpuAdapter {
                vm: name,
                adapter_id,
                ..
            } => {
                let machine = vm(host, name)?;
                check(
                    !machine
                        .gpu_adapters
                        .iter()
                        .any(|adapter| adapter.id.as_deref() == Some(adapter_id)),
                    || format!("'{name}' still has the GPU partition adapter {adapter_id}"),
                )
            }
            Self::SetPartitionCount {
                gpu, to, gpu_name, ..
            } => {
                let gpus = host.partitionable_gpus().map_err(|error| failed(&error))?;
                let count = gpus
                    .iter()
                    .find(|candidate| same_gpu_path(&candidate.name, gpu))
                    .and_then(|candidate| candidate.partition_count);
                check(count == Some(*to), || {
                    format!("{gpu_name} reports {count:?} partitions")
                })
            }
            Self::DisableDevice {
                instance_id,
                location_path,
                name,
            } => self.settled(
                host,
                location_path,
                Some(instance_id),
                DeviceStatus::on_host_disabled,
                || format!("{name} is not disabled"),
            ),
            Self::DismountDevice {
                location_path,
                name,
                ..
            } => self.settled(host, location_path, None, DeviceStatus::dismounted, || {
                format!("{name} does not show up as dismounted")
            }),
            Self::AddAssignableDevice {
                vm: name,
                location_path,
                name: device,
                ..
            } => self.settled(
                host,
                location_path,
                None,
                |status| {
                    status
                        .assigned_to
                        .iter()
                        .any(|owner| owner.eq_ignore_ascii_case(name))
                },
                || format!("{device} does not show up in '{name}'"),
            ),
            Self::RemoveAssignableDevice {
                vm: name,
                location_path,
                name: device,
                ..
            } => self.settled(
                host,
                location_path,
                None,
                |status| {
                    !status
                        .assigned_to
                        .iter()
                        .any(|owner| owner.eq_ignore_ascii_case(name))
                },
                || format!("{device} is still in '{name}'"),
            ),
            Self::MountDevice {
                location_path,
                instance_id,
                name,
            } => self.settled(
                host,
                location_path,
                Some(instance_id),
                |status| {
                    status.dismounted_instance_id.is_none()
                        && status.assigned_to.is_empty()
                        && status.present == Some(true)
                },
                || format!("{name} is not back on the host"),
            ),
            Self::EnableDevice {
                instance_id,
                location_path,
                name,
            } => self.settled(
                host,
                location_path,
                Some(instance_id),
                DeviceStatus::on_host_enabled,
                || format!("{name} is not enabled"),
            ),
        }
    }

    /// Checks a device's state, giving Plug and Play a moment to catch up: a dismounted or
    /// mounted device takes time to show in its new state (ExHyperV retries 5 × 500 ms after a
    /// dismount), so verification polls for up to [`SETTLE_TRIES`] × [`SETTLE_DELAY`].
    fn settled(
        &self,
        host: &mut HyperVHost,
        location_path: &str,
        instance_id: Option<&str>,
        ok: impl Fn(&DeviceStatus) -> bool,
        message: impl FnOnce() -> String,
    ) -> Result<(), StepError> {
        for attempt in 1..=SETTLE_TRIES {
            if ok(&self.device(host, location_path, instance_id)?) {
                return Ok(());
            }
            if attempt < SETTLE_TRIES {
                std::thread::sleep(SETTLE_DELAY);
            }
        }
        Err(StepError::new(message()))
    }

    pub(super) fn device(
        &self,
        host: &mut HyperVHost,
        location_path: &str,
        instance_id: Option<&str>,
    ) -> Result<DeviceStatus, StepError> {
        host.device(location_path, instance_id)
            .map_err(|error| failed(&error))
    }
}
