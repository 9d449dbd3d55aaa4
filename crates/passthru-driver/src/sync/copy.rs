//! Writing one file's new content next to its destination, so that it can be put in place
//! atomically later (see [`super::commit`] for when and how it gets its final name).
//!
//! The content goes to `.<name>.passthru-partial` in the destination's directory (the same
//! volume, so a rename moves it into place), gets the source's time and the read-only mark,
//! and its size is checked against the plan before anything else happens to it.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::compare::FileTime;
use super::sys;

/// Suffix of temporary files; anything with it inside a managed directory is a leftover.
pub(crate) const PARTIAL_SUFFIX: &str = ".passthru-partial";

/// Bytes per kernel copy (without hashing) between progress reports and cancellation checks.
const KERNEL_COPY_CHUNK: u64 = 16 << 20;

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
    /// The source's size when the sync was planned; the copy must have it.
    pub(crate) size: u64,
    pub(crate) time: FileTime,
    pub(crate) read_only: bool,
    pub(crate) hash: bool,
    /// Where the replaced destination file goes (same volume), if it is kept for undo.
    pub(crate) backup: Option<PathBuf>,
    pub(crate) cancel: &'a AtomicBool,
}

/// A file whose new content is complete under its temporary name, not yet flushed to disk and
/// not yet in place.
#[derive(Debug)]
pub(crate) struct Written {
    /// The temporary file, still open so that flushing it needs no second open.
    pub(crate) handle: fs_err::File,
    pub(crate) partial: PathBuf,
    pub(crate) dest: PathBuf,
    /// What the destination held when the copy started.
    pub(crate) replaces: Replaces,
    pub(crate) backup: Option<PathBuf>,
    /// The content hash (BLAKE3), when asked for.
    pub(crate) hash: Option<String>,
}

/// What was at the destination before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replaces {
    Nothing,
    File,
    ReadOnlyFile,
}

/// The temporary name for `dest`: `.<name>.passthru-partial` in the same directory.
pub(crate) fn partial_path(dest: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(PARTIAL_SUFFIX);
    dest.with_file_name(name)
}

/// Writes `request.source`'s content under the temporary name next to `request.dest`;
/// `buffer` is the worker's, reused from file to file.
pub(crate) fn write_temporary(
    request: &CopyRequest<'_>,
    buffer: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<Written, CopyError> {
    let dest = request.dest;
    let replaces = match fs_err::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {
            return Err(io::Error::other(format!(
                "`{}` is a directory where the driver has a file; move it away and sync again",
                dest.display()
            ))
            .into());
        }
        Ok(meta) if sys::is_read_only(&meta.permissions()) => Replaces::ReadOnlyFile,
        Ok(_) => Replaces::File,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Replaces::Nothing,
        Err(error) => return Err(error.into()),
    };
    let partial = partial_path(dest);
    remove_leftover(&partial)?;
    let mut source = fs_err::File::open(request.source)?;
    let mut target = create_with_parents(&partial)?;
    let result = write_content(
        request,
        &mut source,
        &mut target,
        &partial,
        buffer,
        progress,
    )
    .and_then(|hash| {
        finish(request, &target, &partial, replaces)?;
        Ok(hash)
    });
    match result {
        Ok(hash) => Ok(Written {
            handle: target,
            partial,
            dest: dest.to_path_buf(),
            replaces,
            backup: request.backup.clone(),
            hash,
        }),
        Err(error) => {
            drop(target);
            discard(&partial);
            Err(error)
        }
    }
}

/// Creates a file, and its directory when that is missing (usually it is there: trying first
/// saves two system calls per file).
fn create_with_parents(path: &Path) -> io::Result<fs_err::File> {
    match fs_err::File::create(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::File::create(path)
        }
        result => result,
    }
}

/// Copies the content; returns its hash when asked for, after checking the size.
fn write_content(
    request: &CopyRequest<'_>,
    source: &mut fs_err::File,
    target: &mut fs_err::File,
    partial: &Path,
    buffer: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<Option<String>, CopyError> {
    let mut copied = 0u64;
    let digest = if request.hash {
        let mut hasher = blake3::Hasher::new();
        loop {
            if request.cancel.load(Ordering::Relaxed) {
                return Err(CopyError::Cancelled);
            }
            let read = match source.read(buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            hasher.update(&buffer[..read]);
            target.write_all(&buffer[..read])?;
            copied += read as u64;
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
            let chunk = io::copy(
                &mut Read::by_ref(source.file_mut()).take(KERNEL_COPY_CHUNK),
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
            if chunk == 0 {
                break;
            }
            copied += chunk;
            progress(chunk);
        }
        None
    };
    // Checked here, before the file can get its final name: a short copy never replaces
    // anything.
    if copied != request.size {
        return Err(io::Error::other(format!(
            "verification failed for `{}`: {copied} bytes copied from `{}`, which had {} bytes \
             when the sync was planned (did it change during the sync?)",
            request.dest.display(),
            request.source.display(),
            request.size
        ))
        .into());
    }
    Ok(digest)
}

/// Gives the temporary file the source's time and the read-only mark.
fn finish(
    request: &CopyRequest<'_>,
    target: &fs_err::File,
    partial: &Path,
    replaces: Replaces,
) -> io::Result<()> {
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
    if request.read_only || replaces == Replaces::ReadOnlyFile {
        let permissions = target.metadata()?.permissions();
        target.set_permissions(sys::read_only_version(&permissions))?;
    }
    Ok(())
}

/// Removes a temporary file that will not be used (best effort: a leftover is removed by the
/// next run anyway).
pub(crate) fn discard(partial: &Path) {
    let _ = sys::make_writable(partial);
    let _ = fs_err::remove_file(partial);
}

/// Removes a leftover temporary file (possibly read-only, which Windows refuses to delete).
pub(crate) fn remove_leftover(path: &Path) -> io::Result<()> {
    match fs_err::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => match sys::make_writable(path) {
            Ok(Some(_)) => fs_err::remove_file(path),
            _ => Err(error),
        },
    }
}

/// The BLAKE3 hash of a file, streamed through `buffer`.
pub(crate) fn hash_file(
    path: &Path,
    cancel: &AtomicBool,
    buffer: &mut [u8],
) -> Result<String, CopyError> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Cancelled);
        }
        match file.read(buffer) {
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
