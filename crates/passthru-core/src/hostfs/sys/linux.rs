//! Linux: a directory opened once (`O_PATH`) and its entries looked up relative to it
//! (`openat`, `readlinkat`, `fstatat`, `getdents64`).
//!
//! Opening `/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/vendor` by its absolute path
//! makes the kernel look up every component again; on a host with thousands of PCI functions,
//! each with about fifteen attributes, that path walk was the largest part of survey's system
//! time. Relative to an open directory the kernel looks up one name.

use std::ffi::{CStr, CString, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::super::{Entry, EntryKind, HostDir, PathDir, RealFs, child, with_path};

/// Opens `path` of `fs`; when it cannot be opened, falls back to reading by path, which
/// reports the same errors the caller would have met without the directory.
pub(in crate::hostfs) fn open_dir<'a>(fs: &'a RealFs, path: &Path) -> Box<dyn HostDir + 'a> {
    let real = fs.real_path(path);
    // `O_PATH`: the descriptor only anchors lookups, so opening it checks no read permission
    // and touches no file contents.
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&real)
    {
        Ok(file) => Box::new(FdDir {
            fd: OwnedFd::from(file),
            path: path.to_path_buf(),
            real,
            sysfs: path.starts_with("/sys"),
        }),
        Err(_) => Box::new(PathDir::new(fs, path)),
    }
}

/// An open directory of a [`RealFs`].
#[derive(Debug)]
struct FdDir {
    fd: OwnedFd,
    /// Host-absolute path.
    path: PathBuf,
    /// Where it is on this machine (for error messages).
    real: PathBuf,
    /// Whether entries are sysfs attributes (one `read` hands over the whole value).
    sysfs: bool,
}

impl FdDir {
    fn fail(&self, what: &str, name: &str, error: io::Error) -> io::Error {
        with_path(what, &child(&self.real, name), error)
    }

    fn open_at(&self, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
        open_at(self.fd.as_raw_fd(), name, flags)
    }
}

impl HostDir for FdDir {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_into(&self, name: &str, limit: usize, bytes: &mut Vec<u8>) -> io::Result<()> {
        if self.read_if_exists(name, limit, bytes)? {
            Ok(())
        } else {
            let error = io::Error::from_raw_os_error(libc::ENOENT);
            Err(self.fail("failed to open file", name, error))
        }
    }

    fn read_if_exists(&self, name: &str, limit: usize, bytes: &mut Vec<u8>) -> io::Result<bool> {
        let fd = match self.open_at(name, libc::O_RDONLY) {
            Ok(fd) => fd,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(self.fail("failed to open file", name, error)),
        };
        read_fd(&fd, limit, self.sysfs, bytes)
            .map_err(|error| self.fail("failed to read from file", name, error))?;
        Ok(true)
    }

    fn read_link(&self, name: &str) -> io::Result<PathBuf> {
        read_link_at(self.fd.as_raw_fd(), name)
            .map_err(|error| self.fail("failed to read symbolic link", name, error))
    }

    fn resolve_link_if_exists(&self, name: &str) -> io::Result<Option<PathBuf>> {
        match read_link_at(self.fd.as_raw_fd(), name) {
            Ok(target) => Ok(Some(self.resolve_target(name, &target))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.fail("failed to read symbolic link", name, error)),
        }
    }

    fn open_subdir(&self, name: &str) -> io::Result<Box<dyn HostDir>> {
        let fd = self
            .open_at(name, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|error| self.fail("failed to open directory", name, error))?;
        Ok(Box::new(FdDir {
            fd,
            path: child(&self.path, name),
            real: child(&self.real, name),
            sysfs: self.sysfs,
        }))
    }

    fn read_dir(&self, name: &str) -> io::Result<Vec<Entry>> {
        self.read_dir_if_exists(name)?.ok_or_else(|| {
            let error = io::Error::from_raw_os_error(libc::ENOENT);
            self.fail("failed to read directory", name, error)
        })
    }

    fn read_dir_if_exists(&self, name: &str) -> io::Result<Option<Vec<Entry>>> {
        let dir = match self.open_at(name, libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(dir) => dir,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.fail("failed to read directory", name, error)),
        };
        list(&dir)
            .map(Some)
            .map_err(|error| self.fail("failed to read directory", name, error))
    }

    fn kind(&self, name: &str) -> Option<EntryKind> {
        kind_at(self.fd.as_raw_fd(), name)
    }
}

/// [`read_open_file`](super::super::read_open_file) reading straight into the spare capacity
/// of `bytes`: no bounce buffer and no zeroing, for the thousands of attributes a survey
/// reads into one reused buffer.
fn read_fd(
    fd: &OwnedFd,
    limit: usize,
    whole_in_one_read: bool,
    bytes: &mut Vec<u8>,
) -> io::Result<()> {
    /// The most one `read` of a sysfs attribute returns (a page).
    const CHUNK: usize = 4096;
    bytes.clear();
    while bytes.len() < limit {
        let wanted = CHUNK.min(limit - bytes.len());
        bytes.reserve(wanted);
        // SAFETY: `reserve` made room for `wanted` more bytes after `len()`; `read` writes at
        // most that many.
        let count = unsafe {
            libc::read(
                fd.as_raw_fd(),
                bytes.as_mut_ptr().add(bytes.len()).cast::<libc::c_void>(),
                wanted,
            )
        };
        let Ok(count) = usize::try_from(count) else {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        };
        if count == 0 {
            break;
        }
        // SAFETY: `read` initialized `count` (≤ `wanted`) bytes after `len()`.
        unsafe { bytes.set_len(bytes.len() + count) };
        if whole_in_one_read && count < wanted {
            break;
        }
    }
    Ok(())
}

/// Runs `call` with `name` as a C string, from a stack buffer for the usual short name.
fn with_c_name<T>(name: &str, call: impl FnOnce(&CStr) -> io::Result<T>) -> io::Result<T> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    };
    let mut buffer = [0u8; 256];
    if name.len() < buffer.len() {
        buffer[..name.len()].copy_from_slice(name.as_bytes());
        let c_name = CStr::from_bytes_with_nul(&buffer[..=name.len()]).map_err(|_| invalid())?;
        call(c_name)
    } else {
        let c_name = CString::new(name).map_err(|_| invalid())?;
        call(&c_name)
    }
}

fn open_at(dir: RawFd, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    with_c_name(name, |c_name| {
        // SAFETY: `c_name` is a NUL-terminated string that outlives the call; `dir` is an open
        // descriptor owned by the caller.
        let fd = unsafe { libc::openat(dir, c_name.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

fn read_link_at(dir: RawFd, name: &str) -> io::Result<PathBuf> {
    with_c_name(name, |c_name| {
        let mut target: Vec<u8> = Vec::with_capacity(256);
        loop {
            // SAFETY: `c_name` is NUL-terminated; `target` has `capacity()` writable bytes,
            // of which `readlinkat` writes at most that many.
            let length = unsafe {
                libc::readlinkat(
                    dir,
                    c_name.as_ptr(),
                    target.as_mut_ptr().cast::<libc::c_char>(),
                    target.capacity(),
                )
            };
            let Ok(length) = usize::try_from(length) else {
                return Err(io::Error::last_os_error());
            };
            if length < target.capacity() {
                // SAFETY: `readlinkat` initialized the first `length` bytes.
                unsafe { target.set_len(length) };
                return Ok(PathBuf::from(OsString::from_vec(target)));
            }
            // The target may have been cut off: retry with twice the room. `target` is
            // empty, so `reserve` counts from zero and must ask for the whole new size.
            let larger = target.capacity() * 2;
            target.reserve(larger);
        }
    })
}

fn kind_at(dir: RawFd, name: &str) -> Option<EntryKind> {
    with_c_name(name, |c_name| {
        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `c_name` is NUL-terminated and `stat` is writable for one `struct stat`.
        let result = unsafe {
            libc::fstatat(
                dir,
                c_name.as_ptr(),
                stat.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fstatat` succeeded, so it filled `stat`.
        let mode = unsafe { stat.assume_init() }.st_mode;
        Ok(kind_of_mode(mode))
    })
    .ok()
}

fn kind_of_mode(mode: libc::mode_t) -> EntryKind {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => EntryKind::Symlink,
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFREG => EntryKind::File,
        _ => EntryKind::Other,
    }
}

/// Buffer for `getdents64`, aligned like the records the kernel writes into it. Small: the
/// directories read through a [`HostDir`] (`msi_irqs`, a group's `devices`) hold a few
/// entries, and zeroing a bigger one for each was measurable.
#[repr(C, align(8))]
struct DirentBuffer([u8; 2048]);

/// Lists an open directory, sorted by name, without `.` and `..`.
fn list(dir: &OwnedFd) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut buffer = DirentBuffer([0; 2048]);
    loop {
        // SAFETY: `buffer` is writable for its whole length, which is what the kernel is told.
        // `syscall` is variadic and reads every argument as a `long`: pass them as such.
        let filled = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                libc::c_long::from(dir.as_raw_fd()),
                buffer.0.as_mut_ptr(),
                buffer.0.len() as libc::c_ulong,
            )
        };
        let Ok(filled) = usize::try_from(filled) else {
            return Err(io::Error::last_os_error());
        };
        if filled == 0 {
            break;
        }
        parse_dirents(&buffer.0[..filled.min(buffer.0.len())], dir, &mut entries)?;
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Decodes `struct linux_dirent64` records: inode (8 bytes), offset (8), record length (2),
/// type (1), then the NUL-terminated name.
fn parse_dirents(records: &[u8], dir: &OwnedFd, entries: &mut Vec<Entry>) -> io::Result<()> {
    const NAME_OFFSET: usize = 19;
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed directory record");
    let mut rest = records;
    while !rest.is_empty() {
        let length = rest
            .get(16..18)
            .map(|bytes| usize::from(u16::from_ne_bytes([bytes[0], bytes[1]])))
            .filter(|length| (NAME_OFFSET..=rest.len()).contains(length))
            .ok_or_else(malformed)?;
        let (record, next) = rest.split_at(length);
        rest = next;
        let name_bytes = &record[NAME_OFFSET..];
        let name_bytes = &name_bytes[..name_bytes
            .iter()
            .position(|byte| *byte == 0)
            .unwrap_or(name_bytes.len())];
        if name_bytes == b"." || name_bytes == b".." {
            continue;
        }
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        let kind = match record[18] {
            libc::DT_LNK => EntryKind::Symlink,
            libc::DT_DIR => EntryKind::Dir,
            libc::DT_REG => EntryKind::File,
            // File systems that do not fill in the type: ask.
            libc::DT_UNKNOWN => kind_at(dir.as_raw_fd(), &name).unwrap_or(EntryKind::Other),
            _ => EntryKind::Other,
        };
        entries.push(Entry { name, kind });
    }
    Ok(())
}
