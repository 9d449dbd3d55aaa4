//! Virtual machines and the settings passthru cares about.

use serde::{Deserialize, Serialize};

use super::gpu::GpuAdapter;
use super::lenient;

/// One VM (`Get-VM`, `Get-VMGpuPartitionAdapter`, `Get-VMAssignableDevice`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Vm {
    /// `Name`.
    pub name: String,
    /// `Id` (GUID).
    #[serde(deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// `State` as text: `Off`, `Running`, `Saved`, `Paused`, `Starting`, ...
    #[serde(deserialize_with = "lenient::text")]
    pub state: Option<String>,
    /// `Generation` (1 or 2).
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub generation: Option<u32>,
    /// Configuration `Version` ("12.0").
    #[serde(deserialize_with = "lenient::text")]
    pub version: Option<String>,
    /// `LowMemoryMappedIoSpace` in bytes.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub low_mmio: Option<u64>,
    /// `HighMemoryMappedIoSpace` in bytes.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub high_mmio: Option<u64>,
    /// Where the high MMIO region starts, in bytes (`Msvm_VirtualSystemSettingData.
    /// HighMmioGapBase` × 1 MiB), when the host reports it.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub high_mmio_base: Option<u64>,
    /// `GuestControlledCacheTypes` (write-combining for GPUs).
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub guest_controlled_cache_types: Option<bool>,
    /// `AutomaticStopAction`: `TurnOff`, `Save` or `ShutDown`.
    #[serde(deserialize_with = "lenient::text")]
    pub automatic_stop_action: Option<String>,
    /// Memory configuration.
    pub memory: VmMemory,
    /// GPU partition adapters.
    pub gpu_adapters: Vec<GpuAdapter>,
    /// Devices assigned with DDA.
    pub assigned_devices: Vec<AssignedDevice>,
}

impl Vm {
    /// Whether the VM is off (the state in which Hyper-V allows device changes).
    pub fn is_off(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|state| state.eq_ignore_ascii_case("Off"))
    }

    /// Whether the VM is running (or starting, or in any other powered state that needs a
    /// shutdown before its devices can change).
    pub fn is_running(&self) -> bool {
        !self.is_off() && !self.is_saved()
    }

    /// Whether the VM has a saved state.
    pub fn is_saved(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|state| state.eq_ignore_ascii_case("Saved"))
    }

    /// Whether dynamic memory is on and startup differs from minimum, which Hyper-V refuses
    /// together with DDA or GPU-P (reference F8k).
    pub fn memory_conflicts_with_devices(&self) -> bool {
        self.memory.dynamic && self.memory.startup != self.memory.minimum
    }
}

/// `Get-VMMemory` figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VmMemory {
    /// `DynamicMemoryEnabled`.
    #[serde(deserialize_with = "lenient::flag")]
    pub dynamic: bool,
    /// `Startup` bytes.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub startup: Option<u64>,
    /// `Minimum` bytes.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub minimum: Option<u64>,
    /// `Maximum` bytes.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub maximum: Option<u64>,
}

/// One device assigned to a VM with DDA (`Get-VMAssignableDevice`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AssignedDevice {
    /// `InstanceID`.
    #[serde(deserialize_with = "lenient::text")]
    pub instance_id: Option<String>,
    /// `LocationPath`.
    #[serde(deserialize_with = "lenient::text")]
    pub location_path: Option<String>,
    /// `Name`.
    #[serde(deserialize_with = "lenient::text")]
    pub name: Option<String>,
}

/// `AutomaticStopAction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopAction {
    /// Power off (what every DDA recipe sets).
    TurnOff,
    /// Save the VM state (the default; impossible with DDA or GPU partitions).
    Save,
    /// Shut the guest down.
    ShutDown,
}

impl StopAction {
    /// The PowerShell enum name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TurnOff => "TurnOff",
            Self::Save => "Save",
            Self::ShutDown => "ShutDown",
        }
    }

    /// Parses the PowerShell name (any case).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::TurnOff, Self::Save, Self::ShutDown]
            .into_iter()
            .find(|action| action.name().eq_ignore_ascii_case(text.trim()))
    }
}
