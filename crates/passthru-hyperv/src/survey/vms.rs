//! VMs: settings, partitions, assigned devices, and what will go wrong with them.

use super::{AdapterReport, AssignedReport, DeviceReport, GpuReport, VmReport};
use crate::mmio::{self, human};
use crate::model::{HostAnswers, StopAction};
use crate::text::instance::same_gpu_path as same_gpu;
use crate::text::location::{LocationPath, same_location};

pub(super) fn reports(
    answers: &HostAnswers,
    gpus: &[GpuReport],
    devices: &[DeviceReport],
) -> Vec<VmReport> {
    let bits = answers.host.cpu_physical_address_bits;
    let known_locations: Vec<LocationPath> = answers
        .pnp_devices
        .iter()
        .flat_map(|device| device.location_paths.iter())
        .filter_map(|path| LocationPath::parse(path).ok())
        .collect();
    answers
        .vms
        .iter()
        .map(|vm| {
            let gpu_adapters: Vec<AdapterReport> = vm
                .gpu_adapters
                .iter()
                .map(|adapter| {
                    let gpu = adapter.instance_path.as_deref().and_then(|path| {
                        gpus.iter().find(|gpu| same_gpu(&gpu.instance_path, path))
                    });
                    AdapterReport {
                        id: adapter.id.clone(),
                        instance_path: adapter.instance_path.clone(),
                        gpu: gpu.map(|gpu| gpu.name.clone()),
                        stale: adapter.instance_path.is_some() && gpu.is_none(),
                    }
                })
                .collect();
            let assigned: Vec<AssignedReport> = vm
                .assigned_devices
                .iter()
                .map(|device| {
                    let location = device
                        .location_path
                        .as_deref()
                        .and_then(|path| LocationPath::parse(path).ok());
                    let report = device.location_path.as_deref().and_then(|path| {
                        devices.iter().find(|report| {
                            report
                                .location_path
                                .as_deref()
                                .is_some_and(|own| same_location(own, path))
                        })
                    });
                    AssignedReport {
                        location_path: device.location_path.clone(),
                        instance_id: device.instance_id.clone(),
                        name: report.map(|report| report.name.clone()).or_else(|| device.name.clone()),
                        stale: location.is_none_or(|path| !known_locations.contains(&path)),
                    }
                })
                .collect();

            let mut problems = Vec::new();
            let has_devices = !gpu_adapters.is_empty() || !assigned.is_empty();
            if has_devices && vm.memory_conflicts_with_devices() {
                problems.push(format!(
                    "dynamic memory is on with startup {} but minimum {}; Hyper-V requires them to be equal with a GPU partition or assigned device",
                    vm.memory.startup.map_or_else(|| "?".to_owned(), human),
                    vm.memory.minimum.map_or_else(|| "?".to_owned(), human)
                ));
            }
            if has_devices
                && vm.automatic_stop_action.as_deref().and_then(StopAction::parse) == Some(StopAction::Save)
            {
                problems.push("AutomaticStopAction is Save, which Hyper-V cannot do with a GPU partition or assigned device; set it to TurnOff or ShutDown".to_owned());
            }
            let has_gpu = !gpu_adapters.is_empty()
                || assigned.iter().any(|device| {
                    device.location_path.as_deref().is_some_and(|path| {
                        devices.iter().any(|report| {
                            report.class.as_deref() == Some("Display")
                                && report.location_path.as_deref().is_some_and(|own| same_location(own, path))
                        })
                    })
                });
            if has_gpu && vm.guest_controlled_cache_types == Some(false) {
                problems.push("GuestControlledCacheTypes is off, so the guest cannot use write-combining for GPU memory (slow)".to_owned());
            }
            if let Some(high) = vm.high_mmio {
                if !mmio::high_fits(high, bits, vm.high_mmio_base) {
                    problems.push(format!(
                        "its upper MMIO region ({}) ends above what this {}-bit CPU can address; the VM will not start (reduce HighMemoryMappedIoSpace to {} or less)",
                        human(high),
                        bits.unwrap_or_default(),
                        human(mmio::max_high(bits, vm.high_mmio_base))
                    ));
                }
                if !gpu_adapters.is_empty() && high < mmio::GPU_P_MIN_HIGH {
                    problems.push(format!(
                        "HighMemoryMappedIoSpace is {}; GPU partitions below 8 GiB often show Code 43 in the guest (Easy-GPU-PV #298)",
                        human(high)
                    ));
                }
                let need: u64 = assigned
                    .iter()
                    .filter_map(|device| {
                        let path = device.location_path.as_deref()?;
                        devices
                            .iter()
                            .find(|report| report.location_path.as_deref().is_some_and(|own| same_location(own, path)))?
                            .verdict
                            .mmio_bytes
                    })
                    .sum();
                if need > high {
                    problems.push(format!(
                        "its assigned devices need {} of MMIO but HighMemoryMappedIoSpace is {}",
                        human(need),
                        human(high)
                    ));
                }
            }
            for adapter in gpu_adapters.iter().filter(|adapter| adapter.stale) {
                problems.push(format!(
                    "a GPU partition points at {}, which is not a partitionable GPU here any more; the VM will not start until it is removed (`passthru gpu-p remove --vm {}`)",
                    adapter.instance_path.as_deref().unwrap_or("?"),
                    vm.name
                ));
            }
            for device in assigned.iter().filter(|device| device.stale) {
                problems.push(format!(
                    "an assigned device at {} no longer exists on the host; remove the record with `passthru release --vm {} \"{}\"`",
                    device.location_path.as_deref().unwrap_or("?"),
                    vm.name,
                    device.location_path.as_deref().unwrap_or("?")
                ));
            }
            VmReport {
                name: vm.name.clone(),
                id: vm.id.clone(),
                state: vm.state.clone(),
                generation: vm.generation,
                version: vm.version.clone(),
                low_mmio: vm.low_mmio,
                high_mmio: vm.high_mmio,
                high_mmio_base: vm.high_mmio_base,
                cache_types: vm.guest_controlled_cache_types,
                stop_action: vm.automatic_stop_action.clone(),
                memory: vm.memory.into(),
                gpu_adapters,
                devices: assigned,
                problems,
            }
        })
        .collect()
}
