//! Output of Microsoft's `SurveyDDA.ps1` (and its predecessor `survey-dda.ps1`).
//!
//! People paste this output when asking whether a device can be assigned, and passthru's own
//! DDA verdict mirrors its checks (reference §3). The parser reads the script's sentences
//! loosely — case, spacing and punctuation vary between revisions and hand-typed copies
//! (`Express EndPoint --more secure.`, `message-based,assigment can work`) — into findings.

use serde::{Deserialize, Serialize};

use super::location::LocationPath;

/// One thing SurveyDDA said about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "finding", content = "value")]
pub enum Finding {
    /// "BIOS requires that this device remain attached to BIOS-owned memory." (RMRR)
    BiosOwnedMemory,
    /// "Traffic from this device may be redirected to other devices in the system." (no ACS)
    NoAcsUpstream,
    /// "Express Endpoint -- more secure."
    ExpressEndpoint,
    /// "Embedded Endpoint -- less secure."
    EmbeddedEndpoint,
    /// "Legacy Express Endpoint -- graphics controller."
    LegacyGraphicsEndpoint,
    /// "Legacy, non-VGA PCI device."
    LegacyNonVga,
    /// "BIOS kept control of PCI Express for this device."
    BiosKeptPcieControl,
    /// "Old-style PCI device, switch port, etc."
    OldStylePci,
    /// "Device is Disabled, unable to check resource requirements, it may be assignable."
    Disabled,
    /// "And it has no interrupts at all -- assignment can work."
    NoInterrupts,
    /// "And its interrupts are message-based, assignment can work."
    MessageInterrupts,
    /// "All of the interrupts are line-based, no assignment can work."
    LineInterrupts,
    /// "And it has no MMIO space"
    NoMmio,
    /// "And it requires at least: N MB of MMIO gap space"
    MmioMegabytes(u64),
}

impl Finding {
    /// Whether this finding makes the device unassignable.
    pub fn blocks(&self) -> bool {
        matches!(
            self,
            Self::BiosOwnedMemory
                | Self::NoAcsUpstream
                | Self::LegacyNonVga
                | Self::BiosKeptPcieControl
                | Self::OldStylePci
                | Self::LineInterrupts
        )
    }
}

/// One device in SurveyDDA output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyEntry {
    /// The device's friendly name as printed.
    pub name: String,
    /// What the script said, in order.
    pub findings: Vec<Finding>,
    /// The location path printed after the findings, when there was one.
    pub location_path: Option<String>,
}

impl SurveyEntry {
    /// SurveyDDA's conclusion: no blocking finding and at least one positive device-type line.
    pub fn assignable(&self) -> bool {
        !self.findings.iter().any(Finding::blocks)
            && self.findings.iter().any(|finding| {
                matches!(
                    finding,
                    Finding::ExpressEndpoint
                        | Finding::EmbeddedEndpoint
                        | Finding::LegacyGraphicsEndpoint
                )
            })
    }

    /// The MMIO requirement in MiB, when printed.
    pub fn mmio_megabytes(&self) -> Option<u64> {
        self.findings.iter().find_map(|finding| match finding {
            Finding::MmioMegabytes(megabytes) => Some(*megabytes),
            Finding::NoMmio => Some(0),
            _ => None,
        })
    }
}

/// Everything read from one SurveyDDA run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyReport {
    /// Devices in order.
    pub entries: Vec<SurveyEntry>,
    /// The host-level "this machine doesn't support using them in a VM" line, with the
    /// `IovSupportReasons` lines that follow it.
    pub host_unsupported: Option<Vec<String>>,
}

/// Parses SurveyDDA output. Never fails; lines it does not understand are device names (that
/// is what SurveyDDA prints between verdicts) unless they look like noise.
pub fn parse(text: &str) -> SurveyReport {
    let mut report = SurveyReport::default();
    let mut current: Option<SurveyEntry> = None;
    let mut host_lines: Option<Vec<String>> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line == "..." {
            continue;
        }
        if let Some(lines) = host_lines.as_mut() {
            lines.push(line.to_owned());
            continue;
        }
        let normal = normalise(line);
        if normal.starts_with("executing surveydda") || normal.starts_with("generating a list") {
            continue;
        }
        if normal.contains("doesn't support using them in a vm")
            || normal.contains("does not support using them in a vm")
        {
            if let Some(entry) = current.take() {
                report.entries.push(entry);
            }
            host_lines = Some(Vec::new());
            continue;
        }
        if normal.starts_with("pciroot") {
            if let Some(entry) = current.as_mut() {
                let path = LocationPath::parse(line)
                    .map(|path| path.to_string())
                    .unwrap_or_else(|_| line.to_owned());
                entry.location_path = Some(path);
            }
            continue;
        }
        if normal.starts_with("enable the device and rerun") {
            continue;
        }
        if let Some(finding) = finding(&normal) {
            if let Some(entry) = current.as_mut() {
                entry.findings.push(finding);
            }
            continue;
        }
        if let Some(entry) = current.take() {
            report.entries.push(entry);
        }
        current = Some(SurveyEntry {
            name: line.trim_end_matches(':').trim().to_owned(),
            ..SurveyEntry::default()
        });
    }
    if let Some(entry) = current.take() {
        report.entries.push(entry);
    }
    report.host_unsupported = host_lines;
    report
}

/// Lower case, punctuation spacing collapsed, so that revisions and hand copies compare.
fn normalise(line: &str) -> String {
    let lower = line.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut last_space = true;
    for c in lower.chars() {
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out.trim_end().to_owned()
}

fn finding(normal: &str) -> Option<Finding> {
    let table: &[(&str, Finding)] = &[
        ("bios-owned memory", Finding::BiosOwnedMemory),
        ("may be redirected to other devices", Finding::NoAcsUpstream),
        ("legacy express endpoint", Finding::LegacyGraphicsEndpoint),
        ("legacy, non-vga", Finding::LegacyNonVga),
        ("express endpoint", Finding::ExpressEndpoint),
        ("embedded endpoint", Finding::EmbeddedEndpoint),
        (
            "bios kept control of pci express",
            Finding::BiosKeptPcieControl,
        ),
        ("old-style pci device", Finding::OldStylePci),
        ("device is disabled", Finding::Disabled),
        ("no interrupts at all", Finding::NoInterrupts),
        ("message-based", Finding::MessageInterrupts),
        ("line-based", Finding::LineInterrupts),
        ("has no mmio space", Finding::NoMmio),
    ];
    if let Some((_, finding)) = table.iter().find(|(needle, _)| normal.contains(needle)) {
        return Some(finding.clone());
    }
    let rest = normal.split("requires at least:").nth(1)?;
    let megabytes = rest
        .split_whitespace()
        .next()
        .and_then(|number| number.parse().ok())?;
    Some(Finding::MmioMegabytes(megabytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hand_typed_consumer_sample() {
        // intel/haxm#149 as posted (reference F7): lowercase, missing spaces, a typo.
        let text = "Controller host Intel (R) USB 3.1 extensible - 1.10 (microsoft) :\nBIOS requires that this device remain attached to BIOS-owned memory. Not assignable.\nSamsung NVMe Controller :\nExpress EndPoint --more secure.\nAnd its interrupts are message-based,assigment can work\nPCIROOT (0) #PCI (1004) #PCI (0000)\nNvidia Geforce RTX 2080 ti\ntraffic from this device may be redirected to other devices in the system. Not assignable\n";
        let report = parse(text);
        assert_eq!(report.entries.len(), 3);
        assert!(!report.entries[0].assignable());
        assert_eq!(report.entries[1].name, "Samsung NVMe Controller");
        assert!(report.entries[1].assignable());
        assert_eq!(
            report.entries[1].location_path.as_deref(),
            Some("PCIROOT(0)#PCI(1004)#PCI(0000)")
        );
        assert_eq!(report.entries[2].findings, vec![Finding::NoAcsUpstream]);
    }

    #[test]
    fn reads_mmio_and_host_lines() {
        let text = "NVIDIA GRID K520\nExpress Endpoint -- more secure.\n    And it requires at least: 176 MB of MMIO gap space\nPCIROOT(20)#PCI(0300)#PCI(0000)#PCI(0800)#PCI(0000)\nUnfortunately, this machine doesn't support using them in a VM.\nNo SR-IOV\n";
        let report = parse(text);
        assert_eq!(report.entries[0].mmio_megabytes(), Some(176));
        assert_eq!(report.host_unsupported, Some(vec!["No SR-IOV".to_owned()]));
    }
}
