//! The boot-configuration part of `assign --persistent` and `release --persistent`, and the
//! undo of `linux-boot` operations.
//!
//! Devices are PCI addresses for now, read straight from `ROOT/sys/bus/pci/devices`; the
//! survey's device selectors will replace that. Commands run on this machine when the root is
//! `/`, and inside the root with `chroot` otherwise, so `--root DIR` never touches this
//! machine's `/etc` or `/boot`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use passthru_core::hostfs::RealFs;
use passthru_core::pci::PciAddress;
use passthru_core::plan::executor::{ExecError, ExecOptions, Progress, Report};
use passthru_core::plan::journal::{Journal, Operation, Outcome, now_rfc3339};
use passthru_core::runner::{CommandRunner, SystemRunner};
use passthru_linux::boot::BootError;
use passthru_linux::boot::chroot::ChrootRunner;
use passthru_linux::boot::detect::{BootloaderKind, DetectOptions, GeneratorKind};
use passthru_linux::boot::execute::{self, Prepared, RunError};
use passthru_linux::boot::facts;
use passthru_linux::boot::planner::Request;
use passthru_linux::boot::preflight::{self, RealSpace};
use passthru_linux::boot::step::BootHost;

use crate::cli::GlobalArgs;
use crate::output::{self, Failure, style};

/// Options of the boot-configuration part (with `--persistent`).
#[derive(Debug, Clone, Args)]
pub(crate) struct PersistArgs {
    /// With --persistent: the boot loader to configure when passthru cannot tell which one
    /// is in use (grub, grubby, systemd-boot, kernelstub).
    #[arg(long, value_name = "NAME", requires = "persistent")]
    pub(crate) bootloader: Option<BootloaderKind>,

    /// With --persistent: the initramfs generator to configure when passthru cannot tell
    /// (initramfs-tools, dracut, mkinitcpio, booster).
    #[arg(long = "initramfs", value_name = "NAME", requires = "persistent")]
    pub(crate) generator: Option<GeneratorKind>,
}

/// What to do at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Assign,
    Release,
}

fn root_of(global: &GlobalArgs) -> PathBuf {
    global.root.clone().unwrap_or_else(|| PathBuf::from("/"))
}

/// The runner for the configured system: this machine's own, or `chroot` into the root.
fn runner_for(root: &Path) -> Box<dyn CommandRunner> {
    if execute::is_system_root(root) {
        Box::new(SystemRunner)
    } else {
        Box::new(ChrootRunner::new(root, SystemRunner))
    }
}

fn boot_failure(error: &BootError) -> Failure {
    let failure = Failure::from_error(error);
    match error.help() {
        Some(help) => failure.with_help(help),
        None => failure,
    }
}

fn addresses(devices: &[String]) -> Result<Vec<PciAddress>, Failure> {
    devices
        .iter()
        .map(|device| {
            PciAddress::parse_lenient(device).map_err(|_| {
                Failure::new(format!(
                    "`{device}` is not a PCI address; --persistent takes addresses such as \
                     0000:01:00.0 or 01:00.0 for now"
                ))
                .with_help("run `passthru survey` to see each device's address")
            })
        })
        .collect()
}

/// Runs the boot-configuration part of `assign`/`release DEVICE… --persistent`.
pub(crate) fn run(
    action: Action,
    devices: &[String],
    dry_run: bool,
    args: &PersistArgs,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let root = root_of(global);
    let fs = RealFs::new(&root);
    let addresses = addresses(devices)?;
    let request = match action {
        Action::Assign => Request::Assign(
            addresses
                .iter()
                .map(|address| facts::read_target(&fs, *address))
                .collect::<Result<_, _>>()
                .map_err(|error| boot_failure(&error))?,
        ),
        Action::Release => Request::Release(addresses),
    };
    let options = DetectOptions {
        bootloader: args.bootloader,
        generator: args.generator,
        ..DetectOptions::default()
    };
    let prepared = execute::prepare(&fs, &request, options, &now_rfc3339())
        .map_err(|error| boot_failure(&error))?;
    let findings = preflight::check(
        &prepared.plan,
        &prepared.facts,
        &fs,
        &mut SystemRunner,
        &RealSpace(fs.clone()),
    );

    if dry_run || prepared.plan.is_empty() {
        return show_plan(&prepared, &findings, dry_run, global);
    }
    if !findings.ok() {
        return Err(Failure::new(format!(
            "the plan failed its checks, so nothing was changed:\n{}",
            bullet_list(&findings.problems)
        ))
        .with_help("fix these and run the command again; `--dry-run` shows the whole plan"));
    }

    let mut journal = super::open_journal(global)?;
    let mut host = BootHost::new(&root, runner_for(&root), journal.blobs());
    if !global.json {
        let mut out = anstream::stdout().lock();
        let _ = write!(out, "{}", execute::describe(&prepared));
        let _ = writeln!(out);
    }
    let result = execute::apply(
        &mut journal,
        &prepared.plan,
        &mut host,
        &ExecOptions::default(),
        &mut progress_printer(global.json),
    );
    finish(result, global, "Applied", || {
        "The boot configuration is in place; it takes effect at the next boot. \
         `passthru undo` takes it back."
            .to_owned()
    })
}

fn bullet_list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("  - {item}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn show_plan(
    prepared: &Prepared,
    findings: &preflight::Findings,
    dry_run: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let code = if findings.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if global.json {
        output::print_json(&serde_json::json!({
            "schema": "passthru.boot-plan/1",
            "operation": prepared.plan.plan.operation,
            "bootloader": prepared.detection.bootloader.kind(),
            "bootloader_evidence": prepared.detection.bootloader_evidence,
            "initramfs": prepared.detection.generator.kind,
            "initramfs_evidence": prepared.detection.generator_evidence,
            "kernels": prepared.facts.kernels.iter().map(|k| k.release.to_string()).collect::<Vec<_>>(),
            "notes": prepared.plan.plan.notes,
            "steps": prepared.plan.plan.views(),
            "problems": findings.problems,
            "dry_run": dry_run,
        }))?;
        return Ok(code);
    }
    let mut out = anstream::stdout().lock();
    let _ = write!(out, "{}", execute::describe(prepared));
    if findings.ok() {
        let _ = writeln!(
            out,
            "{}Checks passed:{} the new files parse, every kernel has the modules, /boot has room.",
            style::GOOD,
            style::GOOD.render_reset()
        );
    } else {
        let _ = writeln!(
            out,
            "{}Checks failed:{}\n{}",
            style::BAD,
            style::BAD.render_reset(),
            bullet_list(&findings.problems)
        );
    }
    if prepared.plan.is_empty() {
        let _ = writeln!(
            out,
            "Nothing to change: the boot configuration is already as asked."
        );
    } else if dry_run {
        let _ = writeln!(out, "Dry run: nothing was changed.");
    }
    Ok(code)
}

/// Prints each step as it runs (text mode only).
fn progress_printer(json: bool) -> impl FnMut(Progress<'_>) {
    move |progress| {
        if json {
            return;
        }
        let mut out = anstream::stdout().lock();
        let _ = match progress {
            Progress::Applying { index, total, view } => {
                write!(out, "[{}/{total}] {} ... ", index + 1, view.summary)
            }
            Progress::Applied { .. } => {
                writeln!(out, "{}ok{}", style::GOOD, style::GOOD.render_reset())
            }
            Progress::Failed { error, .. } => writeln!(
                out,
                "{}failed{}\n  {}",
                style::BAD,
                style::BAD.render_reset(),
                error.message.replace('\n', "\n  ")
            ),
            Progress::Undoing { index, view } => {
                write!(out, "  undo {}: {} ... ", index + 1, view.summary)
            }
            Progress::Undone { .. } => {
                writeln!(out, "{}restored{}", style::GOOD, style::GOOD.render_reset())
            }
            Progress::UndoFailed { error, .. } => writeln!(
                out,
                "{}could not restore{}\n    {}",
                style::BAD,
                style::BAD.render_reset(),
                error.message.replace('\n', "\n    ")
            ),
        };
    }
}

fn finish(
    result: Result<Report, RunError>,
    global: &GlobalArgs,
    done: &str,
    success_note: impl FnOnce() -> String,
) -> Result<ExitCode, Failure> {
    match result {
        Ok(report) => {
            if global.json {
                output::print_json(&serde_json::json!({
                    "schema": "passthru.boot-result/1",
                    "operation": report.operation_id,
                    "outcome": report.outcome,
                    "undo_errors": report.undo_errors.iter().map(|(i, e)| serde_json::json!({"step": i + 1, "error": e})).collect::<Vec<_>>(),
                }))?;
            } else {
                let mut out = anstream::stdout().lock();
                let _ = writeln!(
                    out,
                    "{done} (operation {}). {}",
                    report.operation_id,
                    success_note()
                );
            }
            if report.outcome == Outcome::UndoIncomplete {
                return Err(Failure::new(format!(
                    "operation {} could not put everything back",
                    report.operation_id
                ))
                .with_help(
                    "the errors above say what is left; `passthru journal ID` lists every step",
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(RunError::Exec(ExecError::StepFailed {
            index,
            error,
            rollback,
        })) => {
            let restored = rollback.outcome == Outcome::RolledBack;
            let mut failure = Failure::new(format!(
                "step {} failed: {}\n{}",
                index + 1,
                error.message,
                if restored {
                    "Every change was rolled back; the system is as it was."
                } else {
                    "The rollback could not put everything back; see the errors above."
                }
            ));
            if let Some(help) = error.help {
                failure = failure.with_help(help);
            }
            Err(failure)
        }
        Err(error) => Err(Failure::from_error(&error)),
    }
}

/// Undoes a `linux-boot` operation (also one interrupted by a crash).
pub(crate) fn undo(
    journal: &mut Journal,
    operation: &Operation,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let recorded = execute::operation_root(operation).ok_or_else(|| {
        Failure::new(format!(
            "operation {} has no record of the system it changed",
            operation.id
        ))
    })?;
    let root = match &global.root {
        Some(root) if !passthru_linux::boot::step::root_matches(&recorded, root) => {
            return Err(Failure::new(format!(
                "operation {} changed the system under {}, not {}",
                operation.id,
                recorded.display(),
                root.display()
            ))
            .with_help(format!("run `passthru --root {} undo`", recorded.display())));
        }
        Some(root) => root.clone(),
        None => recorded,
    };
    let mut host = BootHost::new(&root, runner_for(&root), journal.blobs());
    let result = execute::undo(
        journal,
        operation,
        &mut host,
        &mut progress_printer(global.json),
    );
    finish(result, global, "Undone", || {
        "Every file is back as it was and the boot files were rebuilt.".to_owned()
    })
}
