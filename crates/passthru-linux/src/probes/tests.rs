use std::path::Path;

use passthru_core::pci::PciAddress;
use proptest::prelude::*;

use super::*;
use crate::testing::MemTree;

fn address(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn kinds(findings: &[Finding]) -> Vec<(FindingKind, Severity)> {
    findings
        .iter()
        .map(|finding| (finding.kind, finding.severity))
        .collect()
}

const DATA: &str = "tests/data";

fn data(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(DATA).join(path);
    fs_err::read_to_string(full).unwrap()
}

/// A PCI device directory reachable through `/sys/bus/pci/devices`.
fn pci_device(tree: &mut MemTree, real: &str, class: &str) {
    let name = Path::new(real)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    tree.file(format!("{real}/class"), format!("{class}\n"));
    let relative = format!("../../..{}", real.trim_start_matches("/sys"));
    tree.symlink(format!("/sys/bus/pci/devices/{name}"), relative);
}

/// This development VM as captured (see tests/data/host-debian12-vm/README.md).
fn this_vm() -> MemTree {
    let mut tree = MemTree::new();
    for (file, path) in [
        ("mountinfo", "/proc/self/mountinfo"),
        ("route", "/proc/net/route"),
        ("ipv6_route", "/proc/net/ipv6_route"),
        ("iomem", "/proc/iomem"),
        ("swaps", "/proc/swaps"),
    ] {
        tree.file(path, data(&format!("host-debian12-vm/{file}")));
    }
    for line in data("host-debian12-vm/links").lines() {
        let (link, target) = line.split_once(" -> ").unwrap();
        tree.symlink(link, target);
    }
    tree.dir("/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda");
    tree.dir("/sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0");
    tree.dir("/sys/devices/virtual/net/lo");
    pci_device(
        &mut tree,
        "/sys/devices/pci0000:00/0000:00:02.0",
        "0x010000",
    );
    pci_device(
        &mut tree,
        "/sys/devices/pci0000:00/0000:00:03.0",
        "0x020000",
    );
    pci_device(
        &mut tree,
        "/sys/devices/pci0000:00/0000:00:05.0",
        "0x00ff00",
    );
    tree.dir("/sys/class/iommu");
    tree
}

#[test]
fn this_vm_the_root_disk_is_blocked_and_the_nic_needs_force() {
    let tree = this_vm();
    let probes = RefusalProbes::read(&tree);
    let disk = probes.check(&tree, address("0000:00:02.0"));
    assert_eq!(
        kinds(&disk),
        [
            (FindingKind::NoIommu, Severity::Blocked),
            (FindingKind::RootFilesystem, Severity::Blocked),
        ]
    );
    assert!(
        disk[1].message.contains("root filesystem (mounted: /)"),
        "{}",
        disk[1].message
    );
    assert!(!disk[1].force_overrides());
    let nic = probes.check(&tree, address("0000:00:03.0"));
    assert_eq!(
        kinds(&nic),
        [
            (FindingKind::NoIommu, Severity::Blocked),
            (FindingKind::DefaultRoute, Severity::NeedsForce),
        ]
    );
    assert_eq!(
        nic[1].message,
        "0000:00:03.0 carries the host's default route (interface eth0)"
    );
    let other = probes.check(&tree, address("0000:00:05.0"));
    assert_eq!(kinds(&other), [(FindingKind::NoIommu, Severity::Blocked)]);
}

#[test]
fn real_routing_tables_name_their_default_interfaces() {
    assert_eq!(
        parse_ipv4_defaults(&data("host-debian12-vm/route")),
        ["eth0"]
    );
    // The `lo` unreachable default (flags 00200200) carries nothing.
    assert_eq!(
        parse_ipv6_defaults(&data("host-debian12-vm/ipv6_route")),
        ["eth0"]
    );
}

fn gpu_tree(iomem_file: &str, device: &str) -> MemTree {
    let mut tree = MemTree::new();
    tree.file("/proc/iomem", data(&format!("iomem/{iomem_file}")));
    pci_device(
        &mut tree,
        &format!("/sys/devices/pci0000:00/{device}"),
        "0x030000",
    );
    tree
}

#[test]
fn a_bootfb_inside_the_gpu_bar_needs_force() {
    for file in ["workstation-bootfb.txt", "simplefb-under-bootfb.txt"] {
        let tree = gpu_tree(file, "0000:00:02.0");
        let findings = framebuffer::findings(
            &tree,
            &framebuffer::read_iomem(&tree),
            address("0000:00:02.0"),
        );
        let finding = findings.expect(file);
        assert_eq!(finding.severity, Severity::NeedsForce);
        assert!(
            finding.message.contains("BOOTFB, 0xe0000000-"),
            "{}",
            finding.message
        );
        assert!(finding.help.contains("initcall_blacklist=sysfb_init"));
    }
}

#[test]
fn a_framebuffer_found_through_the_resource_file_when_iomem_does_not_name_the_device() {
    let mut tree = MemTree::new();
    tree.file("/proc/iomem", "c0000000-c02fffff : efifb\n");
    pci_device(
        &mut tree,
        "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0",
        "0x030000",
    );
    // Fixture C of the reference notes (synthetic NVIDIA-style layout): BAR1 at 0xc0000000.
    tree.file(
        "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/resource",
        "0x00000000fb000000 0x00000000fbffffff 0x0000000000040200\n\
         0x00000000c0000000 0x00000000cfffffff 0x000000000014220c\n\
         0x0000000000000000 0x0000000000000000 0x0000000000000000\n",
    );
    let finding = framebuffer::findings(
        &tree,
        &framebuffer::read_iomem(&tree),
        address("0000:01:00.0"),
    );
    assert_eq!(finding.unwrap().severity, Severity::NeedsForce);
}

#[test]
fn hidden_addresses_mean_cannot_tell_not_a_guess() {
    let tree = gpu_tree("nonroot-bootfb.txt", "0000:00:02.0");
    let finding = framebuffer::findings(
        &tree,
        &framebuffer::read_iomem(&tree),
        address("0000:00:02.0"),
    )
    .unwrap();
    assert_eq!(finding.severity, Severity::Unknown);
    assert!(
        finding.message.contains("without root"),
        "{}",
        finding.message
    );
}

#[test]
fn a_gpu_on_its_driver_without_firmware_framebuffer_is_clear() {
    let tree = gpu_tree("nvidia-bound-no-framebuffer.txt", "0000:01:00.0");
    let iomem = framebuffer::read_iomem(&tree);
    assert_eq!(
        framebuffer::findings(&tree, &iomem, address("0000:01:00.0")),
        None
    );
    // A network card is never asked about framebuffers.
    let mut tree = gpu_tree("workstation-bootfb.txt", "0000:00:19.0");
    tree.file("/sys/devices/pci0000:00/0000:00:19.0/class", "0x020000\n");
    assert_eq!(
        framebuffer::findings(
            &tree,
            &framebuffer::read_iomem(&tree),
            address("0000:00:19.0")
        ),
        None
    );
}

/// A desktop: `/` on LVM over dm-crypt over an NVMe partition, `/home` on a SATA disk behind
/// AHCI, a btrfs `/data` (anonymous device number) on a second NVMe, swap on the SATA disk.
/// Layout follows real sysfs (`slaves/`, partitions below their disk); synthetic values.
fn desktop_storage() -> MemTree {
    let mut tree = MemTree::new();
    tree.file(
        "/proc/self/mountinfo",
        "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n\
         23 22 8:1 / /home rw,relatime shared:2 - ext4 /dev/sda1 rw\n\
         24 22 0:33 / /data rw,relatime shared:3 - btrfs /dev/nvme1n1p1 rw,subvol=/\n\
         25 22 0:22 / /proc rw,relatime shared:4 - proc proc rw\n\
         26 22 8:33 / /media/usb\\040stick rw - vfat /dev/sdc1 rw\n",
    );
    tree.file(
        "/proc/swaps",
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
         /dev/sda2                               partition\t8388604\t\t0\t\t-2\n",
    );
    let nvme0 = "/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1";
    let nvme1 = "/sys/devices/pci0000:00/0000:00:1c.0/0000:3e:00.0/nvme/nvme1/nvme1n1";
    let sata = "/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda";
    let usb =
        "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdc";
    tree.file(format!("{nvme0}/nvme0n1p3/partition"), "3\n");
    tree.file(format!("{nvme1}/nvme1n1p1/partition"), "1\n");
    tree.file(format!("{sata}/sda1/partition"), "1\n");
    tree.file(format!("{sata}/sda2/partition"), "2\n");
    tree.file(format!("{usb}/sdc1/partition"), "1\n");
    tree.dir("/sys/devices/virtual/block/dm-0/slaves");
    tree.dir("/sys/devices/virtual/block/dm-1/slaves");
    tree.symlink(
        "/sys/devices/virtual/block/dm-0/slaves/nvme0n1p3",
        "../../../../pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1/nvme0n1p3",
    );
    tree.symlink("/sys/devices/virtual/block/dm-1/slaves/dm-0", "../../dm-0");
    tree.symlink("/sys/dev/block/253:1", "../../devices/virtual/block/dm-1");
    tree.symlink(
        "/sys/dev/block/8:1",
        format!("../..{}/sda1", sata.trim_start_matches("/sys")),
    );
    tree.symlink(
        "/sys/dev/block/8:33",
        format!("../..{}/sdc1", usb.trim_start_matches("/sys")),
    );
    tree.symlink(
        "/sys/class/block/nvme1n1p1",
        format!("../..{}/nvme1n1p1", nvme1.trim_start_matches("/sys")),
    );
    tree.symlink(
        "/sys/class/block/sda2",
        format!("../..{}/sda2", sata.trim_start_matches("/sys")),
    );
    tree.file("/dev/nvme1n1p1", "");
    tree.file("/dev/sda2", "");
    tree
}

#[test]
fn mounts_are_followed_through_device_mapper_partitions_and_names() {
    let tree = desktop_storage();
    let storage = storage::read_storage_use(&tree).unwrap();
    let points = |device: &str| -> Vec<String> {
        storage.by_device[&address(device)]
            .iter()
            .map(|use_| use_.mount_point.clone())
            .collect()
    };
    assert_eq!(points("0000:3d:00.0"), ["/"]);
    assert_eq!(points("0000:00:17.0"), ["/home", "[swap]"]);
    assert_eq!(points("0000:3e:00.0"), ["/data"]);
    assert_eq!(points("0000:00:14.0"), ["/media/usb stick"]);
    assert_eq!(storage.by_device.len(), 4);

    let root = storage::findings(&Ok(storage.clone()), address("0000:3d:00.0")).unwrap();
    assert_eq!(
        (root.kind, root.severity),
        (FindingKind::RootFilesystem, Severity::Blocked)
    );
    let home = storage::findings(&Ok(storage.clone()), address("0000:00:17.0")).unwrap();
    assert_eq!(
        (home.kind, home.severity),
        (FindingKind::MountedFilesystem, Severity::NeedsForce)
    );
    assert_eq!(
        home.message,
        "0000:00:17.0 holds mounted filesystems or swap: /home, [swap]"
    );
    assert!(storage::findings(&Ok(storage), address("0000:01:00.0")).is_none());
}

#[test]
fn a_default_route_on_a_bridge_is_traced_to_its_port() {
    let mut tree = MemTree::new();
    tree.file(
        "/proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         br0\t00000000\t0101A8C0\t0003\t0\t0\t425\t00000000\t0\t0\t0\n\
         br0\t0001A8C0\t00000000\t0001\t0\t0\t425\t00FFFFFF\t0\t0\t0\n",
    );
    tree.dir("/sys/devices/virtual/net/br0");
    tree.dir("/sys/devices/pci0000:00/0000:00:1c.4/0000:05:00.0/net/enp5s0");
    tree.symlink("/sys/class/net/br0", "../../devices/virtual/net/br0");
    tree.symlink(
        "/sys/devices/virtual/net/br0/lower_enp5s0",
        "../../../pci0000:00/0000:00:1c.4/0000:05:00.0/net/enp5s0",
    );
    let routes = network::read_route_use(&tree).unwrap();
    assert_eq!(routes.by_device[&address("0000:05:00.0")], ["br0"]);
    let finding = network::findings(&Ok(routes), address("0000:05:00.0")).unwrap();
    assert!(finding.force_overrides());
}

/// A host where Xorg holds the GPU's card node, nvidia-persistenced holds /dev/nvidiactl,
/// and the nvidia module has users; layout follows real `/proc` and `/sys/class/drm`.
fn nvidia_desktop() -> MemTree {
    let mut tree = MemTree::new();
    let gpu = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
    pci_device(&mut tree, gpu, "0x030000");
    tree.dir(format!("{gpu}/drm/card1"));
    tree.symlink(
        format!("{gpu}/driver"),
        "../../../../bus/pci/drivers/nvidia",
    );
    tree.symlink(
        "/sys/bus/pci/drivers/nvidia/module",
        "../../../../module/nvidia",
    );
    tree.file("/sys/module/nvidia/refcnt", "7\n");
    tree.file("/sys/module/nvidia/initstate", "live\n");
    tree.symlink(
        "/sys/module/nvidia/holders/nvidia_modeset",
        "../../nvidia_modeset",
    );
    tree.symlink("/sys/module/nvidia/holders/nvidia_uvm", "../../nvidia_uvm");
    tree.symlink(
        "/sys/class/drm/card1",
        format!("../..{}/drm/card1", gpu.trim_start_matches("/sys")),
    );
    tree.symlink(format!("{gpu}/drm/card1/device"), "../../../0000:01:00.0");
    tree.dir("/sys/class/drm/card1-DP-1");
    tree.file(
        "/proc/driver/nvidia/gpus/0000:01:00.0/information",
        "Model: \t\t NVIDIA GeForce RTX 3080\nIRQ:   \t\t 130\nDevice Minor: \t 0\n",
    );
    tree.file("/proc/1234/comm", "Xorg\n");
    tree.symlink("/proc/1234/fd/0", "/dev/null");
    tree.symlink("/proc/1234/fd/14", "/dev/dri/card1");
    tree.symlink("/proc/1234/fd/15", "/dev/nvidia0");
    tree.file("/proc/777/comm", "nvidia-persiste\n");
    tree.symlink("/proc/777/fd/3", "/dev/nvidiactl");
    tree.file("/proc/900/comm", "bash\n");
    tree.symlink("/proc/900/fd/1", "/dev/pts/0");
    tree.file(
        "/proc/self/mountinfo",
        "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n",
    );
    tree.file("/proc/iomem", data("iomem/nvidia-bound-no-framebuffer.txt"));
    tree.dir("/sys/class/iommu/dmar0");
    tree.symlink(
        format!("{gpu}/iommu_group"),
        "../../../../kernel/iommu_groups/12",
    );
    tree
}

#[test]
fn programs_holding_the_gpu_and_a_busy_nvidia_module_need_force() {
    let tree = nvidia_desktop();
    let probes = RefusalProbes::read(&tree);
    let findings = probes.check(&tree, address("0000:01:00.0"));
    assert_eq!(
        kinds(&findings),
        [
            (FindingKind::DriverInUse, Severity::NeedsForce),
            (FindingKind::DeviceFilesOpen, Severity::NeedsForce),
        ]
    );
    assert_eq!(
        findings[0].message,
        "the nvidia module has 5 user(s) besides its own modules (nvidia_modeset, nvidia_uvm \
         depend on it)"
    );
    assert_eq!(
        findings[1].message,
        "0000:01:00.0 is in use: Xorg (pid 1234) has /dev/dri/card1 open; Xorg (pid 1234) has \
         /dev/nvidia0 open; nvidia-persiste (pid 777) has /dev/nvidiactl open"
    );
}

#[test]
fn without_root_the_open_files_of_others_are_unknown() {
    let mut tree = nvidia_desktop();
    tree.remove("/proc/1234/fd");
    tree.denied("/proc/1234/fd");
    tree.remove("/proc/777/fd");
    tree.denied("/proc/777/fd");
    tree.file("/sys/module/nvidia/refcnt", "2\n");
    let probes = RefusalProbes::read(&tree);
    let findings = probes.check(&tree, address("0000:01:00.0"));
    assert_eq!(
        kinds(&findings),
        [(FindingKind::DeviceFilesOpen, Severity::Unknown)]
    );
    assert!(
        findings[0]
            .message
            .contains("2 processes are hidden without root")
    );
}

proptest! {
    #[test]
    fn host_text_parsers_never_panic(text in "\\PC*") {
        let _ = parse_iomem(&text);
        let _ = parse_mountinfo(&text);
        let _ = parse_ipv4_defaults(&text);
        let _ = parse_ipv6_defaults(&text);
    }

    #[test]
    fn iomem_lines_parse_back(start in any::<u32>(), len in 0u32..0xffff, depth in 0usize..4, name in "[A-Za-z0-9:. -]{1,20}") {
        let name = name.trim().to_owned();
        prop_assume!(!name.is_empty());
        let end = u64::from(start) + u64::from(len);
        let line = format!("{}{:08x}-{:08x} : {name}\n", "  ".repeat(depth), start, end);
        let entries = parse_iomem(&line);
        prop_assert_eq!(entries.len(), 1);
        prop_assert_eq!(entries[0].depth, depth);
        prop_assert_eq!(entries[0].start, u64::from(start));
        prop_assert_eq!(entries[0].end, end);
        prop_assert_eq!(&entries[0].name, &name);
    }
}
