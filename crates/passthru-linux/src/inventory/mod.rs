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
mod workers;

use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;

pub use model::*;

use self::device::{DeviceContext, PCI_DEVICES, read_device, read_driver_names};
use self::sysfs_text::{io_reason, quote};
use self::workers::{Scratch, parallel_map};

pub(crate) use sysfs_text::io_reason as io_error_reason;

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
        bus: fs.open_dir(Path::new(PCI_DEVICES)),
        drivers: read_driver_names(fs).ok(),
    };
    let groups_dir = fs.open_dir(Path::new(groups::IOMMU_GROUPS));
    let group_names = groups::list_groups(fs, &mut warnings);
    // Devices and groups are read by the same workers, so a big host keeps every core busy.
    let jobs: Vec<Job<'_>> = named
        .iter()
        .map(|(address, name)| Job::Device(*address, name))
        .chain(
            group_names
                .iter()
                .map(|(number, name)| Job::Group(*number, name)),
        )
        .collect();
    let mut devices = Vec::with_capacity(named.len());
    let mut groups = Vec::with_capacity(group_names.len());
    let done = parallel_map(
        &jobs,
        || Scratch::new(fs),
        |scratch, job| match *job {
            Job::Device(address, name) => {
                Done::Device(Box::new(read_device(fs, &context, scratch, address, name)))
            }
            Job::Group(number, name) => {
                Done::Group(groups::read_group(fs, &*groups_dir, scratch, name, number))
            }
        },
    );
    for done in done {
        match done {
            Done::Device(device) => devices.push(*device),
            Done::Group(group) => groups.push(group),
        }
    }
    devices.sort_by_key(|device| device.address);
    groups.sort_by_key(|group| group.number);
    cross_check(&mut devices, &mut groups);
    let host = host::read_host(fs, &mut warnings);
    Inventory {
        host,
        devices,
        groups,
        warnings,
    }
}

enum Job<'a> {
    Device(PciAddress, &'a str),
    Group(u32, &'a str),
}

enum Done {
    Device(Box<model::PciDevice>),
    Group(IommuGroup),
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
