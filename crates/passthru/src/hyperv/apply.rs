//! Showing, exporting and running Hyper-V plans.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use passthru_core::plan::executor::{self, ExecError, ExecOptions, Progress};
use passthru_core::plan::journal::Outcome;
use passthru_core::plan::{Plan, Step};
use passthru_hyperv::client::HyperVHost;
use passthru_hyperv::plan::export::{BOM, powershell_script};
use passthru_hyperv::plan::{HyperVStep, Proposal, Refusal};
use passthru_hyperv::survey::WindowsSurvey;

use super::{HyperVArgs, Purpose, connect, host_failure, paint, refusal_failure};
use crate::cli::GlobalArgs;
use crate::output::{self, Failure, style};

/// Connects for a change and reads the host.
pub(crate) fn connect_and_survey(purpose: Purpose) -> Result<(HyperVHost, WindowsSurvey), Failure> {
    let (mut host, kind) = connect(purpose)?;
    let answers = host.survey().map_err(|error| host_failure(&error))?;
    let survey = passthru_hyperv::survey::analyze(
        &answers,
        passthru_hyperv::survey::Source {
            kind,
            ..Default::default()
        },
    );
    Ok((host, survey))
}

/// Plans with `plan(stop_vm)`. When the only obstacle is a running VM and a person is at a
/// terminal, asks whether to shut it down (never silently) and plans again.
pub(crate) fn plan_with_consent(
    hyperv: &HyperVArgs,
    dry_run: bool,
    global: &GlobalArgs,
    plan: impl Fn(bool) -> Result<Proposal, Refusal>,
) -> Result<Proposal, Failure> {
    match plan(hyperv.stop_vm) {
        Ok(proposal) => Ok(proposal),
        Err(refusal)
            if !refusal.running_vms.is_empty()
                && !hyperv.stop_vm
                && hyperv.export_script.is_none()
                && can_ask(dry_run, global) =>
        {
            if consent_to_shut_down(&refusal.running_vms) {
                plan(true).map_err(|refusal| refusal_failure(&refusal))
            } else {
                Err(refusal_failure(&refusal))
            }
        }
        Err(refusal) => Err(refusal_failure(&refusal)),
    }
}

/// Whether passthru may ask a question: a person at a terminal, and a run that changes
/// something (never for `--dry-run` or `--json`).
pub(crate) fn can_ask(dry_run: bool, global: &GlobalArgs) -> bool {
    !dry_run && !global.json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks whether the running `vms` may be shut down; only "y" or "yes" agrees.
pub(crate) fn consent_to_shut_down(vms: &[String]) -> bool {
    let names = vms
        .iter()
        .map(|vm| format!("'{vm}'"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut stderr = anstream::stderr().lock();
    let _ = write!(
        stderr,
        "{names} must be off for this. Shut {} down now (the guest gets a shutdown request)? [y/N] ",
        if vms.len() == 1 { "it" } else { "them" }
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Exports, shows (`--dry-run`), or runs a proposal.
pub(crate) fn run(
    proposal: Proposal,
    host: &mut HyperVHost,
    hyperv: &HyperVArgs,
    dry_run: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let Proposal { plan, after } = proposal;
    if let Some(path) = &hyperv.export_script {
        let text = format!("{BOM}{}", powershell_script(&plan));
        fs_err::write(path, text).map_err(|error| Failure::from_error(&error))?;
        if global.json {
            output::print_json(&plan_json(&plan, &after, Some(path)))?;
        } else {
            let _ = writeln!(
                anstream::stdout().lock(),
                "wrote the plan to {} ({} steps); nothing was changed",
                path.display(),
                plan.steps.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run || plan.steps.is_empty() {
        if global.json {
            output::print_json(&plan_json(&plan, &after, None))?;
        } else {
            let mut out = anstream::stdout().lock();
            let _ = write!(out, "{}", plan.render());
            if dry_run && !plan.steps.is_empty() {
                let _ = writeln!(out, "Dry run: nothing was changed.");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    execute(&plan, &after, host, global)
}

/// A plan as `passthru.hyperv.plan/1` JSON.
fn plan_json(
    plan: &Plan<HyperVStep>,
    after: &[String],
    exported_to: Option<&std::path::Path>,
) -> serde_json::Value {
    let mut value = serde_json::json!({
        "schema": "passthru.hyperv.plan/1",
        "operation": plan.operation,
        "notes": plan.notes,
        "steps": plan.views(),
        "after": after,
    });
    if let Some(path) = exported_to {
        value["exported_to"] = serde_json::json!(path);
    }
    value
}

fn execute(
    plan: &Plan<HyperVStep>,
    after: &[String],
    host: &mut HyperVHost,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let mut journal = crate::commands::open_journal(global)?;
    let human = !global.json;
    if human {
        let mut out = anstream::stdout().lock();
        let _ = writeln!(out, "{} {}", paint(style::HEADING, "Plan:"), plan.operation);
        for note in &plan.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    let total = plan.steps.len();
    let mut observer = |progress: Progress<'_>| {
        if human {
            print_progress(progress, total);
        }
    };
    let result = executor::apply(
        &mut journal,
        plan,
        host,
        &ExecOptions::default(),
        &mut observer,
    );
    match result {
        Ok(report) => {
            if global.json {
                output::print_json(&serde_json::json!({
                    "schema": "passthru.hyperv.apply/1",
                    "operation": plan.operation,
                    "operation_id": report.operation_id,
                    "outcome": report.outcome,
                    "steps": plan.views(),
                    "after": after,
                }))?;
            } else {
                let mut out = anstream::stdout().lock();
                let _ = writeln!(
                    out,
                    "{} (journal: {}; `passthru undo` reverts it)",
                    paint(style::GOOD, "Done."),
                    report.operation_id
                );
                for line in after {
                    let _ = writeln!(out, "Next: {line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ExecError::StepFailed {
            index,
            error,
            rollback,
        }) => {
            let restored = rollback.outcome == Outcome::RolledBack;
            if global.json {
                output::print_json(&serde_json::json!({
                    "schema": "passthru.hyperv.apply/1",
                    "operation": plan.operation,
                    "operation_id": rollback.operation_id,
                    "outcome": rollback.outcome,
                    "failed_step": index + 1,
                    "error": error,
                    "undo_errors": rollback.undo_errors.iter().map(|(index, error)| serde_json::json!({"step": index + 1, "error": error})).collect::<Vec<_>>(),
                }))?;
            }
            let summary = plan.steps[index].view().summary;
            let mut failure = Failure::new(format!(
                "step {} ({summary}) failed: {}; {}",
                index + 1,
                error.message,
                if restored {
                    "every change before it was rolled back"
                } else {
                    "rolling back did not restore everything (see `passthru journal`)"
                }
            ));
            if let Some(help) = error.help {
                failure = failure.with_help(help);
            } else if !restored {
                failure = failure.with_help("run `passthru undo` to finish restoring the host");
            }
            Err(failure)
        }
        Err(other) => Err(Failure::from_error(&other)),
    }
}

fn print_progress(progress: Progress<'_>, total: usize) {
    let mut out = anstream::stdout().lock();
    let _ = match progress {
        Progress::Applying { index, view, .. } => {
            write!(out, "  [{}/{total}] {} ... ", index + 1, view.summary)
        }
        Progress::Applied { .. } => writeln!(out, "{}", paint(style::GOOD, "ok")),
        Progress::Failed { error, .. } => {
            writeln!(out, "{} {}", paint(style::BAD, "failed:"), error.message)
        }
        Progress::Undoing { index, view } => {
            write!(out, "  undo [{}] {} ... ", index + 1, view.summary)
        }
        Progress::Undone { .. } => writeln!(out, "{}", paint(style::GOOD, "undone")),
        Progress::UndoFailed { error, .. } => {
            writeln!(out, "{} {}", paint(style::BAD, "failed:"), error.message)
        }
    };
    let _ = out.flush();
}
