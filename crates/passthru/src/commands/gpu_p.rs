//! `passthru gpu-p`: Hyper-V GPU partitioning.

use std::process::ExitCode;

use clap::Subcommand;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// GPU partitioning subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GpuPCommand {
    /// Add a GPU partition to a VM.
    Add {
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Which partitionable GPU (default: the only one).
        #[arg(long, value_name = "SELECTOR")]
        gpu: Option<String>,
        /// Print the exact plan (PowerShell) and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a VM's GPU partition adapters.
    Remove {
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Print the exact plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List partitionable GPUs and the VMs' partition adapters.
    List,
    /// Set how many partitions an SR-IOV GPU-P GPU offers.
    Partitions {
        /// Which GPU.
        #[arg(long, value_name = "SELECTOR")]
        gpu: String,
        /// Partition count (one of the GPU's valid counts).
        #[arg(long, value_name = "N")]
        count: u32,
        /// Print the exact plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn run(_command: GpuPCommand, _global: &GlobalArgs) -> Result<ExitCode, Failure> {
    Err(super::not_yet("`gpu-p`"))
}
