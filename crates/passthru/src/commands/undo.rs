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

pub(crate) fn run(_args: UndoArgs, _global: &GlobalArgs) -> Result<ExitCode, Failure> {
    Err(super::not_yet("`undo`"))
}
