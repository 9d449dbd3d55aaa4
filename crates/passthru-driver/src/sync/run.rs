//! Carrying out a [`SyncPlan`]: the copy pipeline, removals, verification, the report.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::commit;
use super::compare::{Action, FileTime};
use super::copy::{self, CopyError};
use super::pipeline::{Outcome, Pipeline};
use super::{FileFailure, PlannedFile, SyncError, SyncOptions, SyncPlan, VerifyMode, sys};

/// Progress of a running sync, for a progress bar.
#[derive(Debug, Clone)]
pub struct SyncProgress {
    /// Files whose work is done (copied, checked or hashed) so far; a copied file gets its
    /// final name a moment later, when a committer has flushed it.
    pub files_done: usize,
    /// Files in the work list (kept files that need no work are not counted).
    pub files_total: usize,
    /// Bytes processed so far.
    pub bytes_done: u64,
    /// Bytes in the work list.
    pub bytes_total: u64,
    /// Time since the run started.
    pub elapsed: Duration,
    /// The file that finished last.
    pub last_file: Option<PathBuf>,
}

impl SyncProgress {
    /// Average throughput so far, in bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.bytes_done as f64 / seconds
        } else {
            0.0
        }
    }
}

/// How a file ended up in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncedHow {
    /// It did not exist and was copied.
    Created,
    /// A different file was there and was replaced.
    Replaced,
    /// It was already there (its time may have been corrected after a content check).
    Kept,
}

/// One file of the final set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncedFile {
    /// Path relative to the destination root.
    pub dest: PathBuf,
    /// Size.
    pub size: u64,
    /// Modification time (the source's).
    pub time: FileTime,
    /// Content hash (BLAKE3, hex), when hashes were asked for.
    pub hash: Option<String>,
    /// What happened to it.
    pub how: SyncedHow,
}

/// What a finished sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Every file of the job, in job order.
    pub files: Vec<SyncedFile>,
    /// Files removed (relative paths).
    pub removed: Vec<PathBuf>,
    /// Bytes written.
    pub bytes_copied: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Carries out `plan`. `observer` runs on the calling thread (at most about ten times a second
/// plus once per file); setting `cancel` stops the run soon, leaving finished files in place.
///
/// Workers write files under temporary names and committers flush and rename them (see the
/// `pipeline` and `commit` modules); when `options.durable`, the directories that got new
/// names are flushed before this returns.
pub fn execute(
    plan: &SyncPlan,
    options: &SyncOptions,
    observer: &mut dyn FnMut(&SyncProgress),
    cancel: &AtomicBool,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    for leftover in &plan.leftovers {
        copy::remove_leftover(leftover).map_err(SyncError::Destination)?;
    }
    let needs_hash = |file: &PlannedFile| options.hashes && file.known_hash.is_none();
    let mut work: Vec<usize> = (0..plan.files.len())
        .filter(|&i| plan.files[i].action != Action::Keep || needs_hash(&plan.files[i]))
        .collect();
    // Largest first, so the long copies start early and small files fill the gaps.
    work.sort_by_key(|&i| std::cmp::Reverse(plan.files[i].size));
    let mut progress = SyncProgress {
        files_done: 0,
        files_total: work.len(),
        bytes_done: 0,
        bytes_total: work.iter().map(|&i| plan.files[i].size).sum(),
        elapsed: Duration::ZERO,
        last_file: None,
    };
    let pipeline = Pipeline {
        plan,
        options,
        work: &work,
        cancel,
    };
    let mut ledger = pipeline.run(&mut progress, started, observer);
    if options.durable {
        commit::sync_dirs(&ledger.dirs, &plan.dest_root).map_err(SyncError::Destination)?;
    }
    if !ledger.failures.is_empty() {
        return Err(SyncError::Files(ledger.failures));
    }
    if ledger.stopped {
        return Err(SyncError::Interrupted {
            completed: ledger.finished,
            total: progress.files_total,
        });
    }

    let mut removed = Vec::new();
    for removal in &plan.removals {
        remove(plan, &removal.dest).map_err(|error| {
            SyncError::Files(vec![FileFailure {
                dest: removal.dest.clone(),
                message: error.to_string(),
            }])
        })?;
        removed.push(removal.dest.clone());
    }
    for managed in &plan.managed_dirs {
        remove_empty_dirs(&plan.dest_root.join(managed), true).map_err(SyncError::Destination)?;
    }

    let mut files = Vec::with_capacity(plan.files.len());
    for (file, outcome) in plan.files.iter().zip(std::mem::take(&mut ledger.outcomes)) {
        let (how, hash) = match outcome {
            Some(Outcome::Copied { hash }) => {
                let how = match file.action {
                    Action::Create => SyncedHow::Created,
                    _ => SyncedHow::Replaced,
                };
                if options.verify == VerifyMode::Hash {
                    verify_hash(plan, file, hash.as_deref())?;
                }
                (how, hash)
            }
            Some(Outcome::Kept { hash }) => (SyncedHow::Kept, hash),
            None => (SyncedHow::Kept, file.known_hash.clone()),
        };
        files.push(SyncedFile {
            dest: file.dest.clone(),
            size: file.size,
            time: file.time,
            hash,
            how,
        });
    }
    if let Some(path) = &plan.state_file {
        ledger.close_state();
        match fs_err::remove_file(path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(SyncError::Destination(error));
            }
            _ => {}
        }
    }
    progress.elapsed = started.elapsed();
    observer(&progress);
    Ok(SyncReport {
        files,
        removed,
        bytes_copied: ledger.bytes_copied,
        elapsed: started.elapsed(),
    })
}

fn remove(plan: &SyncPlan, relative: &Path) -> io::Result<()> {
    let path = plan.dest_root.join(relative);
    match &plan.backup_dir {
        Some(backup) => {
            let target = backup.join(relative);
            if let Some(parent) = target.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::rename(&path, target)
        }
        None => {
            sys::make_writable(&path)?;
            fs_err::remove_file(&path)
        }
    }
}

/// Removes directories left empty below `dir` (and `dir` itself unless `keep_root`).
fn remove_empty_dirs(dir: &Path, keep_root: bool) -> io::Result<()> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let mut empty = true;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_dirs(&entry.path(), false)?;
            if entry.path().exists() {
                empty = false;
            }
        } else {
            empty = false;
        }
    }
    if empty && !keep_root {
        fs_err::remove_dir(dir)?;
    }
    Ok(())
}

/// Reads a written file back and compares its hash with the source's ([`VerifyMode::Hash`]; the
/// size was checked before the file got its name).
fn verify_hash(plan: &SyncPlan, file: &PlannedFile, hash: Option<&str>) -> Result<(), SyncError> {
    let path = plan.dest_root.join(&file.dest);
    let never = AtomicBool::new(false);
    let mut buffer = vec![0u8; 1 << 20];
    let mut hash_of_file = |p: &Path| match copy::hash_file(p, &never, &mut buffer) {
        Ok(hash) => Ok(hash),
        Err(CopyError::Io(error)) => Err(SyncError::Destination(error)),
        Err(CopyError::Cancelled) => unreachable_cancel(),
    };
    let expected = match hash {
        Some(known) => known.to_owned(),
        None => hash_of_file(&file.source)?,
    };
    let actual = hash_of_file(&path)?;
    if actual != expected {
        return Err(SyncError::Verify {
            path,
            message: format!("hash {actual} differs from the source's {expected}"),
        });
    }
    Ok(())
}

fn unreachable_cancel() -> Result<String, SyncError> {
    Err(SyncError::Interrupted {
        completed: 0,
        total: 0,
    })
}
