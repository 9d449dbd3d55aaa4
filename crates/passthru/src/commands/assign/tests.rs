//! `assign` and `release` as people see them, run in-process against the fake kernel (the
//! binary against real sysfs is proven in the VM lab): human output while steps run, the
//! dry run, refusals, nothing to do, JSON, and release back to the recorded drivers.

use std::path::Path;
use std::process::ExitCode;

use passthru_core::plan::journal::Journal;
use passthru_linux::assign::{AssignRequest, ReleaseRequest};
use passthru_linux::testing::{FakeKernel, lab};

use super::linux::{self, Context};
use crate::output::Failure;

/// Runs `body` against `kernel` with a journal in `journal_dir`; returns the exit code (or
/// the failure's text) and what was printed, without colours.
fn run_with(
    kernel: &mut FakeKernel,
    journal_dir: &Path,
    json: bool,
    body: impl FnOnce(&mut Context<'_>) -> Result<ExitCode, Failure>,
) -> (Result<ExitCode, String>, String) {
    let mut out = Vec::new();
    let mut open = || Journal::open(journal_dir).map_err(|error| Failure::from_error(&error));
    let result = {
        let mut ctx = Context {
            port: kernel,
            names: Vec::new(),
            journal: &mut open,
            json,
            out: &mut out,
        };
        body(&mut ctx)
    };
    let text = anstream::adapter::strip_str(&String::from_utf8_lossy(&out)).to_string();
    let result = result.map_err(|failure| {
        let mut text = failure.to_string();
        if let Some(help) = failure.help() {
            text.push_str(&format!("\nhelp: {help}"));
        }
        text
    });
    (result, text)
}

fn assign_request(devices: &[&str]) -> AssignRequest {
    AssignRequest {
        devices: devices.iter().map(|d| (*d).to_owned()).collect(),
        with_group: false,
        force: false,
    }
}

fn release_request(devices: &[&str]) -> ReleaseRequest {
    ReleaseRequest {
        devices: devices.iter().map(|d| (*d).to_owned()).collect(),
    }
}

macro_rules! with_ids_hidden {
    ($body:block) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\d{8}T\d{6}-\d+(-\d+)?", "[operation]");
        settings.bind(|| $body);
    }};
}

#[test]
fn assign_shows_the_devices_and_each_step_as_it_runs() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    let (result, text) = run_with(&mut kernel, journal.path(), false, |ctx| {
        linux::assign(ctx, &assign_request(&["01:00.0"]), false)
    });
    assert_eq!(result, Ok(ExitCode::SUCCESS), "{text}");
    with_ids_hidden!({
        insta::assert_snapshot!(text);
    });
    assert_eq!(
        kernel.driver_of(lab::AUDIO.parse().unwrap()),
        Some("vfio-pci")
    );
}

#[test]
fn the_dry_run_prints_every_write_and_changes_nothing() {
    let mut kernel = FakeKernel::q35_lab();
    let before = kernel.clone();
    let journal = tempfile::tempdir().unwrap();
    let (result, text) = run_with(&mut kernel, journal.path(), false, |ctx| {
        let mut request = assign_request(&[lab::BRIDGED_NIC_1]);
        request.with_group = true;
        linux::assign(ctx, &request, true)
    });
    assert_eq!(result, Ok(ExitCode::SUCCESS), "{text}");
    insta::assert_snapshot!(text);
    assert!(before.tree().diff(kernel.tree()).is_empty());
    assert!(kernel.log().is_empty());
    assert!(
        Journal::open(journal.path())
            .unwrap()
            .operations()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn refusals_say_why_and_what_to_do() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    let (result, text) = run_with(&mut kernel, journal.path(), false, |ctx| {
        linux::assign(ctx, &assign_request(&[lab::BOOT_VGA]), false)
    });
    assert_eq!(text, "");
    insta::assert_snapshot!(result.unwrap_err());
    assert!(kernel.log().is_empty());
}

#[test]
fn refusals_in_json_are_data() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    let (result, text) = run_with(&mut kernel, journal.path(), true, |ctx| {
        linux::assign(ctx, &assign_request(&[lab::BRIDGED_NIC_2]), false)
    });
    assert_eq!(result, Ok(ExitCode::FAILURE));
    insta::assert_snapshot!(text);
}

#[test]
fn assigning_twice_is_nothing_to_do_and_succeeds() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    let first = run_with(&mut kernel, journal.path(), false, |ctx| {
        linux::assign(ctx, &assign_request(&[lab::GPU]), false)
    });
    assert_eq!(first.0, Ok(ExitCode::SUCCESS));
    let writes = kernel.log().len();
    let (result, text) = run_with(&mut kernel, journal.path(), false, |ctx| {
        linux::assign(ctx, &assign_request(&[lab::GPU]), false)
    });
    assert_eq!(result, Ok(ExitCode::SUCCESS));
    assert_eq!(kernel.log().len(), writes, "nothing was written");
    insta::assert_snapshot!(text, @r"
      note: 0000:01:00.0 is on vfio-pci already; nothing to do for it
      note: 0000:01:00.1 is on vfio-pci already; nothing to do for it
    Nothing to do: 0000:01:00.0, 0000:01:00.1 are on vfio-pci already.
    ");
}

#[test]
fn a_failing_step_is_rolled_back_and_reported() {
    let mut kernel = FakeKernel::q35_lab();
    let before = kernel.clone();
    kernel.fail_probe(
        lab::AUDIO.parse().unwrap(),
        "vfio-pci",
        passthru_linux::errno::Errno::EBUSY,
    );
    let journal = tempfile::tempdir().unwrap();
    let (result, text) = run_with(&mut kernel, journal.path(), false, |ctx| {
        linux::assign(ctx, &assign_request(&[lab::GPU]), false)
    });
    insta::assert_snapshot!(format!("{text}---\n{}", result.unwrap_err()));
    assert!(before.tree().diff(kernel.tree()).is_empty());
}

#[test]
fn release_brings_back_the_recorded_drivers_and_says_so() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    let assigned = run_with(&mut kernel, journal.path(), false, |ctx| {
        linux::assign(ctx, &assign_request(&[lab::GPU]), false)
    });
    assert_eq!(assigned.0, Ok(ExitCode::SUCCESS));
    let (result, text) = run_with(&mut kernel, journal.path(), false, |ctx| {
        linux::release(ctx, &release_request(&["01:00.0"]), false)
    });
    assert_eq!(result, Ok(ExitCode::SUCCESS), "{text}");
    with_ids_hidden!({
        insta::assert_snapshot!(text);
    });
    assert_eq!(
        kernel.driver_of(lab::GPU.parse().unwrap()),
        Some("bochs-drm")
    );
    assert_eq!(
        kernel.driver_of(lab::AUDIO.parse().unwrap()),
        Some("snd_hda_intel")
    );
    let (again, text) = run_with(&mut kernel, journal.path(), true, |ctx| {
        linux::release(ctx, &release_request(&["01:00.0"]), false)
    });
    assert_eq!(again, Ok(ExitCode::SUCCESS));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["outcome"], "nothing-to-do");
    assert_eq!(json["already_released"][0]["driver"], "bochs-drm");
}

#[test]
fn assign_json_lists_moves_and_steps() {
    let mut kernel = FakeKernel::q35_lab();
    let journal = tempfile::tempdir().unwrap();
    let (result, text) = run_with(&mut kernel, journal.path(), true, |ctx| {
        linux::assign(ctx, &assign_request(&[lab::GPU]), false)
    });
    assert_eq!(result, Ok(ExitCode::SUCCESS));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["schema"], "passthru.assign/1");
    assert_eq!(json["outcome"], "applied");
    assert_eq!(json["moves"][1]["why"], "same-card");
    assert_eq!(json["steps"].as_array().unwrap().len(), 10);
    assert!(json["operation_id"].is_string());
}
