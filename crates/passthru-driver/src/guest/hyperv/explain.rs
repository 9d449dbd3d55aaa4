//! What the Windows errors of guest provisioning mean, in plain words.
//!
//! [`passthru_hyperv::error::classify`] knows Hyper-V's messages (a VM in the wrong state,
//! permissions, missing cmdlets); mounting disks and loading hives fail in ways of their own,
//! recognised here by their codes first and their English text second:
//!
//! | problem | recognised by | recorded in |
//! |---|---|---|
//! | BitLocker-locked volume | `0x80310000` (FVE_E_LOCKED_VOLUME), "locked by BitLocker" | "This drive is locked by BitLocker Drive Encryption. You must unlock this drive from Control Panel." (aleksey-hoffman/sigma-file-manager#28) |
//! | disk in use | `0x80070020`, `0x800700AA`, "being used by another process", "object is in use" | `New-VHD` in microsoft/openvmm#1600; `Get-VHD` in MicrosoftDocs/windows-powershell-docs#2024; `Start-VM` in paulshir/coreos-hyperv#2 |
//! | file missing | `0x80070002`, "cannot find the file", "cannot find path" | Windows' ERROR_FILE_NOT_FOUND text |
//! | access denied | the classifier's permission check, `0x80070005`, `UnauthorizedAccessException` | |

use passthru_hyperv::client::HostError as PortFailure;
use passthru_hyperv::error::ErrorKind;
use serde::Serialize;

use super::super::host::HostError;
use super::super::powershell::GuestRequest;

/// What went wrong with a guest disk or hive, as far as passthru can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskProblem {
    /// The volume is BitLocker-locked.
    BitLockerLocked,
    /// The disk file is open elsewhere (a running VM, already mounted, a backup).
    DiskInUse,
    /// The VM is not off.
    VmRunning,
    /// Not elevated.
    AccessDenied,
    /// The file does not exist.
    FileMissing,
    /// Nothing more specific.
    Other,
}

/// Classifies a failure from its Hyper-V classification and its message.
pub fn classify(kind: &ErrorKind, exception_type: &str, message: &str) -> DiskProblem {
    let lower = message.to_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if has("0x80310000") || has("locked by bitlocker") || has("fve_e_locked_volume") {
        DiskProblem::BitLockerLocked
    } else if has("0x80070020")
        || has("0x800700aa")
        || has("being used by another process")
        || has("object is in use")
        || has("requested resource is in use")
    {
        DiskProblem::DiskInUse
    } else if *kind == ErrorKind::VmState {
        DiskProblem::VmRunning
    } else if *kind == ErrorKind::PermissionDenied
        || has("0x80070005")
        || exception_type.ends_with("UnauthorizedAccessException")
    {
        DiskProblem::AccessDenied
    } else if has("0x80070002") || has("cannot find the file") || has("cannot find path") {
        DiskProblem::FileMissing
    } else {
        DiskProblem::Other
    }
}

/// What to do about `problem` when `request` failed with it.
pub fn help(problem: DiskProblem, request: &GuestRequest) -> Option<String> {
    let disk = match request {
        GuestRequest::MountVhd { vhd }
        | GuestRequest::DismountVhd { vhd }
        | GuestRequest::MountedDisk { vhd } => format!(" (Dismount-VHD -Path '{vhd}')"),
        _ => String::new(),
    };
    Some(match problem {
        DiskProblem::BitLockerLocked => "the guest's volume is BitLocker-locked, so the host \
            cannot read it: unlock it on the host (Unlock-BitLocker, or manage-bde -unlock with \
            the recovery key) or suspend BitLocker inside the guest (Suspend-BitLocker), then \
            run the command again"
            .to_owned(),
        DiskProblem::DiskInUse => format!(
            "the disk file is open elsewhere: the VM may be running (it must be off), the disk \
             may already be mounted on this host{disk}, or a backup or another program may \
             hold it; close it and run the command again"
        ),
        DiskProblem::VmRunning => "the VM must be off: run the command again with --stop-vm \
            (at a terminal passthru asks), or shut Windows down inside the VM"
            .to_owned(),
        DiskProblem::AccessDenied => "run passthru from an elevated prompt (Run as \
            administrator): mounting disks and loading registry hives needs administrator \
            rights"
            .to_owned(),
        DiskProblem::FileMissing => match request {
            GuestRequest::MountVhd { .. } => "the VM's disk file is missing or was moved; \
                `Get-VMHardDiskDrive -VMName NAME` shows where Hyper-V expects it"
                .to_owned(),
            _ => return None,
        },
        DiskProblem::Other => return None,
    })
}

/// A failed guest request, explained.
pub fn explain(request: &GuestRequest, error: &PortFailure) -> HostError {
    let failure = port_failure(request.operation(), error);
    match error.hyperv() {
        Some(hyperv) => {
            let record = &hyperv.record;
            let problem = classify(&hyperv.kind, &record.exception_type, &record.message);
            match help(problem, request) {
                Some(help) => failure.with_help(help),
                None => failure,
            }
        }
        None => failure,
    }
}

/// A failure of the port (or of a Hyper-V cmdlet) as the guest port's error, with the Hyper-V
/// side's explanation.
pub fn port_failure(operation: String, error: &PortFailure) -> HostError {
    let message = match error.hyperv() {
        Some(hyperv) => one_line(&hyperv.record.message),
        None => error.to_string(),
    };
    let failure = HostError::new(operation, message);
    match error.help() {
        Some(help) => failure.with_help(help),
        None => failure,
    }
}

/// A multi-line Windows message on one line, repeated lines once.
fn one_line(message: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    if seen.is_empty() {
        "(no message)".to_owned()
    } else {
        seen.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(message: &str) -> DiskProblem {
        classify(&ErrorKind::Other, "", message)
    }

    #[test]
    fn recognises_recorded_messages() {
        assert_eq!(
            problem(
                "This drive is locked by BitLocker Drive Encryption. You must unlock this drive from Control Panel."
            ),
            DiskProblem::BitLockerLocked
        );
        assert_eq!(
            problem("Exception from HRESULT: 0x80310000"),
            DiskProblem::BitLockerLocked
        );
        assert_eq!(
            problem(
                "Failed to create the virtual hard disk.\nThe system failed to create <tmp disk>: The process cannot access the file because it is being used by another process."
            ),
            DiskProblem::DiskInUse
        );
        assert_eq!(
            problem("The operation cannot be performed while the object is in use."),
            DiskProblem::DiskInUse
        );
        assert_eq!(
            problem(
                "Failed to open attachment 'E:\\Hyper-V\\Virtual Disks\\coreos.vhd'. Error: 'The requested resource is in use.' (0x800700AA)."
            ),
            DiskProblem::DiskInUse
        );
        assert_eq!(
            problem("The system cannot find the file specified. (0x80070002)"),
            DiskProblem::FileMissing
        );
        assert_eq!(
            classify(
                &ErrorKind::VmState,
                "",
                "The operation cannot be performed while the virtual machine is in its current state."
            ),
            DiskProblem::VmRunning
        );
        assert_eq!(
            classify(
                &ErrorKind::Other,
                "System.UnauthorizedAccessException",
                "Access to the registry key 'HKEY_LOCAL_MACHINE\\X' is denied."
            ),
            DiskProblem::AccessDenied
        );
        assert_eq!(problem("Something new"), DiskProblem::Other);
    }

    #[test]
    fn help_names_the_disk_and_the_way_out() {
        let mount = GuestRequest::MountVhd {
            vhd: r"D:\VMs\os.vhdx".into(),
        };
        let text = help(DiskProblem::DiskInUse, &mount).unwrap();
        assert!(
            text.contains(r"Dismount-VHD -Path 'D:\VMs\os.vhdx'"),
            "{text}"
        );
        assert!(
            help(DiskProblem::BitLockerLocked, &mount)
                .unwrap()
                .contains("Unlock-BitLocker")
        );
        assert!(help(DiskProblem::Other, &mount).is_none());
        assert!(
            help(
                DiskProblem::FileMissing,
                &GuestRequest::UnloadHive { mount: "X".into() }
            )
            .is_none()
        );
        assert_eq!(one_line("a\n\n b \na\nc"), "a b c");
    }
}
