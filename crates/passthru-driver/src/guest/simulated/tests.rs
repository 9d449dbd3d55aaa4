//! The simulator's own rules: what it handles, and the refusals the end-to-end tests do not
//! reach.

use passthru_hyperv::sim::Extension;

use super::*;
use crate::guest::host::GuestHost;
use crate::guest::planner::HIVE_MOUNT;
use crate::testing::lab::SimLab;

#[test]
fn leaves_vm_power_to_the_hyperv_side() {
    let simulator = GuestDiskSimulator::new(Path::new("."));
    assert!(simulator.handles("driver.mount-vhd"));
    assert!(simulator.handles("driver.adapter-registration"));
    assert!(!simulator.handles("driver.stop-vm"));
    assert!(!simulator.handles("hyperv.mount-vhd"));
}

#[test]
fn a_loaded_hive_keeps_its_disk_and_a_foreign_file_is_no_hive() {
    let temp = tempfile::tempdir().unwrap();
    let lab = SimLab::build(temp.path()).unwrap();
    let mut host = lab.host();
    let disk = host.mount_vhd(SimLab::SYSTEM_VHD).unwrap();
    let root = host.access_path(disk, 3).unwrap();
    let hive = root.join("Windows/System32/config/SYSTEM");
    host.load_hive(&hive, HIVE_MOUNT).unwrap();
    let error = host.load_hive(&hive, "OTHER").unwrap_err();
    assert!(
        error.message.contains("being used by another process"),
        "{error}"
    );
    let error = host.dismount_vhd(SimLab::SYSTEM_VHD).unwrap_err();
    assert!(error.message.contains("0x80070020"), "{error}");
    host.unload_hive(HIVE_MOUNT).unwrap();
    let error = host.unload_hive(HIVE_MOUNT).unwrap_err();
    assert!(
        error.message.contains("The parameter is incorrect"),
        "{error}"
    );

    let foreign = root.join("Windows/System32/config/SOFTWARE");
    fs_err::write(&foreign, b"regf\0\0\0\0").unwrap();
    let error = host.load_hive(&foreign, "OTHER").unwrap_err();
    assert!(
        error.message.contains("registry database is corrupt"),
        "{error}"
    );
    host.dismount_vhd(SimLab::SYSTEM_VHD).unwrap();
}

#[test]
fn injected_faults_hit_guest_commands_too() {
    let temp = tempfile::tempdir().unwrap();
    let lab = SimLab::build(temp.path()).unwrap();
    lab.edit_state(|state| {
        state["faults"] = serde_json::json!([{"cmdlet": "Mount-VHD", "skip": 1}]);
    })
    .unwrap();
    let mut host = lab.host();
    host.mount_vhd(SimLab::DATA_VHD).unwrap();
    let error = host.mount_vhd(SimLab::SYSTEM_VHD).unwrap_err();
    assert!(error.message.contains("injected fault"), "{error}");
    host.mount_vhd(SimLab::SYSTEM_VHD).unwrap();
    assert!(
        lab.state().unwrap()["faults"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
