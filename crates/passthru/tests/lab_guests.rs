//! `passthru survey --from` over the VM lab's captures of real guests
//! (`fixtures/lab/TOPOLOGY/passthru-runs/`, see `docs/vm-lab.md`): Debian's 6.1 kernel under
//! QEMU with an Intel IOMMU, an AMD IOMMU or none, captured as root and as nobody. The lab
//! checks on every run that these captures replay to the guest's own survey; the insta
//! snapshots here pin the report people read.

use std::path::Path;

use assert_cmd::Command;

fn survey_of(topology: &str, capture: &str, extra: &[&str]) -> String {
    let file = format!("fixtures/lab/{topology}/passthru-runs/{capture}");
    let output = Command::cargo_bin("passthru")
        .unwrap()
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("PASSTHRU_PCI_IDS", "bundled")
        .env_remove("PASSTHRU_ROOT")
        .args(["--color", "never", "survey", "--from", &file])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "survey --from {file} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn human_output_of_every_lab_guest() {
    for topology in ["q35-intel-iommu", "q35-amd-iommu", "q35-no-iommu"] {
        insta::assert_snapshot!(
            format!("lab_{topology}"),
            survey_of(topology, "snapshot.json", &[])
        );
    }
}

#[test]
fn unprivileged_capture_says_capabilities_need_root() {
    let output = survey_of("q35-intel-iommu", "snapshot-nonroot.json", &[]);
    assert!(output.contains("only the first 64 bytes of config space are readable without root"));
    insta::assert_snapshot!("lab_q35-intel-iommu_nonroot", output);
}

#[test]
fn json_of_the_gpu_group_in_the_intel_guest() {
    let output = survey_of(
        "q35-intel-iommu",
        "snapshot.json",
        &["--json", "--class", "gpu"],
    );
    let json: serde_json::Value = serde_json::from_str(&output).unwrap();
    // The GPU-like device and its audio function: one group, not viable while bound to
    // bochs-drm and snd_hda_intel.
    let gpu_group = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["members"][0]["name"] == "0000:01:00.0")
        .unwrap();
    assert_eq!(gpu_group["members"][1]["name"], "0000:01:00.1");
    assert_eq!(gpu_group["viable"], false);
    insta::assert_snapshot!("lab_q35-intel-iommu_gpu_json", output);
}
