//! Durable, atomic file changes: a new file is written next to the old one, flushed to disk,
//! and renamed over it, and the directory is flushed too, so a crash or power loss leaves
//! either the old bytes or the new ones, never a mix.

#[cfg(unix)]
#[path = "unix.rs"]
mod sys;
#[cfg(not(unix))]
#[path = "other.rs"]
mod sys;

use std::io::{self, Write};
use std::path::Path;

/// The bytes and permission bits of a file, or `None` when it does not exist.
pub fn read_state(path: &Path) -> io::Result<Option<(Vec<u8>, u32)>> {
    match fs_err::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => {
            let bytes = fs_err::read(path)?;
            Ok(Some((bytes, sys::mode_of(&metadata))))
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` is not a regular file (a directory or a link); passthru only replaces plain files",
                path.display()
            ),
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Replaces (or creates) `path` with `bytes` and permission bits `mode`, atomically.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.passthru-new"));
    let result = (|| {
        let mut file = fs_err::File::create(&temporary)?;
        file.write_all(bytes)?;
        sys::set_mode(file.file(), mode)?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&temporary, path)?;
        sys::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&temporary);
    }
    result
}

/// Removes `path` if it exists, durably.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs_err::remove_file(path) {
        Ok(()) => sys::sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_remove_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grub");
        assert_eq!(read_state(&path).unwrap(), None);
        write(&path, b"one\n", 0o644).unwrap();
        write(&path, b"two\n", 0o755).unwrap();
        let (bytes, mode) = read_state(&path).unwrap().unwrap();
        assert_eq!(bytes, b"two\n");
        if cfg!(unix) {
            assert_eq!(mode, 0o755);
        }
        let names: Vec<_> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["grub"]);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(read_state(&path).unwrap(), None);
    }

    #[test]
    fn a_directory_is_not_mistaken_for_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_state(dir.path()).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
