//! The snapshot file: versioned JSON (optionally gzip-compressed), documented in
//! `docs/snapshot-format.md`.

use std::io::{self, Read, Write};
use std::path::Path;

use base64::Engine as _;
use passthru_core::hostfs::{EntryKind, normalize};
use serde::{Deserialize, Serialize};

/// The value of the `format` field.
pub const FORMAT: &str = "passthru-snapshot";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Largest decompressed snapshot accepted (a 4,000-device SR-IOV host is about 60 MiB).
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// A whole snapshot: what a host's files looked like to passthru.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this build.
    pub version: u32,
    /// The program that wrote it (`passthru 0.1.0`).
    pub created_by: String,
    /// Free text: where the snapshot came from (hand-built fixtures say so here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// One entry per thing read, sorted by path.
    pub entries: Vec<Entry>,
}

/// One recorded path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Entry {
    /// A file's bytes: `text` when they are UTF-8 without NUL, else `base64`.
    File {
        /// Host-absolute path.
        path: String,
        /// Content as text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Content as standard base64.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base64: Option<String>,
        /// The content was cut to the part passthru reads (`/proc/cpuinfo`'s first processor,
        /// the VFIO/KVM lines of `modules.dep`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        excerpt: bool,
    },
    /// A directory's listing.
    Dir {
        /// Host-absolute path.
        path: String,
        /// The entries, sorted by name.
        entries: Vec<ListedEntry>,
    },
    /// A symbolic link.
    Link {
        /// Host-absolute path.
        path: String,
        /// The target, exactly as stored in the link (usually relative).
        target: String,
    },
    /// Something whose existence and kind were checked, but not its content (`/dev/kvm`,
    /// `/sys/module/vfio_pci`).
    Exists {
        /// Host-absolute path.
        path: String,
        /// What it is.
        kind: ListedKind,
    },
    /// Reading failed; replay fails the same way.
    Error {
        /// Host-absolute path.
        path: String,
        /// What failed.
        op: Operation,
        /// The I/O error kind (`PermissionDenied`, as Rust names it).
        kind: String,
        /// The operating system's message (`Permission denied (os error 13)`).
        message: String,
    },
}

impl Entry {
    /// The entry's path.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. }
            | Self::Dir { path, .. }
            | Self::Link { path, .. }
            | Self::Exists { path, .. }
            | Self::Error { path, .. } => path,
        }
    }

    /// A file entry from bytes, choosing text or base64.
    pub fn file(path: &Path, bytes: &[u8], excerpt: bool) -> Self {
        let (text, base64) = match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => (Some(text.to_owned()), None),
            _ => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        Self::File {
            path: path.display().to_string(),
            text,
            base64,
            excerpt,
        }
    }

    fn sort_key(&self) -> (&str, u8) {
        let rank = match self {
            Self::File { .. } => 0,
            Self::Dir { .. } => 1,
            Self::Link { .. } => 2,
            Self::Exists { .. } => 3,
            Self::Error { op, .. } => 4 + *op as u8,
        };
        (self.path(), rank)
    }
}

/// The operation an [`Entry::Error`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Reading a file.
    Read,
    /// Reading a link.
    ReadLink,
    /// Listing a directory.
    ListDir,
}

/// One name in a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedEntry {
    /// File name.
    pub name: String,
    /// What it is.
    pub kind: ListedKind,
}

/// Kinds in a directory listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListedKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Link,
    /// Anything else.
    Special,
}

impl From<EntryKind> for ListedKind {
    fn from(kind: EntryKind) -> Self {
        match kind {
            EntryKind::File => Self::File,
            EntryKind::Dir => Self::Dir,
            EntryKind::Symlink => Self::Link,
            EntryKind::Other => Self::Special,
        }
    }
}

impl From<ListedKind> for EntryKind {
    fn from(kind: ListedKind) -> Self {
        match kind {
            ListedKind::File => Self::File,
            ListedKind::Dir => Self::Dir,
            ListedKind::Link => Self::Symlink,
            ListedKind::Special => Self::Other,
        }
    }
}

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be read or written.
    #[error("could not access the snapshot file: {0}")]
    Io(#[from] io::Error),
    /// The gzip stream is damaged.
    #[error(
        "the snapshot is gzip-compressed but the compressed data is damaged or truncated ({0}); copy the file again"
    )]
    Gzip(io::Error),
    /// The JSON ends early.
    #[error(
        "the snapshot ends early at line {line}, column {column}: the file is truncated; copy it again or capture a new one with `passthru snapshot`"
    )]
    Truncated {
        /// Line where the data ended.
        line: usize,
        /// Column where the data ended.
        column: usize,
    },
    /// The JSON is malformed or does not have the snapshot's shape.
    #[error(
        "the snapshot is not valid at line {line}, column {column}: {detail}; it may be damaged or not a passthru snapshot"
    )]
    Malformed {
        /// Line of the problem.
        line: usize,
        /// Column of the problem.
        column: usize,
        /// What serde_json said.
        detail: String,
    },
    /// The `format` field is wrong.
    #[error(
        "this is not a passthru snapshot (its format field is `{0}`, expected `passthru-snapshot`)"
    )]
    WrongFormat(String),
    /// A newer (or unknown) format version.
    #[error(
        "the snapshot has format version {found}, but this passthru reads version {VERSION}; use the passthru version that wrote it, or a newer one"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// An entry breaks the format's rules.
    #[error("snapshot entry {index} (`{path}`) is invalid: {problem}")]
    InvalidEntry {
        /// 0-based index in `entries`.
        index: usize,
        /// Its path.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

fn json_error(error: serde_json::Error) -> SnapshotError {
    if error.classify() == serde_json::error::Category::Eof {
        SnapshotError::Truncated {
            line: error.line(),
            column: error.column(),
        }
    } else {
        SnapshotError::Malformed {
            line: error.line(),
            column: error.column(),
            detail: error.to_string(),
        }
    }
}

/// Just the fields that say which format a file has, read before the entries so that a
/// newer version is reported as such rather than as a puzzling entry error.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

impl Snapshot {
    /// An empty snapshot written by this build.
    pub fn new(entries: Vec<Entry>) -> Self {
        let mut snapshot = Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_by: format!("passthru {}", env!("CARGO_PKG_VERSION")),
            description: None,
            entries,
        };
        snapshot.sort();
        snapshot
    }

    /// Sorts the entries by path (and kind), the order files are written in.
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }

    /// Parses and checks a snapshot (plain or gzip-compressed JSON).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let decompressed;
        let json = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .take(MAX_DECOMPRESSED)
                .read_to_end(&mut out)
                .map_err(SnapshotError::Gzip)?;
            decompressed = out;
            &decompressed[..]
        } else {
            bytes
        };
        let header: Header = serde_json::from_slice(json).map_err(json_error)?;
        if header.format != FORMAT {
            return Err(SnapshotError::WrongFormat(header.format));
        }
        if header.version != VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: header.version,
            });
        }
        let snapshot: Self = serde_json::from_slice(json).map_err(json_error)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    /// Reads a snapshot file.
    pub fn load(path: &Path) -> Result<Self, SnapshotError> {
        Self::from_bytes(&fs_err::read(path)?)
    }

    /// The JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Writes the snapshot to `path`, gzip-compressed when the name ends in `.gz`.
    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let bytes = if path.extension().is_some_and(|extension| extension == "gz") {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&self.to_json())?;
            encoder.finish()?
        } else {
            self.to_json()
        };
        fs_err::write(path, bytes)?;
        Ok(())
    }

    fn validate(&self) -> Result<(), SnapshotError> {
        let mut seen = std::collections::HashSet::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let invalid = |problem: String| SnapshotError::InvalidEntry {
                index,
                path: entry.path().chars().take(200).collect(),
                problem,
            };
            let path = entry.path();
            if !path.starts_with('/') || normalize(Path::new(path)) != Path::new(path) {
                return Err(invalid(
                    "the path must be absolute and normalized (no `.`, `..` or trailing `/`)"
                        .to_owned(),
                ));
            }
            if !seen.insert(entry.sort_key()) {
                return Err(invalid("the same path and kind appear twice".to_owned()));
            }
            match entry {
                Entry::File { text, base64, .. } => match (text, base64) {
                    (Some(_), None) => {}
                    (None, Some(encoded)) => {
                        base64::engine::general_purpose::STANDARD
                            .decode(encoded)
                            .map_err(|error| {
                                invalid(format!("its base64 content is damaged: {error}"))
                            })?;
                    }
                    _ => {
                        return Err(invalid(
                            "a file needs exactly one of `text` and `base64`".to_owned(),
                        ));
                    }
                },
                Entry::Dir { entries, .. } => {
                    for listed in entries {
                        if listed.name.is_empty()
                            || listed.name.contains('/')
                            || listed.name == "."
                            || listed.name == ".."
                        {
                            return Err(invalid(format!(
                                "`{}` is not a file name",
                                listed.name.escape_debug()
                            )));
                        }
                    }
                }
                Entry::Link { target, .. } if target.is_empty() => {
                    return Err(invalid("the link target is empty".to_owned()));
                }
                Entry::Link { .. } | Entry::Exists { .. } | Entry::Error { .. } => {}
            }
        }
        Ok(())
    }
}

/// The content of a file entry (validated snapshots always decode).
pub(crate) fn file_bytes(text: &Option<String>, base64: &Option<String>) -> Vec<u8> {
    match (text, base64) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    }
}

/// An I/O error kind by its Rust name, for replaying recorded errors.
pub(crate) fn error_kind_from_name(name: &str) -> io::ErrorKind {
    use io::ErrorKind::*;
    [
        NotFound,
        PermissionDenied,
        InvalidInput,
        InvalidData,
        TimedOut,
        Interrupted,
        UnexpectedEof,
        Unsupported,
        WouldBlock,
        IsADirectory,
        NotADirectory,
        ResourceBusy,
        OutOfMemory,
    ]
    .into_iter()
    .find(|kind| format!("{kind:?}") == name)
    .unwrap_or(Other)
}
