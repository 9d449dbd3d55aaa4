//! Finding what the user named: a VM, a partitionable GPU, a PCI device.
//!
//! Device selectors accept what people have at hand on Windows and on Linux alike: a location
//! path (`PCIROOT(0)#PCI(0301)#PCI(0000)`), an instance id (`PCI\VEN_10DE&...`, also the
//! dismounted `PCIP\` form), a bus address (`01:00.0`, `0000:01:00.0`), `vendor:device`
//! (`10de:1b06`), or part of the name. Ambiguity is an error that lists the candidates.

use super::Refusal;
use crate::survey::{DeviceReport, GpuReport, VmReport, WindowsSurvey};
use crate::text::instance::{InstanceId, host_form, same_gpu_path, same_instance};
use crate::text::location::LocationPath;

/// The VM named `name`.
pub fn vm<'a>(survey: &'a WindowsSurvey, name: &str) -> Result<&'a VmReport, Refusal> {
    if !crate::ps::quote::safe_vm_name(name) {
        return Err(Refusal::new(format!(
            "the VM name `{name}` contains wildcard characters (* ? [ ]), which Hyper-V's -Name parameters would expand"
        ))
        .with_help("rename the VM (Rename-VM) to a name without * ? [ ]"));
    }
    let matches: Vec<&VmReport> = survey
        .vms
        .iter()
        .filter(|vm| vm.name.eq_ignore_ascii_case(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(
            Refusal::new(format!("Hyper-V has no VM named `{name}`")).with_help(
                if survey.vms.is_empty() {
                    "this host has no VMs yet".to_owned()
                } else {
                    format!(
                        "the VMs here are: {}",
                        survey
                            .vms
                            .iter()
                            .map(|vm| vm.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            ),
        ),
        _ => Err(
            Refusal::new(format!("{} VMs are named `{name}`", matches.len()))
                .with_help("rename them (Rename-VM) so that passthru can tell them apart"),
        ),
    }
}

fn vendor_device(text: &str) -> Option<(u16, u16)> {
    let (vendor, device) = text.split_once(':')?;
    if vendor.len() != 4 || device.len() != 4 {
        return None;
    }
    Some((
        u16::from_str_radix(vendor, 16).ok()?,
        u16::from_str_radix(device, 16).ok()?,
    ))
}

fn same_vendor_device(report_vd: Option<&str>, wanted: (u16, u16)) -> bool {
    report_vd.and_then(vendor_device) == Some(wanted)
}

/// The partitionable GPU named by `selector` (the only one when `None`).
pub fn gpu<'a>(
    survey: &'a WindowsSurvey,
    selector: Option<&str>,
) -> Result<&'a GpuReport, Refusal> {
    let gpus = &survey.gpus;
    let list = || {
        gpus.iter()
            .map(|gpu| {
                format!(
                    "{} ({})",
                    gpu.name,
                    gpu.vendor_device.as_deref().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if gpus.is_empty() {
        return Err(Refusal::new("this host has no partitionable GPU").with_help(
            "GPU partitioning needs a GPU whose driver supports it (WDDM 2.5+) on Windows 10 20H1 / build 19041 or later; `passthru survey` shows what Windows reports",
        ));
    }
    let Some(selector) = selector.map(str::trim).filter(|text| !text.is_empty()) else {
        return match gpus.as_slice() {
            [one] => Ok(one),
            _ => Err(Refusal::new(format!(
                "this host has {} partitionable GPUs; say which with --gpu",
                gpus.len()
            ))
            .with_help(format!("candidates: {}", list()))),
        };
    };
    let matches: Vec<&GpuReport> = if let Some(wanted) = vendor_device(selector) {
        gpus.iter()
            .filter(|gpu| same_vendor_device(gpu.vendor_device.as_deref(), wanted))
            .collect()
    } else if let Some(exact) = gpus.iter().find(|gpu| {
        same_gpu_path(&gpu.instance_path, selector)
            || gpu
                .instance_id
                .as_deref()
                .is_some_and(|id| same_instance(id, selector))
            || gpu
                .location_path
                .as_deref()
                .is_some_and(|path| crate::text::location::same_location(path, selector))
    }) {
        vec![exact]
    } else {
        let needle = selector.to_lowercase();
        gpus.iter()
            .filter(|gpu| gpu.name.to_lowercase().contains(&needle))
            .collect()
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(
            Refusal::new(format!("no partitionable GPU matches `{selector}`"))
                .with_help(format!("candidates: {}", list())),
        ),
        several => Err(
            Refusal::new(format!("`{selector}` matches {} GPUs", several.len())).with_help(
                format!(
                    "name one by its instance path: {}",
                    several
                        .iter()
                        .map(|gpu| gpu.instance_path.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ),
        ),
    }
}

fn bus_address(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split([':', '.']).collect();
    let (domain, bus, device, function) = match parts.as_slice() {
        [bus, device, function] => ("0", *bus, *device, *function),
        [domain, bus, device, function] => (*domain, *bus, *device, *function),
        _ => return None,
    };
    let domain = u32::from_str_radix(domain, 16).ok()?;
    let bus = u8::from_str_radix(bus, 16).ok()?;
    let device = u8::from_str_radix(device, 16).ok()?;
    let function = function.parse::<u8>().ok()?;
    (device < 32 && function < 8).then(|| format!("{domain:04x}:{bus:02x}:{device:02x}.{function}"))
}

/// The device named by `selector`.
pub fn device<'a>(survey: &'a WindowsSurvey, selector: &str) -> Result<&'a DeviceReport, Refusal> {
    let selector = selector.trim();
    let candidates = || {
        survey
            .devices
            .iter()
            .filter(|device| !device.bridge)
            .map(DeviceReport::label)
            .collect::<Vec<_>>()
    };
    let matches: Vec<&DeviceReport> = if let Ok(location) = LocationPath::parse(selector) {
        survey
            .devices
            .iter()
            .filter(|device| {
                device
                    .location_path
                    .as_deref()
                    .and_then(|path| LocationPath::parse(path).ok())
                    .is_some_and(|path| path == location)
            })
            .collect()
    } else if InstanceId::parse(selector).is_ok_and(|id| id.is_pci()) {
        let wanted = host_form(selector);
        survey
            .devices
            .iter()
            .filter(|device| same_instance(&device.host_instance_id, &wanted))
            .collect()
    } else if let Some(address) = bus_address(selector) {
        survey
            .devices
            .iter()
            .filter(|device| device.address.as_deref() == Some(address.as_str()))
            .collect()
    } else if let Some(wanted) = vendor_device(selector) {
        survey
            .devices
            .iter()
            .filter(|device| {
                !device.bridge && same_vendor_device(device.vendor_device.as_deref(), wanted)
            })
            .collect()
    } else {
        let needle = selector.to_lowercase();
        survey
            .devices
            .iter()
            .filter(|device| !device.bridge && device.name.to_lowercase().contains(&needle))
            .collect()
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let known = candidates();
            Err(
                Refusal::new(format!("no PCI device matches `{selector}`")).with_help(
                    if known.is_empty() {
                        "`passthru survey` lists the devices".to_owned()
                    } else {
                        format!("devices here: {}", known.join("; "))
                    },
                ),
            )
        }
        several => Err(
            Refusal::new(format!("`{selector}` matches {} devices", several.len())).with_help(
                format!(
                    "name one by its location path: {}",
                    several
                        .iter()
                        .map(|device| format!(
                            "{} = {}",
                            device
                                .location_path
                                .as_deref()
                                .unwrap_or(&device.instance_id),
                            device.name
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_addresses_normalise() {
        assert_eq!(bus_address("01:00.0").as_deref(), Some("0000:01:00.0"));
        assert_eq!(bus_address("0000:0a:1f.7").as_deref(), Some("0000:0a:1f.7"));
        assert_eq!(bus_address("01:20.0"), None);
        assert_eq!(bus_address("10de:1b06"), None);
        assert_eq!(vendor_device("10de:1b06"), Some((0x10de, 0x1b06)));
        assert_eq!(vendor_device("01:00.0"), None);
    }
}
