//! The Windows survey: conclusions drawn from a host's answers.
//!
//! [`analyze`] is a pure function from [`HostAnswers`] (live, replayed from a snapshot, or
//! produced by the simulator) to a [`WindowsSurvey`]: host readiness, partitionable GPUs joined
//! to their PnP devices, a SurveyDDA-equivalent verdict and DDA state for every PCI device,
//! and every VM with its settings, partitions, assigned devices and problems. Its JSON form is
//! versioned ([`SCHEMA`]) and documented in `docs/json-schema-windows.md`.

mod devices;
mod gpus;
mod readiness;
pub mod resources;
pub mod verdict;
mod vms;

use serde::{Deserialize, Serialize};

use crate::model::{HostAnswers, PolicyValues, VmMemory};
pub use resources::Interrupts;
pub use verdict::{Assignable, Reason, Verdict};

/// The schema identifier of [`WindowsSurvey`]'s JSON.
pub const SCHEMA: &str = "passthru.survey.windows/1";

/// Everything `passthru survey` reports about a Windows host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowsSurvey {
    /// [`SCHEMA`].
    pub schema: String,
    /// Where the answers came from.
    pub source: Source,
    /// The host and its readiness.
    pub host: HostReport,
    /// Partitionable GPUs.
    pub gpus: Vec<GpuReport>,
    /// PCI devices (present, dismounted, or assigned), bridges included but marked.
    pub devices: Vec<DeviceReport>,
    /// Virtual machines.
    pub vms: Vec<VmReport>,
    /// Parts of the host that could not be read.
    pub problems: Vec<String>,
    /// Warnings PowerShell printed, with explanations where passthru has one.
    pub warnings: Vec<String>,
}

/// Where the answers came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `live`, `snapshot` or `simulator`.
    pub kind: String,
    /// The snapshot or simulator file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the snapshot says about its own origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// When the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<String>,
}

/// Client or server Windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKind {
    /// Windows 10/11 (ProductType `WinNT`).
    Client,
    /// Windows Server (ProductType `ServerNT` or `LanmanNT`).
    Server,
    /// Not reported.
    Unknown,
}

/// How good a readiness check's result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Worth knowing.
    Info,
    /// Works with caveats, or may cause trouble.
    Warn,
    /// Blocks something.
    Bad,
}

/// One host readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier (`hyper-v`, `iommu`, `dda`, ...).
    pub id: String,
    /// The result.
    pub status: Status,
    /// One line.
    pub summary: String,
    /// Further lines (for example `IovSupportReasons`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
    /// What to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// The host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// Computer name.
    pub name: Option<String>,
    /// Windows caption ("Microsoft Windows 11 Pro").
    pub os: Option<String>,
    /// `EditionID`.
    pub edition: Option<String>,
    /// Build number.
    pub build: Option<u32>,
    /// Update revision.
    pub ubr: Option<u32>,
    /// Client or server.
    pub kind: HostKind,
    /// CPU name.
    pub cpu: Option<String>,
    /// CPU physical address width.
    pub cpu_physical_address_bits: Option<u32>,
    /// The largest upper MMIO region a VM can have on this CPU (assumed base, see `mmio`).
    pub max_high_mmio_bytes: Option<u64>,
    /// Which cmdlet lists partitionable GPUs here.
    pub gpu_cmdlet: Option<String>,
    /// Whether `Add-VMGpuPartitionAdapter -InstancePath` exists (build ≥ 22000).
    pub gpu_instance_path: bool,
    /// Whether this edition supports DDA at all.
    pub dda_supported: bool,
    /// The Hyper-V group-policy values.
    pub policy: PolicyReport,
    /// Readiness checks.
    pub checks: Vec<Check>,
}

/// The Hyper-V group-policy values (`None`: not set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// `RequireSecureDeviceAssignment`.
    pub require_secure_device_assignment: Option<u32>,
    /// `RequireSupportedDeviceAssignment`.
    pub require_supported_device_assignment: Option<u32>,
}

impl PolicyReport {
    /// The current data of `value`.
    pub fn get(&self, value: crate::model::PolicyValue) -> Option<u32> {
        PolicyValues::from(*self).get(value)
    }
}

impl From<PolicyValues> for PolicyReport {
    fn from(values: PolicyValues) -> Self {
        Self {
            require_secure_device_assignment: values.require_secure_device_assignment,
            require_supported_device_assignment: values.require_supported_device_assignment,
        }
    }
}

impl From<PolicyReport> for PolicyValues {
    fn from(report: PolicyReport) -> Self {
        Self {
            require_secure_device_assignment: report.require_secure_device_assignment,
            require_supported_device_assignment: report.require_supported_device_assignment,
        }
    }
}

/// A VM's memory configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Dynamic memory on.
    pub dynamic: bool,
    /// Startup bytes.
    pub startup: Option<u64>,
    /// Minimum bytes.
    pub minimum: Option<u64>,
    /// Maximum bytes.
    pub maximum: Option<u64>,
}

impl From<VmMemory> for MemoryReport {
    fn from(memory: VmMemory) -> Self {
        Self {
            dynamic: memory.dynamic,
            startup: memory.startup,
            minimum: memory.minimum,
            maximum: memory.maximum,
        }
    }
}

/// GPU-PV (paravirtualised, consumer) or SR-IOV GPU-P.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuKind {
    /// `\GPUPARAV`: every VM shares the whole GPU; partition sizes have no effect.
    Paravirtual,
    /// SR-IOV partitions with real sizes (Windows Server 2025 / Azure Local).
    SrIov,
}

/// One partitionable GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuReport {
    /// PnP friendly name, or the instance id when none matched.
    pub name: String,
    /// The partitionable GPU's `Name` (what `-InstancePath` takes).
    pub instance_path: String,
    /// The GPU's PnP instance id.
    pub instance_id: Option<String>,
    /// `vendor:device`.
    pub vendor_device: Option<String>,
    /// GPU-PV or SR-IOV GPU-P.
    pub kind: GpuKind,
    /// Dedicated VRAM from the driver.
    pub vram_bytes: Option<u64>,
    /// Driver version.
    pub driver_version: Option<String>,
    /// Driver provider.
    pub driver_provider: Option<String>,
    /// The GPU's location path.
    pub location_path: Option<String>,
    /// Bytes of BARs on the host (what a VM's MMIO gap must hold).
    pub mmio_bytes: Option<u64>,
    /// Current partition count.
    pub partition_count: Option<u32>,
    /// Valid partition counts.
    pub valid_partition_counts: Vec<u32>,
    /// Whether the reported sizes are the consumer placeholders.
    pub placeholder_sizes: bool,
    /// VMs with a partition of this GPU.
    pub used_by: Vec<String>,
    /// Plain-language notes.
    pub notes: Vec<String>,
}

/// DDA states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DdaState {
    /// Used by the host, enabled.
    Host,
    /// On the host, but disabled.
    HostDisabled,
    /// Dismounted (`PCIP\`) and in no VM: usable by nobody until assigned or mounted back.
    Dismounted,
    /// Assigned to a VM.
    Assigned,
}

/// One PCI device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Friendly name.
    pub name: String,
    /// Current instance id (`PCI\` or `PCIP\`).
    pub instance_id: String,
    /// The host (`PCI\`) form of the instance id.
    pub host_instance_id: String,
    /// The `PCIROOT(...)` location path.
    pub location_path: Option<String>,
    /// Bus address as `DDDD:BB:DD.F`, when Windows reported bus and address.
    pub address: Option<String>,
    /// `vendor:device`.
    pub vendor_device: Option<String>,
    /// Setup class.
    pub class: Option<String>,
    /// Driver service.
    pub service: Option<String>,
    /// Whether this is a bridge or port (not something to assign).
    pub bridge: bool,
    /// Where it is in the DDA state machine.
    pub state: DdaState,
    /// The VM it is assigned to.
    pub vm: Option<String>,
    /// The SurveyDDA-equivalent verdict.
    pub verdict: Verdict,
    /// Other functions of the same card (moved together).
    pub companions: Vec<String>,
    /// Whether it controls the disk Windows runs from.
    pub system_disk: bool,
}

/// One VM's GPU partition adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterReport {
    /// Adapter id.
    pub id: Option<String>,
    /// The partitionable GPU it is pinned to (empty on Windows 10).
    pub instance_path: Option<String>,
    /// That GPU's name.
    pub gpu: Option<String>,
    /// Whether it points at a GPU that is no longer partitionable here.
    pub stale: bool,
}

/// One device assigned to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedReport {
    /// Location path.
    pub location_path: Option<String>,
    /// Instance id as Hyper-V recorded it.
    pub instance_id: Option<String>,
    /// Device name, from the host's PnP data.
    pub name: Option<String>,
    /// Whether no device exists at that location any more.
    pub stale: bool,
}

/// One VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmReport {
    /// Name.
    pub name: String,
    /// Id.
    pub id: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Generation.
    pub generation: Option<u32>,
    /// Configuration version.
    pub version: Option<String>,
    /// Low MMIO gap in bytes.
    pub low_mmio: Option<u64>,
    /// High MMIO gap in bytes.
    pub high_mmio: Option<u64>,
    /// High MMIO base in bytes, when reported.
    pub high_mmio_base: Option<u64>,
    /// `GuestControlledCacheTypes`.
    pub cache_types: Option<bool>,
    /// `AutomaticStopAction`.
    pub stop_action: Option<String>,
    /// Memory.
    pub memory: MemoryReport,
    /// GPU partition adapters.
    pub gpu_adapters: Vec<AdapterReport>,
    /// DDA devices.
    pub devices: Vec<AssignedReport>,
    /// What will go wrong, in sentences.
    pub problems: Vec<String>,
}

/// Draws every conclusion from `answers`.
pub fn analyze(answers: &HostAnswers, source: Source) -> WindowsSurvey {
    let devices = devices::reports(answers);
    let gpus = gpus::reports(answers, &devices);
    let vms = vms::reports(answers, &gpus, &devices);
    let host = readiness::report(answers, &gpus, &devices);
    let warnings = answers
        .warnings
        .iter()
        .map(|warning| match crate::error::explain_warning(warning) {
            Some(explanation) => format!("{warning} ({explanation})"),
            None => warning.clone(),
        })
        .collect();
    WindowsSurvey {
        schema: SCHEMA.to_owned(),
        source,
        host,
        gpus,
        devices,
        vms,
        problems: answers.problems.clone(),
        warnings,
    }
}

impl DeviceReport {
    /// "Name (location path)", or the instance id where there is no location path.
    pub fn label(&self) -> String {
        format!(
            "{} ({})",
            self.name,
            self.location_path.as_deref().unwrap_or(&self.instance_id)
        )
    }
}

impl WindowsSurvey {
    /// A VM by name (case-insensitive, as Hyper-V matches names).
    pub fn vm(&self, name: &str) -> Option<&VmReport> {
        self.vms
            .iter()
            .find(|vm| vm.name.eq_ignore_ascii_case(name))
    }

    /// A device by location path.
    pub fn device_at(&self, location_path: &str) -> Option<&DeviceReport> {
        self.devices.iter().find(|device| {
            device
                .location_path
                .as_deref()
                .is_some_and(|path| crate::text::location::same_location(path, location_path))
        })
    }
}
