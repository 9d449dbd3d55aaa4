//! What sysfs says about a device before any VFIO call.

use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

use crate::checks::group::group_viability;
use crate::checks::host::iommu_active;
use crate::inventory::Inventory;
use crate::sysfs;

/// One member of an IOMMU group (PCI or not) and its driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member's name (a PCI address, or a platform device name).
    pub name: String,
    /// Its driver, if any.
    pub driver: Option<String>,
    /// Whether it keeps the group from being viable, by the survey's rule
    /// ([`crate::checks::group::group_viability`]: endpoints on a host driver block, bridges
    /// never do).
    #[serde(default)]
    pub blocking: bool,
}

/// The sysfs facts a VFIO probe starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// The device.
    pub device: PciAddress,
    /// Whether the kernel knows it.
    pub present: bool,
    /// Its driver.
    pub driver: Option<String>,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
    /// Whether any IOMMU is active (`/sys/class/iommu/*`).
    pub iommu_active: bool,
    /// The other members of its group.
    pub group_members: Vec<GroupMember>,
    /// Whether `/dev/vfio/vfio` exists.
    pub container_node: bool,
    /// Whether `/dev/vfio/<group>` exists.
    pub group_node: bool,
}

impl DeviceFacts {
    /// The facts of `device` from the survey's inventory of the host, plus the VFIO device
    /// nodes from `fs` (the host the inventory was read from).
    pub fn from_inventory(fs: &dyn HostFs, inventory: &Inventory, device: PciAddress) -> Self {
        let found = inventory.device(device);
        let iommu_group = found.and_then(|found| found.iommu_group);
        let group_members = iommu_group
            .and_then(|number| inventory.group(number))
            .map(|group| {
                group_viability(inventory, group)
                    .members
                    .into_iter()
                    .filter(|member| member.name != device.to_string())
                    .map(|member| GroupMember {
                        name: member.name,
                        driver: member.driver,
                        blocking: member.blocking,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            device,
            present: found.is_some(),
            driver: found.and_then(|found| found.driver.clone()),
            iommu_group,
            iommu_active: iommu_active(inventory),
            group_members,
            container_node: fs.exists(Path::new(sysfs::VFIO_CONTAINER)),
            group_node: iommu_group.is_some_and(|group| fs.exists(&sysfs::vfio_group_node(group))),
        }
    }

    /// Members whose driver keeps the group from being viable.
    pub fn blocking_members(&self) -> Vec<&GroupMember> {
        self.group_members
            .iter()
            .filter(|member| member.blocking)
            .collect()
    }
}
