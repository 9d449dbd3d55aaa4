//! Devices in use: programs holding a GPU's DRM or NVIDIA device files, and NVIDIA modules
//! with users (unbinding such a device can hang: ipaqmaster/vfio#18,
//! joeknock90/Single-GPU-Passthrough#6, #18, #25).
//!
//! Open files are found through `/proc/<pid>/fd/*` links; DRM nodes map to PCI devices through
//! `/sys/class/drm/<node>/device`, framebuffers (`/dev/fbN`, held by Xorg's fbdev driver,
//! plymouth, `fbi`) through `/sys/class/graphics/fbN/device`, `/dev/nvidiaN` through the
//! "Device Minor" line of `/proc/driver/nvidia/gpus/<address>/information`. Holders of
//! `/dev/vfio/<group>` are recorded too: that is a running VM (or another VFIO user), which a
//! release must not pull the device from. `/dev/snd` is deliberately not checked:
//! ALSA handles a disappearing HD audio function, and sound servers always hold it.

use std::collections::BTreeMap;
use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;

use super::{Finding, FindingKind, Severity};
use crate::sysfs;

/// A process holding a device file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opener {
    /// Process id.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`).
    pub command: String,
    /// The device file (`/dev/dri/card1`).
    pub node: String,
}

/// Who holds which GPU's device files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceOpeners {
    /// PCI device → processes holding its DRM or `/dev/nvidiaN` files.
    pub by_device: BTreeMap<PciAddress, Vec<Opener>>,
    /// Processes holding NVIDIA's shared files (`/dev/nvidiactl`, `-uvm`, `-modeset`), which
    /// concern every GPU on the nvidia driver.
    pub nvidia_shared: Vec<Opener>,
    /// IOMMU group → processes holding `/dev/vfio/<group>` (a VM using the group).
    pub by_vfio_group: BTreeMap<u32, Vec<Opener>>,
    /// Processes whose open files could not be read (not root).
    pub unreadable: usize,
}

fn drm_devices(fs: &dyn HostFs) -> BTreeMap<String, PciAddress> {
    let mut nodes = BTreeMap::new();
    for entry in fs.read_dir(Path::new("/sys/class/drm")).unwrap_or_default() {
        // `card0-HDMI-A-1` and the like are connectors, not device files.
        if entry.name.contains('-') {
            continue;
        }
        let link = Path::new("/sys/class/drm").join(&entry.name).join("device");
        if let Some(address) = sysfs::canonicalize(fs, &link)
            .ok()
            .and_then(|real| sysfs::pci_ancestor(&real))
        {
            nodes.insert(format!("/dev/dri/{}", entry.name), address);
        }
    }
    nodes
}

fn framebuffer_nodes(fs: &dyn HostFs) -> BTreeMap<String, PciAddress> {
    super::console::framebuffers(fs)
        .into_iter()
        .map(|(index, address)| (format!("/dev/fb{index}"), address))
        .collect()
}

fn vfio_group_of(node: &str) -> Option<u32> {
    node.strip_prefix("/dev/vfio/")?.parse().ok()
}

fn nvidia_minors(fs: &dyn HostFs) -> BTreeMap<String, PciAddress> {
    let mut nodes = BTreeMap::new();
    let base = Path::new("/proc/driver/nvidia/gpus");
    for entry in fs.read_dir(base).unwrap_or_default() {
        let Ok(address) = entry.name.parse::<PciAddress>() else {
            continue;
        };
        let Ok(text) = fs.read_text(&base.join(&entry.name).join("information")) else {
            continue;
        };
        let minor = text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "Device Minor").then(|| value.trim().to_owned())
        });
        if let Some(minor) = minor {
            nodes.insert(format!("/dev/nvidia{minor}"), address);
        }
    }
    nodes
}

fn is_nvidia_shared(node: &str) -> bool {
    node == "/dev/nvidiactl" || node.starts_with("/dev/nvidia-")
}

pub(super) fn read_openers(fs: &dyn HostFs) -> Result<DeviceOpeners, String> {
    let mut drm = drm_devices(fs);
    drm.extend(framebuffer_nodes(fs));
    let nvidia = nvidia_minors(fs);
    let processes = fs
        .read_dir(Path::new("/proc"))
        .map_err(|error| format!("could not list /proc: {error}"))?;
    let mut openers = DeviceOpeners::default();
    for process in processes {
        let Ok(pid) = process.name.parse::<u32>() else {
            continue;
        };
        let fd_dir = Path::new("/proc").join(&process.name).join("fd");
        let descriptors = match fs.read_dir(&fd_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                openers.unreadable += 1;
                continue;
            }
            // The process ended meanwhile.
            Err(_) => continue,
        };
        let mut command = None;
        for descriptor in descriptors {
            let Ok(target) = fs.read_link(&fd_dir.join(&descriptor.name)) else {
                continue;
            };
            let node = target.to_string_lossy().into_owned();
            let owner = drm.get(&node).or_else(|| nvidia.get(&node));
            let vfio_group = vfio_group_of(&node);
            if owner.is_none() && vfio_group.is_none() && !is_nvidia_shared(&node) {
                continue;
            }
            let command = command
                .get_or_insert_with(|| {
                    fs.read_text(&Path::new("/proc").join(&process.name).join("comm"))
                        .unwrap_or_else(|_| "?".into())
                })
                .clone();
            let opener = Opener { pid, command, node };
            match (owner, vfio_group) {
                (Some(address), _) => openers.by_device.entry(*address).or_default().push(opener),
                (None, Some(group)) => openers.by_vfio_group.entry(group).or_default().push(opener),
                (None, None) => openers.nvidia_shared.push(opener),
            }
        }
    }
    for list in openers
        .by_device
        .values_mut()
        .chain(openers.by_vfio_group.values_mut())
    {
        list.dedup();
    }
    openers.nvidia_shared.dedup();
    Ok(openers)
}

/// Says who holds which files, once each: `qemu-system-x86 (pid 812) has /dev/vfio/3 open`.
pub fn describe(openers: &[Opener]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for opener in openers {
        let text = format!(
            "{} (pid {}) has {} open",
            opener.command, opener.pid, opener.node
        );
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    seen.join("; ")
}

fn nvidia_module_finding(fs: &dyn HostFs, device: PciAddress, driver: &str) -> Option<Finding> {
    let module = sysfs::module_of_driver(fs, driver).unwrap_or_else(|| driver.to_owned());
    if !module.starts_with("nvidia") {
        return None;
    }
    let holders = sysfs::module_holders(fs, &module);
    let refs = sysfs::module_refcount(fs, &module)?;
    let users = refs.saturating_sub(holders.len() as u64);
    if users == 0 {
        return None;
    }
    let mut message = format!("the {module} module has {users} user(s) besides its own modules");
    if !holders.is_empty() {
        message.push_str(&format!(" ({} depend on it)", holders.join(", ")));
    }
    Some(Finding::new(
        device,
        FindingKind::DriverInUse,
        Severity::NeedsForce,
        message,
        "unbinding an NVIDIA GPU in use hangs: stop the display manager, nvidia-persistenced \
         (`systemctl stop nvidia-persistenced`) and CUDA programs first; `fuser -v \
         /dev/nvidia*` lists them. --force tries anyway (the unbind has a time limit)",
    ))
}

pub(super) fn findings(
    fs: &dyn HostFs,
    openers: &Result<DeviceOpeners, String>,
    device: PciAddress,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let driver = sysfs::current_driver(fs, device).ok().flatten();
    let on_nvidia = driver.as_deref() == Some("nvidia");
    if let Some(driver) = &driver
        && let Some(finding) = nvidia_module_finding(fs, device, driver)
    {
        findings.push(finding);
    }
    let gpu_like = on_nvidia
        || fs
            .read_dir(&sysfs::device_dir(device).join("drm"))
            .is_ok_and(|entries| !entries.is_empty());
    match openers {
        Ok(openers) => {
            let mut holding: Vec<Opener> =
                openers.by_device.get(&device).cloned().unwrap_or_default();
            if on_nvidia {
                holding.extend(openers.nvidia_shared.iter().cloned());
            }
            if !holding.is_empty() {
                findings.push(Finding::new(
                    device,
                    FindingKind::DeviceFilesOpen,
                    Severity::NeedsForce,
                    format!("{device} is in use: {}", describe(&holding)),
                    "stop these programs first (a display server: `systemctl stop \
                     display-manager`); unbinding a GPU that a program still uses can hang or \
                     crash the program. --force tries anyway (the unbind has a time limit)",
                ));
            } else if gpu_like && openers.unreadable > 0 {
                findings.push(Finding::new(
                    device,
                    FindingKind::DeviceFilesOpen,
                    Severity::Unknown,
                    format!(
                        "cannot tell whether programs use {device}: the open files of {} \
                         processes are hidden without root",
                        openers.unreadable
                    ),
                    "run as root so passthru can check who holds the GPU",
                ));
            }
        }
        Err(why) if gpu_like => findings.push(Finding::new(
            device,
            FindingKind::DeviceFilesOpen,
            Severity::Unknown,
            format!("cannot tell whether programs use {device}: {why}"),
            "check with `fuser -v /dev/dri/* /dev/nvidia*`",
        )),
        Err(_) => {}
    }
    findings
}
