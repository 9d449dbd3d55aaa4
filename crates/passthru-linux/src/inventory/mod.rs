//! Reading a Linux host into an [`Inventory`]: every PCI function, every IOMMU group, and
//! the host's readiness facts, from sysfs and `/proc` under any [`HostFs`] (a live host, a
//! `--root` tree, or a replayed snapshot).
//!
//! Reading never fails as a whole and never panics on host data: whatever cannot be read
//! becomes a warning on the device, the group, or the inventory.

mod device;
mod groups;
pub mod host;
pub mod model;
mod sysfs_text;

use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;

pub use model::*;

use self::device::{DeviceContext, PCI_DEVICES, read_device, read_driver_names};
use self::sysfs_text::{io_reason, quote};

pub(crate) use sysfs_text::io_reason as io_error_reason;

/// Devices per thread below which reading in parallel is not worth the threads.
const DEVICES_PER_THREAD: usize = 64;
/// Most threads used to read devices (sysfs reads scale with cores, then contend).
const MAX_THREADS: usize = 8;

/// Reads the whole host.
pub fn read_inventory(fs: &dyn HostFs) -> Inventory {
    let mut warnings = Vec::new();
    let entries = match fs.read_dir(Path::new(PCI_DEVICES)) {
        Ok(entries) => entries,
        Err(error) => {
            warnings.push(format!(
                "could not list {PCI_DEVICES}: {}; no PCI devices were read",
                io_reason(&error)
            ));
            Vec::new()
        }
    };
    let mut named = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry.name.parse::<PciAddress>() {
            Ok(address) => named.push((address, entry.name)),
            Err(_) => warnings.push(format!(
                "{PCI_DEVICES}/{}: not a PCI address; ignored",
                quote(&entry.name)
            )),
        }
    }
    let context = DeviceContext {
        drivers: read_driver_names(fs).ok(),
    };
    let mut devices = read_devices(fs, &context, &named);
    devices.sort_by_key(|device| device.address);

    let mut groups = groups::read_groups(fs, &mut warnings);
    cross_check(&mut devices, &mut groups);
    let host = host::read_host(fs, &mut warnings);
    Inventory {
        host,
        devices,
        groups,
        warnings,
    }
}

/// Reads the devices, in parallel on big hosts (an SR-IOV host has thousands of functions).
fn read_devices(
    fs: &dyn HostFs,
    context: &DeviceContext,
    named: &[(PciAddress, String)],
) -> Vec<model::PciDevice> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_THREADS)
        .min(named.len() / DEVICES_PER_THREAD)
        .max(1);
    if threads == 1 {
        return named
            .iter()
            .map(|(address, name)| read_device(fs, context, *address, name))
            .collect();
    }
    let chunk = named.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = named
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(address, name)| read_device(fs, context, *address, name))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(devices) => devices,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Makes the devices' `iommu_group` links and the groups' member lists agree, and says so
/// where they do not.
fn cross_check(devices: &mut [model::PciDevice], groups: &mut [IommuGroup]) {
    for group in groups.iter_mut() {
        for address in group.pci_members().collect::<Vec<_>>() {
            match devices.binary_search_by_key(&address, |device| device.address) {
                Ok(index) => {
                    let device = &mut devices[index];
                    match device.iommu_group {
                        None => {
                            device.iommu_group = Some(group.number);
                            device.warnings.push(format!(
                                "iommu_group: no link, but IOMMU group {} lists the device",
                                group.number
                            ));
                        }
                        Some(number) if number != group.number => device.warnings.push(format!(
                            "iommu_group: the link says group {number}, but IOMMU group {} lists the device",
                            group.number
                        )),
                        Some(_) => {}
                    }
                }
                Err(_) => group
                    .warnings
                    .push(format!("member {address} is not in /sys/bus/pci/devices")),
            }
        }
    }
    for device in devices.iter_mut() {
        if let Some(number) = device.iommu_group
            && groups
                .binary_search_by_key(&number, |group| group.number)
                .is_err()
        {
            device.warnings.push(format!(
                "iommu_group: links to group {number}, which /sys/kernel/iommu_groups does not list"
            ));
        }
    }
}
