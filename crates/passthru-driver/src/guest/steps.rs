//! The typed, journaled, undoable steps of a guest driver sync.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use passthru_core::plan::{Step, StepError, StepView};
use serde::{Deserialize, Serialize};

use super::adopt::Adoption;
use super::host::{GuestHost, HostError, RegKey, VmState};
use super::manifest::{
    GuestManifest, MANIFEST_SCHEMA, ManifestFile, ManifestPackage, ManifestValue,
};
use super::{SYSTEM_HIVE, has_system_hive};
use crate::guest_path::GuestPath;
use crate::package::RegData;
use crate::sync::{self, Action, FileToSync, KnownFile, SyncOptions, SyncProgress};

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

fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn data_text(data: &RegData) -> String {
    let value = match data {
        RegData::Sz(text) | RegData::ExpandSz(text) => text.clone(),
        RegData::MultiSz(items) => items.join(" | "),
        RegData::Dword(number) => format!("{number}"),
        RegData::Qword(number) => format!("{number}"),
        RegData::Binary(bytes) => format!("{} bytes", bytes.len()),
    };
    format!("{} {value}", data.kind_name())
}

impl Step for GuestStep {
    type Host = GuestSession;
    const KIND: &'static str = "guest-driver";

    fn view(&self) -> StepView {
        match self {
            Self::ShutDownVm { vm } => StepView::new(format!("Shut down VM `{vm}`"))
                .action(format!("Stop-VM -Name '{vm}'  (undo: Start-VM)")),
            Self::MountSystemDisk { vhd, partition, .. } => {
                StepView::new(format!("Mount the system disk `{vhd}`"))
                    .action(format!("Mount-VHD -Path '{vhd}' -NoDriveLetter"))
                    .action(format!(
                        "Add-PartitionAccessPath -PartitionNumber {partition} -AssignDriveLetter"
                    ))
            }
            Self::RetirePackages {
                packages, backup, ..
            } => {
                let mut view = StepView::new(format!(
                    "Retire {} package folder(s) of the previous driver",
                    packages.len()
                ));
                for package in packages {
                    view = view.action(format!("move {} -> {backup}", package.dir));
                }
                view
            }
            Self::AdoptPackage { from, to, .. } => StepView::new(format!(
                "Start the new package folder from the previous version's `{}` (only changed files are copied)",
                from.file_name()
            ))
            .action(format!("rename {from} -> {}", to.file_name())),
            Self::SyncPackages(sync) => sync_view(sync),
            Self::PromoteFiles { files, .. } => {
                let mut view = StepView::new(format!(
                    "Copy {} file(s) into System32/SysWOW64",
                    files.len()
                ));
                for file in files {
                    let verb = match (file.existed, file.when_newer) {
                        (false, _) => "create ",
                        (true, false) => "replace",
                        (true, true) => "replace if older",
                    };
                    view = view.action(format!("{verb} {} <- {}", file.target, file.source));
                }
                view
            }
            Self::LoadSystemHive { mount, .. } => {
                StepView::new(format!("Load the guest's SYSTEM hive as HKLM\\{mount}"))
                    .action(format!("reg load HKLM\\{mount} <guest>\\{SYSTEM_HIVE}"))
            }
            Self::WriteRegistry {
                key,
                created,
                values,
                ..
            } => {
                let mut view = StepView::new(format!(
                    "{} {key}",
                    if *created { "Create" } else { "Update" }
                ));
                for value in values {
                    let before = value
                        .before
                        .as_ref()
                        .map(data_text)
                        .unwrap_or_else(|| "absent".to_owned());
                    view = view.action(format!(
                        "set {} = {}  (was: {before})",
                        value.name,
                        data_text(&value.data)
                    ));
                }
                view
            }
            Self::UnloadSystemHive { mount, .. } => StepView::new(format!("Unload HKLM\\{mount}"))
                .action(format!("reg unload HKLM\\{mount}")),
            Self::WriteManifest { header, before, .. } => StepView::new(format!(
                "{} the driver manifest ({}, {})",
                if before.is_some() { "Update" } else { "Write" },
                header.driver_version,
                super::manifest::MANIFEST_PATH
            )),
            Self::DismountSystemDisk { vhd, .. } => StepView::new(format!("Dismount `{vhd}`"))
                .action(format!("Dismount-VHD -Path '{vhd}'")),
        }
    }

    fn apply(&self, session: &mut GuestSession) -> Result<(), StepError> {
        let cleanup = matches!(
            self,
            Self::UnloadSystemHive { .. } | Self::DismountSystemDisk { .. }
        );
        if session.cancelled() && !cleanup {
            return Err(StepError::new("interrupted (Ctrl-C) before this step"));
        }
        match self {
            Self::ShutDownVm { vm } => session.host.stop_vm(vm).map_err(host_failed),
            Self::MountSystemDisk { vhd, partition, .. } => mount(session, vhd, *partition),
            Self::DismountSystemDisk { vhd, .. } => {
                session.root = None;
                session.host.dismount_vhd(vhd).map_err(host_failed)
            }
            Self::RetirePackages {
                volume,
                packages,
                backup,
            } => {
                let root = session.root_for(volume)?;
                for package in packages {
                    let from = package.dir.on(&root);
                    if !from.exists() {
                        continue;
                    }
                    let to = backup.join(package.dir.as_str()).on(&root);
                    if let Some(parent) = to.parent() {
                        fs_err::create_dir_all(parent).map_err(io_failed)?;
                    }
                    fs_err::rename(&from, &to).map_err(io_failed)?;
                }
                Ok(())
            }
            Self::AdoptPackage { volume, from, to } => {
                let root = session.root_for(volume)?;
                rename_folder(&from.on(&root), &to.on(&root)).map_err(io_failed)
            }
            Self::SyncPackages(plan) => apply_sync(session, plan),
            Self::PromoteFiles {
                volume,
                files,
                backup,
            } => apply_promotions(session, volume, files, backup),
            Self::LoadSystemHive { volume, mount } => {
                let file = GuestPath::new(SYSTEM_HIVE).on(&session.root_for(volume)?);
                session.host.load_hive(&file, mount).map_err(host_failed)
            }
            Self::WriteRegistry { key, values, .. } => {
                for value in values {
                    session
                        .host
                        .write_value(key, &value.name, &value.data)
                        .map_err(host_failed)?;
                }
                Ok(())
            }
            Self::UnloadSystemHive { mount, .. } => {
                session.host.unload_hive(mount).map_err(host_failed)
            }
            Self::WriteManifest { volume, header, .. } => write_manifest(session, volume, header),
        }
    }

    fn verify(&self, session: &mut GuestSession) -> Result<(), StepError> {
        match self {
            Self::ShutDownVm { vm } => match session.host.vm_state(vm).map_err(host_failed)? {
                VmState::Off => Ok(()),
                state => Err(StepError::new(format!("the VM `{vm}` is still {state:?}"))),
            },
            Self::MountSystemDisk { vhd, partition, .. } => {
                let volume = VolumeRef {
                    vhd: vhd.clone(),
                    partition: *partition,
                };
                if has_system_hive(&session.root_for(&volume)?) {
                    Ok(())
                } else {
                    Err(StepError::new(
                        "the mounted volume has no Windows\\System32\\config\\SYSTEM",
                    ))
                }
            }
            Self::DismountSystemDisk { vhd, .. } => {
                match session.host.mounted_disk(vhd).map_err(host_failed)? {
                    None => Ok(()),
                    Some(disk) => Err(StepError::new(format!(
                        "`{vhd}` is still mounted as disk {disk}"
                    ))),
                }
            }
            Self::SyncPackages(plan) => {
                let root = session.root_for(&plan.volume)?;
                for file in &plan.files {
                    let path = file.dest.on(&root);
                    let size = fs_err::metadata(&path).map_err(io_failed)?.len();
                    if size != file.size {
                        return Err(StepError::new(format!(
                            "`{}` has {size} bytes, the host's copy {}",
                            path.display(),
                            file.size
                        )));
                    }
                }
                Ok(())
            }
            Self::WriteRegistry { key, values, .. } => {
                for value in values {
                    let read = session
                        .host
                        .read_value(key, &value.name)
                        .map_err(host_failed)?;
                    if read.as_ref() != Some(&value.data) {
                        return Err(StepError::new(format!(
                            "{key}\\{} reads back as {read:?}, not {:?}",
                            value.name, value.data
                        )));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn undo(&self, session: &mut GuestSession) -> Result<(), StepError> {
        match self {
            Self::ShutDownVm { vm } => match session.host.vm_state(vm).map_err(host_failed)? {
                VmState::Off => session.host.start_vm(vm).map_err(host_failed),
                _ => Ok(()),
            },
            Self::MountSystemDisk { vhd, .. } => {
                session.root = None;
                match session.host.mounted_disk(vhd).map_err(host_failed)? {
                    Some(_) => session.host.dismount_vhd(vhd).map_err(host_failed),
                    None => Ok(()),
                }
            }
            // Undoing the dismount mounts again, so the steps before it can be undone.
            Self::DismountSystemDisk { vhd, partition, .. } => mount(session, vhd, *partition),
            Self::RetirePackages {
                volume,
                packages,
                backup,
            } => {
                let root = session.root_for(volume)?;
                for package in packages {
                    let kept = backup.join(package.dir.as_str()).on(&root);
                    let home = package.dir.on(&root);
                    if kept.exists() && !home.exists() {
                        if let Some(parent) = home.parent() {
                            fs_err::create_dir_all(parent).map_err(io_failed)?;
                        }
                        fs_err::rename(&kept, &home).map_err(io_failed)?;
                    }
                }
                prune_empty_dirs(&root, backup).map_err(io_failed)
            }
            Self::AdoptPackage { volume, from, to } => {
                let root = session.root_for(volume)?;
                rename_folder(&to.on(&root), &from.on(&root)).map_err(io_failed)
            }
            Self::SyncPackages(plan) => undo_sync(session, plan),
            Self::PromoteFiles {
                volume,
                files,
                backup,
            } => {
                let root = session.root_for(volume)?;
                for file in files {
                    restore_file(&root, &file.target, backup, file.existed).map_err(io_failed)?;
                }
                prune_empty_dirs(&root, backup).map_err(io_failed)
            }
            Self::LoadSystemHive { mount, .. } => {
                if session
                    .host
                    .key_exists(&RegKey(mount.clone()))
                    .map_err(host_failed)?
                {
                    session.host.unload_hive(mount).map_err(host_failed)?;
                }
                Ok(())
            }
            Self::UnloadSystemHive { volume, mount } => {
                if session
                    .host
                    .key_exists(&RegKey(mount.clone()))
                    .map_err(host_failed)?
                {
                    return Ok(());
                }
                let file = GuestPath::new(SYSTEM_HIVE).on(&session.root_for(volume)?);
                session.host.load_hive(&file, mount).map_err(host_failed)
            }
            Self::WriteRegistry {
                key,
                created,
                values,
                volume,
            } => {
                let mount = key.0.split('\\').next().unwrap_or("").to_owned();
                if session
                    .host
                    .key_exists(&RegKey(mount.clone()))
                    .map_err(host_failed)?
                {
                    return restore_values(session, key, *created, values);
                }
                // This step ran, so the hive was loaded then; it is not now because the run
                // unloaded it and reloading failed, or the host restarted. Load it for the
                // restore, rather than leave the values written.
                let Some(volume) = volume else {
                    return Err(StepError::new(format!(
                        "the guest's SYSTEM hive is not loaded as HKLM\\{mount}, so {key} cannot be restored"
                    ))
                    .with_help("run `passthru undo` again once the VM is off and its disk can be mounted"));
                };
                let file = GuestPath::new(SYSTEM_HIVE).on(&session.root_for(volume)?);
                session.host.load_hive(&file, &mount).map_err(host_failed)?;
                let restored = restore_values(session, key, *created, values);
                let unloaded = session.host.unload_hive(&mount).map_err(host_failed);
                restored.and(unloaded)
            }
            Self::WriteManifest { volume, before, .. } => {
                let path =
                    GuestPath::new(super::manifest::MANIFEST_PATH).on(&session.root_for(volume)?);
                match before {
                    Some(text) => write_atomically(&path, text.as_bytes()).map_err(io_failed),
                    None => match fs_err::remove_file(&path) {
                        Err(error) if error.kind() != io::ErrorKind::NotFound => {
                            Err(io_failed(error))
                        }
                        _ => Ok(()),
                    },
                }
            }
        }
    }
}

/// Puts a key back as it was: deleted if passthru created it, else each value's old data.
fn restore_values(
    session: &mut GuestSession,
    key: &RegKey,
    created: bool,
    values: &[ValueChange],
) -> Result<(), StepError> {
    if created {
        return session.host.delete_key(key).map_err(host_failed);
    }
    for value in values {
        match &value.before {
            Some(before) => session.host.write_value(key, &value.name, before),
            None => session.host.delete_value(key, &value.name),
        }
        .map_err(host_failed)?;
    }
    Ok(())
}

fn sync_view(plan: &PackageSync) -> StepView {
    let bytes: u64 = plan
        .files
        .iter()
        .filter(|f| f.action != Action::Keep)
        .map(|f| f.size)
        .sum();
    let unchanged = plan
        .files
        .iter()
        .filter(|f| f.action == Action::Keep)
        .count();
    let mut view = StepView::new(format!(
        "Copy {} of {} driver file(s) ({}), remove {}, {unchanged} already up to date",
        plan.files.len() - unchanged,
        plan.files.len(),
        size_text(bytes),
        plan.removals.len()
    ));
    for file in &plan.files {
        let verb = match file.action {
            Action::Create => "create ",
            Action::Replace { .. } => "replace",
            Action::CheckContent => "compare",
            Action::Keep => continue,
        };
        view = view.action(format!("{verb} {} ({})", file.dest, size_text(file.size)));
    }
    for removal in &plan.removals {
        view = view.action(format!("remove  {removal}"));
    }
    view
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

/// The previous manifest's hashes, so unchanged files are not read again.
pub(crate) fn known_hashes(root: &Path) -> BTreeMap<String, KnownFile> {
    let path = GuestPath::new(super::manifest::MANIFEST_PATH).on(root);
    let Ok(bytes) = fs_err::read(path) else {
        return BTreeMap::new();
    };
    let Ok(manifest) = GuestManifest::from_json(&bytes) else {
        return BTreeMap::new();
    };
    manifest
        .all_files()
        .map(|file| {
            let known = KnownFile {
                size: file.size,
                time: file.time,
                hash: file.blake3.clone(),
            };
            (sync::relative_key(&file.path.to_relative()), known)
        })
        .collect()
}

pub(crate) fn sync_options(known: BTreeMap<String, KnownFile>) -> SyncOptions {
    SyncOptions {
        read_only: true,
        known,
        ..SyncOptions::default()
    }
}

/// The resume log of a guest sync.
pub(crate) const STATE_FILE: &str = r"Windows\System32\HostDriverStore\.passthru-sync-state.jsonl";

fn apply_sync(session: &mut GuestSession, plan: &PackageSync) -> Result<(), StepError> {
    let root = session.root_for(&plan.volume)?;
    let job = sync::SyncJob {
        dest_root: root.clone(),
        files: plan
            .files
            .iter()
            .map(|file| FileToSync {
                source: file.source.clone(),
                dest: file.dest.to_relative(),
            })
            .collect(),
        managed_dirs: plan.managed.iter().map(GuestPath::to_relative).collect(),
        backup_dir: Some(plan.backup.on(&root)),
        state_file: Some(GuestPath::new(STATE_FILE).on(&root)),
    };
    let mut known = known_hashes(&root);
    super::adopt::carry_known(&mut known, &plan.adopted);
    let options = sync_options(known);
    let sync_plan = sync::plan(&job, &options).map_err(|e| StepError::new(e.to_string()))?;
    let mut silent = |_: &SyncProgress| {};
    let cancel = Arc::clone(&session.cancel);
    let observer: &mut dyn FnMut(&SyncProgress) = match session.progress.as_mut() {
        Some(observer) => observer.as_mut(),
        None => &mut silent,
    };
    // The executor rolls the step back after a failure, so the engine's "run it again to
    // continue" does not apply here: what was copied is removed again.
    let report =
        sync::execute(&sync_plan, &options, observer, &cancel).map_err(|error| match error {
            sync::SyncError::Interrupted { completed, total } => StepError::new(format!(
                "interrupted (Ctrl-C) after {completed} of {total} files"
            )),
            other => StepError::new(other.to_string()),
        })?;
    for file in report.files {
        let path = GuestPath::new(&sync::relative_key(&file.dest));
        record(session, path, file.size, file.time, file.hash);
    }
    Ok(())
}

fn record(
    session: &mut GuestSession,
    path: GuestPath,
    size: u64,
    time: sync::FileTime,
    hash: Option<String>,
) {
    let entry = ManifestFile {
        path: path.clone(),
        size,
        time,
        blake3: hash.unwrap_or_default(),
    };
    session
        .installed
        .insert(path.as_str().to_ascii_lowercase(), entry);
}

fn undo_sync(session: &mut GuestSession, plan: &PackageSync) -> Result<(), StepError> {
    let root = session.root_for(&plan.volume)?;
    for file in &plan.files {
        let existed = file.action != Action::Create;
        restore_file(&root, &file.dest, &plan.backup, existed).map_err(io_failed)?;
    }
    for removal in &plan.removals {
        restore_file(&root, removal, &plan.backup, true).map_err(io_failed)?;
    }
    let state = GuestPath::new(STATE_FILE).on(&root);
    if state.exists() {
        fs_err::remove_file(&state).map_err(io_failed)?;
    }
    for dir in plan.managed.iter().chain([&plan.backup]) {
        prune_empty_dirs(&root, dir).map_err(io_failed)?;
    }
    Ok(())
}

/// Removes the empty directories at and below `dir`, then its parents while they are empty,
/// stopping at `Windows\System32`: the folders a sync created, once its undo emptied them.
fn prune_empty_dirs(root: &Path, dir: &GuestPath) -> io::Result<()> {
    let full = dir.on(root);
    if !remove_empty_tree(&full)? {
        return Ok(());
    }
    let stop = GuestPath::new(r"Windows\System32").on(root);
    let mut parent = full.parent();
    while let Some(folder) = parent {
        if folder == stop || !folder.starts_with(&stop) || fs_err::remove_dir(folder).is_err() {
            break;
        }
        parent = folder.parent();
    }
    Ok(())
}

/// Removes `dir` if it holds nothing but empty folders; whether it is gone.
fn remove_empty_tree(dir: &Path) -> io::Result<bool> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(error) => return Err(error),
    };
    let mut empty = true;
    for entry in entries {
        let entry = entry?;
        if !(entry.file_type()?.is_dir() && remove_empty_tree(&entry.path())?) {
            empty = false;
        }
    }
    if empty {
        fs_err::remove_dir(dir)?;
    }
    Ok(empty)
}

/// Puts back what was at `path` before: the backup copy when the file existed, nothing when it
/// did not. Safe to run when the step did nothing.
fn restore_file(
    root: &Path,
    path: &GuestPath,
    backup: &GuestPath,
    existed: bool,
) -> io::Result<()> {
    let current = path.on(root);
    let kept = backup.join(path.as_str()).on(root);
    if existed {
        if kept.exists() {
            if current.exists() {
                make_writable(&current)?;
            }
            fs_err::rename(&kept, &current)?;
        }
    } else if fs_err::symlink_metadata(&current).is_ok_and(|meta| meta.is_file()) {
        // Only a file can be what passthru wrote there; anything else (a folder someone made
        // in the meantime) is not passthru's to delete.
        make_writable(&current)?;
        fs_err::remove_file(&current)?;
    }
    Ok(())
}

/// Renames a folder unless that already happened (safe to run twice, and after a crash).
fn rename_folder(from: &Path, to: &Path) -> io::Result<()> {
    if from.is_dir() && !to.exists() {
        if let Some(parent) = to.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::rename(from, to)?;
    }
    Ok(())
}

fn make_writable(path: &Path) -> io::Result<()> {
    let mut permissions = fs_err::metadata(path)?.permissions();
    if permissions.readonly() {
        // Only the owner-write/attribute matters here: the file is about to be replaced or
        // deleted.
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        fs_err::set_permissions(path, permissions)?;
    }
    Ok(())
}

fn apply_promotions(
    session: &mut GuestSession,
    volume: &VolumeRef,
    files: &[PlannedPromotion],
    backup: &GuestPath,
) -> Result<(), StepError> {
    let root = session.root_for(volume)?;
    let mut jobs = Vec::new();
    for file in files {
        let source = file.source.on(&root);
        let target = file.target.on(&root);
        // Microsoft defines "newer" by the files' ChangeTime, which the standard library cannot
        // read; the last-write time stands in for it (driver files keep their build time when
        // Windows installs them, so the order is the same).
        if file.when_newer && target.exists() {
            let modified = |p: &Path| fs_err::metadata(p).and_then(|m| m.modified());
            let (source_time, target_time) = (
                modified(&source).map_err(io_failed)?,
                modified(&target).map_err(io_failed)?,
            );
            if target_time >= source_time {
                continue;
            }
        }
        jobs.push(FileToSync {
            source,
            dest: file.target.to_relative(),
        });
    }
    let job = sync::SyncJob {
        dest_root: root.clone(),
        files: jobs,
        managed_dirs: Vec::new(),
        backup_dir: Some(backup.on(&root)),
        state_file: None,
    };
    let options = sync_options(known_hashes(&root));
    let plan = sync::plan(&job, &options).map_err(|e| StepError::new(e.to_string()))?;
    let cancel = Arc::clone(&session.cancel);
    let report = sync::execute(&plan, &options, &mut |_| {}, &cancel)
        .map_err(|e| StepError::new(e.to_string()))?;
    for file in report.files {
        let path = GuestPath::new(&sync::relative_key(&file.dest));
        record(session, path, file.size, file.time, file.hash);
    }
    Ok(())
}

fn write_manifest(
    session: &mut GuestSession,
    volume: &VolumeRef,
    header: &ManifestHeader,
) -> Result<(), StepError> {
    let root = session.root_for(volume)?;
    let mut packages = Vec::new();
    for (dir, version) in &header.packages {
        let mut files: Vec<ManifestFile> = session
            .installed
            .values()
            .filter(|f| f.path.starts_with(dir))
            .cloned()
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        packages.push(ManifestPackage {
            name: dir.file_name().to_owned(),
            driver_version: version.clone(),
            files,
        });
    }
    let mut promotions = Vec::new();
    for target in &header.promotions {
        if let Some(file) = session.installed.get(&target.as_str().to_ascii_lowercase()) {
            promotions.push(file.clone());
        } else if target.on(&root).is_file() {
            // Kept as it was (a newer file the guest already had): described as found.
            promotions.push(describe(&root, target).map_err(io_failed)?);
        }
    }
    let manifest = GuestManifest {
        schema: MANIFEST_SCHEMA,
        written_by: format!("passthru {}", env!("CARGO_PKG_VERSION")),
        written_at: passthru_core::plan::journal::now_rfc3339(),
        vm: header.vm.clone(),
        device: header.device.clone(),
        driver_version: header.driver_version.clone(),
        packages,
        promotions,
        registry: header.registry.clone(),
    };
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| StepError::new(e.to_string()))?;
    let path = GuestPath::new(super::manifest::MANIFEST_PATH).on(&root);
    write_atomically(&path, text.as_bytes()).map_err(io_failed)?;
    session.manifest = Some(manifest);
    Ok(())
}

/// Size, time and hash of a guest file as it is now.
fn describe(root: &Path, path: &GuestPath) -> io::Result<ManifestFile> {
    let full = path.on(root);
    let meta = fs_err::metadata(&full)?;
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut fs_err::File::open(&full)?, &mut hasher)?;
    Ok(ManifestFile {
        path: path.clone(),
        size: meta.len(),
        time: sync::FileTime::from_system(meta.modified()?),
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("json.passthru-partial");
    {
        let mut file = fs_err::File::create(&temporary)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
    }
    fs_err::rename(&temporary, path)
}
