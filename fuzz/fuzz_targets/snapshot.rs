//! Fuzzes the snapshot parser, and the inventory reader and checks over whatever host a
//! parsable snapshot describes: `Snapshot::from_bytes` must return an error, never panic,
//! on any input, and reading and judging any snapshot host must not panic either.
//!
//! Run: `cargo +nightly fuzz run snapshot -- -max_total_time=60` (in this folder's parent).
//! Seed corpus: the committed snapshots in `fixtures/snapshots/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_linux::checks::device::device_verdict;
use passthru_linux::checks::group::group_viability;
use passthru_linux::checks::host::host_findings;
use passthru_linux::inventory::read_inventory;
use passthru_linux::snapshot::{Snapshot, SnapshotFs};

fuzz_target!(|data: &[u8]| {
    let Ok(snapshot) = Snapshot::from_bytes(data) else {
        return;
    };
    let inventory = read_inventory(&SnapshotFs::new(&snapshot));
    let _ = host_findings(&inventory);
    for group in &inventory.groups {
        let _ = group_viability(&inventory, group);
    }
    for device in &inventory.devices {
        let _ = device_verdict(&inventory, device);
    }
    // Whatever was parsed must serialize and parse back to the same thing.
    let again = Snapshot::from_bytes(&snapshot.to_json()).expect("a parsed snapshot re-parses");
    assert_eq!(again, snapshot);
});
