//! A read-only view of a host's files, rooted anywhere.
//!
//! Inventory readers never touch `std::fs` directly: they ask a [`HostFs`] for host-absolute
//! paths such as `/sys/bus/pci/devices`. [`RealFs`] maps those onto a directory (`/` in
//! production, a temp dir in tests, a mounted image with `--root`); a replayed snapshot
//! implements the same trait from memory. Paths outside the root can never be reached, because
//! symlinks are resolved lexically against the host-absolute path, not by the OS.
//!
//! Readers that read many files of one directory (a PCI function's attributes) open it once
//! with [`HostFs::open_dir`] and read its entries by name through a [`HostDir`]: on Linux a
//! real tree then looks each name up relative to an open directory instead of walking the
//! whole path again for every attribute.

mod dir;
mod sys;

use std::io;
use std::path::{Component, Path, PathBuf};

pub use dir::{HostDir, PathDir, trimmed_text};

/// The kind of a directory entry, as far as inventory readers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else (sockets, devices, ...).
    Other,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name.
    pub name: String,
    /// Kind, without following symlinks.
    pub kind: EntryKind,
}

/// Read access to a host's files by host-absolute path (e.g. `/sys/class/iommu`).
pub trait HostFs: Send + Sync {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Reads at most `limit` bytes of a file (config space, big binary files).
    fn read_prefix(&self, path: &Path, limit: usize) -> io::Result<Vec<u8>> {
        let mut bytes = self.read(path)?;
        bytes.truncate(limit);
        Ok(bytes)
    }

    /// Reads a symlink's target without following it.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;

    /// Lists a directory, sorted by name.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<Entry>>;

    /// The kind of `path` without following a final symlink; `None` if it does not exist.
    fn kind(&self, path: &Path) -> Option<EntryKind>;

    /// Whether `path` exists (a dangling symlink exists).
    fn exists(&self, path: &Path) -> bool {
        self.kind(path).is_some()
    }

    /// Reads a file as trimmed UTF-8 text (lossy: sysfs text is ASCII, garbage is reported by
    /// the parser that consumes it).
    fn read_text(&self, path: &Path) -> io::Result<String> {
        let bytes = self.read(path)?;
        // Reuses the buffer: survey reads tens of thousands of small attributes.
        let mut text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        };
        text.truncate(text.trim_end().len());
        let leading = text.len() - text.trim_start().len();
        text.drain(..leading);
        Ok(text)
    }

    /// Follows `path` if it is a symlink and returns the host-absolute target, resolved
    /// lexically (`..` pops a component). Every directory above the link is assumed not to be
    /// a symlink, which holds for the sysfs paths passthru resolves
    /// (`/sys/bus/pci/devices/*`, `/sys/kernel/iommu_groups/*/devices/*`, `driver`).
    fn resolve_link(&self, path: &Path) -> io::Result<PathBuf> {
        let target = self.read_link(path)?;
        let base = path.parent().unwrap_or(Path::new("/"));
        Ok(resolve_lexically(base, &target))
    }

    /// Opens the directory `path` for reading many of its entries by name. The default reads
    /// each entry by its full path through this `HostFs`, so a wrapper (such as the snapshot
    /// recorder) sees every read; [`RealFs`] opens the directory once. Never fails: a directory
    /// that cannot be opened reports its error on each read, as reads by path would.
    fn open_dir(&self, path: &Path) -> Box<dyn HostDir + '_> {
        Box::new(PathDir::new(self, path))
    }
}

/// `base` joined with a symlink's `target` and normalized, as [`HostFs::resolve_link`] does.
/// Sysfs links are relative (`../../../devices/pci0000:00/...`): for a plain absolute `base`
/// they are applied on the text directly, without splitting `base` into components again.
pub fn resolve_lexically(base: &Path, target: &Path) -> PathBuf {
    let (Some(base_text), Some(target_text)) = (base.to_str(), target.to_str()) else {
        return normalize(&base.join(target));
    };
    if !is_plain_absolute(base_text.as_bytes()) || target_text.starts_with('/') {
        return normalize(&base.join(target));
    }
    let mut out = String::with_capacity(base_text.len() + target_text.len());
    out.push_str(if base_text == "/" { "" } else { base_text });
    for name in target_text.split('/') {
        match name {
            "" | "." => {}
            ".." => out.truncate(out.rfind('/').unwrap_or(0)),
            name => {
                out.push('/');
                out.push_str(name);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    PathBuf::from(out)
}

/// An absolute path with no `.` or `..` components, no doubled `/` and no trailing `/`: the
/// shape readers build, which needs no normalizing.
fn is_plain_absolute(bytes: &[u8]) -> bool {
    match bytes.split_first() {
        Some((b'/', [])) => true,
        Some((b'/', names)) => names
            .split(|byte| *byte == b'/')
            .all(|name| !name.is_empty() && name != b"." && name != b".."),
        _ => false,
    }
}

/// `base/name` for a plain file name, in one allocation. `Path::join` copies `base` and then
/// grows the copy, which showed up as a tenth of survey's time on hosts with thousands of
/// devices, where every attribute read builds two paths.
pub fn child(base: &Path, name: &str) -> PathBuf {
    let base = base.as_os_str();
    let mut path = std::ffi::OsString::with_capacity(base.len() + 1 + name.len());
    path.push(base);
    if !base.as_encoded_bytes().ends_with(b"/") {
        path.push("/");
    }
    path.push(name);
    PathBuf::from(path)
}

/// Lexically normalizes a host-absolute path: removes `.`, applies `..`, never rises above `/`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// The files of a real directory tree, seen as a host rooted at `root`.
#[derive(Debug, Clone)]
pub struct RealFs {
    root: PathBuf,
}

impl RealFs {
    /// A host rooted at `root` (`/` for the machine itself).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory this host is rooted at.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a host-absolute path onto the real file system.
    pub fn real_path(&self, path: &Path) -> PathBuf {
        // Fast path for the paths readers build (absolute, no `.`/`..`, no doubled `/`):
        // survey maps tens of thousands of them on a big host.
        let bytes = path.as_os_str().as_encoded_bytes();
        if bytes.len() > 1
            && is_plain_absolute(bytes)
            && let Ok(relative) = std::str::from_utf8(&bytes[1..])
        {
            return child(&self.root, relative);
        }
        let relative = normalize(path);
        let relative = relative.strip_prefix("/").unwrap_or(&relative);
        if relative.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(relative)
        }
    }
}

/// Reads up to `limit` bytes of a file with plain `read` calls. `fs::read` first asks for the
/// file's size (`statx`, `lseek`), which sysfs answers with a meaningless 4096; on a host with
/// thousands of PCI functions those extra calls are a third of survey's system time.
fn read_file(path: &Path, limit: usize, whole_in_one_read: bool) -> io::Result<Vec<u8>> {
    // `fs_err::File` copies the path into every file it opens; on this hot path the path is
    // only needed for the error message, which this adds itself (same wording as fs-err).
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|error| with_path("failed to open file", path, error))?;
    let mut bytes = Vec::new();
    read_open_file(&mut file, limit, whole_in_one_read, &mut bytes)
        .map_err(|error| with_path("failed to read from file", path, error))?;
    Ok(bytes)
}

/// Reads up to `limit` bytes of an open file into `bytes` (cleared first).
///
/// `whole_in_one_read`: sysfs attributes hand over their whole value in the first `read`
/// (one `show()` call, at most a page; binary attributes such as `config` fill the buffer up to
/// their size), so a short read is the end and the extra `read` that would return 0 is skipped.
/// procfs files do not promise that and are read to the end.
fn read_open_file(
    file: &mut std::fs::File,
    limit: usize,
    whole_in_one_read: bool,
    bytes: &mut Vec<u8>,
) -> io::Result<()> {
    use std::io::Read;
    bytes.clear();
    let mut chunk = [0u8; 4096];
    while bytes.len() < limit {
        let wanted = chunk.len().min(limit - bytes.len());
        match file.read(&mut chunk[..wanted]) {
            Ok(0) => break,
            Ok(count) => {
                bytes.extend_from_slice(&chunk[..count]);
                if whole_in_one_read && count < wanted {
                    break;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// `error` with fs-err's wording (`failed to open file `PATH`: REASON`), so every I/O error
/// names its path whichever way the file was reached.
fn with_path(what: &str, path: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("{what} `{}`: {error}", path.display()),
    )
}

impl HostFs for RealFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_file(&self.real_path(path), usize::MAX, path.starts_with("/sys"))
    }

    fn read_prefix(&self, path: &Path, limit: usize) -> io::Result<Vec<u8>> {
        read_file(&self.real_path(path), limit, path.starts_with("/sys"))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs_err::read_link(self.real_path(path))
    }

    fn open_dir(&self, path: &Path) -> Box<dyn HostDir + '_> {
        sys::open_dir(self, path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for entry in fs_err::read_dir(self.real_path(path))? {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(kind) if kind.is_symlink() => EntryKind::Symlink,
                Ok(kind) if kind.is_dir() => EntryKind::Dir,
                Ok(kind) if kind.is_file() => EntryKind::File,
                _ => EntryKind::Other,
            };
            entries.push(Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn kind(&self, path: &Path) -> Option<EntryKind> {
        let metadata = std::fs::symlink_metadata(self.real_path(path)).ok()?;
        let kind = metadata.file_type();
        Some(if kind.is_symlink() {
            EntryKind::Symlink
        } else if kind.is_dir() {
            EntryKind::Dir
        } else if kind.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_never_escapes_the_root() {
        assert_eq!(normalize(Path::new("/a/b/../../../c")), PathBuf::from("/c"));
        assert_eq!(normalize(Path::new("/a/./b/")), PathBuf::from("/a/b"));
    }

    #[test]
    fn resolves_sysfs_style_relative_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let devices = dir.path().join("sys/devices/pci0000:00/0000:00:01.0");
        fs_err::create_dir_all(&devices).unwrap();
        let bus = dir.path().join("sys/bus/pci/devices");
        fs_err::create_dir_all(&bus).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            "../../../devices/pci0000:00/0000:00:01.0",
            bus.join("0000:00:01.0"),
        )
        .unwrap();
        let host = RealFs::new(dir.path());
        #[cfg(unix)]
        {
            let link = Path::new("/sys/bus/pci/devices/0000:00:01.0");
            assert_eq!(host.kind(link), Some(EntryKind::Symlink));
            assert_eq!(
                host.resolve_link(link).unwrap(),
                PathBuf::from("/sys/devices/pci0000:00/0000:00:01.0")
            );
        }
        let listed = host.read_dir(Path::new("/sys/bus/pci/devices")).unwrap();
        assert_eq!(listed.len(), usize::from(cfg!(unix)));
        assert!(host.read(Path::new("/sys/nope")).is_err());
    }
}
