//! `passthru assign` and `passthru release`: Linux (vfio-pci) or Hyper-V (DDA, with `--vm`).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// Arguments of `passthru assign`.
#[derive(Debug, Args)]
pub(crate) struct AssignArgs {
    /// Devices to assign: BDF, short BDF, vendor:device, or a name substring.
    #[arg(value_name = "DEVICE", required = true)]
    pub(crate) devices: Vec<String>,

    /// Hyper-V: the VM that receives the devices (DDA).
    #[arg(long, value_name = "NAME")]
    pub(crate) vm: Option<String>,

    /// Also move every other member of the IOMMU group that is bound to a host driver.
    #[arg(long)]
    pub(crate) with_group: bool,

    /// Make the assignment survive reboots (kernel command line, modprobe.d, initramfs).
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
    /// Devices to give back to the host.
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
            &args.devices,
            args.dry_run,
            &args.boot,
            global,
        );
    }
    Err(super::not_yet("`assign`"))
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
            &args.devices,
            args.dry_run,
            &args.boot,
            global,
        );
    }
    Err(super::not_yet("`release`"))
}
