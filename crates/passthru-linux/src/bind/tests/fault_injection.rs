//! Fail, hang or crash at every point of an assign (GPU + its audio function) and check that
//! rollback or `undo` from a reopened journal restores the kernel's complete visible state:
//! drivers, overrides, loaded modules, `/dev/vfio`.

use passthru_core::plan::Plan;
use passthru_core::plan::executor::{self, CrashPoint, ExecError, ExecOptions, Report};
use passthru_core::plan::journal::{Journal, OperationState, Outcome};
use proptest::prelude::*;

use super::steps::assign_plan;
use crate::bind::{KernelPort, SysfsStep};
use crate::errno::Errno;
use crate::testing::{FakeDevice, FakeKernel, FakeModule, lab};

fn plan_for(kernel: &FakeKernel) -> Plan<SysfsStep> {
    let mut plan = Plan::new("assign 0000:01:00.0 0000:01:00.1");
    plan.steps = assign_plan(kernel, &[lab::GPU, lab::AUDIO]);
    plan
}

fn run(
    kernel: &mut FakeKernel,
    journal: &mut Journal,
    plan: &Plan<SysfsStep>,
    crash: Option<CrashPoint>,
) -> Result<Report, ExecError> {
    let port: &mut dyn KernelPort = kernel;
    executor::apply(journal, plan, port, &ExecOptions { crash }, &mut |_| {})
}

/// Undo of the last undoable operation, as `passthru undo` in a new process does it.
fn undo_in_new_process(dir: &std::path::Path, kernel: &mut FakeKernel) -> (OperationState, Report) {
    let mut journal = Journal::open(dir).unwrap();
    let operation = journal
        .last_undoable()
        .unwrap()
        .expect("an operation to undo");
    let port: &mut dyn KernelPort = kernel;
    let report = executor::undo::<SysfsStep>(&mut journal, &operation, port, &mut |_| {}).unwrap();
    (operation.state, report)
}

fn assert_restored(before: &FakeKernel, after: &FakeKernel, context: &str) {
    let differences = before.tree().diff(after.tree());
    assert!(
        differences.is_empty(),
        "{context}: the kernel differs after rollback/undo:\n{}\nlog:\n{}",
        differences.join("\n"),
        after.log().join("\n")
    );
}

/// How many writes and commands a clean assign makes.
fn clean_mutations() -> usize {
    let mut kernel = FakeKernel::gpu_with_audio();
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = plan_for(&kernel);
    run(&mut kernel, &mut journal, &plan, None).unwrap();
    kernel.mutations()
}

#[test]
fn a_failure_at_every_write_and_command_rolls_back_exactly() {
    let total = clean_mutations();
    assert_eq!(total, 7, "modprobe + 2 overrides + 2 unbinds + 2 probes");
    for n in 0..total {
        for errno in [Errno::EBUSY, Errno::ENODEV, Errno::EINVAL] {
            let context = format!("failure {errno} at mutation {n}");
            let mut kernel = FakeKernel::gpu_with_audio();
            let before = kernel.clone();
            kernel.fail_mutation(n, errno);
            let dir = tempfile::tempdir().unwrap();
            let mut journal = Journal::open(dir.path()).unwrap();
            let plan = plan_for(&kernel);
            match run(&mut kernel, &mut journal, &plan, None) {
                Err(ExecError::StepFailed { rollback, .. }) => {
                    assert_eq!(rollback.outcome, Outcome::RolledBack, "{context}");
                }
                other => panic!("{context}: expected a rolled-back failure, got {other:?}"),
            }
            assert_restored(&before, &kernel, &context);
            let operations = journal.operations().unwrap();
            assert_eq!(operations[0].state, OperationState::RolledBack, "{context}");
        }
    }
}

#[test]
fn a_crash_before_or_after_every_step_is_undone_from_the_journal() {
    let steps = plan_for(&FakeKernel::gpu_with_audio()).steps.len();
    assert_eq!(steps, 10);
    for index in 0..steps {
        for crash in [
            CrashPoint::BeforeApply(index),
            CrashPoint::AfterApply(index),
        ] {
            let context = format!("{crash:?}");
            let mut kernel = FakeKernel::gpu_with_audio();
            let before = kernel.clone();
            let dir = tempfile::tempdir().unwrap();
            {
                let mut journal = Journal::open(dir.path()).unwrap();
                let plan = plan_for(&kernel);
                let result = run(&mut kernel, &mut journal, &plan, Some(crash));
                assert!(matches!(result, Err(ExecError::Crashed(_))), "{context}");
            }
            let (state, report) = undo_in_new_process(dir.path(), &mut kernel);
            assert_eq!(state, OperationState::Interrupted, "{context}");
            assert_eq!(report.outcome, Outcome::Undone, "{context}: {report:?}");
            assert_restored(&before, &kernel, &context);
        }
    }
}

#[test]
fn a_hang_at_every_write_is_reported_and_rolled_back() {
    let mut clean = FakeKernel::gpu_with_audio();
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = plan_for(&clean);
    run(&mut clean, &mut journal, &plan, None).unwrap();
    let written: Vec<String> = clean
        .log()
        .iter()
        .filter_map(|line| line.strip_prefix("write "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(written.len(), 6);
    for path in written {
        let mut kernel = FakeKernel::gpu_with_audio();
        let before = kernel.clone();
        // The hang stays for the rollback too: a stuck device stays stuck.
        kernel.hang_writes(&path);
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        let plan = plan_for(&kernel);
        match run(&mut kernel, &mut journal, &plan, None) {
            Err(ExecError::StepFailed {
                error, rollback, ..
            }) => {
                assert!(
                    error.message.contains("did not return within"),
                    "{path}: {error}"
                );
                assert_eq!(rollback.outcome, Outcome::RolledBack, "{path}");
            }
            other => panic!("{path}: expected a rolled-back failure, got {other:?}"),
        }
        assert_restored(&before, &kernel, &format!("hang on {path}"));
    }
}

#[test]
fn a_failed_rollback_is_finished_by_a_later_undo() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let before = kernel.clone();
    // The audio function's probe fails; while rolling back, snd_hda_intel refuses the device
    // once (as if its probe failed transiently).
    kernel.fail_mutation(6, Errno::EBUSY);
    kernel.fail_writes("/drivers/snd_hda_intel/bind", Errno::EIO, Some(1));
    let dir = tempfile::tempdir().unwrap();
    {
        let mut journal = Journal::open(dir.path()).unwrap();
        let plan = plan_for(&kernel);
        match run(&mut kernel, &mut journal, &plan, None) {
            Err(ExecError::StepFailed { rollback, .. }) => {
                assert_eq!(rollback.outcome, Outcome::UndoIncomplete);
                assert_eq!(rollback.undo_errors.len(), 1, "{rollback:?}");
                assert!(
                    rollback.undo_errors[0].1.message.contains("snd_hda_intel"),
                    "{rollback:?}"
                );
            }
            other => panic!("expected an incomplete rollback, got {other:?}"),
        }
    }
    assert_eq!(kernel.driver_of(lab::AUDIO.parse().unwrap()), None);
    let (state, report) = undo_in_new_process(dir.path(), &mut kernel);
    assert_eq!(state, OperationState::UndoIncomplete);
    assert_eq!(report.outcome, Outcome::Undone, "{report:?}");
    assert_restored(&before, &kernel, "second undo");
}

#[test]
fn an_applied_assign_is_undone_exactly() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let before = kernel.clone();
    let dir = tempfile::tempdir().unwrap();
    {
        let mut journal = Journal::open(dir.path()).unwrap();
        let plan = plan_for(&kernel);
        let report = run(&mut kernel, &mut journal, &plan, None).unwrap();
        assert_eq!(report.outcome, Outcome::Applied);
    }
    assert_eq!(
        kernel.driver_of(lab::GPU.parse().unwrap()),
        Some("vfio-pci")
    );
    let (state, report) = undo_in_new_process(dir.path(), &mut kernel);
    assert_eq!(state, OperationState::Applied);
    assert_eq!(report.outcome, Outcome::Undone);
    assert_restored(&before, &kernel, "undo after apply");
}

/// A starting point that differs from the stock lab in the ways hosts differ.
fn varied_kernel(vfio_loaded: bool, audio_unbound: bool, gpu_override: bool) -> FakeKernel {
    let mut builder = FakeKernel::builder()
        .intel_iommu()
        .module(FakeModule::new("pcieport").driver("pcieport").builtin())
        .module(FakeModule::new("bochs").driver("bochs-drm").loaded())
        .module(
            FakeModule::new("snd_hda_intel")
                .driver("snd_hda_intel")
                .loaded(),
        )
        .device(
            FakeDevice::new(lab::ROOT_PORT)
                .class(0x060400)
                .group(2)
                .driver("pcieport"),
        );
    builder = if vfio_loaded {
        builder
            .module(FakeModule::new("irqbypass").loaded())
            .module(FakeModule::new("vfio_virqfd").loaded())
            .module(
                FakeModule::new("vfio")
                    .softdep_post(&["vfio_iommu_type1"])
                    .loaded(),
            )
            .module(
                FakeModule::new("vfio_iommu_type1")
                    .depends(&["vfio"])
                    .loaded(),
            )
            .module(
                FakeModule::new("vfio_pci_core")
                    .depends(&["vfio", "vfio_virqfd", "irqbypass"])
                    .loaded(),
            )
            .module(
                FakeModule::new("vfio_pci")
                    .depends(&["vfio_pci_core", "vfio"])
                    .driver("vfio-pci")
                    .loaded(),
            )
    } else {
        builder.vfio_modules()
    };
    let mut gpu = FakeDevice::new(lab::GPU)
        .behind(lab::ROOT_PORT)
        .class(0x030000)
        .group(3)
        .driver("bochs-drm");
    if gpu_override {
        gpu = gpu.driver_override("bochs-drm");
    }
    let mut audio = FakeDevice::new(lab::AUDIO)
        .behind(lab::ROOT_PORT)
        .class(0x040300)
        .group(3)
        .driver("snd_hda_intel");
    if audio_unbound {
        audio = audio.unbound();
    }
    builder.device(gpu).device(audio).build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn any_failure_or_crash_on_any_host_leaves_the_kernel_as_it_was(
        vfio_loaded in any::<bool>(),
        audio_unbound in any::<bool>(),
        gpu_override in any::<bool>(),
        fault in 0usize..12,
        crash in any::<bool>(),
        after in any::<bool>(),
        errno in prop::sample::select(vec![Errno::EBUSY, Errno::ENODEV, Errno::EINVAL, Errno::EIO]),
    ) {
        let mut kernel = varied_kernel(vfio_loaded, audio_unbound, gpu_override);
        let before = kernel.clone();
        let plan = plan_for(&kernel);
        let dir = tempfile::tempdir().unwrap();
        let crash_point = (crash && fault < plan.steps.len()).then_some(if after {
            CrashPoint::AfterApply(fault)
        } else {
            CrashPoint::BeforeApply(fault)
        });
        if crash_point.is_none() {
            kernel.fail_mutation(fault, errno);
        }
        let outcome = {
            let mut journal = Journal::open(dir.path()).unwrap();
            run(&mut kernel, &mut journal, &plan, crash_point)
        };
        match outcome {
            Ok(_) => {
                // The fault fell beyond the last mutation: undo the finished assign.
                kernel.clear_faults();
                let (_, report) = undo_in_new_process(dir.path(), &mut kernel);
                prop_assert_eq!(report.outcome, Outcome::Undone);
            }
            Err(ExecError::Crashed(_)) => {
                let (_, report) = undo_in_new_process(dir.path(), &mut kernel);
                prop_assert_eq!(report.outcome, Outcome::Undone);
            }
            Err(ExecError::StepFailed { rollback, .. }) => {
                prop_assert_eq!(rollback.outcome, Outcome::RolledBack);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
        let differences = before.tree().diff(kernel.tree());
        prop_assert!(differences.is_empty(), "{}\n{}", differences.join("\n"), kernel.log().join("\n"));
    }
}

/// A fake-kernel log line as the shell line `Action` displays.
fn as_shell(line: &str) -> String {
    if let Some(command) = line.strip_prefix("run ") {
        return command.to_owned();
    }
    let rest = line.strip_prefix("write ").unwrap();
    let (path, quoted) = rest.split_once(' ').unwrap();
    let value: String = serde_json::from_str(quoted).unwrap();
    let value = value.trim_end_matches('\n');
    if value.is_empty() {
        format!("echo > {path}")
    } else {
        format!("echo {value} > {path}")
    }
}

#[test]
fn the_undo_preview_predicts_exactly_what_undo_does() {
    let steps = plan_for(&FakeKernel::gpu_with_audio()).steps.len();
    let mut crashes = vec![None];
    for index in 0..steps {
        crashes.push(Some(CrashPoint::BeforeApply(index)));
        crashes.push(Some(CrashPoint::AfterApply(index)));
    }
    for crash in crashes {
        let mut kernel = FakeKernel::gpu_with_audio();
        let dir = tempfile::tempdir().unwrap();
        {
            let mut journal = Journal::open(dir.path()).unwrap();
            let plan = plan_for(&kernel);
            let _ = run(&mut kernel, &mut journal, &plan, crash);
        }
        let journal = Journal::open(dir.path()).unwrap();
        let operation = journal.last_undoable().unwrap().unwrap();
        drop(journal);
        let decoded: Vec<SysfsStep> = executor::decode_steps(&operation).unwrap();
        let predicted: Vec<String> =
            crate::bind::preview_undo(&decoded, &operation.pending_undo(), kernel.tree())
                .into_iter()
                .flat_map(|(_, actions)| actions.unwrap())
                .map(|action| action.to_string())
                .collect();
        let logged_before = kernel.log().len();
        undo_in_new_process(dir.path(), &mut kernel);
        let done: Vec<String> = kernel.log()[logged_before..]
            .iter()
            .map(|line| as_shell(line))
            .collect();
        assert_eq!(predicted, done, "{crash:?}");
    }
}
