//! End to end: `passthru driver sync` / `driver status` / `undo` against the simulated Hyper-V
//! with its guest disks (`PASSTHRU_HYPERV_SIMULATOR`), on the lab of
//! `passthru_driver::testing::lab`: a VM with a data disk, the system disk and a
//! BitLocker-locked disk, and the host's NVIDIA 470.05 package.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use passthru_driver::guest::host::BitLocker;
use passthru_driver::guest::manifest::MANIFEST_PATH;
use passthru_driver::guest::simulated::hive::HiveKeys;
use passthru_driver::guest_path::GuestPath;
use passthru_driver::testing::lab::SimLab;
use passthru_driver::testing::{NV_PACKAGE, write};

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

    fn passthru(&self) -> Command {
        let mut command = Command::cargo_bin("passthru").unwrap();
        command
            .env("PASSTHRU_HYPERV_SIMULATOR", self.lab.state_file())
            .env_remove("PASSTHRU_ROOT")
            .env_remove("PASSTHRU_SIMULATOR_CRASH")
            .arg("--color=never")
            .arg("--journal-dir")
            .arg(self.temp.path().join("journal"));
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.passthru().args(args).output().unwrap()
    }

    fn guest(&self, path: &str) -> PathBuf {
        GuestPath::new(path).on(&self.lab.guest_root())
    }

    fn package(&self, name: &str) -> PathBuf {
        self.guest(&format!(
            r"Windows\System32\HostDriverStore\FileRepository\{name}"
        ))
    }

    fn hive(&self) -> HiveKeys {
        HiveKeys::read(&self.guest(r"Windows\System32\config\SYSTEM")).unwrap()
    }

    fn set_vm_state(&self, state: &str) {
        self.lab
            .edit_state(|value| {
                for vm in value["vms"].as_array_mut().unwrap() {
                    if vm["name"] == SimLab::VM {
                        vm["state"] = state.into();
                    }
                }
            })
            .unwrap();
    }

    /// The VM without its GPU partition.
    fn remove_partitions(&self) {
        self.lab
            .edit_state(|value| {
                for vm in value["vms"].as_array_mut().unwrap() {
                    vm["gpuAdapters"] = serde_json::json!([]);
                }
            })
            .unwrap();
    }

    fn vm_state(&self) -> String {
        self.lab.state().unwrap()["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|vm| vm["name"] == SimLab::VM)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Nothing mounted, no hive loaded.
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

    /// The guest exactly as the lab built it (no driver, no folders, no record).
    fn assert_pristine(&self) {
        self.assert_clean();
        assert!(!self.guest(r"Windows\System32\HostDriverStore").exists());
        assert!(!self.guest(r"Windows\System32\nvcuda.dll").exists());
        assert_eq!(
            fs_err::read(self.guest(r"Windows\System32\nvml.dll")).unwrap(),
            b"a copy a user put here by hand"
        );
        assert!(!self.hive().exists(r"ControlSet001\Services\nvlddmkm"));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\n{}\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn failed(output: &Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stderr)
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({filters => vec![
            (r"\d{8}T\d{6}-\d+(-\d+)?", "[OPERATION]"),
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
            (r"in \d+\.\d s \([^)]*\)", "in [DURATION]"),
            (r"passthru \d+\.\d+\.\d+", "passthru [VERSION]"),
        ]}, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

#[test]
fn first_sync_resync_and_status() {
    let lab = Lab::new();
    let dry = succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM, "--dry-run"]));
    snapshot!("dry_run_first_sync", &dry);
    lab.assert_pristine();

    let sync = succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM]));
    snapshot!("first_sync", &sync);
    lab.assert_clean();
    let nvlddmkm = lab.package(NV_PACKAGE).join("nvlddmkm.sys");
    assert_eq!(fs_err::read(&nvlddmkm).unwrap(), b"nvlddmkm.sys");
    assert!(
        fs_err::metadata(&nvlddmkm)
            .unwrap()
            .permissions()
            .readonly()
    );
    assert!(lab.guest(MANIFEST_PATH).is_file());
    assert!(lab.hive().exists(r"ControlSet001\Services\nvlddmkm"));

    let again = succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM]));
    snapshot!("resync_nothing_to_do", &again);
    let status = succeeded(&lab.run(&["driver", "status", "--vm", SimLab::VM, "--verify"]));
    snapshot!("status_up_to_date", &status);
    lab.assert_clean();
}

#[test]
fn a_host_driver_update_is_stale_until_synced_and_only_changes_are_copied() {
    let lab = Lab::new();
    succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM]));
    let update = lab.lab.update_driver().unwrap();

    let output = lab.run(&["driver", "status", "--vm", SimLab::VM]);
    failed(&output, 1);
    snapshot!("status_stale", text(&output.stdout));

    let sync = succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM]));
    let copy_line = sync
        .lines()
        .find(|line| line.contains("driver file(s)"))
        .unwrap()
        .to_owned();
    assert_eq!(
        copy_line,
        format!(
            "  [3/9] Copy {} of 310 driver file(s) (772.3 KiB), remove 1, 277 already up to date",
            update.changed.len() + 1
        ),
        "{sync}"
    );
    assert!(
        sync.contains("Start the new package folder from the previous version's"),
        "{sync}"
    );
    succeeded(&lab.run(&["driver", "status", "--vm", SimLab::VM, "--verify"]));
    assert!(!lab.package(NV_PACKAGE).exists());
    assert!(
        lab.package(SimLab::UPDATED_PACKAGE)
            .join(&update.added)
            .is_file()
    );
    let image = lab
        .hive()
        .value(r"ControlSet001\Services\nvlddmkm", "ImagePath")
        .cloned();
    assert!(
        format!("{image:?}").contains(SimLab::UPDATED_PACKAGE),
        "{image:?}"
    );

    // Undo the update: the previous version is back, and status says so.
    let undone = succeeded(&lab.run(&["undo"]));
    assert!(undone.contains("Undone:"), "{undone}");
    lab.assert_clean();
    assert!(
        lab.package(NV_PACKAGE)
            .join(update.removed.replace('\\', "/"))
            .is_file()
    );
    assert!(!lab.package(SimLab::UPDATED_PACKAGE).exists());
    // ... and undo of the first sync leaves the guest as it was.
    succeeded(&lab.run(&["undo"]));
    lab.assert_pristine();
}

#[test]
fn a_bitlocker_locked_system_volume_is_refused() {
    let lab = Lab::new();
    lab.lab
        .edit_disks(|disks| {
            let system = disks.vhds.get_mut(SimLab::SYSTEM_VHD).unwrap();
            system.partitions[2].bit_locker = BitLocker::Locked;
        })
        .unwrap();
    let stderr = failed(&lab.run(&["driver", "sync", "--vm", SimLab::VM]), 1);
    snapshot!("bitlocker_refusal", &stderr);
    lab.assert_clean();
    let output = lab.run(&["driver", "status", "--vm", SimLab::VM]);
    let stderr = failed(&output, 2);
    assert!(stderr.contains("BitLocker-locked"), "{stderr}");
}

#[test]
fn a_running_vm_is_refused_unless_the_user_agrees() {
    let lab = Lab::new();
    lab.set_vm_state("Running");
    let stderr = failed(&lab.run(&["driver", "sync", "--vm", SimLab::VM]), 1);
    snapshot!("running_vm_refusal", &stderr);
    assert_eq!(lab.vm_state(), "Running");

    // A dry run says what a first sync writes, without reading the disk.
    let dry = succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM, "--dry-run"]));
    assert!(dry.contains("(not verified against the guest)"), "{dry}");
    assert!(
        dry.contains(r"set     HKLM\SYSTEM\ControlSet00N\Services\nvlddmkm\ImagePath"),
        "{dry}"
    );
    // Status while it runs, before any sync: passthru cannot tell.
    let stderr = failed(&lab.run(&["driver", "status", "--vm", SimLab::VM]), 2);
    assert!(stderr.contains("cannot tell"), "{stderr}");

    // --stop-vm: a journaled shutdown, then the sync.
    let sync = succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM, "--stop-vm"]));
    assert!(
        sync.contains("Shut VM 'exampleName' down (journal:"),
        "{sync}"
    );
    assert!(
        sync.contains("start it again: Start-VM -Name 'exampleName'"),
        "{sync}"
    );
    assert_eq!(lab.vm_state(), "Off");

    // While it runs again, status answers from the host's record, and undo refuses.
    lab.set_vm_state("Running");
    let status = succeeded(&lab.run(&["driver", "status", "--vm", SimLab::VM]));
    snapshot!("status_from_host_record", &status);
    let stderr = failed(&lab.run(&["undo"]), 1);
    assert!(stderr.contains("only possible while it is off"), "{stderr}");
    assert!(lab.guest(MANIFEST_PATH).is_file(), "nothing was undone");

    lab.set_vm_state("Off");
    succeeded(&lab.run(&["undo"]));
    lab.assert_pristine();
    // The second undo starts the VM the sync shut down.
    succeeded(&lab.run(&["undo"]));
    assert_eq!(lab.vm_state(), "Running");
}

#[test]
fn a_failure_mid_copy_rolls_back_and_dismounts() {
    let lab = Lab::new();
    // A folder (with a file of the user's) where a driver file belongs.
    let obstacle = lab.package(NV_PACKAGE).join("nvlddmkm.sys");
    write(&obstacle.join("notes.txt"), b"mine");
    let output = lab.run(&["driver", "sync", "--vm", SimLab::VM]);
    let stderr = failed(&output, 1);
    let stdout = text(&output.stdout);
    assert!(
        stderr.contains("is a directory where the driver has a file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("every change was rolled back and the VM's disk dismounted"),
        "{stderr}"
    );
    assert!(
        stdout.contains("undo [1] Mount the system disk"),
        "{stdout}"
    );
    lab.assert_clean();
    assert!(!lab.guest(MANIFEST_PATH).exists());
    assert_eq!(fs_err::read(obstacle.join("notes.txt")).unwrap(), b"mine");
    let others: Vec<_> = fs_err::read_dir(lab.package(NV_PACKAGE))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(others, ["nvlddmkm.sys"], "only the user's folder is left");
    let journal = succeeded(&lab.run(&["journal"]));
    assert!(journal.contains("rolled back"), "{journal}");
}

#[test]
fn a_crash_mid_run_is_finished_by_undo() {
    let lab = Lab::new();
    // Dies right after loading the guest's hive (step 4): disk mounted, hive loaded.
    let output = lab
        .passthru()
        .env("PASSTHRU_SIMULATOR_CRASH", "after:4")
        .args(["driver", "sync", "--vm", SimLab::VM])
        .output()
        .unwrap();
    let stderr = failed(&output, 3);
    assert!(stderr.contains("simulated crash"), "{stderr}");
    let disks = lab.lab.guest_disks().unwrap();
    assert_eq!(disks.mounted.len(), 1);
    assert_eq!(disks.hives.len(), 1);
    assert!(lab.package(NV_PACKAGE).join("nvlddmkm.sys").is_file());

    let pending = succeeded(&lab.run(&["undo", "--dry-run"]));
    assert!(pending.contains("interrupted"), "{pending}");
    let undone = succeeded(&lab.run(&["undo"]));
    assert!(undone.contains("Undone:"), "{undone}");
    lab.assert_pristine();
}

#[test]
fn json_output_has_schemas_and_no_progress() {
    let lab = Lab::new();
    let dry: serde_json::Value = serde_json::from_str(&succeeded(&lab.run(&[
        "--json",
        "driver",
        "sync",
        "--vm",
        SimLab::VM,
        "--dry-run",
    ])))
    .unwrap();
    assert_eq!(dry["schema"], "passthru.driver.plan/1");
    assert_eq!(dry["verified"], true);
    assert_eq!(dry["steps"].as_array().unwrap().len(), 8);

    let output = lab.run(&["--json", "driver", "status", "--vm", SimLab::VM]);
    failed(&output, 1);
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["schema"], "passthru.driver.status/1");
    assert_eq!(status["status"]["freshness"], "not-installed");

    let sync: serde_json::Value = serde_json::from_str(&succeeded(&lab.run(&[
        "--json",
        "driver",
        "sync",
        "--vm",
        SimLab::VM,
    ])))
    .unwrap();
    assert_eq!(sync["schema"], "passthru.driver.sync/1");
    assert_eq!(sync["outcome"], "applied");
    assert_eq!(sync["copied"]["files"], 351);
    assert_eq!(sync["host_record"], true);

    let status: serde_json::Value = serde_json::from_str(&succeeded(&lab.run(&[
        "--json",
        "driver",
        "status",
        "--vm",
        SimLab::VM,
    ])))
    .unwrap();
    assert_eq!(status["status"]["freshness"], "up-to-date");
    assert_eq!(status["source"], "guest-disk");
}

#[test]
fn the_gpu_is_the_partitioned_one_or_named() {
    let lab = Lab::new();
    // Without a partition, two partitionable GPUs are ambiguous.
    lab.remove_partitions();
    let stderr = failed(
        &lab.run(&["driver", "sync", "--vm", SimLab::VM, "--dry-run"]),
        1,
    );
    snapshot!("ambiguous_gpu", &stderr);
    let dry = succeeded(&lab.run(&[
        "driver",
        "sync",
        "--vm",
        SimLab::VM,
        "--gpu",
        "3090",
        "--dry-run",
    ]));
    assert!(
        dry.contains("has no partition of NVIDIA GeForce RTX 3090; add one with `passthru gpu-p add --vm exampleName --gpu 3090`"),
        "{dry}"
    );
    let stderr = failed(&lab.run(&["driver", "status", "--vm", "Nope"]), 2);
    assert!(
        stderr.contains("Hyper-V has no VM named `Nope`"),
        "{stderr}"
    );
}

#[test]
fn gpu_p_add_names_the_driver_sync_that_remains() {
    let lab = Lab::new();
    lab.remove_partitions();
    let output = succeeded(&lab.run(&["gpu-p", "add", "--vm", SimLab::VM, "--gpu", "3090"]));
    assert!(
        output.contains("`passthru driver sync --vm exampleName`"),
        "{output}"
    );
    // And that is what then works.
    succeeded(&lab.run(&["driver", "sync", "--vm", SimLab::VM]));
}
