//! `passthru undo`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use passthru_core::plan::journal::{Journal, Operation};

use crate::cli::GlobalArgs;
use crate::output::{Failure, style};

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

/// How to undo one kind of operation (the `Step::KIND` its steps were journaled with).
type UndoFn = fn(&mut Journal, &Operation, &GlobalArgs) -> Result<ExitCode, Failure>;

/// Each step kind and its undo. Add `linux-sysfs` and `hyperv` here as they arrive.
const UNDO_BY_KIND: &[(&str, UndoFn)] = &[("linux-boot", super::persist::undo)];

pub(crate) fn run(args: UndoArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let mut journal = super::open_journal(global)?;
    let operation = match &args.operation {
        Some(id) => journal
            .operation(id)
            .map_err(|error| Failure::from_error(&error))?,
        None => match journal
            .last_undoable()
            .map_err(|error| Failure::from_error(&error))?
        {
            Some(operation) => operation,
            None => {
                let mut out = anstream::stdout().lock();
                let _ = writeln!(
                    out,
                    "Nothing to undo: the journal has no applied or interrupted operation."
                );
                return Ok(ExitCode::SUCCESS);
            }
        },
    };
    if !operation.undoable() {
        return Err(Failure::new(format!(
            "operation {} is {:?}; there is nothing left to undo",
            operation.id, operation.state
        )));
    }
    let Some((_, undo)) = UNDO_BY_KIND
        .iter()
        .find(|(kind, _)| *kind == operation.kind)
    else {
        return Err(super::not_yet(&format!(
            "undoing `{}` operations",
            operation.kind
        )));
    };
    if args.dry_run {
        let mut out = anstream::stdout().lock();
        let _ = writeln!(
            out,
            "Would undo {}{}{} ({}), last step first:",
            style::HEADING,
            operation.id,
            style::HEADING.render_reset(),
            operation.operation
        );
        for index in operation.pending_undo() {
            if let Some(view) = operation.views.get(index) {
                let _ = writeln!(out, "  {}. {}", index + 1, view.summary);
            }
        }
        let _ = writeln!(out, "Dry run: nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    undo(&mut journal, &operation, global)
}
