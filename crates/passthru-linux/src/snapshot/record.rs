//! Capturing a snapshot: a [`HostFs`] that passes every call through and remembers the
//! answer. Running the survey reader over it records exactly what survey reads, so replaying
//! the snapshot reproduces the survey, errors included, and nothing else of the host
//! (no `resource<N>` or `rom` files, which touch hardware) is ever read.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use passthru_core::hostfs::{Entry as DirEntry, EntryKind, HostFs};

use super::format::{Entry, ListedEntry, Operation, Snapshot};
use crate::inventory::io_error_reason;

/// One recorded answer.
#[derive(Debug, Clone)]
enum Answer {
    Bytes(Vec<u8>),
    Listing(Vec<DirEntry>),
    Link(PathBuf),
    Exists(EntryKind),
    Failed(Operation, io::ErrorKind, String),
}

/// Records everything read through it.
#[derive(Debug)]
pub struct RecordingFs<F> {
    inner: F,
    answers: Mutex<BTreeMap<(PathBuf, u8), Answer>>,
}

impl<F: HostFs> RecordingFs<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            answers: Mutex::new(BTreeMap::new()),
        }
    }

    fn remember(&self, path: &Path, slot: u8, answer: Answer) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert((path.to_path_buf(), slot), answer);
        }
    }

    fn remember_result<T>(
        &self,
        path: &Path,
        op: Operation,
        result: &io::Result<T>,
        answer: impl FnOnce(&T) -> Answer,
    ) {
        let slot = op as u8;
        match result {
            Ok(value) => self.remember(path, slot, answer(value)),
            // Missing paths replay as missing without being recorded.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => self.remember(
                path,
                slot,
                Answer::Failed(op, error.kind(), io_error_reason(error)),
            ),
        }
    }

    /// The snapshot of everything recorded so far, with `/proc/cpuinfo` and the module
    /// indexes cut to what passthru reads from them.
    pub fn snapshot(&self) -> Snapshot {
        let answers = match self.answers.lock() {
            Ok(answers) => answers.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let entries = answers
            .into_iter()
            .map(|((path, _), answer)| {
                let path_text = path.display().to_string();
                match answer {
                    Answer::Bytes(bytes) => {
                        let (bytes, excerpt) = excerpt_of(&path, bytes);
                        Entry::file(&path, &bytes, excerpt)
                    }
                    Answer::Listing(listing) => Entry::Dir {
                        path: path_text,
                        entries: listing
                            .into_iter()
                            .map(|entry| ListedEntry {
                                name: entry.name,
                                kind: entry.kind.into(),
                            })
                            .collect(),
                    },
                    Answer::Link(target) => Entry::Link {
                        path: path_text,
                        target: target.display().to_string(),
                    },
                    Answer::Exists(kind) => Entry::Exists {
                        path: path_text,
                        kind: kind.into(),
                    },
                    Answer::Failed(op, kind, message) => Entry::Error {
                        path: path_text,
                        op,
                        kind: format!("{kind:?}"),
                        message,
                    },
                }
            })
            .collect();
        Snapshot::new(entries)
    }
}

/// Slot for `kind()` answers (after the three operations).
const EXISTS_SLOT: u8 = 3;

impl<F: HostFs> HostFs for RecordingFs<F> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let result = self.inner.read(path);
        self.remember_result(path, Operation::Read, &result, |bytes| {
            Answer::Bytes(bytes.clone())
        });
        result
    }

    fn read_prefix(&self, path: &Path, limit: usize) -> io::Result<Vec<u8>> {
        let result = self.inner.read_prefix(path, limit);
        self.remember_result(path, Operation::Read, &result, |bytes| {
            Answer::Bytes(bytes.clone())
        });
        result
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        let result = self.inner.read_link(path);
        self.remember_result(path, Operation::ReadLink, &result, |target| {
            Answer::Link(target.clone())
        });
        result
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let result = self.inner.read_dir(path);
        self.remember_result(path, Operation::ListDir, &result, |entries| {
            Answer::Listing(entries.clone())
        });
        result
    }

    fn kind(&self, path: &Path) -> Option<EntryKind> {
        let kind = self.inner.kind(path);
        match kind {
            // Links must replay as links (to be followed), so their target is recorded.
            Some(EntryKind::Symlink) => {
                if let Ok(target) = self.inner.read_link(path) {
                    self.remember(path, Operation::ReadLink as u8, Answer::Link(target));
                }
            }
            Some(kind) => self.remember(path, EXISTS_SLOT, Answer::Exists(kind)),
            None => {}
        }
        kind
    }
}

/// Cuts files that passthru reads only in part: the first processor of `/proc/cpuinfo`, and
/// the VFIO/KVM lines of the module indexes. Returns the bytes and whether they were cut.
fn excerpt_of(path: &Path, bytes: Vec<u8>) -> (Vec<u8>, bool) {
    let text = || String::from_utf8_lossy(&bytes).into_owned();
    if path == Path::new("/proc/cpuinfo") {
        let text = text();
        if let Some(end) = text.find("\n\n") {
            return (text.as_bytes()[..end + 1].to_vec(), true);
        }
    } else if path.starts_with("/lib/modules")
        && path
            .file_name()
            .is_some_and(|name| name == "modules.dep" || name == "modules.builtin")
    {
        let kept: String = text()
            .lines()
            .filter(|line| {
                let name = line.split(':').next().unwrap_or_default();
                name.contains("vfio") || name.contains("/kvm")
            })
            .map(|line| format!("{line}\n"))
            .collect();
        return (kept.into_bytes(), true);
    }
    (bytes, false)
}
