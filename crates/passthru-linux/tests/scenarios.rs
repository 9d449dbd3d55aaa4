//! The inventory reader and the checks over hand-built hosts made from real config captures,
//! read both from a real directory tree and from a snapshot.

// The trees need symbolic links.
#![cfg(unix)]

use passthru_core::hostfs::RealFs;
use passthru_core::pci::PciAddress;
use passthru_core::pci::config::CapabilityReadout;
use passthru_linux::checks::device::{VerdictStatus, device_verdict};
use passthru_linux::checks::group::group_viability;
use passthru_linux::checks::host::host_findings;
use passthru_linux::fake_sysfs::FakeHost;
use passthru_linux::fake_sysfs::scenarios::{self, Dumps};
use passthru_linux::inventory::{GroupMember, Inventory, ModuleState, read_inventory};
use passthru_linux::snapshot::{self, Snapshot, SnapshotFs};

fn scenario(name: &str) -> FakeHost {
    scenarios::build(name, &Dumps::repository()).expect("scenario builds from the committed dumps")
}

fn via_tree(host: &FakeHost) -> Inventory {
    let dir = tempfile::tempdir().unwrap();
    host.write_tree(dir.path()).unwrap();
    read_inventory(&RealFs::new(dir.path()))
}

fn via_snapshot(host: &FakeHost) -> Inventory {
    read_inventory(&SnapshotFs::new(&host.to_snapshot()))
}

fn address(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn codes(inventory: &Inventory, device: &str) -> Vec<String> {
    let device = inventory.device(address(device)).expect("device exists");
    device_verdict(inventory, device)
        .reasons
        .into_iter()
        .map(|reason| reason.code)
        .collect()
}

#[test]
fn tree_and_snapshot_read_the_same() {
    for name in ["desktop-gpu-shared-group", "sriov-nic", "vmd-nvme"] {
        let host = scenario(name);
        assert_eq!(via_tree(&host), via_snapshot(&host), "scenario {name}");
    }
}

#[test]
fn a_captured_snapshot_replays_exactly_after_a_trip_through_the_file_format() {
    for name in scenarios::NAMES {
        let dir = tempfile::tempdir().unwrap();
        scenario(name).write_tree(dir.path()).unwrap();
        let live = read_inventory(&RealFs::new(dir.path()));
        let captured = snapshot::capture(RealFs::new(dir.path()));
        let file = dir.path().join("host.snapshot.json.gz");
        captured.save(&file).unwrap();
        let replayed = read_inventory(&SnapshotFs::new(&Snapshot::load(&file).unwrap()));
        assert_eq!(live, replayed, "scenario {name}");
    }
}

#[test]
fn desktop_gpu_sharing_a_group_with_chipset_nics_is_blocked_with_reasons() {
    let inventory = via_tree(&scenario("desktop-gpu-shared-group"));
    let numbers: Vec<u32> = inventory.groups.iter().map(|group| group.number).collect();
    assert_eq!(
        numbers,
        [0, 1, 2, 4, 5, 7, 9, 12],
        "group numbers keep their gaps"
    );

    let gpu = inventory.device(address("0000:06:00.0")).unwrap();
    assert!(gpu.is_gpu());
    assert_eq!(gpu.boot_vga, Some(true));
    assert_eq!(gpu.driver.as_deref(), Some("nouveau"));
    assert_eq!(gpu.parent, Some(address("0000:00:1c.2")));
    let verdict = device_verdict(&inventory, gpu);
    assert_eq!(verdict.status, VerdictStatus::Blocked);
    let shared: Vec<&str> = verdict
        .reasons
        .iter()
        .filter(|reason| reason.code == "group-shared")
        .map(|reason| reason.message.as_str())
        .collect();
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert!(
        shared[0].contains("0000:07:00.0 (net, bound to r8169)")
            && shared[0].contains("0000:08:00.0"),
        "{shared:?}"
    );
    let gpu_codes = codes(&inventory, "0000:06:00.0");
    assert!(gpu_codes.contains(&"boot-vga".to_owned()));
    assert!(gpu_codes.contains(&"companion-function".to_owned()));
    let resources = gpu.resources.as_ref().unwrap();
    assert_eq!(resources.mmio_total(), (16 + 256 + 32) << 20);
    assert_eq!(resources.mmio_64bit_prefetchable(), (256 + 32) << 20);
    assert_eq!(resources.rom_size, Some(512 << 10));

    let audio_codes = codes(&inventory, "0000:06:00.1");
    assert!(audio_codes.contains(&"companion-function".to_owned()));

    let group9 = inventory.group(9).unwrap();
    let viability = group_viability(&inventory, group9);
    assert!(!viability.viable);
    let blockers: Vec<&str> = viability
        .blockers()
        .map(|member| member.name.as_str())
        .collect();
    assert_eq!(
        blockers,
        [
            "0000:06:00.0",
            "0000:06:00.1",
            "0000:07:00.0",
            "0000:08:00.0"
        ]
    );

    // The isolated GPU on vfio-pci: its group is viable and it is ready.
    let nano = inventory.device(address("0000:01:00.0")).unwrap();
    assert!(group_viability(&inventory, inventory.group(1).unwrap()).viable);
    assert_eq!(
        device_verdict(&inventory, nano).status,
        VerdictStatus::Assignable
    );
    assert_eq!(nano.reset.methods.as_deref(), Some(&["bus".to_owned()][..]));

    // The non-PCI member of group 12 is there, with its driver, and blocks the group.
    let group12 = inventory.group(12).unwrap();
    assert!(group12.members.iter().any(|member| matches!(
        member,
        GroupMember::Other { name, driver: Some(driver), .. } if name == "INT33C3:00" && driver == "i2c_designware"
    )));
    assert!(!group_viability(&inventory, group12).viable);

    let host = host_findings(&inventory);
    assert_eq!(host[0].code, "iommu-active");
    assert!(
        inventory
            .host
            .modules
            .iter()
            .all(|module| module.state == ModuleState::Loaded)
    );
}

#[test]
fn sriov_pf_lists_its_vfs_and_vfs_decode_with_their_real_ids() {
    let inventory = via_snapshot(&scenario("sriov-nic"));
    let pf = inventory.device(address("0000:01:00.0")).unwrap();
    let sriov = pf.sriov.as_ref().unwrap();
    assert_eq!(sriov.total_vfs, Some(8));
    assert_eq!(sriov.num_vfs, Some(4));
    assert_eq!(sriov.vf_device, Some(0x10ca));
    assert_eq!(sriov.virtfns.len(), 4);
    assert!(codes(&inventory, "0000:01:00.0").contains(&"sriov-pf".to_owned()));
    assert_eq!(pf.interrupts.msix, 10);

    let vf = inventory.device(address("0000:02:10.0")).unwrap();
    assert_eq!(vf.physfn, Some(pf.address));
    assert_eq!((vf.vendor, vf.device), (Some(0x8086), Some(0x10ca)));
    match &vf.config {
        CapabilityReadout::Decoded(capabilities) => assert_eq!(capabilities.header.vendor, 0x8086),
        other => panic!("VF config should decode, got {other:?}"),
    }
    assert_eq!(
        device_verdict(&inventory, vf).status,
        VerdictStatus::Assignable
    );
    let unbound = inventory.device(address("0000:02:10.6")).unwrap();
    assert_eq!(unbound.driver, None);
}

#[test]
fn vmd_domain_devices_are_read_and_explained() {
    let inventory = via_tree(&scenario("vmd-nvme"));
    let nvme = inventory
        .device(address("10000:e1:00.0"))
        .expect("five-digit domain is read");
    assert_eq!(nvme.parent, Some(address("10000:e0:1d.0")));
    assert!(nvme.upstream.contains(&address("0000:00:0e.0")));
    let verdict = device_verdict(&inventory, nvme);
    assert_eq!(verdict.status, VerdictStatus::Blocked);
    assert_eq!(verdict.reasons[0].code, "vmd-domain");
    assert!(verdict.reasons[0].message.contains("0000:00:0e.0"));
    let outside = inventory.device(address("0000:02:00.0")).unwrap();
    assert_eq!(
        device_verdict(&inventory, outside).status,
        VerdictStatus::Assignable
    );
}

#[test]
fn malformed_sysfs_gives_warnings_and_the_rest_of_the_report() {
    for inventory in [
        via_snapshot(&scenario("malformed")),
        via_tree(&scenario("malformed")),
    ] {
        assert_eq!(inventory.devices.len(), 5);
        let gpu = inventory.device(address("0000:00:02.0")).unwrap();
        assert_eq!(
            gpu.class.map(|class| class.0),
            Some(0x030000),
            "class taken from config space"
        );
        assert!(
            gpu.warnings
                .iter()
                .any(|warning| warning.starts_with("class: `0xzzzz`"))
        );

        let nic = inventory.device(address("0000:00:03.0")).unwrap();
        assert_eq!(nic.resources, None);
        assert!(
            nic.warnings
                .iter()
                .any(|warning| warning.contains("line 2 of `resource`")),
            "{:?}",
            nic.warnings
        );

        let nvme = inventory.device(address("0000:00:04.0")).unwrap();
        assert!(matches!(nvme.config, CapabilityReadout::Unavailable { .. }));
        assert_eq!(nvme.driver.as_deref(), Some("ghost_nvme"));
        assert!(
            nvme.warnings
                .iter()
                .any(|warning| warning.contains("dangling"))
        );
        // Readable enough to judge: nothing blocks, but the unknowns are cautions.
        assert_eq!(
            device_verdict(&inventory, nvme).status,
            VerdictStatus::Caution
        );

        assert_eq!(
            nvme.vendor, None,
            "empty vendor file and no config: unknown"
        );
        assert_eq!(nvme.device, Some(0xa826));
        assert!(
            nvme.warnings.contains(&"vendor: empty".to_owned()),
            "{:?}",
            nvme.warnings
        );
        let sas = inventory.device(address("0000:00:05.0")).unwrap();
        assert_eq!(sas.vendor, Some(0x1000));
        assert!(
            sas.warnings
                .iter()
                .any(|warning| warning.contains("group 99"))
        );

        assert!(
            inventory
                .warnings
                .iter()
                .any(|warning| warning.contains("not-a-device"))
        );
        assert!(
            inventory
                .warnings
                .iter()
                .any(|warning| warning.contains("bogus"))
        );
        let group2 = inventory.group(2).unwrap();
        assert!(
            group2
                .warnings
                .iter()
                .any(|warning| warning.contains("0000:00:09.0"))
        );
        let group3 = inventory.group(3).unwrap();
        assert!(
            group3
                .warnings
                .iter()
                .any(|warning| warning.contains("MSFT0101:00"))
        );
        assert!(
            inventory
                .group(1)
                .unwrap()
                .warnings
                .iter()
                .any(|warning| warning.contains("reserved_regions line 2"))
        );

        let codes: Vec<String> = host_findings(&inventory)
            .into_iter()
            .map(|finding| finding.code)
            .collect();
        for expected in [
            "module-missing",
            "amd-iommu-on-useless",
            "acs-override",
            "iommu-pt",
        ] {
            assert!(
                codes.contains(&expected.to_owned()),
                "{expected} in {codes:?}"
            );
        }
    }
}

#[test]
fn unreadable_config_replays_with_the_recorded_error_text() {
    let inventory = via_snapshot(&scenario("malformed"));
    let nvme = inventory.device(address("0000:00:04.0")).unwrap();
    assert!(
        nvme.warnings
            .contains(&"config: could not be read: Permission denied (os error 13)".to_owned()),
        "{:?}",
        nvme.warnings
    );
}

#[test]
fn config_limited_to_64_bytes_says_capabilities_need_root() {
    let mut host = scenario("sriov-nic");
    let pf_config = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/config";
    let snapshot = host.to_snapshot();
    let full = snapshot
        .entries
        .iter()
        .find(|entry| entry.path() == pf_config)
        .cloned()
        .unwrap();
    let snapshot::Entry::File {
        base64: Some(_), ..
    } = &full
    else {
        panic!("config is binary");
    };
    let bytes = {
        let inventory = via_snapshot(&host);
        match &inventory.device(address("0000:01:00.0")).unwrap().config {
            CapabilityReadout::Decoded(capabilities) => capabilities.bytes_read,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(bytes, 4096);
    // What an unprivileged read returns: the first 64 bytes.
    let dir = tempfile::tempdir().unwrap();
    host.write_tree(dir.path()).unwrap();
    let real = dir.path().join(pf_config.trim_start_matches('/'));
    let header = fs_err::read(&real).unwrap()[..64].to_vec();
    host.file(pf_config, header);
    let inventory = via_snapshot(&host);
    assert!(matches!(
        inventory.device(address("0000:01:00.0")).unwrap().config,
        CapabilityReadout::NeedsRoot { bytes_read: 64, .. }
    ));
    assert!(inventory.capabilities_need_root());
    assert!(
        host_findings(&inventory)
            .iter()
            .any(|finding| finding.code == "capabilities-need-root")
    );
}
