//! The incremental sync engine: make a destination tree hold exactly a given set of files.
//!
//! A [`SyncJob`] names the files (source path → path relative to the destination root) and the
//! *managed* directories, the only places where files that are no longer wanted may be
//! removed. [`plan`] compares both sides (see [`compare`] for the rules and what "unsure"
//! means) without changing anything, so `--dry-run` can list every file; [`execute`] carries a
//! plan out with several threads, writing each file atomically (temporary name in the same
//! directory, flushed to disk, then renamed into place by separate committer threads), giving
//! it the source's modification time, optionally marking it read-only, and reporting progress
//! with throughput to an observer.
//!
//! **Resuming.** Every finished file already matches its source by size and time, so running
//! the same job again after an interruption copies only what is missing; leftover temporary
//! files are removed first, never trusted (the `commit` module explains why this is safe after a
//! crash too). A resume log ([`SyncJob::state_file`]) additionally keeps the hashes of finished
//! files so they are not read again.

mod commit;
pub mod compare;
mod copy;
mod pipeline;
mod run;
pub mod state;

#[cfg(unix)]
#[path = "sys/unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "sys/windows.rs"]
mod sys;

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

pub use compare::{Action, CompareMode, FileTime};
pub use run::{SyncProgress, SyncReport, SyncedFile, SyncedHow, execute};
pub use state::{KnownFile, load_state};

/// One file the destination must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileToSync {
    /// Where the content comes from.
    pub source: PathBuf,
    /// Where it goes, relative to the destination root.
    pub dest: PathBuf,
}

/// What to sync where.
#[derive(Debug, Clone, Default)]
pub struct SyncJob {
    /// The destination root (a mounted guest volume, a directory).
    pub dest_root: PathBuf,
    /// Every file the destination must hold.
    pub files: Vec<FileToSync>,
    /// Directories (relative to the root; empty = the whole root) where files not in `files`
    /// are removed. Nothing outside them is ever removed.
    pub managed_dirs: Vec<PathBuf>,
    /// Where replaced and removed files are moved instead of being deleted (for undo). Must be
    /// on the same volume; never scanned for removal.
    pub backup_dir: Option<PathBuf>,
    /// The resume log (see the module documentation).
    pub state_file: Option<PathBuf>,
}

/// What the destination is checked against after writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMode {
    /// Every written file has the source's size.
    #[default]
    Size,
    /// Every written file is read back and its hash compared.
    Hash,
}

/// How to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Worker threads.
    pub threads: usize,
    /// How sure a match must be.
    pub compare: CompareMode,
    /// What to check after writing.
    pub verify: VerifyMode,
    /// Compute the content hash (BLAKE3) of every file in the final set (hashed while copying; taken from
    /// [`SyncOptions::known`] or the resume log for files kept).
    pub hashes: bool,
    /// Mark written files read-only (a replaced read-only file's mark is always kept).
    pub read_only: bool,
    /// Flush each file to disk before it gets its final name, and the directories that got
    /// new names before [`execute`] returns (see the `commit` module for why this order makes
    /// every file atomic).
    pub durable: bool,
    /// Hashes known from an earlier run (a manifest), by destination path
    /// ([`relative_key`]); used only where size and time still match.
    pub known: BTreeMap<String, KnownFile>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            threads: 4,
            compare: CompareMode::SizeAndTime,
            verify: VerifyMode::Size,
            hashes: true,
            read_only: false,
            durable: true,
            known: BTreeMap::new(),
        }
    }
}

/// One file's planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    /// Source path.
    pub source: PathBuf,
    /// Destination path, relative to the root.
    pub dest: PathBuf,
    /// Source size.
    pub size: u64,
    /// Source modification time.
    pub time: FileTime,
    /// What will happen.
    #[serde(flatten)]
    pub action: Action,
    /// The content hash, when already known for a kept file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_hash: Option<String>,
}

/// A destination file that will be removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// Path relative to the root.
    pub dest: PathBuf,
    /// Its size.
    pub size: u64,
}

/// The outcome of [`plan`]: everything [`execute`] will do, and nothing done yet.
#[derive(Debug, Clone, Serialize)]
pub struct SyncPlan {
    /// The destination root.
    pub dest_root: PathBuf,
    /// Every file of the job, in job order.
    pub files: Vec<PlannedFile>,
    /// Files inside managed directories that the job no longer has.
    pub removals: Vec<Removal>,
    /// Temporary files left by an interrupted run (removed first).
    pub leftovers: Vec<PathBuf>,
    /// Managed directories (relative), for removing directories left empty.
    pub managed_dirs: Vec<PathBuf>,
    /// See [`SyncJob::backup_dir`].
    pub backup_dir: Option<PathBuf>,
    /// See [`SyncJob::state_file`].
    pub state_file: Option<PathBuf>,
}

/// Counts for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Files to create.
    pub create: usize,
    /// Files to replace.
    pub replace: usize,
    /// Files whose content is compared.
    pub check: usize,
    /// Files already in place.
    pub keep: usize,
    /// Files to remove.
    pub remove: usize,
    /// Bytes that will (at most) be copied.
    pub bytes_to_copy: u64,
}

impl SyncPlan {
    /// Counts of each action.
    pub fn summary(&self) -> PlanSummary {
        let mut summary = PlanSummary {
            remove: self.removals.len(),
            ..PlanSummary::default()
        };
        for file in &self.files {
            match file.action {
                Action::Create => summary.create += 1,
                Action::Replace { .. } => summary.replace += 1,
                Action::CheckContent => summary.check += 1,
                Action::Keep => summary.keep += 1,
            }
            if file.action != Action::Keep {
                summary.bytes_to_copy += file.size;
            }
        }
        summary
    }

    /// Whether executing would change nothing.
    pub fn is_noop(&self) -> bool {
        self.removals.is_empty()
            && self.leftovers.is_empty()
            && self.files.iter().all(|f| f.action == Action::Keep)
    }
}

/// Why a sync could not be planned or did not finish. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A source file could not be read.
    #[error("cannot read the source file: {0}")]
    Source(#[source] io::Error),
    /// The destination could not be examined.
    #[error("cannot examine the destination: {0}")]
    Destination(#[source] io::Error),
    /// A destination path leaves the destination root.
    #[error(
        "the destination path `{}` is absolute or contains `..`; driver files must stay inside \
         the destination root",
        .0.display()
    )]
    BadDestination(PathBuf),
    /// Two files of the job have the same destination.
    #[error("two source files both go to `{}`", .0.display())]
    DuplicateDestination(PathBuf),
    /// Some files failed; the others were written (run again to finish).
    #[error("{} file(s) could not be synced: {}", .0.len(), summarize_failures(.0))]
    Files(Vec<FileFailure>),
    /// The run was cancelled; finished files stay and a new run continues from there.
    #[error(
        "the sync was interrupted after {completed} of {total} files; run it again to finish \
         (finished files are not copied again)"
    )]
    Interrupted {
        /// Files finished.
        completed: usize,
        /// Files in the work list.
        total: usize,
    },
    /// A written file does not match after writing.
    #[error("verification failed for `{}`: {message}", .path.display())]
    Verify {
        /// The destination file.
        path: PathBuf,
        /// What did not match.
        message: String,
    },
}

/// One file that failed, with the error that names its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFailure {
    /// Destination path relative to the root.
    pub dest: PathBuf,
    /// The error (it names the path that failed, source or destination).
    pub message: String,
}

fn summarize_failures(failures: &[FileFailure]) -> String {
    let mut text = failures
        .iter()
        .take(3)
        .map(|f| f.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > 3 {
        text.push_str(&format!("; and {} more", failures.len() - 3));
    }
    text
}

/// The key of a relative destination path in hash maps and manifests: components joined with
/// `/`.
pub fn relative_key(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl SyncJob {
    /// A job that mirrors the tree under `source_root` into `dest_root` (which it manages
    /// completely: files not in the source are removed).
    pub fn mirror(source_root: &Path, dest_root: &Path) -> Result<Self, SyncError> {
        let mut files = Vec::new();
        walk_files(source_root, Path::new(""), &mut |relative, _| {
            files.push(FileToSync {
                source: source_root.join(relative),
                dest: relative.to_path_buf(),
            });
        })
        .map_err(SyncError::Source)?;
        Ok(Self {
            dest_root: dest_root.to_path_buf(),
            files,
            managed_dirs: vec![PathBuf::new()],
            backup_dir: None,
            state_file: Some(dest_root.join(".passthru-sync-state.jsonl")),
        })
    }
}

/// Compares the job's files with the destination and lists what [`execute`] would do.
pub fn plan(job: &SyncJob, options: &SyncOptions) -> Result<SyncPlan, SyncError> {
    let mut known = options.known.clone();
    if let Some(state) = &job.state_file {
        known.extend(load_state(state).map_err(SyncError::Destination)?);
    }
    let mut wanted = HashSet::new();
    for file in &job.files {
        check_relative(&file.dest)?;
        if !wanted.insert(sys::path_key(&relative_key(&file.dest))) {
            return Err(SyncError::DuplicateDestination(file.dest.clone()));
        }
    }
    for managed in &job.managed_dirs {
        check_relative(managed)?;
    }
    // Looking at both sides is latency-bound (cold metadata comes from disk), so the files are
    // compared on more threads than copying uses, while one more thread lists the managed
    // directories of the destination.
    let threads = options.threads.max(16);
    let per_thread = job.files.len().div_ceil(threads).max(16);
    let (files, found) = std::thread::scope(|scope| {
        let found = scope.spawn(|| find_removals(job, &wanted));
        let handles: Vec<_> = job
            .files
            .chunks(per_thread)
            .map(|part| {
                let known = &known;
                scope.spawn(move || {
                    part.iter()
                        .map(|file| plan_file(job, options, known, file))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let files = handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>, _>>();
        let found = found
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (files, found)
    });
    let files = files?;
    let (removals, leftovers) = found?;
    Ok(SyncPlan {
        dest_root: job.dest_root.clone(),
        files,
        removals,
        leftovers,
        managed_dirs: job.managed_dirs.clone(),
        backup_dir: job.backup_dir.clone(),
        state_file: job.state_file.clone(),
    })
}

/// Files in the managed directories that the job does not have, and leftover temporary files.
fn find_removals(
    job: &SyncJob,
    wanted: &HashSet<String>,
) -> Result<(Vec<Removal>, Vec<PathBuf>), SyncError> {
    let mut removals = Vec::new();
    let mut leftovers = Vec::new();
    let exclude: Vec<&Path> = job
        .backup_dir
        .iter()
        .chain(job.state_file.iter())
        .map(PathBuf::as_path)
        .collect();
    for managed in &job.managed_dirs {
        let root = job.dest_root.join(managed);
        let mut stat_error = None;
        walk_files_excluding(&root, managed, &exclude, &mut |relative, full| {
            let name = relative.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(copy::PARTIAL_SUFFIX) {
                leftovers.push(full.to_path_buf());
            } else if !wanted.contains(&sys::path_key(&relative_key(relative))) {
                match fs_err::symlink_metadata(full) {
                    Ok(meta) => removals.push(Removal {
                        dest: relative.to_path_buf(),
                        size: meta.len(),
                    }),
                    Err(error) => stat_error = Some(error),
                }
            }
        })
        .map_err(SyncError::Destination)?;
        if let Some(error) = stat_error {
            return Err(SyncError::Destination(error));
        }
    }
    Ok((removals, leftovers))
}

/// Compares one file of the job with the destination.
fn plan_file(
    job: &SyncJob,
    options: &SyncOptions,
    known: &BTreeMap<String, KnownFile>,
    file: &FileToSync,
) -> Result<PlannedFile, SyncError> {
    let meta = fs_err::metadata(&file.source).map_err(SyncError::Source)?;
    if !meta.is_file() {
        return Err(SyncError::Source(io::Error::other(format!(
            "`{}` is not a regular file",
            file.source.display()
        ))));
    }
    let time = FileTime::from_system(meta.modified().map_err(SyncError::Source)?);
    let dest_path = job.dest_root.join(&file.dest);
    let action = match fs_err::symlink_metadata(&dest_path) {
        Ok(dest) if dest.is_file() => {
            let dest_time = FileTime::from_system(dest.modified().map_err(SyncError::Destination)?);
            compare::decide(
                options.compare,
                meta.len(),
                time,
                Some((dest.len(), dest_time)),
            )
        }
        // A directory or link where a file belongs: the copy reports it with its path.
        Ok(dest) => Action::Replace {
            old_size: dest.len(),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => Action::Create,
        Err(error) => return Err(SyncError::Destination(error)),
    };
    let known_hash = (action == Action::Keep)
        .then(|| known.get(&relative_key(&file.dest)))
        .flatten()
        .filter(|k| k.size == meta.len() && time.same_as(k.time))
        .map(|k| k.hash.clone());
    Ok(PlannedFile {
        source: file.source.clone(),
        dest: file.dest.clone(),
        size: meta.len(),
        time,
        action,
        known_hash,
    })
}

fn check_relative(path: &Path) -> Result<(), SyncError> {
    let fine = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if fine {
        Ok(())
    } else {
        Err(SyncError::BadDestination(path.to_path_buf()))
    }
}

/// Calls `visit(relative path, full path)` for every file (not following links) under `dir`,
/// in name order. A missing `dir` has no files.
fn walk_files(dir: &Path, relative: &Path, visit: &mut dyn FnMut(&Path, &Path)) -> io::Result<()> {
    walk_files_excluding(dir, relative, &[], visit)
}

fn walk_files_excluding(
    dir: &Path,
    relative: &Path,
    exclude: &[&Path],
    visit: &mut dyn FnMut(&Path, &Path),
) -> io::Result<()> {
    if exclude.contains(&dir) {
        return Ok(());
    }
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let mut entries = entries.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let child = relative.join(entry.file_name());
        // The directory entry's type needs no extra stat on most file systems.
        if entry.file_type()?.is_dir() {
            walk_files_excluding(&path, &child, exclude, visit)?;
        } else if !exclude.contains(&path.as_path()) {
            visit(&child, &path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
