//! Hyper-V commands: the CLI side of `passthru-hyperv`.
//!
//! Where the commands reach Hyper-V: `PASSTHRU_HYPERV_SIMULATOR=state.json` selects the
//! simulated Hyper-V (any OS; the state file is updated as commands change it); otherwise, on
//! Windows, Windows PowerShell 5.1; elsewhere there is nothing to reach and the commands say
//! so. The entry points here are what `survey`, `snapshot`, `assign`, `release`, `undo` and
//! `gpu-p` call on a Windows target.

pub(crate) mod apply;
pub(crate) mod dda;
mod render;
pub(crate) mod survey;
pub(crate) mod undo;

use std::path::PathBuf;

use clap::Args;
use passthru_driver::guest::simulated::GuestDiskSimulator;
use passthru_hyperv::client::{HostError, HyperVHost};
use passthru_hyperv::plan::Refusal;
use passthru_hyperv::sim::Simulator;

use crate::output::Failure;

/// The environment variable that selects the simulated Hyper-V.
pub(crate) const SIMULATOR_ENV: &str = "PASSTHRU_HYPERV_SIMULATOR";

/// Options of the Hyper-V side of mutating commands.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct HyperVArgs {
    /// Hyper-V: shut a running VM down first (passthru starts it again if anything fails).
    #[arg(long)]
    pub(crate) stop_vm: bool,

    /// Hyper-V: write the plan as a PowerShell script to FILE for review, and change nothing.
    #[arg(long, value_name = "FILE")]
    pub(crate) export_script: Option<PathBuf>,
}

/// Whether this run targets Hyper-V: on Windows, or with the simulator selected.
pub(crate) fn is_windows_target() -> bool {
    cfg!(windows) || std::env::var_os(SIMULATOR_ENV).is_some()
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// One read (survey, snapshot, list): one PowerShell process.
    Read,
    /// A plan that changes the host: one PowerShell process for the whole run.
    Change,
}

/// Connects to the Hyper-V this run targets.
pub(crate) fn connect(purpose: Purpose) -> Result<(HyperVHost, String), Failure> {
    if let Some(path) = std::env::var_os(SIMULATOR_ENV) {
        let path = PathBuf::from(path);
        let simulator = Simulator::open(&path)
            .map_err(|error| {
                Failure::from_error(&error).with_help(format!(
                    "{SIMULATOR_ENV} must name a simulator state file (docs/hyperv.md, \"Trying it without Hyper-V\")"
                ))
            })?
            // Guest disks and the host's driver store, for `passthru driver`.
            .with_extension(Box::new(GuestDiskSimulator::for_state_file(&path)));
        return Ok((
            HyperVHost::new(Box::new(simulator), None),
            "simulator".to_owned(),
        ));
    }
    let powershell = match purpose {
        Purpose::Read => passthru_hyperv::sys::read_only_powershell(),
        Purpose::Change => passthru_hyperv::sys::persistent_powershell(),
    }
    .map_err(|error| host_failure(&HostError::Port(error)))?;
    Ok((
        HyperVHost::new(
            powershell,
            Some(passthru_hyperv::cpu::physical_address_bits),
        ),
        "live".to_owned(),
    ))
}

/// A failure from a host error, with its help.
pub(crate) fn host_failure(error: &HostError) -> Failure {
    let failure = match error {
        HostError::Port(passthru_hyperv::ps::PortError::Spawn { program, source }) => Failure::new(
            format!("Windows PowerShell could not be started (`{program}`: {source})"),
        ),
        other => Failure::new(other.to_string()),
    };
    match error.help() {
        Some(help) => failure.with_help(help),
        None => failure,
    }
}

/// `text` in `style` (plain when colour is off).
pub(crate) fn paint(style: anstyle::Style, text: &str) -> String {
    format!("{style}{text}{}", style.render_reset())
}

/// A failure from a planner's refusal.
pub(crate) fn refusal_failure(refusal: &Refusal) -> Failure {
    let failure = Failure::new(refusal.message.clone());
    match &refusal.help {
        Some(help) => failure.with_help(help.clone()),
        None => failure,
    }
}
