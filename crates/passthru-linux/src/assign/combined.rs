//! `assign --persistent` and `release --persistent` as **one** journal operation: the
//! run-time binding (sysfs steps) and the boot configuration (file and command steps) in one
//! plan, applied together, rolled back together, and undone by one `passthru undo`.
//!
//! Why one operation rather than two linked ones: the executor already guarantees for one
//! operation what a user expects of `--persistent` — journal first, rollback of *everything*
//! when any step fails, and an interrupted operation that `undo` finishes. Two operations would
//! need a link between them and an undo that follows it, and a crash between them would leave
//! half of the request applied with nothing in the journal saying the other half was meant.
//!
//! Order: the run-time steps come first (quick, and the likeliest to be refused by the
//! kernel), the boot steps after them (slow: initramfs rebuilds). The executor undoes in
//! reverse, so the boot files are restored and the images rebuilt before the devices go back
//! to their host drivers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use passthru_core::plan::executor::{self, ExecOptions, Progress, Report, decode_steps};
use passthru_core::plan::journal::{Journal, Operation};
use passthru_core::plan::{Plan, Step, StepError, StepView};
use serde::{Deserialize, Serialize};

use crate::bind::{KernelPort, SysfsStep};
use crate::boot::execute::RunError;
use crate::boot::step::{BootHost, BootStep};

/// One step of a `--persistent` operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinuxStep {
    /// A run-time binding step.
    Sysfs(SysfsStep),
    /// A boot-configuration step.
    Boot(BootStep),
}

/// What a [`LinuxStep`] acts through: the running kernel and the boot files.
pub trait LinuxPorts {
    /// The kernel port for sysfs steps.
    fn kernel(&mut self) -> &mut (dyn KernelPort + 'static);
    /// The root, runner and blob store for boot steps.
    fn boot(&mut self) -> &mut BootHost;
}

/// The usual [`LinuxPorts`]: a kernel port (the real one, boxed, or the fake kernel in
/// tests) and a boot host.
#[derive(Debug)]
pub struct Ports<K> {
    /// The kernel.
    pub kernel: K,
    /// The boot files.
    pub boot: BootHost,
}

impl<K: KernelPort + 'static> LinuxPorts for Ports<K> {
    fn kernel(&mut self) -> &mut (dyn KernelPort + 'static) {
        &mut self.kernel
    }

    fn boot(&mut self) -> &mut BootHost {
        &mut self.boot
    }
}

impl Step for LinuxStep {
    type Host = dyn LinuxPorts + 'static;
    const KIND: &'static str = "linux-assign";

    fn view(&self) -> StepView {
        match self {
            Self::Sysfs(step) => step.view(),
            Self::Boot(step) => step.view(),
        }
    }

    fn apply(&self, host: &mut Self::Host) -> Result<(), StepError> {
        match self {
            Self::Sysfs(step) => step.apply(host.kernel()),
            Self::Boot(step) => step.apply(host.boot()),
        }
    }

    fn verify(&self, host: &mut Self::Host) -> Result<(), StepError> {
        match self {
            Self::Sysfs(step) => step.verify(host.kernel()),
            Self::Boot(step) => step.verify(host.boot()),
        }
    }

    fn undo(&self, host: &mut Self::Host) -> Result<(), StepError> {
        match self {
            Self::Sysfs(step) => step.undo(host.kernel()),
            Self::Boot(step) => step.undo(host.boot()),
        }
    }
}

/// One plan from the run-time part and the boot part. The notes of both come first.
pub fn combine(
    operation: String,
    runtime: &Plan<SysfsStep>,
    boot: &Plan<BootStep>,
) -> Plan<LinuxStep> {
    let mut plan = Plan::new(operation);
    plan.notes.extend(runtime.notes.iter().cloned());
    plan.notes.extend(boot.notes.iter().cloned());
    plan.steps
        .extend(runtime.steps.iter().cloned().map(LinuxStep::Sysfs));
    plan.steps
        .extend(boot.steps.iter().cloned().map(LinuxStep::Boot));
    plan
}

/// Stores the boot part's file contents in the journal, then applies the plan.
pub fn apply(
    journal: &mut Journal,
    plan: &Plan<LinuxStep>,
    contents: &BTreeMap<String, Vec<u8>>,
    ports: &mut (dyn LinuxPorts + 'static),
    options: &ExecOptions,
    observer: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, RunError> {
    for bytes in contents.values() {
        journal.store_blob(bytes)?;
    }
    Ok(executor::apply(journal, plan, ports, options, observer)?)
}

/// The root a journaled `linux-assign` operation configured, from its first boot step.
pub fn operation_root(operation: &Operation) -> Option<PathBuf> {
    decode_steps::<LinuxStep>(operation)
        .ok()?
        .into_iter()
        .find_map(|step| match step {
            LinuxStep::Boot(BootStep::Begin { root, .. }) => Some(root),
            _ => None,
        })
}
