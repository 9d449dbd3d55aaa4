//! The changes passthru makes on a Hyper-V host, each with the exact PowerShell that makes it.
//!
//! An [`Op`] is one cmdlet call (or, for registry values, the two lines that set one value
//! safely). Steps ([`crate::plan::HyperVStep`]) are built from ops: one op to apply, others to
//! undo.

use serde::{Deserialize, Serialize};

use crate::model::{PolicyValue, StopAction};
use crate::ps::quote;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// `Stop-VM -Name X -Force` (asks the guest to shut down) or with `-TurnOff`.
    StopVm {
        /// The VM.
        vm: String,
        /// Power off instead of a guest shutdown.
        turn_off: bool,
    },
    /// `Start-VM -Name X`.
    StartVm {
        /// The VM.
        vm: String,
    },
    /// `Set-VM -Name X -GuestControlledCacheTypes $true`.
    SetCacheTypes {
        /// The VM.
        vm: String,
        /// The new value.
        enabled: bool,
    },
    /// `Set-VM -Name X -LowMemoryMappedIoSpace L -HighMemoryMappedIoSpace H`.
    SetMmio {
        /// The VM.
        vm: String,
        /// New low MMIO size in bytes, when it changes.
        low: Option<u64>,
        /// New high MMIO size in bytes, when it changes.
        high: Option<u64>,
    },
    /// `Set-VM -Name X -AutomaticStopAction A`.
    SetStopAction {
        /// The VM.
        vm: String,
        /// The new action.
        action: StopAction,
    },
    /// `Set-VMMemory -VMName X -MinimumBytes N`.
    SetMemoryMinimum {
        /// The VM.
        vm: String,
        /// New minimum in bytes.
        minimum: u64,
    },
    /// `Add-VMGpuPartitionAdapter -VMName X [-InstancePath P]`.
    AddGpuAdapter {
        /// The VM.
        vm: String,
        /// The partitionable GPU; `None` on builds without `-InstancePath`.
        instance_path: Option<String>,
    },
    /// `Remove-VMGpuPartitionAdapter -VMName X -AdapterId I`.
    RemoveGpuAdapter {
        /// The VM.
        vm: String,
        /// The adapter's `Id`.
        adapter_id: String,
    },
    /// `Set-VMHostPartitionableGpu -Name G -PartitionCount N`.
    SetPartitionCount {
        /// The partitionable GPU's name (interface path).
        gpu: String,
        /// The new count.
        count: u32,
    },
    /// Sets (DWORD) or removes a Hyper-V group-policy value.
    SetPolicy {
        /// Which value.
        value: PolicyValue,
        /// The data, or `None` to remove the value.
        data: Option<u32>,
    },
    /// `Disable-PnpDevice -InstanceId I -Confirm:$false`.
    DisableDevice {
        /// The host instance id.
        instance_id: String,
    },
    /// `Enable-PnpDevice -InstanceId I -Confirm:$false`.
    EnableDevice {
        /// The host instance id.
        instance_id: String,
    },
    /// `Dismount-VMHostAssignableDevice -LocationPath L [-Force]`.
    DismountDevice {
        /// The location path.
        location_path: String,
        /// Pass `-Force` (no vendor mitigation driver; passthru's own checks passed).
        force: bool,
    },
    /// `Mount-VMHostAssignableDevice -LocationPath L`.
    MountDevice {
        /// The location path.
        location_path: String,
    },
    /// `Add-VMAssignableDevice -VMName X -LocationPath L`.
    AddAssignableDevice {
        /// The VM.
        vm: String,
        /// The location path.
        location_path: String,
    },
    /// `Remove-VMAssignableDevice -VMName X -LocationPath L`.
    RemoveAssignableDevice {
        /// The VM.
        vm: String,
        /// The location path.
        location_path: String,
    },
}

impl Op {
    /// The cmdlet this op runs (for messages and fault injection).
    pub fn cmdlet(&self) -> &'static str {
        match self {
            Self::StopVm { .. } => "Stop-VM",
            Self::StartVm { .. } => "Start-VM",
            Self::SetCacheTypes { .. } | Self::SetMmio { .. } | Self::SetStopAction { .. } => {
                "Set-VM"
            }
            Self::SetMemoryMinimum { .. } => "Set-VMMemory",
            Self::AddGpuAdapter { .. } => "Add-VMGpuPartitionAdapter",
            Self::RemoveGpuAdapter { .. } => "Remove-VMGpuPartitionAdapter",
            Self::SetPartitionCount { .. } => "Set-VMHostPartitionableGpu",
            Self::SetPolicy { data: Some(_), .. } => "New-ItemProperty",
            Self::SetPolicy { data: None, .. } => "Remove-ItemProperty",
            Self::DisableDevice { .. } => "Disable-PnpDevice",
            Self::EnableDevice { .. } => "Enable-PnpDevice",
            Self::DismountDevice { .. } => "Dismount-VMHostAssignableDevice",
            Self::MountDevice { .. } => "Mount-VMHostAssignableDevice",
            Self::AddAssignableDevice { .. } => "Add-VMAssignableDevice",
            Self::RemoveAssignableDevice { .. } => "Remove-VMAssignableDevice",
        }
    }

    /// The VM this op touches, if any.
    pub fn vm(&self) -> Option<&str> {
        match self {
            Self::StopVm { vm, .. }
            | Self::StartVm { vm }
            | Self::SetCacheTypes { vm, .. }
            | Self::SetMmio { vm, .. }
            | Self::SetStopAction { vm, .. }
            | Self::SetMemoryMinimum { vm, .. }
            | Self::AddGpuAdapter { vm, .. }
            | Self::RemoveGpuAdapter { vm, .. }
            | Self::AddAssignableDevice { vm, .. }
            | Self::RemoveAssignableDevice { vm, .. } => Some(vm),
            _ => None,
        }
    }

    /// The exact PowerShell (one or a few lines, no trailing newline).
    pub fn powershell(&self) -> String {
        let q = quote::string;
        match self {
            Self::StopVm { vm, turn_off } => {
                if *turn_off {
                    format!("Stop-VM -Name {} -TurnOff -Force", q(vm))
                } else {
                    format!("Stop-VM -Name {} -Force", q(vm))
                }
            }
            Self::StartVm { vm } => format!("Start-VM -Name {}", q(vm)),
            Self::SetCacheTypes { vm, enabled } => format!(
                "Set-VM -Name {} -GuestControlledCacheTypes {}",
                q(vm),
                quote::boolean(*enabled)
            ),
            Self::SetMmio { vm, low, high } => {
                let mut line = format!("Set-VM -Name {}", q(vm));
                if let Some(low) = low {
                    line.push_str(&format!(" -LowMemoryMappedIoSpace {}", quote::bytes(*low)));
                }
                if let Some(high) = high {
                    line.push_str(&format!(
                        " -HighMemoryMappedIoSpace {}",
                        quote::bytes(*high)
                    ));
                }
                line
            }
            Self::SetStopAction { vm, action } => {
                format!(
                    "Set-VM -Name {} -AutomaticStopAction {}",
                    q(vm),
                    action.name()
                )
            }
            Self::SetMemoryMinimum { vm, minimum } => format!(
                "Set-VMMemory -VMName {} -MinimumBytes {}",
                q(vm),
                quote::bytes(*minimum)
            ),
            Self::AddGpuAdapter { vm, instance_path } => match instance_path {
                Some(path) => format!(
                    "Add-VMGpuPartitionAdapter -VMName {} -InstancePath {}",
                    q(vm),
                    q(path)
                ),
                None => format!("Add-VMGpuPartitionAdapter -VMName {}", q(vm)),
            },
            Self::RemoveGpuAdapter { vm, adapter_id } => format!(
                "Remove-VMGpuPartitionAdapter -VMName {} -AdapterId {}",
                q(vm),
                q(adapter_id)
            ),
            Self::SetPartitionCount { gpu, count } => format!(
                "Set-VMHostPartitionableGpu -Name {} -PartitionCount {count}",
                q(gpu)
            ),
            Self::SetPolicy {
                value,
                data: Some(data),
            } => {
                let key = q(PolicyValue::KEY);
                // `New-Item -Force` on an existing registry key would empty it, so the key is
                // created only when it is missing.
                format!(
                    "if (-not (Test-Path -LiteralPath {key})) {{ New-Item -Path {key} -Force | Out-Null }}\nNew-ItemProperty -LiteralPath {key} -Name {} -PropertyType DWord -Value {data} -Force | Out-Null",
                    q(value.name())
                )
            }
            Self::SetPolicy { value, data: None } => format!(
                "Remove-ItemProperty -LiteralPath {} -Name {} -ErrorAction SilentlyContinue",
                q(PolicyValue::KEY),
                q(value.name())
            ),
            Self::DisableDevice { instance_id } => {
                format!(
                    "Disable-PnpDevice -InstanceId {} -Confirm:$false",
                    q(instance_id)
                )
            }
            Self::EnableDevice { instance_id } => {
                format!(
                    "Enable-PnpDevice -InstanceId {} -Confirm:$false",
                    q(instance_id)
                )
            }
            Self::DismountDevice {
                location_path,
                force,
            } => {
                let force = if *force { " -Force" } else { "" };
                format!(
                    "Dismount-VMHostAssignableDevice -LocationPath {}{force}",
                    q(location_path)
                )
            }
            Self::MountDevice { location_path } => format!(
                "Mount-VMHostAssignableDevice -LocationPath {}",
                q(location_path)
            ),
            Self::AddAssignableDevice { vm, location_path } => format!(
                "Add-VMAssignableDevice -VMName {} -LocationPath {}",
                q(vm),
                q(location_path)
            ),
            Self::RemoveAssignableDevice { vm, location_path } => format!(
                "Remove-VMAssignableDevice -VMName {} -LocationPath {}",
                q(vm),
                q(location_path)
            ),
        }
    }
}
