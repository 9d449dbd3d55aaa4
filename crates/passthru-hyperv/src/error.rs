//! Hyper-V's errors, classified and explained.
//!
//! Every generated script catches the error record of a failing cmdlet and answers it as JSON
//! ([`ErrorRecord`]); [`classify`] turns it into a [`HyperVError`] that says in plain words what
//! happened and what to do. The messages recognised are the real ones users hit (reference
//! F8 a–k, `fixtures/hyperv/error_*`); matching prefers locale-independent parts (error ids,
//! `0x...` codes) and knows the Chinese wording that reached us for F8k.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A PowerShell error record as the generated scripts report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorRecord {
    /// `$_.Exception.GetType().FullName`
    /// (`Microsoft.HyperV.PowerShell.VirtualizationException`).
    #[serde(rename = "type")]
    pub exception_type: String,
    /// `$_.FullyQualifiedErrorId` (`InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM`).
    pub fully_qualified_error_id: String,
    /// `$_.CategoryInfo.Category` (`InvalidArgument`, `InvalidOperation`, `ObjectNotFound`).
    pub category: String,
    /// `$_.Exception.Message`, possibly several lines.
    pub message: String,
    /// `$_.TargetObject` as text.
    pub target: String,
    /// The cmdlet that failed.
    pub command: String,
}

impl ErrorRecord {
    /// A record the way a Hyper-V cmdlet raises it: `VirtualizationException` with the
    /// cmdlet's error id (`<reason>,Microsoft.HyperV.PowerShell.Commands.<CmdletNoDash>`).
    pub fn virtualization(
        cmdlet: &str,
        reason: &str,
        category: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            exception_type: "Microsoft.HyperV.PowerShell.VirtualizationException".to_owned(),
            fully_qualified_error_id: format!(
                "{reason},Microsoft.HyperV.PowerShell.Commands.{}",
                cmdlet.replace('-', "")
            ),
            category: category.to_owned(),
            message: message.into(),
            target: String::new(),
            command: cmdlet.to_owned(),
        }
    }
}

/// What kind of failure an error record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ErrorKind {
    /// No VM with that name.
    VmNotFound,
    /// The VM is in the wrong state (usually: running) for the change.
    VmState,
    /// F8a: the GPU is not compliant with the `RequireSecureDeviceAssignment` /
    /// `RequireSupportedDeviceAssignment` policy.
    GpuPolicy,
    /// F8b: the upper MMIO region lies above what the CPU can address.
    MmioAboveAddressRange {
        /// The limit Hyper-V named (`0x0000001000000000`), when it did.
        limit: Option<u64>,
    },
    /// F8c: "Insufficient system resources exist to complete the requested service."
    InsufficientResources,
    /// F8d: `-InstancePath` does not exist (Windows 10, build < 22000).
    NoInstancePathParameter,
    /// F8f: the VM needs virtualization-based security on the host.
    VbsRequired,
    /// F8g: the operation is impossible while the VM has GPU partitions.
    BlockedByGpuPartition,
    /// F8h: "GPU Partition: Failed to Power On with Error 'Access is denied'".
    GpuPowerOnAccessDenied,
    /// F8i: the firmware did not give Windows control of PCI Express.
    NoOsPcieControl,
    /// F8j: `0xC035001E` — DDA on a client SKU.
    HypervisorFeatureUnavailable,
    /// F8k: dynamic memory with startup ≠ minimum together with devices or GPU partitions.
    DynamicMemoryConflict,
    /// Dismounting without `-Force` a device that has no vendor mitigation driver.
    NoMitigationDriver,
    /// Not elevated / not a member of Hyper-V Administrators.
    PermissionDenied,
    /// A cmdlet does not exist (Hyper-V PowerShell module missing or too old).
    CommandNotFound {
        /// The missing command.
        name: String,
    },
    /// Anything else.
    Other,
}

/// A failure reported by Hyper-V or PowerShell, with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HyperVError {
    /// The classification.
    pub kind: ErrorKind,
    /// The record as PowerShell reported it.
    pub record: ErrorRecord,
}

impl HyperVError {
    /// What happened, in a sentence (with Hyper-V's own message when it adds something).
    pub fn summary(&self) -> String {
        let first_line = self
            .record
            .message
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("(no message)");
        let command = if self.record.command.is_empty() {
            String::new()
        } else {
            format!("{} failed: ", self.record.command)
        };
        match &self.kind {
            ErrorKind::Other | ErrorKind::VmNotFound | ErrorKind::VmState => {
                format!(
                    "{command}{}",
                    one_line(&self.record.message).unwrap_or(first_line.to_owned())
                )
            }
            kind => format!("{command}{}", describe(kind)),
        }
    }

    /// What to do next, when there is something useful to say.
    pub fn help(&self) -> Option<String> {
        let text = match &self.kind {
            ErrorKind::VmNotFound => "check the name with `Get-VM` (names are matched exactly)",
            ErrorKind::VmState => {
                "shut the VM down first (passthru offers to do it: --stop-vm), then try again"
            }
            ErrorKind::GpuPolicy => {
                "on Windows Server, set RequireSecureDeviceAssignment and RequireSupportedDeviceAssignment to 0 under HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\HyperV (`passthru gpu-p add` does this where it is needed), then start the VM again"
            }
            ErrorKind::MmioAboveAddressRange { .. } => {
                "lower the VM's HighMemoryMappedIoSpace so that it ends below the limit Hyper-V names; `passthru gpu-p add` and `passthru assign` size it for this CPU's physical address width"
            }
            ErrorKind::InsufficientResources => {
                "usually the VM's MMIO space is too small for the GPU, or the host still holds the GPU after a driver update: raise HighMemoryMappedIoSpace, or reboot the host and try again"
            }
            ErrorKind::NoInstancePathParameter => {
                "this Windows build (below 22000) cannot choose which GPU a partition uses; passthru adds the partition without -InstancePath there, and Hyper-V picks the GPU when the VM starts"
            }
            ErrorKind::VbsRequired => {
                "turn on virtualization-based security on the host (Device Guard / Core isolation), reboot, and start the VM again"
            }
            ErrorKind::BlockedByGpuPartition => {
                "a VM with a GPU partition cannot be saved, checkpointed or live-migrated; shut it down instead, or remove the partition with `passthru gpu-p remove`"
            }
            ErrorKind::GpuPowerOnAccessDenied => {
                "this follows host GPU driver updates and reboots: reboot the host, check the policy values (`passthru survey`), and if it persists remove and re-add the partition"
            }
            ErrorKind::NoOsPcieControl => {
                "enable native PCI Express control in the firmware (often labelled SR-IOV, Above 4G decoding or PCIe native control), then reboot"
            }
            ErrorKind::HypervisorFeatureUnavailable => {
                "Discrete Device Assignment needs Windows Server; on Windows 10/11 use GPU partitioning (`passthru gpu-p add`) instead, or give the device back with `passthru release`"
            }
            ErrorKind::DynamicMemoryConflict => {
                "make the VM's startup memory equal its minimum memory, or turn dynamic memory off (`passthru gpu-p add` and `passthru assign` plan this for you)"
            }
            ErrorKind::NoMitigationDriver => {
                "the vendor provides no DDA mitigation driver; passthru dismounts with -Force only after its own checks (ACS, reserved memory, interrupts) pass"
            }
            ErrorKind::PermissionDenied => {
                "run passthru from an elevated prompt (Run as administrator), or as a member of Hyper-V Administrators"
            }
            ErrorKind::CommandNotFound { .. } => {
                "install the Hyper-V PowerShell module (Windows features: Hyper-V Module for Windows PowerShell) and make sure Hyper-V is enabled"
            }
            ErrorKind::Other => return None,
        };
        Some(text.to_owned())
    }
}

impl fmt::Display for HyperVError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

impl std::error::Error for HyperVError {}

/// Joins a multi-line Hyper-V message into one line, dropping repeated lines.
fn one_line(message: &str) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for line in message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    (!seen.is_empty()).then(|| seen.join(" "))
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::GpuPolicy => "Hyper-V refused the GPU because it is not compliant with the group policy (RequireSecureDeviceAssignment / RequireSupportedDeviceAssignment)".to_owned(),
        ErrorKind::MmioAboveAddressRange { limit: Some(limit) } => format!(
            "the VM's upper MMIO region lies above what this CPU can address (it must end below {limit:#x}, i.e. {} GiB)",
            limit >> 30
        ),
        ErrorKind::MmioAboveAddressRange { limit: None } => {
            "the VM's upper MMIO region lies above what this CPU can address".to_owned()
        }
        ErrorKind::InsufficientResources => {
            "Hyper-V could not reserve the resources for the device (Insufficient system resources)".to_owned()
        }
        ErrorKind::NoInstancePathParameter => {
            "this Windows build's Add-VMGpuPartitionAdapter has no -InstancePath parameter".to_owned()
        }
        ErrorKind::VbsRequired => {
            "the VM cannot start because virtualization-based security is not running on the host".to_owned()
        }
        ErrorKind::BlockedByGpuPartition => {
            "the operation is impossible while the VM has a GPU partition".to_owned()
        }
        ErrorKind::GpuPowerOnAccessDenied => {
            "the GPU partition failed to power on: access is denied".to_owned()
        }
        ErrorKind::NoOsPcieControl => {
            "the firmware kept control of PCI Express, so Windows cannot dismount devices".to_owned()
        }
        ErrorKind::HypervisorFeatureUnavailable => {
            "0xC035001E: the hypervisor feature needed for device assignment is not available on this Windows edition (client SKUs do not support DDA)".to_owned()
        }
        ErrorKind::DynamicMemoryConflict => {
            "Hyper-V requires startup memory to equal minimum memory when dynamic memory is on and a device or GPU partition is attached".to_owned()
        }
        ErrorKind::NoMitigationDriver => {
            "the device's vendor supplies no mitigation driver, so Hyper-V only dismounts it with -Force".to_owned()
        }
        ErrorKind::PermissionDenied => "permission denied (passthru must run elevated)".to_owned(),
        ErrorKind::CommandNotFound { name } => {
            format!("the command `{name}` does not exist on this host")
        }
        ErrorKind::VmNotFound | ErrorKind::VmState | ErrorKind::Other => String::new(),
    }
}

/// Classifies an error record.
pub fn classify(record: &ErrorRecord) -> HyperVError {
    HyperVError {
        kind: kind_of(record),
        record: record.clone(),
    }
}

fn kind_of(record: &ErrorRecord) -> ErrorKind {
    let message = record.message.to_lowercase();
    let id = record.fully_qualified_error_id.to_lowercase();
    let has = |needle: &str| message.contains(needle);
    if id.starts_with("commandnotfoundexception")
        || record.exception_type.ends_with("CommandNotFoundException")
    {
        let name = if record.target.is_empty() {
            record
                .message
                .split('\'')
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        } else {
            record.target.clone()
        };
        return ErrorKind::CommandNotFound { name };
    }
    if has("0xc035001e") || has("hypervisor feature is not available") {
        return ErrorKind::HypervisorFeatureUnavailable;
    }
    if has("not compliant with currently set group policy") || has("requiresecuredeviceassignment")
    {
        return ErrorKind::GpuPolicy;
    }
    if has("upper mmio region") && has("physical address range") {
        return ErrorKind::MmioAboveAddressRange {
            limit: mmio_limit(&record.message),
        };
    }
    if id.starts_with("namedparameternotfound") && has("instancepath") {
        return ErrorKind::NoInstancePathParameter;
    }
    if has("virtualization-based security is not running") {
        return ErrorKind::VbsRequired;
    }
    if has("assigned one or more gpup partitions") || has("gpu-p partitions") {
        return ErrorKind::BlockedByGpuPartition;
    }
    if has("gpu partition") && has("failed to power on") && has("access is denied") {
        return ErrorKind::GpuPowerOnAccessDenied;
    }
    if has("insufficient system resources") {
        return ErrorKind::InsufficientResources;
    }
    if has("does not allow for os control of the pci express bus") {
        return ErrorKind::NoOsPcieControl;
    }
    // F8k: the wording we have is Chinese (ExHyperV #60); the English one names the same two
    // settings.
    if (has("动态内存") && has("最小内存"))
        || (has("dynamic memory") && has("minimum memory"))
        || (has("startup memory") && has("minimum memory"))
    {
        return ErrorKind::DynamicMemoryConflict;
    }
    if has("has not supplied any directives for securing this device") {
        return ErrorKind::NoMitigationDriver;
    }
    if id.starts_with("invalidparameter") && has("unable to find a virtual machine") {
        return ErrorKind::VmNotFound;
    }
    if has("unable to find a virtual machine") {
        return ErrorKind::VmNotFound;
    }
    if id.starts_with("invalidstate") || has("in its current state") {
        return ErrorKind::VmState;
    }
    if has("you do not have the required permission")
        || has("access is denied")
        || id.starts_with("unauthorizedaccess")
        || record.category.eq_ignore_ascii_case("PermissionDenied")
    {
        return ErrorKind::PermissionDenied;
    }
    ErrorKind::Other
}

/// The `0x...` limit in "Make sure that the upper MMIO region is below 0x0000001000000000".
fn mmio_limit(message: &str) -> Option<u64> {
    let lower = message.to_lowercase();
    let after = lower.split("is below").nth(1)?;
    let hex = after.trim().strip_prefix("0x")?;
    let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// Recognises warnings worth passing on in plain words (F8e).
pub fn explain_warning(warning: &str) -> Option<&'static str> {
    warning
        .contains("Get-VMPartitionableGpu is deprecated")
        .then_some("this Windows build prefers Get-VMHostPartitionableGpu; passthru uses whichever the host has")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: &str) -> ErrorRecord {
        ErrorRecord {
            message: message.to_owned(),
            ..ErrorRecord::default()
        }
    }

    #[test]
    fn recognises_every_recorded_message() {
        let cases: Vec<(&str, ErrorKind)> = vec![
            (
                "Could not allocate partitionable GPU device '\\\\?\\PCI#VEN_10DE&DEV_1EB1&SUBSYS_12A010DE&REV_A1#4&11ef84ec&0&0019#{064092b3-625e-43bf-9eb5-dc845897dd59}\\GPUPARAV' that is not compliant with currently set group policy.  See HyperV\\RequireSecureDeviceAssignment and HyperV\\RequireSupportedDeviceAssignment for more details.",
                ErrorKind::GpuPolicy,
            ),
            (
                "'GPUP' failed to start.\nThe configuration of the virtual machine 'GPUP' specifies an upper MMIO region that is above the supported physical address range.\nVirtual machine 'GPUP' cannot be started. The upper MMIO region (0x00000017dffff000) is above the supported physical address range. Make sure that the upper MMIO region is below 0x0000001000000000. (Virtual machine ID 92D2CEE9-AE6E-44D3-9205-54408A1AB5A7)",
                ErrorKind::MmioAboveAddressRange {
                    limit: Some(0x10_0000_0000),
                },
            ),
            (
                "GPU Partition (Instance ID 8689E9CA-B1DB-4C72-8C36-47F5D549808A): Error 'Insufficient system resources exist to complete the requested service.'.",
                ErrorKind::InsufficientResources,
            ),
            (
                "The virtual machine can't start because virtualization-based security is not running on the host.  Virtualization-based security is required for one of the VM's devices.",
                ErrorKind::VbsRequired,
            ),
            (
                "The operation cannot be performed on the virtual machine because it is assigned one or more GPUP partitions",
                ErrorKind::BlockedByGpuPartition,
            ),
            (
                "GPU Partition: Failed to Power On with Error 'Access is denied'",
                ErrorKind::GpuPowerOnAccessDenied,
            ),
            (
                "The operation failed.\nThe current configuration does not allow for OS control of the PCI Express bus. Please check yo",
                ErrorKind::NoOsPcieControl,
            ),
            (
                "'Fedora' failed to start.\nVirtual Pci Express Port (Instance ID ...): Failed to Power on with Error\n'A hypervisor feature is not available to the user'. (0xC035001E).",
                ErrorKind::HypervisorFeatureUnavailable,
            ),
            (
                "无法对“Win11”执行该操作，因为指定的内存设置与设备分配或 GPU 分区不兼容。当启用了动态内存同时也分配了设备或 GPU 时，启动内存大小与最小内存大小必须相等。",
                ErrorKind::DynamicMemoryConflict,
            ),
            (
                "The operation failed.\nThe manufacturer of this device has not supplied any directives for securing this device while exposing it to a\nvirtual machine. The device should only be exposed to trusted virtual machines.",
                ErrorKind::NoMitigationDriver,
            ),
            (
                "Hyper-V was unable to find a virtual machine with name \"NOPE\".",
                ErrorKind::VmNotFound,
            ),
            (
                "The operation cannot be performed while the virtual machine is in its current state.",
                ErrorKind::VmState,
            ),
            (
                "You do not have the required permission to complete this task. Contact the administrator of the authorization policy for the computer 'X'.",
                ErrorKind::PermissionDenied,
            ),
            ("Something new", ErrorKind::Other),
        ];
        for (message, kind) in cases {
            assert_eq!(classify(&record(message)).kind, kind, "{message}");
        }
    }

    #[test]
    fn parameter_and_command_errors_use_their_ids() {
        let missing_parameter = ErrorRecord {
            exception_type: "System.Management.Automation.ParameterBindingException".into(),
            fully_qualified_error_id: "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.AddVMGpuPartitionAdapter".into(),
            message: "A parameter cannot be found that matches parameter name 'InstancePath'.".into(),
            ..ErrorRecord::default()
        };
        assert_eq!(
            classify(&missing_parameter).kind,
            ErrorKind::NoInstancePathParameter
        );
        let missing_command = ErrorRecord {
            exception_type: "System.Management.Automation.CommandNotFoundException".into(),
            fully_qualified_error_id: "CommandNotFoundException".into(),
            message: "The term 'Get-VM' is not recognized as the name of a cmdlet, function, script file, or operable program.".into(),
            ..ErrorRecord::default()
        };
        assert_eq!(
            classify(&missing_command).kind,
            ErrorKind::CommandNotFound {
                name: "Get-VM".into()
            }
        );
    }

    #[test]
    fn summaries_and_help_are_sentences() {
        let error = classify(&ErrorRecord {
            command: "Start-VM".into(),
            message: "'Fedora' failed to start.\nVirtual Pci Express Port (Instance ID ...): Failed to Power on with Error\n'A hypervisor feature is not available to the user'. (0xC035001E).".into(),
            ..ErrorRecord::default()
        });
        assert!(error.summary().starts_with("Start-VM failed: 0xC035001E"));
        assert!(error.help().unwrap().contains("Windows Server"));
        assert!(explain_warning("WARNING: Get-VMPartitionableGpu is deprecated. Please use Get-VMHostPartitionableGpu instead").is_some());
    }
}
