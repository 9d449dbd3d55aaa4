//! The Linux host as the device commands (`assign`, `release`, `verify`, `--persistent`) see
//! it: the survey's inventory with names, read once, and the survey's device selectors.

use std::path::{Path, PathBuf};

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use passthru_core::pci::ids;
use passthru_linux::assign::PlanError;
use passthru_linux::inventory::{Inventory, read_inventory};
use passthru_linux::survey;

use crate::cli::GlobalArgs;
use crate::output::Failure;

/// The root of the host (`--root`, else `/`).
pub(crate) fn root_of(global: &GlobalArgs) -> PathBuf {
    global.root.clone().unwrap_or_else(|| PathBuf::from("/"))
}

/// Where `pci.ids` is looked for on the host under `root` (as `passthru survey` does).
pub(crate) fn names_for(root: &Path) -> Vec<PathBuf> {
    super::survey::names_candidates(Some(root))
}

/// Reads the inventory under `fs` and names its devices from the first readable `pci.ids` of
/// `names` (the copy built into passthru when none is), so that name selectors work as in
/// `passthru survey`.
pub(crate) fn inventory_with_names(fs: &dyn HostFs, names: &[PathBuf]) -> Inventory {
    let mut inventory = read_inventory(fs);
    let (names, _) = ids::load(names, &survey::names_query(&inventory));
    survey::apply_names(&mut inventory, &names);
    inventory
}

/// The addresses `selectors` name, or the failure that lists what matched.
pub(crate) fn select(
    inventory: &Inventory,
    selectors: &[String],
) -> Result<Vec<PciAddress>, Failure> {
    passthru_linux::assign::select(inventory, selectors)
        .map_err(|error| Failure::from_error(&error))
}

/// A planning error as a failure (refusals are shown by the commands themselves).
pub(crate) fn plan_failure(error: &PlanError) -> Failure {
    match error {
        // The selector's message already lists the candidates or points to the survey.
        PlanError::Select(_) => Failure::from_error(error),
        PlanError::Refused(refusal) => {
            let failure = Failure::new(refusal.to_string());
            if refusal.force_would_help() {
                failure.with_help(
                    "--force goes ahead despite every reason above, at the risks they name",
                )
            } else {
                failure
            }
        }
    }
}
