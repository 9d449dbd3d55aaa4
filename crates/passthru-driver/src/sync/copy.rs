//! Copying one file atomically: write a temporary file next to the destination, give it the
//! source's time (and the read-only mark), flush it, then rename it over the destination. A
//! crash leaves either the old file or the new one, plus at most a `.passthru-partial`
//! leftover that the next run removes.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::compare::FileTime;
use super::sys;

/// Suffix of temporary files; anything with it inside a managed directory is a leftover.
pub(crate) const PARTIAL_SUFFIX: &str = ".passthru-partial";

/// Bytes per progress report and per cancellation check.
const CHUNK: usize = 1 << 20;

/// Why one file was not copied.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// An I/O error; the message names the path (fs-err).
    Io(io::Error),
    /// The run was cancelled; the temporary file was removed.
    Cancelled,
}

impl From<io::Error> for CopyError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// One file to write.
pub(crate) struct CopyRequest<'a> {
    pub(crate) source: &'a Path,
    pub(crate) dest: &'a Path,
    pub(crate) time: FileTime,
    pub(crate) read_only: bool,
    pub(crate) durable: bool,
    pub(crate) hash: bool,
    /// Where the replaced destination file goes (same volume), if it is kept for undo.
    pub(crate) backup: Option<PathBuf>,
    pub(crate) cancel: &'a AtomicBool,
}

/// The temporary name for `dest`: `.<name>.passthru-partial` in the same directory.
pub(crate) fn partial_path(dest: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(PARTIAL_SUFFIX);
    dest.with_file_name(name)
}

/// Copies `request.source` to `request.dest`; returns the content hash (BLAKE3) when asked for.
pub(crate) fn copy_file(
    request: &CopyRequest<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<Option<String>, CopyError> {
    let dest = request.dest;
    if let Some(parent) = dest.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let existing = match fs_err::symlink_metadata(dest) {
        Ok(meta) => Some(meta),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error.into()),
    };
    if existing.as_ref().is_some_and(|meta| meta.is_dir()) {
        return Err(io::Error::other(format!(
            "`{}` is a directory where the driver has a file; move it away and sync again",
            dest.display()
        ))
        .into());
    }
    let old_read_only = existing
        .as_ref()
        .is_some_and(|meta| sys::is_read_only(&meta.permissions()));

    let partial = partial_path(dest);
    remove_leftover(&partial)?;
    let result = write_partial(request, &partial, old_read_only, progress);
    let digest = match result {
        Ok(digest) => digest,
        Err(error) => {
            let _ = sys::make_writable(&partial);
            let _ = fs_err::remove_file(&partial);
            return Err(error);
        }
    };

    if existing.is_some() {
        match &request.backup {
            Some(backup) => {
                if let Some(parent) = backup.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                fs_err::rename(dest, backup)?;
            }
            // Windows refuses to replace a read-only file: clear the mark first. The new file
            // already carries it again (restored from the old one or asked for).
            None => {
                sys::make_writable(dest)?;
            }
        }
    }
    fs_err::rename(&partial, dest)?;
    Ok(digest)
}

fn write_partial(
    request: &CopyRequest<'_>,
    partial: &Path,
    old_read_only: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<Option<String>, CopyError> {
    let mut source = fs_err::File::open(request.source)?;
    let mut target = fs_err::File::create(partial)?;
    let digest = if request.hash {
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; CHUNK];
        loop {
            if request.cancel.load(Ordering::Relaxed) {
                return Err(CopyError::Cancelled);
            }
            let read = match source.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            hasher.update(&buffer[..read]);
            target.write_all(&buffer[..read])?;
            progress(read as u64);
        }
        Some(hasher.finalize().to_hex().to_string())
    } else {
        // `io::copy` between files lets the kernel copy (copy_file_range on Linux); chunks keep
        // progress and cancellation responsive.
        loop {
            if request.cancel.load(Ordering::Relaxed) {
                return Err(CopyError::Cancelled);
            }
            let copied = io::copy(
                &mut Read::by_ref(source.file_mut()).take(CHUNK as u64 * 16),
                target.file_mut(),
            )
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!(
                        "copying `{}` to `{}` failed: {error}",
                        request.source.display(),
                        partial.display()
                    ),
                )
            })?;
            if copied == 0 {
                break;
            }
            progress(copied);
        }
        None
    };
    target
        .file()
        .set_modified(request.time.to_system())
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "setting the time of `{}` failed: {error}",
                    partial.display()
                ),
            )
        })?;
    if request.durable {
        target.sync_all()?;
    }
    if request.read_only || old_read_only {
        let permissions = target.metadata()?.permissions();
        target.set_permissions(sys::read_only_version(&permissions))?;
    }
    Ok(digest)
}

/// Removes a leftover temporary file (possibly read-only).
pub(crate) fn remove_leftover(path: &Path) -> io::Result<()> {
    match fs_err::symlink_metadata(path) {
        Ok(_) => {
            sys::make_writable(path)?;
            fs_err::remove_file(path)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// The BLAKE3 hash of a file, streamed.
pub(crate) fn hash_file(path: &Path, cancel: &AtomicBool) -> Result<String, CopyError> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Cancelled);
        }
        match file.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finalize().to_hex().to_string()),
            Ok(read) => {
                hasher.update(&buffer[..read]);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
}

/// Sets a destination file's time without touching its content, keeping its read-only mark.
pub(crate) fn set_time(path: &Path, time: FileTime) -> io::Result<()> {
    let restore = sys::make_writable(path)?;
    let file = fs_err::OpenOptions::new().write(true).open(path)?;
    let result = file.file().set_modified(time.to_system()).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("setting the time of `{}` failed: {error}", path.display()),
        )
    });
    drop(file);
    if let Some(permissions) = restore {
        fs_err::set_permissions(path, permissions)?;
    }
    result
}
