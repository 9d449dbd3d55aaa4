//! `passthru assign` and `passthru release`: Linux (vfio-pci) or Hyper-V (DDA, with `--vm`).
//!
//! On Linux: at run time ([`linux`]), or with `--persistent` at run time *and* in the boot
//! configuration as one journal operation (`super::persist`).

pub(crate) mod linux;
mod render;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::Args;
use passthru_linux::assign::{AssignRequest, ReleaseRequest};
use passthru_linux::bind::Timeouts;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// Arguments of `passthru assign`.
#[derive(Debug, Args)]
pub(crate) struct AssignArgs {
    /// Devices to assign: BDF (0000:01:00.0), short BDF (01:00.0), vendor:device
    /// (10de:2684), or a name substring; each must name exactly one device. The other
    /// functions of the same card in the same IOMMU group (a GPU's audio) move along.
    #[arg(value_name = "DEVICE", required = true)]
    pub(crate) devices: Vec<String>,

    /// Hyper-V: the VM that receives the devices (DDA).
    #[arg(long, value_name = "NAME")]
    pub(crate) vm: Option<String>,

    /// Also move every other member of the IOMMU group that is bound to a host driver.
    #[arg(long)]
    pub(crate) with_group: bool,

    /// Also make the assignment survive reboots (kernel command line, modprobe.d,
    /// initramfs): binds now and at every boot, one operation for `passthru undo`.
    #[arg(long)]
    pub(crate) persistent: bool,

    /// Go ahead despite a refusal that can be overridden (the reason explains the risk).
    #[arg(long)]
    pub(crate) force: bool,

    /// Print the exact plan and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    #[command(flatten)]
    pub(crate) boot: super::persist::PersistArgs,

    #[command(flatten)]
    pub(crate) hyperv: crate::hyperv::HyperVArgs,
}

/// Arguments of `passthru release`.
#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// Devices to give back to the host (the same selectors as `assign`); the other functions
    /// of the same card on vfio-pci go back along.
    #[arg(value_name = "DEVICE", required = true)]
    pub(crate) devices: Vec<String>,

    /// Hyper-V: the VM that currently holds the devices.
    #[arg(long, value_name = "NAME")]
    pub(crate) vm: Option<String>,

    /// Also remove the boot-time configuration made by `assign --persistent`.
    #[arg(long)]
    pub(crate) persistent: bool,

    /// Print the exact plan and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    #[command(flatten)]
    pub(crate) boot: super::persist::PersistArgs,

    #[command(flatten)]
    pub(crate) hyperv: crate::hyperv::HyperVArgs,
}

pub(crate) fn run_assign(args: AssignArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    // Hyper-V (DDA) when a VM is named or the target is Windows.
    if let Some(vm) = &args.vm {
        return crate::hyperv::dda::assign(
            &crate::hyperv::dda::Assign {
                devices: &args.devices,
                vm,
                force: args.force,
                dry_run: args.dry_run,
                hyperv: &args.hyperv,
            },
            global,
        );
    }
    if crate::hyperv::is_windows_target() {
        return Err(
            Failure::new("on Hyper-V, `assign` needs the VM that receives the devices")
                .with_help("pass --vm NAME"),
        );
    }
    if args.persistent {
        return super::persist::run(
            super::persist::Action::Assign,
            &super::persist::Options {
                devices: &args.devices,
                with_group: args.with_group,
                force: args.force,
                dry_run: args.dry_run,
                boot: &args.boot,
            },
            global,
        );
    }
    let request = AssignRequest {
        devices: args.devices,
        with_group: args.with_group,
        force: args.force,
    };
    with_linux_context(global, |ctx| linux::assign(ctx, &request, args.dry_run))
}

/// Runs `body` with the real kernel under `--root`, the journal of `--journal-dir` and stdout.
fn with_linux_context(
    global: &GlobalArgs,
    body: impl FnOnce(&mut linux::Context<'_>) -> Result<ExitCode, Failure>,
) -> Result<ExitCode, Failure> {
    let root = super::linux_host::root_of(global);
    let mut port = passthru_linux::sys::open_kernel_port(&root, Timeouts::default())
        .map_err(|error| Failure::from_error(&error))?;
    let mut open_journal = || super::open_journal(global);
    let mut out = anstream::stdout().lock();
    let mut ctx = linux::Context {
        port: &mut *port,
        names: super::linux_host::names_for(&root),
        journal: &mut open_journal,
        json: global.json,
        out: &mut out,
    };
    body(&mut ctx)
}

pub(crate) fn run_release(args: ReleaseArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    // Hyper-V (DDA) when a VM is named or the target is Windows.
    if args.vm.is_some() || crate::hyperv::is_windows_target() {
        return crate::hyperv::dda::release(
            &args.devices,
            args.vm.as_deref(),
            args.dry_run,
            &args.hyperv,
            global,
        );
    }
    if args.persistent {
        return super::persist::run(
            super::persist::Action::Release,
            &super::persist::Options {
                devices: &args.devices,
                with_group: false,
                force: false,
                dry_run: args.dry_run,
                boot: &args.boot,
            },
            global,
        );
    }
    let request = ReleaseRequest {
        devices: args.devices,
    };
    with_linux_context(global, |ctx| linux::release(ctx, &request, args.dry_run))
}
