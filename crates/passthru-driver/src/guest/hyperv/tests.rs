//! The guest port over the Hyper-V port, against the simulated Hyper-V with its guest-disk
//! extension: the same answers the real scripts print, the same failures, end to end through
//! the executor and journal.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use passthru_core::plan::executor::{self, ExecError, ExecOptions};
use passthru_core::plan::journal::{Journal, Outcome};
use passthru_hyperv::client::HyperVHost;
use passthru_hyperv::sim::Simulator;

use super::*;
use crate::guest::manifest::{GuestManifest, MANIFEST_PATH};
use crate::guest::simulated::GuestDiskSimulator;
use crate::guest::simulated::hive::HiveKeys;
use crate::guest::{
    BitLocker, Freshness, GuestError, GuestSession, GuestStep, SyncRequest, compare_with_guest,
    plan_driver_sync,
};
use crate::guest_path::GuestPath;
use crate::package::{self, ResolvedDriver};
use crate::testing::lab::SimLab;

struct Lab {
    temp: tempfile::TempDir,
    lab: SimLab,
}

impl Lab {
    fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let lab = SimLab::build(&temp.path().join("lab")).unwrap();
        Self { temp, lab }
    }

    fn host(&self) -> HyperVGuestHost {
        self.lab.host()
    }

    fn driver(&self) -> ResolvedDriver {
        let registration = self
            .host()
            .adapter_registration(SimLab::GPU_INSTANCE_ID)
            .unwrap();
        package::resolve(&registration).unwrap()
    }

    fn plan(&self) -> Result<passthru_core::plan::Plan<GuestStep>, GuestError> {
        let request = SyncRequest {
            vm: SimLab::VM.to_owned(),
            driver: self.driver(),
            operation_id: Journal::new_operation_id(),
        };
        plan_driver_sync(&mut self.host(), &request)
    }

    fn journal(&self) -> Journal {
        Journal::open(self.temp.path().join("journal")).unwrap()
    }

    fn apply(
        &self,
        plan: &passthru_core::plan::Plan<GuestStep>,
        options: &ExecOptions,
    ) -> Result<executor::Report, ExecError> {
        let mut session = GuestSession::new(Box::new(self.host()));
        executor::apply(
            &mut self.journal(),
            plan,
            &mut session,
            options,
            &mut |_| {},
        )
    }

    fn undo_last(&self) -> executor::Report {
        let mut journal = self.journal();
        let operation = journal.last_undoable().unwrap().unwrap();
        let mut session = GuestSession::new(Box::new(self.host()));
        executor::undo::<GuestStep>(&mut journal, &operation, &mut session, &mut |_| {}).unwrap()
    }

    fn guest(&self, path: &str) -> std::path::PathBuf {
        GuestPath::new(path).on(&self.lab.guest_root())
    }

    fn hive(&self) -> HiveKeys {
        HiveKeys::read(&self.guest(r"Windows\System32\config\SYSTEM")).unwrap()
    }

    /// Runs a sync that dies (as after a power loss) right after the first step `which`
    /// picks.
    fn crash_after(&self, which: fn(&GuestStep) -> bool) {
        let plan = self.plan().unwrap();
        let index = plan.steps.iter().position(which).unwrap();
        let crash = ExecOptions {
            crash: Some(executor::CrashPoint::AfterApply(index)),
        };
        assert!(matches!(
            self.apply(&plan, &crash),
            Err(ExecError::Crashed(_))
        ));
    }

    fn manifest(&self) -> GuestManifest {
        GuestManifest::from_json(&fs_err::read(self.guest(MANIFEST_PATH)).unwrap()).unwrap()
    }

    /// The guest's files and record match the host's driver, content included.
    fn assert_up_to_date(&self, manifest: &GuestManifest) {
        let status = compare_with_guest(
            &self.driver(),
            Some(manifest),
            Some(&self.lab.guest_root()),
            true,
        )
        .unwrap();
        assert_eq!(
            status.freshness,
            Freshness::UpToDate,
            "{:?}",
            status.reasons
        );
    }

    fn assert_clean(&self) {
        let disks = self.lab.guest_disks().unwrap();
        assert!(
            disks.mounted.is_empty(),
            "left mounted: {:?}",
            disks.mounted
        );
        assert!(
            disks.hives.is_empty(),
            "left loaded: {:?}",
            disks.hives.keys()
        );
    }
}

#[test]
fn the_port_carries_requests_as_extensions() {
    let request = GuestRequest::MountVhd {
        vhd: SimLab::SYSTEM_VHD.to_owned(),
    };
    let script = script_for(&request);
    assert_eq!(kind_of(&request), "driver.mount-vhd");
    assert_eq!(script.body, request.script());
    insta::assert_snapshot!("wire_mount_vhd", script.wire());
    insta::assert_json_snapshot!("request_mount_vhd", script.requests);
}

#[test]
fn the_simulator_answers_in_the_scripts_shapes() {
    let lab = Lab::new();
    let mut host = lab.host();
    let disks = host.vm_disks(SimLab::VM).unwrap();
    assert_eq!(disks.len(), 3);
    assert_eq!(disks[1].path.as_deref(), Some(SimLab::SYSTEM_VHD));
    assert_eq!(host.mounted_disk(SimLab::SYSTEM_VHD).unwrap(), None);
    let disk = host.mount_vhd(SimLab::SYSTEM_VHD).unwrap();
    assert_eq!(host.mounted_disk(SimLab::SYSTEM_VHD).unwrap(), Some(disk));
    let volumes = host.volumes(disk).unwrap();
    assert_eq!(
        volumes
            .iter()
            .map(|v| (v.partition, v.file_system.as_str()))
            .collect::<Vec<_>>(),
        [(1, "FAT32"), (2, ""), (3, "NTFS")]
    );
    assert_eq!(volumes[2].access_path, None);
    let root = host.access_path(disk, 3).unwrap();
    assert_eq!(
        fs_err::canonicalize(&root).unwrap(),
        fs_err::canonicalize(lab.lab.guest_root()).unwrap()
    );
    assert_eq!(host.volumes(disk).unwrap()[2].access_path, Some(root));

    // The answer of the real script, as the port's envelope carries it: one JSON string.
    let mut raw = HyperVHost::new(
        Box::new(
            Simulator::open(&lab.lab.state_file())
                .unwrap()
                .with_extension(Box::new(GuestDiskSimulator::for_state_file(
                    &lab.lab.state_file(),
                ))),
        ),
        None,
    );
    let answer = raw
        .run(&script_for(&GuestRequest::MountedDisk {
            vhd: SimLab::SYSTEM_VHD.to_owned(),
        }))
        .unwrap();
    assert_eq!(
        answer.data,
        [serde_json::json!(format!(
            r#"{{"Attached":true,"DiskNumber":{disk}}}"#
        ))]
    );

    let locked = host.mount_vhd(SimLab::LOCKED_VHD).unwrap();
    let volume = &host.volumes(locked).unwrap()[0];
    assert_eq!(volume.bitlocker, BitLocker::Locked);
    assert_eq!(
        volume.file_system, "",
        "a locked volume shows no file system"
    );
    host.dismount_vhd(SimLab::LOCKED_VHD).unwrap();
    host.dismount_vhd(SimLab::SYSTEM_VHD).unwrap();
    lab.assert_clean();
}

#[test]
fn the_simulator_fails_the_way_windows_does() {
    let lab = Lab::new();
    let mut host = lab.host();
    let error = host.vm_disks("Nope").unwrap_err();
    assert!(
        error
            .message
            .contains("unable to find a virtual machine with name \"Nope\""),
        "{error}"
    );
    host.mount_vhd(SimLab::SYSTEM_VHD).unwrap();
    let error = host.mount_vhd(SimLab::SYSTEM_VHD).unwrap_err();
    assert!(error.message.contains("0x80070020"), "{error}");
    assert!(
        error
            .help
            .as_deref()
            .unwrap()
            .contains("Dismount-VHD -Path"),
        "{error:?}"
    );
    host.dismount_vhd(SimLab::SYSTEM_VHD).unwrap();
    let error = host.dismount_vhd(SimLab::SYSTEM_VHD).unwrap_err();
    assert!(error.message.contains("is not attached"), "{error}");

    // A hive whose volume is not mounted cannot be loaded; a write needs a loaded hive.
    let hive = lab.guest(r"Windows\System32\config\SYSTEM");
    let error = host.load_hive(&hive, "PASSTHRU_GUEST_SYSTEM").unwrap_err();
    assert!(error.message.contains("cannot find the file"), "{error}");
    let key = RegKey(r"PASSTHRU_GUEST_SYSTEM\ControlSet001\Services\nvlddmkm".into());
    let error = host
        .write_value(&key, "Start", &RegData::Dword(3))
        .unwrap_err();
    assert!(error.message.contains("is denied"), "{error}");
    assert!(
        error.help.as_deref().unwrap().contains("elevated"),
        "{error:?}"
    );

    // While the VM runs, its disk is in use.
    host.start_vm(SimLab::VM).unwrap();
    assert_eq!(host.vm_state(SimLab::VM).unwrap(), VmState::Running);
    let error = host.mount_vhd(SimLab::SYSTEM_VHD).unwrap_err();
    assert!(
        error.message.contains("being used by another process"),
        "{error}"
    );
    host.stop_vm(SimLab::VM).unwrap();
    assert_eq!(host.vm_state(SimLab::VM).unwrap(), VmState::Off);

    // Unknown GPUs are unknown to the registry.
    let error = host
        .adapter_registration(r"PCI\VEN_1234&DEV_5678\0")
        .unwrap_err();
    assert!(error.message.contains("does not exist"), "{error}");
    lab.assert_clean();
}

#[test]
fn a_sync_through_the_port_installs_records_and_undoes() {
    let lab = Lab::new();
    let plan = lab.plan().unwrap();
    lab.assert_clean();
    let steps: Vec<String> = plan.views().into_iter().map(|v| v.summary).collect();
    assert!(steps[0].starts_with("Mount the system disk"), "{steps:?}");
    assert!(
        steps
            .iter()
            .any(|s| s.contains(r"ControlSet001\Services\nvlddmkm")),
        "{steps:?}"
    );
    lab.apply(&plan, &ExecOptions::default()).unwrap();
    lab.assert_clean();

    let image = lab
        .hive()
        .value(r"ControlSet001\Services\nvlddmkm", "ImagePath")
        .cloned();
    assert_eq!(
        image,
        Some(RegData::ExpandSz(format!(
            r"\SystemRoot\System32\HostDriverStore\FileRepository\{}\nvlddmkm.sys",
            crate::testing::NV_PACKAGE
        )))
    );
    let manifest = lab.manifest();
    assert_eq!(manifest.driver_version, SimLab::VERSION);
    lab.assert_up_to_date(&manifest);

    assert!(
        lab.plan().unwrap().steps.is_empty(),
        "a second sync has nothing to do"
    );

    let report = lab.undo_last();
    assert_eq!(report.outcome, Outcome::Undone);
    lab.assert_clean();
    assert!(!lab.guest(MANIFEST_PATH).exists());
    assert!(!lab.hive().exists(r"ControlSet001\Services\nvlddmkm"));
    assert_eq!(
        fs_err::read(lab.guest(r"Windows\System32\nvml.dll")).unwrap(),
        b"a copy a user put here by hand"
    );
}

#[test]
fn a_failure_mid_copy_rolls_back_and_dismounts() {
    let lab = Lab::new();
    let plan = lab.plan().unwrap();
    // A directory where a driver file belongs: that file cannot be written.
    let blocker = lab.guest(&format!(
        r"Windows\System32\HostDriverStore\FileRepository\{}\nvlddmkm.sys",
        crate::testing::NV_PACKAGE
    ));
    crate::testing::write(&blocker.join("in the way"), b"someone's file");
    match lab.apply(&plan, &ExecOptions::default()) {
        Err(ExecError::StepFailed { rollback, .. }) => {
            assert_eq!(rollback.outcome, Outcome::RolledBack, "{rollback:?}");
        }
        other => panic!("{other:?}"),
    }
    lab.assert_clean();
    assert!(!lab.guest(MANIFEST_PATH).exists());
    let repository = lab.guest(r"Windows\System32\HostDriverStore\FileRepository");
    let left: Vec<_> = walk(&repository);
    assert_eq!(
        left,
        [blocker.join("in the way")],
        "only the obstacle is left"
    );
}

#[test]
fn a_failing_hive_load_rolls_back_and_dismounts() {
    let lab = Lab::new();
    let plan = lab.plan().unwrap();
    lab.lab
        .edit_state(|state| {
            state["faults"] = serde_json::json!([{"cmdlet": "reg load"}]);
        })
        .unwrap();
    let error = lab.apply(&plan, &ExecOptions::default()).unwrap_err();
    assert!(error.to_string().contains("injected fault"), "{error}");
    lab.assert_clean();
    assert!(!lab.guest(r"Windows\System32\nvcuda.dll").exists());
}

#[test]
fn cancelling_rolls_back_and_dismounts() {
    let lab = Lab::new();
    let plan = lab.plan().unwrap();
    let cancel = Arc::new(AtomicBool::new(true));
    let mut session = GuestSession::new(Box::new(lab.host())).with_cancel(cancel);
    let error = executor::apply(
        &mut lab.journal(),
        &plan,
        &mut session,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(error.to_string().contains("interrupted"), "{error}");
    lab.assert_clean();
    assert!(!lab.guest(r"Windows\System32\HostDriverStore").exists());
}

#[test]
fn a_crash_leaves_what_undo_finishes() {
    let lab = Lab::new();
    lab.crash_after(|step| matches!(step, GuestStep::LoadSystemHive { .. }));
    let disks = lab.lab.guest_disks().unwrap();
    assert_eq!(
        disks.mounted.len(),
        1,
        "the dead process left the disk mounted"
    );
    assert_eq!(disks.hives.len(), 1, "and the hive loaded");
    let report = lab.undo_last();
    assert_eq!(report.outcome, Outcome::Undone, "{report:?}");
    lab.assert_clean();
    let left = walk(&lab.guest(r"Windows\System32\HostDriverStore"));
    assert!(left.is_empty(), "{left:#?}");
}

#[test]
fn a_locked_system_volume_is_refused_with_an_explanation() {
    let lab = Lab::new();
    lab.lab
        .edit_disks(|disks| {
            for vhd in disks.vhds.values_mut() {
                for partition in &mut vhd.partitions {
                    if partition.file_system == "NTFS" {
                        partition.bit_locker = BitLocker::Locked;
                    }
                }
            }
        })
        .unwrap();
    let error = lab.plan().unwrap_err();
    let text = error.to_string();
    assert!(text.contains("BitLocker-locked"), "{text}");
    assert!(text.contains("exampleName.vhdx partition 3"), "{text}");
    lab.assert_clean();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs_err::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let inner = walk(&path);
        if path.is_dir() && !inner.is_empty() {
            out.extend(inner);
        } else if path.is_file() || fs_err::read_dir(&path).is_ok_and(|mut d| d.next().is_none()) {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn a_host_driver_update_copies_only_what_changed() {
    let lab = Lab::new();
    lab.apply(&lab.plan().unwrap(), &ExecOptions::default())
        .unwrap();
    let update = lab.lab.update_driver().unwrap();
    let manifest = lab.manifest();
    let status = compare_with_guest(&lab.driver(), Some(&manifest), None, false).unwrap();
    assert_eq!(status.freshness, Freshness::Stale);
    assert!(
        status.reasons[0].contains(SimLab::UPDATED_VERSION),
        "{:?}",
        status.reasons
    );

    let plan = lab.plan().unwrap();
    let sync = plan
        .steps
        .iter()
        .find_map(|step| match step {
            GuestStep::SyncPackages(sync) => Some(sync),
            _ => None,
        })
        .unwrap();
    let mut copied: Vec<String> = sync
        .files
        .iter()
        .filter(|f| f.action != crate::sync::Action::Keep)
        .map(|f| {
            f.dest
                .as_str()
                .split_once(&format!("{}\\", SimLab::UPDATED_PACKAGE))
                .unwrap()
                .1
                .to_owned()
        })
        .collect();
    copied.sort();
    let mut expected = update.changed.clone();
    expected.push(update.added.clone());
    expected.sort();
    assert_eq!(copied, expected, "{}", plan.render());
    assert_eq!(sync.removals.len(), 1, "{}", plan.render());
    assert!(sync.removals[0].as_str().ends_with(&update.removed));

    lab.apply(&plan, &ExecOptions::default()).unwrap();
    lab.assert_clean();
    let manifest = lab.manifest();
    lab.assert_up_to_date(&manifest);

    // Undo puts the previous version back under its own name.
    lab.undo_last();
    lab.assert_clean();
    let old = lab.guest(&format!(
        r"Windows\System32\HostDriverStore\FileRepository\{}",
        crate::testing::NV_PACKAGE
    ));
    assert!(old.join(update.removed.replace('\\', "/")).is_file());
    assert!(!old.join(&update.added).exists());
    let manifest = lab.manifest();
    assert_eq!(manifest.driver_version, SimLab::VERSION);
    assert!(
        !lab.guest(&format!(
            r"Windows\System32\HostDriverStore\FileRepository\{}",
            SimLab::UPDATED_PACKAGE
        ))
        .exists()
    );
}

#[test]
fn undo_after_a_host_restart_loads_the_hive_itself() {
    let lab = Lab::new();
    lab.crash_after(|step| matches!(step, GuestStep::WriteRegistry { .. }));
    // The host restarts: Windows flushed the hive; nothing is mounted or loaded any more.
    lab.lab
        .edit_disks(|disks| {
            for hive in disks.hives.values() {
                hive.keys.write(&hive.file).unwrap();
            }
            disks.hives.clear();
            disks.mounted.clear();
        })
        .unwrap();
    assert!(lab.hive().exists(r"ControlSet001\Services\nvlddmkm"));
    let report = lab.undo_last();
    assert_eq!(report.outcome, Outcome::Undone, "{report:?}");
    lab.assert_clean();
    assert!(!lab.hive().exists(r"ControlSet001\Services\nvlddmkm"));
}
