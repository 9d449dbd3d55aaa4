//! Helpers shared by the integration tests: recorded fixtures, and turning what SurveyDDA said
//! about a device into the PnP properties that make passthru say the same.

#![allow(dead_code)]

use std::path::PathBuf;

use passthru_hyperv::model::{MemoryRange, PnpDevice};
use passthru_hyperv::text::survey_dda::{Finding, SurveyEntry};

/// The repository's `fixtures/hyperv` directory.
pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hyperv")
}

/// A recorded fixture's text, without its `#` source lines at the top.
pub(crate) fn recorded(name: &str) -> String {
    let text = fs_err::read_to_string(fixtures().join("recorded").join(name)).unwrap();
    text.lines()
        .skip_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The MSI vector number SurveyDDA's heuristic recognises (`42949*`).
pub(crate) const MSI_IRQ: u64 = 4_294_967_294;
/// A line-based IRQ.
pub(crate) const LINE_IRQ: u64 = 16;

/// PnP properties, IRQs and MMIO ranges that reproduce `entry`'s findings. What SurveyDDA did
/// not get to check (it stops at the first failure) stays unknown (`None`/empty).
pub(crate) fn device_from_survey(
    entry: &SurveyEntry,
    instance_id: &str,
    location: Option<&str>,
    mmio_start: u64,
) -> (PnpDevice, Vec<u64>, Vec<MemoryRange>) {
    let has = |finding: &Finding| entry.findings.contains(finding);
    let mut device = PnpDevice {
        instance_id: instance_id.to_owned(),
        name: Some(entry.name.clone()),
        status: Some("OK".to_owned()),
        present: Some(true),
        problem: Some(0),
        location_paths: location
            .map(|path| vec![path.to_owned()])
            .unwrap_or_default(),
        ..PnpDevice::default()
    };
    device.reserved_memory = Some(has(&Finding::BiosOwnedMemory));
    if has(&Finding::BiosOwnedMemory) {
        return (device, Vec::new(), Vec::new());
    }
    device.acs_up = Some(if has(&Finding::NoAcsUpstream) { 0 } else { 3 });
    if has(&Finding::NoAcsUpstream) {
        return (device, Vec::new(), Vec::new());
    }
    let (kind, base_class) = if has(&Finding::ExpressEndpoint) {
        (Some(2), None)
    } else if has(&Finding::EmbeddedEndpoint) {
        (Some(4), None)
    } else if has(&Finding::LegacyGraphicsEndpoint) {
        (Some(3), Some(3))
    } else if has(&Finding::LegacyNonVga) {
        (Some(3), Some(2))
    } else if has(&Finding::BiosKeptPcieControl) {
        (Some(5), None)
    } else if has(&Finding::OldStylePci) {
        (Some(0), None)
    } else {
        (None, None)
    };
    device.pci_device_type = kind;
    device.pci_base_class = base_class;
    if has(&Finding::Disabled) {
        device.problem = Some(22);
        device.status = Some("Error".to_owned());
    }
    let irqs = if has(&Finding::LineInterrupts) {
        vec![LINE_IRQ]
    } else if has(&Finding::NoInterrupts) {
        Vec::new()
    } else {
        vec![MSI_IRQ]
    };
    let memory = match entry.mmio_megabytes() {
        Some(megabytes) if megabytes > 0 => vec![MemoryRange {
            start: Some(mmio_start),
            end: Some(mmio_start + megabytes * (1 << 20) - 1),
        }],
        _ => Vec::new(),
    };
    (device, irqs, memory)
}
