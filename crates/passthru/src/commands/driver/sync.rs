//! `passthru driver sync`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use passthru_core::plan::executor::{self, CrashPoint, ExecError, ExecOptions, Report};
use passthru_core::plan::journal::{Journal, Outcome};
use passthru_core::plan::{Plan, Step, StepError};
use passthru_driver::guest::steps::PackageSync;
use passthru_driver::guest::{
    GuestError, GuestSession, GuestStep, SyncRequest, VmState, plan_driver_sync, plan_shutdown,
    unverified_listing,
};
use passthru_driver::sync::Action;
use passthru_hyperv::ps::quote::cli_argument;
use serde_json::json;

use super::progress::Display;
use super::{Target, guest_failure, interrupt, record, state_name};
use crate::cli::GlobalArgs;
use crate::hyperv::apply::{can_ask, consent_to_shut_down};
use crate::hyperv::{SIMULATOR_ENV, paint};
use crate::output::{self, Failure, style};

/// The arguments of `driver sync`.
#[derive(Debug)]
pub(super) struct SyncArgs {
    pub(super) vm: String,
    pub(super) gpu: Option<String>,
    pub(super) stop_vm: bool,
    pub(super) dry_run: bool,
}

/// With the simulated Hyper-V only: `before:N` or `after:N` makes the run stop dead at step N
/// (counted from 1) as after a power loss, leaving the journal, the mounted disk and the loaded
/// hive for `passthru undo` (fault-injection tests).
const CRASH_ENV: &str = "PASSTHRU_SIMULATOR_CRASH";

/// One run: the VM, GPU and driver, the session on the host, the journal once needed.
struct Run<'a> {
    args: &'a SyncArgs,
    global: &'a GlobalArgs,
    target: Target,
    session: GuestSession,
    display: Display,
    journal: Option<Journal>,
}

pub(super) fn run(args: &SyncArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let cancel: Arc<AtomicBool> = interrupt::install();
    let (target, host) = Target::connect(&args.vm, args.gpu.as_deref())?;
    let display = Display::new();
    let mut session = GuestSession::new(Box::new(host)).with_cancel(cancel);
    if !global.json {
        session = session.with_progress(display.copy_observer());
    }
    let mut run = Run {
        args,
        global,
        target,
        session,
        display,
        journal: None,
    };
    let shutdown = match run.target.vm_state() {
        VmState::Off => None,
        VmState::Saved => {
            return Err(guest_failure(&GuestError::VmSaved {
                vm: run.target.vm.name.clone(),
            }));
        }
        state if args.dry_run => return show_unverified(&run.target, &state, global),
        state => Some(run.shut_down(&state)?),
    };
    let outcome = run.sync();
    if let Some(id) = &shutdown {
        let vm = &run.target.vm.name;
        if outcome.is_err() {
            run.start_again(id);
        } else if !global.json {
            let _ = writeln!(
                anstream::stdout().lock(),
                "Next: the VM was shut down for the sync ({id}); start it again: Start-VM -Name '{vm}'"
            );
        }
    }
    outcome
}

/// The journal, opened (and locked) the first time it is needed.
fn journal<'a>(
    slot: &'a mut Option<Journal>,
    global: &GlobalArgs,
) -> Result<&'a mut Journal, Failure> {
    if slot.is_none() {
        *slot = Some(crate::commands::open_journal(global)?);
    }
    slot.as_mut()
        .ok_or_else(|| Failure::new("the journal could not be opened"))
}

impl Run<'_> {
    /// Shuts the running VM down, with consent (`--stop-vm` or a yes at the terminal), as a
    /// journaled operation of its own; returns its id.
    fn shut_down(&mut self, state: &VmState) -> Result<String, Failure> {
        let vm = self.target.vm.name.clone();
        let agreed = self.args.stop_vm
            || (can_ask(false, self.global) && consent_to_shut_down(std::slice::from_ref(&vm)));
        if !agreed {
            return Err(Failure::new(format!(
                "VM '{vm}' is {}; its disk can only be changed while it is off",
                state_name(state)
            ))
            .with_help(format!(
                "run again with --stop-vm to let passthru shut it down (a guest shutdown request; `passthru undo` starts it again), or shut Windows down inside the VM; `passthru driver sync --vm {} --dry-run` shows what would change",
                cli_argument(&vm)
            )));
        }
        let plan = plan_shutdown(&vm);
        let journal = journal(&mut self.journal, self.global)?;
        let report = executor::apply(
            journal,
            &plan,
            &mut self.session,
            &ExecOptions::default(),
            &mut |_| {},
        )
        .map_err(|error| match error {
            ExecError::StepFailed { error, .. } => {
                let failure =
                    Failure::new(format!("could not shut VM '{vm}' down: {}", error.message));
                failure.with_help(error.help.unwrap_or_else(|| {
                    "shut Windows down inside the VM, then run the command again".to_owned()
                }))
            }
            other => Failure::from_error(&other),
        })?;
        if !self.global.json {
            let _ = writeln!(
                anstream::stdout().lock(),
                "Shut VM '{vm}' down (journal: {}).",
                report.operation_id
            );
        }
        Ok(report.operation_id)
    }

    /// After a failed sync: starts the VM that passthru shut down.
    fn start_again(&mut self, shutdown: &str) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let started = journal
            .operation(shutdown)
            .map_err(|error| error.to_string())
            .and_then(|operation| {
                executor::undo::<GuestStep>(journal, &operation, &mut self.session, &mut |_| {})
                    .map_err(|error| error.to_string())
            });
        let mut err = anstream::stderr().lock();
        let _ = match started {
            Ok(report) if report.outcome == Outcome::Undone => writeln!(
                err,
                "passthru started VM '{}' again, as it was before",
                self.target.vm.name
            ),
            _ => writeln!(
                err,
                "VM '{}' stays off (starting it again failed; `passthru undo --operation {shutdown}` or Start-VM)",
                self.target.vm.name
            ),
        };
    }

    fn sync(&mut self) -> Result<ExitCode, Failure> {
        let request = SyncRequest {
            vm: self.target.vm.name.clone(),
            driver: self.target.driver.clone(),
            operation_id: Journal::new_operation_id(),
        };
        let mut plan =
            plan_driver_sync(self.session.host(), &request).map_err(|e| guest_failure(&e))?;
        let mut notes = self.target.notes.clone();
        notes.append(&mut plan.notes);
        plan.notes = notes;
        if self.args.dry_run || plan.steps.is_empty() {
            return show_plan(&plan, &self.target, self.args.dry_run, self.global);
        }
        let human = !self.global.json;
        if human {
            let mut out = anstream::stdout().lock();
            let _ = writeln!(out, "{} {}", paint(style::HEADING, "Plan:"), plan.operation);
            for note in &plan.notes {
                let _ = writeln!(out, "  note: {note}");
            }
        }
        let options = crash_option()?;
        let display = self.display.clone();
        let journal = journal(&mut self.journal, self.global)?;
        let result = executor::apply(
            journal,
            &plan,
            &mut self.session,
            &options,
            &mut |progress| {
                if human {
                    display.step(progress);
                }
            },
        );
        let written = self.session.written_manifest().cloned();
        match result {
            Ok(report) => {
                let kept = match (&written, self.journal.as_ref()) {
                    (Some(manifest), Some(journal)) => {
                        record::save(journal, &report.operation_id, manifest).is_ok()
                    }
                    _ => false,
                };
                report_success(&plan, &self.target, &report, kept, self.global)
            }
            Err(ExecError::StepFailed {
                index,
                error,
                rollback,
            }) => Err(report_failure(&plan, index, &error, &rollback, self.global)?),
            Err(ExecError::Crashed(point)) => Err(Failure::new(format!(
                "simulated crash ({point:?}; {CRASH_ENV}): the run stops here as after a power loss; `passthru undo` finishes the job"
            ))
            .with_code(3)),
            Err(other) => Err(Failure::from_error(&other)),
        }
    }
}

/// `--dry-run` while the VM runs: its disk cannot be read, so this lists what a sync into a
/// guest without the driver would write.
fn show_unverified(
    target: &Target,
    state: &VmState,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let listing = unverified_listing(&target.driver);
    let mut notes = target.notes.clone();
    notes.push(format!(
        "VM '{}' is {}, so its disk cannot be read: this is what a sync writes into a guest that has no copy of the driver yet (with the VM off, the dry run lists exactly what would change)",
        target.vm.name,
        state_name(state)
    ));
    if global.json {
        output::print_json(&json!({
            "schema": "passthru.driver.plan/1",
            "vm": target.vm.name,
            "gpu": target.gpu,
            "driver_version": target.driver_version(),
            "verified": false,
            "notes": notes,
            "steps": [],
            "listing": listing,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = anstream::stdout().lock();
    let _ = writeln!(
        out,
        "{} driver sync {} ({}) into VM {} (not verified against the guest)",
        paint(style::HEADING, "Plan:"),
        target.gpu,
        target.driver_version(),
        target.vm.name
    );
    for note in notes {
        let _ = writeln!(out, "  note: {note}");
    }
    for line in listing {
        let _ = writeln!(out, "       {line}");
    }
    let _ = writeln!(out, "Dry run: nothing was changed.");
    Ok(ExitCode::SUCCESS)
}

/// `--dry-run`, or a sync with nothing to do.
fn show_plan(
    plan: &Plan<GuestStep>,
    target: &Target,
    dry_run: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    if global.json {
        let mut value = json!({
            "schema": if dry_run { "passthru.driver.plan/1" } else { "passthru.driver.sync/1" },
            "vm": target.vm.name,
            "gpu": target.gpu,
            "driver_version": target.driver_version(),
            "notes": plan.notes,
            "steps": plan.views(),
        });
        if dry_run {
            value["verified"] = json!(true);
        } else {
            value["outcome"] = json!("nothing-to-do");
        }
        output::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = anstream::stdout().lock();
    let _ = write!(out, "{}", plan.render());
    if dry_run && !plan.steps.is_empty() {
        let _ = writeln!(out, "Dry run: nothing was changed.");
    }
    Ok(ExitCode::SUCCESS)
}

/// The fault injection of [`CRASH_ENV`], honoured only with the simulated Hyper-V.
fn crash_option() -> Result<ExecOptions, Failure> {
    let (Some(crash), Some(_)) = (std::env::var_os(CRASH_ENV), std::env::var_os(SIMULATOR_ENV))
    else {
        return Ok(ExecOptions::default());
    };
    let text = crash.to_string_lossy();
    let point = text.split_once(':').and_then(|(when, step)| {
        let index = step.parse::<usize>().ok()?.checked_sub(1)?;
        match when {
            "before" => Some(CrashPoint::BeforeApply(index)),
            "after" => Some(CrashPoint::AfterApply(index)),
            _ => None,
        }
    });
    match point {
        Some(point) => Ok(ExecOptions { crash: Some(point) }),
        None => Err(Failure::new(format!(
            "{CRASH_ENV}={text} is not `before:N` or `after:N` (N counts steps from 1)"
        ))),
    }
}

/// Files and bytes the plan copies (packages and System32/SysWOW64).
fn copied(plan: &Plan<GuestStep>) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for step in &plan.steps {
        match step {
            GuestStep::SyncPackages(PackageSync { files: list, .. }) => {
                for file in list.iter().filter(|f| f.action != Action::Keep) {
                    files += 1;
                    bytes += file.size;
                }
            }
            GuestStep::PromoteFiles { files: list, .. } => files += list.len(),
            _ => {}
        }
    }
    (files, bytes)
}

fn next_steps(target: &Target) -> Vec<String> {
    vec![
        format!(
            "start the VM (Start-VM -Name '{}'); Device Manager inside it should show {} without Code 43",
            target.vm.name, target.gpu
        ),
        format!(
            "after every host driver update: `passthru driver status --vm {}` says whether the VM fell behind",
            cli_argument(&target.vm.name)
        ),
    ]
}

fn report_success(
    plan: &Plan<GuestStep>,
    target: &Target,
    report: &Report,
    kept_record: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let (files, bytes) = copied(plan);
    let after = next_steps(target);
    if global.json {
        output::print_json(&json!({
            "schema": "passthru.driver.sync/1",
            "vm": target.vm.name,
            "gpu": target.gpu,
            "driver_version": target.driver_version(),
            "outcome": report.outcome,
            "operation_id": report.operation_id,
            "notes": plan.notes,
            "steps": plan.views(),
            "copied": {"files": files, "bytes": bytes},
            "host_record": kept_record,
            "after": after,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = anstream::stdout().lock();
    let _ = writeln!(
        out,
        "{} VM '{}' has driver {} of {} ({files} file(s) written; journal: {}; `passthru undo` reverts it).",
        paint(style::GOOD, "Done:"),
        target.vm.name,
        target.driver_version(),
        target.gpu,
        report.operation_id
    );
    if !kept_record {
        let _ = writeln!(
            out,
            "  note: no copy of the guest's record could be kept next to the journal; `passthru driver status` needs the VM off to answer"
        );
    }
    for line in after {
        let _ = writeln!(out, "Next: {line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn report_failure(
    plan: &Plan<GuestStep>,
    index: usize,
    error: &StepError,
    rollback: &Report,
    global: &GlobalArgs,
) -> Result<Failure, Failure> {
    let restored = rollback.outcome == Outcome::RolledBack;
    if global.json {
        output::print_json(&json!({
            "schema": "passthru.driver.sync/1",
            "operation": plan.operation,
            "operation_id": rollback.operation_id,
            "outcome": rollback.outcome,
            "failed_step": index + 1,
            "error": error,
            "undo_errors": rollback.undo_errors.iter().map(|(index, error)| json!({"step": index + 1, "error": error})).collect::<Vec<_>>(),
        }))?;
    }
    let summary = plan.steps[index].view().summary;
    let outcome = if restored {
        "every change was rolled back and the VM's disk dismounted"
    } else {
        "rolling back did not restore everything (see `passthru journal`)"
    };
    let mut failure = Failure::new(format!(
        "step {} ({summary}) failed: {}; {outcome}",
        index + 1,
        error.message
    ));
    if let Some(help) = &error.help {
        failure = failure.with_help(help.clone());
    } else if !restored {
        failure = failure.with_help("run `passthru undo` to finish restoring the VM's disk");
    }
    Ok(failure)
}
