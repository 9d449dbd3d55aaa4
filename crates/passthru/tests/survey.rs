//! `passthru survey` and `passthru snapshot` end to end: human and JSON output over the
//! committed snapshot fixtures (insta snapshots), filters, errors, `--root` trees.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// passthru with deterministic names (the bundled pci.ids) and no colour.
fn passthru() -> Command {
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .current_dir(repository())
        .env("PASSTHRU_PCI_IDS", "bundled")
        .env_remove("PASSTHRU_ROOT")
        .args(["--color", "never"]);
    command
}

fn stdout_of(args: &[&str]) -> String {
    let output = passthru().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "passthru {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn stderr_of_failure(args: &[&str]) -> String {
    let output = passthru().args(args).output().unwrap();
    assert!(!output.status.success(), "passthru {args:?} should fail");
    String::from_utf8(output.stderr).unwrap()
}

fn fixture(name: &str) -> String {
    format!("fixtures/snapshots/{name}.json")
}

#[test]
fn human_output_of_every_fixture() {
    for name in [
        "this-host",
        "desktop-gpu-shared-group",
        "sriov-nic",
        "vmd-nvme",
        "malformed",
    ] {
        let output = stdout_of(&["survey", "--from", &fixture(name)]);
        insta::assert_snapshot!(format!("human_{name}"), output);
    }
}

#[test]
fn json_output_of_this_host_and_the_desktop() {
    for name in ["this-host", "desktop-gpu-shared-group"] {
        let output = stdout_of(&["survey", "--json", "--from", &fixture(name)]);
        let json: serde_json::Value = serde_json::from_str(&output).unwrap();
        assert_eq!(json["schema"], "passthru-survey");
        assert_eq!(json["schema_version"], 1);
        insta::assert_snapshot!(format!("json_{name}"), output);
    }
}

#[test]
fn filters_by_class_group_and_selector() {
    let desktop = fixture("desktop-gpu-shared-group");
    insta::assert_snapshot!(
        "filter_class_gpu",
        stdout_of(&["survey", "--from", &desktop, "--class", "gpu"])
    );
    insta::assert_snapshot!(
        "filter_group_9",
        stdout_of(&["survey", "--from", &desktop, "--group", "9"])
    );
    insta::assert_snapshot!(
        "filter_selectors",
        stdout_of(&[
            "survey",
            "--from",
            &desktop,
            "geforce",
            "06:00.1",
            "1002:7300"
        ])
    );
    let vmd = stdout_of(&[
        "survey",
        "--json",
        "--from",
        &fixture("vmd-nvme"),
        "10000:e1:00.0",
    ]);
    let json: serde_json::Value = serde_json::from_str(&vmd).unwrap();
    assert_eq!(json["devices"].as_array().unwrap().len(), 1);
    assert_eq!(json["devices"][0]["address"], "10000:e1:00.0");
    assert_eq!(json["devices"][0]["verdict"]["status"], "blocked");
}

#[test]
fn filter_errors_are_explained() {
    let desktop = fixture("desktop-gpu-shared-group");
    insta::assert_snapshot!(
        "error_ambiguous",
        stderr_of_failure(&["survey", "--from", &desktop, "rtl8111"])
    );
    insta::assert_snapshot!(
        "error_no_match",
        stderr_of_failure(&["survey", "--from", &desktop, "8086:ffff"])
    );
    insta::assert_snapshot!(
        "error_unknown_group",
        stderr_of_failure(&["survey", "--from", &desktop, "--group", "3"])
    );
    insta::assert_snapshot!(
        "error_unknown_class",
        stderr_of_failure(&["survey", "--from", &desktop, "--class", "printer"])
    );
}

#[test]
fn damaged_snapshots_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs_err::read_to_string(repository().join(fixture("sriov-nic"))).unwrap();
    let truncated = dir.path().join("truncated.json");
    fs_err::write(&truncated, &text[..text.len() / 3]).unwrap();
    let message = stderr_of_failure(&["survey", "--from", truncated.to_str().unwrap()]);
    assert!(message.contains("truncated"), "{message}");
    let garbage = dir.path().join("garbage.json");
    fs_err::write(&garbage, "not a snapshot").unwrap();
    let message = stderr_of_failure(&["survey", "--from", garbage.to_str().unwrap()]);
    assert!(message.contains("not valid at line 1"), "{message}");
    let missing = stderr_of_failure(&["survey", "--from", "no/such/file.json"]);
    assert!(missing.contains("no/such/file.json"), "{missing}");
}

#[cfg(unix)]
#[test]
fn root_tree_snapshot_and_replay_agree() {
    use passthru_linux::fake_sysfs::scenarios::{self, Dumps};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    scenarios::build("desktop-gpu-shared-group", &Dumps::repository())
        .unwrap()
        .write_tree(&root)
        .unwrap();
    let root_text = root.to_str().unwrap();
    let live = stdout_of(&["--root", root_text, "survey", "--json"]);
    let file = dir.path().join("capture.json.gz");
    passthru()
        .args(["--root", root_text, "snapshot", file.to_str().unwrap()])
        .assert()
        .success();
    let replayed = stdout_of(&["survey", "--json", "--from", file.to_str().unwrap()]);
    let (live, replayed): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&live).unwrap(),
        serde_json::from_str(&replayed).unwrap(),
    );
    for field in ["host", "groups", "devices", "warnings"] {
        assert_eq!(live[field], replayed[field], "{field}");
    }
    // The human form of a --root tree matches the committed fixture below its heading.
    let human = stdout_of(&["--root", root_text, "survey"]);
    let fixture = stdout_of(&["survey", "--from", &fixture("desktop-gpu-shared-group")]);
    let body = |text: &str| {
        text.split_once("\nHost\n")
            .map(|(_, body)| body.to_owned())
            .unwrap()
    };
    assert_eq!(body(&human), body(&fixture));
}

#[test]
fn survey_of_this_machine_runs() {
    // Reading the real host is safe (read-only); whatever it finds, survey must succeed.
    let output = passthru()
        .args(["--root", "/", "survey", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
}
