//! Everything the planners judge by besides the inventory, read from the host once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

use crate::boot::kernels::{ModuleIndex, normalize_module};
use crate::inventory::Inventory;
use crate::probes::{self, Opener, RefusalProbes};
use crate::sysfs;

/// A module whose `modules.alias` entry matches a device: the driver the kernel would give
/// the device by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasMatch {
    /// The module (`bochs`, `snd_hda_intel`).
    pub module: String,
    /// The PCI driver it registers (`bochs-drm`), known when the module is loaded.
    pub driver: Option<String>,
    /// Whether it is loaded now.
    pub loaded: bool,
}

/// What the planners need besides the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanningFacts {
    /// Every loaded module (sysfs names), for undoing `modprobe vfio-pci` exactly.
    pub loaded_modules: BTreeSet<String>,
    /// PCI drivers registered now (`/sys/bus/pci/drivers`).
    pub registered_drivers: BTreeSet<String>,
    /// Driver → the module that provides it (absent: built in).
    pub driver_modules: BTreeMap<String, String>,
    /// Refusal-probe findings per device of interest.
    pub findings: BTreeMap<PciAddress, Vec<probes::Finding>>,
    /// IOMMU group → processes holding `/dev/vfio/<group>` (a running VM).
    pub vfio_users: BTreeMap<u32, Vec<Opener>>,
    /// Processes whose open files were hidden (not root): the two checks above may miss some.
    pub hidden_processes: usize,
    /// Device → the modules whose aliases match its `modalias`.
    pub natural_drivers: BTreeMap<PciAddress, Vec<AliasMatch>>,
}

impl PlanningFacts {
    /// Reads the facts for `devices` (see [`super::devices_of_interest`]).
    pub fn gather(fs: &dyn HostFs, inventory: &Inventory, devices: &BTreeSet<PciAddress>) -> Self {
        let probes = RefusalProbes::read(fs);
        let loaded_modules = sysfs::loaded_modules(fs).unwrap_or_default();
        let registered_drivers: BTreeSet<String> = fs
            .read_dir(Path::new("/sys/bus/pci/drivers"))
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.name)
            .collect();
        let driver_modules = registered_drivers
            .iter()
            .filter_map(|driver| {
                sysfs::module_of_driver(fs, driver).map(|module| (driver.clone(), module))
            })
            .collect::<BTreeMap<_, _>>();
        let index = running_module_index(fs);
        let mut facts = Self {
            loaded_modules,
            registered_drivers,
            driver_modules,
            hidden_processes: probes.hidden_processes(),
            ..Self::default()
        };
        for &address in devices {
            facts.findings.insert(address, probes.check(fs, address));
            let group = inventory
                .device(address)
                .and_then(|device| device.iommu_group);
            if let Some(group) = group {
                let users = probes.vfio_group_users(group);
                if !users.is_empty() {
                    facts.vfio_users.insert(group, users.to_vec());
                }
            }
            if let (Some(index), Ok(modalias)) = (
                index.as_ref(),
                fs.read_text(&sysfs::device_dir(address).join("modalias")),
            ) {
                let matches = index
                    .drivers_for(modalias.trim())
                    .into_iter()
                    .map(|module| facts.alias_match(fs, module))
                    .collect();
                facts.natural_drivers.insert(address, matches);
            }
        }
        facts
    }

    fn alias_match(&self, fs: &dyn HostFs, module: String) -> AliasMatch {
        let module = normalize_module(&module);
        let loaded = self.loaded_modules.contains(&module);
        // A loaded module's PCI drivers: `/sys/module/<m>/drivers/pci:<driver>`.
        let driver = fs
            .read_dir(&sysfs::module_dir(&module).join("drivers"))
            .unwrap_or_default()
            .into_iter()
            .find_map(|entry| entry.name.strip_prefix("pci:").map(str::to_owned))
            .or_else(|| {
                // Built-in drivers have no module directory; their name is the module's.
                self.registered_drivers
                    .iter()
                    .find(|driver| normalize_module(driver) == module)
                    .cloned()
            });
        AliasMatch {
            module,
            driver,
            loaded,
        }
    }

    /// The module providing `driver`, when it is a module.
    pub fn module_of(&self, driver: &str) -> Option<String> {
        self.driver_modules.get(driver).cloned()
    }
}

/// The running kernel's module index (`/lib/modules/$(uname -r)`), when it can be read.
fn running_module_index(fs: &dyn HostFs) -> Option<ModuleIndex> {
    let release = fs.read_text(Path::new("/proc/sys/kernel/osrelease")).ok()?;
    let release = release.trim();
    ["/lib/modules", "/usr/lib/modules"]
        .iter()
        .map(|base| ModuleIndex::read(fs, &Path::new(base).join(release)))
        .find(|index| index.indexed)
}
