//! Replaying a snapshot: a [`HostFs`] that answers from the recorded entries, on any OS.
//!
//! Paths are resolved like the kernel would: symbolic links in the middle of a path are
//! followed (lexically, relative to the link's directory), so `/sys/bus/pci/devices/X/vendor`
//! works even though only `/sys/devices/.../X/vendor` was recorded.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use passthru_core::hostfs::{Entry as DirEntry, EntryKind, HostFs, normalize};

use super::format::{Entry, Operation, Snapshot, error_kind_from_name, file_bytes};

/// Most symbolic links followed while resolving one path (Linux's limit).
const MAX_LINK_HOPS: usize = 40;

#[derive(Debug, Default)]
struct Node {
    content: Option<Vec<u8>>,
    listing: Option<Vec<DirEntry>>,
    link: Option<PathBuf>,
    exists: Option<EntryKind>,
    errors: [Option<(io::ErrorKind, String)>; 3],
}

impl Node {
    fn error(&self, op: Operation) -> Option<io::Error> {
        self.errors[op as usize]
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }

    fn own_kind(&self) -> Option<EntryKind> {
        if self.link.is_some() || self.errors[Operation::ReadLink as usize].is_some() {
            Some(EntryKind::Symlink)
        } else if self.listing.is_some() || self.errors[Operation::ListDir as usize].is_some() {
            Some(EntryKind::Dir)
        } else if self.content.is_some() || self.errors[Operation::Read as usize].is_some() {
            Some(EntryKind::File)
        } else {
            self.exists
        }
    }
}

/// A host seen through a snapshot.
#[derive(Debug, Default)]
pub struct SnapshotFs {
    nodes: HashMap<PathBuf, Node>,
}

fn os_error(kind: io::ErrorKind, message: &str) -> io::Error {
    io::Error::new(kind, message.to_owned())
}

fn not_found() -> io::Error {
    os_error(
        io::ErrorKind::NotFound,
        "No such file or directory (os error 2)",
    )
}

impl SnapshotFs {
    /// Indexes a (validated) snapshot.
    pub fn new(snapshot: &Snapshot) -> Self {
        let mut nodes: HashMap<PathBuf, Node> = HashMap::with_capacity(snapshot.entries.len());
        for entry in &snapshot.entries {
            let node = nodes.entry(PathBuf::from(entry.path())).or_default();
            match entry {
                Entry::File { text, base64, .. } => node.content = Some(file_bytes(text, base64)),
                Entry::Dir { entries, .. } => {
                    let mut listing: Vec<DirEntry> = entries
                        .iter()
                        .map(|listed| DirEntry {
                            name: listed.name.clone(),
                            kind: listed.kind.into(),
                        })
                        .collect();
                    listing.sort_by(|a, b| a.name.cmp(&b.name));
                    node.listing = Some(listing);
                }
                Entry::Link { target, .. } => node.link = Some(PathBuf::from(target)),
                Entry::Exists { kind, .. } => node.exists = Some((*kind).into()),
                Entry::Error {
                    op, kind, message, ..
                } => {
                    node.errors[*op as usize] = Some((error_kind_from_name(kind), message.clone()));
                }
            }
        }
        Self { nodes }
    }

    /// The kind of an already resolved path: from its parent's listing when recorded (the
    /// most direct evidence), else from what was recorded about the path itself.
    fn kind_of(&self, path: &Path) -> Option<EntryKind> {
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
            && let Some(listing) = self
                .nodes
                .get(parent)
                .and_then(|node| node.listing.as_ref())
            && let Some(entry) = listing
                .iter()
                .find(|entry| std::ffi::OsStr::new(&entry.name) == name)
        {
            return Some(entry.kind);
        }
        if path == Path::new("/") {
            return Some(EntryKind::Dir);
        }
        self.nodes.get(path).and_then(Node::own_kind)
    }

    /// Follows links in `path` (all of them, or all but the last component).
    fn resolve(&self, path: &Path, follow_last: bool) -> io::Result<PathBuf> {
        let names = |path: &Path| -> VecDeque<OsString> {
            normalize(path)
                .components()
                .filter_map(|component| match component {
                    Component::Normal(name) => Some(name.to_os_string()),
                    _ => None,
                })
                .collect()
        };
        let mut pending = names(path);
        let mut current = PathBuf::from("/");
        let mut hops = 0;
        while let Some(name) = pending.pop_front() {
            let candidate = current.join(&name);
            let is_last = pending.is_empty();
            if (!is_last || follow_last)
                && let Some(target) = self
                    .nodes
                    .get(&candidate)
                    .and_then(|node| node.link.as_ref())
            {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(os_error(
                        io::ErrorKind::Other,
                        "Too many levels of symbolic links (os error 40)",
                    ));
                }
                let mut restarted = names(&current.join(target));
                restarted.extend(pending);
                pending = restarted;
                current = PathBuf::from("/");
                continue;
            }
            current = candidate;
        }
        Ok(current)
    }
}

impl HostFs for SnapshotFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let path = self.resolve(path, true)?;
        let node = self.nodes.get(&path);
        if let Some(content) = node.and_then(|node| node.content.as_ref()) {
            return Ok(content.clone());
        }
        if let Some(error) = node.and_then(|node| node.error(Operation::Read)) {
            return Err(error);
        }
        match self.kind_of(&path) {
            Some(EntryKind::Dir) => Err(os_error(
                io::ErrorKind::IsADirectory,
                "Is a directory (os error 21)",
            )),
            Some(_) => Err(os_error(
                io::ErrorKind::Other,
                "the snapshot records that this file exists but not its content",
            )),
            None => Err(not_found()),
        }
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        let path = self.resolve(path, false)?;
        let node = self.nodes.get(&path);
        if let Some(target) = node.and_then(|node| node.link.as_ref()) {
            return Ok(target.clone());
        }
        if let Some(error) = node.and_then(|node| node.error(Operation::ReadLink)) {
            return Err(error);
        }
        match self.kind_of(&path) {
            Some(_) => Err(os_error(
                io::ErrorKind::InvalidInput,
                "Invalid argument (os error 22)",
            )),
            None => Err(not_found()),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let path = self.resolve(path, true)?;
        let node = self.nodes.get(&path);
        if let Some(listing) = node.and_then(|node| node.listing.as_ref()) {
            return Ok(listing.clone());
        }
        if let Some(error) = node.and_then(|node| node.error(Operation::ListDir)) {
            return Err(error);
        }
        match self.kind_of(&path) {
            Some(EntryKind::Dir) => Ok(Vec::new()),
            Some(_) => Err(os_error(
                io::ErrorKind::NotADirectory,
                "Not a directory (os error 20)",
            )),
            None => Err(not_found()),
        }
    }

    fn kind(&self, path: &Path) -> Option<EntryKind> {
        let path = self.resolve(path, false).ok()?;
        self.kind_of(&path)
    }
}
