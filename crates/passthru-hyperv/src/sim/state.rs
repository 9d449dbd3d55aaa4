//! What the simulated Hyper-V remembers: host facts, GPUs, devices with their DDA state, VMs,
//! disks, and faults to inject. Loadable from (and saved to) a JSON file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorRecord;
use crate::model::{Disk, HostFacts, MemoryRange, PartitionableGpu, PnpDevice, Vm};
use crate::text::instance::{InstanceId, same_instance};
use crate::text::location::same_location;

/// The `format` value of simulator state files.
pub const FORMAT: &str = "passthru-hyperv-simulator";

/// The whole simulated host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimState {
    /// [`FORMAT`].
    pub format: String,
    /// 1.
    pub version: u32,
    /// What this host is meant to represent.
    #[serde(default)]
    pub description: String,
    /// Host facts, as the survey would answer them.
    pub host: HostFacts,
    /// Partitionable GPUs.
    #[serde(default)]
    pub gpus: Vec<PartitionableGpu>,
    /// PCI devices.
    #[serde(default)]
    pub devices: Vec<SimDevice>,
    /// VMs.
    #[serde(default)]
    pub vms: Vec<Vm>,
    /// Disks.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// How this host misbehaves.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// Failures to inject, consumed as they fire.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Every change made, as the PowerShell line that made it.
    #[serde(default)]
    pub log: Vec<String>,
    /// Counter for ids the simulator hands out.
    #[serde(default)]
    pub next_id: u64,
    /// What [`super::Extension`]s keep about the host (guest disks, the host's driver store),
    /// by extension name, so that it lives in the same file and survives from one command to
    /// the next like the rest of the state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Value>,
}

/// One PCI device of the simulated host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimDevice {
    /// The device as the host sees it while mounted (`PCI\` instance id, location paths,
    /// PCI properties; `problem` 22 when disabled).
    pub pnp: PnpDevice,
    /// Its IRQ numbers while enabled on the host.
    #[serde(default)]
    pub irqs: Vec<u64>,
    /// Its MMIO ranges.
    #[serde(default)]
    pub memory: Vec<MemoryRange>,
    /// Where it is in the DDA state machine.
    #[serde(default)]
    pub dda: SimDda,
    /// Whether the vendor ships a mitigation driver (then `Dismount` works without `-Force`).
    #[serde(default)]
    pub mitigation_driver: bool,
}

/// DDA state of a simulated device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum SimDda {
    /// On the host.
    #[default]
    Host,
    /// Dismounted, in no VM.
    Dismounted,
    /// Assigned to a VM.
    Assigned {
        /// The VM.
        vm: String,
    },
}

/// Ways the simulated host misbehaves, like real ones do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Behaviour {
    /// Whether the firmware gave Windows control of PCI Express (F8i when not).
    pub os_pcie_control: bool,
    /// Where Hyper-V places VMs' upper MMIO region when the VM does not say
    /// (default: `mmio::ASSUMED_HIGH_BASE`).
    pub high_mmio_base: Option<u64>,
    /// VMs whose guest ignores the shutdown request.
    pub no_guest_shutdown: Vec<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            os_pcie_control: true,
            high_mmio_base: None,
            no_guest_shutdown: Vec::new(),
        }
    }
}

/// A failure to inject: the `skip`-th next call of `cmdlet` fails with `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// The cmdlet (`Add-VMAssignableDevice`).
    pub cmdlet: String,
    /// How many matching calls to let through first.
    #[serde(default)]
    pub skip: u32,
    /// The error record; a generic "The operation failed." when absent.
    #[serde(default)]
    pub error: Option<ErrorRecord>,
}

impl SimState {
    /// An empty host with the given facts.
    pub fn new(host: HostFacts) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: 1,
            description: String::new(),
            host,
            gpus: Vec::new(),
            devices: Vec::new(),
            vms: Vec::new(),
            disks: Vec::new(),
            behaviour: Behaviour::default(),
            faults: Vec::new(),
            log: Vec::new(),
            next_id: 0,
            extensions: BTreeMap::new(),
        }
    }

    /// A VM by name (case-insensitive).
    pub fn vm_mut(&mut self, name: &str) -> Option<&mut Vm> {
        self.vms
            .iter_mut()
            .find(|vm| vm.name.eq_ignore_ascii_case(name))
    }

    /// A VM by name (case-insensitive).
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms
            .iter()
            .find(|vm| vm.name.eq_ignore_ascii_case(name))
    }

    /// A device by location path.
    pub fn device_at_mut(&mut self, location: &str) -> Option<&mut SimDevice> {
        self.devices
            .iter_mut()
            .find(|device| device.is_at(location))
    }

    /// A device by location path.
    pub fn device_at(&self, location: &str) -> Option<&SimDevice> {
        self.devices.iter().find(|device| device.is_at(location))
    }

    /// A device by its host instance id.
    pub fn device_by_id_mut(&mut self, instance_id: &str) -> Option<&mut SimDevice> {
        self.devices
            .iter_mut()
            .find(|device| same_instance(&device.pnp.instance_id, instance_id))
    }

    /// The error of the fault injected for the next call of `cmdlet`, if one is due now (it is
    /// consumed); a matching fault with `skip` left lets this call through and counts down.
    pub fn take_fault(&mut self, cmdlet: &str) -> Option<ErrorRecord> {
        let index = self
            .faults
            .iter()
            .position(|fault| fault.cmdlet.eq_ignore_ascii_case(cmdlet))?;
        let fault = &mut self.faults[index];
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        let fault = self.faults.remove(index);
        Some(fault.error.unwrap_or_else(|| {
            ErrorRecord::virtualization(
                cmdlet,
                "OperationFailed",
                "NotSpecified",
                "The operation failed. (injected fault)",
            )
        }))
    }

    /// A fresh GUID-shaped id (deterministic, so that recorded outputs stay stable).
    pub fn fresh_guid(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-5155-4000-8000-{:012X}", self.next_id)
    }
}

impl SimDevice {
    /// Whether this device sits at `location`.
    pub fn is_at(&self, location: &str) -> bool {
        self.pnp
            .location_paths
            .iter()
            .any(|path| same_location(path, location))
    }

    /// Its `PCIROOT` location path.
    pub fn location(&self) -> Option<&str> {
        self.pnp.pci_location()
    }

    /// The `PCIP\` id it has while dismounted.
    pub fn dismounted_id(&self) -> String {
        InstanceId::parse(&self.pnp.instance_id)
            .map(|id| id.with_enumerator("PCIP").to_string())
            .unwrap_or_else(|_| format!("PCIP\\{}", self.pnp.instance_id))
    }
}
