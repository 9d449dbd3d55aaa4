//! A SurveyDDA-equivalent verdict for one PCI device (reference §3), plus passthru's own
//! checks (the system disk's controller).
//!
//! SurveyDDA checks, in order: BIOS-reserved memory (RMRR), ACS up the hierarchy, the PCIe
//! device type, whether the device is disabled, its interrupts, and its MMIO need. passthru
//! evaluates the same properties in the same order and keeps SurveyDDA's sentences alongside
//! its own explanation, so that people who know SurveyDDA recognise the result. Unlike
//! SurveyDDA it treats a property Windows did not report as unknown rather than as a failure
//! (SurveyDDA's `$null -ne 0` reads a missing RMRR property as "BIOS-owned memory", §3.4).

use serde::{Deserialize, Serialize};

use super::resources::{DeviceResources, Interrupts};
use crate::mmio;
use crate::model::PnpDevice;

/// Whether a device can be assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignable {
    /// Every check passed.
    Yes,
    /// Nothing blocks it, but something could not be checked (disabled device, missing
    /// properties).
    Maybe,
    /// Something blocks it.
    No,
}

/// One finding about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable identifier (`bios-reserved-memory`, `no-acs`, `line-interrupts`, ...).
    pub code: String,
    /// What it means, in a sentence.
    pub text: String,
    /// Whether it prevents assignment.
    pub blocking: bool,
    /// Whether `--force` may override it (the risk is in `text`).
    pub overridable: bool,
}

impl Reason {
    fn new(code: &str, text: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            text: text.into(),
            blocking: false,
            overridable: false,
        }
    }

    fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }

    fn overridable(mut self) -> Self {
        self.blocking = true;
        self.overridable = true;
        self
    }
}

/// The verdict on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The conclusion.
    pub assignable: Assignable,
    /// The PCIe device type as SurveyDDA names it ("Express Endpoint -- more secure.").
    pub device_type: Option<String>,
    /// How it interrupts.
    pub interrupts: Interrupts,
    /// Bytes of MMIO its BARs take on the host (SurveyDDA's "requires at least").
    pub mmio_bytes: Option<u64>,
    /// The part of `mmio_bytes` the host placed below 4 GiB (32-bit BARs, which need the VM's
    /// low MMIO gap).
    pub mmio_below_4g_bytes: Option<u64>,
    /// Findings, in SurveyDDA's order, then passthru's own.
    pub reasons: Vec<Reason>,
    /// What SurveyDDA would have printed for this device (without the name line).
    pub survey_dda: Vec<String>,
}

impl Verdict {
    /// The first blocking reason.
    pub fn blocker(&self) -> Option<&Reason> {
        self.reasons.iter().find(|reason| reason.blocking)
    }

    /// Blocking reasons that `--force` cannot override.
    pub fn hard_blockers(&self) -> impl Iterator<Item = &Reason> {
        self.reasons
            .iter()
            .filter(|reason| reason.blocking && !reason.overridable)
    }
}

/// SurveyDDA's names of `DEVPKEY_PciDevice_DeviceType` values.
pub fn device_type_name(kind: u32) -> &'static str {
    match kind {
        0 => "conventional PCI device",
        1 => "PCI-X device",
        2 => "PCI Express endpoint",
        3 => "PCI Express legacy endpoint",
        4 => "PCI Express root-complex integrated endpoint",
        5 => "PCI Express device treated as PCI",
        6 => "conventional PCI bridge",
        7 => "PCI-X bridge",
        8 => "PCI Express root port",
        9 => "PCI Express switch upstream port",
        10 => "PCI Express switch downstream port",
        11 => "PCI Express to PCI/PCI-X bridge",
        12 => "PCI/PCI-X to PCI Express bridge",
        13 => "PCI Express bridge treated as PCI",
        14 => "PCI Express root-complex event collector",
        _ => "unknown device type",
    }
}

/// Whether a device is a bridge or port rather than something one would assign.
pub fn is_bridge(device: &PnpDevice) -> bool {
    device
        .pci_device_type
        .is_some_and(|kind| (6..=14).contains(&kind))
        || device
            .service
            .as_deref()
            .is_some_and(|service| service.eq_ignore_ascii_case("pci"))
}

/// Judges one device. `system_disk` says whether it controls the disk Windows boots from.
pub fn judge(
    device: &PnpDevice,
    resources: Option<&DeviceResources>,
    system_disk: bool,
) -> Verdict {
    let mut reasons = Vec::new();
    let mut lines = Vec::new();
    let mut unknown = false;
    let mut device_type = None;
    let mut interrupts = Interrupts::Unknown;
    let mut mmio_bytes = None;
    let mut mmio_below_4g_bytes = None;

    let blocked = 'survey: {
        match device.reserved_memory {
            Some(true) => {
                lines.push("BIOS requires that this device remain attached to BIOS-owned memory.  Not assignable.".to_owned());
                reasons.push(Reason::new("bios-reserved-memory", "the firmware requires this device to stay attached to firmware-owned memory (an RMRR); it cannot be assigned (ask the board vendor for firmware that supports DDA)").blocking());
                break 'survey true;
            }
            Some(false) => {}
            None => {
                unknown = true;
                reasons.push(Reason::new(
                    "reserved-memory-unknown",
                    "Windows did not report whether the firmware reserves memory for this device",
                ));
            }
        }
        match device.acs_up {
            Some(0) => {
                lines.push("Traffic from this device may be redirected to other devices in the system.  Not assignable.".to_owned());
                reasons.push(Reason::new("no-acs", "the bridges above it lack ACS, so its traffic may reach other devices; assignable only with --force (Dismount -Force), and then unsafe for untrusted guests").overridable());
                break 'survey true;
            }
            Some(_) => {}
            None => {
                unknown = true;
                reasons.push(Reason::new(
                    "acs-unknown",
                    "Windows did not report ACS support above this device",
                ));
            }
        }
        match device.pci_device_type {
            Some(2) => {
                device_type = Some("Express Endpoint -- more secure.".to_owned());
                lines.push("Express Endpoint -- more secure.".to_owned());
            }
            Some(4) => {
                device_type = Some("Embedded Endpoint -- less secure.".to_owned());
                lines.push("Embedded Endpoint -- less secure.".to_owned());
                reasons.push(Reason::new("integrated-endpoint", "a root-complex integrated endpoint: assignable, but less isolated than a discrete PCIe card"));
            }
            Some(3) if device.pci_base_class == Some(3) => {
                device_type = Some("Legacy Express Endpoint -- graphics controller.".to_owned());
                lines.push("Legacy Express Endpoint -- graphics controller.".to_owned());
            }
            Some(3) => {
                lines.push("Legacy, non-VGA PCI device.  Not assignable.".to_owned());
                reasons.push(Reason::new("legacy-endpoint", "a legacy PCI Express endpoint that is not a graphics controller; Hyper-V cannot assign it").blocking());
                break 'survey true;
            }
            Some(5) => {
                lines.push(
                    "BIOS kept control of PCI Express for this device.  Not assignable.".to_owned(),
                );
                reasons.push(Reason::new("firmware-pcie-control", "the firmware kept control of PCI Express for this device; enable native PCIe control (often labelled SR-IOV or Above 4G decoding) in the firmware").blocking());
                break 'survey true;
            }
            Some(kind) => {
                lines.push("Old-style PCI device, switch port, etc.  Not assignable.".to_owned());
                reasons.push(
                    Reason::new(
                        "not-an-endpoint",
                        format!(
                            "a {} cannot be assigned; only PCI Express endpoints can",
                            device_type_name(kind)
                        ),
                    )
                    .blocking(),
                );
                break 'survey true;
            }
            None => {
                unknown = true;
                reasons.push(Reason::new(
                    "device-type-unknown",
                    "Windows did not report the PCI Express device type",
                ));
            }
        }
        if device.is_disabled() {
            lines.push(
                "Device is Disabled, unable to check resource requirements, it may be assignable."
                    .to_owned(),
            );
            lines.push("Enable the device and rerun this script to confirm.".to_owned());
            reasons.push(Reason::new("disabled", "the device is disabled, so its interrupts and MMIO needs cannot be read; enable it and survey again to be sure"));
            unknown = true;
            break 'survey false;
        }
        let Some(resources) = resources else {
            unknown = true;
            reasons.push(Reason::new(
                "resources-unknown",
                "its interrupts and memory ranges were not reported",
            ));
            break 'survey false;
        };
        interrupts = resources.interrupts();
        match interrupts {
            Interrupts::None => {
                lines.push("    And it has no interrupts at all -- assignment can work.".to_owned())
            }
            Interrupts::MessageSignalled => lines
                .push("    And its interrupts are message-based, assignment can work.".to_owned()),
            Interrupts::LineOnly => {
                lines.push(
                    "All of the interrupts are line-based, no assignment can work.".to_owned(),
                );
                reasons.push(Reason::new("line-interrupts", "it only uses line-based (INTx) interrupts, which Hyper-V cannot deliver to a VM").blocking());
                break 'survey true;
            }
            Interrupts::Unknown => {}
        }
        let need = mmio::Need::of(&resources.memory);
        let total = need.total;
        mmio_bytes = Some(total);
        mmio_below_4g_bytes = Some(need.below_4g);
        if total == 0 {
            lines.push("    And it has no MMIO space".to_owned());
        } else {
            lines.push(format!(
                "    And it requires at least: {} MB of MMIO gap space",
                total.div_ceil(mmio::MIB)
            ));
        }
        false
    };

    if system_disk {
        reasons.push(Reason::new("system-disk", "it controls the disk Windows is running from; giving it to a VM would take the host's own disk away").blocking());
    }
    let assignable = if blocked || system_disk {
        Assignable::No
    } else if unknown {
        Assignable::Maybe
    } else {
        Assignable::Yes
    };
    Verdict {
        assignable,
        device_type,
        interrupts,
        mmio_bytes,
        mmio_below_4g_bytes,
        reasons,
        survey_dda: lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemoryRange;

    fn endpoint() -> PnpDevice {
        PnpDevice {
            instance_id: r"PCI\VEN_10DE&DEV_118A\4&1".into(),
            pci_device_type: Some(2),
            acs_up: Some(3),
            reserved_memory: Some(false),
            problem: Some(0),
            ..PnpDevice::default()
        }
    }

    #[test]
    fn an_express_endpoint_with_msi_is_assignable() {
        let resources = DeviceResources {
            irqs: vec![4_294_967_294],
            memory: vec![MemoryRange {
                start: Some(0xF600_0000),
                end: Some(0xF600_0000 + 176 * mmio::MIB - 1),
            }],
        };
        let verdict = judge(&endpoint(), Some(&resources), false);
        assert_eq!(verdict.assignable, Assignable::Yes);
        assert_eq!(
            verdict.survey_dda,
            vec![
                "Express Endpoint -- more secure.",
                "    And its interrupts are message-based, assignment can work.",
                "    And it requires at least: 176 MB of MMIO gap space"
            ]
        );
    }

    #[test]
    fn checks_stop_at_the_first_blocker_like_surveydda() {
        let mut device = endpoint();
        device.reserved_memory = Some(true);
        device.acs_up = Some(0);
        let verdict = judge(&device, None, false);
        assert_eq!(verdict.assignable, Assignable::No);
        assert_eq!(verdict.blocker().unwrap().code, "bios-reserved-memory");
        assert_eq!(verdict.reasons.len(), 1);
    }

    #[test]
    fn no_acs_is_overridable_and_line_interrupts_are_not() {
        let mut device = endpoint();
        device.acs_up = Some(0);
        assert!(judge(&device, None, false).blocker().unwrap().overridable);
        let line = DeviceResources {
            irqs: vec![16],
            memory: vec![],
        };
        let verdict = judge(&endpoint(), Some(&line), false);
        assert_eq!(verdict.blocker().unwrap().code, "line-interrupts");
        assert!(!verdict.blocker().unwrap().overridable);
    }

    #[test]
    fn disabled_and_unknown_devices_are_maybe() {
        let mut device = endpoint();
        device.problem = Some(22);
        assert_eq!(judge(&device, None, false).assignable, Assignable::Maybe);
        let unknown = PnpDevice {
            instance_id: r"PCI\X\Y".into(),
            ..PnpDevice::default()
        };
        assert_eq!(judge(&unknown, None, false).assignable, Assignable::Maybe);
    }

    #[test]
    fn system_disk_controller_is_refused() {
        let verdict = judge(&endpoint(), Some(&DeviceResources::default()), true);
        assert_eq!(verdict.assignable, Assignable::No);
        assert!(
            verdict
                .hard_blockers()
                .any(|reason| reason.code == "system-disk")
        );
    }
}
