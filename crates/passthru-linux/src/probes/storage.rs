//! Storage controllers holding mounted filesystems or swap (`/proc/self/mountinfo`,
//! `/proc/swaps`), followed through sysfs to the PCI device: `/sys/dev/block/M:m` → the block
//! device → its PCI ancestor, through `slaves/` for device-mapper and md devices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

use super::{Finding, FindingKind, Severity};
use crate::sysfs;

/// One mounted filesystem (or active swap area).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountUse {
    /// Where it is mounted (`[swap]` for swap).
    pub mount_point: String,
    /// The mount source (`/dev/nvme0n1p2`).
    pub source: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Block device number (`major:minor`), 0:0 when unknown.
    pub dev: (u32, u32),
}

/// Mounts and swap areas by the PCI device that holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageUse {
    /// PCI device → what it holds.
    pub by_device: BTreeMap<PciAddress, Vec<MountUse>>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && index + 3 < bytes.len()
            && bytes[index + 1..=index + 3]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[index + 1..=index + 3]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/<pid>/mountinfo`
/// (`id parent major:minor root mount-point options [optional...] - type source super-options`);
/// malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountUse> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let (major, minor) = fields.get(2)?.split_once(':')?;
            let mount_point = unescape(fields.get(4)?);
            let mut tail = after.split(' ');
            let fs_type = tail.next()?.to_owned();
            let source = unescape(tail.next().unwrap_or(""));
            Some(MountUse {
                mount_point,
                source,
                fs_type,
                dev: (major.parse().ok()?, minor.parse().ok()?),
            })
        })
        .collect()
}

/// Parses `/proc/swaps` into swap areas (no device numbers: found by name).
fn parse_swaps(text: &str) -> Vec<MountUse> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let kind = fields.next().unwrap_or("swap");
            Some(MountUse {
                mount_point: "[swap]".into(),
                source: unescape(name),
                fs_type: kind.to_owned(),
                dev: (0, 0),
            })
        })
        .collect()
}

/// The PCI devices under a block device's sysfs directory, following `slaves/` of virtual
/// devices (dm, md) and the disk of a partition.
fn pci_devices_of_block(fs: &dyn HostFs, real: &Path, depth: usize) -> BTreeSet<PciAddress> {
    let mut found = BTreeSet::new();
    if depth > 8 {
        return found;
    }
    if let Some(address) = sysfs::pci_ancestor(real) {
        found.insert(address);
        return found;
    }
    let mut dirs = vec![real.to_path_buf()];
    if fs.exists(&real.join("partition"))
        && let Some(disk) = real.parent()
    {
        dirs.push(disk.to_path_buf());
    }
    for dir in dirs {
        for entry in fs.read_dir(&dir.join("slaves")).unwrap_or_default() {
            if let Ok(lower) = sysfs::canonicalize(fs, &dir.join("slaves").join(&entry.name)) {
                found.extend(pci_devices_of_block(fs, &lower, depth + 1));
            }
        }
    }
    found
}

/// Where a mount's block device lives in sysfs: by number, else by the source's name.
fn block_dir(fs: &dyn HostFs, mount: &MountUse) -> Option<PathBuf> {
    if mount.dev.0 != 0 {
        let by_number = PathBuf::from(format!("/sys/dev/block/{}:{}", mount.dev.0, mount.dev.1));
        if fs.exists(&by_number) {
            return sysfs::canonicalize(fs, &by_number).ok();
        }
    }
    // btrfs and others report an anonymous device number; the source names the device.
    if !mount.source.starts_with("/dev/") {
        return None;
    }
    let device = sysfs::canonicalize(fs, Path::new(&mount.source)).ok()?;
    let name = device.file_name()?.to_string_lossy().into_owned();
    sysfs::canonicalize(fs, &Path::new("/sys/class/block").join(name)).ok()
}

pub(super) fn read_storage_use(fs: &dyn HostFs) -> Result<StorageUse, String> {
    let text = fs
        .read_text(Path::new("/proc/self/mountinfo"))
        .map_err(|error| format!("could not read /proc/self/mountinfo: {error}"))?;
    let mut uses = parse_mountinfo(&text);
    if let Ok(swaps) = fs.read_text(Path::new("/proc/swaps")) {
        uses.extend(parse_swaps(&swaps));
    }
    let mut storage = StorageUse::default();
    for mount in uses {
        let Some(dir) = block_dir(fs, &mount) else {
            continue;
        };
        for address in pci_devices_of_block(fs, &dir, 0) {
            storage
                .by_device
                .entry(address)
                .or_default()
                .push(mount.clone());
        }
    }
    Ok(storage)
}

pub(super) fn findings(
    storage: &Result<StorageUse, String>,
    device: PciAddress,
) -> Option<Finding> {
    let storage = match storage {
        Ok(storage) => storage,
        Err(why) => {
            return Some(Finding::new(
                device,
                FindingKind::MountedFilesystem,
                Severity::Unknown,
                format!("cannot tell whether {device} holds mounted filesystems: {why}"),
                "check `findmnt` yourself before assigning a storage controller",
            ));
        }
    };
    let uses = storage.by_device.get(&device)?;
    let mut points: Vec<&str> = uses.iter().map(|use_| use_.mount_point.as_str()).collect();
    points.sort_unstable();
    points.dedup();
    let list = points.join(", ");
    if points.contains(&"/") {
        return Some(Finding::new(
            device,
            FindingKind::RootFilesystem,
            Severity::Blocked,
            format!("{device} holds the host's root filesystem (mounted: {list})"),
            "this is the disk the host runs from; taking it away crashes the host. Give the VM \
             another controller or a virtual disk",
        ));
    }
    Some(Finding::new(
        device,
        FindingKind::MountedFilesystem,
        Severity::NeedsForce,
        format!("{device} holds mounted filesystems or swap: {list}"),
        "unmount them (and `swapoff`) first; the host loses them when the controller goes to \
         the VM. --force goes ahead anyway",
    ))
}
