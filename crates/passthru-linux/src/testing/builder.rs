//! Building fake kernels: devices, modules, IOMMU, extra files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use passthru_core::pci::PciAddress;

use super::kernel::{DeviceState, FakeKernel, ModuleState};
use super::render::relative;
use super::tree::MemTree;
use crate::sysfs;

/// A PCI device of a fake kernel.
#[derive(Debug, Clone)]
pub struct FakeDevice {
    address: PciAddress,
    parent: Option<PciAddress>,
    vendor: u16,
    device: u16,
    subsystem: (u16, u16),
    class: u32,
    revision: u8,
    group: Option<u32>,
    driver: Option<String>,
    unbound: bool,
    driver_override: Option<String>,
    files: Vec<(String, Vec<u8>)>,
}

impl FakeDevice {
    /// A device at `address` (panics on a malformed address: fixtures are code).
    pub fn new(address: &str) -> Self {
        Self {
            address: address
                .parse()
                .unwrap_or_else(|error| panic!("fake device address: {error}")),
            parent: None,
            vendor: 0x1b36,
            device: 0x0001,
            subsystem: (0x1af4, 0x1100),
            class: 0xff0000,
            revision: 0,
            group: None,
            driver: None,
            unbound: false,
            driver_override: None,
            files: Vec::new(),
        }
    }

    /// Vendor and device id.
    pub fn ids(mut self, vendor: u16, device: u16) -> Self {
        self.vendor = vendor;
        self.device = device;
        self
    }

    /// Subsystem vendor and device id.
    pub fn subsystem(mut self, vendor: u16, device: u16) -> Self {
        self.subsystem = (vendor, device);
        self
    }

    /// 24-bit class code (`0x030000` VGA).
    pub fn class(mut self, class: u32) -> Self {
        self.class = class;
        self
    }

    /// IOMMU group.
    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// The driver that matches the device by id (bound at boot when its module is loaded).
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = Some(driver.to_owned());
        self
    }

    /// Leaves the device unbound at boot.
    pub fn unbound(mut self) -> Self {
        self.unbound = true;
        self
    }

    /// Sets `driver_override` from the start.
    pub fn driver_override(mut self, driver: &str) -> Self {
        self.driver_override = Some(driver.to_owned());
        self
    }

    /// Puts the device below a bridge or port (its sysfs directory nests under the parent's).
    pub fn behind(mut self, parent: &str) -> Self {
        self.parent = Some(
            parent
                .parse()
                .unwrap_or_else(|error| panic!("fake parent address: {error}")),
        );
        self
    }

    /// Adds a file to the device's directory (`boot_vga`, `reset_method`, `resource`, ...).
    pub fn file(mut self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files
            .push((name.to_owned(), contents.as_ref().to_vec()));
        self
    }

    /// `modalias` as the kernel writes it (drivers/pci/pci-sysfs.c `modalias_show`).
    fn modalias(&self) -> String {
        format!(
            "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}\n",
            self.vendor,
            self.device,
            self.subsystem.0,
            self.subsystem.1,
            self.class >> 16,
            (self.class >> 8) & 0xff,
            self.class & 0xff
        )
    }

    /// The first 64 bytes of config space, as a non-root reader sees them.
    fn config_header(&self) -> Vec<u8> {
        let mut config = vec![0u8; 64];
        config[0..2].copy_from_slice(&self.vendor.to_le_bytes());
        config[2..4].copy_from_slice(&self.device.to_le_bytes());
        config[4..6].copy_from_slice(&0x0006u16.to_le_bytes());
        config[8] = self.revision;
        config[9..12].copy_from_slice(&self.class.to_le_bytes()[0..3]);
        let bridge = self.class >> 8 == 0x0604;
        config[14] = u8::from(bridge);
        if !bridge {
            config[0x2c..0x2e].copy_from_slice(&self.subsystem.0.to_le_bytes());
            config[0x2e..0x30].copy_from_slice(&self.subsystem.1.to_le_bytes());
        }
        config
    }
}

/// A kernel module of a fake kernel.
#[derive(Debug, Clone)]
pub struct FakeModule {
    name: String,
    state: ModuleState,
}

impl FakeModule {
    /// A module, not loaded, providing no driver.
    pub fn new(name: &str) -> Self {
        Self {
            name: sysfs::module_sysfs_name(name),
            state: ModuleState {
                driver: None,
                depends: Vec::new(),
                softdep_post: Vec::new(),
                builtin: false,
                loaded: false,
                users: 0,
            },
        }
    }

    /// The PCI driver it registers.
    pub fn driver(mut self, driver: &str) -> Self {
        self.state.driver = Some(driver.to_owned());
        self
    }

    /// Modules it depends on.
    pub fn depends(mut self, modules: &[&str]) -> Self {
        self.state.depends = modules
            .iter()
            .map(|name| sysfs::module_sysfs_name(name))
            .collect();
        self
    }

    /// `softdep ... post:` modules (loaded after it by `modprobe`).
    pub fn softdep_post(mut self, modules: &[&str]) -> Self {
        self.state.softdep_post = modules
            .iter()
            .map(|name| sysfs::module_sysfs_name(name))
            .collect();
        self
    }

    /// Loaded at boot.
    pub fn loaded(mut self) -> Self {
        self.state.loaded = true;
        self
    }

    /// Built into the kernel (always present, cannot be removed, no `/sys/module` entry).
    pub fn builtin(mut self) -> Self {
        self.state.builtin = true;
        self.state.loaded = true;
        self
    }

    /// References apart from dependent modules (open device files and the like).
    pub fn users(mut self, users: u64) -> Self {
        self.state.users = users;
        self
    }
}

/// Builds a [`FakeKernel`].
#[derive(Debug, Clone, Default)]
pub struct FakeKernelBuilder {
    iommu: Option<&'static str>,
    devices: Vec<FakeDevice>,
    modules: Vec<FakeModule>,
    files: Vec<(PathBuf, Vec<u8>)>,
    links: Vec<(PathBuf, PathBuf)>,
    framebuffers: Vec<(u32, PciAddress)>,
    fbcon: bool,
}

impl FakeKernelBuilder {
    /// A kernel without IOMMU, devices or modules.
    pub fn new() -> Self {
        Self::default()
    }

    /// An active Intel IOMMU (`/sys/class/iommu/dmar0`).
    pub fn intel_iommu(mut self) -> Self {
        self.iommu = Some("dmar0");
        self
    }

    /// An active AMD IOMMU (`/sys/class/iommu/ivhd0`).
    pub fn amd_iommu(mut self) -> Self {
        self.iommu = Some("ivhd0");
        self
    }

    /// No IOMMU at all: no `/sys/class/iommu` unit and no device in a group (call it after
    /// the devices are added).
    pub fn without_iommu(mut self) -> Self {
        self.iommu = None;
        for device in &mut self.devices {
            device.group = None;
        }
        self
    }

    /// Adds a device.
    pub fn device(mut self, device: FakeDevice) -> Self {
        self.devices.push(device);
        self
    }

    /// Adds a module.
    pub fn module(mut self, module: FakeModule) -> Self {
        self.modules.push(module);
        self
    }

    /// The vfio modules of Debian 12's 6.1 kernel, not loaded: `vfio_pci` depends on
    /// `vfio_pci_core` and `vfio`; `vfio_pci_core` on `vfio`, `vfio_virqfd` and `irqbypass`;
    /// `vfio` has `softdep post: vfio_iommu_type1`, which depends on `vfio`.
    pub fn vfio_modules(self) -> Self {
        self.module(FakeModule::new("irqbypass"))
            .vfio_modules_without_irqbypass()
    }

    /// Adds a file anywhere (`/proc/iomem`, `/proc/self/mountinfo`, ...).
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files
            .push((PathBuf::from(path), contents.as_ref().to_vec()));
        self
    }

    /// Adds a symbolic link anywhere (`/proc/<pid>/fd/<n>`, `/sys/class/net/<if>`, ...).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.links
            .push((PathBuf::from(path), PathBuf::from(target)));
        self
    }

    /// A framebuffer `/dev/fb<index>` of `device` (`/sys/class/graphics/fb<index>/device`),
    /// as a DRM driver's fbdev emulation registers it.
    pub fn framebuffer(mut self, index: u32, device: &str) -> Self {
        self.framebuffers.push((
            index,
            device
                .parse()
                .unwrap_or_else(|error| panic!("fake framebuffer device: {error}")),
        ));
        self
    }

    /// fbcon bound to the virtual terminals (`/sys/class/vtconsole/vtcon1`, as in the lab).
    pub fn fbcon(mut self) -> Self {
        self.fbcon = true;
        self
    }

    /// Builds the kernel and "boots" it: loaded drivers bind the devices they match.
    ///
    /// Panics when a device names a parent that is not in the kernel (fixtures are code).
    pub fn build(self) -> FakeKernel {
        let mut tree = MemTree::new();
        for dir in [
            "/dev",
            "/sys/module",
            "/sys/bus/pci/drivers",
            "/sys/kernel/iommu_groups",
        ] {
            tree.dir(dir);
        }
        tree.file(sysfs::DRIVERS_PROBE, b"");
        tree.file("/sys/bus/pci/drivers_autoprobe", b"1\n");
        tree.file("/sys/bus/pci/rescan", b"");
        tree.dir("/sys/class/iommu");
        if let Some(unit) = self.iommu {
            let real = PathBuf::from(format!("/sys/devices/virtual/iommu/{unit}"));
            tree.dir(&real);
            tree.symlink(
                Path::new("/sys/class/iommu").join(unit),
                relative(Path::new("/sys/class/iommu"), &real),
            );
        }

        let mut paths: BTreeMap<PciAddress, PathBuf> = BTreeMap::new();
        let mut pending: Vec<&FakeDevice> = self.devices.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|device| {
                let base = match device.parent {
                    None => Some(PathBuf::from(format!(
                        "/sys/devices/pci{:04x}:{:02x}",
                        device.address.domain, device.address.bus
                    ))),
                    Some(parent) => paths.get(&parent).cloned(),
                };
                match base {
                    Some(base) => {
                        paths.insert(device.address, base.join(device.address.to_string()));
                        false
                    }
                    None => true,
                }
            });
            assert!(
                pending.len() < before,
                "fake devices name parents that do not exist: {:?}",
                pending.iter().map(|d| d.address).collect::<Vec<_>>()
            );
        }

        let mut devices = BTreeMap::new();
        for device in &self.devices {
            let path = paths[&device.address].clone();
            let hex = |width: usize, value: u32| format!("0x{value:0width$x}\n");
            tree.file(path.join("vendor"), hex(4, device.vendor.into()));
            tree.file(path.join("device"), hex(4, device.device.into()));
            tree.file(
                path.join("subsystem_vendor"),
                hex(4, device.subsystem.0.into()),
            );
            tree.file(
                path.join("subsystem_device"),
                hex(4, device.subsystem.1.into()),
            );
            tree.file(path.join("class"), hex(6, device.class));
            tree.file(path.join("revision"), hex(2, device.revision.into()));
            tree.file(path.join("config"), device.config_header());
            tree.file(path.join("modalias"), device.modalias());
            for (name, contents) in &device.files {
                tree.file(path.join(name), contents);
            }
            let bus_link = sysfs::device_dir(device.address);
            tree.symlink(
                &bus_link,
                relative(Path::new("/sys/bus/pci/devices"), &path),
            );
            if let Some(group) = device.group {
                let group_dir = PathBuf::from(format!("/sys/kernel/iommu_groups/{group}"));
                tree.file(group_dir.join("type"), b"DMA\n");
                let devices_dir = group_dir.join("devices");
                tree.symlink(
                    devices_dir.join(device.address.to_string()),
                    relative(&devices_dir, &path),
                );
                tree.symlink(path.join("iommu_group"), relative(&path, &group_dir));
            }
            devices.insert(
                device.address,
                DeviceState {
                    path,
                    group: device.group,
                    natural_driver: device.driver.clone(),
                    driver: None,
                    driver_override: device.driver_override.clone(),
                },
            );
        }
        module_index(&mut tree, &self.devices, &self.modules);
        // What the refusal probes read, as in the lab's guest: an initramfs root, no
        // network route, no firmware framebuffer, no process holding a device.
        tree.dir("/proc");
        tree.file(
            "/proc/self/mountinfo",
            "1 1 0:2 / / rw - rootfs rootfs rw\n16 1 0:4 / /proc rw,relatime - proc proc rw\n",
        );
        tree.file(
            "/proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        );
        tree.file(
            "/proc/iomem",
            "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n",
        );
        tree.file("/proc/cmdline", "console=ttyS0 intel_iommu=on iommu=pt\n");
        consoles(&mut tree, &paths, &self.framebuffers, self.fbcon);
        for (path, contents) in &self.files {
            tree.file(path, contents);
        }
        for (path, target) in &self.links {
            tree.symlink(path, target);
        }
        let modules = self
            .modules
            .into_iter()
            .map(|module| (module.name, module.state))
            .collect();
        let unbound: Vec<PciAddress> = self
            .devices
            .iter()
            .filter(|device| device.unbound)
            .map(|device| device.address)
            .collect();
        FakeKernel::from_parts(tree, devices, modules, &unbound)
    }
}

/// The running kernel's release and module index (`modules.dep`, `modules.alias`): each
/// module that provides a driver gets an alias for the ids of the devices it drives, as
/// `depmod` would write from the module's id table.
fn module_index(tree: &mut MemTree, devices: &[FakeDevice], modules: &[FakeModule]) {
    const RELEASE: &str = "6.1.0-fake";
    tree.file("/proc/sys/kernel/osrelease", format!("{RELEASE}\n"));
    let dir = PathBuf::from(format!("/lib/modules/{RELEASE}"));
    let mut dep = String::new();
    let mut aliases = String::from("# Aliases extracted from modules themselves.\n");
    for module in modules.iter().filter(|module| !module.state.builtin) {
        let depends: Vec<String> = module
            .state
            .depends
            .iter()
            .map(|name| format!("kernel/fake/{name}.ko"))
            .collect();
        dep.push_str(&format!(
            "kernel/fake/{}.ko: {}\n",
            module.name,
            depends.join(" ")
        ));
        let Some(driver) = &module.state.driver else {
            continue;
        };
        for device in devices
            .iter()
            .filter(|device| device.driver.as_deref() == Some(driver.as_str()))
        {
            let line = format!(
                "alias pci:v{:08X}d{:08X}sv*sd*bc*sc*i* {}\n",
                device.vendor, device.device, module.name
            );
            if !aliases.contains(&line) {
                aliases.push_str(&line);
            }
        }
    }
    tree.file(dir.join("modules.dep"), dep);
    tree.file(dir.join("modules.alias"), aliases);
}

/// `/sys/class/graphics/fbN` and `/sys/class/vtconsole`, as the lab's guest shows them.
fn consoles(
    tree: &mut MemTree,
    paths: &BTreeMap<PciAddress, PathBuf>,
    framebuffers: &[(u32, PciAddress)],
    fbcon: bool,
) {
    for (index, device) in framebuffers {
        let Some(device_dir) = paths.get(device) else {
            panic!("fake framebuffer of a device that does not exist: {device}");
        };
        let real = device_dir.join("graphics").join(format!("fb{index}"));
        tree.file(real.join("name"), b"bochs-drmdrmfb\n");
        tree.symlink(real.join("device"), relative(&real, device_dir));
        tree.symlink(
            format!("/sys/class/graphics/fb{index}"),
            relative(Path::new("/sys/class/graphics"), &real),
        );
    }
    tree.dir("/sys/class/vtconsole");
    let consoles = [
        ("vtcon0", "(S) dummy device", !fbcon),
        ("vtcon1", "(M) frame buffer device", fbcon),
    ];
    for (name, description, bound) in consoles.iter().take(if fbcon { 2 } else { 1 }) {
        let dir = PathBuf::from(format!("/sys/devices/virtual/vtconsole/{name}"));
        tree.file(dir.join("name"), format!("{description}\n"));
        tree.file(dir.join("bind"), if *bound { "1\n" } else { "0\n" });
        tree.symlink(
            Path::new("/sys/class/vtconsole").join(name),
            relative(Path::new("/sys/class/vtconsole"), &dir),
        );
    }
}
