//! The PowerShell behind every [`GuestHost`](super::GuestHost) operation, and an
//! implementation of the port over any runner of Windows PowerShell 5.1 scripts.
//!
//! Conventions (shared with the Hyper-V port): every script stops on the first error
//! (`$ErrorActionPreference = 'Stop'`), prints exactly one JSON document, wraps lists with
//! `ConvertTo-Json -InputObject @(...)` (PowerShell 5.1 unwraps one-element pipelines), and
//! converts enums to strings itself. Registry work uses the .NET `Microsoft.Win32.Registry`
//! API, not the `HKLM:` provider: it keeps value kinds exact, does not expand `%SystemRoot%`,
//! and holds no provider handles that would make `reg unload` fail.
//!
//! This file holds the requests as data ([`GuestRequest`]) and what every script shares
//! (quoting, the prelude). The scripts live by subject: `vm` for the VM and its disks,
//! `registry` for the offline hive, `adapter` for the host GPU's driver registration; and
//! `guest_host` implements the port by running them and reading their answers.

mod adapter;
mod guest_host;
mod registry;
mod vm;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::host::{HostError, RegKey};
use crate::package::RegData;

pub use adapter::{adapter_registration, parse_adapter_registration};
pub use guest_host::PowerShellGuestHost;
pub use registry::{
    delete_key, delete_value, key_exists, load_hive, read_value, unload_hive, write_value,
};
pub use vm::{
    access_path, dismount_vhd, mount_vhd, mounted_disk, start_vm, stop_vm, vm_disks, vm_state,
    volumes,
};

/// Runs one request's script in Windows PowerShell 5.1 and returns what it printed. A script
/// that throws is an `Err` whose `operation` is [`GuestRequest::operation`] and whose message
/// is PowerShell's.
pub trait ScriptRunner {
    /// Runs `request.script()`. The request itself travels along so that a runner can name the
    /// operation and a simulated host can carry it out ([`GuestRequest`] is serializable).
    fn run(&mut self, request: &GuestRequest) -> Result<String, HostError>;
}

/// One operation on the Windows host, with its parameters: what each script does, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum GuestRequest {
    /// [`vm_state`].
    VmState {
        /// VM name.
        vm: String,
    },
    /// [`stop_vm`].
    StopVm {
        /// VM name.
        vm: String,
    },
    /// [`start_vm`].
    StartVm {
        /// VM name.
        vm: String,
    },
    /// [`vm_disks`].
    VmDisks {
        /// VM name.
        vm: String,
    },
    /// [`mounted_disk`].
    MountedDisk {
        /// Virtual disk file.
        vhd: String,
    },
    /// [`mount_vhd`].
    MountVhd {
        /// Virtual disk file.
        vhd: String,
    },
    /// [`dismount_vhd`].
    DismountVhd {
        /// Virtual disk file.
        vhd: String,
    },
    /// [`volumes`].
    Volumes {
        /// Host disk number.
        disk: u32,
    },
    /// [`access_path`].
    AccessPath {
        /// Host disk number.
        disk: u32,
        /// Partition number.
        partition: u32,
    },
    /// [`load_hive`].
    LoadHive {
        /// The hive file on the host.
        file: PathBuf,
        /// Mount name below HKLM.
        mount: String,
    },
    /// [`unload_hive`].
    UnloadHive {
        /// Mount name below HKLM.
        mount: String,
    },
    /// [`key_exists`].
    KeyExists {
        /// The key.
        key: RegKey,
    },
    /// [`read_value`].
    ReadValue {
        /// The key.
        key: RegKey,
        /// Value name.
        name: String,
    },
    /// [`write_value`].
    WriteValue {
        /// The key.
        key: RegKey,
        /// Value name.
        name: String,
        /// Data with its type.
        data: RegData,
    },
    /// [`delete_value`].
    DeleteValue {
        /// The key.
        key: RegKey,
        /// Value name.
        name: String,
    },
    /// [`delete_key`].
    DeleteKey {
        /// The key.
        key: RegKey,
    },
    /// [`adapter_registration`].
    AdapterRegistration {
        /// The GPU's PnP instance id.
        instance_id: String,
    },
}

impl GuestRequest {
    /// The PowerShell that carries the request out.
    pub fn script(&self) -> String {
        match self {
            Self::VmState { vm } => vm_state(vm),
            Self::StopVm { vm } => stop_vm(vm),
            Self::StartVm { vm } => start_vm(vm),
            Self::VmDisks { vm } => vm_disks(vm),
            Self::MountedDisk { vhd } => mounted_disk(vhd),
            Self::MountVhd { vhd } => mount_vhd(vhd),
            Self::DismountVhd { vhd } => dismount_vhd(vhd),
            Self::Volumes { disk } => volumes(*disk),
            Self::AccessPath { disk, partition } => access_path(*disk, *partition),
            Self::LoadHive { file, mount } => load_hive(file, mount),
            Self::UnloadHive { mount } => unload_hive(mount),
            Self::KeyExists { key } => key_exists(key),
            Self::ReadValue { key, name } => read_value(key, name),
            Self::WriteValue { key, name, data } => write_value(key, name, data),
            Self::DeleteValue { key, name } => delete_value(key, name),
            Self::DeleteKey { key } => delete_key(key),
            Self::AdapterRegistration { instance_id } => adapter_registration(instance_id),
        }
    }

    /// What it does, for error messages (`Mount-VHD 'D:\VMs\a.vhdx'`).
    pub fn operation(&self) -> String {
        match self {
            Self::VmState { vm } => format!("Get-VM '{vm}'"),
            Self::StopVm { vm } => format!("Stop-VM '{vm}'"),
            Self::StartVm { vm } => format!("Start-VM '{vm}'"),
            Self::VmDisks { vm } => format!("Get-VMHardDiskDrive '{vm}'"),
            Self::MountedDisk { vhd } => format!("Get-VHD '{vhd}'"),
            Self::MountVhd { vhd } => format!("Mount-VHD '{vhd}'"),
            Self::DismountVhd { vhd } => format!("Dismount-VHD '{vhd}'"),
            Self::Volumes { disk } => format!("Get-Partition -DiskNumber {disk}"),
            Self::AccessPath { disk, partition } => {
                format!("Add-PartitionAccessPath -DiskNumber {disk} -PartitionNumber {partition}")
            }
            Self::LoadHive { mount, .. } => format!("reg load HKLM\\{mount}"),
            Self::UnloadHive { mount } => format!("reg unload HKLM\\{mount}"),
            Self::KeyExists { key } => format!("open {key}"),
            Self::ReadValue { key, name } => format!("read {key}\\{name}"),
            Self::WriteValue { key, name, .. } => format!("write {key}\\{name}"),
            Self::DeleteValue { key, name } => format!("delete {key}\\{name}"),
            Self::DeleteKey { key } => format!("delete {key}"),
            Self::AdapterRegistration { .. } => "read the GPU's driver registration".to_owned(),
        }
    }

    /// The command that does the work (`Mount-VHD`, `reg load`), as fault injection and error
    /// explanations name it.
    pub fn command(&self) -> &'static str {
        match self {
            Self::VmState { .. } => "Get-VM",
            Self::StopVm { .. } => "Stop-VM",
            Self::StartVm { .. } => "Start-VM",
            Self::VmDisks { .. } => "Get-VMHardDiskDrive",
            Self::MountedDisk { .. } => "Get-VHD",
            Self::MountVhd { .. } => "Mount-VHD",
            Self::DismountVhd { .. } => "Dismount-VHD",
            Self::Volumes { .. } => "Get-Partition",
            Self::AccessPath { .. } => "Add-PartitionAccessPath",
            Self::LoadHive { .. } => "reg load",
            Self::UnloadHive { .. } => "reg unload",
            Self::KeyExists { .. } | Self::ReadValue { .. } => "OpenSubKey",
            Self::WriteValue { .. } => "SetValue",
            Self::DeleteValue { .. } => "DeleteValue",
            Self::DeleteKey { .. } => "DeleteSubKeyTree",
            Self::AdapterRegistration { .. } => "Get-WindowsDriver",
        }
    }
}

/// A PowerShell single-quoted string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

const PRELUDE: &str = "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n";

fn script(body: &str) -> String {
    format!("{PRELUDE}{}\n", body.trim())
}

#[cfg(test)]
mod tests;
