//! Per-device assignability: can this function be given to a VM, and what stands in the way?

use passthru_core::pci::config::{Capabilities, CapabilityReadout, PciePortType};
use passthru_core::pci::{DeviceCategory, PciAddress};
use serde::{Deserialize, Serialize};

use super::{Finding, Severity, driver_keeps_group_viable, human_size, is_vfio_driver};
use crate::inventory::{DeviceRole, GroupMember, Inventory, PciDevice};

/// 64-bit BARs at or above this size need a large 64-bit MMIO window in the guest firmware.
const LARGE_BAR: u64 = 8 << 30;
/// ACS control bits a port must enable to isolate what is below it: Source Validation,
/// P2P Request Redirect, P2P Completion Redirect, Upstream Forwarding (what the kernel's
/// `pci_acs_enabled` asks of ports).
const ACS_ISOLATION_BITS: u16 = 0x1 | 0x4 | 0x8 | 0x10;

/// The overall answer for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictStatus {
    /// Nothing stands in the way.
    Assignable,
    /// Can be assigned; read the warnings first.
    Caution,
    /// Cannot be assigned until a blocker is fixed.
    Blocked,
    /// Bridges and host bridges: infrastructure that stays with the host.
    NotApplicable,
}

/// A device's verdict and the reasons behind it (most severe first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The answer.
    pub status: VerdictStatus,
    /// Why.
    pub reasons: Vec<Finding>,
}

/// Judges one device of `inventory`.
pub fn device_verdict(inventory: &Inventory, device: &PciDevice) -> Verdict {
    if device.role != DeviceRole::Endpoint {
        let what = if device.role == DeviceRole::HostBridge {
            "a host bridge"
        } else {
            "a bridge or port"
        };
        return Verdict {
            status: VerdictStatus::NotApplicable,
            reasons: vec![Finding::new(
                Severity::Info,
                "infrastructure",
                format!("is {what}: it stays with the host and does not block its group"),
            )],
        };
    }
    let mut reasons = Vec::new();
    config_reasons(device, &mut reasons);
    group_reasons(inventory, device, &mut reasons);
    driver_reasons(device, &mut reasons);
    boot_vga_reasons(device, &mut reasons);
    reset_reasons(device, &mut reasons);
    interrupt_reasons(device, &mut reasons);
    mmio_reasons(inventory, device, &mut reasons);
    sriov_reasons(inventory, device, &mut reasons);
    if !device.warnings.is_empty() {
        reasons.push(Finding::new(
            Severity::Warning,
            "incomplete-data",
            format!(
                "{} sysfs attribute problem(s) while reading the device: the verdict may miss something",
                device.warnings.len()
            ),
        ));
    }
    reasons.sort_by_key(|finding| finding.severity);
    let status = match reasons.first().map(|finding| finding.severity) {
        Some(Severity::Blocker) => VerdictStatus::Blocked,
        Some(Severity::Warning) => VerdictStatus::Caution,
        _ => VerdictStatus::Assignable,
    };
    Verdict { status, reasons }
}

fn config_reasons(device: &PciDevice, reasons: &mut Vec<Finding>) {
    if let CapabilityReadout::Unavailable { reason } = &device.config {
        if reason.contains("all ones") {
            reasons.push(
                Finding::new(
                    Severity::Blocker,
                    "config-all-ones",
                    "its config space reads all ones: the device is powered off, gone, or stuck after a failed reset",
                )
                .with_fix("power-cycle the host (a warm reboot may not be enough); for AMD GPUs see vendor-reset"),
            );
        } else {
            reasons.push(Finding::new(
                Severity::Warning,
                "config-unreadable",
                format!("its capabilities are unknown: {reason}"),
            ));
        }
    }
}

/// A short description of another device for messages: `0000:06:00.0 (Ethernet controller,
/// bound to r8169)`.
pub(crate) fn describe_other(inventory: &Inventory, address: PciAddress) -> String {
    let Some(other) = inventory.device(address) else {
        return address.to_string();
    };
    let what = other
        .names
        .class
        .clone()
        .unwrap_or_else(|| other.category().name().to_owned());
    match &other.driver {
        Some(driver) => format!("{address} ({what}, bound to {driver})"),
        None => format!("{address} ({what}, no driver)"),
    }
}

fn group_reasons(inventory: &Inventory, device: &PciDevice, reasons: &mut Vec<Finding>) {
    let behind_vmd = device.address.domain > 0xffff;
    if behind_vmd {
        let controller = device
            .upstream
            .iter()
            .find(|address| address.domain <= 0xffff)
            .map_or_else(
                || "its VMD controller".to_owned(),
                |address| format!("VMD controller {address}"),
            );
        reasons.push(
            Finding::new(
                Severity::Blocker,
                "vmd-domain",
                format!("sits behind Intel {controller} (domain {:04x}): devices behind VMD cannot be assigned on their own", device.address.domain),
            )
            .with_fix("turn off VMD (Intel Volume Management Device, often under RST/storage settings) in the firmware setup so the device gets its own IOMMU group"),
        );
    }
    let Some(number) = device.iommu_group else {
        if behind_vmd {
            return;
        }
        if inventory.groups.is_empty() {
            reasons.push(Finding::new(
                Severity::Blocker,
                "no-iommu",
                "is in no IOMMU group because no IOMMU is active (see the host checks above)",
            ));
        } else {
            reasons.push(Finding::new(
                Severity::Blocker,
                "no-iommu-group",
                "is in no IOMMU group although an IOMMU is active: the IOMMU does not translate this device",
            ));
        }
        return;
    };
    let Some(group) = inventory.group(number) else {
        return;
    };
    let mut companions = Vec::new();
    let mut blocking = Vec::new();
    let mut idle = Vec::new();
    for member in &group.members {
        match member {
            GroupMember::Pci { address } if *address == device.address => {}
            GroupMember::Pci { address } => {
                let Some(other) = inventory.device(*address) else {
                    continue;
                };
                if other.role != DeviceRole::Endpoint {
                    continue;
                }
                if address.same_slot(device.address) {
                    companions.push(other);
                } else if driver_keeps_group_viable(other.driver.as_deref()) {
                    idle.push(describe_other(inventory, *address));
                } else {
                    blocking.push(describe_other(inventory, *address));
                }
            }
            GroupMember::Other { name, driver, .. } => {
                let bound = driver.as_deref().map_or_else(
                    || "no driver".to_owned(),
                    |driver| format!("bound to {driver}"),
                );
                let text = format!("the non-PCI device {name} ({bound})");
                if driver_keeps_group_viable(driver.as_deref()) {
                    idle.push(text);
                } else {
                    blocking.push(text);
                }
            }
        }
    }
    let shares_with_others = !blocking.is_empty() || !idle.is_empty();
    if !blocking.is_empty() {
        reasons.push(
            Finding::new(
                Severity::Blocker,
                "group-shared",
                format!(
                    "shares IOMMU group {number} with {}: the whole group goes to a VM together",
                    blocking.join(", ")
                ),
            )
            .with_fix(if blocking.len() == 1 {
                "move the card to a slot with its own IOMMU group (usually one wired to the CPU), or assign that device too; pcie_acs_override only hides the sharing"
            } else {
                "move the card to a slot with its own IOMMU group (usually one wired to the CPU), or assign those devices too; pcie_acs_override only hides the sharing"
            }),
        );
    }
    if !idle.is_empty() {
        reasons.push(Finding::new(
            Severity::Warning,
            "group-shared-idle",
            format!(
                "shares IOMMU group {number} with {}: they go to the same VM or stay unused",
                idle.join(", ")
            ),
        ));
    }
    companion_reasons(device, &companions, reasons);
    // Functions of the same card in other groups (ACS multifunction isolation) still belong
    // to the same VM, for a GPU's audio function at least.
    if device.is_gpu() {
        for other in &inventory.devices {
            if other.address != device.address
                && other.address.same_slot(device.address)
                && other.iommu_group != Some(number)
                && other.category() == DeviceCategory::Audio
            {
                reasons.push(Finding::new(
                    Severity::Info,
                    "companion-function",
                    format!(
                        "its HDMI/DP audio function {} is in another IOMMU group; give it to the same VM for sound",
                        other.address
                    ),
                ));
            }
        }
    }
    if shares_with_others {
        acs_reasons(inventory, device, number, reasons);
    }
}

fn companion_reasons(device: &PciDevice, companions: &[&PciDevice], reasons: &mut Vec<Finding>) {
    let bound = |other: &PciDevice| {
        other.driver.as_deref().map_or_else(
            || "no driver".to_owned(),
            |driver| format!("bound to {driver}"),
        )
    };
    let mut others = Vec::new();
    for other in companions {
        if device.is_gpu() && other.category() == DeviceCategory::Audio {
            reasons.push(Finding::new(
                Severity::Warning,
                "companion-function",
                format!(
                    "its HDMI/DP audio function {} ({}) must go with it",
                    other.address,
                    bound(other)
                ),
            ));
        } else if device.category() == DeviceCategory::Audio && other.is_gpu() {
            reasons.push(Finding::new(
                Severity::Warning,
                "companion-function",
                format!(
                    "is the HDMI/DP audio function of GPU {} ({}): assign them together",
                    other.address,
                    bound(other)
                ),
            ));
        } else {
            let what = other
                .names
                .class
                .clone()
                .unwrap_or_else(|| other.category().name().to_owned());
            others.push(format!("{} ({what}, {})", other.address, bound(other)));
        }
    }
    if !others.is_empty() {
        reasons.push(Finding::new(
            Severity::Warning,
            "companion-function",
            format!(
                "the other functions of the same device must go with it: {}",
                others.join(", ")
            ),
        ));
    }
}

fn decoded(device: &PciDevice) -> Option<&Capabilities> {
    match &device.config {
        // A capability list the header promises but the decoder could not walk is unknown,
        // not absent: say nothing rather than guess.
        CapabilityReadout::Decoded(capabilities)
            if !(capabilities.list.is_empty() && capabilities.header.status & 0x10 != 0) =>
        {
            Some(capabilities)
        }
        _ => None,
    }
}

fn acs_reasons(inventory: &Inventory, device: &PciDevice, number: u32, reasons: &mut Vec<Finding>) {
    for address in &device.upstream {
        let Some(port) = inventory.device(*address) else {
            continue;
        };
        let Some(capabilities) = decoded(port) else {
            continue;
        };
        let Some(pcie) = &capabilities.pcie else {
            continue;
        };
        if !matches!(
            pcie.port_type,
            PciePortType::RootPort | PciePortType::DownstreamPort
        ) {
            continue;
        }
        let message = match &capabilities.acs {
            None => format!(
                "upstream port {address} has no ACS (Access Control Services), so the kernel cannot isolate what is below it: that is why IOMMU group {number} is shared"
            ),
            Some(acs) if acs.control & ACS_ISOLATION_BITS != ACS_ISOLATION_BITS => format!(
                "upstream port {address} has ACS but does not enable isolation (ACS control {:#06x}): that is why IOMMU group {number} is shared",
                acs.control
            ),
            Some(_) => continue,
        };
        reasons.push(Finding::new(
            Severity::Info,
            "acs-missing-upstream",
            message,
        ));
        return;
    }
}

fn driver_reasons(device: &PciDevice, reasons: &mut Vec<Finding>) {
    match device.driver.as_deref() {
        driver if is_vfio_driver(driver) => reasons.push(Finding::new(
            Severity::Info,
            "bound-to-vfio",
            format!("is bound to {}: ready for a VM", driver.unwrap_or_default()),
        )),
        Some("pci-stub") => reasons.push(Finding::new(
            Severity::Info,
            "bound-to-stub",
            "is held by pci-stub: bind it to vfio-pci to give it to a VM",
        )),
        Some(driver) => reasons.push(Finding::new(
            Severity::Info,
            "host-driver",
            format!("is bound to the host driver {driver} now; assigning it unbinds that driver"),
        )),
        None => reasons.push(Finding::new(
            Severity::Info,
            "no-driver",
            "has no driver bound",
        )),
    }
    if let Some(name) = &device.driver_override {
        reasons.push(Finding::new(
            Severity::Info,
            "driver-override",
            format!("driver_override is set to {name}: only that driver may bind it"),
        ));
    }
}

fn boot_vga_reasons(device: &PciDevice, reasons: &mut Vec<Finding>) {
    if device.boot_vga == Some(true) {
        reasons.push(
            Finding::new(
                Severity::Warning,
                "boot-vga",
                "is the boot VGA device: the host's firmware console and framebuffer use it, and its ROM may be a shadowed copy",
            )
            .with_fix("give the host another GPU (or plan a single-GPU hand-off), and pass a clean ROM file to the VM if it shows a black screen"),
        );
    }
}

fn reset_reasons(device: &PciDevice, reasons: &mut Vec<Finding>) {
    if !device.reset.available() {
        let finding = Finding::new(
            Severity::Warning,
            "no-reset",
            "has no reset method: after a VM stops, the device may stay unusable until the host reboots",
        );
        reasons.push(if device.vendor == Some(0x1002) && device.is_gpu() {
            finding.with_fix("AMD GPUs with the reset bug: install vendor-reset and set reset_method to device_specific")
        } else {
            finding
        });
    } else if device.reset.methods.as_deref() == Some(&["bus".to_owned()][..]) {
        let parent = device
            .parent
            .map_or_else(|| "its bridge".to_owned(), |address| address.to_string());
        reasons.push(Finding::new(
            Severity::Info,
            "bus-reset-only",
            format!("can only be reset by a secondary bus reset at {parent}, which resets everything below that bridge"),
        ));
    }
}

fn interrupt_reasons(device: &PciDevice, reasons: &mut Vec<Finding>) {
    if device.interrupts.msi + device.interrupts.msix > 0 {
        return;
    }
    let Some(capabilities) = decoded(device) else {
        return;
    };
    if capabilities.msi.is_none()
        && capabilities.msix.is_none()
        && capabilities.header.interrupt_pin != 0
    {
        reasons.push(Finding::new(
            Severity::Warning,
            "intx-only",
            "its interrupts are INTx-only (no MSI or MSI-X): it works, but the line must not be shared with a host device and latency is higher",
        ));
    }
}

fn mmio_reasons(inventory: &Inventory, device: &PciDevice, reasons: &mut Vec<Finding>) {
    let Some(resources) = &device.resources else {
        return;
    };
    let total = resources.mmio_total();
    if total == 0 {
        return;
    }
    let high = resources.mmio_64bit_prefetchable();
    let message = if high > 0 {
        format!(
            "needs {} of MMIO in the VM ({} of it in 64-bit prefetchable BARs, mapped above 4 GiB)",
            human_size(total),
            human_size(high)
        )
    } else {
        format!("needs {} of MMIO in the VM", human_size(total))
    };
    reasons.push(Finding::new(Severity::Info, "mmio", message));
    if high >= LARGE_BAR {
        let bits = inventory
            .host
            .cpu
            .physical_address_bits
            .map_or_else(String::new, |bits| {
                format!(" (this host's CPU has {bits} physical address bits)")
            });
        reasons.push(
            Finding::new(
                Severity::Warning,
                "large-bar",
                format!("has {} of 64-bit BARs: the VM's firmware must offer a 64-bit MMIO window at least that large{bits}", human_size(high)),
            )
            .with_fix("with OVMF raise the window (QEMU: -fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=<MiB>) and give the guest enough physical address bits"),
        );
    }
}

fn sriov_reasons(inventory: &Inventory, device: &PciDevice, reasons: &mut Vec<Finding>) {
    if let Some(sriov) = &device.sriov {
        let total = sriov.total_vfs.unwrap_or(0);
        let enabled = sriov.num_vfs.unwrap_or(sriov.virtfns.len() as u32);
        if enabled > 0 {
            reasons.push(Finding::new(
                Severity::Warning,
                "sriov-pf",
                format!(
                    "is an SR-IOV physical function with {enabled} of {total} virtual functions enabled: assign VFs and keep the PF on the host; unbinding the PF removes its VFs"
                ),
            ));
        } else if total > 0 {
            reasons.push(Finding::new(
                Severity::Info,
                "sriov-pf",
                format!("is an SR-IOV physical function (up to {total} virtual functions; none enabled): VFs can be created by writing sriov_numvfs"),
            ));
        }
    }
    if let Some(pf) = device.physfn {
        let pf_driver = inventory.device(pf).and_then(|pf| pf.driver.clone());
        match pf_driver {
            Some(driver) => reasons.push(Finding::new(
                Severity::Info,
                "sriov-vf",
                format!("is an SR-IOV virtual function of {pf} (bound to {driver}); the PF stays on the host"),
            )),
            None => reasons.push(Finding::new(
                Severity::Warning,
                "sriov-vf",
                format!("is an SR-IOV virtual function of {pf}, which has no driver: most VFs need the PF driver to work"),
            )),
        }
    }
}
