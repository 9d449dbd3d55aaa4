//! The guest-disk side of the simulated Hyper-V: a [`passthru_hyperv::sim::Extension`] that
//! carries out the requests of [`super::powershell`] against the simulator's state, so that
//! `passthru driver sync` and `driver status` run end to end on any OS
//! (`PASSTHRU_HYPERV_SIMULATOR=state.json`), under wine too.
//!
//! What it models ([`state::GuestDisks`], saved in the state file):
//!
//! - the disks attached to each VM (virtual disk files, pass-through disks), in controller
//!   order;
//! - virtual disk files with partitions, each partition a directory standing for its volume
//!   (file system, size, BitLocker state);
//! - `Mount-VHD` / `Dismount-VHD` with host disk numbers, drive letters handed out by
//!   `Add-PartitionAccessPath` (the partition's directory is its "drive");
//! - registry hives: a guest's `Windows\System32\config\SYSTEM` holds keys and typed values
//!   ([`hive`]); `reg load` makes them visible below `HKLM\<mount>`, `reg unload` writes them
//!   back;
//! - the host's display adapters with their class-key values and driver-store folder.
//!
//! It answers with the JSON text the real scripts print (which the port's envelope carries as
//! one string) and fails the way Windows does (`messages.rs`): an unknown VM, the disk of a
//! running VM or a disk already mounted (in use), a disk that is not mounted, a hive whose
//! volume is not mounted, a mount name already taken, a write below a hive that is not loaded.
//! Faults injected in the state's `faults` apply to these requests too, by
//! [`GuestRequest::command`] (`Mount-VHD`, `reg load`, `SetValue`, ...).
//!
//! The VM's power state is not here: it belongs to the Hyper-V side, which the guest port
//! uses for `Get-VM`, `Stop-VM` and `Start-VM`.

pub mod hive;
mod messages;
pub mod state;

use std::path::{Path, PathBuf};

use passthru_hyperv::error::ErrorRecord;
use passthru_hyperv::sim::{Extension, SimState};
use serde_json::{Value, json};

use self::hive::{HiveFileError, HiveKeys, dotnet_value};
use self::state::{EXTENSION, GuestDisks, LoadedHive, Paths, SimMount};
use super::host::RegKey;
use super::hyperv::KIND_PREFIX;
use super::powershell::GuestRequest;

type Outcome = Result<Value, Box<ErrorRecord>>;

/// The extension. Relative paths in the state are taken from `state_dir`.
#[derive(Debug, Clone)]
pub struct GuestDiskSimulator {
    paths: Paths,
}

impl GuestDiskSimulator {
    /// For a state whose relative paths start at `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            paths: Paths::new(state_dir),
        }
    }

    /// For the state file `state_file` (relative paths start at its directory).
    pub fn for_state_file(state_file: &Path) -> Self {
        Self::new(state_file.parent().unwrap_or(Path::new(".")))
    }
}

/// Requests that are the Hyper-V side's business (the guest port sends them as Hyper-V ops).
const NOT_HERE: [&str; 3] = ["vm-state", "stop-vm", "start-vm"];

impl Extension for GuestDiskSimulator {
    fn handles(&self, kind: &str) -> bool {
        kind.strip_prefix(KIND_PREFIX)
            .is_some_and(|request| !NOT_HERE.contains(&request))
    }

    fn execute(
        &mut self,
        kind: &str,
        payload: &Value,
        state: &mut SimState,
    ) -> Result<Vec<Value>, Box<ErrorRecord>> {
        let request: GuestRequest = serde_json::from_value(payload.clone()).map_err(|error| {
            Box::new(ErrorRecord {
                exception_type: "System.ArgumentException".to_owned(),
                fully_qualified_error_id: "InvalidRequest".to_owned(),
                category: "InvalidArgument".to_owned(),
                message: format!("The simulated Hyper-V cannot read the `{kind}` request: {error}"),
                target: kind.to_owned(),
                command: String::new(),
            })
        })?;
        if let Some(record) = state.take_fault(request.command()) {
            return Err(Box::new(record));
        }
        let mut disks: GuestDisks = state
            .extensions
            .get(EXTENSION)
            .and_then(|value| serde_json::from_value(value.clone()).ok())
            .unwrap_or_default();
        let outcome = self.carry_out(&request, &mut disks, state);
        if let Ok(value) = serde_json::to_value(&disks) {
            state.extensions.insert(EXTENSION.to_owned(), value);
        }
        // The scripts print their answer as compressed JSON text.
        outcome.map(|answer| vec![Value::String(answer.to_string())])
    }
}

fn boxed(record: ErrorRecord) -> Box<ErrorRecord> {
    Box::new(record)
}

/// Whether a VM in `state` holds its disk files open (everything but off and saved).
fn holds_disks(state: &SimState, vm: &str) -> bool {
    state
        .vm(vm)
        .is_some_and(|vm| !vm.is_off() && !vm.is_saved())
}

impl GuestDiskSimulator {
    fn carry_out(
        &self,
        request: &GuestRequest,
        disks: &mut GuestDisks,
        state: &SimState,
    ) -> Outcome {
        match request {
            GuestRequest::VmDisks { vm } => {
                if state.vm(vm).is_none() {
                    return Err(passthru_hyperv::sim::vm_not_found(
                        "Get-VMHardDiskDrive",
                        vm,
                    ));
                }
                let list: Vec<Value> = disks
                    .vm_disks
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(vm))
                    .map(|(_, list)| list.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|disk| {
                        json!({"Path": disk.path, "DiskNumber": disk.disk_number, "Location": disk.location})
                    })
                    .collect();
                Ok(Value::Array(list))
            }
            GuestRequest::MountedDisk { vhd } => {
                if disks.vhd(vhd).is_none() {
                    return Err(boxed(messages::vhd_missing("Get-VHD", "open", vhd)));
                }
                let number = disks.mount_of(vhd).map(|(_, mount)| mount.disk);
                Ok(json!({"Attached": number.is_some(), "DiskNumber": number}))
            }
            GuestRequest::MountVhd { vhd } => self.mount(disks, state, vhd),
            GuestRequest::DismountVhd { vhd } => self.dismount(disks, vhd),
            GuestRequest::Volumes { disk } => self.volumes(disks, *disk),
            GuestRequest::AccessPath { disk, partition } => {
                let root = self.partition_root(disks, *disk, *partition)?;
                if let Some(mount) = disks.mounted.values_mut().find(|m| m.disk == *disk)
                    && !mount.lettered.contains(partition)
                {
                    mount.lettered.push(*partition);
                }
                Ok(json!({"AccessPath": root}))
            }
            GuestRequest::LoadHive { file, mount } => self.load_hive(disks, file, mount),
            GuestRequest::UnloadHive { mount } => {
                let name = disks
                    .hives
                    .keys()
                    .find(|name| name.eq_ignore_ascii_case(mount))
                    .cloned()
                    .ok_or_else(|| {
                        boxed(messages::reg_failed(
                            "unload",
                            "The parameter is incorrect.",
                        ))
                    })?;
                if let Some(hive) = disks.hives.remove(&name) {
                    hive.keys.write(&hive.file).map_err(|error| {
                        boxed(messages::reg_failed("unload", &error.to_string()))
                    })?;
                }
                Ok(json!({}))
            }
            GuestRequest::KeyExists { key } => {
                let (mount, path) = split(key);
                let exists = disks
                    .hive_mut(mount)
                    .is_some_and(|hive| hive.keys.exists(path));
                Ok(json!({"Exists": exists}))
            }
            GuestRequest::ReadValue { key, name } => {
                let (mount, path) = split(key);
                let data = disks
                    .hive_mut(mount)
                    .and_then(|hive| hive.keys.value(path, name).cloned());
                Ok(match data {
                    Some(data) => {
                        let (kind, data) = dotnet_value(&data);
                        json!({"Kind": kind, "Data": data})
                    }
                    None => json!({"Kind": null, "Data": null}),
                })
            }
            GuestRequest::WriteValue { key, name, data } => {
                let (mount, path) = split(key);
                let hive = disks
                    .hive_mut(mount)
                    .ok_or_else(|| boxed(messages::registry_access_denied(&key.0)))?;
                hive.keys.set(path, name, data.clone());
                Ok(json!({}))
            }
            GuestRequest::DeleteValue { key, name } => {
                let (mount, path) = split(key);
                if let Some(hive) = disks.hive_mut(mount) {
                    hive.keys.delete_value(path, name);
                }
                Ok(json!({}))
            }
            GuestRequest::DeleteKey { key } => {
                let (mount, path) = split(key);
                if let Some(hive) = disks.hive_mut(mount)
                    && !path.is_empty()
                {
                    hive.keys.delete_tree(path);
                }
                Ok(json!({}))
            }
            GuestRequest::AdapterRegistration { instance_id } => {
                let adapter = disks
                    .adapters
                    .iter()
                    .find(|a| a.instance_id.eq_ignore_ascii_case(instance_id))
                    .ok_or_else(|| boxed(messages::no_such_device(instance_id)))?;
                let copy: Vec<Value> = adapter
                    .copy_to_vm
                    .iter()
                    .map(|value| {
                        let (kind, data) = dotnet_value(&value.data);
                        json!({"Key": value.key.name(), "Name": value.name, "Kind": kind, "Data": data})
                    })
                    .collect();
                Ok(json!({
                    "InstanceId": adapter.instance_id,
                    "InfPath": adapter.inf_path,
                    "InfSection": adapter.inf_section,
                    "MatchingDeviceId": adapter.matching_device_id,
                    "DriverDesc": adapter.driver_desc,
                    "ProviderName": adapter.provider_name,
                    "DriverVersion": adapter.driver_version,
                    "DriverStoreDir": self.paths.resolve(Path::new(&adapter.driver_store_dir)),
                    "CopyToVm": copy,
                }))
            }
            GuestRequest::VmState { .. }
            | GuestRequest::StopVm { .. }
            | GuestRequest::StartVm { .. } => Err(boxed(ErrorRecord {
                exception_type: "System.Management.Automation.CommandNotFoundException".to_owned(),
                fully_qualified_error_id: "CommandNotFoundException".to_owned(),
                category: "ObjectNotFound".to_owned(),
                message: "The simulated guest disks leave VM power to the Hyper-V side.".to_owned(),
                target: request.command().to_owned(),
                command: String::new(),
            })),
        }
    }

    fn mount(&self, disks: &mut GuestDisks, state: &SimState, vhd: &str) -> Outcome {
        let Some((path, _)) = disks.vhd(vhd) else {
            return Err(boxed(messages::vhd_missing("Mount-VHD", "mount", vhd)));
        };
        let path = path.clone();
        let in_use =
            disks.mount_of(vhd).is_some() || disks.owners_of(vhd).any(|vm| holds_disks(state, vm));
        if in_use {
            return Err(boxed(messages::vhd_in_use("Mount-VHD", "mount", vhd)));
        }
        let disk = disks.next_disk.max(2);
        disks.next_disk = disk + 1;
        disks.mounted.insert(
            path,
            SimMount {
                disk,
                lettered: Vec::new(),
            },
        );
        Ok(json!({"DiskNumber": disk}))
    }

    fn dismount(&self, disks: &mut GuestDisks, vhd: &str) -> Outcome {
        let Some((path, _)) = disks.mount_of(vhd) else {
            return Err(boxed(messages::vhd_not_attached(vhd)));
        };
        let path = path.clone();
        // A loaded hive keeps its file, and so the volume, open.
        let roots = self.roots_of(disks, &path);
        if disks
            .hives
            .values()
            .any(|hive| roots.iter().any(|root| hive.file.starts_with(root)))
        {
            return Err(boxed(messages::vhd_in_use("Dismount-VHD", "dismount", vhd)));
        }
        disks.mounted.remove(&path);
        Ok(json!({}))
    }

    fn volumes(&self, disks: &GuestDisks, disk: u32) -> Outcome {
        let Some((path, vhd)) = disks.mounted_disk(disk) else {
            return Err(boxed(messages::partition_not_found(
                "Get-Partition",
                "DiskNumber",
                disk,
            )));
        };
        let lettered = disks
            .mount_of(path)
            .map(|(_, mount)| mount.lettered.clone())
            .unwrap_or_default();
        let list: Vec<Value> = vhd
            .partitions
            .iter()
            .map(|partition| {
                let locked = partition.bit_locker == super::host::BitLocker::Locked;
                json!({
                    "Partition": partition.number,
                    "Size": partition.size,
                    "FileSystem": if locked { "" } else { partition.file_system.as_str() },
                    "AccessPath": lettered
                        .contains(&partition.number)
                        .then(|| self.paths.resolve(&partition.root)),
                    "BitLocker": partition.bit_locker,
                })
            })
            .collect();
        Ok(Value::Array(list))
    }

    fn partition_root(
        &self,
        disks: &GuestDisks,
        disk: u32,
        partition: u32,
    ) -> Result<PathBuf, Box<ErrorRecord>> {
        let (_, vhd) = disks.mounted_disk(disk).ok_or_else(|| {
            boxed(messages::partition_not_found(
                "Add-PartitionAccessPath",
                "DiskNumber",
                disk,
            ))
        })?;
        vhd.partitions
            .iter()
            .find(|p| p.number == partition)
            .map(|p| self.paths.resolve(&p.root))
            .ok_or_else(|| {
                boxed(messages::partition_not_found(
                    "Add-PartitionAccessPath",
                    "PartitionNumber",
                    partition,
                ))
            })
    }

    /// The directories of the lettered partitions of the mounted file `vhd`.
    fn roots_of(&self, disks: &GuestDisks, vhd: &str) -> Vec<PathBuf> {
        let Some((_, mount)) = disks.mount_of(vhd) else {
            return Vec::new();
        };
        let Some((_, file)) = disks.vhd(vhd) else {
            return Vec::new();
        };
        file.partitions
            .iter()
            .filter(|p| mount.lettered.contains(&p.number))
            .map(|p| self.paths.resolve(&p.root))
            .collect()
    }

    fn load_hive(&self, disks: &mut GuestDisks, file: &Path, mount: &str) -> Outcome {
        // Only a mounted volume with a drive letter can be reached.
        let reachable = disks
            .mounted
            .keys()
            .flat_map(|vhd| self.roots_of(disks, vhd))
            .any(|root| file.starts_with(&root));
        if !reachable {
            return Err(boxed(messages::reg_failed(
                "load",
                "The system cannot find the file specified.",
            )));
        }
        let taken = disks
            .hives
            .keys()
            .any(|name| name.eq_ignore_ascii_case(mount))
            || disks.hives.values().any(|hive| hive.file == file);
        if taken {
            return Err(boxed(messages::reg_failed(
                "load",
                "The process cannot access the file because it is being used by another process.",
            )));
        }
        let keys = match HiveKeys::read(file) {
            Ok(keys) => keys,
            Err(HiveFileError::Missing) => {
                return Err(boxed(messages::reg_failed(
                    "load",
                    "The system cannot find the file specified.",
                )));
            }
            Err(HiveFileError::NotAHive | HiveFileError::Io(_)) => {
                return Err(boxed(messages::reg_failed(
                    "load",
                    "The configuration registry database is corrupt.",
                )));
            }
        };
        disks.hives.insert(
            mount.to_owned(),
            LoadedHive {
                file: file.to_path_buf(),
                keys,
            },
        );
        Ok(json!({}))
    }
}

/// `PASSTHRU_GUEST_SYSTEM\ControlSet001\...` → (`PASSTHRU_GUEST_SYSTEM`, `ControlSet001\...`).
fn split(key: &RegKey) -> (&str, &str) {
    key.0.split_once('\\').unwrap_or((key.0.as_str(), ""))
}

#[cfg(test)]
mod tests;
