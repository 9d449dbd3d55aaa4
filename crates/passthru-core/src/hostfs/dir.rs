//! One directory of a host, read entry by entry ([`HostDir`]), and the by-path fallback every
//! [`HostFs`] gets ([`PathDir`]).

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use super::{Entry, EntryKind, HostFs, child, resolve_lexically};

/// A directory opened once, whose entries are read by name.
///
/// `name` is a path relative to the directory without `.` or `..` components: a file name
/// (`vendor`) or a short path below it (`msi_irqs/40`, `12/devices`).
pub trait HostDir: Send + Sync {
    /// The directory's host-absolute path.
    fn path(&self) -> &Path;

    /// Reads at most `limit` bytes of the file `name` into `bytes` (cleared first), so a
    /// reader of many small files can reuse one buffer.
    fn read_into(&self, name: &str, limit: usize, bytes: &mut Vec<u8>) -> io::Result<()>;

    /// [`read_into`](Self::read_into) for an optional file: `Ok(false)` when `name` does not
    /// exist. A reader that probes for attributes most devices lack calls this, and the
    /// error (with its message naming the path) is only built for a real failure.
    fn read_if_exists(&self, name: &str, limit: usize, bytes: &mut Vec<u8>) -> io::Result<bool> {
        match self.read_into(name, limit, bytes) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Reads the symlink `name` without following it.
    fn read_link(&self, name: &str) -> io::Result<PathBuf>;

    /// Opens the subdirectory `name` as a [`HostDir`] of its own, looked up relative to this
    /// one. `Unsupported` where a directory is not held open (read by path instead: open it
    /// with [`HostFs::open_dir`]).
    fn open_subdir(&self, name: &str) -> io::Result<Box<dyn HostDir>> {
        let _ = name;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Lists the directory `name`, sorted by name.
    fn read_dir(&self, name: &str) -> io::Result<Vec<Entry>>;

    /// [`read_dir`](Self::read_dir) for an optional directory: `Ok(None)` when `name` does
    /// not exist.
    fn read_dir_if_exists(&self, name: &str) -> io::Result<Option<Vec<Entry>>> {
        match self.read_dir(name) {
            Ok(entries) => Ok(Some(entries)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The kind of `name` without following a final symlink; `None` if it does not exist.
    fn kind(&self, name: &str) -> Option<EntryKind>;

    /// Follows the symlink `name` and returns the host-absolute target, resolved lexically
    /// like [`HostFs::resolve_link`].
    fn resolve_link(&self, name: &str) -> io::Result<PathBuf> {
        let target = self.read_link(name)?;
        Ok(self.resolve_target(name, &target))
    }

    /// [`resolve_link`](Self::resolve_link) for an optional link: `Ok(None)` when `name`
    /// does not exist.
    fn resolve_link_if_exists(&self, name: &str) -> io::Result<Option<PathBuf>> {
        match self.resolve_link(name) {
            Ok(target) => Ok(Some(target)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The host-absolute path that the link `name`, pointing to `target`, resolves to.
    fn resolve_target(&self, name: &str, target: &Path) -> PathBuf {
        match name.rsplit_once('/') {
            Some((parent, _)) => resolve_lexically(&child(self.path(), parent), target),
            None => resolve_lexically(self.path(), target),
        }
    }
}

/// A [`HostDir`] that reads each entry by its full path through a [`HostFs`].
#[derive(Debug)]
pub struct PathDir<'a, F: HostFs + ?Sized> {
    fs: &'a F,
    path: PathBuf,
}

impl<'a, F: HostFs + ?Sized> PathDir<'a, F> {
    /// The directory `path` of `fs`.
    pub fn new(fs: &'a F, path: &Path) -> Self {
        Self {
            fs,
            path: path.to_path_buf(),
        }
    }

    fn entry(&self, name: &str) -> PathBuf {
        child(&self.path, name)
    }
}

impl<F: HostFs + ?Sized> HostDir for PathDir<'_, F> {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_into(&self, name: &str, limit: usize, bytes: &mut Vec<u8>) -> io::Result<()> {
        *bytes = self.fs.read_prefix(&self.entry(name), limit)?;
        Ok(())
    }

    fn read_link(&self, name: &str) -> io::Result<PathBuf> {
        self.fs.read_link(&self.entry(name))
    }

    fn read_dir(&self, name: &str) -> io::Result<Vec<Entry>> {
        self.fs.read_dir(&self.entry(name))
    }

    fn kind(&self, name: &str) -> Option<EntryKind> {
        self.fs.kind(&self.entry(name))
    }
}

/// File bytes as trimmed text, as [`HostFs::read_text`] returns it (lossy: sysfs text is
/// ASCII, garbage is reported by the parser that consumes it), without copying valid UTF-8.
pub fn trimmed_text(bytes: &[u8]) -> Cow<'_, str> {
    // `from_utf8` checks plain ASCII faster than the lossy decoder does.
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text.trim()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostfs::{RealFs, normalize};

    /// A device directory with the shapes survey meets: text, binary, links, a
    /// subdirectory, a dangling link.
    fn device_tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let device = root.path().join("sys/devices/pci0000:00/0000:00:01.0");
        fs_err::create_dir_all(device.join("msi_irqs")).unwrap();
        fs_err::create_dir_all(root.path().join("sys/bus/pci/drivers/igb")).unwrap();
        fs_err::write(device.join("vendor"), "0x8086\n").unwrap();
        fs_err::write(device.join("config"), vec![0xab; 4096]).unwrap();
        fs_err::write(device.join("msi_irqs/41"), "msix\n").unwrap();
        fs_err::write(device.join("msi_irqs/40"), "msix\n").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("../../../bus/pci/drivers/igb", device.join("driver"))
                .unwrap();
            std::os::unix::fs::symlink("../../nowhere", device.join("dangling")).unwrap();
        }
        root
    }

    /// What each way of reading answers, with errors as their kind and message.
    fn answers(dir: &dyn HostDir) -> Vec<String> {
        let mut out = Vec::new();
        let mut bytes = Vec::new();
        for name in [
            "vendor",
            "config",
            "msi_irqs/40",
            "missing",
            "msi_irqs",
            "driver",
        ] {
            let read = dir
                .read_into(name, 8192, &mut bytes)
                .map(|()| bytes.clone());
            out.push(format!(
                "read {name}: {:?}",
                read.map_err(|e| e.to_string())
            ));
            let exists = dir
                .read_if_exists(name, 2, &mut bytes)
                .map(|found| (found, bytes.clone()));
            out.push(format!(
                "read_if_exists {name}: {:?}",
                exists.map_err(|e| e.kind())
            ));
        }
        for name in ["driver", "dangling", "vendor", "missing"] {
            out.push(format!(
                "link {name}: {:?}",
                dir.read_link(name).map_err(|e| e.kind())
            ));
            out.push(format!(
                "resolve {name}: {:?}",
                dir.resolve_link(name).map_err(|e| e.kind())
            ));
            let optional = dir.resolve_link_if_exists(name);
            out.push(format!(
                "resolve_if_exists {name}: {:?}",
                optional.map_err(|e| e.kind())
            ));
        }
        for name in ["msi_irqs", "vendor", "missing"] {
            let listed = dir.read_dir(name).map_err(|e| e.to_string());
            out.push(format!("list {name}: {listed:?}"));
            let optional = dir.read_dir_if_exists(name).map_err(|e| e.kind());
            out.push(format!("list_if_exists {name}: {optional:?}"));
        }
        for name in ["vendor", "msi_irqs", "driver", "dangling", "missing"] {
            out.push(format!("kind {name}: {:?}", dir.kind(name)));
        }
        out
    }

    #[test]
    fn an_opened_directory_answers_like_reads_by_path() {
        let root = device_tree();
        let fs = RealFs::new(root.path());
        let path = Path::new("/sys/devices/pci0000:00/0000:00:01.0");
        let opened = fs.open_dir(path);
        let by_path = PathDir::new(&fs, path);
        assert_eq!(opened.path(), path);
        assert_eq!(answers(&*opened), answers(&by_path));
        // A subdirectory opened from the directory answers like one opened by path.
        if let Ok(subdir) = opened.open_subdir("msi_irqs") {
            assert_eq!(subdir.path(), path.join("msi_irqs"));
            let by_path = PathDir::new(&fs, &path.join("msi_irqs"));
            assert_eq!(answers(&*subdir), answers(&by_path));
        }
        assert!(by_path.open_subdir("msi_irqs").is_err());
    }

    #[test]
    fn a_directory_that_cannot_be_opened_reports_on_each_read() {
        let root = device_tree();
        let fs = RealFs::new(root.path());
        let path = Path::new("/sys/devices/nowhere");
        assert_eq!(
            answers(&*fs.open_dir(path)),
            answers(&PathDir::new(&fs, path))
        );
    }

    /// A link target longer than the first `readlinkat` buffer (256 bytes) is read whole.
    #[cfg(unix)]
    #[test]
    fn long_link_targets_are_read_whole() {
        let root = device_tree();
        let fs = RealFs::new(root.path());
        let path = Path::new("/sys/devices/pci0000:00/0000:00:01.0");
        for length in [255, 256, 257, 1000, 3000] {
            let target = format!("../{}", "x".repeat(length - 3));
            let name = format!("long{length}");
            let link = root.path().join(&path.to_str().unwrap()[1..]).join(&name);
            std::os::unix::fs::symlink(&target, link).unwrap();
            let opened = fs.open_dir(path);
            assert_eq!(opened.read_link(&name).unwrap(), PathBuf::from(&target));
            assert_eq!(
                opened.read_link(&name).unwrap(),
                PathDir::new(&fs, path).read_link(&name).unwrap()
            );
        }
    }

    #[test]
    fn errors_name_the_real_path() {
        let root = device_tree();
        let fs = RealFs::new(root.path());
        let dir = fs.open_dir(Path::new("/sys/devices/pci0000:00/0000:00:01.0"));
        let error = dir.read_into("missing", 10, &mut Vec::new()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&root.path().display().to_string()),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .ends_with("/0000:00:01.0/missing`: No such file or directory (os error 2)"),
            "{error}"
        );
    }

    #[test]
    fn trimmed_text_is_lossy_and_trimmed() {
        assert_eq!(trimmed_text(b" 0x8086\n"), "0x8086");
        assert_eq!(trimmed_text(b"a\xffb\n"), "a\u{fffd}b");
        assert!(matches!(trimmed_text(b"msix\n"), Cow::Borrowed("msix")));
    }

    proptest::proptest! {
        #[test]
        fn links_resolve_like_normalize(
            base in "(/[a-z0-9:.]{1,6}){0,5}",
            target in "(\\.\\./|\\./|[a-z0-9:]{1,4}/|/){0,8}[a-z0-9:.]{0,4}",
        ) {
            let base = if base.is_empty() { "/".to_owned() } else { base };
            let expected = normalize(&Path::new(&base).join(&target));
            proptest::prop_assert_eq!(
                crate::hostfs::resolve_lexically(Path::new(&base), Path::new(&target)),
                expected
            );
        }
    }
}
