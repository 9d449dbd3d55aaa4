//! PCI devices as Plug and Play sees them, their resources, and disks.

use serde::{Deserialize, Serialize};

use super::lenient;
use crate::text::format_list::ListRecord;
use crate::text::location;

/// One `PCI\...` or `PCIP\...` devnode from `Get-PnpDevice`, with the properties the DDA checks
/// need (`Get-PnpDeviceProperty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PnpDevice {
    /// `InstanceId`.
    pub instance_id: String,
    /// `FriendlyName` (falls back to the device description in Windows itself).
    #[serde(deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// Setup class (`Display`, `MEDIA`, `Net`, `SCSIAdapter`, `USB`, `System`).
    #[serde(deserialize_with = "lenient::text")]
    pub class: Option<String>,
    /// `Manufacturer`.
    #[serde(deserialize_with = "lenient::text")]
    pub manufacturer: Option<String>,
    /// `Status` (`OK`, `Error`, `Degraded`, `Unknown`).
    #[serde(deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// `DEVPKEY_Device_IsPresent` / `Present`.
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub present: Option<bool>,
    /// `ConfigManagerErrorCode` (22 = disabled).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub problem: Option<u32>,
    /// `DEVPKEY_Device_Service` (driver service name; `pci` for bridges).
    #[serde(deserialize_with = "lenient::text")]
    pub service: Option<String>,
    /// `DEVPKEY_Device_LocationPaths`.
    #[serde(deserialize_with = "lenient::strings")]
    pub location_paths: Vec<String>,
    /// `DEVPKEY_Device_LocationInfo` ("PCI bus 1, device 0, function 0").
    #[serde(deserialize_with = "lenient::text")]
    pub location_info: Option<String>,
    /// `DEVPKEY_Device_BusNumber`.
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub bus_number: Option<u32>,
    /// `DEVPKEY_Device_Address` (`device << 16 | function` for PCI).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub address: Option<u32>,
    /// `DEVPKEY_Device_Parent`.
    #[serde(deserialize_with = "lenient::text")]
    pub parent: Option<String>,
    /// `DEVPKEY_Device_DriverVersion`.
    #[serde(deserialize_with = "lenient::text")]
    pub driver_version: Option<String>,
    /// `DEVPKEY_PciDevice_DeviceType` (`{3AB22E31-8264-4b4e-9AF5-A8D2D8E33E62} 1`).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub pci_device_type: Option<u32>,
    /// `DEVPKEY_PciDevice_BaseClass` (pid 3).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub pci_base_class: Option<u32>,
    /// `DEVPKEY_PciDevice_SubClass` (pid 4).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub pci_sub_class: Option<u32>,
    /// `DEVPKEY_PciDevice_AcsCompatibleUpHierarchy` (pid 31).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub acs_up: Option<u32>,
    /// `DEVPKEY_PciDevice_RequiresReservedMemoryRegion` (pid 34).
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub reserved_memory: Option<bool>,
    /// The display driver's class key values, for display adapters.
    pub display_driver: Option<DisplayDriver>,
}

impl PnpDevice {
    /// The `PCIROOT(...)` location path, when the device has one.
    pub fn pci_location(&self) -> Option<&str> {
        location::pick_pci_path(&self.location_paths)
    }

    /// The display name: friendly name, else the instance id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.instance_id)
    }

    /// Whether the device is disabled (`CM_PROB_DISABLED`).
    pub fn is_disabled(&self) -> bool {
        self.problem == Some(22)
    }

    /// Reads one record of `Get-PnpDevice | Format-List` as people print it, with a
    /// `LocationPath` column joined by `"; "` (fixture `Get-PnpDevice_LocationPaths_*`).
    pub fn from_list_record(record: &ListRecord) -> Option<Self> {
        let instance_id = record
            .non_empty("InstanceId")
            .or_else(|| record.non_empty("DeviceID"))?
            .to_owned();
        Some(Self {
            instance_id,
            name: record
                .non_empty("FriendlyName")
                .or_else(|| record.non_empty("Name"))
                .map(str::to_owned),
            class: record.non_empty("Class").map(str::to_owned),
            status: record.non_empty("Status").map(str::to_owned),
            location_paths: record
                .non_empty("LocationPath")
                .or_else(|| record.non_empty("LocationPaths"))
                .map(location::split_joined)
                .unwrap_or_default(),
            ..Self::default()
        })
    }
}

/// Values of a display adapter's driver class key
/// (`HKLM\SYSTEM\CurrentControlSet\Control\Class\{4d36e968-...}\NNNN`, reference F10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DisplayDriver {
    /// The class key (`{4d36e968-e325-11ce-bfc1-08002be10318}\0001`).
    #[serde(deserialize_with = "lenient::text")]
    pub key: Option<String>,
    /// `DriverVersion`.
    #[serde(deserialize_with = "lenient::text")]
    pub version: Option<String>,
    /// `ProviderName`.
    #[serde(deserialize_with = "lenient::text")]
    pub provider: Option<String>,
    /// `InfPath` (`oem45.inf`).
    #[serde(deserialize_with = "lenient::text")]
    pub inf_path: Option<String>,
    /// `HardwareInformation.qwMemorySize` (bytes, QWORD).
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub memory_size: Option<u64>,
    /// `HardwareInformation.MemorySize` as stored: a DWORD, or REG_BINARY bytes
    /// (little-endian); older drivers only set this one.
    pub memory_size_legacy: Option<serde_json::Value>,
}

impl DisplayDriver {
    /// Dedicated video memory in bytes: the QWORD value, else the legacy one.
    pub fn vram_bytes(&self) -> Option<u64> {
        self.memory_size.filter(|size| *size > 0).or_else(|| {
            let legacy = self.memory_size_legacy.as_ref()?;
            match legacy {
                serde_json::Value::Array(bytes) => {
                    let bytes: Option<Vec<u8>> = bytes
                        .iter()
                        .map(|byte| byte.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect();
                    let bytes = bytes?;
                    if bytes.is_empty() || bytes.len() > 8 {
                        return None;
                    }
                    let mut value = 0u64;
                    for (index, byte) in bytes.iter().enumerate() {
                        value |= u64::from(*byte) << (8 * index);
                    }
                    Some(value)
                }
                other => lenient::u64_of(other),
            }
            .filter(|size| *size > 0)
        })
    }
}

/// One row of `Win32_PnPAllocatedResource`: which resource (antecedent) belongs to which
/// device (dependent), as WMI object paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AllocatedResource {
    /// `Win32_IRQResource.IRQNumber=...`, `Win32_DeviceMemoryAddress.StartingAddress="..."`, ...
    pub antecedent: String,
    /// `Win32_PnPEntity.DeviceID="..."`.
    pub dependent: String,
}

/// One `Win32_DeviceMemoryAddress`: an MMIO range in host physical address space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MemoryRange {
    /// `StartingAddress`.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub start: Option<u64>,
    /// `EndingAddress` (inclusive).
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub end: Option<u64>,
}

impl MemoryRange {
    /// Size in bytes, SurveyDDA's way (`EndingAddress - StartingAddress`, reference §3.1) plus
    /// the one byte it leaves out, so that a 16 MiB BAR counts as 16 MiB.
    pub fn size(&self) -> u64 {
        match (self.start, self.end) {
            (Some(start), Some(end)) if end >= start => end - start + 1,
            _ => 0,
        }
    }
}

/// One entry of `Get-VMHostAssignableDevice`: a dismounted device not in any VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostAssignableDevice {
    /// `InstanceID` (`PCIP\...`).
    #[serde(deserialize_with = "lenient::text")]
    pub instance_id: Option<String>,
    /// `LocationPath`.
    #[serde(deserialize_with = "lenient::text")]
    pub location_path: Option<String>,
}

impl HostAssignableDevice {
    /// Reads one record of `Get-VMHostAssignableDevice | Format-List` (fixture
    /// `dismount_and_Get-VMHostAssignableDevice_nvme_ws2016.txt`).
    pub fn from_list_record(record: &ListRecord) -> Option<Self> {
        let device = Self {
            instance_id: record.non_empty("InstanceID").map(str::to_owned),
            location_path: record.non_empty("LocationPath").map(str::to_owned),
        };
        (device.instance_id.is_some() || device.location_path.is_some()).then_some(device)
    }
}

/// One disk (`Get-Disk`), with the PnP devnodes above it so that its controller can be found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Disk {
    /// `Number`.
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub number: Option<u32>,
    /// `FriendlyName`.
    #[serde(deserialize_with = "lenient::text")]
    pub name: Option<String>,
    /// `IsSystem`.
    #[serde(deserialize_with = "lenient::flag")]
    pub is_system: bool,
    /// `IsBoot`.
    #[serde(deserialize_with = "lenient::flag")]
    pub is_boot: bool,
    /// `Path`: the disk's device-interface path.
    #[serde(deserialize_with = "lenient::text")]
    pub path: Option<String>,
    /// Instance ids of the devnodes above the disk, nearest first (`DEVPKEY_Device_Parent`
    /// followed upwards).
    #[serde(deserialize_with = "lenient::strings")]
    pub ancestors: Vec<String>,
}

/// Where one device is in the DDA state machine, as the device query reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceStatus {
    /// The location path asked about.
    pub location_path: String,
    /// The host devnode (`PCI\...`), when Windows still knows it.
    #[serde(deserialize_with = "lenient::text")]
    pub host_instance_id: Option<String>,
    /// Whether the host devnode is present (usable by the host).
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub present: Option<bool>,
    /// Its problem code (22 = disabled).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub problem: Option<u32>,
    /// The `PCIP\...` id when the device is dismounted and in no VM
    /// (`Get-VMHostAssignableDevice`).
    #[serde(deserialize_with = "lenient::text")]
    pub dismounted_instance_id: Option<String>,
    /// VMs whose configuration holds this location path.
    #[serde(deserialize_with = "lenient::strings")]
    pub assigned_to: Vec<String>,
}

impl DeviceStatus {
    /// The device works for the host: present and not disabled.
    pub fn on_host_enabled(&self) -> bool {
        self.present == Some(true)
            && self.problem != Some(22)
            && self.dismounted_instance_id.is_none()
    }

    /// The device is on the host but disabled.
    pub fn on_host_disabled(&self) -> bool {
        self.present == Some(true)
            && self.problem == Some(22)
            && self.dismounted_instance_id.is_none()
    }

    /// Dismounted and in no VM.
    pub fn dismounted(&self) -> bool {
        self.dismounted_instance_id.is_some() && self.assigned_to.is_empty()
    }
}
