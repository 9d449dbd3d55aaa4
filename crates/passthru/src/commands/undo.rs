//! `passthru undo`: revert the last operation in the journal (or a named one), also one that a
//! crash or power loss interrupted.
//!
//! The journal records each operation's step kind; [`run`] dispatches on it. Each platform adds
//! one arm that opens its port and calls [`undo_steps`] (or [`show_pending`] for
//! `--dry-run`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use passthru_core::plan::executor::{self, Progress};
use passthru_core::plan::journal::{Journal, Operation, OperationState, Outcome, WRITER};
use passthru_core::plan::{Step, StepView};
use passthru_linux::bind::{SysfsStep, Timeouts, preview_undo};

use crate::cli::GlobalArgs;
use crate::output::{self, Failure, style};

/// Arguments of `passthru undo`.
#[derive(Debug, Args)]
pub(crate) struct UndoArgs {
    /// Undo this operation (an id from `passthru journal`) instead of the last one.
    #[arg(long, value_name = "ID")]
    pub(crate) operation: Option<String>,

    /// Print what would be undone and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

pub(crate) fn run(args: UndoArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let mut journal = super::open_journal(global)?;
    let Some(operation) = choose_operation(&journal, args.operation.as_deref())? else {
        if global.json {
            output::print_json(&serde_json::json!({
                "schema": "passthru.undo/1",
                "operation": null,
                "outcome": "nothing-to-undo",
            }))?;
        } else {
            let mut out = anstream::stdout().lock();
            let _ = writeln!(
                out,
                "Nothing to undo: the journal has no applied or interrupted operation."
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    match operation.kind.as_str() {
        "linux-sysfs" => undo_linux_sysfs(&mut journal, &operation, &args, global),
        "linux-boot" if args.dry_run => show_pending(&operation, global, |_| None),
        "linux-boot" => super::persist::undo(&mut journal, &operation, global),
        "linux-assign" if args.dry_run => show_pending(&operation, global, |_| None),
        "linux-assign" => super::persist::undo_combined(&mut journal, &operation, global),
        "hyperv" => crate::hyperv::undo::undo(&mut journal, &operation, args.dry_run, global),
        "guest-driver" => super::driver::undo(&mut journal, &operation, args.dry_run, global),
        other => Err(unknown_kind(other, &operation)),
    }
}

/// The operation to undo: the named one (which must be undoable), or the last undoable one.
fn choose_operation(journal: &Journal, id: Option<&str>) -> Result<Option<Operation>, Failure> {
    let Some(id) = id else {
        return journal
            .last_undoable()
            .map_err(|error| Failure::from_error(&error));
    };
    let operation = journal.operation(id).map_err(|error| {
        Failure::from_error(&error).with_help("run `passthru journal` to list the operations")
    })?;
    if !operation.undoable() {
        return Err(Failure::new(format!(
            "operation `{id}` is {}; there is nothing to undo",
            describe_state(&operation.state)
        )));
    }
    Ok(Some(operation))
}

fn describe_state(state: &OperationState) -> &'static str {
    match state {
        OperationState::Applied => "applied",
        OperationState::RolledBack => "already rolled back",
        OperationState::Undone => "already undone",
        OperationState::UndoIncomplete => "partly undone",
        OperationState::Interrupted => "interrupted",
    }
}

fn unknown_kind(kind: &str, operation: &Operation) -> Failure {
    let writer = operation
        .writer
        .as_deref()
        .unwrap_or("a passthru too old to record its version");
    Failure::new(format!(
        "operation `{}` ({}) was written by {writer} with steps of kind `{kind}`, which {WRITER} \
         cannot undo",
        operation.id, operation.operation
    ))
    .with_help(format!(
        "run `passthru undo --operation {}` with a passthru that knows `{kind}` steps (the \
         one that wrote it); `passthru journal {}` shows every step",
        operation.id, operation.id
    ))
}

fn host_root(global: &GlobalArgs) -> PathBuf {
    global.root.clone().unwrap_or_else(|| PathBuf::from("/"))
}

fn undo_linux_sysfs(
    journal: &mut Journal,
    operation: &Operation,
    args: &UndoArgs,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let mut port = passthru_linux::sys::open_kernel_port(&host_root(global), Timeouts::default())
        .map_err(|error| {
        Failure::from_error(&error).with_help(format!(
            "operation `{}` changed a Linux host; run `passthru undo` there",
            operation.id
        ))
    })?;
    if args.dry_run {
        let steps = decode::<SysfsStep>(operation)?;
        let previews = preview_undo(&steps, &operation.pending_undo(), port.fs());
        return show_pending(operation, global, |index| {
            let (_, preview) = previews.iter().find(|(at, _)| *at == index)?;
            Some(match preview {
                Ok(actions) => actions.iter().map(ToString::to_string).collect(),
                Err(error) => vec![format!("(cannot tell: {error})")],
            })
        });
    }
    undo_steps::<SysfsStep>(journal, operation, &mut *port, global)
}

fn decode<S: Step>(operation: &Operation) -> Result<Vec<S>, Failure> {
    executor::decode_steps::<S>(operation).map_err(|error| {
        Failure::from_error(&error).with_help(format!(
            "the journal entry was written by {}; undo it with that version",
            operation.writer.as_deref().unwrap_or("another passthru")
        ))
    })
}

/// `--dry-run`: lists the steps that undo would revert, last first, each with the exact
/// actions `actions(index)` computes from the host as it is now (`None`: not known).
pub(crate) fn show_pending(
    operation: &Operation,
    global: &GlobalArgs,
    actions: impl Fn(usize) -> Option<Vec<String>>,
) -> Result<ExitCode, Failure> {
    let pending = operation.pending_undo();
    let fallback = StepView::new("(unknown step)");
    if global.json {
        let steps: Vec<serde_json::Value> = pending
            .iter()
            .map(|&index| {
                serde_json::json!({
                    "index": index + 1,
                    "summary": operation.views.get(index).unwrap_or(&fallback).summary,
                    "actions": actions(index),
                })
            })
            .collect();
        output::print_json(&serde_json::json!({
            "schema": "passthru.undo/1",
            "operation": operation.id,
            "dry_run": true,
            "steps": steps,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = anstream::stdout().lock();
    let _ = writeln!(
        out,
        "Would undo {} ({}, {}), last step first:",
        operation.id,
        operation.operation,
        describe_state(&operation.state)
    );
    for &index in &pending {
        let view = operation.views.get(index).unwrap_or(&fallback);
        let _ = writeln!(out, "  {}. undo: {}", index + 1, view.summary);
        match actions(index) {
            Some(lines) if lines.is_empty() => {
                let _ = writeln!(
                    out,
                    "       {}(nothing to do: already as before){}",
                    style::DIM,
                    style::DIM.render_reset()
                );
            }
            Some(lines) => {
                for line in lines {
                    let _ = writeln!(out, "       {line}");
                }
            }
            None => {}
        }
    }
    let _ = writeln!(out, "Nothing was changed (--dry-run).");
    Ok(ExitCode::SUCCESS)
}

/// Undoes `operation` through `host`, printing progress, and reports the outcome.
pub(crate) fn undo_steps<S: Step>(
    journal: &mut Journal,
    operation: &Operation,
    host: &mut S::Host,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    // Decode first so that a journal this build cannot read fails before anything changes.
    decode::<S>(operation)?;
    let human = !global.json;
    if human {
        let mut out = anstream::stdout().lock();
        let _ = writeln!(
            out,
            "Undoing {} ({}, {}):",
            operation.id,
            operation.operation,
            describe_state(&operation.state)
        );
    }
    let mut observer = |progress: Progress<'_>| {
        if !human {
            return;
        }
        let mut out = anstream::stdout().lock();
        match progress {
            Progress::Undoing { index, view } => {
                let _ = writeln!(out, "  {}. undo: {}", index + 1, view.summary);
            }
            Progress::UndoFailed { error, .. } => {
                let _ = writeln!(
                    out,
                    "     {}failed:{} {}",
                    style::BAD,
                    style::BAD.render_reset(),
                    error.message
                );
                if let Some(help) = &error.help {
                    let _ = writeln!(out, "     help: {help}");
                }
            }
            _ => {}
        }
    };
    let report = executor::undo::<S>(journal, operation, host, &mut observer)
        .map_err(|error| Failure::from_error(&error))?;
    let failed: Vec<serde_json::Value> = report
        .undo_errors
        .iter()
        .map(|(index, error)| {
            serde_json::json!({"step": index + 1, "error": error.message, "help": error.help})
        })
        .collect();
    if global.json {
        output::print_json(&serde_json::json!({
            "schema": "passthru.undo/1",
            "operation": report.operation_id,
            "outcome": report.outcome,
            "errors": failed,
        }))?;
    } else {
        let mut out = anstream::stdout().lock();
        if report.outcome == Outcome::Undone {
            let _ = writeln!(
                out,
                "{}Undone:{} the host is back as it was before `{}`.",
                style::GOOD,
                style::GOOD.render_reset(),
                operation.operation
            );
        } else {
            let _ = writeln!(
                out,
                "{}Undo incomplete:{} {} step(s) could not be undone; fix what the messages \
                 say and run `passthru undo` again.",
                style::BAD,
                style::BAD.render_reset(),
                report.undo_errors.len()
            );
        }
    }
    Ok(if report.outcome == Outcome::Undone {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
