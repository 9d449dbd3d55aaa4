//! `passthru assign --vm` and `passthru release` on Hyper-V (DDA).

use std::process::ExitCode;

use passthru_hyperv::plan::dda::{AssignRequest, ReleaseRequest, plan_assign, plan_release};

use super::apply::{connect_and_survey, plan_with_consent, run};
use super::{HyperVArgs, Purpose};
use crate::cli::GlobalArgs;
use crate::output::Failure;

/// What `assign` asks of Hyper-V.
#[derive(Debug, Clone)]
pub(crate) struct Assign<'a> {
    /// Device selectors.
    pub(crate) devices: &'a [String],
    /// The VM.
    pub(crate) vm: &'a str,
    /// `--force`.
    pub(crate) force: bool,
    /// `--dry-run`.
    pub(crate) dry_run: bool,
    /// Hyper-V options.
    pub(crate) hyperv: &'a HyperVArgs,
}

/// Plans and runs a DDA assignment.
pub(crate) fn assign(request: &Assign<'_>, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let (mut host, survey) = connect_and_survey(Purpose::Change)?;
    let proposal = plan_with_consent(request.hyperv, request.dry_run, global, |stop_vm| {
        plan_assign(
            &survey,
            &AssignRequest {
                devices: request.devices.to_vec(),
                vm: request.vm.to_owned(),
                stop_vm,
                force: request.force,
            },
        )
    })?;
    run(proposal, &mut host, request.hyperv, request.dry_run, global)
}

/// Plans and runs a release (also the recovery of dismounted devices).
pub(crate) fn release(
    devices: &[String],
    vm: Option<&str>,
    dry_run: bool,
    hyperv: &HyperVArgs,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let (mut host, survey) = connect_and_survey(Purpose::Change)?;
    let proposal = plan_with_consent(hyperv, dry_run, global, |stop_vm| {
        plan_release(
            &survey,
            &ReleaseRequest {
                devices: devices.to_vec(),
                vm: vm.map(str::to_owned),
                stop_vm,
            },
        )
    })?;
    run(proposal, &mut host, hyperv, dry_run, global)
}
