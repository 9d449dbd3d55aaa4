//! End to end: the `passthru` binary against the simulated Hyper-V
//! (`PASSTHRU_HYPERV_SIMULATOR`) and replayed Windows snapshots.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hyperv")
}

struct Lab {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Lab {
    fn new(fixture: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        fs_err::copy(fixtures().join("simulator").join(fixture), &state).unwrap();
        Self { dir, state }
    }

    fn edit(&self, change: impl FnOnce(&mut serde_json::Value)) {
        let mut value: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(&self.state).unwrap()).unwrap();
        change(&mut value);
        fs_err::write(&self.state, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&fs_err::read_to_string(&self.state).unwrap()).unwrap()
    }

    fn passthru(&self) -> Command {
        let mut command = Command::cargo_bin("passthru").unwrap();
        command
            .env("PASSTHRU_HYPERV_SIMULATOR", &self.state)
            .env_remove("PASSTHRU_ROOT")
            .arg("--color=never")
            .arg("--journal-dir")
            .arg(self.dir.path().join("journal"));
        command
    }
}

fn stdout(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn stderr_of_failure(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({filters => vec![
            (r"\d{8}T\d{6}-\d+(-\d+)?", "[OPERATION]"),
            (r"/tmp/\S+/state\.json", "[STATE]"),
        ]}, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

fn vm<'a>(state: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    state["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vm| vm["name"] == name)
        .unwrap()
}

#[test]
fn survey_replays_windows_snapshots() {
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .env_remove("PASSTHRU_HYPERV_SIMULATOR")
        .current_dir(fixtures().join("snapshots"))
        .args(["--color=never", "survey", "--from", "server-dda.json"]);
    snapshot!("survey_server_dda", stdout(&mut command));
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .env_remove("PASSTHRU_HYPERV_SIMULATOR")
        .current_dir(fixtures().join("snapshots"))
        .args([
            "--color=never",
            "survey",
            "--from",
            "win11-laptop-gpu-pv.json",
        ]);
    snapshot!("survey_win11_laptop", stdout(&mut command));
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .env_remove("PASSTHRU_HYPERV_SIMULATOR")
        .current_dir(fixtures().join("snapshots"))
        .args([
            "--json",
            "survey",
            "--from",
            "server-dda.json",
            "--class",
            "gpu",
        ]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&mut command)).unwrap();
    assert_eq!(json["schema"], "passthru.survey.windows/1");
    let names: Vec<&str> = json["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["NVIDIA GRID K520", "NVIDIA GeForce GTX 1080 Ti"]
    );
}

#[test]
fn damaged_snapshots_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    fs_err::write(
        &file,
        r#"{"format":"passthru-snapshot","platform":"windows","version":1,"answers":[1]}"#,
    )
    .unwrap();
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .env_remove("PASSTHRU_HYPERV_SIMULATOR")
        .arg("survey")
        .arg("--from")
        .arg(&file);
    let stderr = stderr_of_failure(&mut command);
    assert!(
        stderr.contains("cannot be replayed: it is damaged"),
        "{stderr}"
    );
}

#[cfg(not(windows))]
#[test]
fn without_windows_or_simulator_the_hyperv_commands_explain() {
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .env_remove("PASSTHRU_HYPERV_SIMULATOR")
        .args(["gpu-p", "list"]);
    let stderr = stderr_of_failure(&mut command);
    assert!(stderr.contains("Hyper-V is only on Windows"), "{stderr}");
    assert!(stderr.contains("PASSTHRU_HYPERV_SIMULATOR"), "{stderr}");
}

#[test]
fn live_survey_and_snapshot_through_the_simulator() {
    let lab = Lab::new("win11-laptop-gpu-pv.state.json");
    let survey = stdout(lab.passthru().arg("survey"));
    assert!(survey.contains("Simulated Hyper-V from"), "{survey}");
    let file = lab.dir.path().join("snap.json");
    lab.passthru().arg("snapshot").arg(&file).assert().success();
    let replayed = stdout(
        lab.passthru()
            .env_remove("PASSTHRU_HYPERV_SIMULATOR")
            .arg("survey")
            .arg("--from")
            .arg(&file),
    );
    assert!(replayed.contains("NVIDIA GeForce RTX 4070 Laptop GPU"));
    assert!(replayed.contains("(simulated)"), "{replayed}");
}

#[test]
fn gpu_p_add_dry_run_export_apply_and_undo() {
    let lab = Lab::new("win11-laptop-gpu-pv.state.json");
    lab.edit(|state| {
        let vm = state["vms"][0].as_object_mut().unwrap();
        vm.insert("gpuAdapters".into(), serde_json::json!([]));
        vm.insert("state".into(), serde_json::json!("Running"));
        vm["memory"]["minimum"] = vm["memory"]["startup"].clone();
    });
    let before = lab.state();
    snapshot!(
        "gpu_p_add_dry_run",
        stdout(lab.passthru().args([
            "gpu-p",
            "add",
            "--vm",
            "exampleName",
            "--gpu",
            "4070",
            "--stop-vm",
            "--dry-run"
        ]))
    );

    // Running VM, no --stop-vm, no terminal: refused with the way forward.
    let stderr = stderr_of_failure(lab.passthru().args([
        "gpu-p",
        "add",
        "--vm",
        "exampleName",
        "--gpu",
        "4070",
    ]));
    assert!(stderr.contains("'exampleName' is running"), "{stderr}");
    assert!(stderr.contains("--stop-vm"), "{stderr}");

    let script = lab.dir.path().join("plan.ps1");
    lab.passthru()
        .args([
            "gpu-p",
            "add",
            "--vm",
            "exampleName",
            "--gpu",
            "4070",
            "--stop-vm",
            "--export-script",
        ])
        .arg(&script)
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing was changed"));
    let exported = fs_err::read_to_string(&script).unwrap();
    assert!(exported.starts_with('\u{feff}'));
    assert!(exported.contains("Add-VMGpuPartitionAdapter -VMName 'exampleName' -InstancePath"));
    assert_eq!(lab.state(), before, "export changed the host");

    snapshot!(
        "gpu_p_add_apply",
        stdout(lab.passthru().args([
            "gpu-p",
            "add",
            "--vm",
            "exampleName",
            "--gpu",
            "4070",
            "--stop-vm"
        ]))
    );
    let after = lab.state();
    assert_eq!(
        vm(&after, "exampleName")["gpuAdapters"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(vm(&after, "exampleName")["state"], "Off");

    let list = stdout(lab.passthru().args(["gpu-p", "list"]));
    assert!(list.contains("in VMs: exampleName"), "{list}");

    snapshot!(
        "undo_dry_run",
        stdout(lab.passthru().args(["undo", "--dry-run"]))
    );
    stdout(lab.passthru().arg("undo"));
    let restored = lab.state();
    assert_eq!(restored["vms"], before["vms"]);
    assert_eq!(restored["host"], before["host"]);
    let journal = stdout(lab.passthru().arg("journal"));
    assert!(journal.contains("undone"), "{journal}");
}

#[test]
fn dda_assign_release_and_journal() {
    let lab = Lab::new("server-dda.state.json");
    let before = lab.state();
    let json: serde_json::Value = serde_json::from_str(&stdout(lab.passthru().args([
        "--json",
        "assign",
        "10de:1b06",
        "--vm",
        "StorageServer",
        "--dry-run",
    ])))
    .unwrap();
    assert_eq!(json["schema"], "passthru.hyperv.plan/1");
    assert_eq!(json["steps"].as_array().unwrap().len(), 8);

    snapshot!(
        "dda_assign",
        stdout(
            lab.passthru()
                .args(["assign", "1080 Ti", "--vm", "StorageServer"])
        )
    );
    let assigned = stdout(lab.passthru().args(["survey", "1080 Ti"]));
    assert!(assigned.contains("in VM 'StorageServer'"), "{assigned}");

    snapshot!(
        "dda_release",
        stdout(
            lab.passthru()
                .args(["release", "PCIROOT(0)#PCI(0301)#PCI(0000)"])
        )
    );
    let after = lab.state();
    for (old, new) in before["devices"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["devices"].as_array().unwrap())
    {
        assert_eq!(old["dda"], new["dda"]);
        assert_eq!(old["pnp"]["problem"], new["pnp"]["problem"]);
    }
    let journal = stdout(lab.passthru().arg("journal"));
    assert_eq!(
        journal
            .lines()
            .filter(|line| line.contains("applied"))
            .count(),
        2,
        "{journal}"
    );
}

#[test]
fn a_failing_step_rolls_the_device_back_to_the_host() {
    let lab = Lab::new("server-dda.state.json");
    lab.edit(|state| {
        state["faults"] = serde_json::json!([{"cmdlet": "Add-VMAssignableDevice"}]);
    });
    let before = lab.state();
    let stderr =
        stderr_of_failure(
            lab.passthru()
                .args(["assign", "GRID K520", "--vm", "StorageServer"]),
        );
    assert!(
        stderr.contains("every change before it was rolled back"),
        "{stderr}"
    );
    let after = lab.state();
    assert_eq!(after["devices"], before["devices"]);
    assert_eq!(after["vms"], before["vms"]);
    let journal = stdout(lab.passthru().arg("journal"));
    assert!(journal.contains("rolled back"), "{journal}");
}

#[test]
fn refusals_explain_the_way_forward() {
    let laptop = Lab::new("win11-laptop-gpu-pv.state.json");
    let stderr =
        stderr_of_failure(
            laptop
                .passthru()
                .args(["assign", "4070", "--vm", "exampleName"]),
        );
    assert!(stderr.contains("0xC035001E"), "{stderr}");
    assert!(stderr.contains("gpu-p add"), "{stderr}");
    let stderr = stderr_of_failure(laptop.passthru().args([
        "gpu-p",
        "partitions",
        "--gpu",
        "4070",
        "--count",
        "8",
    ]));
    assert!(stderr.contains("GPU-PV"), "{stderr}");

    let server = Lab::new("server-dda.state.json");
    let stderr = stderr_of_failure(server.passthru().args([
        "assign",
        "Smart Array",
        "--vm",
        "StorageServer",
    ]));
    assert!(stderr.contains("firmware-owned memory"), "{stderr}");
    let stderr = stderr_of_failure(server.passthru().args(["assign", "K520", "--vm", "Nope"]));
    assert!(stderr.contains("no VM named `Nope`"), "{stderr}");
    assert!(stderr.contains("StorageServer"), "{stderr}");
    let stderr = stderr_of_failure(server.passthru().args(["assign", "K520"]));
    assert!(stderr.contains("--vm"), "{stderr}");
}

#[test]
fn devices_left_dismounted_are_recovered() {
    let lab = Lab::new("server-dda.state.json");
    lab.edit(|state| {
        for device in state["devices"].as_array_mut().unwrap() {
            if device["pnp"]["name"] == "NVIDIA GRID K520" {
                device["dda"] = serde_json::json!({"state": "dismounted"});
                device["pnp"]["problem"] = serde_json::json!(22);
            }
        }
    });
    let survey = stdout(lab.passthru().arg("survey"));
    assert!(survey.contains("DISMOUNTED, in no VM"), "{survey}");
    assert!(survey.contains("dismounted but in no VM"), "{survey}");
    stdout(lab.passthru().args(["release", "K520"]));
    let state = lab.state();
    let k520 = state["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|device| device["pnp"]["name"] == "NVIDIA GRID K520")
        .unwrap();
    assert_eq!(k520["dda"]["state"], "host");
    assert_eq!(k520["pnp"]["problem"], 0);
}

#[test]
fn simulator_file_problems_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("nope.json");
    fs_err::write(&bogus, "{}").unwrap();
    let mut command = Command::cargo_bin("passthru").unwrap();
    command
        .env("PASSTHRU_HYPERV_SIMULATOR", &bogus)
        .args(["gpu-p", "list"]);
    let stderr = stderr_of_failure(&mut command);
    assert!(
        stderr.contains("is not a simulated Hyper-V state file"),
        "{stderr}"
    );
    let _ = Path::new("unused");
}
