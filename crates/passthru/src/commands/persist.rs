//! `assign --persistent` and `release --persistent`: the run-time binding **and** the boot
//! configuration, as one journal operation (`linux-assign`, see
//! [`passthru_linux::assign::combined`]) that one `passthru undo` reverts; and the undo of
//! such operations and of older boot-only ones (`linux-boot`).
//!
//! Devices are named with the survey's selectors over its inventory. The run-time part is
//! planned by the same planner as a plain `assign`/`release`; it is left out, with a note,
//! when the root is not the running system (`--root /mnt`: only the boot files of that system
//! change) and when the only reason it cannot bind now is that no IOMMU is active in this boot
//! (the boot configuration switches it on). Commands run on this machine when the root is `/`,
//! and inside the root with `chroot` otherwise, so `--root DIR` never touches this machine's
//! `/etc` or `/boot`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use passthru_core::hostfs::RealFs;
use passthru_core::pci::PciAddress;
use passthru_core::plan::Plan;
use passthru_core::plan::executor::{ExecError, ExecOptions, Report};
use passthru_core::plan::journal::{Journal, Operation, Outcome, now_rfc3339};
use passthru_core::runner::{CommandRunner, SystemRunner};
use passthru_linux::assign::combined::{self, LinuxStep, Ports};
use passthru_linux::assign::history::recorded_host_drivers;
use passthru_linux::assign::{
    AssignRequest, PlanError, ReleaseRequest, prepare_assign, prepare_release,
};
use passthru_linux::bind::{SysfsStep, Timeouts};
use passthru_linux::boot::BootError;
use passthru_linux::boot::chroot::ChrootRunner;
use passthru_linux::boot::detect::{BootloaderKind, DetectOptions, GeneratorKind};
use passthru_linux::boot::execute::{self, Prepared, RunError};
use passthru_linux::boot::facts;
use passthru_linux::boot::planner::Request;
use passthru_linux::boot::preflight::{self, RealSpace};
use passthru_linux::boot::step::BootHost;
use passthru_linux::inventory::{DeviceRole, Inventory};

use super::linux_host::{inventory_with_names, names_for, plan_failure, root_of};
use super::progress;
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

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Assign,
    Release,
}

/// What the command line asked.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    pub(crate) devices: &'a [String],
    pub(crate) with_group: bool,
    pub(crate) force: bool,
    pub(crate) dry_run: bool,
    pub(crate) boot: &'a PersistArgs,
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

/// The run-time half: its plan (possibly empty), the devices it concerns, and what to say
/// about it.
struct Runtime {
    plan: Plan<SysfsStep>,
    devices: Vec<PciAddress>,
    summary: serde_json::Value,
}

impl Runtime {
    fn skipped(devices: Vec<PciAddress>, why: String) -> Self {
        let mut plan = Plan::new("");
        plan.notes.push(why.clone());
        Self {
            plan,
            devices,
            summary: serde_json::json!({"skipped": why}),
        }
    }
}

/// The named devices and the other functions of their cards (for the boot part when no
/// run-time plan says which devices move).
fn with_card_functions(inventory: &Inventory, selected: &[PciAddress]) -> Vec<PciAddress> {
    let mut devices: Vec<PciAddress> = inventory
        .devices
        .iter()
        .filter(|device| device.role == DeviceRole::Endpoint)
        .filter(|device| selected.iter().any(|named| named.same_slot(device.address)))
        .map(|device| device.address)
        .collect();
    devices.extend(selected.iter().copied());
    devices.sort_unstable();
    devices.dedup();
    devices
}

/// The addresses for `release --persistent`: selectors as usual, but a full or short PCI
/// address of a device that is gone (a card moved to another slot) is taken as it is, so its
/// boot configuration can still be removed.
fn release_addresses(
    inventory: &Inventory,
    selectors: &[String],
) -> Result<Vec<PciAddress>, Failure> {
    let mut addresses = Vec::new();
    for selector in selectors {
        match passthru_linux::assign::select(inventory, std::slice::from_ref(selector)) {
            Ok(found) => addresses.extend(found),
            Err(error) => match PciAddress::parse_lenient(selector) {
                Ok(address) => addresses.push(address),
                Err(_) => return Err(Failure::from_error(&error)),
            },
        }
    }
    addresses.sort_unstable();
    addresses.dedup();
    Ok(addresses)
}

fn runtime_part(
    action: Action,
    root: &Path,
    fs: &RealFs,
    inventory: &Inventory,
    options: &Options<'_>,
    global: &GlobalArgs,
) -> Result<Runtime, Failure> {
    let selected = match action {
        Action::Assign => super::linux_host::select(inventory, options.devices)?,
        Action::Release => release_addresses(inventory, options.devices)?,
    };
    if !execute::is_system_root(root) {
        return Ok(Runtime::skipped(
            with_card_functions(inventory, &selected),
            "--root names a system that is not the running one, so only its boot configuration \
             changes (no binding at run time)"
                .to_owned(),
        ));
    }
    match action {
        Action::Assign => {
            let request = AssignRequest {
                devices: options.devices.to_vec(),
                with_group: options.with_group,
                force: options.force,
            };
            match prepare_assign(fs, inventory, &request) {
                Ok(plan) => {
                    let mut devices: Vec<PciAddress> =
                        plan.moves.iter().map(|m| m.device).collect();
                    devices.extend(plan.already_assigned.iter().copied());
                    devices.sort_unstable();
                    Ok(Runtime {
                        summary: serde_json::json!({
                            "moves": plan.moves,
                            "already_assigned": plan.already_assigned,
                            "left_alone": plan.left_alone,
                            "forced": plan.forced,
                            "warnings": plan.warnings,
                        }),
                        plan: plan.plan,
                        devices,
                    })
                }
                Err(PlanError::Refused(refusal)) if refusal.only(&["no-iommu"]) => {
                    Ok(Runtime::skipped(
                        with_card_functions(inventory, &selected),
                        "no IOMMU is active in this boot, so the devices cannot go to vfio-pci \
                         now; the boot configuration below switches it on and binds them from \
                         the next boot"
                            .to_owned(),
                    ))
                }
                Err(error) => Err(plan_failure(&error)),
            }
        }
        Action::Release => {
            let recorded = {
                let journal = super::open_journal(global)?;
                recorded_host_drivers(
                    &journal
                        .operations()
                        .map_err(|error| Failure::from_error(&error))?,
                )
            };
            let present: Vec<String> = selected
                .iter()
                .filter(|address| inventory.device(**address).is_some())
                .map(ToString::to_string)
                .collect();
            if present.is_empty() {
                return Ok(Runtime::skipped(
                    selected,
                    "no such device on this host now; only the boot configuration changes"
                        .to_owned(),
                ));
            }
            let request = ReleaseRequest { devices: present };
            let plan = prepare_release(fs, inventory, &recorded, &request)
                .map_err(|error| plan_failure(&error))?;
            Ok(Runtime {
                summary: serde_json::json!({
                    "returns": plan.returns,
                    "already_released": plan.already_released,
                }),
                plan: plan.plan,
                devices: selected,
            })
        }
    }
}

/// Runs `assign`/`release DEVICE… --persistent`.
pub(crate) fn run(
    action: Action,
    options: &Options<'_>,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let root = root_of(global);
    let fs = RealFs::new(&root);
    let inventory = inventory_with_names(&fs, &names_for(&root));
    let runtime = runtime_part(action, &root, &fs, &inventory, options, global)?;
    let request = match action {
        Action::Assign => Request::Assign(
            runtime
                .devices
                .iter()
                .filter_map(|address| inventory.device(*address))
                .map(|device| facts::target_from_inventory(&fs, device))
                .collect::<Result<_, _>>()
                .map_err(|error| boot_failure(&error))?,
        ),
        Action::Release => Request::Release(runtime.devices.clone()),
    };
    let detect = DetectOptions {
        bootloader: options.boot.bootloader,
        generator: options.boot.generator,
        ..DetectOptions::default()
    };
    let prepared = execute::prepare(&fs, &request, detect, &now_rfc3339())
        .map_err(|error| boot_failure(&error))?;
    let findings = preflight::check(
        &prepared.plan,
        &prepared.facts,
        &fs,
        &mut SystemRunner,
        &RealSpace(fs.clone()),
    );
    let plan = combined::combine(
        prepared.plan.plan.operation.clone(),
        &runtime.plan,
        &prepared.plan.plan,
    );

    if options.dry_run || plan.steps.is_empty() {
        return show_plan(
            &prepared,
            &plan,
            &runtime,
            &findings,
            options.dry_run,
            global,
        );
    }
    if !findings.ok() {
        return Err(Failure::new(format!(
            "the plan failed its checks, so nothing was changed:\n{}",
            bullet_list(&findings.problems)
        ))
        .with_help("fix these and run the command again; `--dry-run` shows the whole plan"));
    }

    let mut journal = super::open_journal(global)?;
    let kernel = passthru_linux::sys::open_kernel_port(&root, Timeouts::default())
        .map_err(|error| Failure::from_error(&error))?;
    let mut ports = Ports {
        kernel,
        boot: BootHost::new(&root, runner_for(&root), journal.blobs()),
    };
    let mut out = anstream::stdout().lock();
    if !global.json {
        let _ = write!(out, "{}", execute::describe_detection(&prepared));
        for note in &plan.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        let _ = writeln!(out);
    }
    let result = combined::apply(
        &mut journal,
        &plan,
        &prepared.plan.contents,
        &mut ports,
        &ExecOptions::default(),
        &mut progress::printer(&mut out, global.json),
    );
    drop(out);
    let bound_now = plan
        .steps
        .iter()
        .any(|step| matches!(step, LinuxStep::Sysfs(_)));
    finish(result, global, "Applied", || match (action, bound_now) {
        (Action::Assign, true) => "The devices are on vfio-pci now and the boot configuration \
             keeps them there from the next boot. `passthru undo` takes both back."
            .to_owned(),
        (Action::Assign, false) => "The boot configuration is in place; it takes effect at the \
             next boot. `passthru undo` takes it back."
            .to_owned(),
        (Action::Release, true) => "The devices are back with the host and the boot \
             configuration no longer claims them. `passthru undo` takes both back."
            .to_owned(),
        (Action::Release, false) => "The boot configuration no longer claims the devices; it \
             takes effect at the next boot. `passthru undo` takes it back."
            .to_owned(),
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
    plan: &Plan<LinuxStep>,
    runtime: &Runtime,
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
            "operation": plan.operation,
            "runtime": runtime.summary,
            "bootloader": prepared.detection.bootloader.kind(),
            "bootloader_evidence": prepared.detection.bootloader_evidence,
            "initramfs": prepared.detection.generator.kind,
            "initramfs_evidence": prepared.detection.generator_evidence,
            "kernels": prepared.facts.kernels.iter().map(|k| k.release.to_string()).collect::<Vec<_>>(),
            "notes": plan.notes,
            "steps": plan.views(),
            "problems": findings.problems,
            "dry_run": dry_run,
        }))?;
        return Ok(code);
    }
    let mut out = anstream::stdout().lock();
    let _ = write!(out, "{}", execute::describe_detection(prepared));
    let _ = write!(out, "{}", plan.render());
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
    if plan.steps.is_empty() {
        let _ = writeln!(
            out,
            "Nothing to change: the devices and the boot configuration are already as asked."
        );
    } else if dry_run {
        let _ = writeln!(out, "Dry run: nothing was changed.");
    }
    Ok(code)
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
        Err(RunError::Exec(error @ ExecError::StepFailed { .. })) => {
            Err(super::assign::linux::step_failure(error).0)
        }
        Err(error) => Err(Failure::from_error(&error)),
    }
}

/// The root an operation recorded, checked against `--root`.
fn undo_root(
    operation: &Operation,
    recorded: Option<PathBuf>,
    global: &GlobalArgs,
) -> Result<PathBuf, Failure> {
    let recorded = recorded.ok_or_else(|| {
        Failure::new(format!(
            "operation {} has no record of the system it changed",
            operation.id
        ))
    })?;
    match &global.root {
        Some(root) if !passthru_linux::boot::step::root_matches(&recorded, root) => {
            Err(Failure::new(format!(
                "operation {} changed the system under {}, not {}",
                operation.id,
                recorded.display(),
                root.display()
            ))
            .with_help(format!("run `passthru --root {} undo`", recorded.display())))
        }
        Some(root) => Ok(root.clone()),
        None => Ok(recorded),
    }
}

/// Undoes a `linux-boot` operation (boot configuration only, written by earlier builds).
pub(crate) fn undo(
    journal: &mut Journal,
    operation: &Operation,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let root = undo_root(operation, execute::operation_root(operation), global)?;
    let mut host = BootHost::new(&root, runner_for(&root), journal.blobs());
    let mut out = anstream::stdout().lock();
    let result = execute::undo(
        journal,
        operation,
        &mut host,
        &mut progress::printer(&mut out, global.json),
    );
    drop(out);
    finish(result, global, "Undone", || {
        "Every file is back as it was and the boot files were rebuilt.".to_owned()
    })
}

/// Undoes a `linux-assign` operation (`--persistent`: run-time binding and boot
/// configuration), also one interrupted by a crash.
pub(crate) fn undo_combined(
    journal: &mut Journal,
    operation: &Operation,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let root = undo_root(operation, combined::operation_root(operation), global)?;
    let kernel = passthru_linux::sys::open_kernel_port(&root, Timeouts::default())
        .map_err(|error| Failure::from_error(&error))?;
    let mut ports = Ports {
        kernel,
        boot: BootHost::new(&root, runner_for(&root), journal.blobs()),
    };
    let mut out = anstream::stdout().lock();
    let result = passthru_core::plan::executor::undo::<LinuxStep>(
        journal,
        operation,
        &mut ports,
        &mut progress::printer(&mut out, global.json),
    )
    .map_err(RunError::from);
    drop(out);
    finish(result, global, "Undone", || {
        "The devices are back as they were, every boot file is restored and the boot files \
         were rebuilt."
            .to_owned()
    })
}
