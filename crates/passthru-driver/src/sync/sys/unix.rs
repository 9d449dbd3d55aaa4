//! Read-only handling on Unix: the write permission bits.

use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Whether nobody may write the file (what Windows calls the read-only attribute).
pub(crate) fn is_read_only(permissions: &Permissions) -> bool {
    permissions.mode() & 0o222 == 0
}

/// The permissions with every write bit removed.
pub(crate) fn read_only_version(permissions: &Permissions) -> Permissions {
    Permissions::from_mode(permissions.mode() & !0o222)
}

/// Gives the owner write access if nobody has it; returns the permissions to restore.
pub(crate) fn make_writable(path: &Path) -> io::Result<Option<Permissions>> {
    let before = fs_err::metadata(path)?.permissions();
    if !is_read_only(&before) {
        return Ok(None);
    }
    fs_err::set_permissions(path, Permissions::from_mode(before.mode() | 0o200))?;
    Ok(Some(before))
}

/// The key under which a relative path is compared: Unix names are case-sensitive.
pub(crate) fn path_key(relative: &str) -> String {
    relative.to_owned()
}

/// Flushes a directory's entries (new names) to disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}
