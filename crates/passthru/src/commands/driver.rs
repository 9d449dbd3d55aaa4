//! `passthru driver`: the host's GPU driver inside a Windows guest (`sync`, `status`), and
//! `passthru undo` of a sync (journal kind `guest-driver`).
//!
//! Both commands read the host once ([`Target::connect`]): the Hyper-V survey for the VM and
//! its GPU partitions, then the chosen GPU's driver registration, resolved into the exact file
//! set ([`passthru_driver::package::resolve`]). One PowerShell session (or the simulator)
//! serves the whole run through [`HyperVGuestHost`].

mod interrupt;
mod progress;
mod record;
mod select;
mod status;
mod sync;

use std::process::ExitCode;

use clap::Subcommand;
use passthru_core::plan::journal::{Journal, Operation};
use passthru_driver::guest::hyperv::HyperVGuestHost;
use passthru_driver::guest::{GuestError, GuestHost, GuestSession, GuestStep, HostError, VmState};
use passthru_driver::package::{self, ResolvedDriver};
use passthru_hyperv::survey::VmReport;

use crate::cli::GlobalArgs;
use crate::hyperv::apply::connect_and_survey;
use crate::hyperv::{Purpose, connect, refusal_failure};
use crate::output::Failure;

/// Driver subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DriverCommand {
    /// Copy the host's GPU driver into a VM's system disk (only what changed).
    Sync {
        /// The VM (must be off; passthru offers to shut it down).
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Which GPU's driver: part of its name, vendor:device, its instance id or path
        /// (default: the GPU the VM has a partition of, else the only partitionable GPU).
        #[arg(long, value_name = "SELECTOR")]
        gpu: Option<String>,
        /// Shut a running VM down first (a guest shutdown request; journaled).
        #[arg(long)]
        stop_vm: bool,
        /// List every file and registry value that would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compare the host's driver with the copy inside a VM (exit 0: up to date, 1: stale or
    /// not installed, 2: could not tell).
    Status {
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Which GPU's driver (default as for `sync`).
        #[arg(long, value_name = "SELECTOR")]
        gpu: Option<String>,
        /// Also compare the content (BLAKE3) of every file in the VM, not only size and time.
        #[arg(long)]
        verify: bool,
    },
}

pub(crate) fn run(command: DriverCommand, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    match command {
        DriverCommand::Sync {
            vm,
            gpu,
            stop_vm,
            dry_run,
        } => sync::run(
            &sync::SyncArgs {
                vm,
                gpu,
                stop_vm,
                dry_run,
            },
            global,
        ),
        DriverCommand::Status { vm, gpu, verify } => {
            status::run(&vm, gpu.as_deref(), verify, global).map_err(|failure| failure.with_code(2))
        }
    }
}

/// What a `driver` command works on: the VM, the GPU, and the host's driver for it.
struct Target {
    vm: VmReport,
    gpu: String,
    driver: ResolvedDriver,
    /// What the GPU choice wants said.
    notes: Vec<String>,
}

impl Target {
    /// Reads the host: the survey, the VM, the GPU, its driver. Returns the connection too.
    fn connect(vm: &str, gpu: Option<&str>) -> Result<(Self, HyperVGuestHost), Failure> {
        let (hyperv, survey) = connect_and_survey(Purpose::Change)?;
        let vm = passthru_hyperv::plan::select::vm(&survey, vm)
            .map_err(|refusal| refusal_failure(&refusal))?
            .clone();
        let choice = select::choose(&survey, &vm, gpu)?;
        let mut host = HyperVGuestHost::new(hyperv);
        let registration = host
            .adapter_registration(&choice.instance_id)
            .map_err(|error| host_failure(&error))?;
        let driver = package::resolve(&registration).map_err(|error| {
            Failure::from_error(&error).with_help(format!(
                "passthru copies the driver Windows installed for {} from the host's driver store",
                choice.name
            ))
        })?;
        let target = Self {
            vm,
            gpu: choice.name,
            driver,
            notes: choice.notes,
        };
        Ok((target, host))
    }

    /// The VM's power state as the survey read it.
    fn vm_state(&self) -> VmState {
        VmState::from_text(self.vm.state.as_deref().unwrap_or("Unknown"))
    }

    fn driver_version(&self) -> String {
        self.driver
            .driver_ver
            .map(|version| version.version_string())
            .unwrap_or_default()
    }
}

/// A VM state in words (`running`).
fn state_name(state: &VmState) -> String {
    match state {
        VmState::Other(text) => text.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A failure of the guest port, with its explanation.
fn host_failure(error: &HostError) -> Failure {
    let failure = Failure::new(error.to_string());
    match &error.help {
        Some(help) => failure.with_help(help.clone()),
        None => failure,
    }
}

/// A refusal or failure of guest provisioning.
fn guest_failure(error: &GuestError) -> Failure {
    match error {
        GuestError::Host(host) => host_failure(host),
        other => Failure::from_error(other),
    }
}

/// `passthru undo` of a `guest-driver` operation (a sync, or the shutdown before one).
pub(crate) fn undo(
    journal: &mut Journal,
    operation: &Operation,
    dry_run: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    if dry_run {
        return super::undo::show_pending(operation, global, |_| None);
    }
    let steps: Vec<GuestStep> = passthru_core::plan::executor::decode_steps(operation)
        .map_err(|error| Failure::from_error(&error))?;
    let (hyperv, _) = connect(Purpose::Change)?;
    let mut host = HyperVGuestHost::new(hyperv);
    // Undoing a sync changes the VM's disk: refuse before the first step rather than fail at
    // each one.
    let pending = operation.pending_undo();
    let disk_of = pending.iter().find_map(|index| match steps.get(*index) {
        Some(GuestStep::MountSystemDisk { vm, .. } | GuestStep::DismountSystemDisk { vm, .. }) => {
            Some(vm.clone())
        }
        _ => None,
    });
    if let Some(vm) = disk_of {
        let state = host.vm_state(&vm).map_err(|error| host_failure(&error))?;
        if state != VmState::Off {
            return Err(Failure::new(format!(
                "VM '{vm}' is {}; undoing `{}` changes its disk, which is only possible while it is off",
                state_name(&state),
                operation.operation
            ))
            .with_help(format!(
                "shut Windows down inside the VM (or Stop-VM -Name '{vm}'), then run `passthru undo` again"
            )));
        }
    }
    let mut session = GuestSession::new(Box::new(host)).with_cancel(interrupt::install());
    super::undo::undo_steps::<GuestStep>(journal, operation, &mut session, global)
}
