//! Host readiness: is an IOMMU active, are the kernel parameters sensible, can the CPU run
//! KVM, are the VFIO modules there? Without an IOMMU, say exactly what to change.

use super::{Finding, Severity};
use crate::cmdline;
use crate::inventory::{CpuVendor, Inventory, ModuleState};

/// Every host-level finding, most severe first.
pub fn host_findings(inventory: &Inventory) -> Vec<Finding> {
    let mut findings = Vec::new();
    iommu_findings(inventory, &mut findings);
    parameter_findings(inventory, &mut findings);
    cpu_findings(inventory, &mut findings);
    module_findings(inventory, &mut findings);
    if inventory.capabilities_need_root() {
        findings.push(
            Finding::new(
                Severity::Info,
                "capabilities-need-root",
                "only the first 64 bytes of config space are readable without root: FLR, ACS, MSI/MSI-X, SR-IOV and Resizable BAR are not shown",
            )
            .with_fix("run `sudo passthru survey` for the full picture"),
        );
    }
    findings.sort_by_key(|finding| finding.severity);
    findings
}

/// Whether an IOMMU translates DMA on this host.
pub fn iommu_active(inventory: &Inventory) -> bool {
    !inventory.groups.is_empty()
}

fn iommu_findings(inventory: &Inventory, findings: &mut Vec<Finding>) {
    let host = &inventory.host;
    if iommu_active(inventory) {
        let units = if host.iommu_units.is_empty() {
            String::new()
        } else {
            format!(" ({})", host.iommu_units.join(", "))
        };
        findings.push(Finding::new(
            Severity::Info,
            "iommu-active",
            format!(
                "an IOMMU is active{units} with {} IOMMU groups",
                inventory.groups.len()
            ),
        ));
        return;
    }
    let params = &host.kernel_params;
    let vendor = host.cpu.vendor();
    let mut steps = Vec::new();
    if host.cpu.hypervisor {
        steps.push(
            "this host is itself a virtual machine: its hypervisor must give it a virtual IOMMU (QEMU: a q35 machine with -device intel-iommu,intremap=on and kernel-irqchip=split), and only devices passed into this VM can be passed on"
                .to_owned(),
        );
    }
    if matches!(cmdline::value_of(params, "iommu"), Some("off")) {
        steps.push("remove `iommu=off` from the kernel command line".to_owned());
    }
    match vendor {
        CpuVendor::Intel => {
            if !host.cpu.hypervisor {
                steps.push("enable VT-d (Intel Virtualization Technology for Directed I/O) in the firmware setup".to_owned());
            }
            match cmdline::value_of(params, "intel_iommu") {
                Some(value) if value.split(',').any(|part| part == "on") => steps.push(
                    "`intel_iommu=on` is already on the kernel command line, so the IOMMU is missing or disabled below the kernel".to_owned(),
                ),
                Some(value) if value.split(',').any(|part| part == "off") => {
                    steps.push("replace `intel_iommu=off` with `intel_iommu=on` on the kernel command line".to_owned());
                }
                _ => steps.push(
                    "add `intel_iommu=on` to the kernel command line (kernels built without CONFIG_INTEL_IOMMU_DEFAULT_ON need it), then reboot".to_owned(),
                ),
            }
        }
        CpuVendor::Amd => {
            if !host.cpu.hypervisor {
                steps.push("enable the IOMMU (AMD-Vi, sometimes listed as \"IOMMU\" or under NBIO/AMD CBS) and SVM in the firmware setup; the kernel turns AMD-Vi on by itself".to_owned());
            }
            if matches!(cmdline::value_of(params, "amd_iommu"), Some("off")) {
                steps.push("remove `amd_iommu=off` from the kernel command line".to_owned());
            }
        }
        CpuVendor::Other => steps.push(
            "enable the platform's IOMMU in the firmware setup (and on the kernel command line where the platform needs it)".to_owned(),
        ),
    }
    let units = if host.iommu_units.is_empty() {
        "no /sys/class/iommu entries and no IOMMU groups".to_owned()
    } else {
        format!(
            "{} registered but no IOMMU groups",
            host.iommu_units.join(", ")
        )
    };
    findings.push(
        Finding::new(
            Severity::Blocker,
            "iommu-off",
            format!("no IOMMU is active ({units}): no device can be passed through"),
        )
        .with_fix(steps.join("; ")),
    );
}

fn parameter_findings(inventory: &Inventory, findings: &mut Vec<Finding>) {
    let params = &inventory.host.kernel_params;
    for param in params {
        let value = param.value.as_deref().unwrap_or("");
        match param.name.as_str() {
            "amd_iommu" if value == "on" => findings.push(
                Finding::new(
                    Severity::Warning,
                    "amd-iommu-on-useless",
                    "`amd_iommu=on` does nothing: it is not a value the kernel knows (AMD-Vi is on by default)",
                )
                .with_fix("remove it; enable the IOMMU in the firmware setup instead"),
            ),
            "pcie_acs_override" => findings.push(
                Finding::new(
                    Severity::Warning,
                    "acs-override",
                    format!(
                        "`pcie_acs_override={value}` is set: IOMMU groups are split by pretending devices are isolated, so a VM may reach other devices' memory through peer-to-peer DMA"
                    ),
                )
                .with_fix("use it only with VMs you trust; a slot with a real isolated group is safer"),
            ),
            "iommu" if value == "pt" => findings.push(Finding::new(
                Severity::Info,
                "iommu-pt",
                "`iommu=pt`: host devices bypass IOMMU translation (faster); passthrough is not affected",
            )),
            "vfio-pci.ids" | "vfio_pci.ids" => findings.push(Finding::new(
                Severity::Info,
                "vfio-pci-ids",
                format!("vfio-pci claims {value} at boot (`{}`)", param.name),
            )),
            "vfio_iommu_type1.allow_unsafe_interrupts" if value == "1" || value.eq_ignore_ascii_case("y") => findings.push(Finding::new(
                Severity::Warning,
                "unsafe-interrupts",
                "`vfio_iommu_type1.allow_unsafe_interrupts` is on: without interrupt remapping a VM can inject interrupts into the host",
            )),
            _ => {}
        }
    }
}

fn cpu_findings(inventory: &Inventory, findings: &mut Vec<Finding>) {
    let host = &inventory.host;
    let cpu = &host.cpu;
    if !cpu.vmx && !cpu.svm {
        let (name, flag) = match cpu.vendor() {
            CpuVendor::Amd => ("AMD-V", "svm"),
            _ => ("VT-x", "vmx"),
        };
        let message = if cpu.hypervisor {
            format!(
                "the CPU shows no {name} (`{flag}` flag): this virtual machine's hypervisor does not offer nested virtualization"
            )
        } else {
            format!("the CPU shows no {name} (`{flag}` flag): hardware virtualization is off")
        };
        let fix = if cpu.hypervisor {
            "enable nested virtualization on the outer hypervisor".to_owned()
        } else {
            format!("enable {name} in the firmware setup")
        };
        findings
            .push(Finding::new(Severity::Warning, "no-cpu-virtualization", message).with_fix(fix));
    }
    if host.kvm_device {
        findings.push(Finding::new(
            Severity::Info,
            "kvm",
            "/dev/kvm exists: KVM can run virtual machines",
        ));
    } else {
        findings.push(
            Finding::new(Severity::Blocker, "no-kvm", "/dev/kvm is missing: KVM cannot run virtual machines")
                .with_fix("load kvm_intel or kvm_amd (modprobe), after enabling CPU virtualization in the firmware setup"),
        );
    }
}

fn module_findings(inventory: &Inventory, findings: &mut Vec<Finding>) {
    let release = inventory
        .host
        .kernel_release
        .as_deref()
        .unwrap_or("the running kernel");
    let names_in = |state: ModuleState| -> Vec<&str> {
        inventory
            .host
            .modules
            .iter()
            .filter(|module| module.name.starts_with("vfio") && module.state == state)
            .map(|module| module.name.as_str())
            .collect()
    };
    let (verb_is, verb_are) = ("is", "are");
    let listed = |names: &[&str]| {
        (
            names.join(", "),
            if names.len() == 1 { verb_is } else { verb_are },
        )
    };
    let available = names_in(ModuleState::Available);
    if !available.is_empty() {
        let (names, verb) = listed(&available);
        findings.push(Finding::new(
            Severity::Info,
            "module-not-loaded",
            format!("{names} {verb} installed but not loaded; assigning a device loads them"),
        ));
    }
    let missing = names_in(ModuleState::Missing);
    if !missing.is_empty() {
        let (names, verb) = listed(&missing);
        findings.push(
            Finding::new(Severity::Blocker, "module-missing", format!("{names} {verb} not available for kernel {release}"))
                .with_fix("install the kernel's full module package, or use a kernel built with CONFIG_VFIO_PCI"),
        );
    }
    let unknown = names_in(ModuleState::Unknown);
    if !unknown.is_empty() {
        let (names, verb) = listed(&unknown);
        findings.push(Finding::new(
            Severity::Warning,
            "module-unknown",
            format!("{names} {verb} not loaded, and /lib/modules/{release} could not be read to tell whether they are installed"),
        ));
    }
}
