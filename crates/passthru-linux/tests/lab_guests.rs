//! The VM lab's captures of real guests (`fixtures/lab/TOPOLOGY/passthru-runs/`): Debian's 6.1
//! kernel under QEMU with an emulated Intel IOMMU, an AMD IOMMU, or none, captured by `passthru
//! snapshot` inside the guest as root and as the unprivileged user nobody. The lab checks on
//! every run that they still replay to the guest's own survey (`lab/scenarios/passthru-runs.host`).
//!
//! These tests read them against what the same kernel showed in the shell
//! (`fixtures/lab/TOPOLOGY/kernel-facts/pci-devices.tsv`, also re-checked on every lab run) and
//! against rules of the kernel's code, so the reader stays true to a real kernel's sysfs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use passthru_core::pci::config::CapabilityReadout;
use passthru_linux::inventory::{DeviceRole, Inventory, read_inventory};
use passthru_linux::snapshot::{Snapshot, SnapshotFs};

const TOPOLOGIES: [&str; 3] = ["q35-intel-iommu", "q35-amd-iommu", "q35-no-iommu"];

fn lab_fixtures(topology: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/lab")
        .join(topology)
}

fn inventory(topology: &str, capture: &str) -> Inventory {
    let file = lab_fixtures(topology).join("passthru-runs").join(capture);
    let snapshot = Snapshot::load(&file).unwrap_or_else(|error| panic!("{error}"));
    read_inventory(&SnapshotFs::new(&snapshot))
}

/// One line of the guest's shell table: what sysfs showed, `-` where absent.
struct KernelRow {
    id: String,
    class: String,
    driver: String,
    boot_vga: String,
    reset_method: String,
    group: String,
    members: String,
}

fn kernel_table(topology: &str) -> BTreeMap<String, KernelRow> {
    let file = lab_fixtures(topology).join("kernel-facts/pci-devices.tsv");
    let text = fs_err::read_to_string(file).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            let row = KernelRow {
                id: columns[1].to_owned(),
                class: columns[2].to_owned(),
                driver: columns[3].to_owned(),
                boot_vga: columns[4].to_owned(),
                reset_method: columns[5].to_owned(),
                group: columns[6].to_owned(),
                members: columns[7].to_owned(),
            };
            (columns[0].to_owned(), row)
        })
        .collect()
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

#[test]
fn every_capture_shows_what_the_kernel_showed_in_the_shell() {
    for topology in TOPOLOGIES {
        let table = kernel_table(topology);
        for capture in ["snapshot.json", "snapshot-nonroot.json"] {
            let inventory = inventory(topology, capture);
            let context = format!("{topology}/{capture}");
            assert!(
                inventory.warnings.is_empty(),
                "{context}: {:?}",
                inventory.warnings
            );
            let addresses: Vec<String> = inventory
                .devices
                .iter()
                .map(|d| d.address.to_string())
                .collect();
            assert_eq!(
                addresses,
                table.keys().cloned().collect::<Vec<_>>(),
                "{context}"
            );
            for device in &inventory.devices {
                let row = &table[&device.address.to_string()];
                let at = format!("{context} {}", device.address);
                assert!(device.warnings.is_empty(), "{at}: {:?}", device.warnings);
                let id = format!(
                    "{:04x}:{:04x}",
                    device.vendor.unwrap(),
                    device.device.unwrap()
                );
                assert_eq!(id, row.id, "{at}");
                assert_eq!(
                    format!("0x{:06x}", device.class.unwrap().0),
                    row.class,
                    "{at}"
                );
                assert_eq!(or_dash(device.driver.clone()), row.driver, "{at}");
                let boot_vga = device
                    .boot_vga
                    .map(|on| if on { "1" } else { "0" }.to_owned());
                assert_eq!(or_dash(boot_vga), row.boot_vga, "{at}");
                let methods = device.reset.methods.as_ref().map(|m| m.join(" "));
                assert_eq!(or_dash(methods), row.reset_method, "{at}");
                assert_eq!(
                    or_dash(device.iommu_group.map(|n| n.to_string())),
                    row.group,
                    "{at}"
                );
                let members = device.iommu_group.map(|number| {
                    let group = inventory.group(number).unwrap();
                    let names: Vec<String> = group.pci_members().map(|a| a.to_string()).collect();
                    names.join(",")
                });
                assert_eq!(or_dash(members), row.members, "{at}");
            }
        }
    }
}

/// The kernel lists `flr` in `reset_method` exactly when the PCI Express capability advertises
/// Function Level Reset, and `pm` exactly when there is a Power Management capability without
/// No_Soft_Reset (drivers/pci/pci.c: `pcie_reset_flr()`, `pci_pm_reset()`; no QEMU device has
/// a quirk that disables either). The config-space decoder must agree with the kernel on
/// every captured device.
#[test]
fn decoded_capabilities_agree_with_the_kernels_reset_methods() {
    let mut compared = 0;
    for topology in TOPOLOGIES {
        let inventory = inventory(topology, "snapshot.json");
        for device in &inventory.devices {
            let at = format!("{topology} {}", device.address);
            let CapabilityReadout::Decoded(caps) = &device.config else {
                panic!("{at}: a capture made as root must have decoded capabilities");
            };
            let methods = device.reset.methods.clone().unwrap_or_default();
            let flr = caps.pcie.as_ref().is_some_and(|pcie| pcie.flr);
            assert_eq!(flr, methods.iter().any(|m| m == "flr"), "{at}: FLR");
            let pm = caps
                .power_management
                .as_ref()
                .is_some_and(|pm| !pm.no_soft_reset);
            assert_eq!(pm, methods.iter().any(|m| m == "pm"), "{at}: PM reset");
            compared += 1;
        }
    }
    assert!(compared > 40);
}

#[test]
fn unprivileged_captures_hold_the_header_only() {
    for topology in TOPOLOGIES {
        let inventory = inventory(topology, "snapshot-nonroot.json");
        assert!(inventory.capabilities_need_root(), "{topology}");
        for device in &inventory.devices {
            assert!(
                matches!(
                    device.config,
                    CapabilityReadout::NeedsRoot {
                        header: Some(_),
                        bytes_read: 64
                    }
                ),
                "{topology} {}: {:?}",
                device.address,
                device.config
            );
        }
        let root = self::inventory(topology, "snapshot.json");
        assert!(!root.capabilities_need_root(), "{topology}");
    }
}

#[test]
fn each_topology_shows_its_iommu() {
    let intel = inventory("q35-intel-iommu", "snapshot.json");
    assert_eq!(intel.host.iommu_units, ["dmar0"]);
    assert_eq!(intel.groups.len(), 14);
    let amd = inventory("q35-amd-iommu", "snapshot.json");
    assert_eq!(amd.host.iommu_units, ["ivhd0"]);
    // The AMD IOMMU is itself a PCI function (class 0x0806), in no group.
    let iommu_function = amd
        .devices
        .iter()
        .find(|d| d.address.to_string() == "0000:00:01.0");
    let iommu_function = iommu_function.unwrap();
    assert_eq!(iommu_function.class.unwrap().0, 0x080600);
    assert_eq!(iommu_function.iommu_group, None);
    let none = inventory("q35-no-iommu", "snapshot.json");
    assert!(none.host.iommu_units.is_empty() && none.groups.is_empty());
    for inventory in [&intel, &amd, &none] {
        let bridges = inventory
            .devices
            .iter()
            .filter(|d| d.role == DeviceRole::Bridge);
        assert!(bridges.count() >= 2);
    }
}
