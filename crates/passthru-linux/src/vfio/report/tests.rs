use super::*;
use crate::testing::{FakeKernel, lab};
use crate::vfio::{DeviceFacts, ProbeTrace};

const RECORDED: &str = include_str!("../../../tests/data/vfio/martins3-vfio-host-test.json");

fn recorded() -> ProbeTrace {
    serde_json::from_str(RECORDED).unwrap()
}

fn bound_facts() -> DeviceFacts {
    DeviceFacts {
        device: "0000:02:00.0".parse().unwrap(),
        present: true,
        driver: Some("vfio-pci".into()),
        iommu_group: Some(16),
        iommu_active: true,
        group_members: Vec::new(),
        container_node: true,
        group_node: true,
    }
}

fn codes(report: &VfioReport) -> Vec<&str> {
    report
        .problems
        .iter()
        .map(|problem| problem.code.as_str())
        .collect()
}

#[test]
fn a_recorded_healthy_device_is_ready_with_its_regions_and_interrupts() {
    let report = interpret(&bound_facts(), Some(&recorded()));
    assert!(report.ready, "{:?}", report.problems);
    assert_eq!(report.api_version, Some(0));
    assert_eq!(report.iommu_model.as_deref(), Some("type1v2"));
    assert_eq!(report.reset, ResetResult::Done);
    let regions: Vec<(&str, u64, bool)> = report
        .regions
        .iter()
        .map(|region| (region.name.as_str(), region.size, region.mmap))
        .collect();
    assert_eq!(
        regions,
        [
            ("BAR0", 0x4000, true),
            ("BAR4", 0x10000, true),
            ("config", 0x1000, false)
        ]
    );
    let interrupts: Vec<(&str, u32)> = report
        .interrupts
        .iter()
        .map(|irq| (irq.name.as_str(), irq.count))
        .collect();
    assert_eq!(
        interrupts,
        [
            ("INTx", 1),
            ("MSI", 1),
            ("MSI-X", 66),
            ("error", 1),
            ("request", 1)
        ]
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn the_report_serializes_with_stable_names() {
    let report = interpret(&bound_facts(), Some(&recorded()));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["reset"], serde_json::json!({"result": "done"}));
    assert_eq!(json["trace"]["open_group"], serde_json::json!({"ok": null}));
    let mut failed = recorded();
    failed.reset = Some(Outcome::Failed(Errno::EAGAIN));
    let json = serde_json::to_value(interpret(&bound_facts(), Some(&failed))).unwrap();
    assert_eq!(
        json["reset"],
        serde_json::json!({"result": "failed", "error": "EAGAIN"})
    );
}

/// The recorded trace cut at `stage` with `errno`, as `probe` stops at the first failure.
fn failing_at(stage: &str, errno: Errno) -> ProbeTrace {
    let mut trace = recorded();
    let failed = Some(Outcome::Failed(errno));
    let later = |trace: &mut ProbeTrace, from: usize| {
        let order = [
            "open_group",
            "set_container",
            "set_iommu",
            "device_fd",
            "device_info",
        ];
        for name in &order[from..] {
            match *name {
                "open_group" => trace.open_group = None,
                "set_container" => trace.set_container = None,
                "set_iommu" => trace.set_iommu = None,
                "device_fd" => trace.device_fd = None,
                _ => trace.device_info = None,
            }
        }
        if from == 0 {
            trace.group_flags = None;
        }
        trace.regions.clear();
        trace.irqs.clear();
        trace.reset = None;
    };
    match stage {
        "open_group" => {
            later(&mut trace, 0);
            trace.open_group = failed;
        }
        "set_container" => {
            later(&mut trace, 1);
            trace.set_container = failed;
        }
        "device_fd" => {
            later(&mut trace, 3);
            trace.device_fd = failed;
        }
        other => panic!("no stage {other}"),
    }
    trace
}

#[test]
fn ebusy_on_the_group_means_another_process_holds_it() {
    let report = interpret(
        &bound_facts(),
        Some(&failing_at("open_group", Errno::EBUSY)),
    );
    assert!(!report.ready);
    assert_eq!(codes(&report), ["group-busy"]);
    assert!(report.problems[0].help.contains("running VM"));
}

#[test]
fn eperm_when_attaching_means_a_host_driver_in_the_group() {
    let report = interpret(
        &bound_facts(),
        Some(&failing_at("set_container", Errno::EPERM)),
    );
    assert_eq!(codes(&report), ["group-not-viable"]);
}

#[test]
fn permission_and_device_busy_are_told_apart() {
    let report = interpret(
        &bound_facts(),
        Some(&failing_at("open_group", Errno::EACCES)),
    );
    assert_eq!(codes(&report), ["permission-denied"]);
    let report = interpret(&bound_facts(), Some(&failing_at("device_fd", Errno::EBUSY)));
    assert_eq!(codes(&report), ["device-busy"]);
}

#[test]
fn the_kernel_saying_not_viable_stops_the_probe() {
    let mut trace = failing_at("set_container", Errno::EPERM);
    trace.group_flags = Some(Outcome::Ok(0));
    trace.set_container = None;
    let report = interpret(&bound_facts(), Some(&trace));
    assert_eq!(codes(&report), ["group-not-viable"]);
    assert!(report.problems[0].message.contains("group 16"));
}

#[test]
fn a_file_that_is_not_a_vfio_container_is_named() {
    let trace = ProbeTrace {
        open_container: Some(Outcome::Ok(())),
        api_version: Some(Outcome::Failed(Errno::ENOTTY)),
        ..ProbeTrace::default()
    };
    let report = interpret(&bound_facts(), Some(&trace));
    assert_eq!(codes(&report), ["not-vfio"]);
    assert!(report.problems[0].message.contains("ENOTTY"));
}

#[test]
fn no_type1_iommu_is_a_problem() {
    let trace = ProbeTrace {
        open_container: Some(Outcome::Ok(())),
        api_version: Some(Outcome::Ok(0)),
        type1v2: Some(Outcome::Ok(0)),
        type1: Some(Outcome::Ok(0)),
        ..ProbeTrace::default()
    };
    assert_eq!(
        codes(&interpret(&bound_facts(), Some(&trace))),
        ["no-type1-iommu"]
    );
}

#[test]
fn a_failed_reset_is_a_problem_and_no_reset_a_warning() {
    let mut trace = recorded();
    trace.reset = Some(Outcome::Failed(Errno::EAGAIN));
    let report = interpret(&bound_facts(), Some(&trace));
    assert_eq!(codes(&report), ["reset-failed"]);
    assert_eq!(report.reset, ResetResult::Failed(Errno::EAGAIN));

    let mut trace = recorded();
    trace.reset = None;
    if let Some(Outcome::Ok(info)) = trace.device_info.as_mut() {
        info.flags = uapi::DEVICE_FLAGS_PCI;
    }
    // No reset of its own, and no bus reset either (the kernel answers ENODEV).
    trace.hot_reset_info = Some(Outcome::Failed(Errno::ENODEV));
    let report = interpret(&bound_facts(), Some(&trace));
    assert!(report.ready);
    assert_eq!(report.reset, ResetResult::NotSupported);
    assert!(report.warnings[0].contains("cannot be reset"));
}

#[test]
fn a_bus_reset_that_would_reach_other_groups_is_not_tried_and_says_why() {
    let mut trace = recorded();
    trace.reset = None;
    if let Some(Outcome::Ok(info)) = trace.device_info.as_mut() {
        info.flags = uapi::DEVICE_FLAGS_PCI;
    }
    trace.hot_reset_info = Some(Outcome::Ok(vec![
        crate::vfio::RawDependentDevice {
            group_id: 16,
            segment: 0,
            bus: 2,
            devfn: 0,
        },
        crate::vfio::RawDependentDevice {
            group_id: 17,
            segment: 0,
            bus: 2,
            devfn: 1 << 3,
        },
    ]));
    let report = interpret(&bound_facts(), Some(&trace));
    assert!(report.ready);
    assert_eq!(report.reset, ResetResult::NotSupported);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("would also reset 0000:02:01.0 (group 17)")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn intx_only_devices_get_a_warning() {
    let mut trace = recorded();
    for irq in &mut trace.irqs {
        if let Outcome::Ok(info) = irq
            && info.index != uapi::PCI_INTX_IRQ_INDEX
        {
            info.count = 0;
        }
    }
    let report = interpret(&bound_facts(), Some(&trace));
    assert!(report.ready);
    assert!(
        report.warnings.iter().any(|w| w.contains("only INTx")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn sysfs_facts_explain_before_any_ioctl() {
    let kernel = FakeKernel::gpu_with_audio();
    let inventory = crate::inventory::read_inventory(kernel.tree());
    let facts = DeviceFacts::from_inventory(kernel.tree(), &inventory, lab::GPU.parse().unwrap());
    assert_eq!(facts.iommu_group, Some(3));
    assert_eq!(facts.group_members.len(), 1);
    assert!(facts.group_members[0].blocking);
    let report = interpret(&facts, None);
    assert_eq!(codes(&report), ["not-bound-to-vfio", "group-not-viable"]);
    assert_eq!(
        report.problems[0].message,
        "0000:01:00.0 is bound to bochs-drm, not to vfio-pci"
    );
    assert_eq!(
        report.problems[1].message,
        "IOMMU group 3 is not viable: 0000:01:00.1 (bound to snd_hda_intel) is still with a \
         host driver"
    );
}

#[test]
fn no_iommu_and_missing_devices_are_told_apart() {
    let mut facts = bound_facts();
    facts.iommu_group = None;
    facts.iommu_active = false;
    assert_eq!(codes(&interpret(&facts, None)), ["no-iommu"]);
    facts.iommu_active = true;
    assert_eq!(codes(&interpret(&facts, None)), ["no-iommu-group"]);
    facts.present = false;
    assert_eq!(codes(&interpret(&facts, None)), ["no-such-device"]);
}

#[test]
fn a_bound_group_without_its_node_is_reported() {
    let mut facts = bound_facts();
    facts.group_node = false;
    assert_eq!(codes(&interpret(&facts, None)), ["no-group-node"]);
    facts.container_node = false;
    assert_eq!(codes(&interpret(&facts, None)), ["vfio-not-loaded"]);
}

/// `passthru --json verify` output recorded in the VM lab's guest (see the data README).
const LAB_REPORTS: [(&str, &str); 4] = [
    (
        "q35-intel-iommu gpu",
        include_str!("../../../tests/data/vfio/lab-q35-intel-iommu-gpu.json"),
    ),
    (
        "q35-intel-iommu audio",
        include_str!("../../../tests/data/vfio/lab-q35-intel-iommu-audio.json"),
    ),
    (
        "q35-amd-iommu gpu",
        include_str!("../../../tests/data/vfio/lab-q35-amd-iommu-gpu.json"),
    ),
    (
        "q35-amd-iommu audio",
        include_str!("../../../tests/data/vfio/lab-q35-amd-iommu-audio.json"),
    ),
];

/// The facts the guest had: the device and its sibling function both on vfio-pci in one
/// group, the VFIO nodes present.
fn lab_facts(report: &VfioReport) -> DeviceFacts {
    let sibling = if report.device.function == 0 { 1 } else { 0 };
    let sibling = passthru_core::pci::PciAddress::new(0, report.device.bus, 0, sibling).unwrap();
    DeviceFacts {
        device: report.device,
        present: true,
        driver: report.driver.clone(),
        iommu_group: report.iommu_group,
        iommu_active: true,
        group_members: vec![crate::vfio::GroupMember {
            name: sibling.to_string(),
            driver: Some("vfio-pci".into()),
            blocking: false,
        }],
        container_node: true,
        group_node: true,
    }
}

#[test]
fn the_lab_traces_read_on_the_host_exactly_as_the_guest_read_them() {
    for (name, text) in LAB_REPORTS {
        let output: serde_json::Value = serde_json::from_str(text).unwrap();
        let guest: VfioReport = serde_json::from_value(output["devices"][0].clone()).unwrap();
        let trace = guest.trace.clone().expect("a recorded trace");
        let host = interpret(&lab_facts(&guest), Some(&trace));
        assert_eq!(host, guest, "{name}");
    }
}

#[test]
fn the_lab_gpu_is_ready_and_was_reset_by_a_bus_reset() {
    let output: serde_json::Value = serde_json::from_str(LAB_REPORTS[0].1).unwrap();
    let guest: VfioReport = serde_json::from_value(output["devices"][0].clone()).unwrap();
    let trace = guest.trace.unwrap();
    assert_eq!(
        trace.reset, None,
        "no VFIO_DEVICE_RESET: the device has no reset of its own"
    );
    let Some(Outcome::Ok(dependents)) = &trace.hot_reset_info else {
        panic!("no hot reset info: {trace:?}");
    };
    let addresses: Vec<String> = dependents
        .iter()
        .filter_map(|dependent| dependent.address())
        .map(|address| address.to_string())
        .collect();
    assert_eq!(addresses, ["0000:01:00.0", "0000:01:00.1"]);
    assert_eq!(trace.hot_reset, Some(Outcome::Ok(())));
    let report = interpret(&lab_facts(&guest_report(LAB_REPORTS[0].1)), Some(&trace));
    assert!(report.ready);
    assert_eq!(report.reset, ResetResult::HotReset);
    let regions: Vec<(&str, u64)> = report
        .regions
        .iter()
        .map(|region| (region.name.as_str(), region.size))
        .collect();
    assert_eq!(
        regions,
        [("BAR0", 16 << 20), ("BAR2", 4096), ("config", 256)]
    );
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.contains("could not be read") || w.contains("INTx")),
        "{:?}",
        report.warnings
    );
}

fn guest_report(text: &str) -> VfioReport {
    let output: serde_json::Value = serde_json::from_str(text).unwrap();
    serde_json::from_value(output["devices"][0].clone()).unwrap()
}
