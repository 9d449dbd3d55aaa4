//! Permission bits and directory sync on Unix.

use std::fs::{File, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub(super) fn mode_of(metadata: &Metadata) -> u32 {
    metadata.mode() & 0o7777
}

pub(super) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

/// Flushes a directory so that a rename or removal inside it survives a power loss.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}
