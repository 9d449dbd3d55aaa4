//! One module per command. Each defines its arguments and a `run` function.

pub(crate) mod assign;
pub(crate) mod driver;
pub(crate) mod gpu_p;
pub(crate) mod journal;
pub(crate) mod linux_host;
pub(crate) mod persist;
pub(crate) mod progress;
pub(crate) mod snapshot;
pub(crate) mod survey;
pub(crate) mod undo;
pub(crate) mod verify;

use std::process::ExitCode;

use std::path::PathBuf;

use passthru_core::plan::journal::{Journal, JournalError};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output::Failure;

/// Runs the chosen command.
pub(crate) fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let global = &cli.global;
    match cli.command {
        Command::Survey(args) => survey::run(args, global),
        Command::Snapshot(args) => snapshot::run(args, global),
        Command::Assign(args) => assign::run_assign(args, global),
        Command::Release(args) => assign::run_release(args, global),
        Command::Verify(args) => verify::run(args, global),
        Command::Undo(args) => undo::run(args, global),
        Command::Journal(args) => journal::run(args, global),
        Command::GpuP(command) => gpu_p::run(command, global),
        Command::Driver(command) => driver::run(command, global),
    }
}

/// The default journal directory of this platform.
pub(crate) fn default_journal_dir() -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        PathBuf::from(base).join("passthru")
    } else {
        PathBuf::from("/var/lib/passthru")
    }
}

/// Opens the journal named by `--journal-dir` (or the platform default) and takes its lock.
pub(crate) fn open_journal(global: &GlobalArgs) -> Result<Journal, Failure> {
    let dir = global
        .journal_dir
        .clone()
        .unwrap_or_else(default_journal_dir);
    Journal::open(&dir).map_err(|error| match error {
        JournalError::Busy(_) => Failure::from_error(&error),
        other => Failure::from_error(&other).with_help(format!(
            "passthru keeps its journal in `{}`; run as root or pass --journal-dir",
            dir.display()
        )),
    })
}
