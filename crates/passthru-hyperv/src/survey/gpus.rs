//! Partitionable GPUs joined to their PnP devices and to the VMs that use them.

use super::{DeviceReport, GpuKind, GpuReport};
use crate::model::{HostAnswers, PnpDevice};
use crate::text::instance::{same_gpu_path as same_gpu, same_instance};

pub(super) fn reports(answers: &HostAnswers, devices: &[DeviceReport]) -> Vec<GpuReport> {
    answers
        .partitionable_gpus
        .iter()
        .map(|gpu| {
            let path = gpu.interface_path();
            let instance_id = path.as_ref().map(|path| path.instance_id.to_string());
            let pnp: Option<&PnpDevice> = instance_id.as_deref().and_then(|id| {
                answers
                    .pnp_devices
                    .iter()
                    .find(|device| same_instance(&device.instance_id, id))
            });
            let report: Option<&DeviceReport> = instance_id.as_deref().and_then(|id| {
                devices
                    .iter()
                    .find(|device| same_instance(&device.host_instance_id, id))
            });
            let kind = if gpu.is_paravirtual() {
                GpuKind::Paravirtual
            } else {
                GpuKind::SrIov
            };
            let driver = pnp.and_then(|device| device.display_driver.as_ref());
            let used_by: Vec<String> = answers
                .vms
                .iter()
                .filter(|vm| {
                    vm.gpu_adapters.iter().any(|adapter| {
                        adapter
                            .instance_path
                            .as_deref()
                            .is_some_and(|path| same_gpu(path, &gpu.name))
                    })
                })
                .map(|vm| vm.name.clone())
                .collect();
            let mut notes = Vec::new();
            match kind {
                GpuKind::Paravirtual => notes.push(
                    "GPU-PV: every VM shares the whole GPU; Min/Max/Optimal partition values have no effect (Easy-GPU-PV #298, #49), so passthru sets none".to_owned(),
                ),
                GpuKind::SrIov => notes.push(format!(
                    "SR-IOV GPU-P: {} partitions (valid: {}); change with `passthru gpu-p partitions`",
                    gpu.partition_count.map_or_else(|| "?".to_owned(), |count| count.to_string()),
                    if gpu.valid_partition_counts.is_empty() {
                        "not reported".to_owned()
                    } else {
                        gpu.valid_partition_counts
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )),
            }
            if gpu.reports_placeholders() {
                notes.push("reports placeholder sizes (1000000000 for VRAM, decode and compute), not real figures".to_owned());
            }
            if pnp.is_none() {
                notes.push(
                    "no PnP device matches this GPU path; the driver may be mid-update (reboot the host if this persists)"
                        .to_owned(),
                );
            }
            GpuReport {
                name: pnp
                    .map(|device| device.display_name().to_owned())
                    .or_else(|| instance_id.clone())
                    .unwrap_or_else(|| gpu.name.clone()),
                instance_path: gpu.name.clone(),
                vendor_device: path.as_ref().and_then(|path| path.instance_id.vendor_device()),
                instance_id,
                kind,
                vram_bytes: driver.and_then(|driver| driver.vram_bytes()),
                driver_version: driver
                    .and_then(|driver| driver.version.clone())
                    .or_else(|| pnp.and_then(|device| device.driver_version.clone())),
                driver_provider: driver.and_then(|driver| driver.provider.clone()),
                location_path: report.and_then(|device| device.location_path.clone()),
                mmio_bytes: report.and_then(|device| device.verdict.mmio_bytes),
                partition_count: gpu.partition_count,
                valid_partition_counts: gpu.valid_partition_counts.clone(),
                placeholder_sizes: gpu.reports_placeholders(),
                used_by,
                notes,
            }
        })
        .collect()
}
