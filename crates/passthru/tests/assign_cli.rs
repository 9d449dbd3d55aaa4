//! `passthru assign`, `release`, `verify` and `survey` as a user runs them, against fake sysfs
//! roots (`--root`) made from the fake kernel. A plain directory tree is no kernel: writes to
//! it change files and nothing else, so a real run here proves the wiring (journal, rollback,
//! exit codes) and the VM lab proves the binding itself.

#![cfg(unix)]

use std::path::Path;

use assert_cmd::Command;
use passthru_core::plan::executor::{self, ExecOptions};
use passthru_core::plan::journal::Journal;
use passthru_linux::assign::{AssignRequest, prepare_assign};
use passthru_linux::bind::KernelPort;
use passthru_linux::inventory::read_inventory;
use passthru_linux::testing::{FakeKernel, FakeModule, lab};
use tempfile::TempDir;

fn passthru(root: &Path, journal: &Path) -> Command {
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .arg("--root")
        .arg(root)
        .arg("--journal-dir")
        .arg(journal)
        .args(["--color", "never"])
        .env("PASSTHRU_PCI_IDS", "bundled");
    command
}

fn materialize(kernel: &FakeKernel) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    kernel.tree().materialize(dir.path()).unwrap();
    dir
}

fn output(command: &mut Command) -> (String, String, i32) {
    let output = command.output().unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

/// Assigns `devices` in `kernel` through the real planner and executor, journaling into
/// `journal` (what an earlier `passthru assign` left behind).
fn assigned(kernel: &mut FakeKernel, journal: &Path, devices: &[&str]) {
    let inventory = read_inventory(kernel.tree());
    let request = AssignRequest {
        devices: devices.iter().map(|d| (*d).to_owned()).collect(),
        ..AssignRequest::default()
    };
    let plan = prepare_assign(kernel.tree(), &inventory, &request).unwrap();
    let mut journal = Journal::open(journal).unwrap();
    let port: &mut dyn KernelPort = kernel;
    executor::apply(
        &mut journal,
        &plan.plan,
        port,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap();
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let root = materialize(&FakeKernel::q35_lab());
    let journal = tempfile::tempdir().unwrap();
    let (stdout, stderr, code) =
        output(passthru(root.path(), journal.path()).args(["assign", "01:00.0", "--dry-run"]));
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!(stdout);
    let override_text = fs_err::read_to_string(
        root.path()
            .join("sys/bus/pci/devices/0000:01:00.0/driver_override"),
    )
    .unwrap();
    assert_eq!(override_text, "(null)\n");
    assert!(!journal.path().join("journal.jsonl").exists());
}

#[test]
fn the_boot_vga_is_refused_with_the_reason_and_the_way_forward() {
    let root = materialize(&FakeKernel::q35_lab());
    let journal = tempfile::tempdir().unwrap();
    let (stdout, stderr, code) =
        output(passthru(root.path(), journal.path()).args(["assign", "00:01.0"]));
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_shared_group_is_refused_as_json_data() {
    let root = materialize(&FakeKernel::q35_lab());
    let journal = tempfile::tempdir().unwrap();
    let (stdout, _, code) = output(passthru(root.path(), journal.path()).args([
        "--json",
        "assign",
        lab::BRIDGED_NIC_1,
    ]));
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["outcome"], "refused");
    assert_eq!(json["reasons"][0]["code"], "group-shared");
}

#[test]
fn an_ambiguous_selector_lists_the_candidates() {
    let root = materialize(&FakeKernel::q35_lab());
    let journal = tempfile::tempdir().unwrap();
    let (_, stderr, code) =
        output(passthru(root.path(), journal.path()).args(["assign", "1234:1111"]));
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_root_whose_kernel_does_not_react_is_rolled_back() {
    // vfio-pci is loaded, so no module command is needed; the unbind "succeeds" as a file
    // write, and the check of the driver link finds the host driver still bound.
    let kernel = FakeKernel::q35_lab_builder()
        .module(
            FakeModule::new("vfio_pci")
                .depends(&["vfio"])
                .driver("vfio-pci")
                .loaded(),
        )
        .module(FakeModule::new("vfio").loaded())
        .build();
    let root = materialize(&kernel);
    let journal = tempfile::tempdir().unwrap();
    let (stdout, stderr, code) =
        output(passthru(root.path(), journal.path()).args(["assign", lab::GPU]));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("[4/10] Unbind 0000:01:00.0 from bochs-drm ... failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("undo 2: Let only vfio-pci bind 0000:01:00.0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("step 4 failed: 0000:01:00.0 is bound to bochs-drm instead of no driver"),
        "{stderr}"
    );
    assert!(stderr.contains("Every change was rolled back"), "{stderr}");
    let (journal_text, _, _) = output(passthru(root.path(), journal.path()).args(["journal"]));
    assert!(
        journal_text.contains("rolled back  assign 0000:01:00.0"),
        "{journal_text}"
    );
}

#[test]
fn release_dry_run_names_the_driver_recorded_at_assign_time() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    assigned(&mut kernel, journal.path(), &[lab::GPU]);
    let root = materialize(&kernel);
    let (stdout, stderr, code) =
        output(passthru(root.path(), journal.path()).args(["release", "8086:293e", "--dry-run"]));
    assert_eq!(code, 0, "{stderr}");
    insta::with_settings!({filters => vec![(r"\d{8}T\d{6}-\d+(-\d+)?", "[operation]")]}, {
        insta::assert_snapshot!(stdout);
    });
}

#[test]
fn release_of_devices_with_the_host_is_nothing_to_do() {
    let root = materialize(&FakeKernel::q35_lab());
    let journal = tempfile::tempdir().unwrap();
    let (stdout, stderr, code) =
        output(passthru(root.path(), journal.path()).args(["release", lab::GPU]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "  note: 0000:01:00.0 is with the host already (bound to bochs-drm); nothing to do for it\n\
         Nothing to do: the host has these devices already.\n"
    );
}

#[test]
fn verify_takes_selectors_and_uses_the_survey_viability_rule() {
    let root = materialize(&FakeKernel::q35_lab());
    let journal = tempfile::tempdir().unwrap();
    let (stdout, _, code) =
        output(passthru(root.path(), journal.path()).args(["verify", "82801I"]));
    assert_eq!(code, 1);
    insta::assert_snapshot!(stdout, @r"
    0000:01:00.1  not ready for a VM
      driver snd_hda_intel, IOMMU group 3
      problem: 0000:01:00.1 is bound to snd_hda_intel, not to vfio-pci
        help: give it to vfio-pci first: `passthru assign 0000:01:00.1`
      problem: IOMMU group 3 is not viable: 0000:01:00.0 (bound to bochs-drm) is still with a host driver
        help: every device of the group must be on vfio-pci (or unbound) before a VM can use any of them: `passthru assign 0000:01:00.1` moves the other functions of its card along, and with --with-group the rest of the group; or move the card to another slot
    ");
    // The bridge without a driver does not block the bridged group; the other NIC does.
    let (stdout, _, _) =
        output(passthru(root.path(), journal.path()).args(["verify", lab::BRIDGED_NIC_1]));
    assert!(
        stdout.contains("0000:08:02.0 (bound to e1000) is still"),
        "{stdout}"
    );
    assert!(!stdout.contains("0000:07:00.0"), "{stdout}");
}

#[test]
fn survey_reports_whether_the_persistent_assignment_took_effect() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    assigned(&mut kernel, journal.path(), &[lab::GPU]);
    let root = materialize(&kernel);
    let state = serde_json::json!({
        "schema": "passthru.persistent/1",
        "changed_at": "2025-01-01T10:00:00Z",
        "devices": [
            {"address": lab::GPU, "id": "1234:1111", "class": "0x030000", "host_drivers": ["bochs"]},
            {"address": lab::AUDIO, "id": "8086:293e", "class": "0x040300", "host_drivers": ["snd_hda_intel"]},
        ],
        "binding": "address",
        "bootloader": "grub",
        "generator": "initramfs-tools",
        "kernel_params": ["intel_iommu=on", "iommu=pt", "passthru.vfio=1"],
        "early_modules": ["vfio_pci"],
        "added": {},
        "owned_files": [],
        "kernels": [],
    });
    fs_err::create_dir_all(root.path().join("etc/passthru")).unwrap();
    fs_err::write(
        root.path().join("etc/passthru/persistent.json"),
        serde_json::to_vec_pretty(&state).unwrap(),
    )
    .unwrap();
    fs_err::create_dir_all(root.path().join("usr/lib/udev/rules.d")).unwrap();
    // Booted after the change (2025-01-02) without passthru's parameter: the devices are on
    // vfio-pci only because they were bound at run time.
    fs_err::write(root.path().join("proc/stat"), "btime 1735776000\n").unwrap();
    let (stdout, stderr, code) =
        output(passthru(root.path(), journal.path()).args(["--json", "survey", lab::GPU]));
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json["persistent"]["findings"][0]["verdict"],
        "bound-at-run-time"
    );
    let codes: Vec<&str> = json["devices"][0]["verdict"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reason| reason["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"persistent-bound-at-run-time"), "{codes:?}");
    let host_codes: Vec<&str> = json["host"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["code"].as_str().unwrap())
        .collect();
    assert!(
        host_codes.contains(&"persistent-bound-at-run-time"),
        "{host_codes:?}"
    );

    // Now booted with it: effective.
    fs_err::write(
        root.path().join("proc/cmdline"),
        "console=ttyS0 intel_iommu=on iommu=pt passthru.vfio=1\n",
    )
    .unwrap();
    let (stdout, _, _) = output(passthru(root.path(), journal.path()).args(["survey", lab::GPU]));
    assert!(
        stdout.contains("persistent assignment effective: on vfio-pci since boot"),
        "{stdout}"
    );
}
