//! The `release` planner: back from vfio-pci to the driver the device had before.

use std::collections::{BTreeMap, BTreeSet};

use passthru_core::pci::PciAddress;
use passthru_core::plan::Plan;
use serde::{Deserialize, Serialize};

use super::facts::{AliasMatch, PlanningFacts};
use super::history::RecordedDriver;
use super::reason::{PlanError, Reason, Refusal};
use super::select;
use crate::bind::{DeviceBinding, SysfsStep, release_steps};
use crate::checks::is_vfio_driver;
use crate::inventory::{DeviceRole, Inventory, PciDevice};
use crate::probes::describe_openers;

/// What `passthru release` was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// Device selectors.
    pub devices: Vec<String>,
}

/// Where the driver a device goes back to comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum DriverSource {
    /// The journal's last assign of the device recorded it.
    Journal {
        /// That operation's id.
        operation: String,
    },
    /// No record: the modules whose `modules.alias` entries match the device's `modalias`
    /// (what the kernel would load for it at boot).
    Modalias {
        /// The matching modules.
        modules: Vec<String>,
    },
    /// No record and no module alias matches: the kernel has no driver for it.
    Unknown,
}

/// One device the plan gives back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    /// The device.
    pub device: PciAddress,
    /// Its name.
    pub name: String,
    /// The driver it gets back; `None` when it had none, or when passthru lets the kernel
    /// choose (see `source`).
    pub driver: Option<String>,
    /// The module that provides that driver, loaded first when it is not.
    pub module: Option<String>,
    /// Where `driver` comes from.
    #[serde(flatten)]
    pub source: DriverSource,
    /// `Some(device)` when it goes back because it is another function of that named
    /// device's card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<PciAddress>,
}

/// A plan for `passthru release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePlan {
    /// The steps (empty when every device is with the host already).
    pub plan: Plan<SysfsStep>,
    /// The devices that go back.
    pub returns: Vec<Return>,
    /// Devices with the host already, and their driver.
    pub already_released: Vec<(PciAddress, Option<String>)>,
}

impl ReleasePlan {
    /// Whether there is nothing to change.
    pub fn nothing_to_do(&self) -> bool {
        self.plan.steps.is_empty()
    }
}

fn on_vfio(device: &PciDevice) -> bool {
    is_vfio_driver(device.driver.as_deref()) || is_vfio_driver(device.driver_override.as_deref())
}

/// Plans `passthru release`. `recorded` is what [`super::history::recorded_host_drivers`]
/// found in the journal.
pub fn plan_release(
    inventory: &Inventory,
    facts: &PlanningFacts,
    recorded: &BTreeMap<PciAddress, RecordedDriver>,
    request: &ReleaseRequest,
) -> Result<ReleasePlan, PlanError> {
    let selected = select(inventory, &request.devices)?;
    let operation = format!(
        "release {}",
        selected
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    // Device → the named device whose card it belongs to (itself when named).
    let mut targets: BTreeMap<PciAddress, PciAddress> = BTreeMap::new();
    for &address in &selected {
        let Some(device) = inventory.device(address) else {
            continue;
        };
        if device.role != DeviceRole::Endpoint {
            refusals.push(Reason::new(
                Some(address),
                "not-an-endpoint",
                format!("{address} is a bridge or port: passthru never assigns infrastructure, so there is nothing to release"),
                "name the devices behind it instead; `passthru survey` shows them",
            ));
            continue;
        }
        targets.insert(address, address);
    }
    for &address in &selected {
        let Some(group) = inventory
            .device(address)
            .and_then(|device| device.iommu_group)
        else {
            continue;
        };
        for other in &inventory.devices {
            if other.address == address
                || other.iommu_group != Some(group)
                || other.role != DeviceRole::Endpoint
                || !on_vfio(other)
                || targets.contains_key(&other.address)
            {
                continue;
            }
            if other.address.same_slot(address) {
                targets.insert(other.address, address);
            } else {
                notes.push(format!(
                    "{} of the same IOMMU group stays on vfio-pci; `passthru release {}` gives it back too",
                    other.address, other.address
                ));
            }
        }
    }

    let mut returns = Vec::new();
    let mut already_released = Vec::new();
    let mut pairs: Vec<(DeviceBinding, Option<String>)> = Vec::new();
    let mut stale_overrides = Vec::new();
    let mut modules_to_load: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    let mut groups_checked = BTreeSet::new();
    for (&address, &named) in &targets {
        let Some(device) = inventory.device(address) else {
            continue;
        };
        if !on_vfio(device) {
            already_released.push((address, device.driver.clone()));
            continue;
        }
        if let Some(group) = device.iommu_group
            && groups_checked.insert(group)
            && let Some(users) = facts.vfio_users.get(&group)
        {
            refusals.push(Reason::new(
                Some(address),
                "vfio-group-in-use",
                format!(
                    "IOMMU group {group} is in use: {} — a VM (or another VFIO program) has the device",
                    describe_openers(users)
                ),
                "shut the VM down or detach the device from it first; taking a device from a running VM makes the unbind wait until the VM lets go",
            ));
            continue;
        }
        if device.driver.is_some() && !is_vfio_driver(device.driver.as_deref()) {
            // Bound to a host driver already, with a leftover override: only clear it.
            stale_overrides.push(SysfsStep::clear_override(
                address,
                device.driver_override.clone(),
            ));
            notes.push(format!(
                "{address} is bound to {} already; only its driver_override is cleared",
                device.driver.as_deref().unwrap_or_default()
            ));
            continue;
        }
        let back = host_driver(address, recorded, facts);
        if let Some(module) = &back.module
            && back
                .driver
                .as_ref()
                .is_none_or(|driver| !facts.registered_drivers.contains(driver))
            && !facts.loaded_modules.contains(module)
        {
            modules_to_load.insert((module.clone(), back.driver.clone()));
        }
        match &back.source {
            DriverSource::Journal { .. } => {}
            DriverSource::Modalias { modules } => notes.push(match &back.driver {
                Some(driver) => format!(
                    "the journal has no assign of {address}, so passthru does not know which driver it had; the kernel's module aliases name {} for it, so {driver} is expected back",
                    modules.join(", ")
                ),
                None => format!(
                    "the journal has no assign of {address}, so passthru does not know which driver it had; the kernel's module aliases name {}, which passthru loads and lets the kernel choose",
                    modules.join(", ")
                ),
            }),
            DriverSource::Unknown => notes.push(format!(
                "the journal has no assign of {address} and no kernel module claims it, so it stays without a driver"
            )),
        }
        pairs.push((
            DeviceBinding {
                device: address,
                module: device
                    .driver
                    .as_deref()
                    .and_then(|driver| facts.module_of(driver)),
                driver: device.driver.clone(),
                driver_override: device.driver_override.clone(),
                iommu_group: device.iommu_group,
            },
            back.driver.clone(),
        ));
        returns.push(Return {
            device: address,
            name: device.display_name(),
            driver: back.driver,
            module: back.module,
            source: back.source,
            with: (named != address).then_some(named),
        });
    }
    if !refusals.is_empty() {
        return Err(PlanError::Refused(Refusal {
            operation,
            reasons: refusals,
        }));
    }
    let mut plan = Plan::new(operation);
    for (address, driver) in &already_released {
        plan.notes.push(format!(
            "{address} is with the host already ({}); nothing to do for it",
            driver
                .as_deref()
                .map_or("no driver".to_owned(), |d| format!("bound to {d}"))
        ));
    }
    for returned in &returns {
        if let Some(named) = returned.with {
            plan.notes.push(format!(
                "{} goes back too: another function of the same card as {named}",
                returned.device
            ));
        }
    }
    plan.notes.extend(notes);
    for (module, driver) in modules_to_load {
        plan.steps.push(SysfsStep::load_module(
            module,
            driver.as_deref(),
            facts.loaded_modules.clone(),
        ));
    }
    plan.steps.extend(stale_overrides);
    plan.steps.extend(release_steps(&pairs));
    Ok(ReleasePlan {
        plan,
        returns,
        already_released,
    })
}

struct HostDriver {
    driver: Option<String>,
    module: Option<String>,
    source: DriverSource,
}

/// The driver `device` goes back to: the journal's record, else the loaded (or else the
/// first) module whose alias matches it.
fn host_driver(
    device: PciAddress,
    recorded: &BTreeMap<PciAddress, RecordedDriver>,
    facts: &PlanningFacts,
) -> HostDriver {
    if let Some(record) = recorded.get(&device) {
        return HostDriver {
            driver: record.driver.clone(),
            module: record.module.clone().or_else(|| {
                record
                    .driver
                    .as_deref()
                    .and_then(|driver| facts.module_of(driver))
            }),
            source: DriverSource::Journal {
                operation: record.operation.clone(),
            },
        };
    }
    let matches: Vec<&AliasMatch> = facts
        .natural_drivers
        .get(&device)
        .into_iter()
        .flatten()
        .filter(|candidate| !is_vfio_driver(candidate.driver.as_deref()))
        .collect();
    let modules: Vec<String> = matches.iter().map(|m| m.module.clone()).collect();
    let chosen = matches
        .iter()
        .find(|candidate| candidate.loaded && candidate.driver.is_some())
        .or_else(|| matches.first());
    match chosen {
        Some(candidate) => HostDriver {
            driver: candidate.driver.clone(),
            module: Some(candidate.module.clone()),
            source: DriverSource::Modalias { modules },
        },
        None => HostDriver {
            driver: None,
            module: None,
            source: DriverSource::Unknown,
        },
    }
}
