//! The typed, journaled, undoable steps of a guest driver sync.
//!
//! This file holds what a plan is made of, as the journal stores it: [`GuestStep`], the data
//! its variants carry, and the [`GuestSession`] the steps run against. The work behind them is
//! split by subject: `execute` applies, verifies and undoes each step, `view` describes it for
//! `--dry-run`, `files` changes the guest's file tree (the incremental sync, promotions, and
//! putting files and folders back on undo), and `record` writes the manifest of what a run
//! installed.

mod execute;
mod files;
mod record;
mod view;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use passthru_core::plan::StepError;
use serde::{Deserialize, Serialize};

use super::adopt::Adoption;
use super::host::{GuestHost, HostError, RegKey};
use super::manifest::{GuestManifest, ManifestFile, ManifestValue};
use crate::guest_path::GuestPath;
use crate::package::RegData;
use crate::sync::{Action, SyncProgress};

pub(crate) use files::{STATE_FILE, sync_options};
pub(crate) use record::known_hashes;

/// Receives copy progress (bytes, files, throughput) for a progress bar.
pub type ProgressObserver = Box<dyn FnMut(&SyncProgress)>;

/// What the steps act through: the host port, plus what the run has learned so far (where the
/// system volume is mounted, what was installed for the manifest).
pub struct GuestSession {
    host: Box<dyn GuestHost>,
    root: Option<PathBuf>,
    progress: Option<ProgressObserver>,
    installed: BTreeMap<String, ManifestFile>,
    manifest: Option<GuestManifest>,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for GuestSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestSession")
            .field("root", &self.root)
            .field("installed", &self.installed.len())
            .finish_non_exhaustive()
    }
}

impl GuestSession {
    /// A session over `host`.
    pub fn new(host: Box<dyn GuestHost>) -> Self {
        Self {
            host,
            root: None,
            progress: None,
            installed: BTreeMap::new(),
            manifest: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Stops the run when `cancel` is set (Ctrl-C): a copy in progress stops after the files
    /// being written, and no further step starts except the ones that clean up (unloading the
    /// hive, dismounting), so the executor's rollback can put the guest back as it was.
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = cancel;
        self
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Reports copy progress (bytes, files, throughput) to `observer`.
    pub fn with_progress(mut self, observer: ProgressObserver) -> Self {
        self.progress = Some(observer);
        self
    }

    /// The host port.
    pub fn host(&mut self) -> &mut dyn GuestHost {
        self.host.as_mut()
    }

    /// The manifest written by this run, for the CLI to keep a copy next to the journal.
    pub fn written_manifest(&self) -> Option<&GuestManifest> {
        self.manifest.as_ref()
    }

    /// Gives the host port back.
    pub fn into_host(self) -> Box<dyn GuestHost> {
        self.host
    }

    /// Where the volume is mounted; mounts it when this process has not (an undo after a crash
    /// starts with the disk mounted by the dead process, or not mounted at all).
    fn root_for(&mut self, volume: &VolumeRef) -> Result<PathBuf, StepError> {
        if let Some(root) = &self.root {
            return Ok(root.clone());
        }
        mount(self, &volume.vhd, volume.partition)?;
        self.root
            .clone()
            .ok_or_else(|| StepError::new("the guest's system disk could not be mounted"))
    }
}

/// Which volume a step works on, so it can find it again in a new process (undo after a
/// crash): the disk file and the partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRef {
    /// Virtual disk file.
    pub vhd: String,
    /// Partition number.
    pub partition: u32,
}

/// One file of a package sync, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedGuestFile {
    /// The host file.
    pub source: PathBuf,
    /// Where it goes in the guest.
    pub dest: GuestPath,
    /// Its size.
    pub size: u64,
    /// What the comparison at planning time found.
    pub action: Action,
}

/// Copy the packages (incrementally) into the host driver store of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSync {
    /// The guest's system volume.
    pub volume: VolumeRef,
    /// Every file of every package.
    pub files: Vec<PlannedGuestFile>,
    /// Files in the package folders that the driver no longer has.
    pub removals: Vec<GuestPath>,
    /// The package folders (only there are files removed).
    pub managed: Vec<GuestPath>,
    /// Where replaced and removed files are kept for undo.
    pub backup: GuestPath,
    /// Folders of the previous version renamed to the new names before this step
    /// ([`super::adopt`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopted: Vec<Adoption>,
}

/// A package folder from an earlier sync that the new driver does not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredPackage {
    /// The folder in the guest.
    pub dir: GuestPath,
}

/// One System32/SysWOW64 copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPromotion {
    /// The file inside the guest's copy of the package.
    pub source: GuestPath,
    /// Where it goes.
    pub target: GuestPath,
    /// Leave a newer existing file alone.
    pub when_newer: bool,
    /// Whether the target existed at planning time.
    pub existed: bool,
}

/// A registry value to set, with the value it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueChange {
    /// Value name.
    pub name: String,
    /// New data.
    pub data: RegData,
    /// Data before (`None`: absent).
    pub before: Option<RegData>,
}

/// What the manifest will say besides the files (filled in while the steps run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestHeader {
    /// VM name.
    pub vm: String,
    /// GPU description.
    pub device: String,
    /// Display driver version.
    pub driver_version: String,
    /// Packages: folder in the guest and `DriverVer` version.
    pub packages: Vec<(GuestPath, String)>,
    /// Promotion targets.
    pub promotions: Vec<GuestPath>,
    /// Registry values, keys relative to the hive root.
    pub registry: Vec<ManifestValue>,
}

/// The steps of `driver sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum GuestStep {
    /// Shut the VM down (asked for by the user).
    ShutDownVm {
        /// VM name.
        vm: String,
    },
    /// Mount the system disk and find the system volume.
    MountSystemDisk {
        /// VM name.
        vm: String,
        /// Virtual disk file.
        vhd: String,
        /// Partition holding Windows.
        partition: u32,
    },
    /// Move package folders of an earlier driver into the backup folder.
    RetirePackages {
        /// The guest's system volume.
        volume: VolumeRef,
        /// The folders.
        packages: Vec<RetiredPackage>,
        /// Backup folder.
        backup: GuestPath,
    },
    /// Rename the previous version's package folder to the new version's name, so that only
    /// the files that differ are copied ([`super::adopt`]).
    AdoptPackage {
        /// The guest's system volume.
        volume: VolumeRef,
        /// The previous version's folder.
        from: GuestPath,
        /// The new version's folder.
        to: GuestPath,
    },
    /// Sync the packages.
    SyncPackages(PackageSync),
    /// Copy files into System32/SysWOW64.
    PromoteFiles {
        /// The guest's system volume.
        volume: VolumeRef,
        /// The copies.
        files: Vec<PlannedPromotion>,
        /// Backup folder for replaced files.
        backup: GuestPath,
    },
    /// Load the guest's SYSTEM hive under `HKLM\<mount>`.
    LoadSystemHive {
        /// The guest's system volume.
        volume: VolumeRef,
        /// Mount name.
        mount: String,
    },
    /// Set values of one key in the loaded hive.
    WriteRegistry {
        /// The key (below HKLM, starting with the mount name).
        key: RegKey,
        /// Whether passthru creates the key (undo deletes it).
        created: bool,
        /// The values.
        values: Vec<ValueChange>,
        /// The volume whose SYSTEM hive it is, so undo can load the hive itself when it is not
        /// loaded (after a host reboot, say). Journals written before this field lack it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        volume: Option<VolumeRef>,
    },
    /// Unload the hive.
    UnloadSystemHive {
        /// The guest's system volume.
        volume: VolumeRef,
        /// Mount name.
        mount: String,
    },
    /// Write the manifest.
    WriteManifest {
        /// The guest's system volume.
        volume: VolumeRef,
        /// What it says besides the files.
        header: ManifestHeader,
        /// The manifest that was there (restored by undo).
        before: Option<String>,
    },
    /// Dismount the system disk.
    DismountSystemDisk {
        /// VM name.
        vm: String,
        /// Virtual disk file.
        vhd: String,
        /// Partition holding Windows.
        partition: u32,
    },
}

fn host_failed(error: HostError) -> StepError {
    let help = error.help.clone();
    let step = StepError::new(error.to_string());
    match help {
        Some(help) => step.with_help(help),
        None => step,
    }
}

fn io_failed(error: io::Error) -> StepError {
    StepError::new(error.to_string())
}

/// Mounts `vhd` (unless it already is) and makes its `partition` the session's root.
fn mount(session: &mut GuestSession, vhd: &str, partition: u32) -> Result<(), StepError> {
    let disk = match session.host.mounted_disk(vhd).map_err(host_failed)? {
        Some(disk) => disk,
        None => session.host.mount_vhd(vhd).map_err(host_failed)?,
    };
    let root = session
        .host
        .access_path(disk, partition)
        .map_err(host_failed)?;
    session.root = Some(root);
    Ok(())
}
