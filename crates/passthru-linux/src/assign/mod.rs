//! Planning `passthru assign` and `passthru release` on Linux: from an inventory and a request
//! to a [`Plan`] of [`SysfsStep`]s, or a refusal that says why and what to do instead.
//!
//! The planners are pure functions: everything they judge by is read beforehand, the
//! inventory by [`crate::inventory::read_inventory`] and the rest (refusal probes, loaded
//! modules, which module provides which driver, the kernel's module aliases) by
//! [`PlanningFacts::gather`]. That keeps every rule testable on fixture inventories and lets
//! `--dry-run` show exactly what a real run would do.
//!
//! - [`plan_assign`]: the named devices, the functions of the same card in the same IOMMU group
//!   (a GPU's HDMI audio), and, with `--with-group`, every other group member a host driver
//!   holds; bridges stay with the host. Refuses what would hurt the host (see
//!   [`crate::probes`]) and groups that cannot become viable.
//! - [`plan_release`]: back to the driver recorded at assign time ([`history`]), or to the
//!   device's natural driver from `modules.alias` when there is no record.
//! - [`combined`]: `--persistent` as one journal operation: the run-time binding and the boot
//!   configuration, undone together.
//!
//! [`Plan`]: passthru_core::plan::Plan
//! [`SysfsStep`]: crate::bind::SysfsStep

pub mod combined;
mod facts;
pub mod history;
mod plan_assign;
mod plan_release;
mod reason;

#[cfg(test)]
mod tests;

pub use facts::{AliasMatch, PlanningFacts};
pub use plan_assign::{AssignPlan, AssignRequest, DeviceMove, MoveReason, plan_assign};
pub use plan_release::{DriverSource, ReleasePlan, ReleaseRequest, Return, plan_release};
pub use reason::{LeftAlone, PlanError, Reason, Refusal};

use std::collections::{BTreeMap, BTreeSet};

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use passthru_core::select::{SelectError, select_by_text};

use crate::inventory::Inventory;

/// The addresses `selectors` name in `inventory` (each must name exactly one device).
pub fn select(inventory: &Inventory, selectors: &[String]) -> Result<Vec<PciAddress>, SelectError> {
    Ok(select_by_text(&inventory.devices, selectors)?
        .into_iter()
        .map(|index| inventory.devices[index].address)
        .collect())
}

/// The devices a plan for `selected` may look at: the devices themselves, every member of
/// their IOMMU groups, and the other functions of the same slots. [`PlanningFacts::gather`]
/// reads facts for these.
pub fn devices_of_interest(inventory: &Inventory, selected: &[PciAddress]) -> BTreeSet<PciAddress> {
    let mut interest: BTreeSet<PciAddress> = selected.iter().copied().collect();
    for address in selected {
        if let Some(group) = inventory
            .device(*address)
            .and_then(|device| device.iommu_group)
            .and_then(|number| inventory.group(number))
        {
            interest.extend(group.pci_members());
        }
        interest.extend(
            inventory
                .devices
                .iter()
                .filter(|device| device.address.same_slot(*address))
                .map(|device| device.address),
        );
    }
    interest
}

/// Reads the facts for `request` from `fs` and plans it: [`select`], [`devices_of_interest`],
/// [`PlanningFacts::gather`], [`plan_assign`].
pub fn prepare_assign(
    fs: &dyn HostFs,
    inventory: &Inventory,
    request: &AssignRequest,
) -> Result<AssignPlan, PlanError> {
    let selected = select(inventory, &request.devices)?;
    let facts = PlanningFacts::gather(fs, inventory, &devices_of_interest(inventory, &selected));
    plan_assign(inventory, &facts, request)
}

/// Reads the facts for `request` from `fs` and plans it; `recorded` comes from the journal
/// ([`history::recorded_host_drivers`]).
pub fn prepare_release(
    fs: &dyn HostFs,
    inventory: &Inventory,
    recorded: &BTreeMap<PciAddress, history::RecordedDriver>,
    request: &ReleaseRequest,
) -> Result<ReleasePlan, PlanError> {
    let selected = select(inventory, &request.devices)?;
    let facts = PlanningFacts::gather(fs, inventory, &devices_of_interest(inventory, &selected));
    plan_release(inventory, &facts, recorded, request)
}

/// `0000:01:00.1 (Audio device, bound to snd_hda_intel)`: a device as messages name it.
fn describe(inventory: &Inventory, address: PciAddress) -> String {
    crate::checks::device::describe_other(inventory, address)
}
