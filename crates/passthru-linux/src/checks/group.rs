//! IOMMU group viability: a group can be handed to VFIO only when every endpoint in it is
//! bound to a VFIO driver, `pci-stub`, or nothing (kernel `Documentation/driver-api/vfio.rst`;
//! since 5.19 the DMA-ownership model, which also lets `pcieport` stay). Bridges never block.

use serde::{Deserialize, Serialize};

use super::driver_keeps_group_viable;
use crate::inventory::{DeviceRole, GroupMember, Inventory, IommuGroup};

/// What a group member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberRole {
    /// A PCI endpoint: must be on a VFIO driver, `pci-stub` or no driver.
    Endpoint,
    /// A PCI bridge, root port or switch port.
    Bridge,
    /// A host bridge.
    HostBridge,
    /// A non-PCI device (platform/ACPI): must have no driver, or a VFIO one.
    NonPci,
    /// Listed by the group but missing from `/sys/bus/pci/devices`.
    Unknown,
}

/// One member, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifiedMember {
    /// Address (PCI) or entry name (non-PCI).
    pub name: String,
    /// What it is.
    pub role: MemberRole,
    /// Its driver now.
    pub driver: Option<String>,
    /// Whether it makes the group unviable now.
    pub blocking: bool,
}

/// Whether a group can go to VFIO as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupViability {
    /// True when no member blocks.
    pub viable: bool,
    /// Every member, classified, in the group's order.
    pub members: Vec<ClassifiedMember>,
}

impl GroupViability {
    /// The members that block.
    pub fn blockers(&self) -> impl Iterator<Item = &ClassifiedMember> {
        self.members.iter().filter(|member| member.blocking)
    }
}

/// Classifies every member and decides viability.
pub fn group_viability(inventory: &Inventory, group: &IommuGroup) -> GroupViability {
    let members: Vec<ClassifiedMember> = group
        .members
        .iter()
        .map(|member| match member {
            GroupMember::Pci { address } => match inventory.device(*address) {
                Some(device) => {
                    let role = match device.role {
                        DeviceRole::Endpoint => MemberRole::Endpoint,
                        DeviceRole::Bridge => MemberRole::Bridge,
                        DeviceRole::HostBridge => MemberRole::HostBridge,
                    };
                    ClassifiedMember {
                        name: address.to_string(),
                        role,
                        driver: device.driver.clone(),
                        blocking: role == MemberRole::Endpoint
                            && !driver_keeps_group_viable(device.driver.as_deref()),
                    }
                }
                None => ClassifiedMember {
                    name: address.to_string(),
                    role: MemberRole::Unknown,
                    driver: None,
                    blocking: false,
                },
            },
            GroupMember::Other { name, driver, .. } => ClassifiedMember {
                name: name.clone(),
                role: MemberRole::NonPci,
                driver: driver.clone(),
                blocking: !driver_keeps_group_viable(driver.as_deref()),
            },
        })
        .collect();
    GroupViability {
        viable: !members.iter().any(|member| member.blocking),
        members,
    }
}
