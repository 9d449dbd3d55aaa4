//! The human form of a survey: host readiness first, then devices grouped by IOMMU group,
//! GPUs and their companion functions highlighted, only what a person needs to act on.

use std::collections::BTreeMap;
use std::fmt::Write;

use anstyle::Style;
use passthru_core::pci::DeviceCategory;
use passthru_core::pci::ids::NamesSource;
use passthru_linux::checks::device::VerdictStatus;
use passthru_linux::checks::group::MemberRole;
use passthru_linux::checks::{Finding, Severity, is_vfio_driver};
use passthru_linux::inventory::ModuleState;
use passthru_linux::survey::{DeviceReport, GroupReport, Survey, SurveySource};

use crate::output::style;

/// At most this many findings with the same code are printed per device.
const SAME_CODE_LIMIT: usize = 3;

fn paint(style: Style, text: &str) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

/// Renders the whole survey.
pub(super) fn render(survey: &Survey) -> String {
    let mut out = String::new();
    heading(&mut out, survey);
    host(&mut out, survey);
    devices(&mut out, survey);
    summary(&mut out, survey);
    out
}

fn heading(out: &mut String, survey: &Survey) {
    let source = match &survey.source {
        SurveySource::Host { root } if root == "/" => "this host".to_owned(),
        SurveySource::Host { root } => format!("the host under {root}"),
        SurveySource::Snapshot { file, .. } => format!("snapshot {file}"),
    };
    let names = match &survey.names_source {
        NamesSource::File { path, version } => {
            format!(
                "{}{}",
                path.display(),
                version
                    .as_deref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            )
        }
        NamesSource::Bundled { version } => format!(
            "bundled pci.ids{}",
            version
                .as_deref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        ),
        NamesSource::None => "none".to_owned(),
    };
    let _ = writeln!(
        out,
        "{} {}",
        paint(style::HEADING, "passthru survey of"),
        paint(style::HEADING, &source)
    );
    if let SurveySource::Snapshot {
        description: Some(description),
        created_by,
        ..
    } = &survey.source
    {
        let _ = writeln!(
            out,
            "{}",
            paint(style::DIM, &format!("  {description} ({created_by})"))
        );
    }
    let _ = writeln!(
        out,
        "{}",
        paint(style::DIM, &format!("  device names: {names}"))
    );
    let _ = writeln!(out);
}

fn marker(severity: Severity) -> String {
    match severity {
        Severity::Blocker => paint(style::BAD, "✗"),
        Severity::Warning => paint(style::WARN, "!"),
        Severity::Info => paint(style::DIM, "·"),
    }
}

/// A dimmed aside line.
fn note(out: &mut String, indent: &str, text: &str) {
    let _ = writeln!(out, "{indent}{}", paint(style::DIM, text));
}

fn finding(out: &mut String, indent: &str, finding: &Finding) {
    let text = match finding.severity {
        Severity::Info => paint(style::DIM, &finding.message),
        _ => finding.message.clone(),
    };
    let _ = writeln!(out, "{indent}{} {text}", marker(finding.severity));
    if let Some(fix) = &finding.fix {
        let _ = writeln!(out, "{indent}  {} {fix}", paint(style::DIM, "→"));
    }
}

fn host(out: &mut String, survey: &Survey) {
    let host = &survey.host;
    let _ = writeln!(out, "{}", paint(style::HEADING, "Host"));
    let iommu = if host.iommu_active {
        paint(
            style::GOOD,
            &format!("active ({} groups)", host.iommu_group_count),
        )
    } else {
        paint(style::BAD, "off")
    };
    let cpu = &host.info.cpu;
    let virtualization = if cpu.vmx {
        "VT-x"
    } else if cpu.svm {
        "AMD-V"
    } else {
        "no VT-x/AMD-V"
    };
    let mut cpu_line = cpu
        .model_name
        .clone()
        .or_else(|| cpu.vendor_id.clone())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    cpu_line.push_str(&format!(", {virtualization}"));
    if let Some(bits) = cpu.physical_address_bits {
        cpu_line.push_str(&format!(", {bits}-bit physical addresses"));
    }
    if cpu.hypervisor {
        cpu_line.push_str(", running as a VM");
    }
    let modules: Vec<String> = host
        .info
        .modules
        .iter()
        .map(|module| {
            let state = match module.state {
                ModuleState::Loaded => "loaded",
                ModuleState::BuiltIn => "built in",
                ModuleState::Available => "not loaded",
                ModuleState::Missing => "missing",
                ModuleState::Unknown => "unknown",
            };
            format!("{} {state}", module.name)
        })
        .collect();
    let params: Vec<String> = host
        .info
        .kernel_params
        .iter()
        .map(|param| match &param.value {
            Some(value) => format!("{}={value}", param.name),
            None => param.name.clone(),
        })
        .collect();
    let rows = [
        ("IOMMU", iommu),
        ("CPU", cpu_line),
        (
            "KVM",
            if host.info.kvm_device {
                "/dev/kvm present".to_owned()
            } else {
                paint(style::BAD, "/dev/kvm missing")
            },
        ),
        (
            "Kernel",
            format!(
                "{}; parameters: {}",
                host.info
                    .kernel_release
                    .as_deref()
                    .unwrap_or("unknown release"),
                if params.is_empty() {
                    "none for IOMMU/VFIO".to_owned()
                } else {
                    params.join(" ")
                }
            ),
        ),
        ("Modules", modules.join(", ")),
    ];
    for (label, value) in rows {
        let _ = writeln!(
            out,
            "  {} {value}",
            paint(style::DIM, &format!("{label:<8}"))
        );
    }
    for item in host.findings.iter().filter(|finding| {
        finding.severity != Severity::Info
            || finding.code == "capabilities-need-root"
            || finding.code.starts_with("persistent-")
    }) {
        finding(out, "  ", item);
    }
    let _ = writeln!(out);
}

/// The GPU a function belongs to, when it is a non-GPU function in a GPU's slot.
fn gpu_of<'a>(survey: &'a Survey, report: &DeviceReport) -> Option<&'a DeviceReport> {
    if report.category == DeviceCategory::Gpu {
        return None;
    }
    survey.devices.iter().find(|other| {
        other.category == DeviceCategory::Gpu
            && other.device.address.same_slot(report.device.address)
    })
}

fn verdict_tag(report: &DeviceReport) -> String {
    let (text, style) = match report.verdict.status {
        VerdictStatus::Assignable if is_vfio_driver(report.device.driver.as_deref()) => {
            ("ready", style::GOOD)
        }
        VerdictStatus::Assignable => ("ok", style::GOOD),
        VerdictStatus::Caution => ("caution", style::WARN),
        VerdictStatus::Blocked => ("blocked", style::BAD),
        VerdictStatus::NotApplicable => ("bridge", style::DIM),
    };
    paint(style, &format!("{text:<7}"))
}

fn device(out: &mut String, survey: &Survey, report: &DeviceReport) {
    let device = &report.device;
    let class = device.names.class.clone().unwrap_or_else(|| {
        device.class.map_or_else(
            || "unknown class".to_owned(),
            |class| format!("class {class}"),
        )
    });
    let name = format!("{class}: {} [{}]", device.display_name(), device.ids_text());
    let name = if report.category == DeviceCategory::Gpu {
        format!("{} {name}", paint(style::GPU, "GPU"))
    } else if let Some(gpu) = gpu_of(survey, report) {
        format!(
            "{} {name}",
            paint(style::GPU, &format!("GPU {} companion", gpu.device.address))
        )
    } else if report.verdict.status == VerdictStatus::NotApplicable {
        paint(style::DIM, &name)
    } else {
        name
    };
    let driver = device.driver.as_deref().map_or_else(
        || paint(style::DIM, "(no driver)"),
        |driver| paint(style::DIM, &format!("({driver})")),
    );
    let _ = writeln!(
        out,
        "  {}  {}  {name} {driver}",
        paint(style::HEADING, &device.address.to_string()),
        verdict_tag(report)
    );
    if report.verdict.status == VerdictStatus::NotApplicable {
        return;
    }
    let mut per_code: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &report.verdict.reasons {
        let count = per_code.entry(item.code.as_str()).or_default();
        *count += 1;
        let show = match item.severity {
            Severity::Blocker | Severity::Warning => true,
            Severity::Info => {
                (report.category == DeviceCategory::Gpu && item.code == "mmio")
                    || item.code.starts_with("persistent-")
            }
        };
        if show && *count <= SAME_CODE_LIMIT {
            finding(out, "      ", item);
        }
    }
    for (code, count) in per_code {
        if count > SAME_CODE_LIMIT {
            let more = count - SAME_CODE_LIMIT;
            note(
                out,
                "      ",
                &format!("… and {more} more `{code}` reasons (see --json)"),
            );
        }
    }
    for warning in &device.warnings {
        let _ = writeln!(out, "      {} {}", paint(style::WARN, "sysfs:"), warning);
    }
}

fn group_header(out: &mut String, group: &GroupReport) {
    let endpoints = group
        .viability
        .members
        .iter()
        .filter(|member| matches!(member.role, MemberRole::Endpoint | MemberRole::NonPci))
        .count();
    let viability = if group.viability.viable {
        paint(style::GOOD, "viable")
    } else {
        let blockers: Vec<String> = group
            .viability
            .blockers()
            .map(|member| {
                format!(
                    "{} ({})",
                    member.name,
                    member.driver.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let shown = blockers
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if blockers.len() > 4 {
            format!(" and {} more", blockers.len() - 4)
        } else {
            String::new()
        };
        format!(
            "{} {shown}{more}",
            paint(style::BAD, "not viable now: bound to host drivers:")
        )
    };
    let _ = writeln!(
        out,
        "{}  {} member(s), {endpoints} endpoint(s)  {viability}",
        paint(style::HEADING, &format!("IOMMU group {}", group.number)),
        group.viability.members.len()
    );
    for member in &group.viability.members {
        if member.role == MemberRole::NonPci {
            let driver = member.driver.as_deref().unwrap_or("no driver");
            let _ = writeln!(
                out,
                "  {}  {}  non-PCI device ({driver})",
                paint(style::HEADING, &member.name),
                paint(
                    if member.blocking {
                        style::BAD
                    } else {
                        style::DIM
                    },
                    "other  "
                )
            );
        }
    }
    for warning in &group.warnings {
        let _ = writeln!(out, "  {} {warning}", paint(style::WARN, "sysfs:"));
    }
}

fn devices(out: &mut String, survey: &Survey) {
    for group in &survey.groups {
        group_header(out, group);
        for report in survey
            .devices
            .iter()
            .filter(|report| report.device.iommu_group == Some(group.number))
        {
            device(out, survey, report);
        }
        let shown = survey
            .devices
            .iter()
            .filter(|report| report.device.iommu_group == Some(group.number))
            .count();
        let pci_members = group
            .viability
            .members
            .iter()
            .filter(|member| member.role != MemberRole::NonPci)
            .count();
        if !survey.filter.is_empty() && shown < pci_members {
            let hidden = pci_members - shown;
            note(
                out,
                "  ",
                &format!("({hidden} more member(s) not shown by the filter)"),
            );
        }
        let _ = writeln!(out);
    }
    let ungrouped: Vec<&DeviceReport> = survey
        .devices
        .iter()
        .filter(|report| {
            report
                .device
                .iommu_group
                .is_none_or(|number| !survey.groups.iter().any(|group| group.number == number))
        })
        .collect();
    if !ungrouped.is_empty() {
        let _ = writeln!(out, "{}", paint(style::HEADING, "No IOMMU group"));
        for report in ungrouped {
            device(out, survey, report);
        }
        let _ = writeln!(out);
    }
}

fn summary(out: &mut String, survey: &Survey) {
    let count = |wanted: VerdictStatus| {
        survey
            .devices
            .iter()
            .filter(|report| report.verdict.status == wanted)
            .count()
    };
    let ready = survey
        .devices
        .iter()
        .filter(|report| {
            report.verdict.status == VerdictStatus::Assignable
                && is_vfio_driver(report.device.driver.as_deref())
        })
        .count();
    let gpus = survey
        .devices
        .iter()
        .filter(|report| report.category == DeviceCategory::Gpu)
        .count();
    let shown = if survey.filter.is_empty() {
        format!("{} devices", survey.devices.len())
    } else {
        format!(
            "{} of {} devices",
            survey.devices.len(),
            survey.total_devices
        )
    };
    let _ = writeln!(
        out,
        "{} {shown} ({gpus} GPU), {} IOMMU groups: {} ready, {} ok, {} caution, {} blocked, {} bridges",
        paint(style::HEADING, "Summary:"),
        survey.groups.len(),
        paint(style::GOOD, &ready.to_string()),
        count(VerdictStatus::Assignable) - ready,
        count(VerdictStatus::Caution),
        count(VerdictStatus::Blocked),
        count(VerdictStatus::NotApplicable),
    );
    for warning in &survey.warnings {
        let _ = writeln!(out, "{} {warning}", paint(style::WARN, "sysfs:"));
    }
}
