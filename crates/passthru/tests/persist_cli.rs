//! `passthru assign/release --persistent` and `undo` at the command line, on a copy of the
//! Debian fixture root. Applying needs the distribution's tools inside the root; that runs in
//! `tools/stages/45-boot-e2e.sh` against a real Debian root. Here: the plan, the checks, and
//! the errors people meet.

#![cfg(unix)]

use std::path::Path;

use assert_cmd::Command;

fn copy_tree(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() != ".gitkeep" {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The Debian fixture with an RX 6600 (amdgpu) at 0000:03:00.0.
fn debian_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/roots/debian-12"),
        dir.path(),
    );
    let device = dir.path().join("sys/bus/pci/devices/0000:03:00.0");
    fs_err::create_dir_all(&device).unwrap();
    fs_err::write(device.join("vendor"), "0x1002\n").unwrap();
    fs_err::write(device.join("device"), "0x73ff\n").unwrap();
    fs_err::write(device.join("class"), "0x030000\n").unwrap();
    fs_err::write(
        device.join("modalias"),
        "pci:v00001002d000073FFsv00001458sd00002316bc03sc00i00\n",
    )
    .unwrap();
    fs_err::create_dir_all(dir.path().join("sys/bus/pci/drivers/amdgpu")).unwrap();
    fs_err::create_dir_all(dir.path().join("sys/module/amdgpu")).unwrap();
    std::os::unix::fs::symlink("../../drivers/amdgpu", device.join("driver")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../module/amdgpu",
        dir.path().join("sys/bus/pci/drivers/amdgpu/module"),
    )
    .unwrap();
    dir
}

fn passthru(root: &Path, journal: &Path) -> Command {
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .arg("--root")
        .arg(root)
        .arg("--journal-dir")
        .arg(journal)
        .arg("--color")
        .arg("never");
    command
}

fn stdout_of(command: &mut Command) -> (String, String, i32) {
    let output = command.output().unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

macro_rules! with_stable_time {
    ($body:expr) => {
        insta::with_settings!({filters => vec![
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[time]"),
        ]}, { $body })
    };
}

#[test]
fn dry_run_prints_the_detection_the_plan_and_the_checks_and_changes_nothing() {
    let root = debian_root();
    let journal = tempfile::tempdir().unwrap();
    let grub_before = fs_err::read(root.path().join("etc/default/grub")).unwrap();
    let (stdout, stderr, code) = stdout_of(passthru(root.path(), journal.path()).args([
        "assign",
        "03:00.0",
        "--persistent",
        "--dry-run",
    ]));
    assert_eq!(code, 0, "{stderr}");
    with_stable_time!(insta::assert_snapshot!(stdout));
    assert_eq!(
        fs_err::read(root.path().join("etc/default/grub")).unwrap(),
        grub_before
    );
    assert!(!root.path().join("etc/passthru").exists());
}

#[test]
fn dry_run_json_lists_steps_and_problems() {
    let root = debian_root();
    let journal = tempfile::tempdir().unwrap();
    // Leave no room in the check: a kernel without vfio.
    let dep = root
        .path()
        .join("usr/lib/modules/6.12.95+deb12-amd64/modules.dep");
    let text: String = fs_err::read_to_string(&dep)
        .unwrap()
        .lines()
        .filter(|line| !line.contains("vfio-pci.ko"))
        .map(|line| format!("{line}\n"))
        .collect();
    fs_err::write(&dep, text).unwrap();
    let (stdout, _, code) = stdout_of(passthru(root.path(), journal.path()).args([
        "--json",
        "assign",
        "0000:03:00.0",
        "--persistent",
        "--dry-run",
    ]));
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["schema"], "passthru.boot-plan/1");
    assert_eq!(json["bootloader"], "grub");
    assert_eq!(json["initramfs"], "initramfs-tools");
    assert_eq!(json["steps"].as_array().unwrap().len(), 11);
    let problems = json["problems"].to_string();
    assert!(
        problems.contains("kernel 6.12.95+deb12-amd64 has no module vfio_pci"),
        "{problems}"
    );
}

#[test]
fn applying_a_plan_that_fails_its_checks_changes_nothing() {
    let root = debian_root();
    let journal = tempfile::tempdir().unwrap();
    fs_err::remove_file(root.path().join("usr/bin/lsinitramfs")).unwrap();
    let (_, stderr, code) = stdout_of(passthru(root.path(), journal.path()).args([
        "assign",
        "03:00.0",
        "--persistent",
    ]));
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr);
    assert!(!root.path().join("etc/passthru").exists());
}

#[test]
fn the_errors_people_meet_say_what_to_do() {
    let root = debian_root();
    let journal = tempfile::tempdir().unwrap();
    let (_, not_assigned, _) = stdout_of(passthru(root.path(), journal.path()).args([
        "release",
        "03:00.0",
        "--persistent",
    ]));
    let (_, not_an_address, _) = stdout_of(passthru(root.path(), journal.path()).args([
        "assign",
        "10de:1b80",
        "--persistent",
    ]));
    let (_, missing, _) = stdout_of(passthru(root.path(), journal.path()).args([
        "assign",
        "07:00.0",
        "--persistent",
    ]));
    let (nothing, _, code) = stdout_of(passthru(root.path(), journal.path()).arg("undo"));
    assert_eq!(code, 0);
    insta::assert_snapshot!(format!(
        "release, never assigned:\n{not_assigned}\nassign by id:\n{not_an_address}\nno such device:\n{missing}\nundo with an empty journal:\n{nothing}"
    ));
}
