//! Planners: from a survey and a request to a [`Plan`] of [`HyperVStep`]s, or a refusal that
//! says why and what to do.
//!
//! Planners are pure functions over a [`WindowsSurvey`]; they never touch the host. The CLI
//! shows the plan (`--dry-run`), exports it as a `.ps1` ([`export::powershell_script`]), or
//! runs it through `passthru_core::plan::executor` with the journal.

pub mod dda;
pub mod export;
pub mod gpu_p;
pub mod select;
mod step;

use passthru_core::plan::Plan;

pub use step::HyperVStep;

use crate::survey::{Status, WindowsSurvey};

/// Why passthru will not make a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// What is wrong, in a sentence.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// VMs that are running and would have to be shut down; the CLI can offer to (and plan
    /// again with `stop_vm`).
    pub running_vms: Vec<String>,
}

impl Refusal {
    /// A refusal with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            help: None,
            running_vms: Vec::new(),
        }
    }

    /// Adds help.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    fn running(vms: Vec<String>) -> Self {
        let list = vms
            .iter()
            .map(|vm| format!("'{vm}'"))
            .collect::<Vec<_>>()
            .join(" and ");
        Self {
            message: format!(
                "{list} {} running; Hyper-V changes devices only while a VM is off",
                if vms.len() == 1 { "is" } else { "are" }
            ),
            help: Some("shut it down first, or pass --stop-vm to let passthru shut it down (and start it again if anything fails)".to_owned()),
            running_vms: vms,
        }
    }
}

/// A plan and what to tell the user after it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The plan.
    pub plan: Plan<HyperVStep>,
    /// What remains to be done afterwards, in sentences.
    pub after: Vec<String>,
}

/// Refuses when Hyper-V itself is not usable.
fn hyperv_ready(survey: &WindowsSurvey) -> Result<(), Refusal> {
    if let Some(check) = survey
        .host
        .checks
        .iter()
        .find(|check| check.id == "hyper-v" && check.status == Status::Bad)
    {
        let mut refusal = Refusal::new(check.summary.clone());
        if let Some(help) = &check.help {
            refusal = refusal.with_help(help.clone());
        }
        return Err(refusal);
    }
    Ok(())
}

/// Plans the shutdown of running VMs, or refuses when `stop_vm` is not given. Saved VMs are
/// refused: their saved state must be dealt with by the user.
fn stop_steps(
    survey: &WindowsSurvey,
    names: &[String],
    stop_vm: bool,
    plan: &mut Plan<HyperVStep>,
) -> Result<(), Refusal> {
    let mut running = Vec::new();
    for name in names {
        let Some(vm) = survey.vm(name) else { continue };
        let state = vm.state.as_deref().unwrap_or("Unknown");
        if state.eq_ignore_ascii_case("Off") {
            continue;
        }
        if state.eq_ignore_ascii_case("Saved") {
            return Err(Refusal::new(format!(
                "'{}' has a saved state; Hyper-V changes devices only while a VM is off",
                vm.name
            ))
            .with_help(format!(
                "start it and shut it down from inside, or discard the saved state with Remove-VMSavedState -VMName '{}'",
                vm.name
            )));
        }
        if !running.contains(&vm.name) {
            running.push(vm.name.clone());
        }
    }
    if running.is_empty() {
        return Ok(());
    }
    if !stop_vm {
        return Err(Refusal::running(running));
    }
    for vm in running {
        plan.steps.push(HyperVStep::StopVm {
            vm,
            turn_off: false,
        });
    }
    Ok(())
}
