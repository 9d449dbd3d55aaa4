//! The decisions behind a persistent assignment, as pure functions of the devices and the
//! host facts: which kernel parameters, whether to bind by id or by address, which modules
//! the initramfs loads early, and which host drivers must wait for vfio-pci.

use std::collections::BTreeSet;

use super::facts::{CpuVendor, HostFacts, PciId, TargetDevice};
use super::kernels::{ModuleStatus, normalize_module};
use super::state::{BindingMethod, PersistedDevice};

/// The kernel parameter that switches on the per-address udev rule. Removing it at the boot
/// menu boots without passthru's early binding (see docs/persistent.md).
pub const ADDRESS_SWITCH: &str = "passthru.vfio=1";

/// Modules the initramfs loads early, in load order. `vfio_virqfd` is never listed: before
/// Linux 6.2 it is a dependency of `vfio-pci` that every generator pulls in by itself
/// (`modules.dep`), and since 6.2 it is part of `vfio` and listing it breaks the build or the
/// boot (uwzis/GPU-Passthrough-Manager#40, pavolelsig/passthrough_helper_fedora#2).
pub const EARLY_MODULES: [&str; 3] = ["vfio_pci", "vfio", "vfio_iommu_type1"];

/// Parameters passthru may have added in any version and removes when no longer wanted,
/// even if no current rule asks for them. `amd_iommu=on` is not a valid value (the AMD
/// IOMMU driver accepts `off`, `force_isolation`, `fullflush`, …) and is on by default.
pub const RETIRED_PARAMS: [&str; 1] = ["amd_iommu=on"];

/// Drivers that never need a `softdep`: vfio itself and stub drivers.
fn is_stub_driver(module: &str) -> bool {
    module.starts_with("vfio") || module == "pci_stub"
}

/// What to configure, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decisions {
    /// Binding method.
    pub binding: BindingMethod,
    /// Kernel parameters, in the order they are appended.
    pub kernel_params: Vec<String>,
    /// Modules the initramfs loads early.
    pub early_modules: Vec<String>,
    /// Host driver modules that must load after vfio-pci.
    pub softdeps: Vec<String>,
    /// Explanations for the plan (why each decision, what is left alone).
    pub notes: Vec<String>,
}

/// Turns a device read from the host into what the record keeps: the host drivers that would
/// claim it, from its current driver and from every kernel's `modules.alias`.
pub fn persisted(device: &TargetDevice, facts: &HostFacts) -> PersistedDevice {
    let mut drivers = BTreeSet::new();
    if let Some(module) = &device.driver_module {
        drivers.insert(normalize_module(module));
    }
    if let Some(modalias) = &device.modalias {
        for kernel in &facts.kernels {
            drivers.extend(kernel.modules.drivers_for(modalias));
        }
    }
    drivers.retain(|module| !is_stub_driver(module));
    PersistedDevice {
        address: device.address,
        id: device.id,
        class: device.class,
        host_drivers: drivers.into_iter().collect(),
        boot_vga: device.boot_vga,
    }
}

/// Decides the configuration for `devices` (all devices that are to be assigned after this
/// operation) on this host.
pub fn decide(devices: &[PersistedDevice], facts: &HostFacts) -> Decisions {
    let mut notes = Vec::new();
    let mut kernel_params = Vec::new();

    match facts.cpu_vendor {
        CpuVendor::Intel => {
            let not_on: Vec<String> = facts
                .kernels
                .iter()
                .filter(|kernel| kernel.intel_iommu_default_on != Some(true))
                .map(|kernel| kernel.release.0.clone())
                .collect();
            if not_on.is_empty() && !facts.kernels.is_empty() {
                notes.push(
                    "Intel CPU: every installed kernel turns the IOMMU on by default \
                     (CONFIG_INTEL_IOMMU_DEFAULT_ON=y), so intel_iommu=on is not needed"
                        .into(),
                );
            } else {
                kernel_params.push("intel_iommu=on".to_owned());
                notes.push(format!(
                    "Intel CPU: intel_iommu=on, because these kernels do not turn the IOMMU on by \
                     default (or have no readable config): {}",
                    not_on.join(", ")
                ));
            }
        }
        CpuVendor::Amd => notes.push(
            "AMD CPU: the IOMMU (AMD-Vi) is on by default; no switch is needed \
             (amd_iommu=on is not a valid value)"
                .into(),
        ),
        CpuVendor::Unknown => notes.push(
            "could not tell the CPU maker (no /proc/cpuinfo under the root); no IOMMU switch \
             added. On Intel add intel_iommu=on yourself unless the kernel enables it by default"
                .into(),
        ),
    }
    kernel_params.push("iommu=pt".to_owned());

    let mut ids: Vec<PciId> = devices.iter().map(|device| device.id).collect();
    ids.sort();
    ids.dedup();
    let shared: Vec<String> = ids
        .iter()
        .filter(|id| facts.count_of(**id) > 1)
        .map(|id| format!("{id} ({} functions)", facts.count_of(*id)))
        .collect();
    let binding = if shared.is_empty() {
        let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
        kernel_params.push(format!("vfio-pci.ids={}", list.join(",")));
        notes.push(
            "each id is unique on this host, so vfio-pci.ids= on the kernel command line binds \
             exactly these devices"
                .into(),
        );
        BindingMethod::Ids
    } else {
        kernel_params.push(ADDRESS_SWITCH.to_owned());
        notes.push(format!(
            "binding by address, because vfio-pci.ids= would also take other functions with the \
             same id: {}; a udev rule sets driver_override for each chosen address before any \
             host driver loads, and is switched on by {ADDRESS_SWITCH}",
            shared.join(", ")
        ));
        BindingMethod::Address
    };

    let mut softdeps = BTreeSet::new();
    for device in devices {
        softdeps.extend(device.host_drivers.iter().cloned());
        if device.boot_vga {
            notes.push(format!(
                "{} is the boot display: after the reboot the host shows nothing on it (firmware \
                 messages may still appear until vfio-pci takes it); keep a second GPU or a \
                 serial console for the host",
                device.address
            ));
        }
    }

    for kernel in &facts.kernels {
        if kernel.release.older_than(6, 2) {
            let depends = kernel.modules.status("vfio_virqfd") != ModuleStatus::Missing;
            notes.push(format!(
                "kernel {}: older than 6.2, vfio_virqfd {}; it is not listed, the generator \
                 follows vfio-pci's dependencies",
                kernel.release,
                if depends {
                    "is a separate module"
                } else {
                    "is not present"
                }
            ));
        }
        for module in EARLY_MODULES {
            if kernel.modules.status(module) == ModuleStatus::Builtin {
                notes.push(format!(
                    "kernel {}: {module} is built in, so it is always there",
                    kernel.release
                ));
            }
        }
    }
    for device in devices {
        for kernel in &facts.kernels {
            for driver in &device.host_drivers {
                if kernel.modules.status(driver) == ModuleStatus::Builtin {
                    notes.push(format!(
                        "kernel {}: {driver} is built in and binds {} before any module can \
                         load; early binding cannot win there",
                        kernel.release, device.address
                    ));
                }
            }
        }
    }
    if !facts.stale_module_dirs.is_empty() {
        notes.push(format!(
            "left alone: module directories without a kernel image (leftovers of removed \
             kernels): {}",
            facts.stale_module_dirs.join(", ")
        ));
    }

    Decisions {
        binding,
        kernel_params,
        early_modules: EARLY_MODULES.iter().map(|m| (*m).to_owned()).collect(),
        softdeps: softdeps.into_iter().collect(),
        notes,
    }
}
