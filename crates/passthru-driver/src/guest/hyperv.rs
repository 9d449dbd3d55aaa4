//! The guest host over the Hyper-V PowerShell port: one PowerShell session
//! ([`passthru_hyperv::client::HyperVHost`]) serves a whole `driver sync`, real or simulated.
//!
//! The two halves meet here without either changing shape:
//!
//! - the disk, volume and registry operations run the scripts of [`super::powershell`], each
//!   sent as a [`Script::extension`] of kind `driver.<request>` whose payload is the
//!   [`GuestRequest`] itself, so the simulated Hyper-V can carry it out
//!   ([`super::simulated`]); inside the port's JSON envelope a script's printed JSON arrives as
//!   one string, which is handed to the parsers unchanged;
//! - the VM's power state goes through the Hyper-V side's own typed query and changes
//!   (`Get-VM`, `Stop-VM -Force`, `Start-VM`), so `gpu-p`, `assign` and `driver sync` see and
//!   change one and the same VM;
//! - failures are classified by [`passthru_hyperv::error::classify`] and then by
//!   [`explain`] for what only disks and hives do (BitLocker, a disk in use).

pub mod explain;

use std::path::{Path, PathBuf};

use passthru_hyperv::client::{HostError as PortFailure, HyperVHost};
use passthru_hyperv::ops::Op;
use passthru_hyperv::ps::Script;
use passthru_hyperv::ps::envelope::Answer;
use serde_json::Value;

use super::host::{GuestHost, GuestVolume, HostError, RegKey, VmDisk, VmState};
use super::powershell::{GuestRequest, PowerShellGuestHost, ScriptRunner};
use crate::package::{AdapterRegistration, RegData};

/// The prefix of the extension kinds this crate sends through the port.
pub const KIND_PREFIX: &str = "driver.";

/// The port's extension kind of a request (`driver.mount-vhd`).
pub fn kind_of(request: &GuestRequest) -> String {
    let tag = serde_json::to_value(request)
        .ok()
        .and_then(|value| value["request"].as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{KIND_PREFIX}{tag}")
}

/// The script the port runs for `request`.
pub fn script_for(request: &GuestRequest) -> Script {
    let payload = serde_json::to_value(request).unwrap_or(Value::Null);
    Script::extension(kind_of(request), payload, request.script())
}

/// Runs guest scripts through a Hyper-V PowerShell session.
#[derive(Debug)]
pub struct HyperVScripts {
    host: HyperVHost,
}

impl HyperVScripts {
    /// Runs scripts through `host`.
    pub fn new(host: HyperVHost) -> Self {
        Self { host }
    }
}

impl ScriptRunner for HyperVScripts {
    fn run(&mut self, request: &GuestRequest) -> Result<String, HostError> {
        let answer = self
            .host
            .run(&script_for(request))
            .map_err(|error| explain::explain(request, &error))?;
        answer_text(&answer).ok_or_else(|| {
            HostError::new(
                request.operation(),
                "PowerShell answered nothing (the script printed no JSON)",
            )
        })
    }
}

/// What a guest script printed: its JSON document, which the envelope carries as one string.
fn answer_text(answer: &Answer) -> Option<String> {
    let last_text = answer.data.iter().rev().find_map(Value::as_str);
    match (last_text, answer.data.last()) {
        (Some(text), _) => Some(text.to_owned()),
        // A script changed to print an object instead: its JSON is the same text.
        (None, Some(value)) => Some(value.to_string()),
        (None, None) => None,
    }
}

/// [`GuestHost`] over a Hyper-V PowerShell session (see the module documentation).
#[derive(Debug)]
pub struct HyperVGuestHost {
    scripts: PowerShellGuestHost<HyperVScripts>,
}

impl HyperVGuestHost {
    /// Works through `host` (one PowerShell session, or the simulator).
    pub fn new(host: HyperVHost) -> Self {
        Self {
            scripts: PowerShellGuestHost::new(HyperVScripts::new(host)),
        }
    }

    /// The Hyper-V session, for reads the guest port does not have (the survey).
    pub fn hyperv(&mut self) -> &mut HyperVHost {
        &mut self.scripts.runner_mut().host
    }

    /// Reads what [`crate::package::resolve`] needs about the host GPU `instance_id`.
    pub fn adapter_registration(
        &mut self,
        instance_id: &str,
    ) -> Result<AdapterRegistration, HostError> {
        self.scripts.adapter_registration(instance_id)
    }

    fn change_power(&mut self, operation: String, op: Op) -> Result<(), HostError> {
        self.hyperv()
            .perform(&op)
            .map_err(|error| explain::port_failure(operation, &error))
    }
}

impl GuestHost for HyperVGuestHost {
    fn vm_state(&mut self, vm: &str) -> Result<VmState, HostError> {
        let found = self.hyperv().vm(vm).map_err(|error: PortFailure| {
            explain::port_failure(format!("Get-VM '{vm}'"), &error)
        })?;
        Ok(VmState::from_text(
            found.state.as_deref().unwrap_or("Unknown"),
        ))
    }

    fn stop_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.change_power(
            format!("Stop-VM '{vm}'"),
            Op::StopVm {
                vm: vm.to_owned(),
                turn_off: false,
            },
        )
    }

    fn start_vm(&mut self, vm: &str) -> Result<(), HostError> {
        self.change_power(
            format!("Start-VM '{vm}'"),
            Op::StartVm { vm: vm.to_owned() },
        )
    }

    fn vm_disks(&mut self, vm: &str) -> Result<Vec<VmDisk>, HostError> {
        self.scripts.vm_disks(vm)
    }

    fn mounted_disk(&mut self, vhd: &str) -> Result<Option<u32>, HostError> {
        self.scripts.mounted_disk(vhd)
    }

    fn mount_vhd(&mut self, vhd: &str) -> Result<u32, HostError> {
        self.scripts.mount_vhd(vhd)
    }

    fn dismount_vhd(&mut self, vhd: &str) -> Result<(), HostError> {
        self.scripts.dismount_vhd(vhd)
    }

    fn volumes(&mut self, disk: u32) -> Result<Vec<GuestVolume>, HostError> {
        self.scripts.volumes(disk)
    }

    fn access_path(&mut self, disk: u32, partition: u32) -> Result<PathBuf, HostError> {
        self.scripts.access_path(disk, partition)
    }

    fn load_hive(&mut self, file: &Path, mount: &str) -> Result<(), HostError> {
        self.scripts.load_hive(file, mount)
    }

    fn unload_hive(&mut self, mount: &str) -> Result<(), HostError> {
        self.scripts.unload_hive(mount)
    }

    fn key_exists(&mut self, key: &RegKey) -> Result<bool, HostError> {
        self.scripts.key_exists(key)
    }

    fn read_value(&mut self, key: &RegKey, name: &str) -> Result<Option<RegData>, HostError> {
        self.scripts.read_value(key, name)
    }

    fn write_value(&mut self, key: &RegKey, name: &str, data: &RegData) -> Result<(), HostError> {
        self.scripts.write_value(key, name, data)
    }

    fn delete_value(&mut self, key: &RegKey, name: &str) -> Result<(), HostError> {
        self.scripts.delete_value(key, name)
    }

    fn delete_key(&mut self, key: &RegKey) -> Result<(), HostError> {
        self.scripts.delete_key(key)
    }
}

#[cfg(test)]
mod tests;
