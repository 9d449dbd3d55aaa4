//! Undo: put back the state from before a step, looking first, so that a step that never
//! acted (or was undone already) costs nothing.

use passthru_core::plan::StepError;

use super::{HyperVStep, failed};
use crate::client::HyperVHost;
use crate::model::StopAction;
use crate::ops::Op;
use crate::text::instance::same_gpu_path;

impl HyperVStep {
    /// [`Step::undo`]: restores the state from before, where the change is still there.
    pub(super) fn revert(&self, host: &mut HyperVHost) -> Result<(), StepError> {
        let perform =
            |host: &mut HyperVHost, op: Op| host.perform(&op).map_err(|error| failed(&error));
        let vm = |host: &mut HyperVHost, name: &str| host.vm(name).map_err(|error| failed(&error));
        match self {
            Self::StopVm { vm: name, .. } => {
                if vm(host, name)?.is_off() {
                    perform(host, Op::StartVm { vm: name.clone() })?;
                }
                Ok(())
            }
            Self::SetCacheTypes { vm: name, from, .. } => {
                let machine = vm(host, name)?;
                match from {
                    Some(from) if machine.guest_controlled_cache_types != Some(*from) => perform(
                        host,
                        Op::SetCacheTypes {
                            vm: name.clone(),
                            enabled: *from,
                        },
                    ),
                    _ => Ok(()),
                }
            }
            Self::SetMmio {
                vm: name,
                low_to,
                low_from,
                high_to,
                high_from,
            } => {
                let machine = vm(host, name)?;
                let low = low_to
                    .and(*low_from)
                    .filter(|from| machine.low_mmio != Some(*from));
                let high = high_to
                    .and(*high_from)
                    .filter(|from| machine.high_mmio != Some(*from));
                if low.is_none() && high.is_none() {
                    return Ok(());
                }
                perform(
                    host,
                    Op::SetMmio {
                        vm: name.clone(),
                        low,
                        high,
                    },
                )
            }
            Self::SetStopAction { vm: name, from, .. } => {
                let machine = vm(host, name)?;
                match from {
                    Some(from)
                        if machine
                            .automatic_stop_action
                            .as_deref()
                            .and_then(StopAction::parse)
                            != Some(*from) =>
                    {
                        perform(
                            host,
                            Op::SetStopAction {
                                vm: name.clone(),
                                action: *from,
                            },
                        )
                    }
                    _ => Ok(()),
                }
            }
            Self::SetMemoryMinimum { vm: name, from, .. } => {
                if vm(host, name)?.memory.minimum == Some(*from) {
                    return Ok(());
                }
                perform(
                    host,
                    Op::SetMemoryMinimum {
                        vm: name.clone(),
                        minimum: *from,
                    },
                )
            }
            Self::SetPolicy { value, from, .. } => {
                if host.policy().map_err(|error| failed(&error))?.get(*value) == *from {
                    return Ok(());
                }
                perform(
                    host,
                    Op::SetPolicy {
                        value: *value,
                        data: *from,
                    },
                )
            }
            Self::AddGpuAdapter {
                vm: name, existing, ..
            } => {
                let machine = vm(host, name)?;
                for adapter in machine.gpu_adapters {
                    if let Some(id) = adapter.id.filter(|id| !existing.contains(id)) {
                        perform(
                            host,
                            Op::RemoveGpuAdapter {
                                vm: name.clone(),
                                adapter_id: id,
                            },
                        )?;
                    }
                }
                Ok(())
            }
            Self::RemoveGpuAdapter {
                vm: name,
                adapter_id,
                instance_path,
                ..
            } => {
                let machine = vm(host, name)?;
                let still_there = machine.gpu_adapters.iter().any(|adapter| {
                    adapter.id.as_deref() == Some(adapter_id)
                        || match (&adapter.instance_path, instance_path) {
                            (Some(a), Some(b)) => same_gpu_path(a, b),
                            _ => false,
                        }
                });
                if still_there {
                    return Ok(());
                }
                perform(
                    host,
                    Op::AddGpuAdapter {
                        vm: name.clone(),
                        instance_path: instance_path.clone(),
                    },
                )
            }
            Self::SetPartitionCount { gpu, from, .. } => {
                let gpus = host.partitionable_gpus().map_err(|error| failed(&error))?;
                let now = gpus
                    .iter()
                    .find(|candidate| same_gpu_path(&candidate.name, gpu))
                    .and_then(|candidate| candidate.partition_count);
                if now == Some(*from) {
                    return Ok(());
                }
                perform(
                    host,
                    Op::SetPartitionCount {
                        gpu: gpu.clone(),
                        count: *from,
                    },
                )
            }
            Self::DisableDevice {
                instance_id,
                location_path,
                ..
            } => self.restore_enabled(host, instance_id, location_path, true),
            Self::DismountDevice { location_path, .. } => {
                if self.device(host, location_path, None)?.dismounted() {
                    perform(
                        host,
                        Op::MountDevice {
                            location_path: location_path.clone(),
                        },
                    )?;
                }
                Ok(())
            }
            Self::AddAssignableDevice {
                vm: name,
                location_path,
                ..
            } => {
                let status = self.device(host, location_path, None)?;
                if status
                    .assigned_to
                    .iter()
                    .any(|owner| owner.eq_ignore_ascii_case(name))
                {
                    perform(
                        host,
                        Op::RemoveAssignableDevice {
                            vm: name.clone(),
                            location_path: location_path.clone(),
                        },
                    )?;
                }
                Ok(())
            }
            Self::RemoveAssignableDevice { stale: true, .. } => Ok(()),
            Self::RemoveAssignableDevice {
                vm: name,
                location_path,
                ..
            } => {
                let status = self.device(host, location_path, None)?;
                if status.dismounted() {
                    perform(
                        host,
                        Op::AddAssignableDevice {
                            vm: name.clone(),
                            location_path: location_path.clone(),
                        },
                    )?;
                }
                Ok(())
            }
            Self::MountDevice {
                location_path,
                instance_id,
                ..
            } => {
                let status = self.device(host, location_path, Some(instance_id))?;
                if status.present == Some(true)
                    && status.dismounted_instance_id.is_none()
                    && status.assigned_to.is_empty()
                {
                    perform(
                        host,
                        Op::DismountDevice {
                            location_path: location_path.clone(),
                            force: true,
                        },
                    )?;
                }
                Ok(())
            }
            Self::EnableDevice {
                instance_id,
                location_path,
                ..
            } => self.restore_enabled(host, instance_id, location_path, false),
        }
    }

    /// Undo of enabling or disabling: puts the device back to `enabled` if it is on the host
    /// in the other state (and leaves it alone otherwise).
    fn restore_enabled(
        &self,
        host: &mut HyperVHost,
        instance_id: &str,
        location_path: &str,
        enabled: bool,
    ) -> Result<(), StepError> {
        let status = self.device(host, location_path, Some(instance_id))?;
        let wrong = if enabled {
            status.on_host_disabled()
        } else {
            status.on_host_enabled()
        };
        if !wrong {
            return Ok(());
        }
        let instance_id = instance_id.to_owned();
        let op = if enabled {
            Op::EnableDevice { instance_id }
        } else {
            Op::DisableDevice { instance_id }
        };
        host.perform(&op).map_err(|error| failed(&error))
    }
}
