//! Guest provisioning against the simulated Hyper-V host: plans, the shared executor and
//! journal, rollback on failure, crash recovery, undo, driver updates and status.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use passthru_core::plan::executor::{self, CrashPoint, ExecError, ExecOptions};
use passthru_core::plan::journal::{Journal, OperationState};
use passthru_core::plan::{Plan, Step};

use super::fake::{FakeGuestHost, FakePartition};
use super::planner::HIVE_MOUNT;
use super::*;
use crate::guest_path::GuestPath;
use crate::package::{self, RegData, ResolvedDriver};
use crate::testing::{NV_PACKAGE, nvidia_registration, nvidia_store, write};

const VM: &str = "Win11 GPU";
const VHD: &str = r"D:\Hyper-V\Win11 GPU.vhdx";
const DATA_VHD: &str = r"D:\Hyper-V\Win11 data.vhdx";

struct Lab {
    temp: tempfile::TempDir,
    fake: Rc<RefCell<FakeGuestHost>>,
    package: PathBuf,
    guest: PathBuf,
}

impl Lab {
    /// A host with the NVIDIA package and a VM whose data disk comes first and whose system
    /// disk has an EFI partition before the Windows one.
    fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let package = nvidia_store(&temp.path().join("host"));
        let guest = temp.path().join("guest-c");
        write(&guest.join("Windows/System32/config/SYSTEM"), b"regf");
        write(&guest.join("Windows/SysWOW64/kernel32.dll"), b"guest's own");
        write(&guest.join("Windows/System32/nvml.dll"), b"an old copy");
        let data = temp.path().join("guest-d");
        write(&data.join("Users/readme.txt"), b"data");
        let mut fake = FakeGuestHost::new();
        fake.add_vm(VM, VmState::Off, &[DATA_VHD, VHD]);
        fake.add_disk(DATA_VHD, vec![partition(1, "NTFS", &data)]);
        fake.add_disk(
            VHD,
            vec![
                partition(1, "FAT32", &temp.path().join("efi")),
                partition(2, "", &temp.path().join("msr")),
                partition(3, "NTFS", &guest),
            ],
        );
        fake.add_hive(
            &guest.join("Windows/System32/config/SYSTEM"),
            &[
                ("Select", "Current", RegData::Dword(1)),
                ("Select", "Default", RegData::Dword(1)),
                ("Select", "LastKnownGood", RegData::Dword(2)),
                (
                    r"ControlSet001\Services\BasicDisplay",
                    "Start",
                    RegData::Dword(3),
                ),
                (r"ControlSet002\Services", "", RegData::Sz(String::new())),
            ],
        );
        Self {
            temp,
            fake: Rc::new(RefCell::new(fake)),
            package,
            guest,
        }
    }

    fn hive(&self) -> PathBuf {
        self.guest.join("Windows/System32/config/SYSTEM")
    }

    fn driver(&self) -> ResolvedDriver {
        package::resolve(&nvidia_registration(&self.package)).unwrap()
    }

    fn plan(&self, driver: ResolvedDriver, id: &str) -> Result<Plan<GuestStep>, GuestError> {
        let request = SyncRequest {
            vm: VM.to_owned(),
            driver,
            operation_id: id.to_owned(),
        };
        plan_driver_sync(&mut *self.fake.borrow_mut(), &request)
    }

    fn session(&self) -> GuestSession {
        GuestSession::new(Box::new(self.fake.clone()))
    }

    fn journal(&self) -> Journal {
        Journal::open(self.temp.path().join("journal")).unwrap()
    }

    fn apply(&self, plan: &Plan<GuestStep>) -> Result<executor::Report, ExecError> {
        let mut journal = self.journal();
        executor::apply(
            &mut journal,
            plan,
            &mut self.session(),
            &ExecOptions::default(),
            &mut |_| {},
        )
    }

    fn undo_last(&self) {
        let mut journal = self.journal();
        let operation = journal.last_undoable().unwrap().unwrap();
        let report =
            executor::undo::<GuestStep>(&mut journal, &operation, &mut self.session(), &mut |_| {})
                .unwrap();
        assert!(report.undo_errors.is_empty(), "{:?}", report.undo_errors);
    }

    fn in_guest(&self, path: &str) -> PathBuf {
        GuestPath::new(path).on(&self.guest)
    }

    fn package_dir(&self) -> PathBuf {
        self.in_guest(&format!(
            r"Windows\System32\HostDriverStore\FileRepository\{NV_PACKAGE}"
        ))
    }

    fn assert_clean_host(&self) {
        let fake = self.fake.borrow();
        assert!(
            fake.mounted.is_empty(),
            "disks left mounted: {:?}",
            fake.mounted
        );
        assert!(
            fake.loaded_hives().is_empty(),
            "hives left loaded: {:?}",
            fake.loaded_hives()
        );
    }

    fn service_value(&self, set: &str, name: &str) -> Option<RegData> {
        self.fake
            .borrow()
            .hive_value(&self.hive(), &format!(r"{set}\Services\nvlddmkm"), name)
    }
}

fn partition(number: u32, file_system: &str, root: &Path) -> FakePartition {
    fs_err::create_dir_all(root).unwrap();
    FakePartition {
        number,
        file_system: file_system.to_owned(),
        bitlocker: BitLocker::Off,
        root: root.to_path_buf(),
    }
}

fn step_names(plan: &Plan<GuestStep>) -> Vec<String> {
    plan.steps
        .iter()
        .map(|step| {
            serde_json::to_value(step).unwrap()["step"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn first_sync_installs_everything_and_cleans_up() {
    let lab = Lab::new();
    let driver = lab.driver();
    let plan = lab.plan(driver.clone(), "op1").unwrap();
    lab.assert_clean_host();
    assert_eq!(
        step_names(&plan),
        [
            "mount-system-disk",
            "sync-packages",
            "promote-files",
            "load-system-hive",
            "write-registry",
            "write-registry",
            "unload-system-hive",
            "write-manifest",
            "dismount-system-disk"
        ]
    );
    lab.apply(&plan).unwrap();
    lab.assert_clean_host();

    // Every package file, identical and read-only.
    let display = &driver.packages[0];
    for file in &display.files {
        let copy = lab.package_dir().join(file.relative.replace('\\', "/"));
        assert_eq!(
            fs_err::read(&copy).unwrap(),
            fs_err::read(&file.source).unwrap()
        );
        assert_eq!(
            fs_err::metadata(&copy).unwrap().permissions().mode() & 0o222,
            0
        );
    }
    // Promotions: the registry's nvcuda.dll, the INF's nvml.dll over the guest's old copy.
    let nvcuda = fs_err::read(lab.in_guest(r"Windows\System32\nvcuda.dll")).unwrap();
    assert_eq!(nvcuda, b"nvcuda_loader64.dll");
    assert_eq!(
        fs_err::read(lab.in_guest(r"Windows\System32\nvml.dll")).unwrap(),
        b"nvml_loader.dll"
    );
    assert_eq!(
        fs_err::read(lab.in_guest(r"Windows\SysWOW64\kernel32.dll")).unwrap(),
        b"guest's own"
    );

    // The service in both control sets the guest can boot.
    let image = RegData::ExpandSz(format!(
        r"\SystemRoot\System32\HostDriverStore\FileRepository\{NV_PACKAGE}\nvlddmkm.sys"
    ));
    for set in ["ControlSet001", "ControlSet002"] {
        assert_eq!(
            lab.service_value(set, "ImagePath"),
            Some(image.clone()),
            "{set}"
        );
        assert_eq!(
            lab.service_value(set, "Start"),
            Some(RegData::Dword(3)),
            "{set}"
        );
        assert_eq!(
            lab.service_value(set, "Group"),
            Some(RegData::Sz("Video".into())),
            "{set}"
        );
    }

    // The manifest records every file with its hash.
    let manifest =
        GuestManifest::from_json(&fs_err::read(lab.in_guest(manifest::MANIFEST_PATH)).unwrap())
            .unwrap();
    assert_eq!(manifest.driver_version, "27.21.14.7005");
    assert_eq!(manifest.packages[0].name, NV_PACKAGE);
    assert_eq!(manifest.packages[0].files.len(), display.files.len());
    let inf = manifest.packages[0]
        .files
        .iter()
        .find(|f| f.path.file_name() == "nv_dispi.inf")
        .unwrap();
    assert_eq!(
        inf.blake3,
        blake3::hash(crate::testing::NV_DISPI).to_hex().as_str()
    );
    assert_eq!(manifest.registry.len(), 2 * 5);
    assert!(
        manifest
            .promotions
            .iter()
            .any(|p| p.path.as_str() == r"Windows\System32\nvcuda.dll")
    );

    let status = compare_with_guest(&driver, Some(&manifest), Some(&lab.guest), true).unwrap();
    assert_eq!(
        status.freshness,
        Freshness::UpToDate,
        "{:?}",
        status.reasons
    );
}

#[test]
fn a_second_sync_changes_nothing_and_undo_restores_the_guest() {
    let lab = Lab::new();
    lab.apply(&lab.plan(lab.driver(), "op1").unwrap()).unwrap();
    // Every file, promotion and registry value already matches: nothing to do.
    let again = lab.plan(lab.driver(), "op2").unwrap();
    assert!(again.steps.is_empty(), "{}", again.render());
    assert!(
        again.notes.last().unwrap().contains("nothing to do"),
        "{:?}",
        again.notes
    );
    lab.assert_clean_host();

    // One file changed in the guest (same size, other time): only that is compared and copied.
    let victim = lab.package_dir().join("nvlddmkm.sys");
    let mut permissions = fs_err::metadata(&victim).unwrap().permissions();
    permissions.set_mode(0o644);
    fs_err::set_permissions(&victim, permissions).unwrap();
    write(&victim, b"NVLDDMKM.SYS");
    let again = lab.plan(lab.driver(), "op2").unwrap();
    assert_eq!(
        step_names(&again),
        [
            "mount-system-disk",
            "sync-packages",
            "write-manifest",
            "dismount-system-disk"
        ]
    );
    let summary = again.steps[1].view().summary;
    assert!(
        summary
            .starts_with("Copy 1 of 310 driver file(s) (12 B), remove 0, 309 already up to date"),
        "{summary}"
    );
    lab.apply(&again).unwrap();
    assert_eq!(fs_err::read(&victim).unwrap(), b"nvlddmkm.sys");

    lab.undo_last();
    assert_eq!(
        fs_err::read(&victim).unwrap(),
        b"NVLDDMKM.SYS",
        "undo restores the guest's copy"
    );
    lab.undo_last();
    lab.assert_clean_host();
    assert!(!lab.in_guest(manifest::MANIFEST_PATH).exists());
    assert!(!lab.in_guest(r"Windows\System32\nvcuda.dll").exists());
    assert_eq!(
        fs_err::read(lab.in_guest(r"Windows\System32\nvml.dll")).unwrap(),
        b"an old copy"
    );
    let mut left = Vec::new();
    crate::sync::SyncJob::mirror(&lab.package_dir(), Path::new("/nonexistent"))
        .unwrap()
        .files
        .into_iter()
        .for_each(|f| left.push(f.dest));
    assert!(left.is_empty(), "files left behind: {left:?}");
    for set in ["ControlSet001", "ControlSet002"] {
        assert!(
            !lab.fake
                .borrow()
                .hive_has_key(&lab.hive(), &format!(r"{set}\Services\nvlddmkm"))
        );
    }
    assert!(
        lab.fake
            .borrow()
            .hive_has_key(&lab.hive(), r"ControlSet001\Services\BasicDisplay")
    );
}

#[test]
fn a_failure_rolls_back_and_dismounts() {
    let lab = Lab::new();
    let plan = lab.plan(lab.driver(), "op1").unwrap();
    lab.fake.borrow_mut().fail_next = Some((
        format!(r"write {HIVE_MOUNT}\ControlSet002"),
        "Access is denied.".to_owned(),
    ));
    let error = lab.apply(&plan).unwrap_err();
    let ExecError::StepFailed {
        index,
        error,
        rollback,
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(index, 5);
    assert!(error.message.contains("Access is denied."), "{error:?}");
    assert!(
        rollback.undo_errors.is_empty(),
        "{:?}",
        rollback.undo_errors
    );
    lab.assert_clean_host();
    assert!(!lab.package_dir().join("nvlddmkm.sys").exists());
    assert!(!lab.in_guest(r"Windows\System32\nvcuda.dll").exists());
    assert_eq!(
        fs_err::read(lab.in_guest(r"Windows\System32\nvml.dll")).unwrap(),
        b"an old copy"
    );
    assert!(
        !lab.fake
            .borrow()
            .hive_has_key(&lab.hive(), r"ControlSet001\Services\nvlddmkm")
    );
}

#[test]
fn a_crash_at_any_step_is_undone_from_the_journal() {
    let lab = Lab::new();
    let plan = lab.plan(lab.driver(), "op1").unwrap();
    for index in [1, 3, 5, 8] {
        for crash in [
            CrashPoint::BeforeApply(index),
            CrashPoint::AfterApply(index),
        ] {
            let lab = Lab::new();
            let mut journal = lab.journal();
            let options = ExecOptions { crash: Some(crash) };
            let result = executor::apply(
                &mut journal,
                &plan_for(&lab, &plan),
                &mut lab.session(),
                &options,
                &mut |_| {},
            );
            assert!(matches!(result, Err(ExecError::Crashed(_))), "{crash:?}");
            drop(journal);
            let operation = lab.journal().last_undoable().unwrap().unwrap();
            assert_eq!(operation.state, OperationState::Interrupted);
            lab.undo_last();
            lab.assert_clean_host();
            assert!(
                !lab.package_dir().join("nvlddmkm.sys").exists(),
                "{crash:?}"
            );
            assert!(!lab.in_guest(manifest::MANIFEST_PATH).exists(), "{crash:?}");
            assert!(
                !lab.fake
                    .borrow()
                    .hive_has_key(&lab.hive(), r"ControlSet001\Services\nvlddmkm"),
                "{crash:?}"
            );
        }
    }
}

/// The same plan made against another lab (paths differ per temp dir).
fn plan_for(lab: &Lab, _template: &Plan<GuestStep>) -> Plan<GuestStep> {
    lab.plan(lab.driver(), "op1").unwrap()
}

#[test]
fn a_driver_update_starts_from_the_old_package_and_status_sees_it() {
    let lab = Lab::new();
    lab.apply(&lab.plan(lab.driver(), "op1").unwrap()).unwrap();

    // The host installs a new version: a new driver-store folder with a changed file.
    let new_package = lab
        .package
        .with_file_name("nv_dispi.inf_amd64_99aa00bb11cc22dd");
    copy_tree(&lab.package, &new_package);
    write(&new_package.join("nvlddmkm.sys"), b"a newer kernel driver");
    let inf = String::from_utf8_lossy(crate::testing::NV_DISPI)
        .replace("27.21.14.7005", "27.21.14.7099")
        .replace("02/26/2021", "03/30/2021");
    write(&new_package.join("nv_dispi.inf"), inf.as_bytes());
    let mut registration = nvidia_registration(&new_package);
    registration.driver_version = Some("27.21.14.7099".to_owned());
    let updated = package::resolve(&registration).unwrap();

    let manifest =
        GuestManifest::from_json(&fs_err::read(lab.in_guest(manifest::MANIFEST_PATH)).unwrap())
            .unwrap();
    let status = compare_with_guest(&updated, Some(&manifest), None, false).unwrap();
    assert_eq!(status.freshness, Freshness::Stale);
    assert!(
        status.reasons[0].contains("27.21.14.7099"),
        "{:?}",
        status.reasons
    );

    let plan = lab.plan(updated.clone(), "op2").unwrap();
    let steps = step_names(&plan);
    assert!(steps.contains(&"adopt-package".to_owned()), "{steps:?}");
    assert!(!steps.contains(&"retire-packages".to_owned()), "{steps:?}");
    // Compared with the old folder: the unchanged files are not copied again.
    let GuestStep::SyncPackages(sync) = &plan.steps[2] else {
        panic!("{steps:?}");
    };
    let changed: Vec<&str> = sync
        .files
        .iter()
        .filter(|f| matches!(f.action, crate::sync::Action::Replace { .. }))
        .map(|f| f.dest.file_name())
        .collect();
    // (The copies here got new times, so same-size files are compared by content, not copied.)
    assert_eq!(changed, ["nvlddmkm.sys"], "{}", plan.render());
    assert!(
        !sync
            .files
            .iter()
            .any(|f| f.action == crate::sync::Action::Create),
        "{}",
        plan.render()
    );
    assert!(
        sync.files
            .iter()
            .all(|f| f.dest.as_str().contains("99aa00bb11cc22dd")),
        "the plan names the new folder"
    );
    lab.apply(&plan).unwrap();
    assert!(
        !lab.package_dir().exists(),
        "the old package folder became the new one"
    );
    let new_dir = lab.in_guest(
        r"Windows\System32\HostDriverStore\FileRepository\nv_dispi.inf_amd64_99aa00bb11cc22dd",
    );
    assert_eq!(
        fs_err::read(new_dir.join("nvlddmkm.sys")).unwrap(),
        b"a newer kernel driver"
    );
    assert!(matches!(
        lab.service_value("ControlSet001", "ImagePath"),
        Some(RegData::ExpandSz(path)) if path.contains("99aa00bb11cc22dd")
    ));
    let manifest =
        GuestManifest::from_json(&fs_err::read(lab.in_guest(manifest::MANIFEST_PATH)).unwrap())
            .unwrap();
    assert_eq!(
        compare_with_guest(&updated, Some(&manifest), Some(&lab.guest), false)
            .unwrap()
            .freshness,
        Freshness::UpToDate
    );

    // Damage in the guest is found.
    let victim = new_dir.join("nvlddmkm.sys");
    let mut permissions = fs_err::metadata(&victim).unwrap().permissions();
    permissions.set_mode(0o644);
    fs_err::set_permissions(&victim, permissions).unwrap();
    fs_err::remove_file(&victim).unwrap();
    let status = compare_with_guest(&updated, Some(&manifest), Some(&lab.guest), false).unwrap();
    assert_eq!(status.damaged.len(), 1);
    write(&victim, b"a newer kernel driver");

    // Undo brings the previous driver back, with its service path and manifest.
    lab.undo_last();
    lab.assert_clean_host();
    assert!(lab.package_dir().join("nvlddmkm.sys").exists());
    assert!(matches!(
        lab.service_value("ControlSet001", "ImagePath"),
        Some(RegData::ExpandSz(path)) if path.contains(NV_PACKAGE)
    ));
    let manifest =
        GuestManifest::from_json(&fs_err::read(lab.in_guest(manifest::MANIFEST_PATH)).unwrap())
            .unwrap();
    assert_eq!(manifest.driver_version, "27.21.14.7005");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            write(&target, &fs_err::read(entry.path()).unwrap());
        }
    }
}

#[test]
fn refuses_running_saved_and_unreadable_guests() {
    let lab = Lab::new();
    lab.fake.borrow_mut().vms.get_mut(VM).unwrap().state = VmState::Running;
    let error = lab.plan(lab.driver(), "x").unwrap_err();
    assert!(matches!(error, GuestError::VmNotOff { .. }), "{error}");
    assert!(error.to_string().contains("asks before it does"));

    // The user agrees to a shutdown: a journaled step, undone by starting the VM again.
    let shutdown = plan_shutdown(VM);
    lab.apply(&shutdown).unwrap();
    assert_eq!(lab.fake.borrow().vms[VM].state, VmState::Off);
    lab.undo_last();
    assert_eq!(lab.fake.borrow().vms[VM].state, VmState::Running);

    lab.fake.borrow_mut().vms.get_mut(VM).unwrap().state = VmState::Saved;
    let error = lab.plan(lab.driver(), "x").unwrap_err();
    assert!(error.to_string().contains("Remove-VMSavedState"), "{error}");

    lab.fake.borrow_mut().vms.get_mut(VM).unwrap().state = VmState::Off;
    lab.fake.borrow_mut().disks.get_mut(VHD).unwrap()[2].bitlocker = BitLocker::Locked;
    let error = lab.plan(lab.driver(), "x").unwrap_err();
    let text = error.to_string();
    assert!(text.contains("BitLocker-locked"), "{text}");
    assert!(text.contains("Win11 GPU.vhdx partition 3"), "{text}");
    lab.assert_clean_host();
}

#[test]
fn several_windows_installations_are_not_guessed() {
    let lab = Lab::new();
    write(
        &lab.temp
            .path()
            .join("guest-d/Windows/System32/config/SYSTEM"),
        b"regf",
    );
    let error = lab.plan(lab.driver(), "x").unwrap_err();
    assert!(
        matches!(error, GuestError::SeveralWindows { .. }),
        "{error}"
    );
    lab.assert_clean_host();
}

#[test]
fn an_already_mounted_disk_and_pass_through_disks_are_explained() {
    let lab = Lab::new();
    lab.fake.borrow_mut().mounted.insert(VHD.to_owned(), 7);
    let error = lab.plan(lab.driver(), "x").unwrap_err();
    assert!(error.to_string().contains("Dismount-VHD -Path"), "{error}");
    assert_eq!(
        lab.fake.borrow().mounted.len(),
        1,
        "only the user's own mount is left"
    );

    let lab = Lab::new();
    lab.fake.borrow_mut().vms.get_mut(VM).unwrap().disks = vec![VmDisk {
        path: None,
        location: "SCSI 0:0".to_owned(),
    }];
    let error = lab.plan(lab.driver(), "x").unwrap_err();
    assert!(
        error.to_string().contains("1 pass-through disk(s) skipped"),
        "{error}"
    );
}

#[test]
fn dry_run_lists_every_change() {
    let lab = Lab::new();
    let plan = lab.plan(lab.driver(), "20261121T000000Z-1").unwrap();
    let text = plan.render().to_string();
    assert!(
        text.contains(r"create  Windows\System32\nvcuda.dll <- "),
        "{text}"
    );
    assert!(
        text.contains(r"replace Windows\System32\nvml.dll <- "),
        "{text}"
    );
    insta::assert_snapshot!(text);
    assert!(unverified_listing(&lab.driver()).len() > 310);
}
