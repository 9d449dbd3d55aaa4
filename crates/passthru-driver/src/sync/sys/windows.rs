//! Read-only handling on Windows: the file attribute.

use std::fs::Permissions;
use std::io;
use std::path::Path;

/// Whether the read-only attribute is set.
pub(crate) fn is_read_only(permissions: &Permissions) -> bool {
    permissions.readonly()
}

/// The permissions with the read-only attribute set.
pub(crate) fn read_only_version(permissions: &Permissions) -> Permissions {
    let mut permissions = permissions.clone();
    permissions.set_readonly(true);
    permissions
}

/// Clears the read-only attribute if set; returns the permissions to restore.
pub(crate) fn make_writable(path: &Path) -> io::Result<Option<Permissions>> {
    let before = fs_err::metadata(path)?.permissions();
    if !before.readonly() {
        return Ok(None);
    }
    let mut writable = before.clone();
    // On Windows this clears FILE_ATTRIBUTE_READONLY only.
    #[allow(clippy::permissions_set_readonly_false)]
    writable.set_readonly(false);
    fs_err::set_permissions(path, writable)?;
    Ok(Some(before))
}

/// The key under which a relative path is compared: NTFS names are case-insensitive.
pub(crate) fn path_key(relative: &str) -> String {
    relative.to_lowercase()
}

/// Flushes a directory's entries to disk: nothing to do on Windows. NTFS logs renames in its
/// own journal, a directory can only be opened for flushing with backup semantics and write
/// access, and `driver sync` dismounts the virtual disk afterwards, which flushes the volume.
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
