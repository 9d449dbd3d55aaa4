//! `passthru driver`: the host's GPU driver inside a Windows guest.

use std::process::ExitCode;

use clap::Subcommand;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// Driver subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DriverCommand {
    /// Copy the host's GPU driver into a VM's system disk (only what changed).
    Sync {
        /// The VM (must be off).
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Which GPU's driver (default: the partitioned GPU).
        #[arg(long, value_name = "SELECTOR")]
        gpu: Option<String>,
        /// List every file and registry value that would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compare the host's driver with the copy inside a VM.
    Status {
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
    },
}

pub(crate) fn run(_command: DriverCommand, _global: &GlobalArgs) -> Result<ExitCode, Failure> {
    Err(super::not_yet("`driver`"))
}
