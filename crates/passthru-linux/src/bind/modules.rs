//! Which modules an undo of `modprobe` may remove, and in what order.
//!
//! `modprobe vfio-pci` loads more than `vfio_pci`: its dependencies (`vfio_pci_core`, `vfio`,
//! `irqbypass`, ...) and `vfio`'s soft dependency `vfio_iommu_type1` (Debian 12's 6.1 kernel:
//! `modinfo -F depends`/`softdep`). Putting the host back exactly means removing what that
//! command loaded and nothing else: only modules that were not loaded when the plan was made,
//! that belong to the target's dependency tree (or depend on a member of it, for soft
//! dependencies), and that nothing uses. `modprobe -r` is not used because it also removes
//! unused dependencies that were loaded before.

use std::collections::BTreeSet;

use passthru_core::hostfs::HostFs;

use crate::sysfs;

/// Modules to `rmmod`, in order, so that the modules loaded by `modprobe <module>` are gone
/// again. Empty when the module was loaded before, is not loaded, or anything uses it.
pub fn unload_order(
    fs: &dyn HostFs,
    module: &str,
    loaded_before: &BTreeSet<String>,
) -> Vec<String> {
    let target = sysfs::module_sysfs_name(module);
    if loaded_before.contains(&target) || !sysfs::module_loaded(fs, &target) {
        return Vec::new();
    }
    let Ok(loaded) = sysfs::loaded_modules(fs) else {
        return Vec::new();
    };
    let holders =
        |name: &str| -> BTreeSet<String> { sysfs::module_holders(fs, name).into_iter().collect() };

    // The target and everything it depends on, directly or not.
    let mut tree = BTreeSet::from([target.clone()]);
    let mut grew = true;
    while grew {
        grew = false;
        for name in &loaded {
            if !tree.contains(name) && !holders(name).is_disjoint(&tree) {
                tree.insert(name.clone());
                grew = true;
            }
        }
    }
    // Modules loaded alongside as soft dependencies: they depend on a member of the tree.
    let mut siblings = BTreeSet::new();
    for member in &tree {
        siblings.extend(holders(member));
    }
    let candidates: BTreeSet<String> = tree
        .union(&siblings)
        .filter(|name| loaded.contains(*name) && !loaded_before.contains(*name))
        .cloned()
        .collect();

    let unused_apart_from = |name: &str, removed: &BTreeSet<String>| {
        let holders = holders(name);
        let own_refs = holders.len() as u64;
        holders.is_subset(removed)
            && !drives_any_device(fs, name)
            && sysfs::module_refcount(fs, name).is_some_and(|refs| refs == own_refs)
    };
    if !unused_apart_from(&target, &BTreeSet::new()) {
        return Vec::new();
    }
    let mut order = vec![target.clone()];
    let mut removed = BTreeSet::from([target]);
    loop {
        let next = candidates
            .iter()
            .find(|name| !removed.contains(*name) && unused_apart_from(name, &removed))
            .cloned();
        let Some(name) = next else { break };
        removed.insert(name.clone());
        order.push(name);
    }
    order
}

/// Whether a module's drivers have any device bound (`/sys/module/<m>/drivers/<bus>:<name>`).
fn drives_any_device(fs: &dyn HostFs, module: &str) -> bool {
    let drivers = sysfs::module_dir(module).join("drivers");
    let Ok(entries) = fs.read_dir(&drivers) else {
        return false;
    };
    entries.iter().any(|entry| {
        let Some(driver) = entry.name.strip_prefix("pci:") else {
            return false;
        };
        !sysfs::driver_devices(fs, driver).is_empty()
    })
}
