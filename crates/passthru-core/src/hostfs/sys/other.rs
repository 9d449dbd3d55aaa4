//! Platforms without the Linux `*at` calls used here: entries are read by path.

use std::path::Path;

use super::super::{HostDir, PathDir, RealFs};

/// Opens `path` of `fs`: every entry is read by its full path.
pub(in crate::hostfs) fn open_dir<'a>(fs: &'a RealFs, path: &Path) -> Box<dyn HostDir + 'a> {
    Box::new(PathDir::new(fs, path))
}
