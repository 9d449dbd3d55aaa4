//! Renders the fake kernel's state into its visible sysfs and /dev tree, as the real kernel
//! shows it (relative links, `(null)` overrides, per-module `holders/`).

use std::path::{Component, Path, PathBuf};

use super::kernel::FakeKernel;
use super::tree::Node;
use crate::sysfs;

/// A relative link target from directory `from` to `to` (both host-absolute).
pub(super) fn relative(from: &Path, to: &Path) -> PathBuf {
    let parts = |path: &Path| -> Vec<String> {
        path.components()
            .filter_map(|component| match component {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let from = parts(from);
    let to = parts(to);
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut target = PathBuf::new();
    for _ in common..from.len() {
        target.push("..");
    }
    for part in &to[common..] {
        target.push(part);
    }
    target
}

impl FakeKernel {
    /// Replaces every rendered node with the current state.
    pub(super) fn render(&mut self) {
        for path in std::mem::take(&mut self.rendered) {
            self.tree.remove(path);
        }
        let mut nodes: Vec<(PathBuf, Node)> = Vec::new();
        let mut roots: Vec<PathBuf> = Vec::new();

        for state in self.devices.values() {
            let override_path = state.path.join("driver_override");
            let text = format!("{}\n", state.driver_override.as_deref().unwrap_or("(null)"));
            nodes.push((override_path.clone(), Node::File(text.into_bytes())));
            roots.push(override_path);
            if let Some(driver) = &state.driver {
                let link = state.path.join("driver");
                let target = relative(&state.path, &sysfs::driver_dir(driver));
                nodes.push((link.clone(), Node::Symlink(target)));
                roots.push(link);
            }
        }

        let mut vfio_loaded = false;
        for (name, module) in &self.modules {
            if !module.loaded {
                continue;
            }
            vfio_loaded |= name == "vfio";
            if let Some(driver) = &module.driver {
                let dir = sysfs::driver_dir(driver);
                roots.push(dir.clone());
                nodes.push((dir.clone(), Node::Dir));
                for file in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
                    nodes.push((dir.join(file), Node::File(Vec::new())));
                }
                if !module.builtin {
                    let target = relative(&dir, &sysfs::module_dir(name));
                    nodes.push((dir.join("module"), Node::Symlink(target)));
                }
                for (address, device) in &self.devices {
                    if device.driver.as_deref() == Some(driver.as_str()) {
                        let target = relative(&dir, &device.path);
                        nodes.push((dir.join(address.to_string()), Node::Symlink(target)));
                    }
                }
            }
            if module.builtin {
                continue;
            }
            let dir = sysfs::module_dir(name);
            roots.push(dir.clone());
            nodes.push((dir.join("initstate"), Node::File(b"live\n".to_vec())));
            let refcount = self.module_refcount(name);
            nodes.push((
                dir.join("refcnt"),
                Node::File(format!("{refcount}\n").into_bytes()),
            ));
            nodes.push((dir.join("holders"), Node::Dir));
            for holder in self.holders(name) {
                nodes.push((
                    dir.join("holders").join(&holder),
                    Node::Symlink(PathBuf::from("../..").join(&holder)),
                ));
            }
            if let Some(driver) = &module.driver {
                let drivers = dir.join("drivers");
                let target = relative(&drivers, &sysfs::driver_dir(driver));
                nodes.push((drivers.join(format!("pci:{driver}")), Node::Symlink(target)));
            }
        }

        if vfio_loaded {
            roots.push(PathBuf::from("/dev/vfio"));
            nodes.push((PathBuf::from(sysfs::VFIO_CONTAINER), Node::Device));
            let groups: std::collections::BTreeSet<u32> = self
                .devices
                .values()
                .filter(|device| device.driver.as_deref() == Some("vfio-pci"))
                .filter_map(|device| device.group)
                .collect();
            for group in groups {
                nodes.push((sysfs::vfio_group_node(group), Node::Device));
            }
        }

        for (path, node) in nodes {
            match node {
                Node::Dir => self.tree.dir(&path),
                Node::File(bytes) => self.tree.file(&path, bytes),
                Node::Symlink(target) => self.tree.symlink(&path, target),
                Node::Device => self.tree.device(&path),
                Node::Denied => self.tree.denied(&path),
            };
        }
        self.rendered = roots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_look_like_sysfs() {
        assert_eq!(
            relative(
                Path::new("/sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0"),
                Path::new("/sys/bus/pci/drivers/vfio-pci")
            ),
            PathBuf::from("../../../../bus/pci/drivers/vfio-pci")
        );
        assert_eq!(
            relative(
                Path::new("/sys/bus/pci/devices"),
                Path::new("/sys/devices/pci0000:00/0000:00:02.0")
            ),
            PathBuf::from("../../../devices/pci0000:00/0000:00:02.0")
        );
    }
}
