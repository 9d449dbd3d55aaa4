//! Carrying out a [`SyncPlan`]: parallel workers, progress, removals, verification.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::compare::{Action, FileTime};
use super::copy::{self, CopyError, CopyRequest};
use super::state::{KnownFile, StateLog};
use super::{
    FileFailure, PlannedFile, SyncError, SyncOptions, SyncPlan, VerifyMode, relative_key, sys,
};

/// Progress of a running sync, for a progress bar.
#[derive(Debug, Clone)]
pub struct SyncProgress {
    /// Files finished (copied, checked or hashed) so far.
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

enum Event {
    Bytes(u64),
    Done {
        index: usize,
        result: Result<Outcome, CopyError>,
    },
}

enum Outcome {
    Copied { hash: Option<String> },
    Kept { hash: Option<String> },
}

/// Carries out `plan`. `observer` runs on the calling thread (at most about ten times a second
/// plus once per file); setting `cancel` stops the run soon, leaving finished files in place.
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
    let mut state = match &plan.state_file {
        Some(path) => Some(StateLog::open(path).map_err(SyncError::Destination)?),
        None => None,
    };

    let stop = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let mut outcomes: Vec<Option<Outcome>> = (0..plan.files.len()).map(|_| None).collect();
    let mut failures = Vec::new();
    let mut bytes_copied = 0u64;
    let threads = options.threads.clamp(1, 64).min(work.len().max(1));
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<Event>();
        for _ in 0..threads {
            let sender = sender.clone();
            let (work, next, stop) = (&work, &next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(&index) = work.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let file = &plan.files[index];
                    let mut report = |bytes| {
                        let _ = sender.send(Event::Bytes(bytes));
                    };
                    let result = process(plan, options, file, stop, &mut report);
                    let _ = sender.send(Event::Done { index, result });
                }
            });
        }
        drop(sender);
        let mut last_report = Instant::now();
        loop {
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(Event::Bytes(bytes)) => {
                    progress.bytes_done += bytes;
                    bytes_copied += bytes;
                }
                Ok(Event::Done { index, result }) => {
                    let file = &plan.files[index];
                    match result {
                        Ok(outcome) => {
                            progress.files_done += 1;
                            progress.last_file = Some(file.dest.clone());
                            if !matches!(outcome, Outcome::Copied { .. }) {
                                progress.bytes_done += file.size;
                            }
                            if let (Some(log), Some(hash)) = (state.as_mut(), hash_of(&outcome)) {
                                let known = KnownFile {
                                    size: file.size,
                                    time: file.time,
                                    hash: hash.to_owned(),
                                };
                                // The log only saves re-hashing; a failed write is harmless.
                                let _ = log.record(&relative_key(&file.dest), &known);
                            }
                            outcomes[index] = Some(outcome);
                        }
                        Err(CopyError::Cancelled) => {}
                        Err(CopyError::Io(error)) => {
                            stop.store(true, Ordering::Relaxed);
                            failures.push(FileFailure {
                                dest: file.dest.clone(),
                                message: error.to_string(),
                            });
                        }
                    }
                    progress.elapsed = started.elapsed();
                    observer(&progress);
                    last_report = Instant::now();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if cancel.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
            }
            if last_report.elapsed() >= Duration::from_millis(100) {
                progress.elapsed = started.elapsed();
                observer(&progress);
                last_report = Instant::now();
            }
        }
    });
    if !failures.is_empty() {
        return Err(SyncError::Files(failures));
    }
    if stop.load(Ordering::Relaxed) {
        return Err(SyncError::Interrupted {
            completed: progress.files_done,
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
    for (file, outcome) in plan.files.iter().zip(outcomes) {
        let (how, hash) = match outcome {
            Some(Outcome::Copied { hash }) => {
                let how = match file.action {
                    Action::Create => SyncedHow::Created,
                    _ => SyncedHow::Replaced,
                };
                verify(plan, options, file, hash.as_deref())?;
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
        drop(state);
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
        bytes_copied,
        elapsed: started.elapsed(),
    })
}

fn hash_of(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Copied { hash } | Outcome::Kept { hash } => hash.as_deref(),
    }
}

/// Does one file's work on a worker thread.
fn process(
    plan: &SyncPlan,
    options: &SyncOptions,
    file: &PlannedFile,
    stop: &AtomicBool,
    report: &mut dyn FnMut(u64),
) -> Result<Outcome, CopyError> {
    let dest = plan.dest_root.join(&file.dest);
    let copy_it = |report: &mut dyn FnMut(u64)| {
        let request = CopyRequest {
            source: &file.source,
            dest: &dest,
            time: file.time,
            read_only: options.read_only,
            durable: options.durable,
            hash: options.hashes,
            backup: backup_path(plan, &file.dest, file.action),
            cancel: stop,
        };
        copy::copy_file(&request, report).map(|hash| Outcome::Copied { hash })
    };
    match file.action {
        Action::Create | Action::Replace { .. } => copy_it(report),
        Action::Keep => Ok(Outcome::Kept {
            hash: Some(copy::hash_file(&dest, stop)?),
        }),
        Action::CheckContent => {
            let source_hash = copy::hash_file(&file.source, stop)?;
            let dest_hash = copy::hash_file(&dest, stop)?;
            if source_hash == dest_hash {
                copy::set_time(&dest, file.time)?;
                Ok(Outcome::Kept {
                    hash: Some(source_hash),
                })
            } else {
                copy_it(report)
            }
        }
    }
}

fn backup_path(plan: &SyncPlan, dest: &Path, action: Action) -> Option<PathBuf> {
    let backup = plan.backup_dir.as_ref()?;
    (action != Action::Create).then(|| backup.join(dest))
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

fn verify(
    plan: &SyncPlan,
    options: &SyncOptions,
    file: &PlannedFile,
    hash: Option<&str>,
) -> Result<(), SyncError> {
    let path = plan.dest_root.join(&file.dest);
    let meta = fs_err::metadata(&path).map_err(SyncError::Destination)?;
    if meta.len() != file.size {
        return Err(SyncError::Verify {
            path,
            message: format!("{} bytes written, the source has {}", meta.len(), file.size),
        });
    }
    if options.verify == VerifyMode::Hash {
        let never = AtomicBool::new(false);
        let hash_of_file = |p: &Path| match copy::hash_file(p, &never) {
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
    }
    Ok(())
}

fn unreachable_cancel() -> Result<String, SyncError> {
    Err(SyncError::Interrupted {
        completed: 0,
        total: 0,
    })
}
