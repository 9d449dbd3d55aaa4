//! Fault injection: whatever step fails, the rollback puts every byte back; wherever the
//! process dies, `undo` does. Also the checks that catch a broken generator.

#![cfg(unix)]

mod support;

use passthru_core::hostfs::RealFs;
use passthru_core::plan::executor::{self, CrashPoint, ExecError, ExecOptions};
use passthru_core::plan::journal::{Journal, OperationState, Outcome};
use passthru_core::plan::{Plan, Step, StepError, StepView};
use passthru_core::runner::SystemRunner;
use passthru_linux::boot::detect::DetectOptions;
use passthru_linux::boot::execute::{self, Prepared, RunError};
use passthru_linux::boot::facts;
use passthru_linux::boot::planner::Request;
use passthru_linux::boot::preflight::FixedSpace;
use passthru_linux::boot::step::{BootHost, BootStep};
use serde::{Deserialize, Serialize};
use support::{FakeTools, NOW, Root, assert_unchanged, differences};

/// The Debian host with two identical GPUs, so the plan has every kind of step: owned files,
/// shared edits, a hook, a udev rule, rebuilds of two kernels, the GRUB menu, and checks.
fn root() -> Root {
    let root = Root::copy("debian-12");
    root.add_pci(
        "0000:01:00.0",
        (0x1002, 0x73ff),
        0x030000,
        Some(("amdgpu", Some("amdgpu"))),
        true,
    );
    root.add_pci(
        "0000:01:00.1",
        (0x1002, 0xab28),
        0x040300,
        Some(("snd_hda_intel", Some("snd_hda_intel"))),
        false,
    );
    root.add_pci(
        "0000:02:00.0",
        (0x1002, 0x73ff),
        0x030000,
        Some(("amdgpu", Some("amdgpu"))),
        false,
    );
    root.add_pci(
        "0000:02:00.1",
        (0x1002, 0xab28),
        0x040300,
        Some(("snd_hda_intel", Some("snd_hda_intel"))),
        false,
    );
    root
}

fn prepared(root: &Root) -> Prepared {
    let fs = RealFs::new(root.path());
    let targets = ["0000:02:00.0", "0000:02:00.1"]
        .iter()
        .map(|a| facts::read_target(&fs, a.parse().unwrap()).unwrap())
        .collect();
    let prepared = execute::prepare(
        &fs,
        &Request::Assign(targets),
        DetectOptions::default(),
        NOW,
    )
    .unwrap();
    execute::check(&prepared, &fs, &mut SystemRunner, &FixedSpace(1 << 40)).unwrap();
    prepared
}

/// A boot step that does its work and then reports failure, as a step that half-happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailsAfter {
    step: BootStep,
    fail: bool,
}

impl Step for FailsAfter {
    type Host = BootHost;
    const KIND: &'static str = "linux-boot-test";

    fn view(&self) -> StepView {
        self.step.view()
    }

    fn apply(&self, host: &mut BootHost) -> Result<(), StepError> {
        self.step.apply(host)?;
        if self.fail {
            Err(StepError::new("injected failure"))
        } else {
            Ok(())
        }
    }

    fn verify(&self, host: &mut BootHost) -> Result<(), StepError> {
        self.step.verify(host)
    }

    fn undo(&self, host: &mut BootHost) -> Result<(), StepError> {
        self.step.undo(host)
    }
}

#[test]
fn a_failure_at_any_step_rolls_back_every_byte() {
    let steps = prepared(&root()).plan.plan.steps.len();
    assert!(steps >= 10, "the plan should exercise every kind of step");
    for failing in 0..steps {
        let root = root();
        let original = root.snapshot();
        let prepared = prepared(&root);
        let mut plan = Plan::new(prepared.plan.plan.operation.clone());
        plan.steps = prepared
            .plan
            .plan
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| FailsAfter {
                step: step.clone(),
                fail: index == failing,
            })
            .collect();
        let journal_dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(journal_dir.path()).unwrap();
        for bytes in prepared.plan.contents.values() {
            journal.store_blob(bytes).unwrap();
        }
        let tools = FakeTools::new(root.path());
        let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
        let error = executor::apply(
            &mut journal,
            &plan,
            &mut host,
            &ExecOptions::default(),
            &mut |_| {},
        )
        .unwrap_err();
        match error {
            ExecError::StepFailed {
                index, rollback, ..
            } => {
                assert_eq!(index, failing);
                assert_eq!(
                    rollback.outcome,
                    Outcome::RolledBack,
                    "step {failing}: {:?}",
                    rollback.undo_errors
                );
            }
            other => panic!("step {failing}: {other:?}"),
        }
        assert_eq!(
            differences(&original, &root.snapshot()),
            Vec::<String>::new(),
            "after a failure at step {failing}"
        );
    }
}

#[test]
fn a_crash_at_any_point_is_undone_by_the_next_process() {
    let steps = prepared(&root()).plan.plan.steps.len();
    for index in 0..steps {
        for crash in [
            CrashPoint::BeforeApply(index),
            CrashPoint::AfterApply(index),
        ] {
            let root = root();
            let original = root.snapshot();
            let prepared = prepared(&root);
            let journal_dir = tempfile::tempdir().unwrap();
            {
                let mut journal = Journal::open(journal_dir.path()).unwrap();
                let tools = FakeTools::new(root.path());
                let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
                let options = ExecOptions { crash: Some(crash) };
                let result = execute::apply(
                    &mut journal,
                    &prepared.plan,
                    &mut host,
                    &options,
                    &mut |_| {},
                );
                assert!(
                    matches!(result, Err(RunError::Exec(ExecError::Crashed(_)))),
                    "{crash:?}"
                );
            }
            // A new process: only the journal and the root are left.
            let mut journal = Journal::open(journal_dir.path()).unwrap();
            let operation = journal.last_undoable().unwrap().unwrap();
            assert_eq!(operation.state, OperationState::Interrupted);
            let tools = FakeTools::new(root.path());
            let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
            let report = execute::undo(&mut journal, &operation, &mut host, &mut |_| {}).unwrap();
            assert!(
                report.undo_errors.is_empty(),
                "{crash:?}: {:?}",
                report.undo_errors
            );
            assert_eq!(
                differences(&original, &root.snapshot()),
                Vec::<String>::new(),
                "after a crash at {crash:?}"
            );
        }
    }
}

fn apply_expecting_failure(root: &Root, tools: &FakeTools, outcome: Outcome) -> String {
    let prepared = prepared(root);
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
    let error = execute::apply(
        &mut journal,
        &prepared.plan,
        &mut host,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    match error {
        RunError::Exec(ExecError::StepFailed {
            error, rollback, ..
        }) => {
            assert_eq!(rollback.outcome, outcome, "{:?}", rollback.undo_errors);
            error.message
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_image_without_vfio_pci_is_caught_and_everything_is_put_back() {
    let root = root();
    let original = root.snapshot();
    let tools = FakeTools::new(root.path());
    *tools.leave_out.borrow_mut() = Some("vfio-pci.ko".into());
    let message = apply_expecting_failure(&root, &tools, Outcome::RolledBack);
    assert!(message.contains("lacks module vfio_pci"), "{message}");
    *tools.leave_out.borrow_mut() = None;
    assert_unchanged(&original, &root);
}

#[test]
fn a_failing_rebuild_of_the_second_kernel_is_rolled_back() {
    let root = root();
    let original = root.snapshot();
    let tools = FakeTools::new(root.path());
    *tools.fail_on.borrow_mut() = Some("update-initramfs -u -k 6.12".into());
    *tools.fail_once.borrow_mut() = true;
    let message = apply_expecting_failure(&root, &tools, Outcome::RolledBack);
    assert!(message.contains("failed (exit status 1)"), "{message}");
    // The rollback rebuilt both images from the restored files.
    assert!(
        tools
            .log
            .borrow()
            .iter()
            .filter(|c| c.contains("update-initramfs -u -k 6.1.0"))
            .count()
            >= 2
    );
    assert_unchanged(&original, &root);
}

#[test]
fn a_rebuild_that_keeps_failing_leaves_the_files_restored_and_says_so() {
    let root = root();
    let original = root.snapshot();
    let tools = FakeTools::new(root.path());
    *tools.fail_on.borrow_mut() = Some("update-initramfs -u -k 6.12".into());
    apply_expecting_failure(&root, &tools, Outcome::UndoIncomplete);
    // Every file is back; the image of 6.12 was never rewritten, so it is the original too.
    assert_unchanged(&original, &root);
}

#[test]
fn undo_refuses_another_root_and_a_file_changed_behind_its_back() {
    let root = root();
    let prepared = prepared(&root);
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let tools = FakeTools::new(root.path());
    let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
    execute::apply(
        &mut journal,
        &prepared.plan,
        &mut host,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let operation = journal.last_undoable().unwrap().unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let mut other = BootHost::new(elsewhere.path(), tools.boxed(), journal.blobs());
    let error = execute::undo(&mut journal, &operation, &mut other, &mut |_| {}).unwrap_err();
    assert!(
        error.to_string().contains("run `passthru --root"),
        "{error}"
    );

    // Someone edits passthru's modprobe file after the assign: undo leaves that file alone,
    // says so, and restores everything else.
    root.write(
        "/etc/modprobe.d/passthru-vfio.conf",
        "softdep amdgpu pre: vfio-pci\n# mine\n",
    );
    let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
    let report = execute::undo(&mut journal, &operation, &mut host, &mut |_| {}).unwrap();
    assert_eq!(report.outcome, Outcome::UndoIncomplete);
    assert!(
        report.undo_errors[0]
            .1
            .message
            .contains("changed by someone else")
    );
    assert!(
        root.read("/etc/default/grub")
            .contains("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"")
    );
    assert!(
        root.read("/etc/modprobe.d/passthru-vfio.conf")
            .contains("# mine")
    );
}

#[test]
fn preflight_stops_a_plan_for_a_kernel_without_vfio_and_a_full_boot() {
    let root = root();
    // Remove vfio from the 6.12 kernel's index, as if its modules package were incomplete.
    let dep = "/usr/lib/modules/6.12.95+deb12-amd64/modules.dep";
    let text: String = root
        .read(dep)
        .lines()
        .filter(|line| !line.contains("vfio-pci.ko"))
        .map(|line| format!("{line}\n"))
        .collect();
    root.write(dep, &text);
    let fs = RealFs::new(root.path());
    let targets = vec![facts::read_target(&fs, "0000:02:00.0".parse().unwrap()).unwrap()];
    let prepared = execute::prepare(
        &fs,
        &Request::Assign(targets),
        DetectOptions::default(),
        NOW,
    )
    .unwrap();
    let error = execute::check(&prepared, &fs, &mut SystemRunner, &FixedSpace(1024)).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("kernel 6.12.95+deb12-amd64 has no module vfio_pci"),
        "{text}"
    );
    assert!(text.contains("/boot has 0 MiB free"), "{text}");
}
