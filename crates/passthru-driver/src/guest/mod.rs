//! Provisioning a Windows guest with the host's GPU driver (`passthru driver sync --vm NAME`).
//!
//! The work is a [`Plan`](passthru_core::plan::Plan) of [`GuestStep`]s (`KIND =
//! "guest-driver"`), made by [`plan_driver_sync`] and run by the shared executor:
//!
//! 1. the VM must be off ([`plan_shutdown`] makes a one-step plan when the user agrees);
//! 2. mount its system disk: the virtual disk and partition holding
//!    `Windows\System32\config\SYSTEM`, whichever of the VM's disks it is on; BitLocker-locked
//!    volumes are refused with an explanation;
//! 3. sync the driver package(s) into `Windows\System32\HostDriverStore\FileRepository`
//!    (incrementally, read-only, replaced and removed files moved to a backup folder for undo;
//!    package folders of an earlier driver that passthru installed are retired the same way);
//! 4. copy the System32/SysWOW64 promotions;
//! 5. for NVIDIA, write the `nvlddmkm` service values into the guest's offline SYSTEM hive
//!    (current, default and last-known-good control sets), `ImagePath` pointing into
//!    `HostDriverStore`;
//! 6. record what was installed in [`manifest::MANIFEST_PATH`];
//! 7. dismount — also when a step fails: the executor's rollback undoes the mount.
//!
//! Everything Windows-specific goes through the [`GuestHost`] port; [`powershell`] has the
//! scripts and an implementation over any PowerShell runner, [`fake`] a simulated host.

pub mod adopt;
pub mod fake;
pub mod host;
pub mod hyperv;
pub mod manifest;
pub mod planner;
pub mod powershell;
pub mod simulated;
pub mod status;
pub mod steps;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use host::{BitLocker, GuestHost, GuestVolume, HostError, RegKey, VmDisk, VmState};
pub use manifest::GuestManifest;
pub use planner::{SyncRequest, plan_driver_sync, plan_shutdown, unverified_listing};
pub use status::{DriverStatus, Freshness, compare_with_guest};
pub use steps::{GuestSession, GuestStep};

use crate::sync::SyncError;

/// Where the guest's SYSTEM hive is, relative to its volume root.
pub const SYSTEM_HIVE: &str = r"Windows\System32\config\SYSTEM";

/// Why provisioning cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A host operation failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The VM is running or paused.
    #[error(
        "the VM `{vm}` is {state:?}; its disk can only be changed while it is off. Shut it down \
         (passthru can do it for you: it asks before it does) and run the command again"
    )]
    VmNotOff {
        /// VM name.
        vm: String,
        /// Its state.
        state: VmState,
    },
    /// The VM is in a saved state.
    #[error(
        "the VM `{vm}` is saved: its memory on disk refers to the disk's current contents, and \
         changing the disk would corrupt the saved state. Start it and shut Windows down from \
         inside, or discard the saved state (Remove-VMSavedState -VMName '{vm}'), then run the \
         command again"
    )]
    VmSaved {
        /// VM name.
        vm: String,
    },
    /// The VM has no virtual disk passthru can mount.
    #[error(
        "the VM `{vm}` has no virtual disk file to mount{}; passthru writes drivers into \
         .vhdx/.vhd disks only (a physical pass-through disk must be detached and brought online \
         by hand)",
        if *.pass_through > 0 { format!(" ({} pass-through disk(s) skipped)", .pass_through) } else { String::new() }
    )]
    NoVirtualDisk {
        /// VM name.
        vm: String,
        /// Pass-through disks seen.
        pass_through: usize,
    },
    /// A disk of the VM is already mounted on the host.
    #[error(
        "`{vhd}` is already mounted on this host (disk {disk}); dismount it first \
         (Dismount-VHD -Path '{vhd}'), or run `passthru undo` if a passthru run was interrupted"
    )]
    AlreadyMounted {
        /// The disk file.
        vhd: String,
        /// Host disk number.
        disk: u32,
    },
    /// No Windows installation on any readable volume.
    #[error(
        "no volume of the VM `{vm}` holds a Windows installation (Windows\\System32\\config\\SYSTEM); \
         checked: {}{}",
        .checked.join(", "),
        if .locked.is_empty() { String::new() } else { format!(". BitLocker-locked, so unreadable: {}. Unlock them (Unlock-BitLocker, or manage-bde -unlock with the recovery key) or suspend BitLocker inside the guest, then run the command again", .locked.join(", ")) }
    )]
    NoWindows {
        /// VM name.
        vm: String,
        /// Volumes looked at.
        checked: Vec<String>,
        /// Volumes that are BitLocker-locked.
        locked: Vec<String>,
    },
    /// More than one volume holds Windows.
    #[error(
        "the VM `{vm}` has several Windows installations ({}); passthru will not guess which one \
         boots. Detach the disks that do not boot the VM and run the command again",
        .found.join(", ")
    )]
    SeveralWindows {
        /// VM name.
        vm: String,
        /// The volumes.
        found: Vec<String>,
    },
    /// Reading the guest's files failed.
    #[error("cannot read the guest volume: {0}")]
    Io(#[from] std::io::Error),
    /// Comparing files failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The guest's system volume, mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemVolume {
    /// The virtual disk file.
    pub vhd: String,
    /// Host disk number while mounted.
    pub disk: u32,
    /// Partition number.
    pub partition: u32,
    /// Where it is mounted on the host.
    pub root: PathBuf,
}

impl SystemVolume {
    fn label(&self) -> String {
        format!("{} partition {}", self.vhd, self.partition)
    }
}

/// Finds the VM's system volume and runs `work` with it mounted; the disk is dismounted
/// afterwards whatever `work` returns. The VM must be off.
pub fn with_system_volume<T>(
    host: &mut dyn GuestHost,
    vm: &str,
    work: impl FnOnce(&mut dyn GuestHost, &SystemVolume) -> Result<T, GuestError>,
) -> Result<T, GuestError> {
    require_off(host, vm)?;
    let volume = locate_system_volume(host, vm)?;
    let result = work(host, &volume);
    let dismounted = host.dismount_vhd(&volume.vhd);
    let value = result?;
    dismounted?;
    Ok(value)
}

/// Errors unless the VM is off.
pub fn require_off(host: &mut dyn GuestHost, vm: &str) -> Result<(), GuestError> {
    match host.vm_state(vm)? {
        VmState::Off => Ok(()),
        VmState::Saved => Err(GuestError::VmSaved { vm: vm.to_owned() }),
        state => Err(GuestError::VmNotOff {
            vm: vm.to_owned(),
            state,
        }),
    }
}

/// Mounts the VM's disks one by one and keeps mounted the one whose volume holds Windows.
fn locate_system_volume(host: &mut dyn GuestHost, vm: &str) -> Result<SystemVolume, GuestError> {
    let disks = host.vm_disks(vm)?;
    let pass_through = disks.iter().filter(|d| d.path.is_none()).count();
    let files: Vec<String> = disks.into_iter().filter_map(|d| d.path).collect();
    if files.is_empty() {
        return Err(GuestError::NoVirtualDisk {
            vm: vm.to_owned(),
            pass_through,
        });
    }
    let mut found: Vec<SystemVolume> = Vec::new();
    let mut checked = Vec::new();
    let mut locked = Vec::new();
    for vhd in files {
        if let Some(disk) = host.mounted_disk(&vhd)? {
            dismount_all(host, &found);
            return Err(GuestError::AlreadyMounted { vhd, disk });
        }
        let disk = match host.mount_vhd(&vhd) {
            Ok(disk) => disk,
            Err(error) => {
                dismount_all(host, &found);
                return Err(error.into());
            }
        };
        let mut windows_here = Vec::new();
        let outcome = (|| -> Result<(), GuestError> {
            for volume in host.volumes(disk)? {
                let label = format!("{vhd} partition {}", volume.partition);
                if volume.bitlocker == BitLocker::Locked {
                    locked.push(label);
                    continue;
                }
                if volume.file_system.is_empty() {
                    continue;
                }
                checked.push(label);
                let root = match &volume.access_path {
                    Some(path) => path.clone(),
                    None => host.access_path(disk, volume.partition)?,
                };
                if has_system_hive(&root) {
                    windows_here.push(SystemVolume {
                        vhd: vhd.clone(),
                        disk,
                        partition: volume.partition,
                        root,
                    });
                }
            }
            Ok(())
        })();
        if let Err(error) = outcome {
            let _ = host.dismount_vhd(&vhd);
            dismount_all(host, &found);
            return Err(error);
        }
        if windows_here.is_empty() {
            host.dismount_vhd(&vhd)?;
        }
        found.extend(windows_here);
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(GuestError::NoWindows {
            vm: vm.to_owned(),
            checked,
            locked,
        }),
        _ => {
            dismount_all(host, &found);
            Err(GuestError::SeveralWindows {
                vm: vm.to_owned(),
                found: found.iter().map(SystemVolume::label).collect(),
            })
        }
    }
}

fn dismount_all(host: &mut dyn GuestHost, volumes: &[SystemVolume]) {
    let mut seen = BTreeMap::new();
    for volume in volumes {
        if seen.insert(volume.vhd.clone(), ()).is_none() {
            let _ = host.dismount_vhd(&volume.vhd);
        }
    }
}

/// Whether a mounted volume holds a Windows installation.
pub fn has_system_hive(root: &Path) -> bool {
    crate::guest_path::GuestPath::new(SYSTEM_HIVE)
        .on(root)
        .is_file()
}

#[cfg(test)]
mod tests;
