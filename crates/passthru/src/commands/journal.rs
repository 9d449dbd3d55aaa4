//! `passthru journal`: what passthru changed, when, and in what state it is.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use passthru_core::plan::journal::{Operation, OperationState};

use crate::cli::GlobalArgs;
use crate::output::{self, Failure, style};

/// Arguments of `passthru journal`.
#[derive(Debug, Args)]
pub(crate) struct JournalArgs {
    /// Show every step of this operation.
    #[arg(value_name = "ID")]
    pub(crate) operation: Option<String>,
}

pub(crate) fn run(args: JournalArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let journal = super::open_journal(global)?;
    let operations = journal
        .operations()
        .map_err(|error| Failure::from_error(&error))?;
    let operations: Vec<Operation> = match &args.operation {
        Some(id) => {
            let found: Vec<Operation> = operations.into_iter().filter(|op| op.id == *id).collect();
            if found.is_empty() {
                return Err(Failure::new(format!("the journal has no operation `{id}`"))
                    .with_help("run `passthru journal` to list the operations"));
            }
            found
        }
        None => operations,
    };
    if global.json {
        output::print_json(&serde_json::json!({
            "schema": "passthru.journal/1",
            "directory": journal.dir(),
            "operations": operations,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = anstream::stdout().lock();
    if operations.is_empty() {
        let _ = writeln!(out, "The journal in {} is empty.", journal.dir().display());
        return Ok(ExitCode::SUCCESS);
    }
    let detailed = args.operation.is_some();
    for operation in &operations {
        let (state_style, state) = describe_state(&operation.state);
        let _ = writeln!(
            out,
            "{}{}{}  {}  {state_style}{state}{}  {}",
            style::HEADING,
            operation.id,
            style::HEADING.render_reset(),
            operation.started,
            state_style.render_reset(),
            operation.operation,
        );
        if detailed {
            for (index, view) in operation.views.iter().enumerate() {
                let mark = if operation.undone.contains(&index) {
                    "undone "
                } else if operation.done.contains(&index) {
                    "done   "
                } else if operation.touched.contains(&index) {
                    "started"
                } else {
                    "not run"
                };
                let _ = writeln!(out, "  {mark}  {}. {}", index + 1, view.summary);
                for action in &view.actions {
                    let _ = writeln!(
                        out,
                        "             {}{action}{}",
                        style::DIM,
                        style::DIM.render_reset()
                    );
                }
            }
            for error in &operation.errors {
                let _ = writeln!(
                    out,
                    "  {}error:{} {error}",
                    style::BAD,
                    style::BAD.render_reset()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_state(state: &OperationState) -> (anstyle::Style, &'static str) {
    match state {
        OperationState::Applied => (style::GOOD, "applied"),
        OperationState::RolledBack => (style::WARN, "rolled back"),
        OperationState::Undone => (style::DIM, "undone"),
        OperationState::UndoIncomplete => (style::BAD, "undo incomplete (run `passthru undo`)"),
        OperationState::Interrupted => (style::BAD, "interrupted (run `passthru undo`)"),
    }
}
