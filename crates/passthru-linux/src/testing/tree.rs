//! An in-memory file tree that implements [`HostFs`]: fixture trees for the probes and the
//! visible state of the fake kernel.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use passthru_core::hostfs::{Entry, EntryKind, HostFs, normalize};

/// One node of a [`MemTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file (sysfs attribute, `/proc` file).
    File(Vec<u8>),
    /// A symbolic link with its target as written (usually relative, as in sysfs).
    Symlink(PathBuf),
    /// A character device (`/dev/vfio/12`).
    Device,
    /// A directory this reader may not list (another user's `/proc/<pid>/fd` for non-root).
    Denied,
}

/// Host-absolute paths mapped to nodes. Parents are created as directories on insertion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemTree {
    nodes: BTreeMap<PathBuf, Node>,
}

const MAX_LINKS: usize = 40;

impl MemTree {
    /// An empty tree (only `/`).
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(PathBuf::from("/"), Node::Dir);
        Self { nodes }
    }

    fn insert(&mut self, path: impl AsRef<Path>, node: Node) -> &mut Self {
        let path = normalize(path.as_ref());
        let mut parent = path.parent();
        while let Some(dir) = parent {
            self.nodes.entry(dir.to_path_buf()).or_insert(Node::Dir);
            parent = dir.parent();
        }
        self.nodes.insert(path, node);
        self
    }

    /// Adds (or replaces) a file.
    pub fn file(&mut self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> &mut Self {
        self.insert(path, Node::File(contents.as_ref().to_vec()))
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: impl AsRef<Path>) -> &mut Self {
        let path = normalize(path.as_ref());
        if !matches!(self.nodes.get(&path), Some(Node::Dir)) {
            self.insert(path, Node::Dir);
        }
        self
    }

    /// Adds a symlink whose target is `target` (as written, usually relative).
    pub fn symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) -> &mut Self {
        self.insert(path, Node::Symlink(target.as_ref().to_path_buf()))
    }

    /// Adds a character device node.
    pub fn device(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.insert(path, Node::Device)
    }

    /// Adds a directory that exists but cannot be listed or read (permission denied).
    pub fn denied(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.insert(path, Node::Denied)
    }

    /// Removes a node and everything below it.
    pub fn remove(&mut self, path: impl AsRef<Path>) -> &mut Self {
        let path = normalize(path.as_ref());
        let below: Vec<PathBuf> = self
            .nodes
            .range(path.clone()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(&path))
            .cloned()
            .collect();
        for key in below {
            self.nodes.remove(&key);
        }
        self
    }

    /// The node at `path` (not following a final symlink).
    pub fn node(&self, path: impl AsRef<Path>) -> Option<&Node> {
        self.resolve(path.as_ref(), false)
            .ok()
            .and_then(|real| self.nodes.get(&real))
    }

    /// Every node, sorted by path.
    pub fn nodes(&self) -> impl Iterator<Item = (&Path, &Node)> {
        self.nodes.iter().map(|(path, node)| (path.as_path(), node))
    }

    /// Resolves symlinks in every directory component of `path`, and in the final component
    /// when `follow_last` is set.
    pub fn resolve(&self, path: &Path, follow_last: bool) -> io::Result<PathBuf> {
        let mut pending: Vec<PathBuf> = components_reversed(&normalize(path));
        let mut resolved = PathBuf::from("/");
        let mut links = 0;
        while let Some(name) = pending.pop() {
            let candidate = resolved.join(&name);
            let is_last = pending.is_empty();
            match self.nodes.get(&candidate) {
                Some(Node::Symlink(target)) if !is_last || follow_last => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(io::Error::other(format!(
                            "too many levels of symbolic links: {}",
                            path.display()
                        )));
                    }
                    let joined = normalize(&resolved.join(target));
                    pending.extend(components_reversed(&joined));
                    resolved = PathBuf::from("/");
                }
                Some(_) => resolved = candidate,
                None if is_last => resolved = candidate,
                None => return Err(not_found(path)),
            }
        }
        Ok(resolved)
    }

    /// Lists the paths where `self` and `other` differ, for readable test failures.
    pub fn diff(&self, other: &Self) -> Vec<String> {
        let mut differences = Vec::new();
        for (path, node) in &self.nodes {
            match other.nodes.get(path) {
                None => differences.push(format!("- {} ({})", path.display(), describe(node))),
                Some(theirs) if theirs != node => differences.push(format!(
                    "~ {}: {} -> {}",
                    path.display(),
                    describe(node),
                    describe(theirs)
                )),
                Some(_) => {}
            }
        }
        for (path, node) in &other.nodes {
            if !self.nodes.contains_key(path) {
                differences.push(format!("+ {} ({})", path.display(), describe(node)));
            }
        }
        differences
    }

    /// Writes the tree under a real directory (device nodes become empty files), so that a
    /// `passthru --root DIR` process can read it.
    #[cfg(unix)]
    pub fn materialize(&self, root: &Path) -> io::Result<()> {
        for (path, node) in &self.nodes {
            let relative = path.strip_prefix("/").unwrap_or(path);
            let real = root.join(relative);
            match node {
                Node::Dir | Node::Denied => fs_err::create_dir_all(&real)?,
                Node::File(bytes) => fs_err::write(&real, bytes)?,
                Node::Device => fs_err::write(&real, b"")?,
                Node::Symlink(target) => fs_err::os::unix::fs::symlink(target, &real)?,
            }
        }
        Ok(())
    }
}

fn components_reversed(path: &Path) -> Vec<PathBuf> {
    path.components()
        .rev()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(PathBuf::from(name)),
            _ => None,
        })
        .collect()
}

fn describe(node: &Node) -> String {
    match node {
        Node::Dir => "dir".into(),
        Node::File(bytes) => format!("file {:?}", String::from_utf8_lossy(bytes)),
        Node::Symlink(target) => format!("link -> {}", target.display()),
        Node::Device => "device".into(),
        Node::Denied => "denied".into(),
    }
}

fn denied(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("`{}`: permission denied", path.display()),
    )
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("`{}` does not exist", path.display()),
    )
}

impl HostFs for MemTree {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let real = self.resolve(path, true)?;
        match self.nodes.get(&real) {
            Some(Node::File(bytes)) => Ok(bytes.clone()),
            Some(Node::Device) => Ok(Vec::new()),
            Some(Node::Dir) => Err(io::Error::other(format!(
                "`{}` is a directory",
                path.display()
            ))),
            Some(Node::Denied) => Err(denied(path)),
            Some(Node::Symlink(_)) | None => Err(not_found(path)),
        }
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        let real = self.resolve(path, false)?;
        match self.nodes.get(&real) {
            Some(Node::Symlink(target)) => Ok(target.clone()),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a symbolic link", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<Entry>> {
        let real = self.resolve(path, true)?;
        match self.nodes.get(&real) {
            Some(Node::Dir) => {}
            Some(Node::Denied) => return Err(denied(path)),
            _ => return Err(not_found(path)),
        }
        let entries = self
            .nodes
            .range(real.clone()..)
            .skip(1)
            .take_while(|(key, _)| key.starts_with(&real))
            .filter(|(key, _)| key.parent() == Some(real.as_path()))
            .map(|(key, node)| Entry {
                name: key
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                kind: match node {
                    Node::Dir | Node::Denied => EntryKind::Dir,
                    Node::File(_) => EntryKind::File,
                    Node::Symlink(_) => EntryKind::Symlink,
                    Node::Device => EntryKind::Other,
                },
            })
            .collect();
        Ok(entries)
    }

    fn kind(&self, path: &Path) -> Option<EntryKind> {
        match self.node(path)? {
            Node::Dir | Node::Denied => Some(EntryKind::Dir),
            Node::File(_) => Some(EntryKind::File),
            Node::Symlink(_) => Some(EntryKind::Symlink),
            Node::Device => Some(EntryKind::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_through_directory_symlinks_like_sysfs() {
        let mut tree = MemTree::new();
        tree.file("/sys/devices/pci0000:00/0000:00:02.0/vendor", "0x1234\n");
        tree.symlink(
            "/sys/bus/pci/devices/0000:00:02.0",
            "../../../devices/pci0000:00/0000:00:02.0",
        );
        let vendor = tree
            .read_text(Path::new("/sys/bus/pci/devices/0000:00:02.0/vendor"))
            .unwrap();
        assert_eq!(vendor, "0x1234");
        assert_eq!(
            tree.kind(Path::new("/sys/bus/pci/devices/0000:00:02.0")),
            Some(EntryKind::Symlink)
        );
        let listed = tree
            .read_dir(Path::new("/sys/bus/pci/devices/0000:00:02.0"))
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "vendor");
    }

    #[test]
    fn read_dir_lists_direct_children_only_and_not_similar_prefixes() {
        let mut tree = MemTree::new();
        tree.file("/a/b/c", "x").file("/a/bc", "y").dir("/a/d");
        let names: Vec<String> = tree
            .read_dir(Path::new("/a"))
            .unwrap()
            .into_iter()
            .map(|entry| entry.name)
            .collect();
        assert_eq!(names, ["b", "bc", "d"]);
        tree.remove("/a/b");
        assert!(!tree.exists(Path::new("/a/b/c")));
        assert!(tree.exists(Path::new("/a/bc")));
    }

    #[test]
    fn dangling_links_exist_but_cannot_be_read() {
        let mut tree = MemTree::new();
        tree.symlink("/sys/x/driver", "../nowhere");
        assert!(tree.exists(Path::new("/sys/x/driver")));
        assert!(tree.read(Path::new("/sys/x/driver")).is_err());
        assert_eq!(
            tree.read_link(Path::new("/sys/x/driver")).unwrap(),
            PathBuf::from("../nowhere")
        );
    }

    #[cfg(unix)]
    #[test]
    fn materialized_tree_reads_the_same_through_real_fs() {
        let mut tree = MemTree::new();
        tree.file("/sys/devices/d/vendor", "0x8086\n")
            .symlink("/sys/bus/pci/devices/d", "../../../devices/d")
            .device("/dev/vfio/vfio");
        let dir = tempfile::tempdir().unwrap();
        tree.materialize(dir.path()).unwrap();
        let real = passthru_core::hostfs::RealFs::new(dir.path());
        assert_eq!(
            real.read_text(Path::new("/sys/bus/pci/devices/d/vendor"))
                .unwrap(),
            "0x8086"
        );
        assert!(real.exists(Path::new("/dev/vfio/vfio")));
    }
}
