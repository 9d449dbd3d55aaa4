//! `passthru undo`.

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;
use crate::output::Failure;

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
    // Operations of kind "hyperv" (issue 6); the integrator merges this with the kind dispatch.
    if let Some(code) =
        crate::hyperv::undo::dispatch(args.operation.as_deref(), args.dry_run, global)?
    {
        return Ok(code);
    }
    Err(super::not_yet("`undo`"))
}
