//! Fake Linux hosts for tests, fixtures and benchmarks: a sysfs/procfs tree described in
//! Rust, built from real config-space captures, written to a temp dir ([`FakeHost::write_tree`],
//! read with `RealFs`) or turned into a snapshot ([`FakeHost::to_snapshot`]).
//!
//! The tree follows the kernel's layout: device directories under
//! `/sys/devices/pci<domain>:<bus>/...`, relative links from `/sys/bus/pci/devices`, `driver`
//! links into `/sys/bus/pci/drivers`, and `/sys/kernel/iommu_groups/N/devices` links back.

pub mod lspci_dump;
pub mod scenarios;
#[cfg(unix)]
mod tree;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use passthru_core::pci::PciAddress;
use passthru_core::pci::config::decode_header;

use crate::snapshot::{Entry, ListedEntry, ListedKind, Operation, Snapshot};

/// One node of the fake file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeNode {
    /// A regular file.
    File(Vec<u8>),
    /// A directory (its children are the paths below it).
    Dir,
    /// A symbolic link with this (usually relative) target.
    Link(String),
    /// A file that cannot be read: in a snapshot it fails with this error; in a tree it is
    /// written as a directory, so reading it fails with "Is a directory" even for root.
    Unreadable {
        /// Error kind name (`PermissionDenied`).
        kind: String,
        /// Message (`Permission denied (os error 13)`).
        message: String,
    },
    /// A character device (`/dev/kvm`); written as an empty file in a tree.
    Device,
}

/// A fake host: paths (host-absolute) to nodes.
#[derive(Debug, Clone, Default)]
pub struct FakeHost {
    nodes: BTreeMap<PathBuf, FakeNode>,
    description: Option<String>,
}

/// Host-wide facts of a fake host.
#[derive(Debug, Clone)]
pub struct FakeHostInfo {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: String,
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// `/proc/cpuinfo` (one processor block is enough).
    pub cpuinfo: String,
    /// Entries of `/sys/class/iommu`.
    pub iommu_units: Vec<String>,
    /// Whether `/dev/kvm` exists.
    pub kvm: bool,
    /// Loaded modules (`/sys/module/NAME/initstate`).
    pub loaded_modules: Vec<String>,
    /// Content of `/lib/modules/RELEASE/modules.dep`, if any.
    pub modules_dep: Option<String>,
}

/// A PCI function to add to a [`FakeHost`].
#[derive(Debug, Clone)]
pub struct FakeDevice {
    /// Its address.
    pub address: PciAddress,
    /// The sysfs directory it sits in (`/sys/devices/pci0000:00/0000:00:1c.0`).
    pub parent_dir: String,
    /// Config space bytes (a real capture where possible).
    pub config: Vec<u8>,
    /// `vendor`, `device`, `subsystem_vendor`, `subsystem_device`.
    pub ids: (u16, u16, u16, u16),
    /// `class`.
    pub class: u32,
    /// `revision`.
    pub revision: u8,
    /// Bound driver.
    pub driver: Option<String>,
    /// `driver_override`.
    pub driver_override: Option<String>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// `resource` text.
    pub resource: String,
    /// `boot_vga` (VGA-class devices only).
    pub boot_vga: Option<bool>,
    /// `reset_method` (`None`: no reset at all).
    pub reset_method: Option<String>,
    /// Link: current speed, current width, max speed, max width.
    pub link: Option<(String, u32, String, u32)>,
    /// `numa_node`.
    pub numa_node: i32,
    /// MSI mode (`msi`/`msix`) and vector count.
    pub msi: Option<(String, u32)>,
    /// Whether it is a bridge (gets a `pci_bus/` directory).
    pub bridge: bool,
    /// SR-IOV PF: total VFs and the VF addresses enabled.
    pub sriov: Option<(u32, Vec<PciAddress>)>,
    /// SR-IOV VF: the PF's address.
    pub physfn: Option<PciAddress>,
}

/// `0x10de\n`-style attribute text.
fn hex_attr(value: u32, digits: usize) -> Vec<u8> {
    format!("0x{value:0digits$x}\n").into_bytes()
}

/// The relative link target from directory `from` to `to` (both host-absolute).
pub fn relative_target(from: &Path, to: &Path) -> String {
    let parts = |path: &Path| -> Vec<String> {
        path.components()
            .filter_map(|component| match component {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let (from, to) = (parts(from), parts(to));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut target: Vec<String> = vec!["..".to_owned(); from.len() - common];
    target.extend(to[common..].iter().cloned());
    target.join("/")
}

/// A `resource` file from a config image: BAR types and addresses come from the BAR
/// registers, sizes from `sizes` (`(bar index, bytes)`; BAR sizing needs the hardware). The
/// ROM line uses `rom_size`. Lines: 13 for endpoints (IOV kernels), 17 for bridges.
pub fn resource_from_config(
    config: &[u8],
    sizes: &[(usize, u64)],
    rom_size: Option<u64>,
    bridge: bool,
) -> String {
    const EMPTY: &str = "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
    let register = |index: usize| -> u32 {
        let offset = 0x10 + index * 4;
        config.get(offset..offset + 4).map_or(0, |bytes| {
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        })
    };
    let mut lines = vec![EMPTY.to_owned(); if bridge { 17 } else { 13 }];
    for &(index, size) in sizes {
        if index > 5 || size == 0 {
            continue;
        }
        let low = register(index);
        let (start, flags) = if low & 1 == 1 {
            (u64::from(low & !0x3), 0x0004_0101)
        } else {
            let is_64 = (low >> 1) & 3 == 2;
            let prefetchable = low & 8 != 0;
            let base = u64::from(low & !0xf)
                | if is_64 {
                    u64::from(register(index + 1)) << 32
                } else {
                    0
                };
            let mut flags: u64 = 0x0004_0200 | u64::from(low & 0xf);
            if is_64 {
                flags |= 0x0010_0000;
            }
            if prefetchable {
                flags |= 0x2000;
            }
            (base, flags)
        };
        let start = if start == 0 {
            0x1000_0000 + index as u64 * 0x0100_0000
        } else {
            start
        };
        lines[index] = format!(
            "0x{start:016x} 0x{:016x} 0x{flags:016x}\n",
            start + size - 1
        );
    }
    if let Some(size) = rom_size {
        let rom = config.get(0x30..0x34).map_or(0, |bytes| {
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & !0x7ff
        });
        let start = if rom == 0 {
            0xfe00_0000
        } else {
            u64::from(rom)
        };
        lines[6] = format!(
            "0x{start:016x} 0x{:016x} 0x0000000000046200\n",
            start + size - 1
        );
    }
    lines.concat()
}

impl FakeDevice {
    /// A device at `address` under `parent_dir`, with ids, class and revision taken from
    /// its config image.
    pub fn from_config(address: PciAddress, parent_dir: &str, config: Vec<u8>) -> Self {
        let header = decode_header(&config);
        let subsystem = |offset: usize| {
            config
                .get(offset..offset + 2)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
        };
        let (ids, class, revision, bridge) = match &header {
            Some(header) if header.header_type == 1 => (
                (header.vendor, header.device, 0, 0),
                header.class,
                header.revision,
                true,
            ),
            Some(header) => (
                (
                    header.vendor,
                    header.device,
                    subsystem(0x2c),
                    subsystem(0x2e),
                ),
                header.class,
                header.revision,
                false,
            ),
            None => ((0xffff, 0xffff, 0, 0), 0xff0000, 0, false),
        };
        Self {
            address,
            parent_dir: parent_dir.to_owned(),
            config,
            ids,
            class,
            revision,
            driver: None,
            driver_override: None,
            iommu_group: None,
            resource: String::new(),
            boot_vga: None,
            reset_method: None,
            link: None,
            numa_node: -1,
            msi: None,
            bridge,
            sriov: None,
            physfn: None,
        }
    }

    /// The sysfs directory of this device.
    pub fn dir(&self) -> PathBuf {
        Path::new(&self.parent_dir).join(self.address.to_string())
    }

    /// Sets the driver.
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = Some(driver.to_owned());
        self
    }

    /// Sets the IOMMU group.
    pub fn group(mut self, number: u32) -> Self {
        self.iommu_group = Some(number);
        self
    }

    /// Sets `resource` from BAR sizes (see [`resource_from_config`]).
    pub fn bars(mut self, sizes: &[(usize, u64)], rom_size: Option<u64>) -> Self {
        self.resource = resource_from_config(&self.config, sizes, rom_size, self.bridge);
        self
    }

    /// Sets `reset_method`.
    pub fn reset(mut self, methods: &str) -> Self {
        self.reset_method = Some(methods.to_owned());
        self
    }

    /// Sets the link state.
    pub fn link(mut self, speed: &str, width: u32, max_speed: &str, max_width: u32) -> Self {
        self.link = Some((speed.to_owned(), width, max_speed.to_owned(), max_width));
        self
    }

    /// Sets allocated MSI (`msi`) or MSI-X (`msix`) vectors.
    pub fn msi(mut self, mode: &str, count: u32) -> Self {
        self.msi = Some((mode.to_owned(), count));
        self
    }
}

impl FakeHost {
    /// An empty host with the directories every host has.
    pub fn new() -> Self {
        let mut host = Self::default();
        for dir in [
            "/sys/bus/pci/devices",
            "/sys/bus/pci/drivers",
            "/sys/kernel/iommu_groups",
            "/sys/class/iommu",
            "/sys/module",
            "/proc/sys/kernel",
            "/dev",
        ] {
            host.dir(dir);
        }
        host
    }

    /// Sets the snapshot description.
    pub fn describe(&mut self, description: &str) {
        self.description = Some(description.to_owned());
    }

    /// Adds a directory and its parents.
    pub fn dir(&mut self, path: impl AsRef<Path>) {
        for ancestor in path.as_ref().ancestors() {
            if ancestor == Path::new("/") || ancestor.as_os_str().is_empty() {
                break;
            }
            self.nodes
                .entry(ancestor.to_path_buf())
                .or_insert(FakeNode::Dir);
        }
    }

    /// Sets any node (replacing what was there), creating parent directories.
    pub fn set(&mut self, path: impl AsRef<Path>, node: FakeNode) {
        let path = path.as_ref();
        if let Some(parent) = path.parent() {
            self.dir(parent);
        }
        self.nodes.insert(path.to_path_buf(), node);
    }

    /// Writes a file.
    pub fn file(&mut self, path: impl AsRef<Path>, bytes: impl Into<Vec<u8>>) {
        self.set(path, FakeNode::File(bytes.into()));
    }

    /// Makes a link.
    pub fn link(&mut self, path: impl AsRef<Path>, target: &str) {
        self.set(path, FakeNode::Link(target.to_owned()));
    }

    /// Removes a node and everything below it.
    pub fn remove(&mut self, path: impl AsRef<Path>) {
        let path = path.as_ref().to_path_buf();
        self.nodes
            .retain(|candidate, _| !candidate.starts_with(&path));
    }

    /// Makes a file unreadable with "Permission denied".
    pub fn unreadable(&mut self, path: impl AsRef<Path>) {
        self.set(
            path,
            FakeNode::Unreadable {
                kind: "PermissionDenied".to_owned(),
                message: "Permission denied (os error 13)".to_owned(),
            },
        );
    }

    /// Sets the host-wide files.
    pub fn host_info(&mut self, info: &FakeHostInfo) {
        self.file(
            "/proc/sys/kernel/osrelease",
            format!("{}\n", info.kernel_release),
        );
        self.file("/proc/cmdline", format!("{}\n", info.cmdline));
        self.file("/proc/cpuinfo", info.cpuinfo.clone());
        for unit in &info.iommu_units {
            let target = format!("/sys/devices/virtual/iommu/{unit}");
            self.dir(&target);
            self.link(
                format!("/sys/class/iommu/{unit}"),
                &relative_target(Path::new("/sys/class/iommu"), Path::new(&target)),
            );
        }
        if info.kvm {
            self.set("/dev/kvm", FakeNode::Device);
        }
        for module in &info.loaded_modules {
            self.file(format!("/sys/module/{module}/initstate"), "live\n");
        }
        if let Some(dep) = &info.modules_dep {
            self.file(
                format!("/lib/modules/{}/modules.dep", info.kernel_release),
                dep.clone(),
            );
        }
    }

    /// Adds an IOMMU group directory (with the usual x86 `reserved_regions` and `type`).
    pub fn iommu_group(&mut self, number: u32) {
        let dir = PathBuf::from(format!("/sys/kernel/iommu_groups/{number}"));
        if self.nodes.contains_key(&dir) {
            return;
        }
        self.dir(dir.join("devices"));
        self.file(
            dir.join("reserved_regions"),
            "0x00000000fee00000 0x00000000feefffff msi\n",
        );
        self.file(dir.join("type"), "DMA-FQ\n");
    }

    /// Adds a non-PCI device to a group (`name` under `/sys/devices/platform`).
    pub fn non_pci_member(&mut self, group: u32, name: &str, driver: Option<&str>) {
        self.iommu_group(group);
        let dir = PathBuf::from("/sys/devices/platform").join(name);
        self.dir(&dir);
        self.file(dir.join("modalias"), format!("acpi:{name}:\n"));
        if let Some(driver) = driver {
            let driver_dir = PathBuf::from("/sys/bus/platform/drivers").join(driver);
            self.dir(&driver_dir);
            self.link(dir.join("driver"), &relative_target(&dir, &driver_dir));
        }
        let links = PathBuf::from(format!("/sys/kernel/iommu_groups/{group}/devices"));
        self.link(links.join(name), &relative_target(&links, &dir));
    }

    /// Adds a PCI function with all the attributes survey and lspci read.
    pub fn device(&mut self, device: &FakeDevice) {
        let dir = device.dir();
        let name = device.address.to_string();
        self.dir(&dir);
        let (vendor, id, sub_vendor, sub_device) = device.ids;
        self.file(dir.join("vendor"), hex_attr(vendor.into(), 4));
        self.file(dir.join("device"), hex_attr(id.into(), 4));
        self.file(dir.join("subsystem_vendor"), hex_attr(sub_vendor.into(), 4));
        self.file(dir.join("subsystem_device"), hex_attr(sub_device.into(), 4));
        self.file(dir.join("class"), hex_attr(device.class, 6));
        self.file(dir.join("revision"), hex_attr(device.revision.into(), 2));
        self.file(dir.join("config"), device.config.clone());
        self.file(dir.join("resource"), device.resource.clone());
        self.file(dir.join("irq"), "0\n");
        self.file(dir.join("enable"), "1\n");
        self.file(dir.join("numa_node"), format!("{}\n", device.numa_node));
        self.file(dir.join("local_cpulist"), "0-1\n");
        self.file(
            dir.join("driver_override"),
            format!(
                "{}\n",
                device.driver_override.as_deref().unwrap_or("(null)")
            ),
        );
        self.file(
            dir.join("modalias"),
            format!(
                "pci:v{vendor:08X}d{id:08X}sv{sub_vendor:08X}sd{sub_device:08X}bc{:02X}sc{:02X}i{:02X}\n",
                device.class >> 16,
                (device.class >> 8) & 0xff,
                device.class & 0xff
            ),
        );
        if let Some(boot_vga) = device.boot_vga {
            self.file(dir.join("boot_vga"), format!("{}\n", u8::from(boot_vga)));
        }
        if let Some(methods) = &device.reset_method {
            self.file(dir.join("reset_method"), format!("{methods}\n"));
            self.file(dir.join("reset"), "");
        }
        if let Some((speed, width, max_speed, max_width)) = &device.link {
            self.file(dir.join("current_link_speed"), format!("{speed}\n"));
            self.file(dir.join("current_link_width"), format!("{width}\n"));
            self.file(dir.join("max_link_speed"), format!("{max_speed}\n"));
            self.file(dir.join("max_link_width"), format!("{max_width}\n"));
        }
        if let Some((mode, count)) = &device.msi {
            for vector in 0..*count {
                self.file(
                    dir.join("msi_irqs").join((40 + vector).to_string()),
                    format!("{mode}\n"),
                );
            }
        }
        if device.bridge {
            self.dir(dir.join("pci_bus"));
        }
        let bus_devices = Path::new("/sys/bus/pci/devices");
        self.link(bus_devices.join(&name), &relative_target(bus_devices, &dir));
        if let Some(driver) = &device.driver {
            let driver_dir = PathBuf::from("/sys/bus/pci/drivers").join(driver);
            self.dir(&driver_dir);
            self.link(dir.join("driver"), &relative_target(&dir, &driver_dir));
            self.link(driver_dir.join(&name), &relative_target(&driver_dir, &dir));
        }
        if let Some(group) = device.iommu_group {
            self.iommu_group(group);
            let group_dir = PathBuf::from(format!("/sys/kernel/iommu_groups/{group}"));
            self.link(dir.join("iommu_group"), &relative_target(&dir, &group_dir));
            let links = group_dir.join("devices");
            self.link(links.join(&name), &relative_target(&links, &dir));
        }
        if let Some((total, vfs)) = &device.sriov {
            self.file(dir.join("sriov_totalvfs"), format!("{total}\n"));
            self.file(dir.join("sriov_numvfs"), format!("{}\n", vfs.len()));
            for (index, vf) in vfs.iter().enumerate() {
                let vf_dir = Path::new(&device.parent_dir).join(vf.to_string());
                self.link(
                    dir.join(format!("virtfn{index}")),
                    &relative_target(&dir, &vf_dir),
                );
            }
        }
        if let Some(pf) = device.physfn {
            let pf_dir = Path::new(&device.parent_dir).join(pf.to_string());
            self.link(dir.join("physfn"), &relative_target(&dir, &pf_dir));
        }
    }

    /// The whole host as a snapshot (every file, listing and link).
    pub fn to_snapshot(&self) -> Snapshot {
        let mut children: BTreeMap<&Path, Vec<ListedEntry>> = BTreeMap::new();
        for (path, node) in &self.nodes {
            if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
                children.entry(parent).or_default().push(ListedEntry {
                    name: name.to_string_lossy().into_owned(),
                    kind: match node {
                        FakeNode::File(_) | FakeNode::Unreadable { .. } => ListedKind::File,
                        FakeNode::Dir => ListedKind::Dir,
                        FakeNode::Link(_) => ListedKind::Link,
                        FakeNode::Device => ListedKind::Special,
                    },
                });
            }
        }
        let mut entries = vec![Entry::Dir {
            path: "/".to_owned(),
            entries: children.remove(Path::new("/")).unwrap_or_default(),
        }];
        for (path, node) in &self.nodes {
            let text = path.display().to_string();
            entries.push(match node {
                FakeNode::File(bytes) => Entry::file(path, bytes, false),
                FakeNode::Dir => Entry::Dir {
                    path: text,
                    entries: children.remove(path.as_path()).unwrap_or_default(),
                },
                FakeNode::Link(target) => Entry::Link {
                    path: text,
                    target: target.clone(),
                },
                FakeNode::Unreadable { kind, message } => Entry::Error {
                    path: text,
                    op: Operation::Read,
                    kind: kind.clone(),
                    message: message.clone(),
                },
                FakeNode::Device => Entry::Exists {
                    path: text,
                    kind: ListedKind::Special,
                },
            });
        }
        let mut snapshot = Snapshot::new(entries);
        snapshot.description = self.description.clone();
        snapshot
    }

    /// The description set with [`FakeHost::describe`].
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Writes the host under `root` (which should be empty). Links are real symbolic links.
    #[cfg(unix)]
    pub fn write_tree(&self, root: &Path) -> std::io::Result<()> {
        tree::write(&self.nodes, root)
    }
}
