//! `passthru undo` for Hyper-V operations (journal kind `hyperv`).

use std::io::Write;
use std::process::ExitCode;

use passthru_core::plan::Step;
use passthru_core::plan::executor::{self, Progress};
use passthru_core::plan::journal::{Operation, Outcome};
use passthru_hyperv::plan::HyperVStep;

use super::{Purpose, connect};
use crate::cli::GlobalArgs;
use crate::output::{self, Failure, style};

/// Undoes the chosen (or last undoable) operation when it is a Hyper-V one; `None` otherwise,
/// with the journal's lock released for whoever handles it.
pub(crate) fn dispatch(
    operation: Option<&str>,
    dry_run: bool,
    global: &GlobalArgs,
) -> Result<Option<ExitCode>, Failure> {
    let mut journal = crate::commands::open_journal(global)?;
    let chosen: Option<Operation> = match operation {
        Some(id) => Some(journal.operation(id).map_err(|error| {
            Failure::from_error(&error).with_help("`passthru journal` lists the operations")
        })?),
        None => journal
            .last_undoable()
            .map_err(|error| Failure::from_error(&error))?,
    };
    let Some(operation) = chosen else {
        if super::is_windows_target() {
            let _ = writeln!(
                anstream::stdout().lock(),
                "Nothing to undo: the journal in {} has no applied or interrupted operation.",
                journal.dir().display()
            );
            return Ok(Some(ExitCode::SUCCESS));
        }
        return Ok(None);
    };
    if operation.kind != <HyperVStep as Step>::KIND {
        return Ok(None);
    }
    if !operation.undoable() {
        return Err(Failure::new(format!(
            "operation {} ({}) has nothing to undo: it is {:?}",
            operation.id, operation.operation, operation.state
        )));
    }
    let steps: Vec<HyperVStep> =
        executor::decode_steps(&operation).map_err(|error| Failure::from_error(&error))?;
    let pending = operation.pending_undo();
    if dry_run {
        let views: Vec<_> = pending
            .iter()
            .filter_map(|index| steps.get(*index))
            .map(HyperVStep::undo_view)
            .collect();
        if global.json {
            output::print_json(&serde_json::json!({
                "schema": "passthru.hyperv.undo-plan/1",
                "operation_id": operation.id,
                "operation": operation.operation,
                "steps": views,
            }))?;
        } else {
            let mut out = anstream::stdout().lock();
            let _ = writeln!(
                out,
                "Would undo {} ({}):",
                operation.id, operation.operation
            );
            for view in views {
                let _ = writeln!(out, "  {}", view.summary);
                for action in view.actions {
                    let _ = writeln!(out, "       {action}");
                }
            }
            let _ = writeln!(out, "Dry run: nothing was changed.");
        }
        return Ok(Some(ExitCode::SUCCESS));
    }
    let (mut host, _) = connect(Purpose::Change)?;
    let human = !global.json;
    let mut observer = |progress: Progress<'_>| {
        if !human {
            return;
        }
        let mut out = anstream::stdout().lock();
        let _ = match progress {
            Progress::Undoing { index, view } => {
                write!(out, "  undo [{}] {} ... ", index + 1, view.summary)
            }
            Progress::Undone { .. } => {
                writeln!(out, "{}ok{}", style::GOOD, style::GOOD.render_reset())
            }
            Progress::UndoFailed { error, .. } => {
                writeln!(
                    out,
                    "{}failed:{} {}",
                    style::BAD,
                    style::BAD.render_reset(),
                    error.message
                )
            }
            _ => Ok(()),
        };
        let _ = out.flush();
    };
    let report = executor::undo::<HyperVStep>(&mut journal, &operation, &mut host, &mut observer)
        .map_err(|error| Failure::from_error(&error))?;
    if global.json {
        output::print_json(&serde_json::json!({
            "schema": "passthru.hyperv.undo/1",
            "operation_id": report.operation_id,
            "outcome": report.outcome,
            "undo_errors": report.undo_errors.iter().map(|(index, error)| serde_json::json!({"step": index + 1, "error": error})).collect::<Vec<_>>(),
        }))?;
    }
    if report.outcome == Outcome::Undone {
        if human {
            let _ = writeln!(anstream::stdout().lock(), "Undone: {}", operation.operation);
        }
        Ok(Some(ExitCode::SUCCESS))
    } else {
        let mut failure = Failure::new(format!(
            "undo of {} is incomplete: {}",
            operation.id,
            report
                .undo_errors
                .iter()
                .map(|(index, error)| format!("step {}: {}", index + 1, error.message))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        if let Some(help) = report
            .undo_errors
            .iter()
            .find_map(|(_, error)| error.help.clone())
        {
            failure = failure.with_help(format!("{help}; then run `passthru undo` again"));
        } else {
            failure = failure.with_help("fix what the error names, then run `passthru undo` again");
        }
        Err(failure)
    }
}
