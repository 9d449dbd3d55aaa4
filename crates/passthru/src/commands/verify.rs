//! `passthru verify`: prove that devices are usable by a VM the way QEMU opens them (VFIO),
//! and reset them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use passthru_core::hostfs::RealFs;
use passthru_linux::vfio::{DeviceFacts, ResetResult, VfioReport, interpret, sysfs_problems};

use super::linux_host::{inventory_with_names, names_for, select};
use crate::cli::GlobalArgs;
use crate::output::{self, Failure, style};

/// Arguments of `passthru verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Devices to check: BDF (0000:01:00.0), short BDF (01:00.0), vendor:device, or a name
    /// substring, as `passthru survey` takes them.
    #[arg(value_name = "DEVICE", required = true)]
    pub(crate) devices: Vec<String>,

    /// Do not reset the devices (by default a device that supports reset is reset, as QEMU
    /// does when a VM starts).
    #[arg(long)]
    pub(crate) no_reset: bool,
}

pub(crate) fn run(args: VerifyArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let root = global.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let fs = RealFs::new(&root);
    let inventory = inventory_with_names(&fs, &names_for(&root));
    let devices = select(&inventory, &args.devices)?;
    let reports: Vec<VfioReport> = devices
        .iter()
        .map(|&device| {
            let facts = DeviceFacts::from_inventory(&fs, &inventory, device);
            let trace = match (sysfs_problems(&facts).is_empty(), facts.iommu_group) {
                (true, Some(group)) => {
                    passthru_linux::sys::probe_vfio(&root, device, group, !args.no_reset).ok()
                }
                _ => None,
            };
            interpret(&facts, trace.as_ref())
        })
        .collect();
    if global.json {
        output::print_json(&serde_json::json!({
            "schema": "passthru.verify/1",
            "devices": reports,
        }))?;
    } else {
        let mut out = anstream::stdout().lock();
        for report in &reports {
            print_report(&mut out, report);
        }
    }
    Ok(if reports.iter().all(|report| report.ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sizes as people read them (`256 MiB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 && value.is_multiple_of(1024) && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

fn print_report(out: &mut impl Write, report: &VfioReport) {
    let (verdict_style, verdict) = if report.ready {
        (style::GOOD, "ready for a VM")
    } else {
        (style::BAD, "not ready for a VM")
    };
    let _ = writeln!(
        out,
        "{}{}{}  {verdict_style}{verdict}{}",
        style::HEADING,
        report.device,
        style::HEADING.render_reset(),
        verdict_style.render_reset()
    );
    let mut facts = vec![format!(
        "driver {}",
        report.driver.as_deref().unwrap_or("none")
    )];
    if let Some(group) = report.iommu_group {
        facts.push(format!("IOMMU group {group}"));
    }
    if let Some(version) = report.api_version {
        facts.push(format!("VFIO API {version}"));
    }
    if let Some(model) = &report.iommu_model {
        facts.push(format!("{model} IOMMU"));
    }
    let missing = report
        .problems
        .first()
        .is_some_and(|problem| problem.code == "no-such-device");
    if !missing {
        let _ = writeln!(out, "  {}", facts.join(", "));
    }
    if !report.regions.is_empty() {
        let regions: Vec<String> = report
            .regions
            .iter()
            .map(|region| {
                let mut text = format!("{} {}", region.name, human_size(region.size));
                if region.mmap {
                    text.push_str(" (mmap)");
                }
                text
            })
            .collect();
        let _ = writeln!(out, "  regions: {}", regions.join(", "));
    }
    if !report.interrupts.is_empty() {
        let interrupts: Vec<String> = report
            .interrupts
            .iter()
            .map(|irq| format!("{} {}", irq.name, irq.count))
            .collect();
        let _ = writeln!(out, "  interrupts: {}", interrupts.join(", "));
    }
    let reset = match report.reset {
        ResetResult::NotTried => None,
        ResetResult::NotSupported => Some("not supported".to_owned()),
        ResetResult::Skipped => Some("skipped (--no-reset)".to_owned()),
        ResetResult::Done => Some("done".to_owned()),
        ResetResult::Failed(errno) => Some(format!("failed ({errno})")),
        ResetResult::HotReset => Some("done (bus reset)".to_owned()),
        ResetResult::HotResetFailed(errno) => Some(format!("bus reset failed ({errno})")),
    };
    if let Some(reset) = reset {
        let _ = writeln!(out, "  reset: {reset}");
    }
    for warning in &report.warnings {
        let _ = writeln!(
            out,
            "  {}warning:{} {warning}",
            style::WARN,
            style::WARN.render_reset()
        );
    }
    for problem in &report.problems {
        let _ = writeln!(
            out,
            "  {}problem:{} {}",
            style::BAD,
            style::BAD.render_reset(),
            problem.message
        );
        if !problem.help.is_empty() {
            let _ = writeln!(out, "    help: {}", problem.help);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_device_reads_as_in_the_documentation() {
        let trace: passthru_linux::vfio::ProbeTrace = serde_json::from_str(include_str!(
            "../../../passthru-linux/tests/data/vfio/martins3-vfio-host-test.json"
        ))
        .unwrap();
        let facts = DeviceFacts {
            device: "0000:02:00.0".parse().unwrap(),
            present: true,
            driver: Some("vfio-pci".into()),
            iommu_group: Some(16),
            iommu_active: true,
            group_members: Vec::new(),
            container_node: true,
            group_node: true,
        };
        let mut out = Vec::new();
        print_report(&mut out, &interpret(&facts, Some(&trace)));
        let text = String::from_utf8(out).unwrap();
        insta::assert_snapshot!(anstream::adapter::strip_str(&text).to_string(), @r"
        0000:02:00.0  ready for a VM
          driver vfio-pci, IOMMU group 16, VFIO API 0, type1v2 IOMMU
          regions: BAR0 16 KiB (mmap), BAR4 64 KiB (mmap), config 4 KiB
          interrupts: INTx 1, MSI 1, MSI-X 66, error 1, request 1
          reset: done
        ");
    }

    #[test]
    fn the_lab_gpu_reads_as_in_the_documentation() {
        let output: serde_json::Value = serde_json::from_str(include_str!(
            "../../../passthru-linux/tests/data/vfio/lab-q35-intel-iommu-gpu.json"
        ))
        .unwrap();
        let report: VfioReport = serde_json::from_value(output["devices"][0].clone()).unwrap();
        let mut out = Vec::new();
        print_report(&mut out, &report);
        let text = String::from_utf8(out).unwrap();
        insta::assert_snapshot!(anstream::adapter::strip_str(&text).to_string(), @r"
        0000:01:00.0  ready for a VM
          driver vfio-pci, IOMMU group 8, VFIO API 0, type1v2 IOMMU
          regions: BAR0 16 MiB (mmap), BAR2 4 KiB (mmap), config 256 B
          interrupts: request 1
          reset: done (bus reset)
          warning: reset by a bus reset, which resets 0000:01:00.1 too: give them to the same VM
        ");
    }

    #[test]
    fn sizes_read_like_lspci() {
        assert_eq!(human_size(0x4000), "16 KiB");
        assert_eq!(human_size(256 << 20), "256 MiB");
        assert_eq!(human_size(0x1100), "4352 B");
    }
}
