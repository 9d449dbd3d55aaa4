//! Writing a fake host to a real directory (Unix: needs symbolic links).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::FakeNode;

/// Writes every node under `root`.
pub(super) fn write(nodes: &BTreeMap<PathBuf, FakeNode>, root: &Path) -> io::Result<()> {
    let real = |path: &Path| root.join(path.strip_prefix("/").unwrap_or(path));
    for (path, node) in nodes {
        let target = real(path);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        match node {
            FakeNode::File(bytes) => fs_err::write(&target, bytes)?,
            FakeNode::Device => fs_err::write(&target, b"")?,
            // Root reads any file whatever its mode, so an unreadable file is a directory:
            // reading it fails ("Is a directory") for everyone.
            FakeNode::Dir | FakeNode::Unreadable { .. } => fs_err::create_dir_all(&target)?,
            FakeNode::Link(link_target) => fs_err::os::unix::fs::symlink(link_target, &target)?,
        }
    }
    Ok(())
}
