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

pub(crate) fn run(args: SnapshotArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    // Windows targets (issue 6); the integrator merges this dispatch.
    if let Some(code) = crate::hyperv::survey::snapshot_dispatch(&args.file, global)? {
        return Ok(code);
    }
    Err(super::not_yet("`snapshot`"))
}
