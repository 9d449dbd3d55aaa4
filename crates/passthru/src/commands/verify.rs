//! `passthru verify`.

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// Arguments of `passthru verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Devices to check.
    #[arg(value_name = "DEVICE", required = true)]
    pub(crate) devices: Vec<String>,
}

pub(crate) fn run(_args: VerifyArgs, _global: &GlobalArgs) -> Result<ExitCode, Failure> {
    Err(super::not_yet("`verify`"))
}
