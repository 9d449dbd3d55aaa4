//! passthru's record of the persistent assignment, kept in the configured system itself
//! (`/etc/passthru/persistent.json`) and written by the same transactional steps as every
//! other file, so that it always matches the files it describes.
//!
//! It says which devices are assigned, how they are bound, and exactly what passthru added to
//! files it shares with others (kernel parameters per location, list items), so that
//! `release --persistent` removes only that, and the post-boot check knows what to expect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::HostFs;
use passthru_core::pci::{ClassCode, PciAddress};
use serde::{Deserialize, Serialize};

use super::BootError;
use super::detect::{BootloaderKind, GeneratorKind};
use super::facts::PciId;

/// Where the record lives, host-absolute.
pub const STATE_PATH: &str = "/etc/passthru/persistent.json";
/// Schema tag of the record.
pub const STATE_SCHEMA: &str = "passthru.persistent/1";

/// How devices are bound to vfio-pci at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindingMethod {
    /// `vfio-pci.ids=` on the kernel command line: every device with those ids.
    Ids,
    /// A udev rule writes `driver_override` for each address (ids are not unique).
    Address,
}

/// A device passthru assigned persistently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedDevice {
    /// Its address.
    pub address: PciAddress,
    /// Its ids.
    pub id: PciId,
    /// Its class.
    pub class: ClassCode,
    /// Host driver modules that must load after vfio-pci (`softdep … pre: vfio-pci`).
    pub host_drivers: Vec<String>,
    /// Whether it was the boot display.
    #[serde(default)]
    pub boot_vga: bool,
}

/// The record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentState {
    /// Always [`STATE_SCHEMA`].
    pub schema: String,
    /// When the configuration was last changed (RFC 3339).
    pub changed_at: String,
    /// The devices.
    pub devices: Vec<PersistedDevice>,
    /// How they are bound.
    pub binding: BindingMethod,
    /// Boot loader configured.
    pub bootloader: BootloaderKind,
    /// Initramfs generator configured.
    pub generator: GeneratorKind,
    /// Every kernel parameter passthru wants on the command line.
    pub kernel_params: Vec<String>,
    /// Modules passthru has the initramfs load early.
    pub early_modules: Vec<String>,
    /// What passthru added to shared places, by place (a file path, `grubby`, `kernelstub`):
    /// exactly these items are removed again.
    pub added: BTreeMap<String, Vec<String>>,
    /// Files passthru created and owns entirely.
    pub owned_files: Vec<PathBuf>,
    /// Directories passthru created (removed when the last device is released, if empty).
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// Kernels whose images were rebuilt.
    pub kernels: Vec<String>,
}

/// Reads the record, if there is one.
pub fn load(fs: &dyn HostFs) -> Result<Option<PersistentState>, BootError> {
    let path = Path::new(STATE_PATH);
    let bytes = match fs.read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(BootError::read(path, error)),
    };
    parse(&bytes)
        .map(Some)
        .map_err(|what| BootError::Malformed {
            path: path.to_owned(),
            what: format!(
                "{what}; passthru cannot tell what it changed, so it changes nothing (restore the \
             file from the journal with `passthru undo`, or remove passthru's changes by hand \
             as docs/persistent.md describes)"
            ),
        })
}

/// Parses a record, checking its schema.
pub fn parse(bytes: &[u8]) -> Result<PersistentState, String> {
    let state: PersistentState =
        serde_json::from_slice(bytes).map_err(|error| format!("it is not valid: {error}"))?;
    if state.schema != STATE_SCHEMA {
        return Err(format!(
            "it has schema `{}`, this passthru understands `{STATE_SCHEMA}`",
            state.schema
        ));
    }
    Ok(state)
}

/// Serializes a record the way it is stored (pretty JSON with a final newline).
pub fn to_bytes(state: &PersistentState) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
