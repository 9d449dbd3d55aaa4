//! The inventory of a Linux host: plain data read once from sysfs and `/proc`, judged by
//! [`crate::checks`], planned from by `assign`, and serialized for `survey --json`.

use passthru_core::pci::config::CapabilityReadout;
use passthru_core::pci::resource::Resources;
use passthru_core::pci::{ClassCode, DeviceCategory, PciAddress};
use passthru_core::select::Selectable;
use serde::{Deserialize, Serialize};

use crate::serde_hex;

/// Everything survey learned about a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Host readiness facts: IOMMU, kernel parameters, CPU, KVM, VFIO modules.
    pub host: HostInfo,
    /// Every PCI function in `/sys/bus/pci/devices`, sorted by address.
    pub devices: Vec<PciDevice>,
    /// Every IOMMU group in `/sys/kernel/iommu_groups`, sorted by number (numbers can have
    /// gaps).
    pub groups: Vec<IommuGroup>,
    /// Problems that belong to no single device (unreadable directories, odd names).
    pub warnings: Vec<String>,
}

impl Inventory {
    /// The device at `address`.
    pub fn device(&self, address: PciAddress) -> Option<&PciDevice> {
        self.devices
            .binary_search_by(|device| device.address.cmp(&address))
            .ok()
            .map(|index| &self.devices[index])
    }

    /// The IOMMU group numbered `number`.
    pub fn group(&self, number: u32) -> Option<&IommuGroup> {
        self.groups
            .binary_search_by(|group| group.number.cmp(&number))
            .ok()
            .map(|index| &self.groups[index])
    }

    /// Whether any device's config space could only be read in part (not root).
    pub fn capabilities_need_root(&self) -> bool {
        self.devices
            .iter()
            .any(|device| matches!(device.config, CapabilityReadout::NeedsRoot { .. }))
    }
}

/// What a function is, as far as IOMMU groups are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceRole {
    /// A function that does work (GPU, NIC, audio, ...): it must be isolated to be assigned.
    Endpoint,
    /// A PCI-to-PCI bridge, root port or switch port (class 0x0604/0x0609, or it has a
    /// `pci_bus/` directory): stays with the host and never blocks a group.
    Bridge,
    /// A host bridge (class 0x0600).
    HostBridge,
}

/// One PCI function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PciDevice {
    /// `DDDD:BB:DD.F` (VMD domains have five digits).
    pub address: PciAddress,
    /// The device's real sysfs directory, e.g. `/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0`.
    pub sysfs_path: Option<String>,
    /// Vendor id (`vendor`).
    #[serde(with = "serde_hex::id16")]
    pub vendor: Option<u16>,
    /// Device id (`device`).
    #[serde(with = "serde_hex::id16")]
    pub device: Option<u16>,
    /// Subsystem vendor id (`subsystem_vendor`).
    #[serde(with = "serde_hex::id16")]
    pub subsystem_vendor: Option<u16>,
    /// Subsystem device id (`subsystem_device`).
    #[serde(with = "serde_hex::id16")]
    pub subsystem_device: Option<u16>,
    /// Class code (`class`).
    pub class: Option<ClassCode>,
    /// Revision (`revision`).
    #[serde(with = "serde_hex::id8")]
    pub revision: Option<u8>,
    /// Human names from `pci.ids` (filled in by the survey, not by the reader).
    #[serde(default)]
    pub names: DeviceNames,
    /// Endpoint, bridge or host bridge.
    pub role: DeviceRole,
    /// The driver bound now (`driver` link), if any.
    pub driver: Option<String>,
    /// `driver_override`, if set (`(null)` means unset).
    pub driver_override: Option<String>,
    /// IOMMU group number (`iommu_group` link); `None` without an IOMMU.
    pub iommu_group: Option<u32>,
    /// BARs, ROM and VF BARs from `resource`; `None` when it could not be read.
    pub resources: Option<Resources>,
    /// SR-IOV physical-function facts, when the device is a PF.
    pub sriov: Option<SriovInfo>,
    /// The physical function, when this device is an SR-IOV virtual function (`physfn`).
    pub physfn: Option<PciAddress>,
    /// `boot_vga` (only VGA-class devices have it).
    pub boot_vga: Option<bool>,
    /// How the kernel can reset the device.
    pub reset: ResetSupport,
    /// PCIe link speed and width from sysfs.
    pub link: Option<LinkState>,
    /// NUMA node (`numa_node`; `-1` means none and is stored as `None`).
    pub numa_node: Option<i32>,
    /// MSI/MSI-X vectors allocated now (`msi_irqs/`).
    pub interrupts: InterruptVectors,
    /// What the `config` file revealed (header, capabilities, or why not).
    pub config: CapabilityReadout,
    /// The nearest PCI device above this one (its bridge or root port).
    pub parent: Option<PciAddress>,
    /// Every PCI device above this one, nearest first (for VMD: includes the VMD controller).
    pub upstream: Vec<PciAddress>,
    /// Problems reading this device; the other fields are still as complete as possible.
    pub warnings: Vec<String>,
}

impl PciDevice {
    /// An empty device at `address`, for the reader to fill in.
    pub fn new(address: PciAddress) -> Self {
        Self {
            address,
            sysfs_path: None,
            vendor: None,
            device: None,
            subsystem_vendor: None,
            subsystem_device: None,
            class: None,
            revision: None,
            names: DeviceNames::default(),
            role: DeviceRole::Endpoint,
            driver: None,
            driver_override: None,
            iommu_group: None,
            resources: None,
            sriov: None,
            physfn: None,
            boot_vga: None,
            reset: ResetSupport::default(),
            link: None,
            numa_node: None,
            interrupts: InterruptVectors::default(),
            config: CapabilityReadout::Unavailable {
                reason: "not read".to_owned(),
            },
            parent: None,
            upstream: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The coarse category (`gpu`, `net`, `audio`, ...).
    pub fn category(&self) -> DeviceCategory {
        self.class
            .map(ClassCode::category)
            .unwrap_or(DeviceCategory::Other)
    }

    /// Whether this is a display controller (VGA, XGA, 3D or other display class).
    pub fn is_gpu(&self) -> bool {
        self.category() == DeviceCategory::Gpu
    }

    /// `vendor:device` as `10de:2204`, or `????:????` parts when unknown.
    pub fn ids_text(&self) -> String {
        let hex = |id: Option<u16>| id.map_or("????".to_owned(), |id| format!("{id:04x}"));
        format!("{}:{}", hex(self.vendor), hex(self.device))
    }

    /// A short human name: `NVIDIA Corporation GA102 [GeForce RTX 3090]`, falling back to
    /// the ids.
    pub fn display_name(&self) -> String {
        match (&self.names.vendor, &self.names.device) {
            (Some(vendor), Some(device)) => format!("{vendor} {device}"),
            (Some(vendor), None) => match self.device {
                Some(device) => format!("{vendor} Device {device:04x}"),
                None => format!("{vendor} device"),
            },
            _ => format!("Device {}", self.ids_text()),
        }
    }
}

impl Selectable for PciDevice {
    fn pci_address(&self) -> Option<PciAddress> {
        Some(self.address)
    }

    fn pci_ids(&self) -> Option<(u16, u16)> {
        Some((self.vendor?, self.device?))
    }

    fn name_contains(&self, needle: &str) -> bool {
        [
            &self.names.vendor,
            &self.names.device,
            &self.names.subsystem,
        ]
        .into_iter()
        .flatten()
        .any(|name| name.to_lowercase().contains(needle))
            || self.display_name().to_lowercase().contains(needle)
    }

    fn describe(&self) -> String {
        format!(
            "{}  {} [{}]",
            self.address,
            self.display_name(),
            self.ids_text()
        )
    }
}

/// Names from `pci.ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNames {
    /// Vendor name.
    pub vendor: Option<String>,
    /// Device name.
    pub device: Option<String>,
    /// Subsystem vendor name.
    pub subsystem_vendor: Option<String>,
    /// Subsystem name, when `pci.ids` lists it under the device.
    pub subsystem: Option<String>,
    /// Class name (`VGA compatible controller`).
    pub class: Option<String>,
}

/// SR-IOV facts of a physical function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SriovInfo {
    /// `sriov_totalvfs`.
    pub total_vfs: Option<u32>,
    /// `sriov_numvfs` (VFs enabled now).
    pub num_vfs: Option<u32>,
    /// `sriov_vf_device`: the device id the VFs report.
    #[serde(with = "serde_hex::id16")]
    pub vf_device: Option<u16>,
    /// The enabled VFs (`virtfn*` links), in VF order.
    pub virtfns: Vec<PciAddress>,
}

/// How the kernel can reset a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetSupport {
    /// `reset_method` (kernel 5.15+): the enabled methods in order, e.g. `["flr", "bus"]`.
    /// `None` when the file does not exist, which on 5.15+ means there is no reset at all.
    pub methods: Option<Vec<String>>,
    /// Whether the write-only `reset` file exists (it does whenever some reset works; the only
    /// sign on kernels before 5.15). Only looked up when `reset_method` lists no method.
    pub reset_file: bool,
}

impl ResetSupport {
    /// Whether the kernel can reset the function by some method.
    pub fn available(&self) -> bool {
        match &self.methods {
            Some(methods) => !methods.is_empty(),
            None => self.reset_file,
        }
    }
}

/// PCIe link state as sysfs reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    /// `current_link_speed`, e.g. `16.0 GT/s PCIe`.
    pub current_speed: Option<String>,
    /// `current_link_width` (lanes).
    pub current_width: Option<u32>,
    /// `max_link_speed`.
    pub max_speed: Option<String>,
    /// `max_link_width`.
    pub max_width: Option<u32>,
}

/// MSI and MSI-X vectors the device has allocated now (`msi_irqs/`). A function uses one
/// mode at a time, so at most one of the two is non-zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptVectors {
    /// MSI vectors.
    pub msi: u32,
    /// MSI-X vectors.
    pub msix: u32,
}

/// One IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IommuGroup {
    /// The group number (the directory name).
    pub number: u32,
    /// Every member, PCI or not, sorted by name.
    pub members: Vec<GroupMember>,
    /// `reserved_regions`.
    pub reserved_regions: Vec<ReservedRegion>,
    /// `type`: the default DMA domain (`DMA`, `DMA-FQ`, `identity`, ...). It says nothing
    /// about VFIO ownership.
    pub default_domain: Option<String>,
    /// Problems reading the group.
    pub warnings: Vec<String>,
}

impl IommuGroup {
    /// The PCI members' addresses.
    pub fn pci_members(&self) -> impl Iterator<Item = PciAddress> + '_ {
        self.members.iter().filter_map(|member| match member {
            GroupMember::Pci { address } => Some(*address),
            GroupMember::Other { .. } => None,
        })
    }
}

/// A member of an IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GroupMember {
    /// A PCI function (details in [`Inventory::devices`]).
    Pci {
        /// Its address.
        address: PciAddress,
    },
    /// A device on another bus (platform/ACPI devices on some machines).
    Other {
        /// The entry name in the group's `devices/` directory.
        name: String,
        /// Where the link points.
        sysfs_path: Option<String>,
        /// The driver bound to it, if any.
        driver: Option<String>,
    },
}

/// One line of a group's `reserved_regions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedRegion {
    /// First address.
    #[serde(with = "serde_hex::u64_text")]
    pub start: u64,
    /// Last address.
    #[serde(with = "serde_hex::u64_text")]
    pub end: u64,
    /// `direct`, `direct-relaxable`, `msi` or `reserved`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Host-wide facts for readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: Option<String>,
    /// Entries of `/sys/class/iommu` (`dmar0`, `ivhd0`, ...). Empty: no IOMMU is active.
    pub iommu_units: Vec<String>,
    /// The passthrough-related kernel parameters from `/proc/cmdline`, in order.
    pub kernel_params: Vec<KernelParam>,
    /// CPU facts from `/proc/cpuinfo`.
    pub cpu: CpuInfo,
    /// Whether `/dev/kvm` exists.
    pub kvm_device: bool,
    /// The modules passthrough needs.
    pub modules: Vec<ModuleInfo>,
}

/// One `name[=value]` kernel parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelParam {
    /// Name (`intel_iommu`).
    pub name: String,
    /// Value (`on`), if any.
    pub value: Option<String>,
}

/// CPU facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// `vendor_id` (`GenuineIntel`, `AuthenticAMD`, ...).
    pub vendor_id: Option<String>,
    /// `model name`.
    pub model_name: Option<String>,
    /// The `vmx` flag (Intel VT-x).
    pub vmx: bool,
    /// The `svm` flag (AMD-V).
    pub svm: bool,
    /// The `hypervisor` flag: this host is itself a virtual machine.
    pub hypervisor: bool,
    /// Physical address bits (`address sizes`).
    pub physical_address_bits: Option<u32>,
    /// Virtual address bits.
    pub virtual_address_bits: Option<u32>,
}

/// Which CPU maker, for advice that differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuVendor {
    /// Intel (VT-x, VT-d, `intel_iommu=`).
    Intel,
    /// AMD or Hygon (AMD-V, AMD-Vi).
    Amd,
    /// Anything else, or unknown.
    Other,
}

impl CpuInfo {
    /// The CPU maker.
    pub fn vendor(&self) -> CpuVendor {
        match self.vendor_id.as_deref() {
            Some("GenuineIntel") => CpuVendor::Intel,
            Some("AuthenticAMD" | "HygonGenuine") => CpuVendor::Amd,
            _ => CpuVendor::Other,
        }
    }
}

/// A kernel module and whether it can be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// Module name with underscores (`vfio_pci`).
    pub name: String,
    /// Its state.
    pub state: ModuleState,
}

/// Whether a module is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleState {
    /// Loaded now (`/sys/module/NAME/initstate`).
    Loaded,
    /// Built into the kernel.
    BuiltIn,
    /// Installed for the running kernel but not loaded.
    Available,
    /// Not installed for the running kernel.
    Missing,
    /// Unknown: the running kernel's `/lib/modules` directory could not be read.
    Unknown,
}
