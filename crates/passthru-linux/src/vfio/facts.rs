//! What sysfs says about a device before any VFIO call.

use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

use crate::sysfs;

/// One member of an IOMMU group (PCI or not) and its driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member's name (a PCI address, or a platform device name).
    pub name: String,
    /// Its driver, if any.
    pub driver: Option<String>,
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

/// Whether a member bound to `driver` still lets its group be viable for VFIO: unbound, a VFIO
/// driver (vfio-pci or a variant such as `mlx5_vfio_pci`), `pci-stub`, or `pcieport` (which
/// manages no DMA, Linux 5.19+).
pub fn driver_keeps_group_viable(driver: Option<&str>) -> bool {
    match driver {
        None => true,
        Some(name) => name.contains("vfio") || name == "pci-stub" || name == "pcieport",
    }
}

impl DeviceFacts {
    /// Reads the facts from the host.
    pub fn gather(fs: &dyn HostFs, device: PciAddress) -> Self {
        let present = fs.exists(&sysfs::device_dir(device));
        let iommu_group = sysfs::iommu_group(fs, device).ok().flatten();
        let iommu_active = fs
            .read_dir(Path::new("/sys/class/iommu"))
            .is_ok_and(|entries| !entries.is_empty());
        let mut group_members = Vec::new();
        if let Some(group) = iommu_group {
            let dir = format!("/sys/kernel/iommu_groups/{group}/devices");
            for entry in fs.read_dir(Path::new(&dir)).unwrap_or_default() {
                if entry.name == device.to_string() {
                    continue;
                }
                let member = Path::new(&dir).join(&entry.name);
                let driver = sysfs::canonicalize(fs, &member)
                    .ok()
                    .and_then(|real| fs.read_link(&real.join("driver")).ok())
                    .and_then(|target| {
                        target
                            .file_name()
                            .map(|name| name.to_string_lossy().into_owned())
                    });
                group_members.push(GroupMember {
                    name: entry.name,
                    driver,
                });
            }
        }
        Self {
            device,
            present,
            driver: sysfs::current_driver(fs, device).ok().flatten(),
            iommu_group,
            iommu_active,
            group_members,
            container_node: fs.exists(Path::new(sysfs::VFIO_CONTAINER)),
            group_node: iommu_group.is_some_and(|group| fs.exists(&sysfs::vfio_group_node(group))),
        }
    }

    /// Members whose driver keeps the group from being viable.
    pub fn blocking_members(&self) -> Vec<&GroupMember> {
        self.group_members
            .iter()
            .filter(|member| !driver_keeps_group_viable(member.driver.as_deref()))
            .collect()
    }
}
