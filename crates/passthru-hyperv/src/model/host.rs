//! Facts about the Windows host itself.

use serde::{Deserialize, Serialize};

use super::lenient;

/// What the survey script learns about the host (one object per run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostFacts {
    /// `$env:COMPUTERNAME`.
    #[serde(deserialize_with = "lenient::text")]
    pub computer_name: Option<String>,
    /// `Win32_OperatingSystem.Caption` ("Microsoft Windows 11 Pro").
    #[serde(deserialize_with = "lenient::text")]
    pub caption: Option<String>,
    /// `EditionID` from the registry ("Professional", "ServerDatacenter").
    #[serde(deserialize_with = "lenient::text")]
    pub edition_id: Option<String>,
    /// `CurrentBuildNumber`.
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub build: Option<u32>,
    /// Update build revision (`UBR`).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub ubr: Option<u32>,
    /// `DisplayVersion` ("23H2").
    #[serde(deserialize_with = "lenient::text")]
    pub display_version: Option<String>,
    /// `HKLM\SYSTEM\CurrentControlSet\Control\ProductOptions\ProductType`: `WinNT` (client),
    /// `ServerNT`, `LanmanNT` (domain controller).
    #[serde(deserialize_with = "lenient::text")]
    pub product_type: Option<String>,
    /// `$PSVersionTable.PSVersion` ("5.1.22621.2506").
    #[serde(deserialize_with = "lenient::text")]
    pub powershell_version: Option<String>,
    /// Install state of the Hyper-V optional feature ("Enabled", "Disabled", "Absent").
    #[serde(deserialize_with = "lenient::text")]
    pub hyperv_feature: Option<String>,
    /// Status of the `vmms` service ("Running", "Stopped"); `None` when it does not exist.
    #[serde(deserialize_with = "lenient::text")]
    pub vmms_status: Option<String>,
    /// `Win32_ComputerSystem.HypervisorPresent`.
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub hypervisor_present: Option<bool>,
    /// `Win32_DeviceGuard.AvailableSecurityProperties` (3 = DMA protection).
    #[serde(deserialize_with = "lenient::u32s")]
    pub device_guard_available: Vec<u32>,
    /// Whether `Win32_DeviceGuard` could be read at all.
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub device_guard_read: Option<bool>,
    /// `Win32_DeviceGuard.VirtualizationBasedSecurityStatus` (2 = running).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub vbs_status: Option<u32>,
    /// `(Get-VMHost).IovSupport`.
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub iov_support: Option<bool>,
    /// `(Get-VMHost).IovSupportReasons`.
    #[serde(deserialize_with = "lenient::strings")]
    pub iov_support_reasons: Vec<String>,
    /// Group-policy values under `HKLM\SOFTWARE\Policies\Microsoft\Windows\HyperV`.
    pub policy: PolicyValues,
    /// Install state of `Microsoft-Windows-Subsystem-Linux`.
    #[serde(deserialize_with = "lenient::text")]
    pub wsl_feature: Option<String>,
    /// `Win32_SystemEnclosure.ChassisTypes` of every enclosure.
    #[serde(deserialize_with = "lenient::u32s")]
    pub chassis_types: Vec<u32>,
    /// Whether a `Win32_Battery` exists.
    #[serde(deserialize_with = "lenient::flag")]
    pub battery: bool,
    /// Which Hyper-V cmdlets (and parameters) this host has.
    pub cmdlets: Cmdlets,
    /// `Win32_Processor.Name` of the first processor.
    #[serde(deserialize_with = "lenient::text")]
    pub cpu_name: Option<String>,
    /// The CPU's physical address width in bits. PowerShell cannot tell; passthru fills it in
    /// from CPUID (leaf 0x80000008) when it surveys the machine it runs on.
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub cpu_physical_address_bits: Option<u32>,
}

impl HostFacts {
    /// Whether this is a Windows Server SKU (or a client switched to one: ProductType is what
    /// Hyper-V checks, reference §7.4).
    pub fn is_server(&self) -> Option<bool> {
        self.product_type
            .as_deref()
            .map(|kind| !kind.eq_ignore_ascii_case("WinNT"))
    }

    /// Whether Windows reports DMA protection (an IOMMU in use): property 3 of
    /// `Win32_DeviceGuard.AvailableSecurityProperties`. `None` when Device Guard was not
    /// readable.
    pub fn dma_protection(&self) -> Option<bool> {
        (self.device_guard_read == Some(true) || !self.device_guard_available.is_empty())
            .then(|| self.device_guard_available.contains(&3))
    }

    /// Whether the machine looks like a laptop (Easy-GPU-PV's rule: chassis type 9, 10 or 14,
    /// or a battery).
    pub fn is_laptop(&self) -> bool {
        self.battery
            || self
                .chassis_types
                .iter()
                .any(|kind| matches!(kind, 9 | 10 | 14))
    }

    /// Whether `Add-VMGpuPartitionAdapter` can pin a GPU (`-InstancePath`, build ≥ 22000).
    /// Prefers what the cmdlet itself says; falls back to the build number.
    pub fn has_instance_path(&self) -> bool {
        self.cmdlets
            .add_gpu_adapter_instance_path
            .unwrap_or_else(|| self.build.is_some_and(|build| build >= 22000))
    }
}

/// The two group-policy values that Hyper-V names when it refuses a GPU partition on Windows
/// Server (reference F8a, §4.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyValues {
    /// `RequireSecureDeviceAssignment` (DWORD), `None` when absent.
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub require_secure_device_assignment: Option<u32>,
    /// `RequireSupportedDeviceAssignment` (DWORD), `None` when absent.
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub require_supported_device_assignment: Option<u32>,
}

/// One of the policy values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyValue {
    /// `RequireSecureDeviceAssignment`.
    RequireSecureDeviceAssignment,
    /// `RequireSupportedDeviceAssignment`.
    RequireSupportedDeviceAssignment,
}

impl PolicyValue {
    /// Both values.
    pub const ALL: [Self; 2] = [
        Self::RequireSecureDeviceAssignment,
        Self::RequireSupportedDeviceAssignment,
    ];

    /// The registry value name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RequireSecureDeviceAssignment => "RequireSecureDeviceAssignment",
            Self::RequireSupportedDeviceAssignment => "RequireSupportedDeviceAssignment",
        }
    }

    /// The registry key that holds it (PowerShell provider path).
    pub const KEY: &'static str = r"HKLM:\SOFTWARE\Policies\Microsoft\Windows\HyperV";
}

impl PolicyValues {
    /// The current data of `value`.
    pub fn get(&self, value: PolicyValue) -> Option<u32> {
        match value {
            PolicyValue::RequireSecureDeviceAssignment => self.require_secure_device_assignment,
            PolicyValue::RequireSupportedDeviceAssignment => {
                self.require_supported_device_assignment
            }
        }
    }

    /// Sets (or, with `None`, removes) `value`.
    pub fn set(&mut self, value: PolicyValue, data: Option<u32>) {
        match value {
            PolicyValue::RequireSecureDeviceAssignment => {
                self.require_secure_device_assignment = data;
            }
            PolicyValue::RequireSupportedDeviceAssignment => {
                self.require_supported_device_assignment = data;
            }
        }
    }
}

/// Cmdlets and parameters whose presence differs between Windows builds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cmdlets {
    /// `Get-VMHostPartitionableGpu` exists (Windows 11, Server 2022+).
    #[serde(deserialize_with = "lenient::flag")]
    pub get_vm_host_partitionable_gpu: bool,
    /// `Get-VMPartitionableGpu` exists (Windows 10; deprecated later, reference F8e).
    #[serde(deserialize_with = "lenient::flag")]
    pub get_vm_partitionable_gpu: bool,
    /// `Set-VMHostPartitionableGpu` exists.
    #[serde(deserialize_with = "lenient::flag")]
    pub set_vm_host_partitionable_gpu: bool,
    /// `Add-VMGpuPartitionAdapter` exists.
    #[serde(deserialize_with = "lenient::flag")]
    pub add_gpu_adapter: bool,
    /// `Add-VMGpuPartitionAdapter` has `-InstancePath` (build ≥ 22000); `None` when unknown.
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub add_gpu_adapter_instance_path: Option<bool>,
    /// `Add-VMAssignableDevice` exists (DDA cmdlets).
    #[serde(deserialize_with = "lenient::flag")]
    pub add_assignable_device: bool,
}
