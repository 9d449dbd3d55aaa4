//! The error records the simulated guest-disk operations raise, shaped as the real scripts
//! report them (exception type, error id, category, message).
//!
//! As in the Hyper-V simulator: **recorded** wording comes from real output (named in each
//! comment); **modelled** wording follows Windows' pattern for that command where no recording
//! reached us, and code must not depend on it beyond what [`crate::guest::hyperv::explain`]
//! recognises by error code.

use passthru_hyperv::error::ErrorRecord;

fn record(kind: &str, id: &str, category: &str, command: &str, message: String) -> ErrorRecord {
    ErrorRecord {
        exception_type: kind.to_owned(),
        fully_qualified_error_id: id.to_owned(),
        category: category.to_owned(),
        message,
        target: String::new(),
        command: command.to_owned(),
    }
}

fn vhd_cmdlet(cmdlet: &str, reason: &str, category: &str, message: String) -> ErrorRecord {
    record(
        "Microsoft.HyperV.PowerShell.VirtualizationException",
        &format!(
            "{reason},Microsoft.Vhd.PowerShell.Cmdlets.{}",
            cmdlet.replace('-', "")
        ),
        category,
        cmdlet,
        message,
    )
}

/// Modelled on the recorded `Mount-VHD` first lines (dsccommunity/NetworkingDsc#312: "Failed
/// to mount the virtual disk. The system failed to mount '...'") and the recorded `New-VHD`
/// in-use text (microsoft/openvmm#1600), with the Win32 code of ERROR_SHARING_VIOLATION.
pub(super) fn vhd_in_use(cmdlet: &str, verb: &str, vhd: &str) -> ErrorRecord {
    vhd_cmdlet(
        cmdlet,
        "ObjectInUse",
        "ResourceBusy",
        format!(
            "Failed to {verb} the virtual disk.\nThe system failed to {verb} '{vhd}'.\nFailed to {verb} the virtual disk.\nThe system failed to {verb} '{vhd}': The process cannot access the file because it is being used by another process. (0x80070020)."
        ),
    )
}

/// Modelled like [`vhd_in_use`], with ERROR_FILE_NOT_FOUND.
pub(super) fn vhd_missing(cmdlet: &str, verb: &str, vhd: &str) -> ErrorRecord {
    vhd_cmdlet(
        cmdlet,
        "ObjectNotFound",
        "ObjectNotFound",
        format!(
            "Failed to {verb} the virtual disk.\nThe system failed to {verb} '{vhd}': The system cannot find the file specified. (0x80070002)."
        ),
    )
}

/// Modelled: `Dismount-VHD` of a file that is not mounted.
pub(super) fn vhd_not_attached(vhd: &str) -> ErrorRecord {
    vhd_cmdlet(
        "Dismount-VHD",
        "InvalidParameter",
        "InvalidArgument",
        format!("The virtual disk '{vhd}' is not attached."),
    )
}

/// Recorded pattern of the storage cmdlets' CIM queries ("No MSFT_Partition objects found with
/// property 'DiskNumber' equal to '9'.  Verify the value of the property and retry.").
pub(super) fn partition_not_found(cmdlet: &str, property: &str, value: u32) -> ErrorRecord {
    record(
        "Microsoft.Management.Infrastructure.CimException",
        &format!("CmdletizationQuery_NotFound_{property},{cmdlet}"),
        "ObjectNotFound",
        cmdlet,
        format!(
            "No MSFT_Partition objects found with property '{property}' equal to '{value}'.  Verify the value of the property and retry."
        ),
    )
}

/// What `throw "reg ... failed: $out"` in the hive scripts raises: PowerShell makes the thrown
/// text the message and the error id. The `ERROR: ...` lines are reg.exe's (recorded:
/// "The system cannot find the file specified.", "The parameter is incorrect." for unloading a
/// key that is not loaded; modelled: the others).
pub(super) fn reg_failed(verb: &str, reg_says: &str) -> ErrorRecord {
    let message = format!("reg {verb} failed: ERROR: {reg_says}");
    record(
        "System.Management.Automation.RuntimeException",
        &message,
        "OperationStopped",
        "",
        message.clone(),
    )
}

/// Recorded .NET text (`RegistryKey.CreateSubKey` below HKLM where no hive is loaded), as
/// PowerShell wraps a failing method call.
pub(super) fn registry_access_denied(key: &str) -> ErrorRecord {
    record(
        "System.Management.Automation.MethodInvocationException",
        "UnauthorizedAccessException",
        "NotSpecified",
        "",
        format!(
            "Exception calling \"CreateSubKey\" with \"1\" argument(s): \"Access to the registry key 'HKEY_LOCAL_MACHINE\\{key}' is denied.\""
        ),
    )
}

/// Recorded PowerShell text (`Get-ItemProperty -LiteralPath` on a missing registry key).
pub(super) fn no_such_device(instance_id: &str) -> ErrorRecord {
    let mut error = record(
        "System.Management.Automation.ItemNotFoundException",
        "PathNotFound,Microsoft.PowerShell.Commands.GetItemPropertyCommand",
        "ObjectNotFound",
        "Get-ItemProperty",
        format!(
            "Cannot find path 'HKLM:\\SYSTEM\\CurrentControlSet\\Enum\\{instance_id}' because it does not exist."
        ),
    );
    error.target = format!("HKLM:\\SYSTEM\\CurrentControlSet\\Enum\\{instance_id}");
    error
}
