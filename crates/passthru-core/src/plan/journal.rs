//! The journal: an append-only, fsynced record of every operation and step.
//!
//! Layout of the journal directory (`/var/lib/passthru` by default on Linux):
//!
//! - `journal.lock`: held with an exclusive lock for as long as a passthru process uses the
//!   journal, so two processes never interleave;
//! - `journal.jsonl`: one JSON record per line (see [`Record`]);
//! - `blobs/<sha256>`: file contents that steps need for undo (originals of replaced files).
//!
//! A step's *intent* record is written and fsynced **before** the step acts, so after a crash
//! the journal always names every step that may have changed the host. A torn last line (power
//! loss during a write) is ignored when reading.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::StepView;

/// How long [`Journal::open`] waits for a lock held by someone else.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(1500);

/// Version of the record format.
pub const RECORD_VERSION: u32 = 1;

/// The program and version that writes new operations (kept in each `begin` record, so that a
/// later passthru that cannot decode an operation's steps can say which version wrote them).
pub const WRITER: &str = concat!("passthru ", env!("CARGO_PKG_VERSION"));

/// Errors of the journal itself.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process holds the lock.
    #[error(
        "another passthru process is using the journal in `{}`; wait for it to finish",
        .0.display()
    )]
    Busy(PathBuf),
    /// Reading or writing the journal failed.
    #[error("journal I/O failed")]
    Io(#[from] io::Error),
    /// A record could not be encoded or decoded.
    #[error("journal record in `{path}` line {line} is unreadable: {message}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What the decoder said.
        message: String,
    },
    /// No operation with that id.
    #[error("the journal has no operation `{0}`")]
    UnknownOperation(String),
    /// A blob is missing or does not match its hash.
    #[error("journal blob `{0}` is missing or damaged")]
    BadBlob(String),
}

/// What happened, as one journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// An operation begins; carries every step (with its before-state) so that undo needs
    /// nothing else.
    Begin {
        /// Step type tag ([`super::Step::KIND`]).
        kind: String,
        /// What the user asked for.
        operation: String,
        /// The steps, serialized by their platform type.
        steps: Vec<serde_json::Value>,
        /// How each step presents itself (kept for `passthru journal`).
        views: Vec<StepView>,
        /// Which passthru wrote the operation ([`WRITER`]); absent in journals of early builds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        writer: Option<String>,
    },
    /// Step `index` is about to act (fsynced before it does).
    Intent {
        /// Step index.
        index: usize,
    },
    /// Step `index` acted and verified.
    Done {
        /// Step index.
        index: usize,
    },
    /// Step `index` failed.
    Failed {
        /// Step index.
        index: usize,
        /// The error message.
        error: String,
    },
    /// Undo of this operation begins.
    UndoBegin {
        /// `rollback` (automatic, after a failure) or `undo` (asked for).
        reason: UndoReason,
    },
    /// Step `index` was undone.
    Undone {
        /// Step index.
        index: usize,
    },
    /// Undoing step `index` failed.
    UndoFailed {
        /// Step index.
        index: usize,
        /// The error message.
        error: String,
    },
    /// The operation reached an end state.
    Finished {
        /// Which one.
        outcome: Outcome,
    },
}

/// Why an undo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndoReason {
    /// Automatic rollback after a step failed.
    Rollback,
    /// The user ran `passthru undo`.
    Undo,
}

/// End states of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step applied and verified.
    Applied,
    /// A step failed and every step was rolled back.
    RolledBack,
    /// Undone by `passthru undo`.
    Undone,
    /// Rollback or undo could not restore everything; the journal lists what remains.
    UndoIncomplete,
}

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Record format version.
    pub v: u32,
    /// Operation id.
    pub op: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What happened.
    pub event: Event,
}

/// The state of one operation, folded from its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperationState {
    /// Applied and verified.
    Applied,
    /// Failed and rolled back.
    RolledBack,
    /// Undone.
    Undone,
    /// Rollback/undo left something behind.
    UndoIncomplete,
    /// No end record: the process died while applying or undoing. `undo` finishes it.
    Interrupted,
}

/// One operation as read back from the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Operation id.
    pub id: String,
    /// Step type tag.
    pub kind: String,
    /// What the user asked for.
    pub operation: String,
    /// When it began.
    pub started: String,
    /// When the last record was written.
    pub last_update: String,
    /// Its state.
    pub state: OperationState,
    /// Serialized steps.
    pub steps: Vec<serde_json::Value>,
    /// Step views.
    pub views: Vec<StepView>,
    /// Which passthru wrote the operation, when the journal says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Steps with an intent record (they may have changed the host).
    pub touched: Vec<usize>,
    /// Steps that completed.
    pub done: Vec<usize>,
    /// Steps already undone.
    pub undone: Vec<usize>,
    /// Errors recorded, in order.
    pub errors: Vec<String>,
}

impl Operation {
    /// Whether `passthru undo` has something to do for this operation.
    pub fn undoable(&self) -> bool {
        matches!(
            self.state,
            OperationState::Applied | OperationState::Interrupted | OperationState::UndoIncomplete
        )
    }

    /// Steps that may have changed the host and are not undone yet, last first.
    pub fn pending_undo(&self) -> Vec<usize> {
        let mut pending: Vec<usize> = self
            .touched
            .iter()
            .copied()
            .filter(|index| !self.undone.contains(index))
            .collect();
        pending.sort_unstable_by(|a, b| b.cmp(a));
        pending.dedup();
        pending
    }

    fn apply(&mut self, record: &Record) {
        self.last_update.clone_from(&record.at);
        match &record.event {
            Event::Begin { .. } => {}
            Event::Intent { index } => {
                self.state = OperationState::Interrupted;
                if !self.touched.contains(index) {
                    self.touched.push(*index);
                }
            }
            Event::Done { index } => self.done.push(*index),
            Event::Failed { error, .. } | Event::UndoFailed { error, .. } => {
                self.errors.push(error.clone());
            }
            Event::UndoBegin { .. } => self.state = OperationState::Interrupted,
            Event::Undone { index } => {
                if !self.undone.contains(index) {
                    self.undone.push(*index);
                }
            }
            Event::Finished { outcome } => {
                self.state = match outcome {
                    Outcome::Applied => OperationState::Applied,
                    Outcome::RolledBack => OperationState::RolledBack,
                    Outcome::Undone => OperationState::Undone,
                    Outcome::UndoIncomplete => OperationState::UndoIncomplete,
                };
            }
        }
    }
}

/// An open, locked journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    log: fs_err::File,
    // Held for the lifetime of the journal; dropping it releases the lock.
    _lock: fs_err::File,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and takes its lock without waiting.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let dir = dir.into();
        fs_err::create_dir_all(dir.join("blobs"))?;
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("journal.lock"))?;
        // A lock can look taken for a moment while any process of ours forks a child (the
        // child shares the open file until it execs), so retry briefly before giving up.
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match lock.file().try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(JournalError::Busy(dir)),
                Err(std::fs::TryLockError::Error(error)) => return Err(error.into()),
            }
        }
        let log = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("journal.jsonl"))?;
        Ok(Self {
            dir,
            log,
            _lock: lock,
        })
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    /// Appends one record and fsyncs it.
    pub fn append(&mut self, op: &str, event: Event) -> Result<(), JournalError> {
        let record = Record {
            v: RECORD_VERSION,
            op: op.to_owned(),
            at: now_rfc3339(),
            event,
        };
        let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.log.write_all(&line)?;
        self.log.sync_data()?;
        Ok(())
    }

    /// Reads every record. A torn final line is skipped; damage anywhere else is an error.
    pub fn records(&self) -> Result<Vec<Record>, JournalError> {
        let path = self.log_path();
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let mut records = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(record) => records.push(record),
                Err(_) if index + 1 == lines.len() && !text.ends_with('\n') => break,
                Err(error) => {
                    return Err(JournalError::Corrupt {
                        path,
                        line: index + 1,
                        message: error.to_string(),
                    });
                }
            }
        }
        Ok(records)
    }

    /// Every operation, oldest first.
    pub fn operations(&self) -> Result<Vec<Operation>, JournalError> {
        let mut operations: Vec<Operation> = Vec::new();
        for record in self.records()? {
            if let Event::Begin {
                kind,
                operation,
                steps,
                views,
                writer,
            } = &record.event
            {
                operations.push(Operation {
                    id: record.op.clone(),
                    kind: kind.clone(),
                    operation: operation.clone(),
                    started: record.at.clone(),
                    last_update: record.at.clone(),
                    state: OperationState::Interrupted,
                    steps: steps.clone(),
                    views: views.clone(),
                    writer: writer.clone(),
                    touched: Vec::new(),
                    done: Vec::new(),
                    undone: Vec::new(),
                    errors: Vec::new(),
                });
                continue;
            }
            if let Some(operation) = operations.iter_mut().rev().find(|op| op.id == record.op) {
                operation.apply(&record);
            }
        }
        Ok(operations)
    }

    /// One operation by id.
    pub fn operation(&self, id: &str) -> Result<Operation, JournalError> {
        self.operations()?
            .into_iter()
            .find(|op| op.id == id)
            .ok_or_else(|| JournalError::UnknownOperation(id.to_owned()))
    }

    /// The most recent operation that `passthru undo` would act on.
    pub fn last_undoable(&self) -> Result<Option<Operation>, JournalError> {
        Ok(self
            .operations()?
            .into_iter()
            .rev()
            .find(Operation::undoable))
    }

    /// Stores bytes (an original file, say) and returns their id, the SHA-256 in hex.
    pub fn store_blob(&self, bytes: &[u8]) -> Result<String, JournalError> {
        self.blobs().store(bytes)
    }

    /// Loads a blob stored by [`Journal::store_blob`], checking its hash.
    pub fn load_blob(&self, id: &str) -> Result<Vec<u8>, JournalError> {
        self.blobs().load(id)
    }

    /// A handle on this journal's blob storage that a step's host can keep while the executor
    /// holds the journal itself (steps that replace files store and load originals through it).
    pub fn blobs(&self) -> BlobStore {
        BlobStore {
            dir: self.dir.join("blobs"),
        }
    }

    /// A fresh operation id: UTC time plus process id, sortable and unique: a second operation
    /// of the same process within the same second gets a counter (`-2`, `-3`, ...), so ids
    /// never repeat (operations are told apart by their id alone).
    pub fn new_operation_id() -> String {
        static LAST: std::sync::Mutex<(String, u32)> = std::sync::Mutex::new((String::new(), 0));
        let stamp = now_rfc3339().replace([':', '-'], "");
        let base = format!("{}-{}", stamp.trim_end_matches('Z'), std::process::id());
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.0 == base {
            last.1 += 1;
            format!("{base}-{}", last.1)
        } else {
            *last = (base.clone(), 1);
            base
        }
    }
}

/// The blob storage of a journal (`blobs/<sha256>`), detached from the journal's lock so that a
/// step's host can reach it during [`super::executor::apply`] and [`super::executor::undo`].
/// Obtain it with [`Journal::blobs`].
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// Stores bytes and returns their id, the SHA-256 in hex. Storing the same bytes twice is
    /// cheap: the second call finds the blob already there.
    pub fn store(&self, bytes: &[u8]) -> Result<String, JournalError> {
        let id = sha256_hex(bytes);
        let path = self.dir.join(&id);
        if !path.exists() {
            let temporary = self.dir.join(format!("{id}.tmp"));
            let mut file = fs_err::File::create(&temporary)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs_err::rename(&temporary, &path)?;
        }
        Ok(id)
    }

    /// Loads a blob, checking its hash.
    pub fn load(&self, id: &str) -> Result<Vec<u8>, JournalError> {
        let bytes =
            fs_err::read(self.dir.join(id)).map_err(|_| JournalError::BadBlob(id.to_owned()))?;
        if sha256_hex(&bytes) != id {
            return Err(JournalError::BadBlob(id.to_owned()));
        }
        Ok(bytes)
    }
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_never_repeat_within_a_process() {
        let ids: Vec<String> = (0..5).map(|_| Journal::new_operation_id()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn second_open_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = Journal::open(dir.path()).unwrap();
        match Journal::open(dir.path()) {
            Err(JournalError::Busy(_)) => {}
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        Journal::open(dir.path()).unwrap();
    }

    #[test]
    fn torn_last_line_is_ignored_but_damage_elsewhere_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal
            .append(
                "op1",
                Event::Begin {
                    kind: "test".into(),
                    operation: "x".into(),
                    steps: vec![],
                    views: vec![],
                    writer: None,
                },
            )
            .unwrap();
        journal.append("op1", Event::Intent { index: 0 }).unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut bytes = fs_err::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"v\":1,\"op\":\"op1\",\"at\":");
        fs_err::write(&path, &bytes).unwrap();
        let operations = journal.operations().unwrap();
        assert_eq!(operations.len(), 1);
        assert_eq!(operations[0].state, OperationState::Interrupted);
        assert_eq!(operations[0].touched, vec![0]);

        let mut damaged = b"not json\n".to_vec();
        damaged.extend_from_slice(&bytes);
        damaged.push(b'\n');
        fs_err::write(&path, &damaged).unwrap();
        assert!(matches!(
            journal.records(),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn blobs_round_trip_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let id = journal.store_blob(b"GRUB_CMDLINE_LINUX=\"\"\n").unwrap();
        assert_eq!(
            journal.load_blob(&id).unwrap(),
            b"GRUB_CMDLINE_LINUX=\"\"\n"
        );
        fs_err::write(dir.path().join("blobs").join(&id), b"changed").unwrap();
        assert!(matches!(
            journal.load_blob(&id),
            Err(JournalError::BadBlob(_))
        ));
    }
}
