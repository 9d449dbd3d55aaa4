//! The error records the simulated Hyper-V raises.
//!
//! Two kinds, kept apart on purpose:
//!
//! - **recorded**: the wording comes from real output (reference F8, `fixtures/hyperv/error_*`,
//!   public issue threads); only names, ids and addresses are substituted;
//! - **modelled**: Hyper-V certainly fails here, but no recording of its wording reached us; the
//!   message follows Hyper-V's general pattern and says so in its comment. Code must not rely
//!   on these texts (passthru classifies them only as generic failures).

use crate::error::ErrorRecord;

fn hyperv(cmdlet: &str, reason: &str, category: &str, message: String) -> Box<ErrorRecord> {
    Box::new(ErrorRecord::virtualization(
        cmdlet, reason, category, message,
    ))
}

/// Recorded (`Get-VM -Name NOPE`, seen in several public Hyper-V wrappers with this id).
pub fn vm_not_found(cmdlet: &str, name: &str) -> Box<ErrorRecord> {
    let mut record = hyperv(
        cmdlet,
        "InvalidParameter",
        "InvalidArgument",
        format!("Hyper-V was unable to find a virtual machine with name \"{name}\"."),
    );
    record.target = name.to_owned();
    record
}

/// Recorded (the general invalid-state text of Hyper-V cmdlets).
pub(super) fn invalid_state(cmdlet: &str) -> Box<ErrorRecord> {
    hyperv(
        cmdlet,
        "InvalidState",
        "InvalidOperation",
        "The operation cannot be performed while the virtual machine is in its current state."
            .to_owned(),
    )
}

/// Recorded (hashicorp/packer#8633: `Set-VMMemory` on a running VM).
pub(super) fn memory_not_modifiable(vm: &str, id: &str) -> Box<ErrorRecord> {
    hyperv(
        "Set-VMMemory",
        "InvalidState",
        "InvalidOperation",
        format!(
            "Failed to modify device 'Memory'.\n'{vm}' failed to modify device 'Memory'. (Virtual machine ID {id})"
        ),
    )
}

/// Recorded (F8a, jamesstringer90/Easy-GPU-PV#125), raised by `Start-VM`.
pub(super) fn gpu_policy(gpu: &str) -> Box<ErrorRecord> {
    hyperv(
        "Start-VM",
        "InvalidParameter",
        "InvalidArgument",
        format!(
            "Could not allocate partitionable GPU device '{gpu}' that is not compliant with currently set group policy.  See HyperV\\RequireSecureDeviceAssignment and HyperV\\RequireSupportedDeviceAssignment for more details."
        ),
    )
}

/// Recorded (F8b, jamesstringer90/Easy-GPU-PV#278, #153), raised by `Start-VM`.
pub(super) fn mmio_above_range(
    vm: &str,
    id: &str,
    region_end: u64,
    limit: u64,
) -> Box<ErrorRecord> {
    hyperv(
        "Start-VM",
        "InvalidParameter",
        "InvalidArgument",
        format!(
            "'{vm}' failed to start.\nThe configuration of the virtual machine '{vm}' specifies an upper MMIO region that is above the supported physical address range.\n'{vm}' failed to start. (Virtual machine ID {id})\nVirtual machine '{vm}' cannot be started. The upper MMIO region ({region_end:#018x}) is above the supported physical address range. Make sure that the upper MMIO region is below {limit:#018x}. (Virtual machine ID {id})"
        ),
    )
}

/// Recorded (F8j, `fixtures/hyperv/error_DDA_0xC035001E_*`), raised by `Start-VM` on a
/// client SKU with an assigned device.
pub(super) fn hypervisor_feature_unavailable(vm: &str) -> Box<ErrorRecord> {
    hyperv(
        "Start-VM",
        "InvalidOperation",
        "InvalidOperation",
        format!(
            "'{vm}' failed to start.\nVirtual Pci Express Port (Instance ID ...): Failed to Power on with Error\n'A hypervisor feature is not available to the user'. (0xC035001E)."
        ),
    )
}

/// Recorded (F8k, Justsenger/ExHyperV#60). Only the Chinese wording reached us, so the
/// simulator answers in Chinese, which also keeps passthru's classifier honest about locales.
pub(super) fn dynamic_memory(cmdlet: &str, vm: &str) -> Box<ErrorRecord> {
    hyperv(
        cmdlet,
        "InvalidParameter",
        "InvalidArgument",
        format!(
            "无法对“{vm}”执行该操作，因为指定的内存设置与设备分配或 GPU 分区不兼容。当启用了动态内存同时也分配了设备或 GPU 时，启动内存大小与最小内存大小必须相等。"
        ),
    )
}

/// Recorded (F8d, jamesstringer90/Easy-GPU-PV#5): Windows 10's cmdlet has no -InstancePath.
pub(super) fn no_instance_path() -> Box<ErrorRecord> {
    Box::new(ErrorRecord {
        exception_type: "System.Management.Automation.ParameterBindingException".to_owned(),
        fully_qualified_error_id:
            "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.AddVMGpuPartitionAdapter"
                .to_owned(),
        category: "InvalidArgument".to_owned(),
        message: "A parameter cannot be found that matches parameter name 'InstancePath'."
            .to_owned(),
        target: String::new(),
        command: "Add-VMGpuPartitionAdapter".to_owned(),
    })
}

/// Recorded (fixture `error_Dismount-VMHostAssignableDevice_usb3_no_force.txt`).
pub(super) fn no_mitigation_driver() -> Box<ErrorRecord> {
    hyperv(
        "Dismount-VMHostAssignableDevice",
        "InvalidOperation",
        "InvalidOperation",
        "The operation failed.\nThe manufacturer of this device has not supplied any directives for securing this device while exposing it to a\nvirtual machine. The device should only be exposed to trusted virtual machines.\nThis device is not supported when passed through to a virtual machine.\nThe operation failed.\nThe manufacturer of this device has not supplied any directives for securing this device while exposing it to a\nvirtual machine.".to_owned(),
    )
}

/// Recorded (F8i, intel/haxm#149; the source cuts the second sentence short, and so do we).
pub(super) fn no_os_pcie_control() -> Box<ErrorRecord> {
    hyperv(
        "Dismount-VMHostAssignableDevice",
        "InvalidOperation",
        "InvalidOperation",
        "The operation failed.\nThe current configuration does not allow for OS control of the PCI Express bus. Please check yo".to_owned(),
    )
}

/// Modelled: the CIM "not found" pattern of the PnpDevice cmdlets.
pub(super) fn pnp_not_found(cmdlet: &str, instance_id: &str) -> Box<ErrorRecord> {
    Box::new(ErrorRecord {
        exception_type: "Microsoft.Management.Infrastructure.CimException".to_owned(),
        fully_qualified_error_id: format!("CmdletizationQuery_NotFound,{cmdlet}"),
        category: "ObjectNotFound".to_owned(),
        message: format!(
            "No matching Win32_PnPEntity objects found by CIM query for instances of the ROOT/cimv2/Win32_PnPEntity class on the  CIM server: SELECT * FROM Win32_PnPEntity  WHERE ((DeviceId LIKE '{}')). Verify query parameters and retry.",
            instance_id.replace('\\', "\\\\")
        ),
        target: instance_id.to_owned(),
        command: cmdlet.to_owned(),
    })
}

/// Modelled: a DDA cmdlet asked about a device that is not in the state it needs.
pub(super) fn device_state(cmdlet: &str, location: &str, what: &str) -> Box<ErrorRecord> {
    hyperv(
        cmdlet,
        "InvalidOperation",
        "InvalidOperation",
        format!("The operation failed.\nThe device at location path '{location}' {what}."),
    )
}

/// Modelled: something named does not exist (adapter id, partitionable GPU, assigned device).
pub(super) fn not_found(cmdlet: &str, what: String) -> Box<ErrorRecord> {
    hyperv(cmdlet, "ObjectNotFound", "ObjectNotFound", what)
}

/// Modelled: a guest that does not answer the shutdown request (no integration services).
pub(super) fn shutdown_refused(vm: &str) -> Box<ErrorRecord> {
    hyperv(
        "Stop-VM",
        "OperationFailed",
        "NotSpecified",
        format!(
            "The virtual machine '{vm}' could not be shut down: the guest did not respond to the shutdown request (integration services not running)."
        ),
    )
}

/// Modelled: an invalid argument to a cmdlet.
pub(super) fn invalid_argument(cmdlet: &str, message: String) -> Box<ErrorRecord> {
    hyperv(cmdlet, "InvalidParameter", "InvalidArgument", message)
}
