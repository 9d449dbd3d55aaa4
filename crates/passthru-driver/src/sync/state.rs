//! The resume log: one JSON line per file finished, so an interrupted run's completed files
//! need neither copying nor hashing again. Completed files already match by size and time (each
//! was written atomically with the source's time), so the log only saves re-hashing them.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::compare::FileTime;

/// What is known about a destination file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownFile {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub time: FileTime,
    /// BLAKE3 hash, lower-case hex.
    pub hash: String,
}

#[derive(Serialize, Deserialize)]
struct StateLine {
    path: String,
    #[serde(flatten)]
    file: KnownFile,
}

/// An open resume log.
#[derive(Debug)]
pub(crate) struct StateLog {
    file: fs_err::File,
}

impl StateLog {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self { file })
    }

    /// Appends one finished file. Not fsynced: a lost line only costs a re-hash.
    pub(crate) fn record(&mut self, path: &str, file: &KnownFile) -> io::Result<()> {
        let line = StateLine {
            path: path.to_owned(),
            file: file.clone(),
        };
        let mut text = serde_json::to_string(&line).map_err(io::Error::other)?;
        text.push('\n');
        self.file.write_all(text.as_bytes())
    }
}

/// Reads a resume log; a missing file is empty and unreadable lines (a torn last line after a
/// crash) are skipped. Later lines win.
pub fn load_state(path: &Path) -> io::Result<BTreeMap<String, KnownFile>> {
    let file = match fs_err::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(error),
    };
    let mut known = BTreeMap::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        if let Ok(entry) = serde_json::from_str::<StateLine>(&line) {
            known.insert(entry.path, entry.file);
        }
    }
    Ok(known)
}
