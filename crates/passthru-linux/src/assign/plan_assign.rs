//! The `assign` planner: which devices move to vfio-pci, which stay, and whether it is safe.

use std::collections::BTreeMap;

use passthru_core::pci::PciAddress;
use passthru_core::plan::Plan;
use serde::{Deserialize, Serialize};

use super::facts::PlanningFacts;
use super::reason::{LeftAlone, PlanError, Reason, Refusal};
use super::{describe, select};
use crate::bind::{BindTarget, DeviceBinding, SysfsStep, bind_steps};
use crate::checks::{driver_keeps_group_viable, is_vfio_driver};
use crate::inventory::{DeviceRole, GroupMember, Inventory, PciDevice};
use crate::probes::{FindingKind, Severity};

/// What `passthru assign` was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignRequest {
    /// Device selectors (BDF, short BDF, `vendor:device`, name substring).
    pub devices: Vec<String>,
    /// Also move the other members of the IOMMU groups that host drivers hold.
    pub with_group: bool,
    /// Go ahead despite refusals that can be overridden.
    pub force: bool,
}

/// Why a device moves to vfio-pci.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum MoveReason {
    /// The user named it.
    Named,
    /// Another function of a named device's card, in the same IOMMU group (a GPU's audio).
    SameCard {
        /// The named device.
        of: PciAddress,
    },
    /// A member of a named device's IOMMU group, moved because of `--with-group`.
    WithGroup {
        /// The group.
        group: u32,
    },
}

/// One device the plan gives to vfio-pci.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMove {
    /// The device.
    pub device: PciAddress,
    /// Its name (`Intel Corporation 82801I (ICH9 Family) HD Audio Controller`).
    pub name: String,
    /// The driver it leaves (`None`: it had none).
    pub driver: Option<String>,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
    /// Why it moves.
    #[serde(flatten)]
    pub why: MoveReason,
}

/// A plan for `passthru assign`, with everything `--dry-run` and `--json` show about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignPlan {
    /// The steps (empty when every device is already on vfio-pci).
    pub plan: Plan<SysfsStep>,
    /// The devices that move.
    pub moves: Vec<DeviceMove>,
    /// Devices that would move but are on vfio-pci already.
    pub already_assigned: Vec<PciAddress>,
    /// Group members and bridges the plan leaves as they are, and why.
    pub left_alone: Vec<LeftAlone>,
    /// Refusals `--force` went past: the risks taken.
    pub forced: Vec<Reason>,
    /// What could not be checked (usually: not root), and other warnings.
    pub warnings: Vec<Reason>,
}

impl AssignPlan {
    /// Whether there is nothing to change.
    pub fn nothing_to_do(&self) -> bool {
        self.plan.steps.is_empty()
    }

    /// The IOMMU groups the moved devices belong to.
    pub fn groups(&self) -> Vec<u32> {
        let mut groups: Vec<u32> = self.moves.iter().filter_map(|m| m.iommu_group).collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }
}

/// Plans `passthru assign` over `inventory` (names applied) and `facts` read for
/// [`super::devices_of_interest`] of the same devices.
pub fn plan_assign(
    inventory: &Inventory,
    facts: &PlanningFacts,
    request: &AssignRequest,
) -> Result<AssignPlan, PlanError> {
    let selected = select(inventory, &request.devices)?;
    let operation = format!(
        "assign {}",
        selected
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut planner = Planner {
        inventory,
        facts,
        request,
        moves: BTreeMap::new(),
        left_alone: Vec::new(),
        refusals: Vec::new(),
        notes: Vec::new(),
    };
    for &address in &selected {
        planner.name(address);
    }
    for &address in &selected {
        planner.expand_group(address);
    }
    let (forced, warnings) = planner.judge_moves();
    if !planner.refusals.is_empty() {
        return Err(PlanError::Refused(Refusal {
            operation,
            reasons: planner.refusals,
        }));
    }
    Ok(planner.finish(operation, forced, warnings))
}

struct Planner<'a> {
    inventory: &'a Inventory,
    facts: &'a PlanningFacts,
    request: &'a AssignRequest,
    moves: BTreeMap<PciAddress, MoveReason>,
    left_alone: Vec<LeftAlone>,
    refusals: Vec<Reason>,
    notes: Vec<String>,
}

impl Planner<'_> {
    fn device(&self, address: PciAddress) -> Option<&PciDevice> {
        self.inventory.device(address)
    }

    fn leave(&mut self, device: String, why: String) {
        if !self.left_alone.iter().any(|left| left.device == device) {
            self.left_alone.push(LeftAlone { device, why });
        }
    }

    /// A device the user named.
    fn name(&mut self, address: PciAddress) {
        let Some(device) = self.device(address) else {
            return;
        };
        if device.role != DeviceRole::Endpoint {
            let what = if device.role == DeviceRole::HostBridge {
                "a host bridge"
            } else {
                "a bridge or PCIe port"
            };
            self.refusals.push(Reason::new(
                Some(address),
                "not-an-endpoint",
                format!("{address} is {what}: it stays with the host, and passthru never moves infrastructure"),
                "name the devices behind it instead; `passthru survey` shows them",
            ));
            return;
        }
        self.moves.insert(address, MoveReason::Named);
    }

    /// Adds the members of a named device's group that must move with it, and judges the
    /// rest.
    fn expand_group(&mut self, named: PciAddress) {
        if self.moves.get(&named) != Some(&MoveReason::Named) {
            return;
        }
        self.note_cards_other_functions(named);
        let inventory = self.inventory;
        let Some(group) = self
            .device(named)
            .and_then(|device| device.iommu_group)
            .and_then(|number| inventory.group(number))
        else {
            return;
        };
        let number = group.number;
        let mut blocking = Vec::new();
        for member in &group.members {
            match member {
                GroupMember::Pci { address } if *address == named => {}
                GroupMember::Pci { address } => {
                    let address = *address;
                    let Some(other) = self.device(address) else {
                        self.leave(
                            address.to_string(),
                            format!("IOMMU group {number} lists it, but the kernel has no such PCI device"),
                        );
                        continue;
                    };
                    if other.role != DeviceRole::Endpoint {
                        self.leave(
                            address.to_string(),
                            "a bridge or port: it stays with the host and does not keep the group from being viable".to_owned(),
                        );
                    } else if address.same_slot(named) {
                        self.moves
                            .entry(address)
                            .or_insert(MoveReason::SameCard { of: named });
                    } else if self.moves.contains_key(&address) {
                    } else if is_vfio_driver(other.driver.as_deref()) {
                        self.leave(address.to_string(), "already on vfio-pci".to_owned());
                    } else if driver_keeps_group_viable(other.driver.as_deref()) {
                        let state = other
                            .driver
                            .as_deref()
                            .map_or("has no driver".to_owned(), |driver| {
                                format!("is held by {driver}")
                            });
                        self.leave(
                            address.to_string(),
                            format!("{state}, which keeps the group viable; it stays as it is"),
                        );
                    } else if self.request.with_group {
                        self.moves
                            .insert(address, MoveReason::WithGroup { group: number });
                    } else {
                        blocking.push(describe(self.inventory, address));
                    }
                }
                GroupMember::Other { name, driver, .. } => {
                    if driver_keeps_group_viable(driver.as_deref()) {
                        self.leave(
                            name.clone(),
                            "a non-PCI member without a driver; it does not keep the group from being viable".to_owned(),
                        );
                    } else {
                        self.refusals.push(Reason::new(
                            Some(named),
                            "group-not-viable",
                            format!(
                                "IOMMU group {number} of {named} also holds the non-PCI device {name}, bound to {}, which passthru cannot move: the group can never become viable",
                                driver.as_deref().unwrap_or("?")
                            ),
                            format!("put the card in another slot (one with its own IOMMU group); `ls /sys/kernel/iommu_groups/{number}/devices` lists the group"),
                        ));
                    }
                }
            }
        }
        if !blocking.is_empty() {
            let (them, they) = if blocking.len() == 1 {
                ("it", "it leaves")
            } else {
                ("them", "they leave")
            };
            self.refusals.push(Reason::new(
                Some(named),
                "group-shared",
                format!(
                    "IOMMU group {number} of {named} also holds {}: a group goes to VFIO whole, so {they} {} host driver too",
                    blocking.join(", "),
                    if blocking.len() == 1 { "its" } else { "their" }
                ),
                format!(
                    "add --with-group to move {them} to vfio-pci as well (the host loses {them}), or move the card to a slot with its own IOMMU group; `passthru survey --group {number}` shows the group"
                ),
            ));
        }
    }

    /// Functions of the same card in other IOMMU groups (ACS between functions) may go to
    /// the same VM but need not: say so.
    fn note_cards_other_functions(&mut self, named: PciAddress) {
        let Some(group) = self.device(named).and_then(|device| device.iommu_group) else {
            return;
        };
        let others: Vec<PciAddress> = self
            .inventory
            .devices
            .iter()
            .filter(|other| {
                other.address != named
                    && other.address.same_slot(named)
                    && other.role == DeviceRole::Endpoint
                    && other.iommu_group.is_some_and(|number| number != group)
            })
            .map(|other| other.address)
            .collect();
        for other in others {
            if !self.moves.contains_key(&other) {
                self.notes.push(format!(
                    "{other} is another function of the same card in its own IOMMU group; it stays (name it too to give the VM the whole card)"
                ));
            }
        }
    }

    /// Runs the refusal probes' findings of every device that moves: refusals, risks taken
    /// with `--force`, and what could not be checked.
    fn judge_moves(&mut self) -> (Vec<Reason>, Vec<Reason>) {
        let mut forced = Vec::new();
        let mut warnings = Vec::new();
        let moves: Vec<(PciAddress, MoveReason)> =
            self.moves.iter().map(|(a, w)| (*a, *w)).collect();
        for (address, why) in moves {
            let Some(device) = self.device(address) else {
                continue;
            };
            if is_vfio_driver(device.driver.as_deref()) {
                continue;
            }
            let boot_vga = device.boot_vga == Some(true);
            let mut in_use = false;
            for finding in self.facts.findings.get(&address).into_iter().flatten() {
                let mut reason = Reason::from_finding(finding);
                if let MoveReason::WithGroup { group } = why {
                    reason.message = format!(
                        "{} (it shares IOMMU group {group} with the devices you named)",
                        reason.message
                    );
                }
                in_use |= matches!(
                    finding.kind,
                    FindingKind::BootFramebuffer
                        | FindingKind::ConsoleFramebuffer
                        | FindingKind::DeviceFilesOpen
                        | FindingKind::DriverInUse
                ) && finding.severity != Severity::Unknown;
                match finding.severity {
                    Severity::Blocked => self.refusals.push(reason),
                    Severity::NeedsForce if self.request.force => forced.push(reason),
                    Severity::NeedsForce => self.refusals.push(reason),
                    Severity::Warning | Severity::Unknown => warnings.push(reason),
                }
            }
            if boot_vga && !in_use {
                self.notes.push(format!(
                    "{address} is the boot VGA device, but no console, framebuffer or program uses it now"
                ));
            }
        }
        (forced, warnings)
    }

    fn finish(self, operation: String, forced: Vec<Reason>, warnings: Vec<Reason>) -> AssignPlan {
        let mut moves = Vec::new();
        let mut already_assigned = Vec::new();
        let mut bindings = Vec::new();
        for (&address, &why) in &self.moves {
            let Some(device) = self.device(address) else {
                continue;
            };
            if is_vfio_driver(device.driver.as_deref()) {
                already_assigned.push(address);
                continue;
            }
            moves.push(DeviceMove {
                device: address,
                name: device.display_name(),
                driver: device.driver.clone(),
                iommu_group: device.iommu_group,
                why,
            });
            bindings.push(DeviceBinding {
                device: address,
                module: device
                    .driver
                    .as_deref()
                    .and_then(|driver| self.facts.module_of(driver)),
                driver: device.driver.clone(),
                driver_override: device.driver_override.clone(),
                iommu_group: device.iommu_group,
            });
        }
        let mut plan = Plan::new(operation);
        for moved in &moves {
            match moved.why {
                MoveReason::Named => {}
                MoveReason::SameCard { of } => plan.notes.push(format!(
                    "{} moves too: another function of the same card as {of}, in the same IOMMU group",
                    moved.device
                )),
                MoveReason::WithGroup { group } => plan.notes.push(format!(
                    "{} moves too (--with-group): it shares IOMMU group {group}",
                    moved.device
                )),
            }
        }
        for address in &already_assigned {
            plan.notes.push(format!(
                "{address} is on vfio-pci already; nothing to do for it"
            ));
        }
        for left in &self.left_alone {
            plan.notes
                .push(format!("{} is left alone: {}", left.device, left.why));
        }
        plan.notes.extend(self.notes);
        for reason in &forced {
            plan.notes
                .push(format!("--force: going ahead although {}", reason.message));
        }
        for reason in &warnings {
            plan.notes.push(format!("warning: {}", reason.message));
        }
        if !bindings.is_empty() {
            plan.steps = bind_steps(
                &bindings,
                &BindTarget::vfio_pci(),
                self.facts.loaded_modules.clone(),
            );
        }
        AssignPlan {
            plan,
            moves,
            already_assigned,
            left_alone: self.left_alone,
            forced,
            warnings,
        }
    }
}
