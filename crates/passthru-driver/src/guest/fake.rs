//! A simulated Hyper-V host for tests: VMs with power states, virtual disks whose partitions
//! are directories, a registry with loadable offline hives, and Hyper-V's refusals (mounting
//! the disk of a running VM, loading a hive twice, unloading one that is not loaded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::host::{BitLocker, GuestHost, GuestVolume, HostError, RegKey, VmDisk, VmState};
use crate::package::RegData;

/// A VM of the fake host.
#[derive(Debug, Clone)]
pub struct FakeVm {
    /// Power state.
    pub state: VmState,
    /// Attached disks.
    pub disks: Vec<VmDisk>,
    /// Whether `Stop-VM` works (integration services running in the guest).
    pub can_shut_down: bool,
}

/// A partition of a fake virtual disk: its contents live in `root`.
#[derive(Debug, Clone)]
pub struct FakePartition {
    /// Partition number.
    pub number: u32,
    /// File system (`NTFS`, `FAT32`, empty for none).
    pub file_system: String,
    /// BitLocker state.
    pub bitlocker: BitLocker,
    /// Directory standing in for the volume.
    pub root: PathBuf,
}

#[derive(Debug, Clone, Default)]
struct FakeKey {
    values: BTreeMap<String, (String, RegData)>,
}

/// The simulated host.
#[derive(Debug, Default)]
pub struct FakeGuestHost {
    /// VMs by name.
    pub vms: BTreeMap<String, FakeVm>,
    /// Virtual disk files and their partitions.
    pub disks: BTreeMap<String, Vec<FakePartition>>,
    /// Mounted disk files → host disk number.
    pub mounted: BTreeMap<String, u32>,
    /// Offline hive files (by host path) → key (lower case, relative) → values.
    hives: BTreeMap<PathBuf, BTreeMap<String, FakeKey>>,
    /// Loaded hives: mount name (lower case) → hive file.
    loaded: BTreeMap<String, PathBuf>,
    /// Keys of the live registry (lower-case path below HKLM).
    registry: BTreeMap<String, FakeKey>,
    next_disk: u32,
    /// Every operation, in order (`mount D:\vm.vhdx`, `load-hive ...`).
    pub calls: Vec<String>,
    /// Makes the first operation whose log line starts with `.0` fail with message `.1`.
    pub fail_next: Option<(String, String)>,
}

impl FakeGuestHost {
    /// An empty host.
    pub fn new() -> Self {
        Self {
            next_disk: 2,
            ..Self::default()
        }
    }

    /// Adds a VM.
    pub fn add_vm(&mut self, name: &str, state: VmState, disks: &[&str]) {
        let disks = disks
            .iter()
            .enumerate()
            .map(|(index, path)| VmDisk {
                path: Some((*path).to_owned()),
                location: format!("SCSI 0:{index}"),
            })
            .collect();
        self.vms.insert(
            name.to_owned(),
            FakeVm {
                state,
                disks,
                can_shut_down: true,
            },
        );
    }

    /// Adds a virtual disk file with partitions.
    pub fn add_disk(&mut self, vhd: &str, partitions: Vec<FakePartition>) {
        self.disks.insert(vhd.to_owned(), partitions);
    }

    /// Puts an offline SYSTEM hive at `file` with these values: `(key, name, data)`.
    pub fn add_hive(&mut self, file: &Path, values: &[(&str, &str, RegData)]) {
        let hive = self.hives.entry(file.to_path_buf()).or_default();
        for (key, name, data) in values {
            add_value(hive, key, name, data.clone());
        }
    }

    /// The offline hive's value (for assertions after it was unloaded).
    pub fn hive_value(&self, file: &Path, key: &str, name: &str) -> Option<RegData> {
        let hive = self.hives.get(file)?;
        let key = hive.get(&key.to_ascii_lowercase())?;
        key.values
            .get(&name.to_ascii_lowercase())
            .map(|(_, data)| data.clone())
    }

    /// Whether the offline hive has `key`.
    pub fn hive_has_key(&self, file: &Path, key: &str) -> bool {
        self.hives
            .get(file)
            .is_some_and(|hive| hive.contains_key(&key.to_ascii_lowercase()))
    }

    /// Loaded hive mount names.
    pub fn loaded_hives(&self) -> Vec<String> {
        self.loaded.keys().cloned().collect()
    }

    fn call(&mut self, line: String) -> Result<(), HostError> {
        let fail = self
            .fail_next
            .as_ref()
            .is_some_and(|(prefix, _)| line.starts_with(prefix.as_str()));
        self.calls.push(line.clone());
        if fail {
            let (_, message) = self.fail_next.take().unwrap_or_default();
            return Err(HostError::new(line, message));
        }
        Ok(())
    }

    fn vm(&mut self, vm: &str, operation: &str) -> Result<&mut FakeVm, HostError> {
        self.vms.get_mut(vm).ok_or_else(|| {
            HostError::new(
                operation.to_owned(),
                format!("Hyper-V was unable to find a virtual machine with name \"{vm}\"."),
            )
        })
    }

    fn partition(&self, disk: u32, partition: u32) -> Option<&FakePartition> {
        let vhd = self.mounted.iter().find(|(_, n)| **n == disk)?.0;
        self.disks.get(vhd)?.iter().find(|p| p.number == partition)
    }
}

fn add_value(hive: &mut BTreeMap<String, FakeKey>, key: &str, name: &str, data: RegData) {
    // Parent keys exist implicitly, as in a real hive.
    let mut path = String::new();
    for part in key.split('\\') {
        if !path.is_empty() {
            path.push('\\');
        }
        path.push_str(&part.to_ascii_lowercase());
        hive.entry(path.clone()).or_default();
    }
    // An empty name only creates the key (passthru never writes default values).
    if !name.is_empty() {
        hive.entry(key.to_ascii_lowercase())
            .or_default()
            .values
            .insert(name.to_ascii_lowercase(), (name.to_owned(), data));
    }
}

impl GuestHost for FakeGuestHost {
    fn vm_state(&mut self, vm: &str) -> Result<VmState, HostError> {
        self.call(format!("vm-state {vm}"))?;
        Ok(self.vm(vm, "Get-VM")?.state.clone())
    }

    fn stop_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.call(format!("stop-vm {vm}"))?;
        let entry = self.vm(vm, "Stop-VM")?;
        if !entry.can_shut_down {
            return Err(HostError::new(
                format!("Stop-VM {vm}"),
                "The virtual machine could not be shut down: the guest did not respond to the shutdown request.",
            ));
        }
        entry.state = VmState::Off;
        Ok(())
    }

    fn start_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.call(format!("start-vm {vm}"))?;
        self.vm(vm, "Start-VM")?.state = VmState::Running;
        Ok(())
    }

    fn vm_disks(&mut self, vm: &str) -> Result<Vec<VmDisk>, HostError> {
        self.call(format!("vm-disks {vm}"))?;
        Ok(self.vm(vm, "Get-VMHardDiskDrive")?.disks.clone())
    }

    fn mounted_disk(&mut self, vhd: &str) -> Result<Option<u32>, HostError> {
        self.call(format!("mounted-disk {vhd}"))?;
        Ok(self.mounted.get(vhd).copied())
    }

    fn mount_vhd(&mut self, vhd: &str) -> Result<u32, HostError> {
        self.call(format!("mount {vhd}"))?;
        let operation = format!("Mount-VHD '{vhd}'");
        if !self.disks.contains_key(vhd) {
            return Err(HostError::new(
                operation,
                format!("The system cannot find the file specified. ({vhd})"),
            ));
        }
        let in_use = self.vms.values().any(|vm| {
            vm.state != VmState::Off && vm.disks.iter().any(|d| d.path.as_deref() == Some(vhd))
        });
        if in_use || self.mounted.contains_key(vhd) {
            return Err(HostError::new(
                operation,
                "The process cannot access the file because it is being used by another process.",
            ));
        }
        let number = self.next_disk;
        self.next_disk += 1;
        self.mounted.insert(vhd.to_owned(), number);
        Ok(number)
    }

    fn dismount_vhd(&mut self, vhd: &str) -> Result<(), HostError> {
        self.call(format!("dismount {vhd}"))?;
        if self.mounted.remove(vhd).is_none() {
            return Err(HostError::new(
                format!("Dismount-VHD '{vhd}'"),
                "The disk is not attached.",
            ));
        }
        Ok(())
    }

    fn volumes(&mut self, disk: u32) -> Result<Vec<GuestVolume>, HostError> {
        self.call(format!("volumes {disk}"))?;
        let vhd = self
            .mounted
            .iter()
            .find(|(_, n)| **n == disk)
            .map(|(vhd, _)| vhd.clone())
            .ok_or_else(|| {
                HostError::new(
                    format!("Get-Partition -DiskNumber {disk}"),
                    "No disk with that number.",
                )
            })?;
        Ok(self.disks[&vhd]
            .iter()
            .map(|p| GuestVolume {
                partition: p.number,
                size: 64 << 30,
                file_system: if p.bitlocker == BitLocker::Locked {
                    String::new()
                } else {
                    p.file_system.clone()
                },
                access_path: None,
                bitlocker: p.bitlocker,
            })
            .collect())
    }

    fn access_path(&mut self, disk: u32, partition: u32) -> Result<PathBuf, HostError> {
        self.call(format!("access-path {disk} {partition}"))?;
        self.partition(disk, partition)
            .map(|p| p.root.clone())
            .ok_or_else(|| {
                HostError::new(
                    format!(
                        "Add-PartitionAccessPath -DiskNumber {disk} -PartitionNumber {partition}"
                    ),
                    "No partition with that number.",
                )
            })
    }

    fn load_hive(&mut self, file: &Path, mount: &str) -> Result<(), HostError> {
        self.call(format!("load-hive {mount}"))?;
        let operation = format!("reg load HKLM\\{mount}");
        let lower = mount.to_ascii_lowercase();
        if self.loaded.contains_key(&lower) || self.registry.contains_key(&lower) {
            return Err(HostError::new(
                operation,
                "ERROR: The process cannot access the file because it is being used by another process.",
            ));
        }
        if !file.is_file() {
            return Err(HostError::new(
                operation,
                "ERROR: The system cannot find the file specified.",
            ));
        }
        let hive = self.hives.get(file).cloned().unwrap_or_default();
        self.registry.insert(lower.clone(), FakeKey::default());
        for (key, value) in hive {
            self.registry.insert(format!("{lower}\\{key}"), value);
        }
        self.loaded.insert(lower, file.to_path_buf());
        Ok(())
    }

    fn unload_hive(&mut self, mount: &str) -> Result<(), HostError> {
        self.call(format!("unload-hive {mount}"))?;
        let lower = mount.to_ascii_lowercase();
        let Some(file) = self.loaded.remove(&lower) else {
            return Err(HostError::new(
                format!("reg unload HKLM\\{mount}"),
                "ERROR: The parameter is incorrect.",
            ));
        };
        let prefix = format!("{lower}\\");
        let keys: Vec<String> = self
            .registry
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        let mut hive = BTreeMap::new();
        for key in keys {
            let value = self.registry.remove(&key).unwrap_or_default();
            hive.insert(key[prefix.len()..].to_owned(), value);
        }
        self.registry.remove(&lower);
        self.hives.insert(file, hive);
        Ok(())
    }

    fn key_exists(&mut self, key: &RegKey) -> Result<bool, HostError> {
        self.call(format!("key-exists {}", key.0))?;
        Ok(self.registry.contains_key(&key.0.to_ascii_lowercase()))
    }

    fn read_value(&mut self, key: &RegKey, name: &str) -> Result<Option<RegData>, HostError> {
        self.call(format!("read {}\\{name}", key.0))?;
        Ok(self
            .registry
            .get(&key.0.to_ascii_lowercase())
            .and_then(|k| k.values.get(&name.to_ascii_lowercase()))
            .map(|(_, data)| data.clone()))
    }

    fn write_value(&mut self, key: &RegKey, name: &str, data: &RegData) -> Result<(), HostError> {
        self.call(format!("write {}\\{name}", key.0))?;
        let root = key.0.split('\\').next().unwrap_or("").to_ascii_lowercase();
        if !self.registry.contains_key(&root) {
            return Err(HostError::new(
                format!("write {key}"),
                "The system cannot find the path specified.",
            ));
        }
        add_value(&mut self.registry, &key.0, name, data.clone());
        Ok(())
    }

    fn delete_value(&mut self, key: &RegKey, name: &str) -> Result<(), HostError> {
        self.call(format!("delete-value {}\\{name}", key.0))?;
        if let Some(k) = self.registry.get_mut(&key.0.to_ascii_lowercase()) {
            k.values.remove(&name.to_ascii_lowercase());
        }
        Ok(())
    }

    fn delete_key(&mut self, key: &RegKey) -> Result<(), HostError> {
        self.call(format!("delete-key {}", key.0))?;
        let lower = key.0.to_ascii_lowercase();
        let prefix = format!("{lower}\\");
        self.registry
            .retain(|k, _| *k != lower && !k.starts_with(&prefix));
        Ok(())
    }
}

/// A shared host: tests hand one clone to a [`super::GuestSession`] and inspect the other.
impl<T: GuestHost> GuestHost for std::rc::Rc<std::cell::RefCell<T>> {
    fn vm_state(&mut self, vm: &str) -> Result<VmState, HostError> {
        self.borrow_mut().vm_state(vm)
    }
    fn stop_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.borrow_mut().stop_vm(vm)
    }
    fn start_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.borrow_mut().start_vm(vm)
    }
    fn vm_disks(&mut self, vm: &str) -> Result<Vec<VmDisk>, HostError> {
        self.borrow_mut().vm_disks(vm)
    }
    fn mounted_disk(&mut self, vhd: &str) -> Result<Option<u32>, HostError> {
        self.borrow_mut().mounted_disk(vhd)
    }
    fn mount_vhd(&mut self, vhd: &str) -> Result<u32, HostError> {
        self.borrow_mut().mount_vhd(vhd)
    }
    fn dismount_vhd(&mut self, vhd: &str) -> Result<(), HostError> {
        self.borrow_mut().dismount_vhd(vhd)
    }
    fn volumes(&mut self, disk: u32) -> Result<Vec<GuestVolume>, HostError> {
        self.borrow_mut().volumes(disk)
    }
    fn access_path(&mut self, disk: u32, partition: u32) -> Result<PathBuf, HostError> {
        self.borrow_mut().access_path(disk, partition)
    }
    fn load_hive(&mut self, file: &Path, mount: &str) -> Result<(), HostError> {
        self.borrow_mut().load_hive(file, mount)
    }
    fn unload_hive(&mut self, mount: &str) -> Result<(), HostError> {
        self.borrow_mut().unload_hive(mount)
    }
    fn key_exists(&mut self, key: &RegKey) -> Result<bool, HostError> {
        self.borrow_mut().key_exists(key)
    }
    fn read_value(&mut self, key: &RegKey, name: &str) -> Result<Option<RegData>, HostError> {
        self.borrow_mut().read_value(key, name)
    }
    fn write_value(&mut self, key: &RegKey, name: &str, data: &RegData) -> Result<(), HostError> {
        self.borrow_mut().write_value(key, name, data)
    }
    fn delete_value(&mut self, key: &RegKey, name: &str) -> Result<(), HostError> {
        self.borrow_mut().delete_value(key, name)
    }
    fn delete_key(&mut self, key: &RegKey) -> Result<(), HostError> {
        self.borrow_mut().delete_key(key)
    }
}
