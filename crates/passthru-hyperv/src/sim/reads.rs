//! The simulator's answers to read requests, in exactly the JSON shapes the real scripts print.

use serde_json::{Value, json};

use super::messages;
use super::state::{SimDda, SimState};
use crate::error::ErrorRecord;
use crate::model::{DeviceStatus, HostAssignableDevice, PnpDevice};
use crate::query::Query;
use crate::text::location::same_location;

const HOST_PATH: &str = r"\\SIMULATED\root\cimv2";

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A WMI object path with the key value escaped the way WMI prints it.
fn entity_path(instance_id: &str) -> String {
    format!(
        "{HOST_PATH}:Win32_PnPEntity.DeviceID=\"{}\"",
        instance_id.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

fn survey(state: &SimState) -> Value {
    let mut pnp_devices: Vec<PnpDevice> = Vec::new();
    let mut allocated = Vec::new();
    let mut ranges = Vec::new();
    let mut dismounted = Vec::new();
    for device in &state.devices {
        match &device.dda {
            SimDda::Host => {
                let mut pnp = device.pnp.clone();
                pnp.present = Some(true);
                if pnp.status.is_none() {
                    pnp.status = Some(if pnp.is_disabled() { "Error" } else { "OK" }.to_owned());
                }
                if !pnp.is_disabled() {
                    for irq in &device.irqs {
                        allocated.push(json!({
                            "antecedent": format!("{HOST_PATH}:Win32_IRQResource.IRQNumber={irq}"),
                            "dependent": entity_path(&pnp.instance_id),
                        }));
                    }
                    for range in &device.memory {
                        if let Some(start) = range.start {
                            allocated.push(json!({
                                "antecedent": format!("{HOST_PATH}:Win32_DeviceMemoryAddress.StartingAddress=\"{start}\""),
                                "dependent": entity_path(&pnp.instance_id),
                            }));
                        }
                    }
                }
                pnp_devices.push(pnp);
            }
            SimDda::Dismounted | SimDda::Assigned { .. } => {
                let mut ghost = device.pnp.clone();
                ghost.present = Some(false);
                ghost.status = Some("Unknown".to_owned());
                ghost.display_driver = None;
                pnp_devices.push(ghost);
                if device.dda == SimDda::Dismounted {
                    let dismounted_id = device.dismounted_id();
                    pnp_devices.push(PnpDevice {
                        instance_id: dismounted_id.clone(),
                        name: Some(format!("{} - Dismounted", device.pnp.display_name())),
                        class: Some("System".to_owned()),
                        status: Some("OK".to_owned()),
                        present: Some(true),
                        problem: Some(0),
                        location_paths: device.pnp.location_paths.clone(),
                        pci_device_type: device.pnp.pci_device_type,
                        pci_base_class: device.pnp.pci_base_class,
                        pci_sub_class: device.pnp.pci_sub_class,
                        acs_up: device.pnp.acs_up,
                        reserved_memory: device.pnp.reserved_memory,
                        ..PnpDevice::default()
                    });
                    dismounted.push(HostAssignableDevice {
                        instance_id: Some(dismounted_id),
                        location_path: device.location().map(str::to_owned),
                    });
                }
            }
        }
        ranges.extend(device.memory.iter().copied());
    }
    let gpu_cmdlet = if state.host.cmdlets.get_vm_host_partitionable_gpu {
        Some("Get-VMHostPartitionableGpu")
    } else if state.host.cmdlets.get_vm_partitionable_gpu {
        Some("Get-VMPartitionableGpu")
    } else {
        None
    };
    json!({
        "host": to_value(&state.host),
        "gpuCmdlet": gpu_cmdlet,
        "partitionableGpus": to_value(&partitionable(state)),
        "pnpDevices": to_value(&pnp_devices),
        "allocatedResources": allocated,
        "memoryRanges": to_value(&ranges),
        "hostAssignableDevices": to_value(&dismounted),
        "vms": to_value(&state.vms),
        "disks": to_value(&state.disks),
        "problems": [],
    })
}

/// GPUs that are partitionable right now: a GPU given away with DDA is not.
fn partitionable(state: &SimState) -> Vec<crate::model::PartitionableGpu> {
    state
        .gpus
        .iter()
        .filter(|gpu| {
            let Some(path) = gpu.interface_path() else {
                return true;
            };
            let id = path.instance_id.to_string();
            state
                .devices
                .iter()
                .find(|device| device.pnp.instance_id.eq_ignore_ascii_case(&id))
                .is_none_or(|device| device.dda == SimDda::Host)
        })
        .cloned()
        .collect()
}

fn device_status(state: &SimState, location: &str, instance_id: Option<&str>) -> DeviceStatus {
    let device = state.device_at(location);
    let mut status = DeviceStatus {
        location_path: location.to_owned(),
        ..DeviceStatus::default()
    };
    let assigned_to: Vec<String> = state
        .vms
        .iter()
        .filter(|vm| {
            vm.assigned_devices.iter().any(|assigned| {
                assigned
                    .location_path
                    .as_deref()
                    .is_some_and(|path| same_location(path, location))
            })
        })
        .map(|vm| vm.name.clone())
        .collect();
    status.assigned_to = assigned_to;
    if let Some(device) = device {
        let known = instance_id.is_none_or(|id| id.eq_ignore_ascii_case(&device.pnp.instance_id));
        if known {
            status.host_instance_id = Some(device.pnp.instance_id.clone());
            status.present = Some(device.dda == SimDda::Host);
            status.problem = device.pnp.problem;
        }
        if device.dda == SimDda::Dismounted {
            status.dismounted_instance_id = Some(device.dismounted_id());
        }
    }
    status
}

/// Answers one query.
pub(super) fn answer(state: &SimState, query: &Query) -> Result<Vec<Value>, Box<ErrorRecord>> {
    Ok(match query {
        Query::Survey => vec![survey(state)],
        Query::Vm { name } => {
            let vm = state
                .vm(name)
                .ok_or_else(|| messages::vm_not_found("Get-VM", name))?;
            vec![to_value(vm)]
        }
        Query::Device {
            location_path,
            instance_id,
        } => vec![to_value(&device_status(
            state,
            location_path,
            instance_id.as_deref(),
        ))],
        Query::Policy => vec![to_value(&state.host.policy)],
        Query::PartitionableGpus => partitionable(state).iter().map(to_value).collect(),
    })
}
