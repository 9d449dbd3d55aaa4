//! `passthru snapshot`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// Arguments of `passthru snapshot`.
#[derive(Debug, Args)]
pub(crate) struct SnapshotArgs {
    /// Where to write the snapshot (`-` for standard output).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

pub(crate) fn run(_args: SnapshotArgs, _global: &GlobalArgs) -> Result<ExitCode, Failure> {
    Err(super::not_yet("`snapshot`"))
}
