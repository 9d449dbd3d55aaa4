//! The VM lab's `passthru --json verify` reports (`fixtures/lab/TOPOLOGY/assign-release/`): the
//! GPU-like device and its audio function after `assign`, probed through the real VFIO ioctls of
//! Debian's 6.1 kernel under QEMU with an emulated Intel or AMD IOMMU. Each report carries the
//! raw answers of the probe (`trace`); reading them again must give the same verdict, so the
//! interpretation of VFIO answers stays true to what a real kernel says (refresh with
//! `lab/lab run --update-fixtures`, see `docs/vm-lab.md`).

use std::path::PathBuf;

use passthru_core::pci::PciAddress;
use passthru_linux::vfio::{DeviceFacts, GroupMember, ResetResult, VfioReport, interpret};

const TOPOLOGIES: [&str; 2] = ["q35-intel-iommu", "q35-amd-iommu"];
const REPORTS: [&str; 2] = ["verify-gpu.json", "verify-audio.json"];

#[derive(serde::Deserialize)]
struct VerifyOutput {
    schema: String,
    devices: Vec<VfioReport>,
}

fn recorded(topology: &str, file: &str) -> VfioReport {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/lab")
        .join(topology)
        .join("assign-release")
        .join(file);
    let text = fs_err::read_to_string(&path).unwrap();
    let output: VerifyOutput =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert_eq!(output.schema, "passthru.verify/1", "{}", path.display());
    let [report]: [VfioReport; 1] = output
        .devices
        .try_into()
        .unwrap_or_else(|_| panic!("{}: expected one device", path.display()));
    report
}

/// What sysfs showed in the guest when the probe ran: both functions of the group on vfio-pci,
/// the VFIO nodes present.
fn facts_of(report: &VfioReport) -> DeviceFacts {
    let device = report.device;
    let sibling = PciAddress::new(
        device.domain,
        device.bus,
        device.device,
        1 - device.function,
    )
    .unwrap()
    .to_string();
    DeviceFacts {
        device: report.device,
        present: true,
        driver: Some("vfio-pci".into()),
        iommu_group: report.iommu_group,
        iommu_active: true,
        group_members: vec![GroupMember {
            name: sibling,
            driver: Some("vfio-pci".into()),
            blocking: false,
        }],
        container_node: true,
        group_node: true,
    }
}

#[test]
fn real_kernel_probe_traces_read_again_to_the_recorded_verdicts() {
    for topology in TOPOLOGIES {
        for file in REPORTS {
            let report = recorded(topology, file);
            let trace = report.trace.as_ref().expect("the report carries its trace");
            let again = interpret(&facts_of(&report), Some(trace));
            assert_eq!(again, report, "{topology}/{file}");
            assert!(report.ready, "{topology}/{file}: {:?}", report.problems);
            assert_eq!(report.driver.as_deref(), Some("vfio-pci"));
            assert_eq!(report.iommu_model.as_deref(), Some("type1v2"));
            // QEMU's emulated functions have no FLR: the kernel offers the bus reset of the
            // slot, which takes the sibling function along.
            assert_eq!(report.reset, ResetResult::HotReset, "{topology}/{file}");
            assert!(
                report
                    .warnings
                    .iter()
                    .any(|warning| warning.contains("bus reset")),
                "{topology}/{file}: {:?}",
                report.warnings
            );
            assert_eq!(
                report.regions.first().map(|region| region.name.as_str()),
                Some("BAR0"),
                "{topology}/{file}"
            );
            assert!(
                report.regions.iter().any(|region| region.name == "config"),
                "{topology}/{file}"
            );
        }
    }
}
