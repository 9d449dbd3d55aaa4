//! Human output of the Windows survey: grouped, short, coloured on a terminal.

use std::io::{self, Write};

use anstyle::Style;
use passthru_hyperv::mmio::human;
use passthru_hyperv::survey::{
    Assignable, DdaState, DeviceReport, GpuKind, HostKind, Interrupts, Status, VmReport,
    WindowsSurvey,
};

use super::paint;
use crate::output::style;

fn mark(status: Status) -> (Style, &'static str) {
    match status {
        Status::Ok => (style::GOOD, "ok  "),
        Status::Info => (style::DIM, "info"),
        Status::Warn => (style::WARN, "warn"),
        Status::Bad => (style::BAD, "FAIL"),
    }
}

/// Writes the whole survey.
pub(crate) fn survey(out: &mut dyn Write, survey: &WindowsSurvey) -> io::Result<()> {
    let host = &survey.host;
    writeln!(
        out,
        "{} {}: {} ({}), {}",
        paint(style::HEADING, "Hyper-V host"),
        host.name.as_deref().unwrap_or("(unnamed)"),
        host.os.as_deref().unwrap_or("Windows"),
        host.build.map_or_else(
            || "build unknown".to_owned(),
            |build| format!("build {build}")
        ),
        match host.kind {
            HostKind::Client => "client edition",
            HostKind::Server => "server edition",
            HostKind::Unknown => "edition unknown",
        }
    )?;
    for check in host.checks.iter().filter(|check| check.id != "windows") {
        let (color, text) = mark(check.status);
        writeln!(out, "  {} {}", paint(color, text), check.summary)?;
        for line in &check.detail {
            writeln!(out, "       {}", paint(style::DIM, line))?;
        }
        if let Some(help) = &check.help {
            writeln!(out, "       help: {help}")?;
        }
    }

    writeln!(out)?;
    writeln!(out, "{}", paint(style::HEADING, "GPU partitioning (GPU-P)"))?;
    if survey.gpus.is_empty() {
        writeln!(out, "  no partitionable GPU")?;
    }
    for gpu in &survey.gpus {
        let kind = match gpu.kind {
            GpuKind::Paravirtual => "GPU-PV",
            GpuKind::SrIov => "SR-IOV GPU-P",
        };
        let mut facts = vec![kind.to_owned()];
        if let Some(vd) = &gpu.vendor_device {
            facts.push(vd.clone());
        }
        if let Some(vram) = gpu.vram_bytes {
            facts.push(format!("{} VRAM", human(vram)));
        }
        if let Some(version) = &gpu.driver_version {
            facts.push(format!("driver {version}"));
        }
        writeln!(
            out,
            "  {}  {}",
            paint(style::HEADING, &gpu.name),
            facts.join(", ")
        )?;
        writeln!(out, "      {}", paint(style::DIM, &gpu.instance_path))?;
        if !gpu.used_by.is_empty() {
            writeln!(out, "      in VMs: {}", gpu.used_by.join(", "))?;
        }
        for note in &gpu.notes {
            writeln!(out, "      {note}")?;
        }
    }

    writeln!(out)?;
    writeln!(out, "{}", paint(style::HEADING, "PCI devices (DDA)"))?;
    let bridges = survey.devices.iter().filter(|device| device.bridge).count();
    for device in survey.devices.iter().filter(|device| !device.bridge) {
        device_lines(out, device)?;
    }
    if survey.devices.iter().all(|device| device.bridge) {
        writeln!(out, "  no devices")?;
    }
    if bridges > 0 {
        writeln!(
            out,
            "  {}",
            paint(
                style::DIM,
                &format!("{bridges} bridges and ports not shown (--json lists them)")
            )
        )?;
    }

    writeln!(out)?;
    writeln!(out, "{}", paint(style::HEADING, "Virtual machines"))?;
    if survey.vms.is_empty() {
        writeln!(out, "  no VMs")?;
    }
    for vm in &survey.vms {
        vm_lines(out, vm)?;
    }

    for problem in &survey.problems {
        writeln!(out, "{} {problem}", paint(style::WARN, "unreadable:"))?;
    }
    for warning in &survey.warnings {
        writeln!(
            out,
            "{} {warning}",
            paint(style::WARN, "PowerShell warned:")
        )?;
    }
    match survey.source.kind.as_str() {
        "snapshot" => writeln!(
            out,
            "\n{}",
            paint(
                style::DIM,
                &format!(
                    "Replayed from snapshot {}{}",
                    survey.source.path.as_deref().unwrap_or("?"),
                    survey
                        .source
                        .provenance
                        .as_deref()
                        .and_then(|text| text.split(':').next())
                        .map(|kind| format!(" ({kind})"))
                        .unwrap_or_default()
                )
            )
        )?,
        "simulator" => writeln!(
            out,
            "\n{}",
            paint(
                style::DIM,
                &format!(
                    "Simulated Hyper-V from {}",
                    survey.source.path.as_deref().unwrap_or("?")
                )
            )
        )?,
        _ => {}
    }
    Ok(())
}

fn device_lines(out: &mut dyn Write, device: &DeviceReport) -> io::Result<()> {
    let state = match device.state {
        DdaState::Host => "on the host".to_owned(),
        DdaState::HostDisabled => "on the host, disabled".to_owned(),
        DdaState::Dismounted => "DISMOUNTED, in no VM".to_owned(),
        DdaState::Assigned => format!("in VM '{}'", device.vm.as_deref().unwrap_or("?")),
    };
    let state_style = match device.state {
        DdaState::Dismounted => style::WARN,
        DdaState::Assigned => style::GOOD,
        _ => Style::new(),
    };
    writeln!(
        out,
        "  {}  {}  {}",
        paint(
            style::HEADING,
            device
                .location_path
                .as_deref()
                .unwrap_or("(no location path)")
        ),
        device.name,
        paint(state_style, &state)
    )?;
    match device.state {
        DdaState::Assigned => {}
        DdaState::Dismounted => {
            let location = device
                .location_path
                .as_deref()
                .unwrap_or(&device.instance_id);
            writeln!(
                out,
                "      usable by nobody: `passthru release \"{location}\"` gives it back, `passthru assign \"{location}\" --vm NAME` assigns it"
            )?;
        }
        DdaState::Host | DdaState::HostDisabled => verdict_lines(out, device)?,
    }
    if !device.companions.is_empty() {
        writeln!(
            out,
            "      moves together with {}",
            device.companions.join(", ")
        )?;
    }
    Ok(())
}

fn verdict_lines(out: &mut dyn Write, device: &DeviceReport) -> io::Result<()> {
    let verdict = &device.verdict;
    let (color, word) = match verdict.assignable {
        Assignable::Yes => (style::GOOD, "assignable"),
        Assignable::Maybe => (style::WARN, "maybe assignable"),
        Assignable::No => (style::BAD, "not assignable"),
    };
    let mut facts = Vec::new();
    if let Some(vd) = &device.vendor_device {
        facts.push(vd.clone());
    }
    if let Some(kind) = &verdict.device_type {
        facts.push(kind.trim_end_matches('.').to_owned());
    }
    match verdict.interrupts {
        Interrupts::MessageSignalled => facts.push("MSI".to_owned()),
        Interrupts::None => facts.push("no interrupts".to_owned()),
        Interrupts::LineOnly => facts.push("line interrupts only".to_owned()),
        Interrupts::Unknown => {}
    }
    if let Some(bytes) = verdict.mmio_bytes {
        facts.push(format!("MMIO {}", human(bytes)));
    }
    writeln!(
        out,
        "      {}  {}",
        paint(color, word),
        paint(style::DIM, &facts.join(", "))
    )?;
    let mut unreported = Vec::new();
    for reason in &verdict.reasons {
        let short = match reason.code.as_str() {
            "reserved-memory-unknown" => Some("reserved memory"),
            "acs-unknown" => Some("ACS"),
            "device-type-unknown" => Some("device type"),
            "resources-unknown" => Some("interrupts and MMIO"),
            _ => None,
        };
        match short {
            Some(short) => unreported.push(short),
            None if reason.blocking
                || verdict.assignable != Assignable::Yes
                || reason.code == "integrated-endpoint" =>
            {
                writeln!(out, "      - {}", reason.text)?;
            }
            None => {}
        }
    }
    if !unreported.is_empty() {
        writeln!(
            out,
            "      - not reported by Windows: {}",
            unreported.join(", ")
        )?;
    }
    Ok(())
}

fn vm_lines(out: &mut dyn Write, vm: &VmReport) -> io::Result<()> {
    let mut facts = vec![
        vm.state
            .clone()
            .unwrap_or_else(|| "state unknown".to_owned()),
    ];
    if let Some(generation) = vm.generation {
        facts.push(format!("gen {generation}"));
    }
    facts.push(format!(
        "MMIO {} low / {} high",
        vm.low_mmio.map_or_else(|| "?".to_owned(), human),
        vm.high_mmio.map_or_else(|| "?".to_owned(), human)
    ));
    facts.push(format!(
        "cache types {}",
        match vm.cache_types {
            Some(true) => "guest",
            Some(false) => "host",
            None => "?",
        }
    ));
    facts.push(format!(
        "stop action {}",
        vm.stop_action.as_deref().unwrap_or("?")
    ));
    if vm.memory.dynamic {
        facts.push(format!(
            "dynamic memory {} (min {})",
            vm.memory.startup.map_or_else(|| "?".to_owned(), human),
            vm.memory.minimum.map_or_else(|| "?".to_owned(), human)
        ));
    } else if let Some(startup) = vm.memory.startup {
        facts.push(format!("{} memory", human(startup)));
    }
    writeln!(
        out,
        "  {}  {}",
        paint(style::HEADING, &vm.name),
        facts.join(", ")
    )?;
    for adapter in &vm.gpu_adapters {
        let what = adapter
            .gpu
            .clone()
            .or_else(|| adapter.instance_path.clone())
            .unwrap_or_else(|| "chosen by Hyper-V at start (Windows 10)".to_owned());
        if adapter.stale {
            writeln!(
                out,
                "      GPU partition: {} {}",
                what,
                paint(style::BAD, "(STALE)")
            )?;
        } else {
            writeln!(out, "      GPU partition: {what}")?;
        }
    }
    for device in &vm.devices {
        let what = format!(
            "{} {}",
            device.location_path.as_deref().unwrap_or("?"),
            device.name.as_deref().unwrap_or_default()
        );
        if device.stale {
            writeln!(
                out,
                "      device: {} {}",
                what.trim(),
                paint(style::BAD, "(STALE)")
            )?;
        } else {
            writeln!(out, "      device: {}", what.trim())?;
        }
    }
    for problem in &vm.problems {
        writeln!(out, "      {} {problem}", paint(style::WARN, "problem:"))?;
    }
    Ok(())
}
