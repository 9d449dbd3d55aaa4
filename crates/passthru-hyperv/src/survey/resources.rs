//! Joins `Win32_PnPAllocatedResource` rows to devices: each device's interrupts and MMIO
//! ranges (what SurveyDDA reads with two wildcard scans per device, reference §3.1).

use std::collections::HashMap;

use crate::model::{HostAnswers, MemoryRange};
use crate::text::wmi_path::{WmiPath, is_message_signalled};

/// One device's resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceResources {
    /// IRQ numbers.
    pub irqs: Vec<u64>,
    /// MMIO ranges.
    pub memory: Vec<MemoryRange>,
}

/// How a device interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interrupts {
    /// No interrupts at all (assignment can work).
    None,
    /// At least one message-signalled interrupt (assignment can work).
    MessageSignalled,
    /// Only line-based (INTx) interrupts: no assignment can work.
    LineOnly,
    /// Not known (disabled device, or resources not read).
    Unknown,
}

impl DeviceResources {
    /// Classifies the interrupts the way SurveyDDA does.
    pub fn interrupts(&self) -> Interrupts {
        if self.irqs.is_empty() {
            Interrupts::None
        } else if self.irqs.iter().any(|irq| is_message_signalled(*irq)) {
            Interrupts::MessageSignalled
        } else {
            Interrupts::LineOnly
        }
    }
}

/// Resources of every device, keyed by upper-case instance id.
pub fn by_device(answers: &HostAnswers) -> HashMap<String, DeviceResources> {
    let ends: HashMap<u64, Option<u64>> = answers
        .memory_ranges
        .iter()
        .filter_map(|range| Some((range.start?, range.end)))
        .collect();
    let mut resources: HashMap<String, DeviceResources> = HashMap::new();
    for row in &answers.allocated_resources {
        let (Some(dependent), Some(antecedent)) = (
            WmiPath::parse(&row.dependent),
            WmiPath::parse(&row.antecedent),
        ) else {
            continue;
        };
        let Some(device) = dependent.key("DeviceID") else {
            continue;
        };
        let entry = resources.entry(device.to_ascii_uppercase()).or_default();
        if antecedent.class.eq_ignore_ascii_case("Win32_IRQResource") {
            if let Some(irq) = antecedent.key("IRQNumber").and_then(|n| n.parse().ok()) {
                entry.irqs.push(irq);
            }
        } else if antecedent
            .class
            .eq_ignore_ascii_case("Win32_DeviceMemoryAddress")
            && let Some(start) = antecedent
                .key("StartingAddress")
                .and_then(|n| n.parse().ok())
        {
            entry.memory.push(MemoryRange {
                start: Some(start),
                end: ends.get(&start).copied().flatten(),
            });
        }
    }
    resources
}
