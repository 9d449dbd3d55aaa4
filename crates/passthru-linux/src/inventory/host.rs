//! Host readiness facts: IOMMU units, kernel parameters, CPU, `/dev/kvm`, VFIO modules.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::{EntryKind, HostFs};

use super::model::{CpuInfo, CpuVendor, HostInfo, ModuleInfo, ModuleState};
use super::sysfs_text::io_reason;
use crate::cmdline;

/// `/proc/cpuinfo` bytes to read: the first processor's block is about 1.5 KiB; the whole
/// file of a big server is hundreds of KiB.
pub(crate) const CPUINFO_PREFIX: usize = 16 * 1024;

/// The modules passthrough needs, before the CPU-specific KVM module.
const MODULES: [&str; 4] = ["vfio", "vfio_pci", "vfio_iommu_type1", "kvm"];

/// Reads the host facts. Problems go to `warnings`.
pub(crate) fn read_host(fs: &dyn HostFs, warnings: &mut Vec<String>) -> HostInfo {
    let mut host = HostInfo {
        kernel_release: read_text(fs, "/proc/sys/kernel/osrelease", warnings)
            .filter(|text| !text.is_empty()),
        ..HostInfo::default()
    };
    match fs.read_dir(Path::new("/sys/class/iommu")) {
        Ok(entries) => host.iommu_units = entries.into_iter().map(|entry| entry.name).collect(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => warnings.push(format!(
            "could not list /sys/class/iommu: {}",
            io_reason(&error)
        )),
    }
    if let Some(line) = read_text(fs, "/proc/cmdline", warnings) {
        host.kernel_params = cmdline::parse(&line)
            .into_iter()
            .filter(cmdline::is_passthrough_related)
            .collect();
    }
    match fs.read_prefix(Path::new("/proc/cpuinfo"), CPUINFO_PREFIX) {
        Ok(bytes) => host.cpu = parse_cpuinfo(&String::from_utf8_lossy(&bytes)),
        Err(error) => warnings.push(format!(
            "could not read /proc/cpuinfo: {}",
            io_reason(&error)
        )),
    }
    host.kvm_device = fs.exists(Path::new("/dev/kvm"));
    host.modules = read_modules(fs, host.kernel_release.as_deref(), host.cpu.vendor());
    host
}

fn read_text(fs: &dyn HostFs, path: &str, warnings: &mut Vec<String>) -> Option<String> {
    match fs.read_text(Path::new(path)) {
        Ok(text) => Some(text),
        Err(error) => {
            warnings.push(format!("could not read {path}: {}", io_reason(&error)));
            None
        }
    }
}

/// The first processor's block of `/proc/cpuinfo` (x86 field names).
pub(crate) fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut cpu = CpuInfo::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            // End of the first processor's block.
            if cpu.vendor_id.is_some() {
                break;
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "vendor_id" => cpu.vendor_id = Some(value.to_owned()),
            "model name" => cpu.model_name = Some(value.to_owned()),
            "flags" => {
                for flag in value.split_whitespace() {
                    match flag {
                        "vmx" => cpu.vmx = true,
                        "svm" => cpu.svm = true,
                        "hypervisor" => cpu.hypervisor = true,
                        _ => {}
                    }
                }
            }
            "address sizes" => {
                // "46 bits physical, 57 bits virtual"
                for part in value.split(',') {
                    let mut words = part.split_whitespace();
                    let bits = words.next().and_then(|bits| bits.parse().ok());
                    match words.nth(1) {
                        Some("physical") => cpu.physical_address_bits = bits,
                        Some("virtual") => cpu.virtual_address_bits = bits,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    cpu
}

fn read_modules(fs: &dyn HostFs, release: Option<&str>, vendor: CpuVendor) -> Vec<ModuleInfo> {
    let mut names: Vec<&str> = MODULES.to_vec();
    match vendor {
        CpuVendor::Intel => names.push("kvm_intel"),
        CpuVendor::Amd => names.push("kvm_amd"),
        CpuVendor::Other => names.extend(["kvm_intel", "kvm_amd"]),
    }
    let mut index: Option<Option<ModuleIndex>> = None;
    names
        .into_iter()
        .map(|name| {
            let sys = PathBuf::from("/sys/module").join(name);
            let state = if fs.kind(&sys) == Some(EntryKind::Dir) {
                // Only loadable modules have `initstate`; built-in ones with parameters still
                // get a /sys/module directory.
                if fs.exists(&sys.join("initstate")) {
                    ModuleState::Loaded
                } else {
                    ModuleState::BuiltIn
                }
            } else {
                let index = index.get_or_insert_with(|| {
                    release.and_then(|release| ModuleIndex::read(fs, release))
                });
                match index {
                    None => ModuleState::Unknown,
                    Some(index) if index.builtin.contains(name) => ModuleState::BuiltIn,
                    Some(index) if index.available.contains(name) => ModuleState::Available,
                    Some(_) => ModuleState::Missing,
                }
            };
            ModuleInfo {
                name: name.to_owned(),
                state,
            }
        })
        .collect()
}

/// The module names of `/lib/modules/RELEASE/modules.{dep,builtin}`.
struct ModuleIndex {
    available: HashSet<String>,
    builtin: HashSet<String>,
}

impl ModuleIndex {
    fn read(fs: &dyn HostFs, release: &str) -> Option<Self> {
        let dir = PathBuf::from("/lib/modules").join(release);
        let dep = fs.read(&dir.join("modules.dep")).ok();
        let builtin = fs.read(&dir.join("modules.builtin")).ok();
        if dep.is_none() && builtin.is_none() {
            return None;
        }
        let names = |bytes: Option<Vec<u8>>| -> HashSet<String> {
            let text = String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned();
            text.lines().filter_map(module_name_of_line).collect()
        };
        Some(Self {
            available: names(dep),
            builtin: names(builtin),
        })
    }
}

/// `kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/...` → `vfio_pci`.
pub(crate) fn module_name_of_line(line: &str) -> Option<String> {
    let path = line.split(':').next()?.trim();
    let file = path.rsplit('/').next()?;
    let stem = &file[..file.find(".ko")?];
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen 9 7950X 16-Core Processor\nflags\t\t: fpu vme svm npt\naddress sizes\t: 48 bits physical, 48 bits virtual\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n";

    #[test]
    fn reads_the_first_processor_only() {
        let cpu = parse_cpuinfo(CPUINFO);
        assert_eq!(cpu.vendor(), CpuVendor::Amd);
        assert!(cpu.svm && !cpu.vmx && !cpu.hypervisor);
        assert_eq!(cpu.physical_address_bits, Some(48));
        assert_eq!(cpu.virtual_address_bits, Some(48));
        assert_eq!(
            cpu.model_name.as_deref(),
            Some("AMD Ryzen 9 7950X 16-Core Processor")
        );
    }

    #[test]
    fn module_names_from_index_lines() {
        assert_eq!(
            module_name_of_line(
                "kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/drivers/vfio/vfio.ko.zst"
            )
            .as_deref(),
            Some("vfio_pci")
        );
        assert_eq!(
            module_name_of_line("kernel/virt/lib/irqbypass.ko").as_deref(),
            Some("irqbypass")
        );
        assert_eq!(module_name_of_line("garbage"), None);
    }
}
