//! `assign --persistent` as one journal operation: the run-time binding (fake kernel) and the
//! boot configuration (a copy of the Debian fixture root with fake distribution tools) applied
//! together, undone together by one `undo`, and rolled back or recovered together wherever a
//! failure or a crash hits.
//!
//! This lives in the `passthru` crate because it needs both the fake kernel (the `testing`
//! feature, which this crate's tests enable) and the boot test support of `passthru-linux`,
//! which is included from there.

#![cfg(unix)]

#[path = "../../passthru-linux/tests/support/mod.rs"]
mod support;

use passthru_core::hostfs::RealFs;
use passthru_core::plan::Plan;
use passthru_core::plan::executor::{self, CrashPoint, ExecError, ExecOptions};
use passthru_core::plan::journal::{Journal, OperationState, Outcome};
use passthru_linux::assign::combined::{self, LinuxStep, Ports};
use passthru_linux::assign::{AssignRequest, prepare_assign};
use passthru_linux::boot::detect::DetectOptions;
use passthru_linux::boot::execute::{self, Prepared};
use passthru_linux::boot::facts;
use passthru_linux::boot::planner::Request;
use passthru_linux::boot::step::BootHost;
use passthru_linux::inventory::read_inventory;
use passthru_linux::testing::{FakeKernel, lab};
use support::{FakeTools, NOW, Root, differences};

/// The Debian root, with the lab's GPU-like card in its sysfs for the boot planner.
fn root() -> Root {
    let root = Root::copy("debian-12");
    root.add_pci(
        lab::GPU,
        (0x1234, 0x1111),
        0x030000,
        Some(("bochs-drm", Some("bochs"))),
        false,
    );
    root.add_pci(
        lab::AUDIO,
        (0x8086, 0x293e),
        0x040300,
        Some(("snd_hda_intel", Some("snd_hda_intel"))),
        false,
    );
    root
}

fn plans(kernel: &FakeKernel, root: &Root) -> (Plan<LinuxStep>, Prepared) {
    let inventory = read_inventory(kernel.tree());
    let request = AssignRequest {
        devices: vec![lab::GPU.to_owned()],
        ..AssignRequest::default()
    };
    let runtime = prepare_assign(kernel.tree(), &inventory, &request).unwrap();
    let fs = RealFs::new(root.path());
    let targets = runtime
        .moves
        .iter()
        .map(|moved| facts::read_target(&fs, moved.device).unwrap())
        .collect();
    let prepared = execute::prepare(
        &fs,
        &Request::Assign(targets),
        DetectOptions::default(),
        NOW,
    )
    .unwrap();
    let plan = combined::combine(
        prepared.plan.plan.operation.clone(),
        &runtime.plan,
        &prepared.plan.plan,
    );
    (plan, prepared)
}

fn ports(
    kernel: FakeKernel,
    root: &Root,
    tools: &FakeTools,
    journal: &Journal,
) -> Ports<FakeKernel> {
    Ports {
        kernel,
        boot: BootHost::new(root.path(), tools.boxed(), journal.blobs()),
    }
}

#[test]
fn one_operation_binds_now_configures_the_boot_and_one_undo_takes_both_back() {
    let kernel = FakeKernel::q35_lab();
    let root = root();
    let original_files = root.snapshot();
    let (plan, prepared) = plans(&kernel, &root);
    assert!(matches!(plan.steps.first(), Some(LinuxStep::Sysfs(_))));
    assert!(matches!(plan.steps.last(), Some(LinuxStep::Boot(_))));
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let tools = FakeTools::new(root.path());
    let mut ports = ports(kernel.clone(), &root, &tools, &journal);
    let report = combined::apply(
        &mut journal,
        &plan,
        &prepared.plan.contents,
        &mut ports,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(
        ports.kernel.driver_of(lab::GPU.parse().unwrap()),
        Some("vfio-pci")
    );
    assert!(root.read("/etc/default/grub").contains("iommu=pt"));

    let operations = journal.operations().unwrap();
    assert_eq!(operations.len(), 1, "one operation, not two");
    assert_eq!(operations[0].kind, "linux-assign");
    assert_eq!(
        combined::operation_root(&operations[0]).as_deref(),
        Some(root.path())
    );
    let operation = journal.last_undoable().unwrap().unwrap();
    let report =
        executor::undo::<LinuxStep>(&mut journal, &operation, &mut ports, &mut |_| {}).unwrap();
    assert_eq!(report.outcome, Outcome::Undone, "{:?}", report.undo_errors);
    assert!(kernel.tree().diff(ports.kernel.tree()).is_empty());
    assert_eq!(
        differences(&original_files, &root.snapshot()),
        Vec::<String>::new()
    );
}

#[test]
fn a_crash_anywhere_in_the_combined_operation_is_undone_by_the_next_process() {
    let steps = plans(&FakeKernel::q35_lab(), &root()).0.steps.len();
    assert!(steps > 15, "{steps}");
    for index in 0..steps {
        for crash in [
            CrashPoint::BeforeApply(index),
            CrashPoint::AfterApply(index),
        ] {
            let kernel = FakeKernel::q35_lab();
            let root = root();
            let original_files = root.snapshot();
            let (plan, prepared) = plans(&kernel, &root);
            let journal_dir = tempfile::tempdir().unwrap();
            let tools = FakeTools::new(root.path());
            let after_crash = {
                let mut journal = Journal::open(journal_dir.path()).unwrap();
                let mut ports = ports(kernel.clone(), &root, &tools, &journal);
                let result = combined::apply(
                    &mut journal,
                    &plan,
                    &prepared.plan.contents,
                    &mut ports,
                    &ExecOptions { crash: Some(crash) },
                    &mut |_| {},
                );
                assert!(
                    matches!(
                        result,
                        Err(passthru_linux::boot::execute::RunError::Exec(
                            ExecError::Crashed(_)
                        ))
                    ),
                    "{crash:?}"
                );
                ports.kernel
            };
            let mut journal = Journal::open(journal_dir.path()).unwrap();
            let operation = journal.last_undoable().unwrap().unwrap();
            assert_eq!(operation.state, OperationState::Interrupted);
            let mut ports = ports(after_crash, &root, &tools, &journal);
            let report =
                executor::undo::<LinuxStep>(&mut journal, &operation, &mut ports, &mut |_| {})
                    .unwrap();
            assert!(
                report.undo_errors.is_empty(),
                "{crash:?}: {:?}",
                report.undo_errors
            );
            assert!(
                kernel.tree().diff(ports.kernel.tree()).is_empty(),
                "{crash:?}: {:?}",
                kernel.tree().diff(ports.kernel.tree())
            );
            assert_eq!(
                differences(&original_files, &root.snapshot()),
                Vec::<String>::new(),
                "{crash:?}"
            );
        }
    }
}

#[test]
fn a_failing_boot_step_rolls_the_binding_back_too() {
    let kernel = FakeKernel::q35_lab();
    let root = root();
    let original_files = root.snapshot();
    let (plan, prepared) = plans(&kernel, &root);
    let journal_dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(journal_dir.path()).unwrap();
    let tools = FakeTools::new(root.path());
    *tools.fail_on.borrow_mut() = Some("update-grub".into());
    *tools.fail_once.borrow_mut() = true;
    let mut ports = ports(kernel.clone(), &root, &tools, &journal);
    let error = combined::apply(
        &mut journal,
        &plan,
        &prepared.plan.contents,
        &mut ports,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    match error {
        passthru_linux::boot::execute::RunError::Exec(ExecError::StepFailed {
            rollback, ..
        }) => assert_eq!(
            rollback.outcome,
            Outcome::RolledBack,
            "{:?}",
            rollback.undo_errors
        ),
        other => panic!("{other:?}"),
    }
    assert!(kernel.tree().diff(ports.kernel.tree()).is_empty());
    assert_eq!(
        ports.kernel.driver_of(lab::AUDIO.parse().unwrap()),
        Some("snd_hda_intel")
    );
    *tools.fail_on.borrow_mut() = None;
    assert_eq!(
        differences(&original_files, &root.snapshot()),
        Vec::<String>::new()
    );
}
