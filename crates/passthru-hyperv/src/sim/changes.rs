//! What the simulated Hyper-V does for each change, including refusing the way Hyper-V
//! refuses.

use super::messages;
use super::state::{SimDda, SimState};
use crate::error::ErrorRecord;
use crate::mmio;
use crate::model::{AssignedDevice, GpuAdapter, PolicyValue, Vm};
use crate::ops::Op;
use crate::text::instance::same_gpu_path as gpus_same;
use crate::text::location::same_location;

type Outcome = Result<(), Box<ErrorRecord>>;

fn off_vm<'a>(
    state: &'a mut SimState,
    cmdlet: &str,
    name: &str,
) -> Result<&'a mut Vm, Box<ErrorRecord>> {
    let vm = state
        .vm_mut(name)
        .ok_or_else(|| messages::vm_not_found(cmdlet, name))?;
    if !vm.is_off() {
        return Err(messages::invalid_state(cmdlet));
    }
    Ok(vm)
}

fn has_devices(vm: &Vm) -> bool {
    !vm.gpu_adapters.is_empty() || !vm.assigned_devices.is_empty()
}

/// Applies one op to the state.
pub(super) fn apply(state: &mut SimState, op: &Op) -> Outcome {
    match op {
        Op::StopVm { vm, turn_off } => {
            let refuses = state
                .behaviour
                .no_guest_shutdown
                .iter()
                .any(|name| name.eq_ignore_ascii_case(vm));
            let machine = state
                .vm_mut(vm)
                .ok_or_else(|| messages::vm_not_found("Stop-VM", vm))?;
            if machine.is_running() && !*turn_off && refuses {
                return Err(messages::shutdown_refused(&machine.name));
            }
            machine.state = Some("Off".to_owned());
            Ok(())
        }
        Op::StartVm { vm } => start(state, vm),
        Op::SetCacheTypes { vm, enabled } => {
            off_vm(state, "Set-VM", vm)?.guest_controlled_cache_types = Some(*enabled);
            Ok(())
        }
        Op::SetMmio { vm, low, high } => {
            if low.is_some_and(|low| low > u64::from(u32::MAX)) {
                return Err(messages::invalid_argument(
                    "Set-VM",
                    "Cannot bind parameter 'LowMemoryMappedIoSpace'. The value is too large for UInt32.".to_owned(),
                ));
            }
            let machine = off_vm(state, "Set-VM", vm)?;
            if let Some(low) = low {
                machine.low_mmio = Some(*low);
            }
            if let Some(high) = high {
                machine.high_mmio = Some(*high);
            }
            Ok(())
        }
        Op::SetStopAction { vm, action } => {
            off_vm(state, "Set-VM", vm)?.automatic_stop_action = Some(action.name().to_owned());
            Ok(())
        }
        Op::SetMemoryMinimum { vm, minimum } => {
            let machine = state
                .vm_mut(vm)
                .ok_or_else(|| messages::vm_not_found("Set-VMMemory", vm))?;
            if !machine.is_off() {
                let id = machine.id.clone().unwrap_or_default();
                return Err(messages::memory_not_modifiable(&machine.name, &id));
            }
            if machine
                .memory
                .startup
                .is_some_and(|startup| *minimum > startup)
            {
                return Err(messages::invalid_argument(
                    "Set-VMMemory",
                    format!(
                        "The minimum memory of '{}' cannot be larger than its startup memory.",
                        machine.name
                    ),
                ));
            }
            let mut after = machine.memory;
            after.minimum = Some(*minimum);
            if has_devices(machine) && after.dynamic && after.startup != after.minimum {
                return Err(messages::dynamic_memory("Set-VMMemory", &machine.name));
            }
            machine.memory = after;
            Ok(())
        }
        Op::AddGpuAdapter { vm, instance_path } => {
            add_gpu_adapter(state, vm, instance_path.as_deref())
        }
        Op::RemoveGpuAdapter { vm, adapter_id } => {
            let machine = off_vm(state, "Remove-VMGpuPartitionAdapter", vm)?;
            let before = machine.gpu_adapters.len();
            machine
                .gpu_adapters
                .retain(|adapter| adapter.id.as_deref() != Some(adapter_id.as_str()));
            if machine.gpu_adapters.len() == before {
                return Err(messages::not_found(
                    "Remove-VMGpuPartitionAdapter",
                    format!(
                        "The GPU partition adapter '{adapter_id}' was not found on '{}'.",
                        machine.name
                    ),
                ));
            }
            Ok(())
        }
        Op::SetPartitionCount { gpu, count } => {
            let busy = state.vms.iter().any(|vm| {
                !vm.is_off()
                    && vm.gpu_adapters.iter().any(|adapter| {
                        adapter
                            .instance_path
                            .as_deref()
                            .is_some_and(|path| gpus_same(path, gpu))
                    })
            });
            let target = state
                .gpus
                .iter_mut()
                .find(|candidate| gpus_same(&candidate.name, gpu))
                .ok_or_else(|| {
                    messages::not_found(
                        "Set-VMHostPartitionableGpu",
                        format!("No partitionable GPU named '{gpu}' was found."),
                    )
                })?;
            if !target.valid_partition_counts.contains(count) {
                return Err(messages::invalid_argument(
                    "Set-VMHostPartitionableGpu",
                    format!(
                        "The partition count {count} is not one of the GPU's valid partition counts."
                    ),
                ));
            }
            if busy {
                return Err(messages::invalid_state("Set-VMHostPartitionableGpu"));
            }
            target.partition_count = Some(*count);
            Ok(())
        }
        Op::SetPolicy { value, data } => {
            state.host.policy.set(*value, *data);
            Ok(())
        }
        Op::DisableDevice { instance_id } | Op::EnableDevice { instance_id } => {
            let cmdlet = op.cmdlet();
            let disable = matches!(op, Op::DisableDevice { .. });
            let device = state
                .device_by_id_mut(instance_id)
                .filter(|device| device.dda == SimDda::Host)
                .ok_or_else(|| messages::pnp_not_found(cmdlet, instance_id))?;
            device.pnp.problem = Some(if disable { 22 } else { 0 });
            device.pnp.status = Some(if disable { "Error" } else { "OK" }.to_owned());
            Ok(())
        }
        Op::DismountDevice {
            location_path,
            force,
        } => {
            let pcie_control = state.behaviour.os_pcie_control;
            let device = state.device_at_mut(location_path).ok_or_else(|| {
                messages::device_state(
                    "Dismount-VMHostAssignableDevice",
                    location_path,
                    "does not exist",
                )
            })?;
            if device.dda != SimDda::Host {
                return Err(messages::device_state(
                    "Dismount-VMHostAssignableDevice",
                    location_path,
                    "is already dismounted",
                ));
            }
            if !pcie_control {
                return Err(messages::no_os_pcie_control());
            }
            if !*force && !device.mitigation_driver {
                return Err(messages::no_mitigation_driver());
            }
            device.dda = SimDda::Dismounted;
            Ok(())
        }
        Op::MountDevice { location_path } => {
            let device = state.device_at_mut(location_path).ok_or_else(|| {
                messages::device_state(
                    "Mount-VMHostAssignableDevice",
                    location_path,
                    "does not exist",
                )
            })?;
            match &device.dda {
                SimDda::Dismounted => {
                    device.dda = SimDda::Host;
                    Ok(())
                }
                SimDda::Assigned { vm } => Err(messages::device_state(
                    "Mount-VMHostAssignableDevice",
                    location_path,
                    &format!("is assigned to the virtual machine '{vm}'"),
                )),
                SimDda::Host => Err(messages::device_state(
                    "Mount-VMHostAssignableDevice",
                    location_path,
                    "is not dismounted",
                )),
            }
        }
        Op::AddAssignableDevice { vm, location_path } => add_assignable(state, vm, location_path),
        Op::RemoveAssignableDevice { vm, location_path } => {
            let machine = off_vm(state, "Remove-VMAssignableDevice", vm)?;
            let name = machine.name.clone();
            let before = machine.assigned_devices.len();
            machine.assigned_devices.retain(|device| {
                !device
                    .location_path
                    .as_deref()
                    .is_some_and(|path| same_location(path, location_path))
            });
            if machine.assigned_devices.len() == before {
                return Err(messages::not_found(
                    "Remove-VMAssignableDevice",
                    format!(
                        "The virtual machine '{name}' has no assigned device at location path '{location_path}'."
                    ),
                ));
            }
            if let Some(device) = state.device_at_mut(location_path) {
                device.dda = SimDda::Dismounted;
            }
            Ok(())
        }
    }
}

fn add_gpu_adapter(state: &mut SimState, vm: &str, instance_path: Option<&str>) -> Outcome {
    let pins = state.host.has_instance_path();
    if instance_path.is_some() && !pins {
        return Err(messages::no_instance_path());
    }
    let gpu = match instance_path {
        Some(path) => state
            .gpus
            .iter()
            .find(|gpu| gpus_same(&gpu.name, path))
            .ok_or_else(|| {
                messages::not_found(
                    "Add-VMGpuPartitionAdapter",
                    format!("No partitionable GPU with instance path '{path}' was found."),
                )
            })?
            .name
            .clone(),
        None => state
            .gpus
            .first()
            .ok_or_else(|| {
                messages::not_found(
                    "Add-VMGpuPartitionAdapter",
                    "No partitionable GPU was found on this host.".to_owned(),
                )
            })?
            .name
            .clone(),
    };
    let guid = state.fresh_guid();
    let machine = off_vm(state, "Add-VMGpuPartitionAdapter", vm)?;
    if machine.memory_conflicts_with_devices() {
        return Err(messages::dynamic_memory(
            "Add-VMGpuPartitionAdapter",
            &machine.name,
        ));
    }
    let vm_id = machine.id.clone().unwrap_or_default().to_ascii_uppercase();
    machine.gpu_adapters.push(GpuAdapter {
        id: Some(format!("Microsoft:{vm_id}\\{guid}")),
        // Windows 10 records no GPU: it picks one when the VM starts.
        instance_path: pins.then_some(gpu),
    });
    Ok(())
}

fn add_assignable(state: &mut SimState, vm: &str, location_path: &str) -> Outcome {
    off_vm(state, "Add-VMAssignableDevice", vm)?;
    let (dismounted_id, name, location) = {
        let device = state.device_at(location_path).ok_or_else(|| {
            messages::device_state("Add-VMAssignableDevice", location_path, "does not exist")
        })?;
        if device.dda != SimDda::Dismounted {
            return Err(messages::device_state(
                "Add-VMAssignableDevice",
                location_path,
                "is not dismounted and available for assignment",
            ));
        }
        (
            device.dismounted_id(),
            device.pnp.display_name().to_owned(),
            device.location().map(str::to_owned),
        )
    };
    let machine = off_vm(state, "Add-VMAssignableDevice", vm)?;
    if machine.memory_conflicts_with_devices() {
        return Err(messages::dynamic_memory(
            "Add-VMAssignableDevice",
            &machine.name,
        ));
    }
    let vm_name = machine.name.clone();
    machine.assigned_devices.push(AssignedDevice {
        instance_id: Some(dismounted_id),
        location_path: location,
        name: Some(name),
    });
    if let Some(device) = state.device_at_mut(location_path) {
        device.dda = SimDda::Assigned { vm: vm_name };
    }
    Ok(())
}

/// `Start-VM`: the checks Hyper-V makes when a VM powers on.
fn start(state: &mut SimState, name: &str) -> Outcome {
    let server = state.host.is_server() == Some(true);
    let client = state.host.is_server() == Some(false);
    let policy = state.host.policy;
    let bits = state.host.cpu_physical_address_bits;
    let default_base = state.behaviour.high_mmio_base;
    let machine = state
        .vm_mut(name)
        .ok_or_else(|| messages::vm_not_found("Start-VM", name))?;
    if machine.is_running() {
        return Ok(());
    }
    let id = machine.id.clone().unwrap_or_default().to_ascii_uppercase();
    if client && !machine.assigned_devices.is_empty() {
        return Err(messages::hypervisor_feature_unavailable(&machine.name));
    }
    if server
        && PolicyValue::ALL
            .iter()
            .any(|value| policy.get(*value) != Some(0))
        && let Some(path) = machine
            .gpu_adapters
            .iter()
            .find_map(|adapter| adapter.instance_path.clone())
    {
        return Err(messages::gpu_policy(&path));
    }
    if has_devices(machine) && machine.memory_conflicts_with_devices() {
        return Err(messages::dynamic_memory("Start-VM", &machine.name));
    }
    if let (Some(high), Some(limit)) = (machine.high_mmio, bits.and_then(mmio::address_limit)) {
        let base = machine
            .high_mmio_base
            .or(default_base)
            .unwrap_or(mmio::ASSUMED_HIGH_BASE);
        let end = base.saturating_add(high);
        if end > limit {
            return Err(messages::mmio_above_range(
                &machine.name,
                &id,
                end - 0x1000,
                limit,
            ));
        }
    }
    machine.state = Some("Running".to_owned());
    Ok(())
}
