//! The recorded answers of one VFIO probe, and the constants of the VFIO user API.

use serde::{Deserialize, Serialize};

use crate::errno::Errno;

/// Constants of `include/uapi/linux/vfio.h` (Debian 12 `linux-libc-dev` 6.1.187; unchanged in
/// later kernels).
pub mod uapi {
    /// `VFIO_API_VERSION`: what `VFIO_GET_API_VERSION` returns.
    pub const API_VERSION: i32 = 0;
    /// `VFIO_TYPE1_IOMMU`.
    pub const TYPE1_IOMMU: u32 = 1;
    /// `VFIO_TYPE1v2_IOMMU` (what QEMU prefers).
    pub const TYPE1V2_IOMMU: u32 = 3;
    /// `VFIO_GROUP_FLAGS_VIABLE`.
    pub const GROUP_FLAGS_VIABLE: u32 = 1 << 0;
    /// `VFIO_GROUP_FLAGS_CONTAINER_SET`.
    pub const GROUP_FLAGS_CONTAINER_SET: u32 = 1 << 1;
    /// `VFIO_DEVICE_FLAGS_RESET`: the device supports `VFIO_DEVICE_RESET`.
    pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
    /// `VFIO_DEVICE_FLAGS_PCI`.
    pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
    /// `VFIO_REGION_INFO_FLAG_READ`.
    pub const REGION_FLAG_READ: u32 = 1 << 0;
    /// `VFIO_REGION_INFO_FLAG_WRITE`.
    pub const REGION_FLAG_WRITE: u32 = 1 << 1;
    /// `VFIO_REGION_INFO_FLAG_MMAP`.
    pub const REGION_FLAG_MMAP: u32 = 1 << 2;
    /// `VFIO_IRQ_INFO_EVENTFD`.
    pub const IRQ_FLAG_EVENTFD: u32 = 1 << 0;
    /// `VFIO_IRQ_INFO_MASKABLE`.
    pub const IRQ_FLAG_MASKABLE: u32 = 1 << 1;
    /// `VFIO_IRQ_INFO_AUTOMASKED`.
    pub const IRQ_FLAG_AUTOMASKED: u32 = 1 << 2;
    /// `VFIO_IRQ_INFO_NORESIZE`.
    pub const IRQ_FLAG_NORESIZE: u32 = 1 << 3;
    /// `VFIO_PCI_ROM_REGION_INDEX`.
    pub const PCI_ROM_REGION_INDEX: u32 = 6;
    /// `VFIO_PCI_CONFIG_REGION_INDEX`.
    pub const PCI_CONFIG_REGION_INDEX: u32 = 7;
    /// `VFIO_PCI_VGA_REGION_INDEX`.
    pub const PCI_VGA_REGION_INDEX: u32 = 8;
    /// `VFIO_PCI_INTX_IRQ_INDEX`.
    pub const PCI_INTX_IRQ_INDEX: u32 = 0;
    /// `VFIO_PCI_MSI_IRQ_INDEX`.
    pub const PCI_MSI_IRQ_INDEX: u32 = 1;
    /// `VFIO_PCI_MSIX_IRQ_INDEX`.
    pub const PCI_MSIX_IRQ_INDEX: u32 = 2;
    /// `VFIO_PCI_ERR_IRQ_INDEX`.
    pub const PCI_ERR_IRQ_INDEX: u32 = 3;
    /// `VFIO_PCI_REQ_IRQ_INDEX`.
    pub const PCI_REQ_IRQ_INDEX: u32 = 4;
}

/// The name of a vfio-pci region index.
pub fn region_index_name(index: u32) -> String {
    match index {
        0..=5 => format!("BAR{index}"),
        uapi::PCI_ROM_REGION_INDEX => "ROM".into(),
        uapi::PCI_CONFIG_REGION_INDEX => "config".into(),
        uapi::PCI_VGA_REGION_INDEX => "VGA".into(),
        _ => format!("region {index}"),
    }
}

/// The name of a vfio-pci interrupt index.
pub fn irq_index_name(index: u32) -> String {
    match index {
        uapi::PCI_INTX_IRQ_INDEX => "INTx".into(),
        uapi::PCI_MSI_IRQ_INDEX => "MSI".into(),
        uapi::PCI_MSIX_IRQ_INDEX => "MSI-X".into(),
        uapi::PCI_ERR_IRQ_INDEX => "error".into(),
        uapi::PCI_REQ_IRQ_INDEX => "request".into(),
        _ => format!("interrupt {index}"),
    }
}

/// The answer to one call: a value, or the kernel's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome<T> {
    /// The call succeeded.
    Ok(T),
    /// The call failed with this error.
    Failed(Errno),
}

impl<T> Outcome<T> {
    /// The value, if the call succeeded.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Self::Ok(value) => Some(value),
            Self::Failed(_) => None,
        }
    }

    /// The error, if the call failed.
    pub fn error(&self) -> Option<Errno> {
        match self {
            Self::Ok(_) => None,
            Self::Failed(errno) => Some(*errno),
        }
    }
}

/// `struct vfio_device_info`, as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawDeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of regions (max index + 1).
    pub num_regions: u32,
    /// Number of interrupt indexes (max index + 1).
    pub num_irqs: u32,
}

/// `struct vfio_region_info`, as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRegionInfo {
    /// Region index.
    pub index: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Size in bytes (0: not implemented).
    pub size: u64,
    /// Offset of the region in the device file.
    pub offset: u64,
}

/// `struct vfio_irq_info`, as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawIrqInfo {
    /// Interrupt index.
    pub index: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// Number of interrupts (vectors) in this index.
    pub count: u32,
}

/// One entry of `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` (`struct vfio_pci_dependent_device`): a
/// device a bus or slot reset would reset too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawDependentDevice {
    /// Its IOMMU group.
    pub group_id: u32,
    /// PCI segment (domain).
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device and function (`device << 3 | function`).
    pub devfn: u8,
}

impl RawDependentDevice {
    /// Its PCI address, when the numbers form one.
    pub fn address(&self) -> Option<passthru_core::pci::PciAddress> {
        passthru_core::pci::PciAddress::new(
            self.segment.into(),
            self.bus,
            self.devfn >> 3,
            self.devfn & 7,
        )
        .ok()
    }
}

/// What each step of a VFIO probe answered, in order; a step is `None` when an earlier one
/// made it pointless.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTrace {
    /// Opening `/dev/vfio/vfio`.
    pub open_container: Option<Outcome<()>>,
    /// `VFIO_GET_API_VERSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<Outcome<i32>>,
    /// `VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)` (positive: supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type1v2: Option<Outcome<i32>>,
    /// `VFIO_CHECK_EXTENSION(VFIO_TYPE1_IOMMU)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type1: Option<Outcome<i32>>,
    /// Opening `/dev/vfio/<group>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_group: Option<Outcome<()>>,
    /// `VFIO_GROUP_GET_STATUS` flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_flags: Option<Outcome<u32>>,
    /// `VFIO_GROUP_SET_CONTAINER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_container: Option<Outcome<()>>,
    /// `VFIO_SET_IOMMU` with the IOMMU type tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_iommu: Option<Outcome<u32>>,
    /// `VFIO_GROUP_GET_DEVICE_FD` with the device's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_fd: Option<Outcome<()>>,
    /// `VFIO_DEVICE_GET_INFO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<Outcome<RawDeviceInfo>>,
    /// `VFIO_DEVICE_GET_REGION_INFO` for each index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Outcome<RawRegionInfo>>,
    /// `VFIO_DEVICE_GET_IRQ_INFO` for each index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub irqs: Vec<Outcome<RawIrqInfo>>,
    /// `VFIO_DEVICE_RESET`, when the device supports reset and a reset was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Outcome<()>>,
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`, when the device has no reset of its own and a
    /// reset was asked for: the devices a bus or slot reset would reset with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_reset_info: Option<Outcome<Vec<RawDependentDevice>>>,
    /// `VFIO_DEVICE_PCI_HOT_RESET` with the probed group, when every device it resets belongs
    /// to that group (QEMU resets such devices this way when a VM starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_reset: Option<Outcome<()>>,
}
