//! PCI devices: DDA state, verdict, companions.

use std::collections::{HashMap, HashSet};

use super::resources;
use super::verdict::{is_bridge, judge};
use super::{DdaState, DeviceReport};
use crate::model::{HostAnswers, PnpDevice};
use crate::text::instance::{InstanceId, host_form};
use crate::text::location::LocationPath;

/// Instance ids (upper case) of the controllers of the disks Windows boots from.
pub(super) fn system_disk_controllers(answers: &HostAnswers) -> HashSet<String> {
    answers
        .disks
        .iter()
        .filter(|disk| disk.is_system || disk.is_boot)
        .filter_map(|disk| {
            disk.ancestors
                .iter()
                .find(|ancestor| InstanceId::parse(ancestor).is_ok_and(|id| id.is_pci()))
        })
        .map(|id| host_form(id).to_ascii_uppercase())
        .collect()
}

/// Which VM holds each location path.
pub(super) fn owners(answers: &HostAnswers) -> HashMap<LocationPath, String> {
    let mut owners = HashMap::new();
    for vm in &answers.vms {
        for device in &vm.assigned_devices {
            if let Some(path) = device
                .location_path
                .as_deref()
                .and_then(|path| LocationPath::parse(path).ok())
            {
                owners.entry(path).or_insert_with(|| vm.name.clone());
            }
        }
    }
    owners
}

fn is_present(device: &PnpDevice) -> bool {
    device.present.unwrap_or_else(|| {
        !device
            .status
            .as_deref()
            .is_some_and(|status| status.eq_ignore_ascii_case("Unknown"))
    })
}

/// `DDDD:BB:DD.F` from the bus number and address properties.
fn address(device: &PnpDevice) -> Option<String> {
    let bus = device.bus_number?;
    let address = device.address?;
    let (slot, function) = (address >> 16, address & 0xffff);
    if bus > 0xff || slot > 31 || function > 7 {
        return None;
    }
    let segment = device
        .location_info
        .as_deref()
        .and_then(|info| {
            let lower = info.to_ascii_lowercase();
            let after = lower.split("segment").nth(1)?;
            after
                .split_whitespace()
                .next()?
                .trim_end_matches(',')
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    Some(format!("{segment:04x}:{bus:02x}:{slot:02x}.{function}"))
}

/// Every PCI device worth reporting: present ones, dismounted ones, and ones a VM holds.
/// Devnodes Windows remembers from hardware that is gone (not present, not assigned) are left
/// out; where two devnodes share a location (the old `PCI\` and the dismounted `PCIP\`), the
/// one in use wins.
pub(super) fn reports(answers: &HostAnswers) -> Vec<DeviceReport> {
    let resources = resources::by_device(answers);
    let system = system_disk_controllers(answers);
    let owners = owners(answers);
    let dismounted: HashSet<LocationPath> = answers
        .host_assignable_devices
        .iter()
        .filter_map(|device| LocationPath::parse(device.location_path.as_deref()?).ok())
        .collect();

    let mut chosen: Vec<(Option<LocationPath>, u8, &PnpDevice)> = Vec::new();
    for device in &answers.pnp_devices {
        let Ok(id) = InstanceId::parse(&device.instance_id) else {
            continue;
        };
        if !id.is_pci() {
            continue;
        }
        let location = device
            .pci_location()
            .and_then(|path| LocationPath::parse(path).ok());
        let held = location
            .as_ref()
            .is_some_and(|path| owners.contains_key(path));
        let rank = if id.is_dismounted() {
            3
        } else if is_present(device) {
            2
        } else if held {
            1
        } else {
            continue;
        };
        match location.as_ref().and_then(|path| {
            chosen
                .iter_mut()
                .find(|(other, _, _)| other.as_ref() == Some(path))
        }) {
            Some(slot) if slot.1 < rank => *slot = (location.clone(), rank, device),
            Some(_) => {}
            None => chosen.push((location, rank, device)),
        }
    }

    let mut reports: Vec<DeviceReport> = chosen
        .into_iter()
        .map(|(location, _, device)| {
            let id = InstanceId::parse(&device.instance_id).ok();
            let host_id = host_form(&device.instance_id);
            let vm = location.as_ref().and_then(|path| owners.get(path)).cloned();
            let state = if vm.is_some() {
                DdaState::Assigned
            } else if id.as_ref().is_some_and(InstanceId::is_dismounted)
                || location
                    .as_ref()
                    .is_some_and(|path| dismounted.contains(path))
            {
                DdaState::Dismounted
            } else if device.is_disabled() {
                DdaState::HostDisabled
            } else {
                DdaState::Host
            };
            let system_disk = system.contains(&host_id.to_ascii_uppercase());
            let verdict = judge(
                device,
                resources
                    .get(&device.instance_id.to_ascii_uppercase())
                    .or_else(|| resources.get(&host_id.to_ascii_uppercase())),
                system_disk,
            );
            DeviceReport {
                name: device.display_name().to_owned(),
                instance_id: device.instance_id.clone(),
                host_instance_id: host_id,
                location_path: location.as_ref().map(ToString::to_string),
                address: address(device),
                vendor_device: id.as_ref().and_then(InstanceId::vendor_device),
                class: device.class.clone(),
                service: device.service.clone(),
                bridge: is_bridge(device),
                state,
                vm,
                verdict,
                companions: Vec::new(),
                system_disk,
            }
        })
        .collect();

    let slots: Vec<(usize, LocationPath)> = reports
        .iter()
        .enumerate()
        .filter(|(_, report)| !report.bridge)
        .filter_map(|(index, report)| {
            Some((
                index,
                LocationPath::parse(report.location_path.as_deref()?)
                    .ok()?
                    .slot(),
            ))
        })
        .collect();
    for (index, slot) in &slots {
        let companions: Vec<String> = slots
            .iter()
            .filter(|(other, other_slot)| other != index && other_slot == slot)
            .filter_map(|(other, _)| reports[*other].location_path.clone())
            .collect();
        reports[*index].companions = companions;
    }
    reports.sort_by(|a, b| {
        let key = |report: &DeviceReport| {
            report
                .location_path
                .as_deref()
                .and_then(|path| LocationPath::parse(path).ok())
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.instance_id.cmp(&b.instance_id))
    });
    reports
}
