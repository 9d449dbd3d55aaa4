//! `passthru undo` for Hyper-V operations (journal kind `hyperv`).

use std::io::Write;
use std::process::ExitCode;

use passthru_core::plan::executor;
use passthru_core::plan::journal::{Journal, Operation};
use passthru_hyperv::plan::HyperVStep;

use super::{Purpose, connect};
use crate::cli::GlobalArgs;
use crate::output::{self, Failure};

/// Undoes a journaled Hyper-V operation (or, with `dry_run`, shows what undo would do).
pub(crate) fn undo(
    journal: &mut Journal,
    operation: &Operation,
    dry_run: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let steps: Vec<HyperVStep> =
        executor::decode_steps(operation).map_err(|error| Failure::from_error(&error))?;
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
        return Ok(ExitCode::SUCCESS);
    }
    let (mut host, _) = connect(Purpose::Change)?;
    crate::commands::undo::undo_steps::<HyperVStep>(journal, operation, &mut host, global)
}
