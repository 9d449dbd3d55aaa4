//! `assign` and `release` on Linux at run time: plan from the survey's inventory, show it,
//! run it through the journal, report.
//!
//! Everything acts through a [`KernelPort`] and writes to a [`Write`], so the same code runs
//! against the real kernel in `main` and against the fake kernel in this crate's tests.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use passthru_core::plan::Plan;
use passthru_core::plan::executor::{self, ExecError, ExecOptions, Report};
use passthru_core::plan::journal::{Journal, Outcome};
use passthru_linux::assign::history::recorded_host_drivers;
use passthru_linux::assign::{
    AssignRequest, PlanError, ReleaseRequest, prepare_assign, prepare_release,
};
use passthru_linux::bind::{KernelPort, SysfsStep};

use super::render;
use crate::commands::linux_host::{inventory_with_names, plan_failure};
use crate::commands::progress;
use crate::output::{Failure, print_json_to};

/// Where a Linux assign or release reads, acts and reports.
pub(crate) struct Context<'a> {
    /// The kernel (real or fake); its `fs()` is the host the plan is made from.
    pub(crate) port: &'a mut (dyn KernelPort + 'static),
    /// Where `pci.ids` may be (empty: the copy built into passthru).
    pub(crate) names: Vec<PathBuf>,
    /// Opens the journal (only when something is about to change).
    pub(crate) journal: &'a mut dyn FnMut() -> Result<Journal, Failure>,
    /// `--json`.
    pub(crate) json: bool,
    /// Standard output.
    pub(crate) out: &'a mut dyn Write,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

/// `passthru assign DEVICE… [--with-group] [--force] [--dry-run]`.
pub(crate) fn assign(
    ctx: &mut Context<'_>,
    request: &AssignRequest,
    dry_run: bool,
) -> Result<ExitCode, Failure> {
    // The journal's lock is taken before reading the host, so that no other passthru changes
    // it between the plan and its execution (a dry run changes nothing and needs no journal).
    let journal = if dry_run {
        None
    } else {
        Some((ctx.journal)()?)
    };
    let inventory = inventory_with_names(ctx.port.fs(), &ctx.names);
    let plan = match prepare_assign(ctx.port.fs(), &inventory, request) {
        Ok(plan) => plan,
        Err(error) => return refused(ctx, "passthru.assign/1", &error),
    };
    if plan.nothing_to_do() || dry_run {
        render::assign_plan(ctx.out, ctx.json, &plan, dry_run)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json {
        render::assign_header(ctx.out, &plan);
        render::notes(ctx.out, &plan.plan.notes);
    }
    let result = execute(ctx, journal, &plan.plan);
    let report = finished(ctx, "passthru.assign/1", &plan.plan, result)?;
    render::assigned(ctx.out, ctx.json, &plan, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// `passthru release DEVICE… [--dry-run]`.
pub(crate) fn release(
    ctx: &mut Context<'_>,
    request: &ReleaseRequest,
    dry_run: bool,
) -> Result<ExitCode, Failure> {
    // The journal says which driver each device had at assign time; its lock is held from
    // here on, so no other passthru changes the host between the plan and its execution.
    let journal = (ctx.journal)()?;
    let recorded = recorded_host_drivers(
        &journal
            .operations()
            .map_err(|error| Failure::from_error(&error))?,
    );
    let inventory = inventory_with_names(ctx.port.fs(), &ctx.names);
    let plan = match prepare_release(ctx.port.fs(), &inventory, &recorded, request) {
        Ok(plan) => plan,
        Err(error) => return refused(ctx, "passthru.release/1", &error),
    };
    if plan.nothing_to_do() || dry_run {
        render::release_plan(ctx.out, ctx.json, &plan, dry_run)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json {
        render::release_header(ctx.out, &plan);
        render::notes(ctx.out, &plan.plan.notes);
    }
    let result = execute(ctx, Some(journal), &plan.plan);
    let report = finished(ctx, "passthru.release/1", &plan.plan, result)?;
    render::released(ctx.out, ctx.json, &plan, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// A run that did not apply, and how it ended (`rolled-back`, `rollback-incomplete`,
/// `failed`).
type RunFailure = (Failure, &'static str);

fn execute(
    ctx: &mut Context<'_>,
    journal: Option<Journal>,
    plan: &Plan<SysfsStep>,
) -> Result<Report, RunFailure> {
    let mut journal = match journal {
        Some(journal) => journal,
        None => (ctx.journal)().map_err(|failure| (failure, "failed"))?,
    };
    let mut observer = progress::printer(ctx.out, ctx.json);
    executor::apply(
        &mut journal,
        plan,
        ctx.port,
        &ExecOptions::default(),
        &mut observer,
    )
    .map_err(step_failure)
}

/// The failure for an apply that stopped: which step, why, and whether the rollback put
/// everything back.
pub(crate) fn step_failure(error: ExecError) -> RunFailure {
    match error {
        ExecError::StepFailed {
            index,
            error,
            rollback,
        } => {
            let restored = rollback.outcome == Outcome::RolledBack;
            let mut failure = Failure::new(format!(
                "step {} failed: {}\n{}",
                index + 1,
                error.message,
                if restored {
                    "Every change was rolled back; the host is as it was."
                } else {
                    "The rollback could not put everything back (see above); `passthru undo` \
                     tries again once the cause is fixed."
                }
            ));
            if let Some(help) = error.help {
                failure = failure.with_help(help);
            }
            (
                failure,
                if restored {
                    "rolled-back"
                } else {
                    "rollback-incomplete"
                },
            )
        }
        other => (Failure::from_error(&other), "failed"),
    }
}

/// Turns a failed run into the failure (and, with `--json`, the JSON) people see.
fn finished(
    ctx: &mut Context<'_>,
    schema: &str,
    plan: &Plan<SysfsStep>,
    result: Result<Report, RunFailure>,
) -> Result<Report, Failure> {
    match result {
        Ok(report) if report.outcome == Outcome::UndoIncomplete => Err(Failure::new(format!(
            "operation {} could not put everything back",
            report.operation_id
        ))),
        Ok(report) => Ok(report),
        Err((failure, outcome)) => {
            if ctx.json {
                print_json_to(
                    ctx.out,
                    &serde_json::json!({
                        "schema": schema,
                        "operation": plan.operation,
                        "outcome": outcome,
                        "error": failure.to_string(),
                        "help": failure.help(),
                    }),
                )?;
            }
            Err(failure)
        }
    }
}

/// A refusal or a selector error: with `--json` the refusal goes to stdout as data (exit 1);
/// otherwise it is the command's error.
fn refused(ctx: &mut Context<'_>, schema: &str, error: &PlanError) -> Result<ExitCode, Failure> {
    match error {
        PlanError::Refused(refusal) if ctx.json => {
            print_json_to(
                ctx.out,
                &serde_json::json!({
                    "schema": schema,
                    "operation": refusal.operation,
                    "outcome": "refused",
                    "reasons": refusal.reasons,
                }),
            )?;
            Ok(ExitCode::FAILURE)
        }
        _ => Err(plan_failure(error)),
    }
}
