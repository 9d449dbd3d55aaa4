//! Other platforms have no Unix permission bits and cannot open directories; boot files are
//! only ever changed on Linux, so these keep the crate building elsewhere.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

pub(super) fn mode_of(_metadata: &Metadata) -> u32 {
    0o644
}

pub(super) fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
