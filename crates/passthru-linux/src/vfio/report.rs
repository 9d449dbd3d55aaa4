//! Interpreting sysfs facts and a probe trace: "ready for a VM", or precisely why not.

use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

use super::facts::DeviceFacts;
use super::trace::{
    Outcome, ProbeTrace, RawDependentDevice, RawDeviceInfo, irq_index_name, region_index_name, uapi,
};
use crate::errno::Errno;

/// Why a device is not ready, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable identifier (`not-bound-to-vfio`, `group-busy`, ...).
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

impl Problem {
    fn new(code: &str, message: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            help: help.into(),
        }
    }
}

/// One region of the device as VFIO exposes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionSummary {
    /// Region index.
    pub index: u32,
    /// `BAR0`..`BAR5`, `ROM`, `config`, `VGA`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Can be mapped into the guest directly.
    pub mmap: bool,
}

/// One interrupt index of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqSummary {
    /// Interrupt index.
    pub index: u32,
    /// `INTx`, `MSI`, `MSI-X`, `error`, `request`.
    pub name: String,
    /// Number of vectors.
    pub count: u32,
}

/// What happened to the reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "error")]
pub enum ResetResult {
    /// The probe did not get that far.
    NotTried,
    /// The device does not support reset (`VFIO_DEVICE_FLAGS_RESET` unset).
    NotSupported,
    /// Not asked for.
    Skipped,
    /// `VFIO_DEVICE_RESET` succeeded.
    Done,
    /// `VFIO_DEVICE_RESET` failed.
    Failed(Errno),
    /// The device has no reset of its own; a bus or slot reset (`VFIO_DEVICE_PCI_HOT_RESET`)
    /// reset it together with the other devices of its group there, as QEMU does.
    HotReset,
    /// That bus or slot reset failed.
    HotResetFailed(Errno),
}

/// The verdict on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfioReport {
    /// The device.
    pub device: PciAddress,
    /// Ready for a VM.
    pub ready: bool,
    /// Its driver.
    pub driver: Option<String>,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
    /// `VFIO_GET_API_VERSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<i32>,
    /// The IOMMU model used (`type1v2`, `type1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_model: Option<String>,
    /// `VFIO_DEVICE_GET_INFO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<RawDeviceInfo>,
    /// Regions with a size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionSummary>,
    /// Interrupt indexes with vectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupts: Vec<IrqSummary>,
    /// The reset.
    pub reset: ResetResult,
    /// Why it is not ready (empty when ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Things that work but deserve attention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The raw answers, when a probe ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<ProbeTrace>,
}

/// Problems visible in sysfs alone. When there are any, no VFIO call is worth making.
pub fn sysfs_problems(facts: &DeviceFacts) -> Vec<Problem> {
    let device = facts.device;
    if !facts.present {
        return vec![Problem::new(
            "no-such-device",
            format!("the kernel has no PCI device {device}"),
            "`passthru survey` lists the devices; addresses look like 0000:01:00.0",
        )];
    }
    let Some(group) = facts.iommu_group else {
        return vec![if facts.iommu_active {
            Problem::new(
                "no-iommu-group",
                format!("{device} is in no IOMMU group, so VFIO cannot isolate it"),
                "the IOMMU does not translate this device; `passthru survey` shows the groups",
            )
        } else {
            Problem::new(
                "no-iommu",
                "no IOMMU is active on this host",
                "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup; on Intel \
                 also add `intel_iommu=on` to the kernel command line; then reboot",
            )
        }];
    };
    let mut problems = Vec::new();
    if facts.driver.as_deref() != Some("vfio-pci") {
        problems.push(Problem::new(
            "not-bound-to-vfio",
            format!(
                "{device} is bound to {}, not to vfio-pci",
                facts.driver.as_deref().unwrap_or("no driver")
            ),
            format!("give it to vfio-pci first: `passthru assign {device}`"),
        ));
    }
    let blocking = facts.blocking_members();
    if !blocking.is_empty() {
        let list: Vec<String> = blocking
            .iter()
            .map(|member| {
                format!(
                    "{} (bound to {})",
                    member.name,
                    member.driver.as_deref().unwrap_or("?")
                )
            })
            .collect();
        problems.push(Problem::new(
            "group-not-viable",
            format!(
                "IOMMU group {group} is not viable: {} {} still with a host driver",
                list.join(", "),
                if list.len() == 1 { "is" } else { "are" }
            ),
            format!(
                "every device of the group must be on vfio-pci (or unbound) before a VM can use \
                 any of them: `passthru assign {device}` moves the other functions of its card \
                 along, and with --with-group the rest of the group; or move the card to \
                 another slot"
            ),
        ));
    }
    if problems.is_empty() && !facts.container_node {
        problems.push(Problem::new(
            "vfio-not-loaded",
            "/dev/vfio/vfio does not exist: the vfio module is not loaded",
            "`modprobe vfio-pci` (passthru assign does this)",
        ));
    }
    if problems.is_empty() && !facts.group_node {
        problems.push(Problem::new(
            "no-group-node",
            format!("/dev/vfio/{group} does not exist although {device} is bound to vfio-pci"),
            "`dmesg | grep -i vfio` says why vfio-pci did not register it",
        ));
    }
    problems
}

fn failed(code: &str, what: &str, errno: Errno, help: &str) -> Problem {
    Problem::new(code, format!("{what} failed with {errno}"), help)
}

fn permission(path: &str) -> Problem {
    Problem::new(
        "permission-denied",
        format!("passthru may not open {path}"),
        "run as root, or give your user access to the VFIO group (libvirt does this for \
         QEMU)",
    )
}

/// Interprets the facts and, when a probe ran, its trace.
pub fn interpret(facts: &DeviceFacts, trace: Option<&ProbeTrace>) -> VfioReport {
    let mut report = VfioReport {
        device: facts.device,
        ready: false,
        driver: facts.driver.clone(),
        iommu_group: facts.iommu_group,
        api_version: None,
        iommu_model: None,
        device_info: None,
        regions: Vec::new(),
        interrupts: Vec::new(),
        reset: ResetResult::NotTried,
        problems: sysfs_problems(facts),
        warnings: Vec::new(),
        trace: trace.cloned(),
    };
    if !report.problems.is_empty() {
        return report;
    }
    let Some(trace) = trace else {
        report.problems.push(Problem::new(
            "not-probed",
            "the VFIO probe did not run",
            "run `passthru verify` on the Linux host",
        ));
        return report;
    };
    if let Some(problem) = trace_problem(facts, trace, &mut report) {
        report.problems.push(problem);
    }
    summarize_device(trace, &mut report);
    report.ready = report.problems.is_empty();
    report
}

/// The first failure in the trace, as a problem; fills in what succeeded on the way.
fn trace_problem(
    facts: &DeviceFacts,
    trace: &ProbeTrace,
    report: &mut VfioReport,
) -> Option<Problem> {
    let group = facts.iommu_group.unwrap_or_default();
    let group_path = format!("/dev/vfio/{group}");
    match &trace.open_container {
        None => return Some(Problem::new("not-probed", "the VFIO probe did not run", "")),
        Some(Outcome::Failed(errno)) if *errno == Errno::EACCES || *errno == Errno::EPERM => {
            return Some(permission("/dev/vfio/vfio"));
        }
        Some(Outcome::Failed(errno)) => {
            return Some(failed(
                "container-open-failed",
                "opening /dev/vfio/vfio",
                *errno,
                "is the vfio module loaded? `lsmod | grep vfio`",
            ));
        }
        Some(Outcome::Ok(())) => {}
    }
    match &trace.api_version {
        Some(Outcome::Ok(version)) => {
            report.api_version = Some(*version);
            if *version != uapi::API_VERSION {
                return Some(Problem::new(
                    "api-version",
                    format!(
                        "the kernel speaks VFIO API version {version}; passthru knows version {}",
                        uapi::API_VERSION
                    ),
                    "update passthru",
                ));
            }
        }
        Some(Outcome::Failed(errno)) => {
            return Some(failed(
                "not-vfio",
                "VFIO_GET_API_VERSION on /dev/vfio/vfio",
                *errno,
                "/dev/vfio/vfio is not the VFIO container device; check the vfio module",
            ));
        }
        None => {}
    }
    let supported =
        |outcome: &Option<Outcome<i32>>| matches!(outcome, Some(Outcome::Ok(n)) if *n > 0);
    if !supported(&trace.type1v2) && !supported(&trace.type1) {
        return Some(Problem::new(
            "no-type1-iommu",
            "the kernel offers no type1 IOMMU for VFIO",
            "load vfio_iommu_type1 (`modprobe vfio_iommu_type1`) and check that an IOMMU is \
             active",
        ));
    }
    match &trace.open_group {
        Some(Outcome::Failed(errno)) if *errno == Errno::EBUSY => {
            return Some(Problem::new(
                "group-busy",
                format!("{group_path} is already open in another process"),
                "a running VM (QEMU) or another VFIO program holds the group; stop it first \
                 (`fuser -v /dev/vfio/*` shows who)",
            ));
        }
        Some(Outcome::Failed(errno)) if *errno == Errno::EACCES || *errno == Errno::EPERM => {
            return Some(permission(&group_path));
        }
        Some(Outcome::Failed(errno)) => {
            return Some(failed(
                "group-open-failed",
                &format!("opening {group_path}"),
                *errno,
                "check that the group's devices are still bound to vfio-pci",
            ));
        }
        _ => {}
    }
    if let Some(Outcome::Ok(flags)) = &trace.group_flags
        && flags & uapi::GROUP_FLAGS_VIABLE == 0
    {
        return Some(Problem::new(
            "group-not-viable",
            format!("the kernel says IOMMU group {group} is not viable"),
            format!(
                "a device of the group is still bound to a host driver: `passthru survey \
                 --group {group}` shows which; move it with `passthru assign {} --with-group`",
                facts.device
            ),
        ));
    }
    match &trace.set_container {
        Some(Outcome::Failed(errno)) if *errno == Errno::EPERM => {
            return Some(Problem::new(
                "group-not-viable",
                format!(
                    "the kernel refused to attach IOMMU group {group} to a container ({errno})"
                ),
                "a device of the group is still bound to a host driver that uses DMA",
            ));
        }
        Some(Outcome::Failed(errno)) => {
            return Some(failed(
                "set-container-failed",
                "VFIO_GROUP_SET_CONTAINER",
                *errno,
                "`dmesg | grep -i vfio` says more",
            ));
        }
        _ => {}
    }
    match &trace.set_iommu {
        Some(Outcome::Ok(model)) => {
            report.iommu_model = Some(
                if *model == uapi::TYPE1V2_IOMMU {
                    "type1v2"
                } else {
                    "type1"
                }
                .to_owned(),
            );
        }
        Some(Outcome::Failed(errno)) => {
            return Some(failed(
                "set-iommu-failed",
                "VFIO_SET_IOMMU",
                *errno,
                "the IOMMU driver refused the group; `dmesg` says why",
            ));
        }
        None => {}
    }
    match &trace.device_fd {
        Some(Outcome::Failed(errno)) if *errno == Errno::EBUSY => {
            return Some(Problem::new(
                "device-busy",
                format!("{} is already open through VFIO", facts.device),
                "a running VM holds the device; stop it first",
            ));
        }
        Some(Outcome::Failed(errno)) => {
            return Some(failed(
                "device-open-failed",
                "VFIO_GROUP_GET_DEVICE_FD",
                *errno,
                "check that the device is still bound to vfio-pci",
            ));
        }
        _ => {}
    }
    if let Some(Outcome::Failed(errno)) = &trace.device_info {
        return Some(failed(
            "device-info-failed",
            "VFIO_DEVICE_GET_INFO",
            *errno,
            "`dmesg` says more",
        ));
    }
    None
}

fn summarize_device(trace: &ProbeTrace, report: &mut VfioReport) {
    let Some(Outcome::Ok(info)) = &trace.device_info else {
        return;
    };
    report.device_info = Some(*info);
    if info.flags & uapi::DEVICE_FLAGS_PCI == 0 {
        report
            .warnings
            .push("VFIO does not report this as a PCI device".into());
    }
    report.regions = trace
        .regions
        .iter()
        .filter_map(|outcome| outcome.ok())
        .filter(|region| region.size > 0)
        .map(|region| RegionSummary {
            index: region.index,
            name: region_index_name(region.index),
            size: region.size,
            read: region.flags & uapi::REGION_FLAG_READ != 0,
            write: region.flags & uapi::REGION_FLAG_WRITE != 0,
            mmap: region.flags & uapi::REGION_FLAG_MMAP != 0,
        })
        .collect();
    report.interrupts = trace
        .irqs
        .iter()
        .filter_map(|outcome| outcome.ok())
        .filter(|irq| irq.count > 0)
        .map(|irq| IrqSummary {
            index: irq.index,
            name: irq_index_name(irq.index),
            count: irq.count,
        })
        .collect();
    // vfio-pci answers EINVAL for the VGA region of a device without VGA support and for the
    // error interrupt of a conventional PCI device: those are absent, not unreadable
    // (drivers/vfio/pci/vfio_pci_core.c, GET_REGION_INFO and GET_IRQ_INFO).
    let unreadable = trace
        .regions
        .iter()
        .enumerate()
        .filter(|(index, outcome)| {
            outcome.error().is_some_and(|errno| {
                !(errno == Errno::EINVAL && *index as u32 == uapi::PCI_VGA_REGION_INDEX)
            })
        })
        .count()
        + trace
            .irqs
            .iter()
            .enumerate()
            .filter(|(index, outcome)| {
                outcome.error().is_some_and(|errno| {
                    !(errno == Errno::EINVAL && *index as u32 == uapi::PCI_ERR_IRQ_INDEX)
                })
            })
            .count();
    if unreadable > 0 {
        report.warnings.push(format!(
            "{unreadable} region or interrupt description(s) could not be read"
        ));
    }
    let has_msi = report
        .interrupts
        .iter()
        .any(|irq| irq.index == uapi::PCI_MSI_IRQ_INDEX || irq.index == uapi::PCI_MSIX_IRQ_INDEX);
    let has_intx = report
        .interrupts
        .iter()
        .any(|irq| irq.index == uapi::PCI_INTX_IRQ_INDEX);
    // A device with no interrupt pin at all (QEMU's secondary-vga) has nothing to warn about.
    if !has_msi && has_intx && info.flags & uapi::DEVICE_FLAGS_PCI != 0 {
        report.warnings.push(
            "the device offers only INTx interrupts (no MSI/MSI-X): it works, but shares a \
             legacy interrupt line and is slower"
                .into(),
        );
    }
    report.reset = if info.flags & uapi::DEVICE_FLAGS_RESET == 0 {
        hot_reset_result(trace, report)
    } else {
        match &trace.reset {
            None => ResetResult::Skipped,
            Some(Outcome::Ok(())) => ResetResult::Done,
            Some(Outcome::Failed(errno)) => {
                report.problems.push(failed(
                    "reset-failed",
                    "VFIO_DEVICE_RESET",
                    *errno,
                    "a device that cannot be reset may fail when a VM starts; `dmesg` says \
                     more (EAGAIN: another device of the slot is in use)",
                ));
                ResetResult::Failed(*errno)
            }
        }
    };
}

/// The reset of a device without a reset of its own: the bus or slot reset QEMU would do.
fn hot_reset_result(trace: &ProbeTrace, report: &mut VfioReport) -> ResetResult {
    let cannot = "the device cannot be reset: it may fail when the VM starts a second time";
    let Some(Outcome::Ok(dependents)) = &trace.hot_reset_info else {
        if trace.hot_reset_info.is_none() && trace.reset.is_none() {
            // No reset asked for (--no-reset).
            report.warnings.push(
                "the device has no reset of its own, and --no-reset kept passthru from trying \
                 a bus reset"
                    .into(),
            );
            return ResetResult::NotSupported;
        }
        report.warnings.push(cannot.into());
        return ResetResult::NotSupported;
    };
    let others: Vec<String> = dependents
        .iter()
        .filter_map(RawDependentDevice::address)
        .filter(|address| *address != report.device)
        .map(|address| address.to_string())
        .collect();
    let foreign: Vec<String> = dependents
        .iter()
        .filter(|dependent| Some(dependent.group_id) != report.iommu_group)
        .map(|dependent| {
            dependent.address().map_or_else(
                || format!("a device in group {}", dependent.group_id),
                |address| format!("{address} (group {})", dependent.group_id),
            )
        })
        .collect();
    match &trace.hot_reset {
        Some(Outcome::Ok(())) => {
            if !others.is_empty() {
                report.warnings.push(format!(
                    "reset by a bus reset, which resets {} too: give them to the same VM",
                    others.join(", ")
                ));
            }
            ResetResult::HotReset
        }
        Some(Outcome::Failed(errno)) => {
            report.problems.push(failed(
                "reset-failed",
                "the bus reset (VFIO_DEVICE_PCI_HOT_RESET)",
                *errno,
                "a device of the same bus may be in use (EBUSY, EAGAIN); `dmesg` says more",
            ));
            ResetResult::HotResetFailed(*errno)
        }
        None => {
            report.warnings.push(format!(
                "only a bus reset can reset the device, and it would also reset {}: QEMU can \
                 do it only when the VM has those devices too",
                foreign.join(", ")
            ));
            ResetResult::NotSupported
        }
    }
}

#[cfg(test)]
mod tests;
