//! `passthru verify` and `passthru undo` as a user runs them, against fake sysfs trees
//! (`--root`) and journals written by the real executor.
// The fake trees are written to disk with Unix file types (`MemTree::materialize`).
#![cfg(unix)]

use std::path::Path;

use assert_cmd::Command;
use passthru_core::plan::Plan;
use passthru_core::plan::executor::{self, ExecOptions};
use passthru_core::plan::journal::{Event, Journal, Outcome};
use passthru_linux::bind::{BindTarget, DeviceBinding, KernelPort, SysfsStep, bind_steps};
use passthru_linux::sysfs;
use passthru_linux::testing::{FakeKernel, lab};
use tempfile::TempDir;

fn passthru(root: &Path, journal: &Path) -> Command {
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .arg("--root")
        .arg(root)
        .arg("--journal-dir")
        .arg(journal)
        .args(["--color", "never"]);
    command
}

fn materialize(kernel: &FakeKernel) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    kernel.tree().materialize(dir.path()).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Applies `steps` to `kernel` through the real executor, journaling into `journal`.
fn apply(kernel: &mut FakeKernel, journal: &Path, operation: &str, steps: Vec<SysfsStep>) {
    let mut plan = Plan::new(operation);
    plan.steps = steps;
    let mut journal = Journal::open(journal).unwrap();
    let port: &mut dyn KernelPort = kernel;
    let report = executor::apply(
        &mut journal,
        &plan,
        port,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
}

fn assign_steps(kernel: &FakeKernel, devices: &[&str]) -> Vec<SysfsStep> {
    let fs = kernel.fs();
    let bindings: Vec<DeviceBinding> = devices
        .iter()
        .map(|device| DeviceBinding::read(fs, device.parse().unwrap()).unwrap())
        .collect();
    bind_steps(
        &bindings,
        &BindTarget::vfio_pci(),
        sysfs::loaded_modules(fs).unwrap(),
    )
}

macro_rules! with_ids_hidden {
    ($body:block) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\d{8}T\d{6}-\d+(-\d+)?", "[operation]");
        settings.add_filter(r"passthru \d+\.\d+\.\d+", "passthru [version]");
        settings.bind(|| $body);
    }};
}

#[test]
fn verify_explains_a_device_still_on_its_host_driver() {
    let root = materialize(&FakeKernel::gpu_with_audio());
    let journal = tempfile::tempdir().unwrap();
    let output = passthru(root.path(), journal.path())
        .args(["verify", "01:00.0", "0000:00:03.0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!(text(&output.stdout), @r"
    0000:00:03.0  not ready for a VM
      driver e1000e, IOMMU group 4
      problem: 0000:00:03.0 is bound to e1000e, not to vfio-pci
        help: give it to vfio-pci first: `passthru assign 0000:00:03.0`
    0000:01:00.0  not ready for a VM
      driver bochs-drm, IOMMU group 3
      problem: 0000:01:00.0 is bound to bochs-drm, not to vfio-pci
        help: give it to vfio-pci first: `passthru assign 0000:01:00.0`
      problem: IOMMU group 3 is not viable: 0000:01:00.1 (bound to snd_hda_intel) is still with a host driver
        help: every device of the group must be on vfio-pci (or unbound) before a VM can use any of them: `passthru assign 0000:01:00.0` moves the other functions of its card along, and with --with-group the rest of the group; or move the card to another slot
    ");
}

#[test]
fn verify_after_an_assign_reaches_the_vfio_container() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let journal = tempfile::tempdir().unwrap();
    let steps = assign_steps(&kernel, &[lab::GPU, lab::AUDIO]);
    apply(&mut kernel, journal.path(), "assign", steps);
    // In a tree, /dev/vfio/vfio is a plain file: the first ioctl tells.
    let root = materialize(&kernel);
    let output = passthru(root.path(), journal.path())
        .args(["--json", "verify", lab::GPU])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    insta::assert_json_snapshot!(json, @r#"
    {
      "devices": [
        {
          "device": "0000:01:00.0",
          "driver": "vfio-pci",
          "iommu_group": 3,
          "problems": [
            {
              "code": "not-vfio",
              "help": "/dev/vfio/vfio is not the VFIO container device; check the vfio module",
              "message": "VFIO_GET_API_VERSION on /dev/vfio/vfio failed with ENOTTY (inappropriate ioctl for device)"
            }
          ],
          "ready": false,
          "reset": {
            "result": "not-tried"
          },
          "trace": {
            "api_version": {
              "failed": "ENOTTY"
            },
            "open_container": {
              "ok": null
            }
          }
        }
      ],
      "schema": "passthru.verify/1"
    }
    "#);
}

#[test]
fn verify_takes_the_survey_selectors() {
    let root = materialize(&FakeKernel::gpu_with_audio());
    let journal = tempfile::tempdir().unwrap();
    // A driver name is not a device name: nothing matches, and the error says where to look.
    let output = passthru(root.path(), journal.path())
        .args(["verify", "bochs"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!(text(&output.stderr), @r#"
    error: no device matches "bochs"; run `passthru survey` to see the devices and their addresses
    "#);
    // vendor:device naming exactly one device works like its address.
    let output = passthru(root.path(), journal.path())
        .args(["verify", "8086:10d3"])
        .env("PASSTHRU_PCI_IDS", "bundled")
        .output()
        .unwrap();
    assert!(text(&output.stdout).starts_with("0000:00:03.0  not ready for a VM"));
}

#[test]
fn undo_dry_run_prints_the_exact_writes_from_the_current_state() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let journal = tempfile::tempdir().unwrap();
    let steps = assign_steps(&kernel, &[lab::GPU, lab::AUDIO]);
    apply(
        &mut kernel,
        journal.path(),
        "assign 0000:01:00.0 0000:01:00.1",
        steps,
    );
    let root = materialize(&kernel);
    let output = passthru(root.path(), journal.path())
        .args(["undo", "--dry-run"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    with_ids_hidden!({
        insta::assert_snapshot!(text(&output.stdout), @r"
        Would undo [operation] (assign 0000:01:00.0 0000:01:00.1, applied), last step first:
          10. undo: Check that VFIO group 3 exists (/dev/vfio/3)
               (nothing to do: already as before)
          9. undo: Check that 0000:01:00.1 is bound to vfio-pci
               (nothing to do: already as before)
          8. undo: Check that 0000:01:00.0 is bound to vfio-pci
               (nothing to do: already as before)
          7. undo: Bind 0000:01:00.1 to vfio-pci (drivers_probe)
               echo 0000:01:00.1 > /sys/bus/pci/drivers/vfio-pci/unbind
          6. undo: Bind 0000:01:00.0 to vfio-pci (drivers_probe)
               echo 0000:01:00.0 > /sys/bus/pci/drivers/vfio-pci/unbind
          5. undo: Unbind 0000:01:00.1 from snd_hda_intel
               echo snd_hda_intel > /sys/bus/pci/devices/0000:01:00.1/driver_override
               echo 0000:01:00.1 > /sys/bus/pci/drivers/snd_hda_intel/bind
               echo vfio-pci > /sys/bus/pci/devices/0000:01:00.1/driver_override
          4. undo: Unbind 0000:01:00.0 from bochs-drm
               echo bochs-drm > /sys/bus/pci/devices/0000:01:00.0/driver_override
               echo 0000:01:00.0 > /sys/bus/pci/drivers/bochs-drm/bind
               echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override
          3. undo: Let only vfio-pci bind 0000:01:00.1 (driver_override)
               echo > /sys/bus/pci/devices/0000:01:00.1/driver_override
          2. undo: Let only vfio-pci bind 0000:01:00.0 (driver_override)
               echo > /sys/bus/pci/devices/0000:01:00.0/driver_override
          1. undo: Load the vfio-pci module
               rmmod vfio_pci
               rmmod vfio_iommu_type1
               rmmod vfio_pci_core
               rmmod vfio
               rmmod vfio_virqfd
        Nothing was changed (--dry-run).
        ");
    });
}

#[test]
fn undo_restores_driver_override_files_under_a_root() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let journal = tempfile::tempdir().unwrap();
    let steps = vec![
        SysfsStep::set_override(lab::GPU.parse().unwrap(), "vfio-pci", None),
        SysfsStep::set_override(lab::AUDIO.parse().unwrap(), "vfio-pci", None),
    ];
    apply(
        &mut kernel,
        journal.path(),
        "pin the GPU to vfio-pci",
        steps,
    );
    let root = materialize(&kernel);
    let override_file = |device: &str| {
        root.path()
            .join(format!("sys/bus/pci/devices/{device}/driver_override"))
    };
    assert_eq!(
        fs_err::read_to_string(override_file(lab::GPU)).unwrap(),
        "vfio-pci\n"
    );
    let output = passthru(root.path(), journal.path())
        .arg("undo")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stdout));
    with_ids_hidden!({
        insta::assert_snapshot!(text(&output.stdout), @r"
        Undoing [operation] (pin the GPU to vfio-pci, applied):
          2. undo: Let only vfio-pci bind 0000:01:00.1 (driver_override)
          1. undo: Let only vfio-pci bind 0000:01:00.0 (driver_override)
        Undone: the host is back as it was before `pin the GPU to vfio-pci`.
        ");
    });
    // Clearing writes a lone newline, which the kernel shows as `(null)`.
    assert_eq!(
        fs_err::read_to_string(override_file(lab::GPU)).unwrap(),
        "\n"
    );
    assert_eq!(
        fs_err::read_to_string(override_file(lab::AUDIO)).unwrap(),
        "\n"
    );
    let again = passthru(root.path(), journal.path())
        .arg("undo")
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(
        text(&again.stdout).starts_with("Nothing to undo"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn undo_names_a_kind_it_cannot_read_and_who_wrote_it() {
    let root = tempfile::tempdir().unwrap();
    let journal_dir = tempfile::tempdir().unwrap();
    {
        let mut journal = Journal::open(journal_dir.path()).unwrap();
        let id = "20250101T000000-42";
        journal
            .append(
                id,
                Event::Begin {
                    kind: "hyperv-dda".into(),
                    operation: "assign GPU to vm1".into(),
                    steps: vec![serde_json::json!({"cmdlet": "Dismount-VMHostAssignableDevice"})],
                    views: vec![passthru_core::plan::StepView::new("Dismount the GPU")],
                    writer: Some("passthru 0.9.0".into()),
                },
            )
            .unwrap();
        journal.append(id, Event::Intent { index: 0 }).unwrap();
    }
    let output = passthru(root.path(), journal_dir.path())
        .arg("undo")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    with_ids_hidden!({
        insta::assert_snapshot!(text(&output.stderr), @r"
        error: operation `[operation]` (assign GPU to vm1) was written by passthru [version] with steps of kind `hyperv-dda`, which passthru [version] cannot undo
          help: run `passthru undo --operation [operation]` with a passthru that knows `hyperv-dda` steps (the one that wrote it); `passthru journal [operation]` shows every step
        ");
    });
}
