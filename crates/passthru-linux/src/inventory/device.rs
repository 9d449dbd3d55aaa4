//! Reading one PCI function from `/sys/bus/pci/devices/<address>`.
//!
//! The device directory is opened once ([`HostFs::open_dir`]) and every attribute is read
//! relative to it, through one reused buffer. Optional attributes (`boot_vga`,
//! `reset_method`, `sriov_*`, `physfn`, ...) are opened directly: a missing one costs one
//! failed lookup, cheaper than listing every device directory (a listing is about five system
//! calls and forty names). Every unreadable or malformed attribute becomes a warning on the
//! device; the rest of the device is still read.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::{EntryKind, HostDir, HostFs};
use passthru_core::pci::config::{self, CapabilityReadout, ConfigHeader};
use passthru_core::pci::resource::parse_resource;
use passthru_core::pci::{ClassCode, PciAddress};

use super::model::{DeviceRole, InterruptVectors, LinkState, PciDevice, ResetSupport, SriovInfo};
use super::sysfs_text::{
    addresses_in_path, file_name, io_reason, parse_hex_u32, quote, read_optional_text_in,
    read_text_in,
};
use super::workers::Scratch;

/// Where the kernel lists PCI functions.
pub(crate) const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// Where the kernel lists PCI drivers.
pub(crate) const PCI_DRIVERS: &str = "/sys/bus/pci/drivers";

/// Bytes of config space to read: the whole extended space.
const CONFIG_SPACE_SIZE: usize = 4096;

/// Facts shared by every device read: `/sys/bus/pci/devices`, and which drivers exist (to
/// spot dangling `driver` links).
pub(crate) struct DeviceContext<'a> {
    pub(crate) bus: Box<dyn HostDir + 'a>,
    pub(crate) drivers: Option<HashSet<String>>,
}

/// Reads everything passthru needs about one function.
pub(crate) fn read_device<'a>(
    fs: &'a dyn HostFs,
    context: &'a DeviceContext<'a>,
    scratch: &mut Scratch<'a>,
    address: PciAddress,
    entry_name: &str,
) -> PciDevice {
    let mut device = PciDevice::new(address);
    // The kernel's entries are links to the real directory; a plain directory (some
    // hand-made trees) is read where it is.
    let dir = match context.bus.resolve_link(entry_name) {
        Ok(target) => target,
        Err(error) => {
            let bus_path = Path::new(PCI_DEVICES).join(entry_name);
            if error.kind() != io::ErrorKind::InvalidInput {
                device.warnings.push(format!(
                    "could not follow {}: {}",
                    bus_path.display(),
                    io_reason(&error)
                ));
            }
            bus_path
        }
    };
    let mut reader = DeviceReader {
        fs,
        context,
        device,
        dir: scratch.parents.open(&dir),
        text_bytes: std::mem::take(&mut scratch.bytes),
        config_bytes: std::mem::take(&mut scratch.config),
    };
    reader.read();
    scratch.bytes = reader.text_bytes;
    scratch.config = reader.config_bytes;
    reader.device
}

struct DeviceReader<'a> {
    fs: &'a dyn HostFs,
    context: &'a DeviceContext<'a>,
    device: PciDevice,
    dir: Box<dyn HostDir + 'a>,
    /// Reused for every text attribute.
    text_bytes: Vec<u8>,
    config_bytes: Vec<u8>,
}

impl DeviceReader<'_> {
    fn warn(&mut self, message: String) {
        self.device.warnings.push(message);
    }

    fn read(&mut self) {
        self.device.sysfs_path = Some(self.dir.path().to_string_lossy().into_owned());
        let upstream = addresses_in_path(self.dir.path());
        self.device.upstream = upstream
            .iter()
            .rev()
            .copied()
            .filter(|address| *address != self.device.address)
            .collect();
        self.device.parent = self.device.upstream.first().copied();

        self.device.physfn = self
            .optional_link("physfn")
            .and_then(|target| self.address_of_link("physfn", &target));
        // A VF's config space reads 0xffff for its ids, so a VF's come from sysfs first.
        if self.device.physfn.is_some() {
            self.device.vendor = self.hex_attribute("vendor", 4).map(|id| id as u16);
            self.device.device = self.hex_attribute("device", 4).map(|id| id as u16);
        }
        let header = self.read_config();
        // For a type-0 function the kernel took vendor, device, revision and subsystem ids from
        // these very header registers, so the header saves four sysfs reads per device (a
        // quarter of survey's cost on a big host). Class is always read from sysfs: quirks
        // rewrite it. Bridges keep their subsystem ids in a capability, so they use sysfs.
        match header
            .as_ref()
            .filter(|header| header.vendor != 0xffff && header.header_type == 0)
        {
            Some(header) if self.device.physfn.is_none() => {
                self.device.vendor = Some(header.vendor);
                self.device.device = Some(header.device);
                self.device.revision = Some(header.revision);
                self.take_subsystem_from_config();
            }
            Some(header) => {
                self.device.revision = Some(header.revision);
                self.take_subsystem_from_config();
            }
            None => {
                if self.device.physfn.is_none() {
                    self.device.vendor = self.hex_attribute("vendor", 4).map(|id| id as u16);
                    self.device.device = self.hex_attribute("device", 4).map(|id| id as u16);
                }
                self.device.subsystem_vendor = self
                    .hex_attribute("subsystem_vendor", 4)
                    .map(|id| id as u16);
                self.device.subsystem_device = self
                    .hex_attribute("subsystem_device", 4)
                    .map(|id| id as u16);
                self.device.revision = self.hex_attribute("revision", 2).map(|id| id as u8);
            }
        }
        self.device.class = self.hex_attribute("class", 6).map(ClassCode);
        if let Some(header) = &header {
            self.fill_from_header(header);
        }
        self.device.role = self.role(header.as_ref());
        if let Some(target) = self.optional_link("driver") {
            self.read_driver(&target);
        }
        self.device.driver_override = self
            .optional_text("driver_override")
            .filter(|value| !value.is_empty() && value != "(null)");
        if let Some(target) = self.optional_link("iommu_group") {
            self.read_iommu_group(&target);
        }
        self.read_resources();
        // The kernel shows `sriov_*` only on physical functions (`sriov_pf_attrs_are_visible`
        // in drivers/pci/iov.c), and a virtual function is never one: it cannot implement
        // the SR-IOV capability itself. Not probing VFs spares a failed lookup on each.
        if self.device.physfn.is_none()
            && let Some(total) = self.optional_text("sriov_totalvfs")
        {
            self.read_sriov(&total);
        }
        // Only VGA-class devices have `boot_vga`.
        if self
            .device
            .class
            .is_some_and(|class| class.base_sub() == 0x0300)
        {
            self.device.boot_vga = self
                .optional_number::<u8>("boot_vga")
                .map(|value| value != 0);
        }
        let methods = self.optional_text("reset_method").map(|text| {
            text.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        // The kernel shows `reset` whenever `reset_method` lists a method; look only otherwise.
        let reset_file = methods.as_ref().is_some_and(|methods| !methods.is_empty())
            || self.dir.kind("reset").is_some();
        self.device.reset = ResetSupport {
            methods,
            reset_file,
        };
        self.read_link();
        self.device.numa_node = self
            .optional_number::<i32>("numa_node")
            .filter(|node| *node >= 0);
        self.device.interrupts = self.msi_vectors();
    }

    /// Reads an optional attribute: `None` when it does not exist, a warning when it cannot
    /// be read.
    fn optional_text(&mut self, name: &str) -> Option<String> {
        match read_optional_text_in(&*self.dir, name, &mut self.text_bytes) {
            Ok(text) => text,
            Err(error) => {
                self.warn(format!("{name}: could not be read: {}", io_reason(&error)));
                None
            }
        }
    }

    fn optional_number<T: std::str::FromStr>(&mut self, name: &str) -> Option<T> {
        let text = self.optional_text(name)?;
        let value = text.parse().ok();
        if value.is_none() {
            self.warn(format!("{name}: `{}` is not a number", quote(&text)));
        }
        value
    }

    /// Follows an optional link: `None` when it does not exist, a warning when it cannot be
    /// read.
    fn optional_link(&mut self, name: &str) -> Option<PathBuf> {
        match self.dir.resolve_link_if_exists(name) {
            Ok(target) => target,
            Err(error) => {
                self.warn(format!(
                    "{name}: could not read the link: {}",
                    io_reason(&error)
                ));
                None
            }
        }
    }

    /// Host bridge (class 0x0600), bridge (class 0x0604/0x0609, a bridge header, or, when the
    /// header is unreadable, a `pci_bus/` directory: Proxmox's test), or endpoint.
    fn role(&self, header: Option<&ConfigHeader>) -> DeviceRole {
        match self.device.class {
            Some(class) if class.base_sub() == 0x0600 => return DeviceRole::HostBridge,
            Some(class) if class.is_pci_bridge() => return DeviceRole::Bridge,
            _ => {}
        }
        let bridge = match header {
            Some(header) => matches!(header.header_type, 1 | 2),
            None => self.dir.kind("pci_bus") == Some(EntryKind::Dir),
        };
        if bridge {
            DeviceRole::Bridge
        } else {
            DeviceRole::Endpoint
        }
    }

    /// Reads an attribute's text; `None` and a warning when it cannot be read.
    fn text(&mut self, name: &str) -> Option<String> {
        match read_optional_text_in(&*self.dir, name, &mut self.text_bytes) {
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

    fn address_of_link(&mut self, name: &str, target: &Path) -> Option<PciAddress> {
        let address = file_name(target).and_then(|last| last.parse().ok());
        if address.is_none() {
            self.warn(format!(
                "{name}: the link points to {}, not to a PCI device",
                target.display()
            ));
        }
        address
    }

    fn read_driver(&mut self, target: &Path) {
        let Some(name) = file_name(target).map(str::to_owned) else {
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
            _ => self.fs.exists(target),
        };
        if !exists {
            self.warn(format!(
                "driver: the link points to {}, which does not exist (dangling link); treating the device as bound to `{name}`",
                target.display()
            ));
        }
        self.device.driver = Some(name);
    }

    fn read_iommu_group(&mut self, target: &Path) {
        match file_name(target).and_then(|last| last.parse::<u32>().ok()) {
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

    /// Reads and decodes `config`; returns the header when there is one.
    fn read_config(&mut self) -> Option<ConfigHeader> {
        let mut bytes = std::mem::take(&mut self.config_bytes);
        match self.dir.read_into("config", CONFIG_SPACE_SIZE, &mut bytes) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.device.config = CapabilityReadout::Unavailable {
                    reason: "the device has no config file".to_owned(),
                };
                self.warn("config: missing".to_owned());
                return None;
            }
            Err(error) => {
                let reason = io_reason(&error);
                self.warn(format!("config: could not be read: {reason}"));
                self.device.config = CapabilityReadout::Unavailable {
                    reason: format!("config could not be read: {reason}"),
                };
                return None;
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
        self.config_bytes = bytes;
        config_header(&self.device.config)
    }

    /// Subsystem ids from a type-0 header (offsets 0x2c and 0x2e), which the decoded header
    /// does not carry.
    fn take_subsystem_from_config(&mut self) {
        let word = |offset: usize| {
            self.config_bytes
                .get(offset..offset + 2)
                .map(|bytes| u16::from_le_bytes([bytes[0], bytes[1]]))
        };
        self.device.subsystem_vendor = word(0x2c);
        self.device.subsystem_device = word(0x2e);
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

    fn read_sriov(&mut self, total: &str) {
        let mut sriov = SriovInfo {
            total_vfs: total.parse().ok(),
            ..SriovInfo::default()
        };
        if sriov.total_vfs.is_none() {
            self.warn(format!(
                "sriov_totalvfs: `{}` is not a number",
                quote(total)
            ));
        }
        sriov.num_vfs = self.optional_number("sriov_numvfs");
        sriov.vf_device = self
            .optional_text("sriov_vf_device")
            .and_then(|text| parse_hex_u32(&text, 4))
            .map(|id| id as u16);
        // A PF is rare; listing its directory is the only way to find the `virtfn*` links.
        let mut virtfns: Vec<(u32, String)> = match self.fs.read_dir(self.dir.path()) {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|entry| {
                    Some((entry.name.strip_prefix("virtfn")?.parse().ok()?, entry.name))
                })
                .collect(),
            Err(error) => {
                self.warn(format!(
                    "could not list {}: {}",
                    self.dir.path().display(),
                    io_reason(&error)
                ));
                Vec::new()
            }
        };
        virtfns.sort();
        for (_, name) in virtfns {
            if let Some(target) = self.optional_link(&name)
                && let Some(address) = self.address_of_link(&name, &target)
            {
                sriov.virtfns.push(address);
            }
        }
        self.device.sriov = Some(sriov);
    }

    fn read_link(&mut self) {
        let Some(current_speed) = self.optional_text("current_link_speed") else {
            return;
        };
        self.device.link = Some(LinkState {
            current_speed: Some(current_speed),
            current_width: self.optional_number("current_link_width"),
            max_speed: self.optional_text("max_link_speed"),
            max_width: self.optional_number("max_link_width"),
        });
    }

    fn msi_vectors(&mut self) -> InterruptVectors {
        let entries = match self.dir.read_dir_if_exists("msi_irqs") {
            Ok(Some(entries)) => entries,
            Ok(None) => return InterruptVectors::default(),
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
        let mode = read_text_in(
            &*self.dir,
            &format!("msi_irqs/{}", first.name),
            &mut self.text_bytes,
        );
        match mode {
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

/// Reads the names of the bound-able PCI drivers (`/sys/bus/pci/drivers`).
pub(crate) fn read_driver_names(fs: &dyn HostFs) -> io::Result<HashSet<String>> {
    Ok(fs
        .read_dir(Path::new(PCI_DRIVERS))?
        .into_iter()
        .map(|entry| entry.name)
        .collect())
}
