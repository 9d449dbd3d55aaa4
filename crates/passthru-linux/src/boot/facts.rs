//! What boot planning needs to know about the host and the devices, as small plain types.
//!
//! These are deliberately independent of the survey's inventory model: the CLI fills them from
//! sysfs for now ([`read_target`], [`read_host_facts`]), and the survey can fill them later.

use std::fmt;
use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::{ClassCode, PciAddress};
use serde::{Deserialize, Serialize};

use super::BootError;
use super::kernels::{InstalledKernel, installed_kernels, normalize_module};

/// A PCI vendor:device pair, written `10de:1b80` (the form `vfio-pci.ids=` takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciId {
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

impl std::str::FromStr for PciId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (vendor, device) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not vendor:device"))?;
        let parse = |part: &str| {
            u16::from_str_radix(part, 16).map_err(|_| format!("`{text}` is not vendor:device"))
        };
        Ok(Self {
            vendor: parse(vendor)?,
            device: parse(device)?,
        })
    }
}

impl Serialize for PciId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A device to bind to vfio-pci at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDevice {
    /// Its address.
    pub address: PciAddress,
    /// Vendor and device id.
    pub id: PciId,
    /// Class code.
    pub class: ClassCode,
    /// The driver bound now (`amdgpu`, `vfio-pci`), if any.
    pub driver: Option<String>,
    /// The module that provides that driver (`snd_hda_intel`); `None` when the driver is built
    /// into the running kernel or nothing is bound.
    pub driver_module: Option<String>,
    /// `modalias` (`pci:v00001002d0000731F…`), to find every driver that would claim it.
    pub modalias: Option<String>,
    /// Whether firmware used it as the boot display (`boot_vga`).
    pub boot_vga: bool,
}

/// The CPU maker, which decides the IOMMU switch on the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuVendor {
    /// `GenuineIntel`: VT-d, needs `intel_iommu=on` unless the kernel enables it by default.
    Intel,
    /// `AuthenticAMD` (or Hygon): AMD-Vi is on by default.
    Amd,
    /// Could not be read (no `/proc/cpuinfo` under the root, another architecture).
    Unknown,
}

/// `/etc/os-release`, as far as planning cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID` (`debian`, `fedora`, `arch`, `pop`).
    pub id: String,
    /// `ID_LIKE`, split.
    pub id_like: Vec<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: String,
}

impl OsRelease {
    /// Whether the distribution is `name` or says it is like it.
    pub fn is_like(&self, name: &str) -> bool {
        self.id == name || self.id_like.iter().any(|like| like == name)
    }
}

/// Facts about the host that boot planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// CPU maker.
    pub cpu_vendor: CpuVendor,
    /// Every PCI function on the host with its id (to tell whether an id is unique).
    pub pci_ids: Vec<(PciAddress, PciId)>,
    /// Installed kernels, oldest first.
    pub kernels: Vec<InstalledKernel>,
    /// Module directories without a kernel image (leftovers), for the notes.
    pub stale_module_dirs: Vec<String>,
    /// The running kernel's command line (`/proc/cmdline`), if readable.
    pub running_cmdline: Option<String>,
    /// The distribution.
    pub os: OsRelease,
}

impl HostFacts {
    /// How many functions on the host carry `id`.
    pub fn count_of(&self, id: PciId) -> usize {
        self.pci_ids
            .iter()
            .filter(|(_, other)| *other == id)
            .count()
    }
}

const DEVICES: &str = "/sys/bus/pci/devices";

/// Reads one device from `ROOT/sys/bus/pci/devices/ADDRESS`.
pub fn read_target(fs: &dyn HostFs, address: PciAddress) -> Result<TargetDevice, BootError> {
    let dir = Path::new(DEVICES).join(address.to_string());
    if !fs.exists(&dir) {
        return Err(BootError::NoSuchDevice(address));
    }
    let hex = |name: &str| -> Result<u32, BootError> {
        let path = dir.join(name);
        let text = fs
            .read_text(&path)
            .map_err(|source| BootError::read(&path, source))?;
        u32::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|_| BootError::Malformed {
            path: path.clone(),
            what: format!("`{text}` is not a hexadecimal number"),
        })
    };
    let vendor = hex("vendor")?;
    let device = hex("device")?;
    let class = hex("class")?;
    let (driver, driver_module) = match fs.resolve_link(&dir.join("driver")) {
        Ok(driver_dir) => {
            let name = driver_dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            let module = fs
                .resolve_link(&driver_dir.join("module"))
                .ok()
                .and_then(|module| module.file_name().map(|n| n.to_string_lossy().into_owned()))
                .map(|module| normalize_module(&module));
            (name, module)
        }
        Err(_) => (None, None),
    };
    Ok(TargetDevice {
        address,
        id: PciId {
            vendor: u16::try_from(vendor).unwrap_or(u16::MAX),
            device: u16::try_from(device).unwrap_or(u16::MAX),
        },
        class: ClassCode(class),
        driver,
        driver_module,
        modalias: fs.read_text(&dir.join("modalias")).ok(),
        boot_vga: fs
            .read_text(&dir.join("boot_vga"))
            .is_ok_and(|text| text == "1"),
    })
}

/// A device of the survey's inventory as boot planning needs it (the `modalias` and the
/// driver's module are read from `fs`, the host the inventory came from).
pub fn target_from_inventory(
    fs: &dyn HostFs,
    device: &crate::inventory::PciDevice,
) -> Result<TargetDevice, BootError> {
    let dir = Path::new(DEVICES).join(device.address.to_string());
    let (Some(vendor), Some(id), Some(class)) = (device.vendor, device.device, device.class) else {
        return Err(BootError::Malformed {
            path: dir,
            what: format!(
                "the vendor, device or class of {} could not be read",
                device.address
            ),
        });
    };
    let driver_module = device
        .driver
        .as_deref()
        .and_then(|driver| crate::sysfs::module_of_driver(fs, driver))
        .map(|module| normalize_module(&module));
    Ok(TargetDevice {
        address: device.address,
        id: PciId { vendor, device: id },
        class,
        driver: device.driver.clone(),
        driver_module,
        modalias: fs.read_text(&dir.join("modalias")).ok(),
        boot_vga: device.boot_vga == Some(true),
    })
}

/// Reads the host facts: CPU vendor, every PCI id, installed kernels, `/proc/cmdline`,
/// `/etc/os-release`.
pub fn read_host_facts(fs: &dyn HostFs) -> HostFacts {
    let (kernels, stale_module_dirs) = installed_kernels(fs);
    HostFacts {
        cpu_vendor: cpu_vendor(fs),
        pci_ids: pci_ids(fs),
        kernels,
        stale_module_dirs,
        running_cmdline: fs.read_text(Path::new("/proc/cmdline")).ok(),
        os: os_release(fs),
    }
}

fn cpu_vendor(fs: &dyn HostFs) -> CpuVendor {
    let Ok(cpuinfo) = fs.read(Path::new("/proc/cpuinfo")) else {
        return CpuVendor::Unknown;
    };
    let text = String::from_utf8_lossy(&cpuinfo);
    let vendor = text
        .lines()
        .find_map(|line| line.strip_prefix("vendor_id"))
        .and_then(|rest| rest.split(':').nth(1))
        .map(str::trim);
    match vendor {
        Some("GenuineIntel") => CpuVendor::Intel,
        Some("AuthenticAMD" | "HygonGenuine") => CpuVendor::Amd,
        _ => CpuVendor::Unknown,
    }
}

fn pci_ids(fs: &dyn HostFs) -> Vec<(PciAddress, PciId)> {
    let Ok(entries) = fs.read_dir(Path::new(DEVICES)) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let address: PciAddress = entry.name.parse().ok()?;
            let dir = Path::new(DEVICES).join(&entry.name);
            let read = |name: &str| {
                let text = fs.read_text(&dir.join(name)).ok()?;
                u16::from_str_radix(text.trim_start_matches("0x"), 16).ok()
            };
            Some((
                address,
                PciId {
                    vendor: read("vendor")?,
                    device: read("device")?,
                },
            ))
        })
        .collect()
}

fn os_release(fs: &dyn HostFs) -> OsRelease {
    let text = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| fs.read(Path::new(path)).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(|value| value.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    OsRelease {
        id: field("ID"),
        id_like: field("ID_LIKE")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        pretty_name: field("PRETTY_NAME"),
    }
}
