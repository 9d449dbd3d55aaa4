//! What PowerShell answers, as plain data.
//!
//! These are the JSON shapes the generated scripts print (field names in camelCase) and the
//! simulator reproduces. They stay close to what Windows said — raw WMI object paths, raw
//! registry values — so that a snapshot records the host's answers rather than passthru's
//! conclusions; the conclusions are drawn in [`crate::survey`].

pub mod device;
pub mod gpu;
pub mod host;
pub(crate) mod lenient;
pub mod vm;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use device::{
    AllocatedResource, DeviceStatus, Disk, DisplayDriver, HostAssignableDevice, MemoryRange,
    PnpDevice,
};
pub use gpu::{GpuAdapter, PartitionResource, PartitionableGpu};
pub use host::{Cmdlets, HostFacts, PolicyValue, PolicyValues};
pub use vm::{AssignedDevice, StopAction, Vm, VmMemory};

/// Everything the survey script reads from a Windows host in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostAnswers {
    /// The host itself.
    pub host: HostFacts,
    /// Which cmdlet listed the partitionable GPUs (`Get-VMHostPartitionableGpu` or the
    /// Windows 10 `Get-VMPartitionableGpu`), `None` when neither exists.
    pub gpu_cmdlet: Option<String>,
    /// Partitionable GPUs.
    pub partitionable_gpus: Vec<PartitionableGpu>,
    /// Every `PCI\` and `PCIP\` devnode, present or not.
    pub pnp_devices: Vec<PnpDevice>,
    /// `Win32_PnPAllocatedResource` rows.
    pub allocated_resources: Vec<AllocatedResource>,
    /// `Win32_DeviceMemoryAddress` ranges.
    pub memory_ranges: Vec<MemoryRange>,
    /// `Get-VMHostAssignableDevice`.
    pub host_assignable_devices: Vec<HostAssignableDevice>,
    /// VMs.
    pub vms: Vec<Vm>,
    /// Disks.
    pub disks: Vec<Disk>,
    /// Parts of the host that could not be read, with the reason (one line each).
    pub problems: Vec<String>,
    /// Warnings PowerShell printed while answering (for example the deprecation notice of
    /// `Get-VMPartitionableGpu`, reference F8e).
    pub warnings: Vec<String>,
}

impl HostAnswers {
    /// Decodes the survey script's answer one element at a time: an element that cannot be
    /// read becomes a line in `problems` instead of failing the whole answer.
    pub fn from_value(value: &Value) -> Self {
        let field = |name: &str| value.get(name);
        let mut problems = Vec::new();
        let host = match field("host") {
            Some(host) => serde_json::from_value(host.clone()).unwrap_or_else(|error| {
                problems.push(format!("could not read the host facts: {error}"));
                HostFacts::default()
            }),
            None => {
                problems.push("the answer has no host facts".to_owned());
                HostFacts::default()
            }
        };
        let partitionable_gpus = take(
            field("partitionableGpus"),
            "partitionable GPU",
            &mut problems,
        );
        let pnp_devices = take(field("pnpDevices"), "PnP device", &mut problems);
        let allocated_resources = take(
            field("allocatedResources"),
            "allocated resource",
            &mut problems,
        );
        let memory_ranges = take(field("memoryRanges"), "memory range", &mut problems);
        let host_assignable_devices = take(
            field("hostAssignableDevices"),
            "host assignable device",
            &mut problems,
        );
        let vms = take(field("vms"), "virtual machine", &mut problems);
        let disks = take(field("disks"), "disk", &mut problems);
        let mut reported = field("problems")
            .map(lenient::strings_of)
            .unwrap_or_default();
        reported.append(&mut problems);
        Self {
            host,
            gpu_cmdlet: field("gpuCmdlet").and_then(lenient::text_of),
            partitionable_gpus,
            pnp_devices,
            allocated_resources,
            memory_ranges,
            host_assignable_devices,
            vms,
            disks,
            problems: reported,
            warnings: field("warnings")
                .map(lenient::strings_of)
                .unwrap_or_default(),
        }
    }
}

fn take<T: serde::de::DeserializeOwned>(
    value: Option<&Value>,
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<T> {
    let (items, mut trouble) = lenient::each(value, what);
    problems.append(&mut trouble);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bad_element_costs_only_itself() {
        let value = serde_json::json!({
            "host": {"build": "22631", "battery": 1, "deviceGuardAvailable": 3},
            "vms": [{"name": "good", "memory": {"startup": -1}}, {"name": 5}, "junk"],
            "pnpDevices": {"instanceId": "PCI\\VEN_1&DEV_2\\3", "locationPaths": "PCIROOT(0)#PCI(0100)"},
        });
        let answers = HostAnswers::from_value(&value);
        assert_eq!(answers.host.build, Some(22631));
        assert!(answers.host.battery);
        assert_eq!(answers.host.device_guard_available, vec![3]);
        assert_eq!(answers.vms.len(), 1);
        assert_eq!(answers.vms[0].memory.startup, Some(u64::MAX));
        assert_eq!(answers.problems.len(), 2, "{:?}", answers.problems);
        assert_eq!(
            answers.pnp_devices[0].location_paths,
            vec!["PCIROOT(0)#PCI(0100)"]
        );
    }
}
