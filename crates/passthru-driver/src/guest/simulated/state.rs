//! What the simulated host knows about guest disks and the host's GPU drivers, kept in the
//! simulator's state file under `extensions.guestDisks`.
//!
//! Paths to directories (a partition's contents, a driver store folder) may be relative: they
//! are taken from the state file's directory, so a lab directory can be moved, copied into a
//! test's temp dir, or used under wine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::guest::host::BitLocker;
use crate::package::AdapterRegistration;

/// The key of this state in `SimState::extensions`.
pub const EXTENSION: &str = "guestDisks";

/// Guest disks, the host's GPU drivers, and what is mounted and loaded right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GuestDisks {
    /// The host's display adapters: what their class keys and the driver store say, as the
    /// registration script reads it (`driver_store_dir` may be relative to the state file).
    pub adapters: Vec<AdapterRegistration>,
    /// The disks attached to each VM (VM name → disks in controller order).
    pub vm_disks: BTreeMap<String, Vec<SimVmDisk>>,
    /// Virtual disk files (their path as Hyper-V knows it → partitions).
    pub vhds: BTreeMap<String, SimVhd>,
    /// Virtual disk files mounted on the host now.
    pub mounted: BTreeMap<String, SimMount>,
    /// Registry hives loaded now, by mount name below HKLM.
    pub hives: BTreeMap<String, LoadedHive>,
    /// The next host disk number `Mount-VHD` hands out (disks 0 and 1 are the host's own).
    pub next_disk: u32,
}

/// A disk attached to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimVmDisk {
    /// The virtual disk file; for a physical pass-through disk Hyper-V's description of it.
    pub path: String,
    /// The host disk number of a pass-through disk (`None` for a virtual disk file).
    #[serde(default)]
    pub disk_number: Option<u32>,
    /// `SCSI 0:1`.
    pub location: String,
}

/// A virtual disk file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SimVhd {
    /// Its partitions.
    pub partitions: Vec<SimPartition>,
}

/// A partition of a virtual disk; a directory holds its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimPartition {
    /// Partition number.
    pub number: u32,
    /// Size in bytes.
    pub size: u64,
    /// File system (`NTFS`, `FAT32`, empty for none).
    #[serde(default)]
    pub file_system: String,
    /// BitLocker state.
    #[serde(default = "bitlocker_off")]
    pub bit_locker: BitLocker,
    /// The directory standing for the volume (relative to the state file, or absolute).
    pub root: PathBuf,
}

fn bitlocker_off() -> BitLocker {
    BitLocker::Off
}

/// A mounted virtual disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimMount {
    /// Host disk number.
    pub disk: u32,
    /// Partitions that were given a drive letter (`Add-PartitionAccessPath`).
    #[serde(default)]
    pub lettered: Vec<u32>,
}

/// A loaded registry hive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadedHive {
    /// The hive file it was loaded from.
    pub file: PathBuf,
    /// Its keys now (they go back to the file when it is unloaded).
    pub keys: super::hive::HiveKeys,
}

impl GuestDisks {
    /// The VM whose disks include `vhd` (case-insensitive, as Windows paths are).
    pub fn owners_of<'a>(&'a self, vhd: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.vm_disks
            .iter()
            .filter(move |(_, disks)| disks.iter().any(|d| d.path.eq_ignore_ascii_case(vhd)))
            .map(|(vm, _)| vm.as_str())
    }

    /// A virtual disk file by its path (case-insensitive).
    pub fn vhd(&self, path: &str) -> Option<(&String, &SimVhd)> {
        self.vhds
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(path))
    }

    /// The mount of `path`, if mounted (case-insensitive).
    pub fn mount_of(&self, path: &str) -> Option<(&String, &SimMount)> {
        self.mounted
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(path))
    }

    /// The mounted virtual disk with host disk number `disk`.
    pub fn mounted_disk(&self, disk: u32) -> Option<(&String, &SimVhd)> {
        let (path, _) = self.mounted.iter().find(|(_, mount)| mount.disk == disk)?;
        self.vhd(path)
    }

    /// The loaded hive mounted as `name` (case-insensitive).
    pub fn hive_mut(&mut self, name: &str) -> Option<&mut LoadedHive> {
        self.hives
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, hive)| hive)
    }
}

/// Paths of the state, made absolute against the state file's directory.
#[derive(Debug, Clone)]
pub struct Paths {
    base: PathBuf,
}

impl Paths {
    /// Paths relative to `base` (the state file's directory).
    pub fn new(base: &Path) -> Self {
        Self {
            base: std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf()),
        }
    }

    /// `path` as an absolute path.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }
}
