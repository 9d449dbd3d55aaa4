//! Putting a written file in place: flush its temporary file to disk, then rename it over the
//! destination (moving the old file to the backup first, when there is one).
//!
//! **Why a file is atomic and a sync resumable.** The rule: *no file gets its final name before
//! its content is on disk*. The flush (content, size, time, read-only mark) comes first, the
//! rename after it. Committer threads do this for many files at the same time and apart from the
//! threads that copy (see [`super::pipeline`]), but each file's own order never changes. After
//! a crash or power loss at any moment, every destination path holds the old file or the
//! complete new one:
//!
//! - before or during the flush: the temporary file may be incomplete; the destination is
//!   untouched; the next run removes the temporary file (a leftover) and copies the file again;
//! - after the flush, before the rename: the temporary file is complete, but the next run
//!   still removes it and copies the file again. It never trusts a temporary file: after a
//!   power loss its size and time can survive without its content;
//! - the rename itself is atomic. A rename that did not reach the disk leaves the old file and
//!   a leftover (as above); one that did points at content that was already on disk;
//! - with a backup folder, the old file is moved there just before the rename: a crash between
//!   the two leaves the destination missing (the backup has the old file); the next run
//!   creates it.
//!
//! The renames reach the disk by themselves, or at the latest when the run flushes the
//! directories that got new names (and their parents), once at the end. Nothing depends on them being on disk
//! earlier: a lost rename is a file the next run copies again. The resume log is written after
//! a file's rename, and it only adds a hash to a file that matches by size and time.
//!
//! **Resuming.** A finished file is one with its final name: the next run keeps it by size and
//! time. A run that stops by itself (cancelled, or a file failed) commits every file that was
//! completely written before it returns, so only a hard kill or power loss loses work: the
//! files written but not yet committed, at most the commit queue's length plus one per
//! committer.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::copy::{self, Replaces, Written};
use super::sys;

/// Flushes a written file to disk (when `durable`), then puts it in place. Returns its content
/// hash, or why it was not put in place (its temporary file is then removed).
pub(crate) fn commit(written: Written, durable: bool) -> io::Result<Option<String>> {
    let partial = written.partial.clone();
    let result = if durable {
        written.handle.sync_all()
    } else {
        Ok(())
    }
    .and_then(|()| install(written));
    if result.is_err() {
        copy::discard(&partial);
    }
    result
}

/// Moves the old file away (to the backup, or just clears its read-only mark, which Windows
/// would not replace) and renames the new one into place.
fn install(written: Written) -> io::Result<Option<String>> {
    let Written {
        handle,
        partial,
        dest,
        replaces,
        backup,
        hash,
        ..
    } = written;
    drop(handle);
    match (replaces, backup) {
        (Replaces::Nothing, _) => {}
        (_, Some(backup)) => {
            if let Some(parent) = backup.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::rename(&dest, backup)?;
        }
        (Replaces::ReadOnlyFile, None) => {
            sys::make_writable(&dest)?;
        }
        (Replaces::File, None) => {}
    }
    fs_err::rename(&partial, &dest)?;
    Ok(hash)
}

/// Flushes the directories that got new names, and their parents up to `root` (a directory
/// created by the run is an entry of its parent), several at a time like the files.
pub(crate) fn sync_dirs(dirs: &BTreeSet<PathBuf>, root: &Path) -> io::Result<()> {
    let mut all = BTreeSet::new();
    for dir in dirs {
        for ancestor in dir.ancestors() {
            if !ancestor.starts_with(root) || !all.insert(ancestor.to_path_buf()) {
                break;
            }
        }
    }
    let all: Vec<PathBuf> = all.into_iter().collect();
    let per_thread = all.len().div_ceil(FLUSH_THREADS).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = all
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().try_for_each(|dir| sys::sync_dir(dir))))
            .collect();
        handles.into_iter().try_for_each(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// Directories flushed at the same time.
const FLUSH_THREADS: usize = 8;
