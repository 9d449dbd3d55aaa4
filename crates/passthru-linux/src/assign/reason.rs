//! Why a plan stops, and what it leaves alone.

use std::fmt;

use passthru_core::pci::PciAddress;
use passthru_core::select::SelectError;
use serde::{Deserialize, Serialize};

use crate::probes::{self, Severity};

/// One reason not to go ahead (or, once `--force` went past it, one risk taken), with the way
/// forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The device it is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<PciAddress>,
    /// Stable identifier: the refusal probes' kinds (`no-iommu`, `root-filesystem`,
    /// `console-framebuffer`, ...) and the planner's own (`group-shared`, `group-not-viable`,
    /// `not-an-endpoint`, `vfio-group-in-use`); see `docs/assign.md`.
    pub code: String,
    /// What is the case.
    pub message: String,
    /// What to do about it.
    pub help: String,
    /// Whether `--force` goes ahead despite it.
    pub force_overrides: bool,
}

impl Reason {
    /// A reason of the planner's own.
    pub(super) fn new(
        device: Option<PciAddress>,
        code: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Self {
            device,
            code: code.to_owned(),
            message: message.into(),
            help: help.into(),
            force_overrides: false,
        }
    }

    /// A refusal probe's finding.
    pub(super) fn from_finding(finding: &probes::Finding) -> Self {
        let code = serde_json::to_value(finding.kind)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            device: Some(finding.device),
            code,
            message: finding.message.clone(),
            help: finding.help.clone(),
            force_overrides: finding.severity != Severity::Blocked,
        }
    }
}

/// The plan was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What was asked (`assign 0000:01:00.0`).
    pub operation: String,
    /// Every reason, in the order found.
    pub reasons: Vec<Reason>,
}

impl Refusal {
    /// Whether `--force` would go past every reason.
    pub fn force_would_help(&self) -> bool {
        self.reasons.iter().all(|reason| reason.force_overrides)
    }

    /// Whether every reason is one of `codes`.
    pub fn only(&self, codes: &[&str]) -> bool {
        self.reasons
            .iter()
            .all(|reason| codes.contains(&reason.code.as_str()))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "passthru will not {}:", self.operation)?;
        for reason in &self.reasons {
            write!(
                f,
                "\n  - {}\n    what to do: {}",
                reason.message, reason.help
            )?;
        }
        Ok(())
    }
}

/// Why no plan was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A device selector named no device or several.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The request would hurt the host or cannot work; the reasons say why.
    #[error("{0}")]
    Refused(Refusal),
}

/// A device the plan deliberately does not touch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftAlone {
    /// The device (a PCI address, or a non-PCI group member's name).
    pub device: String,
    /// Why it stays as it is.
    pub why: String,
}
