//! Command-line definitions shared by every command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

/// Hand host devices (above all GPUs) to virtual machines and take them back, safely.
///
/// passthru checks before it acts, shows exactly what it will do (`--dry-run`), journals every
/// change, verifies the result, and can undo (`passthru undo`).
#[derive(Debug, Parser)]
#[command(
    name = "passthru",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Print machine-readable JSON instead of text (schema: docs/json-schema.md).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Read (and, for mutating commands, change) the host under DIR instead of `/`:
    /// DIR/sys, DIR/proc, DIR/etc, DIR/boot. For tests, benchmarks and mounted system images.
    #[arg(long, global = true, value_name = "DIR", env = "PASSTHRU_ROOT")]
    pub(crate) root: Option<PathBuf>,

    /// Where the journal of changes lives.
    #[arg(long, global = true, value_name = "DIR", env = "PASSTHRU_JOURNAL_DIR")]
    pub(crate) journal_dir: Option<PathBuf>,

    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,
}

/// Colour policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    /// Colour when writing to a terminal.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Inventory the host for passthrough: every PCI device, IOMMU group and verdict.
    Survey(commands::survey::SurveyArgs),
    /// Capture everything `survey` reads into one portable file (attach it to bug reports).
    Snapshot(commands::snapshot::SnapshotArgs),
    /// Give devices to vfio-pci (Linux) or to a VM with DDA (Hyper-V).
    Assign(commands::assign::AssignArgs),
    /// Give assigned devices back to the host.
    Release(commands::assign::ReleaseArgs),
    /// Prove that assigned devices are usable by a VM (VFIO probe and reset).
    Verify(commands::verify::VerifyArgs),
    /// Revert the last operation recorded in the journal (also after a crash).
    Undo(commands::undo::UndoArgs),
    /// Show what passthru changed, when, and in what state it is.
    Journal(commands::journal::JournalArgs),
    /// Hyper-V GPU partitioning (GPU-P / GPU-PV).
    #[command(name = "gpu-p", subcommand)]
    GpuP(commands::gpu_p::GpuPCommand),
    /// Put the host's GPU driver into a Windows guest and keep it in sync.
    #[command(subcommand)]
    Driver(commands::driver::DriverCommand),
}
