//! The guest's file tree: the incremental sync of the packages and the System32/SysWOW64
//! promotions (both through [`crate::sync`], replaced files kept in the backup folder), and
//! putting files and folders back as they were on undo.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use passthru_core::plan::StepError;

use super::record::{known_hashes, record_synced};
use super::{GuestSession, PackageSync, PlannedPromotion, VolumeRef, io_failed};
use crate::guest_path::GuestPath;
use crate::sync::{self, Action, FileToSync, KnownFile, SyncOptions, SyncProgress};

pub(crate) fn sync_options(known: BTreeMap<String, KnownFile>) -> SyncOptions {
    SyncOptions {
        read_only: true,
        known,
        ..SyncOptions::default()
    }
}

/// The resume log of a guest sync.
pub(crate) const STATE_FILE: &str = r"Windows\System32\HostDriverStore\.passthru-sync-state.jsonl";

pub(super) fn apply_sync(session: &mut GuestSession, plan: &PackageSync) -> Result<(), StepError> {
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
    crate::guest::adopt::carry_known(&mut known, &plan.adopted);
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
    record_synced(session, report.files);
    Ok(())
}

pub(super) fn undo_sync(session: &mut GuestSession, plan: &PackageSync) -> Result<(), StepError> {
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
pub(super) fn prune_empty_dirs(root: &Path, dir: &GuestPath) -> io::Result<()> {
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
pub(super) fn restore_file(
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
pub(super) fn rename_folder(from: &Path, to: &Path) -> io::Result<()> {
    if from.is_dir() && !to.exists() {
        move_creating_parents(from, to)?;
    }
    Ok(())
}

/// Moves `from` to `to`, creating the folders `to` needs.
pub(super) fn move_creating_parents(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs_err::rename(from, to)
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

pub(super) fn apply_promotions(
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
    record_synced(session, report.files);
    Ok(())
}
