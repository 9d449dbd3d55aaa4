//! The committed snapshot fixtures (`fixtures/snapshots/`) are exactly what the scenario
//! builders produce. Regenerate them with `PASSTHRU_UPDATE_FIXTURES=1 cargo test -p
//! passthru-linux --test fixtures`.

use std::path::PathBuf;

use passthru_linux::fake_sysfs::scenarios::{self, Dumps};
use passthru_linux::inventory::read_inventory;
use passthru_linux::snapshot::{self, Snapshot, SnapshotFs};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/snapshots")
}

#[test]
fn committed_scenario_snapshots_match_the_builders() {
    let dumps = Dumps::repository();
    for name in scenarios::NAMES {
        let host = scenarios::build(name, &dumps).unwrap();
        let mut built = snapshot::capture(SnapshotFs::new(&host.to_snapshot()));
        built.description = host.description().map(str::to_owned);
        let file = fixtures().join(format!("{name}.json"));
        if std::env::var_os("PASSTHRU_UPDATE_FIXTURES").is_some() {
            built.save(&file).unwrap();
            continue;
        }
        let committed =
            Snapshot::load(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        // Compared without printing both sides: they are thousands of entries.
        assert!(
            committed.description == built.description && committed.entries == built.entries,
            "{} is stale: run PASSTHRU_UPDATE_FIXTURES=1 cargo test -p passthru-linux --test fixtures",
            file.display()
        );
    }
}

#[test]
fn the_capture_of_this_machine_replays() {
    let snapshot = Snapshot::load(&fixtures().join("this-host.json")).unwrap();
    let inventory = read_inventory(&SnapshotFs::new(&snapshot));
    assert!(!inventory.devices.is_empty());
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
    assert!(
        inventory
            .devices
            .iter()
            .all(|device| device.warnings.is_empty())
    );
}
