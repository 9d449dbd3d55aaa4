//! From a request to a journaled, checked, applied plan, and back with undo.

use std::path::Path;

use passthru_core::hostfs::RealFs;
use passthru_core::plan::executor::{self, ExecError, ExecOptions, Progress, Report};
use passthru_core::plan::journal::{Journal, JournalError, Operation};
use passthru_core::runner::CommandRunner;

use super::BootError;
use super::detect::{self, DetectOptions, Detection};
use super::facts::{self, HostFacts};
use super::planner::{self, BootPlan, PlanInput, Request};
use super::preflight::{self, SpaceProbe};
use super::state::{self, PersistentState};
use super::step::{BootHost, BootStep};

/// Everything read and decided before anything changes.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Host facts.
    pub facts: HostFacts,
    /// What is in use.
    pub detection: Detection,
    /// The record before the operation.
    pub state: Option<PersistentState>,
    /// The plan.
    pub plan: BootPlan,
}

/// Reads the root, detects its boot setup and plans `request`. A boot loader or generator
/// recorded by an earlier assign is chosen again unless `options` says otherwise, so that a
/// release edits the same files the assign edited.
pub fn prepare(
    root: &RealFs,
    request: &Request,
    options: DetectOptions,
    now: &str,
) -> Result<Prepared, BootError> {
    let facts = facts::read_host_facts(root);
    let state = state::load(root)?;
    let options = DetectOptions {
        recorded_bootloader: state.as_ref().map(|s| s.bootloader),
        recorded_generator: state.as_ref().map(|s| s.generator),
        ..options
    };
    let detection = detect::detect(root, &facts, options)?;
    let plan = planner::plan(
        PlanInput {
            root,
            facts: &facts,
            detection: &detection,
            state: state.as_ref(),
            now,
        },
        request,
    )?;
    Ok(Prepared {
        facts,
        detection,
        state,
        plan,
    })
}

/// Checks a prepared plan (see [`preflight::check`]); an error lists every problem.
pub fn check(
    prepared: &Prepared,
    root: &RealFs,
    runner: &mut dyn CommandRunner,
    space: &dyn SpaceProbe,
) -> Result<(), BootError> {
    let findings = preflight::check(&prepared.plan, &prepared.facts, root, runner, space);
    if findings.ok() {
        Ok(())
    } else {
        Err(BootError::Preflight(
            findings
                .problems
                .iter()
                .map(|problem| format!("  - {problem}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ))
    }
}

/// Why applying or undoing did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The journal could not store the file contents.
    #[error("could not save the original files in the journal")]
    Journal(#[from] JournalError),
    /// The executor stopped (a failed step was rolled back; see the report inside).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The operation belongs to another root.
    #[error("{0}")]
    WrongRoot(String),
}

/// Stores every file content the plan names in the journal, then applies it.
pub fn apply(
    journal: &mut Journal,
    plan: &BootPlan,
    host: &mut BootHost,
    options: &ExecOptions,
    observer: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, RunError> {
    for bytes in plan.contents.values() {
        journal.store_blob(bytes)?;
    }
    Ok(executor::apply(
        journal, &plan.plan, host, options, observer,
    )?)
}

/// Undoes a `linux-boot` operation through `host`, refusing when it was made for another root.
pub fn undo(
    journal: &mut Journal,
    operation: &Operation,
    host: &mut BootHost,
    observer: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, RunError> {
    let steps = executor::decode_steps::<BootStep>(operation)?;
    if let Some(BootStep::Begin { root, .. }) = steps.first()
        && !super::step::root_matches(root, host.root())
    {
        return Err(RunError::WrongRoot(format!(
            "operation {} changed the system under {}, not {}; run `passthru --root {} undo`",
            operation.id,
            root.display(),
            host.root().display(),
            root.display()
        )));
    }
    Ok(executor::undo::<BootStep>(
        journal, operation, host, observer,
    )?)
}

/// The root a journaled `linux-boot` operation was made for.
pub fn operation_root(operation: &Operation) -> Option<std::path::PathBuf> {
    let steps = executor::decode_steps::<BootStep>(operation).ok()?;
    match steps.first() {
        Some(BootStep::Begin { root, .. }) => Some(root.clone()),
        _ => None,
    }
}

/// Whether `path` is the machine's own root.
pub fn is_system_root(path: &Path) -> bool {
    path.canonicalize()
        .map(|path| path == Path::new("/"))
        .unwrap_or(false)
}

/// What was detected and why, and the installed kernels (the start of `--dry-run`).
pub fn describe_detection(prepared: &Prepared) -> String {
    use std::fmt::Write as _;
    let detection = &prepared.detection;
    let mut text = String::new();
    let _ = writeln!(text, "Boot loader: {}", detection.bootloader.kind());
    for line in &detection.bootloader_evidence {
        let _ = writeln!(text, "  because {line}");
    }
    let _ = writeln!(text, "Initramfs generator: {}", detection.generator.kind);
    for line in &detection.generator_evidence {
        let _ = writeln!(text, "  because {line}");
    }
    let kernels: Vec<String> = prepared
        .facts
        .kernels
        .iter()
        .map(|kernel| kernel.release.to_string())
        .collect();
    let _ = writeln!(text, "Installed kernels: {}", kernels.join(", "));
    text
}

/// The text `--dry-run` prints: what was detected and why, then the plan.
pub fn describe(prepared: &Prepared) -> String {
    use std::fmt::Write as _;
    let mut text = describe_detection(prepared);
    let _ = write!(text, "{}", prepared.plan.plan.render());
    text
}
