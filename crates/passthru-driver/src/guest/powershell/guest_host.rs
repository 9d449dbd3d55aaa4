//! [`GuestHost`] over a [`ScriptRunner`]: each operation runs its [`GuestRequest`] and reads
//! the one JSON document the script prints.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::registry::reg_data;
use super::{GuestRequest, ScriptRunner, parse_adapter_registration};
use crate::guest::host::{BitLocker, GuestHost, GuestVolume, HostError, RegKey, VmDisk, VmState};
use crate::package::{AdapterRegistration, RegData};

/// [`GuestHost`] over a PowerShell runner.
#[derive(Debug)]
pub struct PowerShellGuestHost<R> {
    runner: R,
}

impl<R: ScriptRunner> PowerShellGuestHost<R> {
    /// Wraps a runner.
    pub fn new(runner: R) -> Self {
        Self { runner }
    }

    /// The runner back.
    pub fn into_runner(self) -> R {
        self.runner
    }

    /// The runner.
    pub fn runner_mut(&mut self) -> &mut R {
        &mut self.runner
    }

    /// Runs a request whose answer does not matter.
    fn act(&mut self, request: GuestRequest) -> Result<(), HostError> {
        self.runner.run(&request).map(drop)
    }

    /// Runs a request and reads its one JSON answer.
    fn json<T: for<'de> Deserialize<'de>>(
        &mut self,
        request: GuestRequest,
    ) -> Result<T, HostError> {
        let output = self.runner.run(&request)?;
        serde_json::from_str(output.trim()).map_err(|error| {
            HostError::new(
                request.operation(),
                format!(
                    "PowerShell printed something passthru cannot read ({error}): {}",
                    output.trim()
                ),
            )
        })
    }

    /// Reads what [`crate::package::resolve`] needs about the host GPU with PnP instance id
    /// `instance_id` ([`adapter_registration`](super::adapter_registration)).
    pub fn adapter_registration(
        &mut self,
        instance_id: &str,
    ) -> Result<AdapterRegistration, HostError> {
        let output = self.runner.run(&GuestRequest::AdapterRegistration {
            instance_id: instance_id.to_owned(),
        })?;
        parse_adapter_registration(&output)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StateAnswer {
    state: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DiskAnswer {
    path: Option<String>,
    disk_number: Option<u32>,
    location: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VhdAnswer {
    attached: bool,
    disk_number: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MountAnswer {
    disk_number: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VolumeAnswer {
    partition: u32,
    size: u64,
    file_system: String,
    access_path: Option<String>,
    bit_locker: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PathAnswer {
    access_path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExistsAnswer {
    exists: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ValueAnswer {
    kind: Option<String>,
    data: Value,
}

impl<R: ScriptRunner> GuestHost for PowerShellGuestHost<R> {
    fn vm_state(&mut self, vm: &str) -> Result<VmState, HostError> {
        let answer: StateAnswer = self.json(GuestRequest::VmState { vm: vm.to_owned() })?;
        Ok(VmState::from_text(&answer.state))
    }

    fn stop_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.act(GuestRequest::StopVm { vm: vm.to_owned() })
    }

    fn start_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.act(GuestRequest::StartVm { vm: vm.to_owned() })
    }

    fn vm_disks(&mut self, vm: &str) -> Result<Vec<VmDisk>, HostError> {
        let answers: Vec<DiskAnswer> = self.json(GuestRequest::VmDisks { vm: vm.to_owned() })?;
        Ok(answers
            .into_iter()
            .map(|disk| VmDisk {
                // A pass-through disk has a disk number and a descriptive "path".
                path: disk.path.filter(|_| disk.disk_number.is_none()),
                location: disk.location,
            })
            .collect())
    }

    fn mounted_disk(&mut self, vhd: &str) -> Result<Option<u32>, HostError> {
        let answer: VhdAnswer = self.json(GuestRequest::MountedDisk {
            vhd: vhd.to_owned(),
        })?;
        Ok(answer.disk_number.filter(|_| answer.attached))
    }

    fn mount_vhd(&mut self, vhd: &str) -> Result<u32, HostError> {
        let answer: MountAnswer = self.json(GuestRequest::MountVhd {
            vhd: vhd.to_owned(),
        })?;
        Ok(answer.disk_number)
    }

    fn dismount_vhd(&mut self, vhd: &str) -> Result<(), HostError> {
        self.act(GuestRequest::DismountVhd {
            vhd: vhd.to_owned(),
        })
    }

    fn volumes(&mut self, disk: u32) -> Result<Vec<GuestVolume>, HostError> {
        let answers: Vec<VolumeAnswer> = self.json(GuestRequest::Volumes { disk })?;
        Ok(answers
            .into_iter()
            .map(|v| GuestVolume {
                partition: v.partition,
                size: v.size,
                file_system: v.file_system,
                access_path: v.access_path.map(PathBuf::from),
                bitlocker: match v.bit_locker.as_str() {
                    "off" => BitLocker::Off,
                    "unlocked" => BitLocker::Unlocked,
                    "locked" => BitLocker::Locked,
                    _ => BitLocker::Unknown,
                },
            })
            .collect())
    }

    fn access_path(&mut self, disk: u32, partition: u32) -> Result<PathBuf, HostError> {
        let answer: PathAnswer = self.json(GuestRequest::AccessPath { disk, partition })?;
        Ok(PathBuf::from(answer.access_path))
    }

    fn load_hive(&mut self, file: &Path, mount: &str) -> Result<(), HostError> {
        self.act(GuestRequest::LoadHive {
            file: file.to_path_buf(),
            mount: mount.to_owned(),
        })
    }

    fn unload_hive(&mut self, mount: &str) -> Result<(), HostError> {
        self.act(GuestRequest::UnloadHive {
            mount: mount.to_owned(),
        })
    }

    fn key_exists(&mut self, key: &RegKey) -> Result<bool, HostError> {
        let answer: ExistsAnswer = self.json(GuestRequest::KeyExists { key: key.clone() })?;
        Ok(answer.exists)
    }

    fn read_value(&mut self, key: &RegKey, name: &str) -> Result<Option<RegData>, HostError> {
        let request = GuestRequest::ReadValue {
            key: key.clone(),
            name: name.to_owned(),
        };
        let operation = request.operation();
        let answer: ValueAnswer = self.json(request)?;
        match answer.kind {
            None => Ok(None),
            Some(kind) => reg_data(&operation, &kind, &answer.data).map(Some),
        }
    }

    fn write_value(&mut self, key: &RegKey, name: &str, data: &RegData) -> Result<(), HostError> {
        self.act(GuestRequest::WriteValue {
            key: key.clone(),
            name: name.to_owned(),
            data: data.clone(),
        })
    }

    fn delete_value(&mut self, key: &RegKey, name: &str) -> Result<(), HostError> {
        self.act(GuestRequest::DeleteValue {
            key: key.clone(),
            name: name.to_owned(),
        })
    }

    fn delete_key(&mut self, key: &RegKey) -> Result<(), HostError> {
        self.act(GuestRequest::DeleteKey { key: key.clone() })
    }
}
