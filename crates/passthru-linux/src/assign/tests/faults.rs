//! Plans made by the planners, run through the executor against the fake kernel with a
//! failure at every write and command, and a crash before and after every step: rollback, or
//! `undo` from a reopened journal, must restore the kernel's complete visible state.

use passthru_core::plan::executor::{CrashPoint, ExecError};
use passthru_core::plan::journal::OperationState;

use super::*;
use crate::assign::history::recorded_host_drivers;
use crate::errno::Errno;

/// A starting kernel and a way to plan on it.
struct Case {
    name: &'static str,
    start: fn() -> (FakeKernel, tempfile::TempDir),
    plan: fn(&FakeKernel, &Journal) -> Plan<SysfsStep>,
}

fn fresh() -> (FakeKernel, tempfile::TempDir) {
    (FakeKernel::q35_lab(), tempfile::tempdir().unwrap())
}

/// The GPU and its audio function on vfio-pci, assigned through the planner and journaled.
fn gpu_assigned() -> (FakeKernel, tempfile::TempDir) {
    let (mut kernel, dir) = fresh();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = assign(&kernel, &request(&[lab::GPU])).unwrap();
    run(&mut kernel, &mut journal, &plan.plan);
    (kernel, dir)
}

fn assign_gpu(kernel: &FakeKernel, _: &Journal) -> Plan<SysfsStep> {
    assign(kernel, &request(&[lab::GPU])).unwrap().plan
}

fn assign_bridged_group(kernel: &FakeKernel, _: &Journal) -> Plan<SysfsStep> {
    let mut with_group = request(&[lab::BRIDGED_NIC_1]);
    with_group.with_group = true;
    assign(kernel, &with_group).unwrap().plan
}

fn release_gpu(kernel: &FakeKernel, journal: &Journal) -> Plan<SysfsStep> {
    let inventory = read_inventory(kernel.tree());
    let recorded = recorded_host_drivers(&journal.operations().unwrap());
    let request = ReleaseRequest {
        devices: vec![lab::GPU.to_owned()],
    };
    prepare_release(kernel.tree(), &inventory, &recorded, &request)
        .unwrap()
        .plan
}

const CASES: [Case; 3] = [
    Case {
        name: "assign GPU",
        start: fresh,
        plan: assign_gpu,
    },
    Case {
        name: "assign --with-group",
        start: fresh,
        plan: assign_bridged_group,
    },
    Case {
        name: "release GPU",
        start: gpu_assigned,
        plan: release_gpu,
    },
];

fn assert_restored(before: &FakeKernel, after: &FakeKernel, context: &str) {
    let differences = before.tree().diff(after.tree());
    assert!(
        differences.is_empty(),
        "{context}: the kernel differs:\n{}\nbefore: {:?}\nafter: {:?}\nlog:\n{}",
        differences.join("\n"),
        bindings(before),
        bindings(after),
        after.log().join("\n")
    );
}

/// Writes and commands a clean run of the case makes.
fn mutations(case: &Case) -> usize {
    let (mut kernel, dir) = (case.start)();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = (case.plan)(&kernel, &journal);
    let before = kernel.mutations();
    assert_eq!(
        run(&mut kernel, &mut journal, &plan).outcome,
        Outcome::Applied
    );
    kernel.mutations() - before
}

#[test]
fn a_failure_at_every_write_and_command_rolls_back_exactly() {
    for case in &CASES {
        let total = mutations(case);
        assert!(total >= 5, "{}: {total} mutations", case.name);
        for n in 0..total {
            let context = format!("{}: EIO at mutation {n} of {total}", case.name);
            let (mut kernel, dir) = (case.start)();
            let before = kernel.clone();
            let mut journal = Journal::open(dir.path()).unwrap();
            let plan = (case.plan)(&kernel, &journal);
            kernel.fail_mutation(n, Errno::EIO);
            let port: &mut dyn KernelPort = &mut kernel;
            match executor::apply(
                &mut journal,
                &plan,
                port,
                &ExecOptions::default(),
                &mut |_| {},
            ) {
                Err(ExecError::StepFailed { rollback, .. }) => {
                    assert_eq!(rollback.outcome, Outcome::RolledBack, "{context}");
                }
                other => panic!("{context}: expected a rolled-back failure, got {other:?}"),
            }
            assert_restored(&before, &kernel, &context);
            let last = journal.operations().unwrap().pop().unwrap();
            assert_eq!(last.state, OperationState::RolledBack, "{context}");
        }
    }
}

#[test]
fn a_crash_before_or_after_every_step_is_undone_from_the_journal() {
    for case in &CASES {
        let steps = {
            let (kernel, dir) = (case.start)();
            let journal = Journal::open(dir.path()).unwrap();
            (case.plan)(&kernel, &journal).steps.len()
        };
        for index in 0..steps {
            for crash in [
                CrashPoint::BeforeApply(index),
                CrashPoint::AfterApply(index),
            ] {
                let context = format!("{}: {crash:?}", case.name);
                let (mut kernel, dir) = (case.start)();
                let before = kernel.clone();
                {
                    let mut journal = Journal::open(dir.path()).unwrap();
                    let plan = (case.plan)(&kernel, &journal);
                    let port: &mut dyn KernelPort = &mut kernel;
                    let options = ExecOptions { crash: Some(crash) };
                    let result = executor::apply(&mut journal, &plan, port, &options, &mut |_| {});
                    assert!(matches!(result, Err(ExecError::Crashed(_))), "{context}");
                }
                // `passthru undo` in a new process.
                let mut journal = Journal::open(dir.path()).unwrap();
                let operation = journal.last_undoable().unwrap().unwrap();
                assert_eq!(operation.state, OperationState::Interrupted, "{context}");
                let port: &mut dyn KernelPort = &mut kernel;
                let report =
                    executor::undo::<SysfsStep>(&mut journal, &operation, port, &mut |_| {})
                        .unwrap();
                assert_eq!(report.outcome, Outcome::Undone, "{context}: {report:?}");
                assert_restored(&before, &kernel, &context);
            }
        }
    }
}
