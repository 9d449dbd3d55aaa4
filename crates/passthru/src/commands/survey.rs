//! `passthru survey`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// Arguments of `passthru survey`.
#[derive(Debug, Args)]
pub(crate) struct SurveyArgs {
    /// Replay a snapshot file (from `passthru snapshot`) instead of reading this host.
    #[arg(long, value_name = "FILE")]
    pub(crate) from: Option<PathBuf>,

    /// Only devices of this class: gpu (VGA and 3D controllers), net, storage, usb, audio.
    #[arg(long = "class", value_name = "CLASS")]
    pub(crate) classes: Vec<String>,

    /// Only this IOMMU group (repeatable).
    #[arg(long = "group", value_name = "N")]
    pub(crate) groups: Vec<u32>,

    /// Only these devices: a BDF (0000:01:00.0), a short BDF (01:00.0), vendor:device
    /// (10de:2684), or a name substring.
    #[arg(value_name = "DEVICE")]
    pub(crate) devices: Vec<String>,
}

pub(crate) fn run(args: SurveyArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    // Windows targets and Windows snapshots (issue 6); the integrator merges this dispatch.
    let filter = crate::hyperv::survey::Filter {
        classes: args.classes.clone(),
        devices: args.devices.clone(),
    };
    if let Some(code) = crate::hyperv::survey::dispatch(args.from.as_deref(), &filter, global)? {
        return Ok(code);
    }
    Err(super::not_yet("`survey`"))
}
