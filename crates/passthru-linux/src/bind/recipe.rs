//! The binding recipes as step sequences: what the `assign` and `release` planners emit once
//! they have chosen the devices.
//!
//! Bind (libvirt's and driverctl's order, never `new_id`): load the module, set
//! `driver_override` on every device, unbind every device, probe every device, then check every
//! `driver` link and the group's `/dev/vfio/N`. Release: clear `driver_override` (left set, it
//! keeps the host driver away forever), unbind from vfio-pci, probe, check that the host
//! driver is back.

use std::collections::BTreeSet;
use std::io;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

use super::step::SysfsStep;
use crate::sysfs;

/// The binding state of one device, as the plan starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBinding {
    /// The device.
    pub device: PciAddress,
    /// Its driver now.
    pub driver: Option<String>,
    /// The module providing that driver (`None` when built in or unbound).
    pub module: Option<String>,
    /// Its `driver_override` now.
    pub driver_override: Option<String>,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
}

impl DeviceBinding {
    /// Reads a device's binding state from the host.
    pub fn read(fs: &dyn HostFs, device: PciAddress) -> io::Result<Self> {
        let driver = sysfs::current_driver(fs, device)?;
        let module = driver
            .as_deref()
            .and_then(|driver| sysfs::module_of_driver(fs, driver));
        Ok(Self {
            device,
            module,
            driver,
            driver_override: sysfs::current_override(fs, device).unwrap_or(None),
            iommu_group: sysfs::iommu_group(fs, device)?,
        })
    }
}

/// The driver devices are given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindTarget {
    /// Driver name (`vfio-pci`).
    pub driver: String,
    /// Module that provides it (`vfio-pci`).
    pub module: String,
    /// Whether binding creates `/dev/vfio/<group>` (true for VFIO drivers).
    pub creates_vfio_groups: bool,
}

impl BindTarget {
    /// vfio-pci.
    pub fn vfio_pci() -> Self {
        Self {
            driver: "vfio-pci".into(),
            module: "vfio-pci".into(),
            creates_vfio_groups: true,
        }
    }
}

/// Steps that give `devices` to `target`. `loaded_modules` is [`sysfs::loaded_modules`] now.
/// Devices already bound to the target with the override in place get only the checks.
pub fn bind_steps(
    devices: &[DeviceBinding],
    target: &BindTarget,
    loaded_modules: BTreeSet<String>,
) -> Vec<SysfsStep> {
    let wanted = target.driver.as_str();
    let mut steps = vec![SysfsStep::load_module(
        &target.module,
        Some(wanted),
        loaded_modules,
    )];
    for device in devices {
        if device.driver_override.as_deref() != Some(wanted) {
            steps.push(SysfsStep::set_override(
                device.device,
                wanted,
                device.driver_override.clone(),
            ));
        }
    }
    for device in devices {
        if let Some(driver) = device.driver.as_deref().filter(|driver| *driver != wanted) {
            steps.push(SysfsStep::unbind(
                device.device,
                driver,
                device.module.clone(),
            ));
        }
    }
    for device in devices {
        if device.driver.as_deref() != Some(wanted) {
            steps.push(SysfsStep::probe(device.device, Some(wanted), None));
        }
    }
    for device in devices {
        steps.push(SysfsStep::expect_driver(device.device, Some(wanted)));
    }
    if target.creates_vfio_groups {
        let groups: BTreeSet<u32> = devices.iter().filter_map(|d| d.iommu_group).collect();
        steps.extend(groups.into_iter().map(SysfsStep::expect_vfio_group));
    }
    steps
}

/// Steps that give `devices` (each with the host driver it should get back, when known) back
/// to the host.
pub fn release_steps(devices: &[(DeviceBinding, Option<String>)]) -> Vec<SysfsStep> {
    let mut steps = Vec::new();
    for (device, _) in devices {
        if device.driver_override.is_some() {
            steps.push(SysfsStep::clear_override(
                device.device,
                device.driver_override.clone(),
            ));
        }
    }
    for (device, _) in devices {
        if let Some(driver) = &device.driver {
            steps.push(SysfsStep::unbind(
                device.device,
                driver,
                device.module.clone(),
            ));
        }
    }
    for (device, host_driver) in devices {
        steps.push(SysfsStep::probe(
            device.device,
            host_driver.as_deref(),
            None,
        ));
    }
    for (device, host_driver) in devices {
        if host_driver.is_some() {
            steps.push(SysfsStep::expect_driver(
                device.device,
                host_driver.as_deref(),
            ));
        }
    }
    steps
}
