//! The Windows host operations that provisioning needs, as a small typed port.
//!
//! The real implementation runs the PowerShell of [`super::powershell`] through the Hyper-V
//! PowerShell session ([`super::powershell::PowerShellGuestHost`] needs only a
//! [`super::powershell::ScriptRunner`]); tests use [`super::fake::FakeGuestHost`].

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::package::RegData;

/// A VM's power state, as `Get-VM` reports it (`State`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmState {
    /// Off: its disks may be mounted on the host.
    Off,
    /// Running (or starting, stopping, ...).
    Running,
    /// Saved: memory is on disk and refers to the disk's contents.
    Saved,
    /// Paused.
    Paused,
    /// Anything else, as PowerShell named it.
    Other(String),
}

impl VmState {
    /// Parses `Get-VM`'s `State` text.
    pub fn from_text(text: &str) -> Self {
        match text {
            "Off" => Self::Off,
            "Running" | "Starting" | "Stopping" | "Reset" => Self::Running,
            "Saved" | "Saving" => Self::Saved,
            "Paused" | "Pausing" => Self::Paused,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A disk attached to a VM (`Get-VMHardDiskDrive`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDisk {
    /// The virtual disk file (`.vhdx`, `.vhd`, `.avhdx` when the VM has checkpoints), or `None`
    /// for a physical disk passed through to the VM.
    pub path: Option<String>,
    /// `SCSI 0:0`-style location, for messages.
    pub location: String,
}

/// BitLocker state of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BitLocker {
    /// Not encrypted.
    Off,
    /// Encrypted and unlocked: readable.
    Unlocked,
    /// Encrypted and locked: the file system cannot be read.
    Locked,
    /// The host cannot tell (no BitLocker module); treated as readable if a file system shows.
    Unknown,
}

/// A partition of a mounted disk, with its volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestVolume {
    /// Partition number on the disk.
    pub partition: u32,
    /// Size in bytes.
    pub size: u64,
    /// File system (`NTFS`), empty when none is readable (locked BitLocker, raw, MSR).
    pub file_system: String,
    /// Where the volume is reachable on the host (`E:\`), if anywhere.
    pub access_path: Option<PathBuf>,
    /// BitLocker state.
    pub bitlocker: BitLocker,
}

/// A registry key below `HKEY_LOCAL_MACHINE` (`passthru_SYSTEM\ControlSet001\Services\nvlddmkm`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegKey(pub String);

impl RegKey {
    /// A subkey.
    pub fn join(&self, child: &str) -> Self {
        Self(format!("{}\\{child}", self.0))
    }
}

impl fmt::Display for RegKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HKLM\\{}", self.0)
    }
}

/// A host operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct HostError {
    /// What was attempted ("mount `D:\VMs\win11.vhdx`").
    pub operation: String,
    /// What Windows said.
    pub message: String,
    /// What to do about it, when known.
    pub help: Option<String>,
}

impl HostError {
    /// An error without help text.
    pub fn new(operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            message: message.into(),
            help: None,
        }
    }

    /// Adds help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The Windows host operations guest provisioning uses. Every method is one PowerShell script
/// in [`super::powershell`].
pub trait GuestHost {
    /// `Get-VM`: the VM's state.
    fn vm_state(&mut self, vm: &str) -> Result<VmState, HostError>;
    /// `Stop-VM` (a clean shutdown through the guest's integration services); waits for Off.
    fn stop_vm(&mut self, vm: &str) -> Result<(), HostError>;
    /// `Start-VM`.
    fn start_vm(&mut self, vm: &str) -> Result<(), HostError>;
    /// `Get-VMHardDiskDrive`: the VM's disks in controller order.
    fn vm_disks(&mut self, vm: &str) -> Result<Vec<VmDisk>, HostError>;
    /// `Get-VHD`: the host disk number if the file is mounted.
    fn mounted_disk(&mut self, vhd: &str) -> Result<Option<u32>, HostError>;
    /// `Mount-VHD -NoDriveLetter`: mounts read-write; returns the host disk number.
    fn mount_vhd(&mut self, vhd: &str) -> Result<u32, HostError>;
    /// `Dismount-VHD`.
    fn dismount_vhd(&mut self, vhd: &str) -> Result<(), HostError>;
    /// `Get-Partition | Get-Volume` plus BitLocker state, for a mounted disk.
    fn volumes(&mut self, disk: u32) -> Result<Vec<GuestVolume>, HostError>;
    /// `Add-PartitionAccessPath -AssignDriveLetter` (if the partition has none); returns it.
    fn access_path(&mut self, disk: u32, partition: u32) -> Result<PathBuf, HostError>;
    /// `reg load HKLM\<mount> <file>`.
    fn load_hive(&mut self, file: &std::path::Path, mount: &str) -> Result<(), HostError>;
    /// `reg unload HKLM\<mount>`.
    fn unload_hive(&mut self, mount: &str) -> Result<(), HostError>;
    /// Whether a key exists.
    fn key_exists(&mut self, key: &RegKey) -> Result<bool, HostError>;
    /// A value, `None` when the key or value does not exist.
    fn read_value(&mut self, key: &RegKey, name: &str) -> Result<Option<RegData>, HostError>;
    /// Writes a value with its exact type, creating the key if needed.
    fn write_value(&mut self, key: &RegKey, name: &str, data: &RegData) -> Result<(), HostError>;
    /// Deletes a value (absent is fine).
    fn delete_value(&mut self, key: &RegKey, name: &str) -> Result<(), HostError>;
    /// Deletes a key and everything below it (absent is fine).
    fn delete_key(&mut self, key: &RegKey) -> Result<(), HostError>;
}
