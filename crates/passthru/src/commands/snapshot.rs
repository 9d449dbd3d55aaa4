//! `passthru snapshot`: everything `survey` reads, in one portable file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use passthru_core::hostfs::RealFs;
use passthru_linux::snapshot::{self, Entry};

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// Arguments of `passthru snapshot`.
#[derive(Debug, Args)]
pub(crate) struct SnapshotArgs {
    /// Where to write the snapshot (`-` for standard output; a name ending in `.gz` is
    /// gzip-compressed).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// A note stored in the snapshot (what machine this is, what you were trying to do).
    #[arg(long, value_name = "TEXT")]
    pub(crate) description: Option<String>,
}

pub(crate) fn run(args: SnapshotArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    // A Windows host (or the simulated Hyper-V) records PowerShell answers instead of sysfs.
    if let Some(code) = crate::hyperv::survey::snapshot_dispatch(&args.file, global)? {
        return Ok(code);
    }
    let root = global.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    if !root.is_dir() {
        return Err(
            Failure::new(format!("the root `{}` is not a directory", root.display())).with_help(
                "--root takes a directory holding sys/ and proc/, such as a mounted system image",
            ),
        );
    }
    let mut snapshot = snapshot::capture(RealFs::new(&root));
    snapshot.description = args.description;
    if args.file == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&snapshot.to_json()).map_err(|error| {
            Failure::new(format!(
                "could not write the snapshot to standard output: {error}"
            ))
        })?;
    } else {
        snapshot.save(&args.file).map_err(|error| {
            Failure::from_error(&error).with_help("choose a writable path for the snapshot file")
        })?;
    }
    let devices = snapshot
        .entries
        .iter()
        .find_map(|entry| match entry {
            Entry::Dir { path, entries } if path == "/sys/bus/pci/devices" => Some(entries.len()),
            _ => None,
        })
        .unwrap_or(0);
    let errors = snapshot
        .entries
        .iter()
        .filter(|entry| matches!(entry, Entry::Error { .. }))
        .count();
    let mut stderr = anstream::stderr().lock();
    let _ = writeln!(
        stderr,
        "Captured {devices} PCI devices ({} entries, {errors} unreadable) from {} into {}.",
        snapshot.entries.len(),
        root.display(),
        if args.file == Path::new("-") {
            "standard output".to_owned()
        } else {
            args.file.display().to_string()
        }
    );
    let _ = writeln!(
        stderr,
        "Replay it anywhere with `passthru survey --from {}`. It holds sysfs facts, /proc/cmdline and the first CPU of /proc/cpuinfo; read it before you share it.",
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}
