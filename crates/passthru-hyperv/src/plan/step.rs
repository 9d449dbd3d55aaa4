//! [`HyperVStep`]: one journaled, verifiable, undoable change on a Hyper-V host.
//!
//! Each step carries the state from before it (captured when the plan was made), so `undo`
//! needs nothing but the journal. Undo first looks at the host and only acts where the change
//! is still there: a step interrupted before it acted, or already undone, costs nothing.

use passthru_core::plan::{Step, StepError, StepView};
use serde::{Deserialize, Serialize};

use crate::client::{HostError, HyperVHost};
use crate::mmio::human;
use crate::model::{DeviceStatus, PolicyValue, StopAction};
use crate::ops::Op;
use crate::text::instance::same_gpu_path;

/// How often a device's new state is looked for before verification gives up.
const SETTLE_TRIES: u32 = 10;
/// The pause between two looks.
const SETTLE_DELAY: std::time::Duration = std::time::Duration::from_millis(300);

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum HyperVStep {
    /// Shut a running VM down (undo: start it again).
    StopVm {
        /// The VM.
        vm: String,
        /// Power off instead of asking the guest.
        turn_off: bool,
    },
    /// Set `GuestControlledCacheTypes`.
    SetCacheTypes {
        /// The VM.
        vm: String,
        /// New value.
        to: bool,
        /// Value before.
        from: Option<bool>,
    },
    /// Set the MMIO gaps.
    SetMmio {
        /// The VM.
        vm: String,
        /// New low gap, when it changes.
        low_to: Option<u64>,
        /// Low gap before.
        low_from: Option<u64>,
        /// New high gap, when it changes.
        high_to: Option<u64>,
        /// High gap before.
        high_from: Option<u64>,
    },
    /// Set `AutomaticStopAction`.
    SetStopAction {
        /// The VM.
        vm: String,
        /// New action.
        to: StopAction,
        /// Action before.
        from: Option<StopAction>,
    },
    /// Set the minimum memory (to the startup memory, for dynamic memory with devices).
    SetMemoryMinimum {
        /// The VM.
        vm: String,
        /// New minimum.
        to: u64,
        /// Minimum before.
        from: u64,
    },
    /// Set a Hyper-V group-policy value.
    SetPolicy {
        /// Which value.
        value: PolicyValue,
        /// New data.
        to: u32,
        /// Data before (`None`: the value did not exist).
        from: Option<u32>,
    },
    /// Add a GPU partition adapter.
    AddGpuAdapter {
        /// The VM.
        vm: String,
        /// The partitionable GPU (`None` on Windows 10, which cannot pin one).
        instance_path: Option<String>,
        /// The GPU's name, for people.
        gpu_name: String,
        /// Adapter ids the VM had before (undo removes any other).
        existing: Vec<String>,
    },
    /// Remove a GPU partition adapter.
    RemoveGpuAdapter {
        /// The VM.
        vm: String,
        /// The adapter's id.
        adapter_id: String,
        /// The GPU it was pinned to (undo re-adds a partition of it).
        instance_path: Option<String>,
        /// The GPU's name, for people.
        gpu_name: String,
    },
    /// Set an SR-IOV GPU's partition count.
    SetPartitionCount {
        /// The partitionable GPU's name.
        gpu: String,
        /// Its name, for people.
        gpu_name: String,
        /// New count.
        to: u32,
        /// Count before.
        from: u32,
    },
    /// Disable a device on the host.
    DisableDevice {
        /// Host instance id.
        instance_id: String,
        /// Location path.
        location_path: String,
        /// Device name.
        name: String,
    },
    /// Dismount a device from the host.
    DismountDevice {
        /// Location path.
        location_path: String,
        /// Host instance id.
        instance_id: String,
        /// Device name.
        name: String,
        /// Pass `-Force`.
        force: bool,
    },
    /// Assign a dismounted device to a VM.
    AddAssignableDevice {
        /// The VM.
        vm: String,
        /// Location path.
        location_path: String,
        /// Host instance id.
        instance_id: String,
        /// Device name.
        name: String,
    },
    /// Take a device out of a VM (it stays dismounted).
    RemoveAssignableDevice {
        /// The VM.
        vm: String,
        /// Location path.
        location_path: String,
        /// Host instance id, when the device still exists.
        instance_id: Option<String>,
        /// Device name.
        name: String,
        /// The record points at hardware that no longer exists (cannot be re-added on undo).
        stale: bool,
    },
    /// Mount a dismounted device back on the host.
    MountDevice {
        /// Location path.
        location_path: String,
        /// Host instance id.
        instance_id: String,
        /// Device name.
        name: String,
    },
    /// Enable a device on the host.
    EnableDevice {
        /// Host instance id.
        instance_id: String,
        /// Location path.
        location_path: String,
        /// Device name.
        name: String,
    },
}

fn failed(error: &HostError) -> StepError {
    let message = match error {
        HostError::HyperV(error) => error.summary(),
        other => other.to_string(),
    };
    let mut step_error = StepError::new(message);
    if let Some(help) = error.help() {
        step_error = step_error.with_help(help);
    }
    step_error
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), StepError> {
    if ok {
        Ok(())
    } else {
        Err(StepError::new(message()))
    }
}

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

    fn device(
        &self,
        host: &mut HyperVHost,
        location_path: &str,
        instance_id: Option<&str>,
    ) -> Result<DeviceStatus, StepError> {
        host.device(location_path, instance_id)
            .map_err(|error| failed(&error))
    }
}

impl Step for HyperVStep {
    type Host = HyperVHost;
    const KIND: &'static str = "hyperv";

    fn view(&self) -> StepView {
        let mut view = StepView::new(self.summary());
        for line in self.apply_op().powershell().lines() {
            view = view.action(line);
        }
        view
    }

    fn apply(&self, host: &mut HyperVHost) -> Result<(), StepError> {
        host.perform(&self.apply_op())
            .map_err(|error| failed(&error))
    }

    fn verify(&self, host: &mut HyperVHost) -> Result<(), StepError> {
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

    fn undo(&self, host: &mut HyperVHost) -> Result<(), StepError> {
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
}
