//! Plans: every change passthru makes is first a list of typed [`Step`]s.
//!
//! A step knows how to show itself (for `--dry-run` and the journal), how to apply itself, how
//! to check that it took effect, and how to undo itself. A step carries the *before* state it
//! needs for undo, captured when the plan was made, so that an undo after a crash or power loss
//! needs nothing but the journal.
//!
//! Platforms define their own step enums (sysfs writes, file replacements, PowerShell cmdlets)
//! and their own host types (the port the step acts through); the [`executor`] and the
//! [`journal`] are shared.

pub mod executor;
pub mod journal;

use std::fmt::{self, Debug};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How a step presents itself to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// One line: what the step achieves ("Bind 0000:01:00.0 to vfio-pci").
    pub summary: String,
    /// The exact actions, one per line: sysfs writes, commands, unified diff lines, PowerShell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

impl StepView {
    /// A view with a summary and no detail lines.
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            actions: Vec::new(),
        }
    }

    /// Adds one exact action line.
    pub fn action(mut self, line: impl Into<String>) -> Self {
        self.actions.push(line.into());
        self
    }
}

/// A step failed: what happened, and what the person can do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    /// What went wrong, in a sentence.
    pub message: String,
    /// What to do next, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl StepError {
    /// An error without help text.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            help: None,
        }
    }

    /// Adds help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// One reversible change.
pub trait Step: Serialize + DeserializeOwned + Clone + Debug {
    /// The port the step acts through (a sysfs writer, a root file system plus a command
    /// runner, a PowerShell session, ...).
    type Host: ?Sized;

    /// Tag stored in the journal so that `undo` can decode the steps of an operation
    /// (`linux-sysfs`, `linux-boot`, `hyperv`, `guest-driver`).
    const KIND: &'static str;

    /// How the step presents itself.
    fn view(&self) -> StepView;

    /// Performs the change.
    fn apply(&self, host: &mut Self::Host) -> Result<(), StepError>;

    /// Checks, after [`Step::apply`], that the change really took effect.
    fn verify(&self, host: &mut Self::Host) -> Result<(), StepError>;

    /// Restores the state from before the step. Must be safe when the step was applied only
    /// partly or not at all (a crash between the journal's intent record and the change).
    fn undo(&self, host: &mut Self::Host) -> Result<(), StepError>;
}

/// An ordered list of steps that together make one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan<S> {
    /// What the operation is, as the user asked for it ("assign 0000:01:00.0").
    pub operation: String,
    /// Things to say before the steps (warnings, what the plan deliberately leaves alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The steps, in order.
    pub steps: Vec<S>,
}

impl<S: Step> Plan<S> {
    /// An empty plan for `operation`.
    pub fn new(operation: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            notes: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// The views of all steps, in order.
    pub fn views(&self) -> Vec<StepView> {
        self.steps.iter().map(Step::view).collect()
    }

    /// Renders the plan for `--dry-run`.
    pub fn render(&self) -> PlanRendering<'_, S> {
        PlanRendering(self)
    }
}

/// Text rendering of a plan (see [`Plan::render`]).
#[derive(Debug)]
pub struct PlanRendering<'a, S>(&'a Plan<S>);

impl<S: Step> fmt::Display for PlanRendering<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.0;
        writeln!(f, "Plan: {}", plan.operation)?;
        for note in &plan.notes {
            writeln!(f, "  note: {note}")?;
        }
        if plan.steps.is_empty() {
            return writeln!(f, "  nothing to do");
        }
        for (index, step) in plan.steps.iter().enumerate() {
            let view = step.view();
            writeln!(f, "  {}. {}", index + 1, view.summary)?;
            for action in &view.actions {
                writeln!(f, "       {action}")?;
            }
        }
        Ok(())
    }
}
