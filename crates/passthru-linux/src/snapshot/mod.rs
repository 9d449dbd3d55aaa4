//! Portable snapshots of what `survey` reads from a host.
//!
//! `passthru snapshot FILE` runs the inventory reader over a [`RecordingFs`], which remembers
//! every answer (file bytes, directory listings, link targets, existence checks, and errors
//! with their messages) and writes them as one versioned JSON file ([`Snapshot`], documented
//! in `docs/snapshot-format.md`). `passthru survey --from FILE` reads the host through a
//! [`SnapshotFs`] instead, on any machine and any OS.

mod format;
mod record;
mod replay;

pub use format::{
    Entry, FORMAT, ListedEntry, ListedKind, Operation, Snapshot, SnapshotError, VERSION,
};
pub use record::RecordingFs;
pub use replay::SnapshotFs;

use passthru_core::hostfs::HostFs;

use crate::inventory::read_inventory;

/// Captures everything survey reads from `host`.
pub fn capture<F: HostFs>(host: F) -> Snapshot {
    let recorder = RecordingFs::new(host);
    let _ = read_inventory(&recorder);
    recorder.snapshot()
}

#[cfg(test)]
mod tests;
