//! Reading one PCI function from `/sys/bus/pci/devices/<address>`.
//!
//! The device directory is listed once, so optional attributes (`boot_vga`, `reset_method`,
//! `sriov_*`, `physfn`, ...) are only opened when they exist. Every unreadable or malformed
//! attribute becomes a warning on the device; the rest of the device is still read.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::{EntryKind, HostFs};
use passthru_core::pci::config::{self, CapabilityReadout, ConfigHeader};
use passthru_core::pci::resource::parse_resource;
use passthru_core::pci::{ClassCode, PciAddress};

use super::model::{DeviceRole, InterruptVectors, LinkState, PciDevice, ResetSupport, SriovInfo};
use super::sysfs_text::{
    addresses_in_path, file_name, io_reason, parse_hex_u32, quote, read_optional_text,
};

/// Where the kernel lists PCI functions.
pub(crate) const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// Where the kernel lists PCI drivers.
pub(crate) const PCI_DRIVERS: &str = "/sys/bus/pci/drivers";

/// Bytes of config space to read: the whole extended space.
const CONFIG_SPACE_SIZE: usize = 4096;

/// Facts shared by every device read: which drivers exist (to spot dangling `driver` links).
pub(crate) struct DeviceContext {
    pub(crate) drivers: Option<HashSet<String>>,
}

/// The attributes present in a device directory, by name.
struct Listing(Option<BTreeMap<String, EntryKind>>);

impl Listing {
    /// Whether `name` exists; when the directory could not be listed, assume it might.
    fn has(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|entries| entries.contains_key(name))
    }

    fn is_dir(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|entries| entries.get(name) == Some(&EntryKind::Dir))
    }

    fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .flat_map(|entries| entries.keys())
            .filter(move |name| name.starts_with(prefix))
            .map(String::as_str)
    }
}

/// Reads everything passthru needs about one function.
pub(crate) fn read_device(
    fs: &dyn HostFs,
    context: &DeviceContext,
    address: PciAddress,
    entry_name: &str,
) -> PciDevice {
    let mut reader = DeviceReader {
        fs,
        context,
        device: PciDevice::new(address),
        dir: PathBuf::new(),
    };
    reader.read(entry_name);
    reader.device
}

struct DeviceReader<'a> {
    fs: &'a dyn HostFs,
    context: &'a DeviceContext,
    device: PciDevice,
    dir: PathBuf,
}

impl DeviceReader<'_> {
    fn warn(&mut self, message: String) {
        self.device.warnings.push(message);
    }

    fn read(&mut self, entry_name: &str) {
        let bus_path = Path::new(PCI_DEVICES).join(entry_name);
        self.dir = match self.fs.kind(&bus_path) {
            Some(EntryKind::Symlink) => match self.fs.resolve_link(&bus_path) {
                Ok(target) => target,
                Err(error) => {
                    self.warn(format!(
                        "could not follow {}: {}",
                        bus_path.display(),
                        io_reason(&error)
                    ));
                    bus_path.clone()
                }
            },
            _ => bus_path.clone(),
        };
        self.device.sysfs_path = Some(self.dir.display().to_string());
        let upstream = addresses_in_path(&self.dir);
        self.device.upstream = upstream
            .iter()
            .rev()
            .copied()
            .filter(|address| *address != self.device.address)
            .collect();
        self.device.parent = self.device.upstream.first().copied();

        let listing = match self.fs.read_dir(&self.dir) {
            Ok(entries) => Listing(Some(
                entries
                    .into_iter()
                    .map(|entry| (entry.name, entry.kind))
                    .collect(),
            )),
            Err(error) => {
                self.warn(format!(
                    "could not list {}: {}",
                    self.dir.display(),
                    io_reason(&error)
                ));
                Listing(None)
            }
        };

        self.device.vendor = self.hex_attribute("vendor", 4).map(|id| id as u16);
        self.device.device = self.hex_attribute("device", 4).map(|id| id as u16);
        self.device.subsystem_vendor = self
            .hex_attribute("subsystem_vendor", 4)
            .map(|id| id as u16);
        self.device.subsystem_device = self
            .hex_attribute("subsystem_device", 4)
            .map(|id| id as u16);
        self.device.class = self.hex_attribute("class", 6).map(ClassCode);
        self.device.revision = self.hex_attribute("revision", 2).map(|id| id as u8);

        if listing.has("physfn") {
            self.device.physfn = self.link_address("physfn");
        }
        self.read_config(&listing);
        self.device.role = role(self.device.class, listing.is_dir("pci_bus"));
        if listing.has("driver") {
            self.read_driver();
        }
        if listing.has("driver_override") {
            self.device.driver_override = self
                .text("driver_override")
                .filter(|value| !value.is_empty() && value != "(null)");
        }
        if listing.has("iommu_group") {
            self.read_iommu_group();
        }
        if listing.has("resource") {
            self.read_resources();
        }
        if listing.has("sriov_totalvfs") || listing.names_with_prefix("virtfn").next().is_some() {
            self.read_sriov(&listing);
        }
        if listing.has("boot_vga") {
            self.device.boot_vga = self.number::<u8>("boot_vga").map(|value| value != 0);
        }
        self.device.reset = ResetSupport {
            methods: listing
                .has("reset_method")
                .then(|| self.reset_methods())
                .flatten(),
            reset_file: listing.0.is_some() && listing.has("reset"),
        };
        if listing.has("current_link_speed") || listing.has("max_link_speed") {
            self.read_link(&listing);
        }
        if listing.has("numa_node") {
            self.device.numa_node = self.number::<i32>("numa_node").filter(|node| *node >= 0);
        }
        if listing.is_dir("msi_irqs") {
            self.device.interrupts = self.msi_vectors();
        }
    }

    /// Reads an attribute's text; `None` and a warning when it cannot be read.
    fn text(&mut self, name: &str) -> Option<String> {
        match read_optional_text(self.fs, &self.dir.join(name)) {
            Ok(Some(text)) => Some(text),
            Ok(None) => {
                self.warn(format!("{name}: missing"));
                None
            }
            Err(error) => {
                self.warn(format!("{name}: could not be read: {}", io_reason(&error)));
                None
            }
        }
    }

    fn hex_attribute(&mut self, name: &str, max_digits: usize) -> Option<u32> {
        let text = self.text(name)?;
        let value = parse_hex_u32(&text, max_digits);
        if value.is_none() && text.is_empty() {
            self.warn(format!("{name}: empty"));
        } else if value.is_none() {
            self.warn(format!("{name}: `{}` is not a hex number", quote(&text)));
        }
        value
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str) -> Option<T> {
        let text = self.text(name)?;
        let value = text.parse().ok();
        if value.is_none() {
            self.warn(format!("{name}: `{}` is not a number", quote(&text)));
        }
        value
    }

    fn link_target(&mut self, name: &str) -> Option<PathBuf> {
        match self.fs.resolve_link(&self.dir.join(name)) {
            Ok(target) => Some(target),
            Err(error) => {
                self.warn(format!(
                    "{name}: could not read the link: {}",
                    io_reason(&error)
                ));
                None
            }
        }
    }

    fn link_address(&mut self, name: &str) -> Option<PciAddress> {
        let target = self.link_target(name)?;
        let address = file_name(&target).and_then(|last| last.parse().ok());
        if address.is_none() {
            self.warn(format!(
                "{name}: the link points to {}, not to a PCI device",
                target.display()
            ));
        }
        address
    }

    fn read_driver(&mut self) {
        let Some(target) = self.link_target("driver") else {
            return;
        };
        let Some(name) = file_name(&target).map(str::to_owned) else {
            self.warn(format!(
                "driver: the link points to {}, which names no driver",
                target.display()
            ));
            return;
        };
        let exists = match &self.context.drivers {
            Some(drivers) if target.parent() == Some(Path::new(PCI_DRIVERS)) => {
                drivers.contains(&name)
            }
            _ => self.fs.exists(&target),
        };
        if !exists {
            self.warn(format!(
                "driver: the link points to {}, which does not exist (dangling link); treating the device as bound to `{name}`",
                target.display()
            ));
        }
        self.device.driver = Some(name);
    }

    fn read_iommu_group(&mut self) {
        let Some(target) = self.link_target("iommu_group") else {
            return;
        };
        match file_name(&target).and_then(|last| last.parse::<u32>().ok()) {
            Some(number) => self.device.iommu_group = Some(number),
            None => self.warn(format!(
                "iommu_group: the link points to {}, which is not a numbered group",
                target.display()
            )),
        }
    }

    fn read_resources(&mut self) {
        let Some(text) = self.text("resource") else {
            return;
        };
        match parse_resource(&text) {
            Ok(resources) => self.device.resources = Some(resources),
            Err(error) => self.warn(format!("resource: {error}; BAR sizes are unknown")),
        }
    }

    fn read_config(&mut self, listing: &Listing) {
        if !listing.has("config") {
            self.device.config = CapabilityReadout::Unavailable {
                reason: "the device has no config file".to_owned(),
            };
            self.warn("config: missing".to_owned());
            return;
        }
        let mut bytes = match self
            .fs
            .read_prefix(&self.dir.join("config"), CONFIG_SPACE_SIZE)
        {
            Ok(bytes) => bytes,
            Err(error) => {
                let reason = io_reason(&error);
                self.warn(format!("config: could not be read: {reason}"));
                self.device.config = CapabilityReadout::Unavailable {
                    reason: format!("config could not be read: {reason}"),
                };
                return;
            }
        };
        // A VF's own Vendor and Device ID registers read 0xffff (SR-IOV spec, "VF Vendor ID");
        // the kernel fills the real ids into sysfs. Put them back so the rest decodes.
        if self.device.physfn.is_some()
            && bytes.len() >= 4
            && bytes[..4] == [0xff; 4]
            && let (Some(vendor), Some(device)) = (self.device.vendor, self.device.device)
        {
            bytes[..2].copy_from_slice(&vendor.to_le_bytes());
            bytes[2..4].copy_from_slice(&device.to_le_bytes());
        }
        self.device.config = config::decode(&bytes);
        if let Some(header) = config_header(&self.device.config) {
            self.fill_from_header(&header);
        }
    }

    /// Uses the config header where the sysfs attribute was missing or garbage.
    fn fill_from_header(&mut self, header: &ConfigHeader) {
        let mut filled = Vec::new();
        if self.device.vendor.is_none() {
            self.device.vendor = Some(header.vendor);
            filled.push("vendor");
        }
        if self.device.device.is_none() {
            self.device.device = Some(header.device);
            filled.push("device");
        }
        if self.device.class.is_none() {
            self.device.class = Some(ClassCode(header.class));
            filled.push("class");
        }
        if self.device.revision.is_none() {
            self.device.revision = Some(header.revision);
            filled.push("revision");
        }
        if !filled.is_empty() {
            self.warn(format!(
                "took {} from config space instead",
                filled.join(", ")
            ));
        }
    }

    fn read_sriov(&mut self, listing: &Listing) {
        let mut sriov = SriovInfo::default();
        if listing.has("sriov_totalvfs") {
            sriov.total_vfs = self.number("sriov_totalvfs");
        }
        if listing.has("sriov_numvfs") {
            sriov.num_vfs = self.number("sriov_numvfs");
        }
        if listing.0.is_some() && listing.has("sriov_vf_device") {
            sriov.vf_device = self.hex_attribute("sriov_vf_device", 4).map(|id| id as u16);
        }
        let mut virtfns: Vec<(u32, String)> = listing
            .names_with_prefix("virtfn")
            .filter_map(|name| Some((name.strip_prefix("virtfn")?.parse().ok()?, name.to_owned())))
            .collect();
        virtfns.sort();
        for (_, name) in virtfns {
            if let Some(address) = self.link_address(&name) {
                sriov.virtfns.push(address);
            }
        }
        self.device.sriov = Some(sriov);
    }

    fn reset_methods(&mut self) -> Option<Vec<String>> {
        let text = self.text("reset_method")?;
        Some(text.split_whitespace().map(str::to_owned).collect())
    }

    fn read_link(&mut self, listing: &Listing) {
        let mut link = LinkState::default();
        let optional_text = |reader: &mut Self, name: &str| {
            if listing.has(name) {
                reader.text(name)
            } else {
                None
            }
        };
        link.current_speed = optional_text(self, "current_link_speed");
        link.max_speed = optional_text(self, "max_link_speed");
        if listing.has("current_link_width") {
            link.current_width = self.number("current_link_width");
        }
        if listing.has("max_link_width") {
            link.max_width = self.number("max_link_width");
        }
        self.device.link = Some(link);
    }

    fn msi_vectors(&mut self) -> InterruptVectors {
        let dir = self.dir.join("msi_irqs");
        let entries = match self.fs.read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                self.warn(format!(
                    "msi_irqs: could not be listed: {}",
                    io_reason(&error)
                ));
                return InterruptVectors::default();
            }
        };
        let count = entries.len() as u32;
        let Some(first) = entries.first() else {
            return InterruptVectors::default();
        };
        // A function uses MSI or MSI-X, never both at once, so one file tells the mode.
        match self.fs.read_text(&dir.join(&first.name)) {
            Ok(mode) if mode == "msix" => InterruptVectors {
                msi: 0,
                msix: count,
            },
            Ok(mode) if mode == "msi" => InterruptVectors {
                msi: count,
                msix: 0,
            },
            Ok(mode) => {
                self.warn(format!(
                    "msi_irqs/{}: unknown mode `{}`",
                    first.name,
                    quote(&mode)
                ));
                InterruptVectors::default()
            }
            Err(error) => {
                self.warn(format!(
                    "msi_irqs/{}: could not be read: {}",
                    first.name,
                    io_reason(&error)
                ));
                InterruptVectors::default()
            }
        }
    }
}

fn config_header(readout: &CapabilityReadout) -> Option<ConfigHeader> {
    match readout {
        CapabilityReadout::Decoded(capabilities) => Some(capabilities.header.clone()),
        CapabilityReadout::NeedsRoot { header, .. } => header.clone(),
        CapabilityReadout::Unavailable { .. } => None,
    }
}

/// Host bridge, bridge (class 0x0604/0x0609 or a `pci_bus/` directory, Proxmox's test) or
/// endpoint.
fn role(class: Option<ClassCode>, has_pci_bus: bool) -> DeviceRole {
    match class {
        Some(class) if class.base_sub() == 0x0600 => DeviceRole::HostBridge,
        Some(class) if class.is_pci_bridge() => DeviceRole::Bridge,
        _ if has_pci_bus => DeviceRole::Bridge,
        _ => DeviceRole::Endpoint,
    }
}

/// Reads the names of the bound-able PCI drivers (`/sys/bus/pci/drivers`).
pub(crate) fn read_driver_names(fs: &dyn HostFs) -> io::Result<HashSet<String>> {
    Ok(fs
        .read_dir(Path::new(PCI_DRIVERS))?
        .into_iter()
        .map(|entry| entry.name)
        .collect())
}
