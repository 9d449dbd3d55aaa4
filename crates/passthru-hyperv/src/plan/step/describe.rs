//! How steps present themselves: the op that applies each, the ops that undo it, summaries.

use passthru_core::plan::StepView;

use super::HyperVStep;
use crate::mmio::human;
use crate::model::StopAction;
use crate::ops::Op;

fn show_action(action: Option<StopAction>) -> &'static str {
    action.map_or("unset", StopAction::name)
}

impl HyperVStep {
    /// The op that makes the change.
    pub fn apply_op(&self) -> Op {
        match self {
            Self::StopVm { vm, turn_off } => Op::StopVm {
                vm: vm.clone(),
                turn_off: *turn_off,
            },
            Self::SetCacheTypes { vm, to, .. } => Op::SetCacheTypes {
                vm: vm.clone(),
                enabled: *to,
            },
            Self::SetMmio {
                vm,
                low_to,
                high_to,
                ..
            } => Op::SetMmio {
                vm: vm.clone(),
                low: *low_to,
                high: *high_to,
            },
            Self::SetStopAction { vm, to, .. } => Op::SetStopAction {
                vm: vm.clone(),
                action: *to,
            },
            Self::SetMemoryMinimum { vm, to, .. } => Op::SetMemoryMinimum {
                vm: vm.clone(),
                minimum: *to,
            },
            Self::SetPolicy { value, to, .. } => Op::SetPolicy {
                value: *value,
                data: Some(*to),
            },
            Self::AddGpuAdapter {
                vm, instance_path, ..
            } => Op::AddGpuAdapter {
                vm: vm.clone(),
                instance_path: instance_path.clone(),
            },
            Self::RemoveGpuAdapter { vm, adapter_id, .. } => Op::RemoveGpuAdapter {
                vm: vm.clone(),
                adapter_id: adapter_id.clone(),
            },
            Self::SetPartitionCount { gpu, to, .. } => Op::SetPartitionCount {
                gpu: gpu.clone(),
                count: *to,
            },
            Self::DisableDevice { instance_id, .. } => Op::DisableDevice {
                instance_id: instance_id.clone(),
            },
            Self::DismountDevice {
                location_path,
                force,
                ..
            } => Op::DismountDevice {
                location_path: location_path.clone(),
                force: *force,
            },
            Self::AddAssignableDevice {
                vm, location_path, ..
            } => Op::AddAssignableDevice {
                vm: vm.clone(),
                location_path: location_path.clone(),
            },
            Self::RemoveAssignableDevice {
                vm, location_path, ..
            } => Op::RemoveAssignableDevice {
                vm: vm.clone(),
                location_path: location_path.clone(),
            },
            Self::MountDevice { location_path, .. } => Op::MountDevice {
                location_path: location_path.clone(),
            },
            Self::EnableDevice { instance_id, .. } => Op::EnableDevice {
                instance_id: instance_id.clone(),
            },
        }
    }

    /// The ops that undo the change from a state where it fully took effect (what `undo`
    /// runs; shown in exported scripts and `undo --dry-run`).
    pub fn undo_ops(&self) -> Vec<Op> {
        match self {
            Self::StopVm { vm, .. } => vec![Op::StartVm { vm: vm.clone() }],
            Self::SetCacheTypes { vm, from, .. } => from
                .map(|enabled| Op::SetCacheTypes {
                    vm: vm.clone(),
                    enabled,
                })
                .into_iter()
                .collect(),
            Self::SetMmio {
                vm,
                low_to,
                low_from,
                high_to,
                high_from,
            } => {
                let low = low_to.and(*low_from);
                let high = high_to.and(*high_from);
                if low.is_none() && high.is_none() {
                    Vec::new()
                } else {
                    vec![Op::SetMmio {
                        vm: vm.clone(),
                        low,
                        high,
                    }]
                }
            }
            Self::SetStopAction { vm, from, .. } => from
                .map(|action| Op::SetStopAction {
                    vm: vm.clone(),
                    action,
                })
                .into_iter()
                .collect(),
            Self::SetMemoryMinimum { vm, from, .. } => vec![Op::SetMemoryMinimum {
                vm: vm.clone(),
                minimum: *from,
            }],
            Self::SetPolicy { value, from, .. } => vec![Op::SetPolicy {
                value: *value,
                data: *from,
            }],
            Self::AddGpuAdapter { vm, .. } => vec![Op::RemoveGpuAdapter {
                vm: vm.clone(),
                adapter_id: "<the adapter this step added>".to_owned(),
            }],
            Self::RemoveGpuAdapter {
                vm, instance_path, ..
            } => vec![Op::AddGpuAdapter {
                vm: vm.clone(),
                instance_path: instance_path.clone(),
            }],
            Self::SetPartitionCount { gpu, from, .. } => vec![Op::SetPartitionCount {
                gpu: gpu.clone(),
                count: *from,
            }],
            Self::DisableDevice { instance_id, .. } => vec![Op::EnableDevice {
                instance_id: instance_id.clone(),
            }],
            Self::DismountDevice { location_path, .. } => vec![Op::MountDevice {
                location_path: location_path.clone(),
            }],
            Self::AddAssignableDevice {
                vm, location_path, ..
            } => vec![Op::RemoveAssignableDevice {
                vm: vm.clone(),
                location_path: location_path.clone(),
            }],
            Self::RemoveAssignableDevice { stale: true, .. } => Vec::new(),
            Self::RemoveAssignableDevice {
                vm, location_path, ..
            } => vec![Op::AddAssignableDevice {
                vm: vm.clone(),
                location_path: location_path.clone(),
            }],
            Self::MountDevice { location_path, .. } => vec![Op::DismountDevice {
                location_path: location_path.clone(),
                force: true,
            }],
            Self::EnableDevice { instance_id, .. } => vec![Op::DisableDevice {
                instance_id: instance_id.clone(),
            }],
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        match self {
            Self::StopVm {
                vm,
                turn_off: false,
            } => format!("Shut down VM '{vm}' (it is running; undo starts it again)"),
            Self::StopVm { vm, turn_off: true } => {
                format!("Turn off VM '{vm}' (it is running; undo starts it again)")
            }
            Self::SetCacheTypes { vm, to: true, .. } => format!(
                "Let the guest of '{vm}' control cache types (write-combining for device memory)"
            ),
            Self::SetCacheTypes { vm, to: false, .. } => {
                format!("Stop letting the guest of '{vm}' control cache types")
            }
            Self::SetMmio {
                vm,
                low_to,
                low_from,
                high_to,
                high_from,
            } => {
                let mut parts = Vec::new();
                if let Some(low) = low_to {
                    parts.push(format!(
                        "low {} -> {}",
                        low_from.map_or_else(|| "default".to_owned(), human),
                        human(*low)
                    ));
                }
                if let Some(high) = high_to {
                    parts.push(format!(
                        "high {} -> {}",
                        high_from.map_or_else(|| "default".to_owned(), human),
                        human(*high)
                    ));
                }
                format!("Size the MMIO space of '{vm}': {}", parts.join(", "))
            }
            Self::SetStopAction { vm, to, from } => format!(
                "Make '{vm}' {} when the host shuts down (AutomaticStopAction {} -> {})",
                match to {
                    StopAction::TurnOff => "turn off",
                    StopAction::ShutDown => "shut down",
                    StopAction::Save => "save its state",
                },
                show_action(*from),
                to.name()
            ),
            Self::SetMemoryMinimum { vm, to, from } => format!(
                "Set the minimum memory of '{vm}' to its startup memory, {} (was {}): Hyper-V requires it with dynamic memory and devices",
                human(*to),
                human(*from)
            ),
            Self::SetPolicy { value, to, from } => format!(
                "Set the Hyper-V policy value {} to {to} (was {})",
                value.name(),
                from.map_or_else(|| "not set".to_owned(), |from| from.to_string())
            ),
            Self::AddGpuAdapter {
                vm,
                gpu_name,
                instance_path,
                ..
            } => match instance_path {
                Some(_) => format!("Add a partition of {gpu_name} to '{vm}'"),
                None => format!(
                    "Add a GPU partition to '{vm}' (this Windows build lets Hyper-V pick the GPU at start; expected: {gpu_name})"
                ),
            },
            Self::RemoveGpuAdapter { vm, gpu_name, .. } => {
                format!("Remove the partition of {gpu_name} from '{vm}'")
            }
            Self::SetPartitionCount {
                gpu_name, to, from, ..
            } => format!("Split {gpu_name} into {to} partitions (was {from})"),
            Self::DisableDevice { name, .. } => format!("Disable {name} on the host"),
            Self::DismountDevice {
                name,
                location_path,
                ..
            } => {
                format!("Dismount {name} from the host ({location_path})")
            }
            Self::AddAssignableDevice { vm, name, .. } => format!("Assign {name} to '{vm}'"),
            Self::RemoveAssignableDevice {
                vm,
                name,
                stale: false,
                ..
            } => format!("Take {name} out of '{vm}'"),
            Self::RemoveAssignableDevice {
                vm,
                location_path,
                stale: true,
                ..
            } => format!(
                "Remove the stale device record {location_path} from '{vm}' (the hardware is gone; undo cannot restore the record)"
            ),
            Self::MountDevice { name, .. } => format!("Mount {name} back on the host"),
            Self::EnableDevice { name, .. } => format!("Enable {name} on the host"),
        }
    }

    /// How the undo presents itself (`passthru undo --dry-run`).
    pub fn undo_view(&self) -> StepView {
        let mut view = StepView::new(format!("Undo: {}", self.summary()));
        for op in self.undo_ops() {
            for line in op.powershell().lines() {
                view = view.action(line);
            }
        }
        view
    }
}
