//! How each [`GuestStep`] is applied, verified and undone: the [`Step`] implementation the
//! shared executor drives.

use std::io;

use passthru_core::plan::{Step, StepError, StepView};

use super::files::{
    apply_promotions, apply_sync, move_creating_parents, prune_empty_dirs, rename_folder,
    restore_file, undo_sync,
};
use super::record::{write_atomically, write_manifest};
use super::{GuestSession, GuestStep, ValueChange, VolumeRef, host_failed, io_failed, mount};
use crate::guest::host::{RegKey, VmState};
use crate::guest::manifest::MANIFEST_PATH;
use crate::guest::{SYSTEM_HIVE, has_system_hive};
use crate::guest_path::GuestPath;

impl Step for GuestStep {
    type Host = GuestSession;
    const KIND: &'static str = "guest-driver";

    fn view(&self) -> StepView {
        self.step_view()
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
                    move_creating_parents(&from, &to).map_err(io_failed)?;
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
            Self::LoadSystemHive { volume, mount } => load_system_hive(session, volume, mount),
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
                        move_creating_parents(&kept, &home).map_err(io_failed)?;
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
                if hive_loaded(session, mount)? {
                    session.host.unload_hive(mount).map_err(host_failed)?;
                }
                Ok(())
            }
            Self::UnloadSystemHive { volume, mount } => {
                if hive_loaded(session, mount)? {
                    return Ok(());
                }
                load_system_hive(session, volume, mount)
            }
            Self::WriteRegistry {
                key,
                created,
                values,
                volume,
            } => {
                let mount = key.0.split('\\').next().unwrap_or("").to_owned();
                if hive_loaded(session, &mount)? {
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
                load_system_hive(session, volume, &mount)?;
                let restored = restore_values(session, key, *created, values);
                let unloaded = session.host.unload_hive(&mount).map_err(host_failed);
                restored.and(unloaded)
            }
            Self::WriteManifest { volume, before, .. } => {
                let path = GuestPath::new(MANIFEST_PATH).on(&session.root_for(volume)?);
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

/// Whether a hive is loaded as `HKLM\<mount>`.
fn hive_loaded(session: &mut GuestSession, mount: &str) -> Result<bool, StepError> {
    session
        .host
        .key_exists(&RegKey(mount.to_owned()))
        .map_err(host_failed)
}

/// Loads the SYSTEM hive of `volume` as `HKLM\<mount>`, mounting the volume when this process
/// has not.
fn load_system_hive(
    session: &mut GuestSession,
    volume: &VolumeRef,
    mount: &str,
) -> Result<(), StepError> {
    let file = GuestPath::new(SYSTEM_HIVE).on(&session.root_for(volume)?);
    session.host.load_hive(&file, mount).map_err(host_failed)
}
