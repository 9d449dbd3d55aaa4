//! Where things live in sysfs and how to read the few facts the binder and the probes need.
//!
//! Every path here is host-absolute; a [`HostFs`] maps it onto its root.

use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};

use passthru_core::hostfs::{EntryKind, HostFs, normalize};
use passthru_core::pci::PciAddress;

/// `/sys/bus/pci/drivers_probe`: write a device address to make the kernel find it a driver.
pub const DRIVERS_PROBE: &str = "/sys/bus/pci/drivers_probe";
/// The VFIO container device.
pub const VFIO_CONTAINER: &str = "/dev/vfio/vfio";

/// `/sys/bus/pci/devices/<address>`.
pub fn device_dir(device: PciAddress) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/devices/{device}"))
}

/// The device's `driver` link (absent when no driver is bound).
pub fn driver_link(device: PciAddress) -> PathBuf {
    device_dir(device).join("driver")
}

/// The device's `driver_override` attribute.
pub fn driver_override(device: PciAddress) -> PathBuf {
    device_dir(device).join("driver_override")
}

/// `/sys/bus/pci/drivers/<driver>`.
pub fn driver_dir(driver: &str) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/drivers/{driver}"))
}

/// `/sys/module/<module>` (module names use `_` in sysfs where `modprobe` accepts `-`).
pub fn module_dir(module: &str) -> PathBuf {
    PathBuf::from(format!("/sys/module/{}", module_sysfs_name(module)))
}

/// The name sysfs uses for a module: `vfio-pci` → `vfio_pci`.
pub fn module_sysfs_name(module: &str) -> String {
    module.replace('-', "_")
}

/// `/dev/vfio/<group>`.
pub fn vfio_group_node(group: u32) -> PathBuf {
    PathBuf::from(format!("/dev/vfio/{group}"))
}

/// The last component of a path, as text.
fn file_name(path: &Path) -> Option<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
}

/// The driver bound to `device` now, or `None`.
pub fn current_driver(fs: &dyn HostFs, device: PciAddress) -> io::Result<Option<String>> {
    match fs.read_link(&driver_link(device)) {
        Ok(target) => Ok(file_name(&target)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// The device's `driver_override`, or `None` when unset (the kernel shows `(null)`; an empty
/// file means the same).
pub fn current_override(fs: &dyn HostFs, device: PciAddress) -> io::Result<Option<String>> {
    let text = fs.read_text(&driver_override(device))?;
    Ok(parse_override(&text))
}

/// Interprets the text of a `driver_override` file.
pub fn parse_override(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() || text == "(null)" {
        None
    } else {
        Some(text.to_owned())
    }
}

/// The device's IOMMU group, or `None` when it has none.
pub fn iommu_group(fs: &dyn HostFs, device: PciAddress) -> io::Result<Option<u32>> {
    match fs.read_link(&device_dir(device).join("iommu_group")) {
        Ok(target) => Ok(file_name(&target).and_then(|name| name.parse().ok())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// The module that provides `driver` (from `drivers/<driver>/module`), or `None` for a driver
/// built into the kernel or not loaded.
pub fn module_of_driver(fs: &dyn HostFs, driver: &str) -> Option<String> {
    fs.read_link(&driver_dir(driver).join("module"))
        .ok()
        .and_then(|target| file_name(&target))
}

/// Whether a module is loaded (as opposed to absent or built in): loaded modules have an
/// `initstate` file.
pub fn module_loaded(fs: &dyn HostFs, module: &str) -> bool {
    fs.exists(&module_dir(module).join("initstate"))
}

/// Every loaded module, by its sysfs name.
pub fn loaded_modules(fs: &dyn HostFs) -> io::Result<BTreeSet<String>> {
    let mut loaded = BTreeSet::new();
    for entry in fs.read_dir(Path::new("/sys/module"))? {
        if module_loaded(fs, &entry.name) {
            loaded.insert(entry.name);
        }
    }
    Ok(loaded)
}

/// A module's reference count, when the kernel shows one.
pub fn module_refcount(fs: &dyn HostFs, module: &str) -> Option<u64> {
    fs.read_text(&module_dir(module).join("refcnt"))
        .ok()
        .and_then(|text| text.parse().ok())
}

/// The modules that depend on `module` (its `holders/` directory).
pub fn module_holders(fs: &dyn HostFs, module: &str) -> Vec<String> {
    fs.read_dir(&module_dir(module).join("holders"))
        .map(|entries| entries.into_iter().map(|entry| entry.name).collect())
        .unwrap_or_default()
}

/// The devices bound to `driver` now (the address-named links in its directory).
pub fn driver_devices(fs: &dyn HostFs, driver: &str) -> Vec<PciAddress> {
    fs.read_dir(&driver_dir(driver))
        .map(|entries| {
            entries
                .into_iter()
                .filter(|entry| entry.kind == EntryKind::Symlink)
                .filter_map(|entry| entry.name.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves every symlink along `path` (like `realpath`), lexically inside the host's root.
///
/// sysfs is full of links to links (`/sys/class/net/eth0` → `/sys/devices/...`); resolving
/// component by component keeps relative targets correct whichever directory they sit in.
pub fn canonicalize(fs: &dyn HostFs, path: &Path) -> io::Result<PathBuf> {
    const MAX_LINKS: usize = 40;
    let mut resolved = PathBuf::from("/");
    let mut pending: Vec<PathBuf> = normalize(path)
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(PathBuf::from(name)),
            _ => None,
        })
        .rev()
        .collect();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        let candidate = resolved.join(&name);
        if fs.kind(&candidate) == Some(EntryKind::Symlink) {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::other(format!(
                    "too many levels of symbolic links under `{}`",
                    path.display()
                )));
            }
            let target = fs.read_link(&candidate)?;
            let joined = normalize(&resolved.join(target));
            // Restart from the root with the target's components ahead of what is left.
            for component in joined.components().rev() {
                if let Component::Normal(part) = component {
                    pending.push(PathBuf::from(part));
                }
            }
            resolved = PathBuf::from("/");
        } else {
            resolved = candidate;
        }
    }
    Ok(resolved)
}

/// The PCI device a sysfs device path belongs to: the deepest path component that is a PCI
/// address (`/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0` → `0000:3d:00.0`).
pub fn pci_ancestor(path: &Path) -> Option<PciAddress> {
    path.components()
        .rev()
        .find_map(|component| match component {
            Component::Normal(name) => name.to_str().and_then(|text| text.parse().ok()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemTree;

    #[test]
    fn override_text_means_unset_when_null_or_empty() {
        assert_eq!(parse_override("(null)\n"), None);
        assert_eq!(parse_override("\n"), None);
        assert_eq!(parse_override("vfio-pci\n"), Some("vfio-pci".into()));
    }

    #[test]
    fn canonicalize_follows_links_inside_links() {
        let mut tree = MemTree::new();
        tree.dir("/sys/devices/pci0000:00/0000:00:03.0/net/eth0");
        tree.symlink(
            "/sys/class/net/eth0",
            "../../devices/pci0000:00/0000:00:03.0/net/eth0",
        );
        tree.symlink(
            "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/device",
            "../../../0000:00:03.0",
        );
        let real = canonicalize(&tree, Path::new("/sys/class/net/eth0/device")).unwrap();
        assert_eq!(real, PathBuf::from("/sys/devices/pci0000:00/0000:00:03.0"));
        assert_eq!(pci_ancestor(&real), Some("0000:00:03.0".parse().unwrap()));
    }

    #[test]
    fn canonicalize_stops_on_loops() {
        let mut tree = MemTree::new();
        tree.symlink("/a", "b");
        tree.symlink("/b", "a");
        assert!(canonicalize(&tree, Path::new("/a/x")).is_err());
    }

    #[test]
    fn pci_ancestor_takes_the_deepest_address() {
        let path = Path::new("/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/nvme/nvme0");
        assert_eq!(pci_ancestor(path), Some("0000:02:00.0".parse().unwrap()));
        assert_eq!(
            pci_ancestor(Path::new("/sys/devices/virtual/block/dm-0")),
            None
        );
    }
}
