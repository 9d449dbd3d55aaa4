//! The record of what passthru installed in a guest, kept inside the guest
//! (`Windows\System32\HostDriverStore\passthru-manifest.json`) and, by the CLI, next to the
//! journal on the host so `driver status` works while the VM runs.

use serde::{Deserialize, Serialize};

use crate::guest_path::GuestPath;
use crate::package::RegData;
use crate::sync::FileTime;

/// Where the manifest lives in the guest.
pub const MANIFEST_PATH: &str = r"Windows\System32\HostDriverStore\passthru-manifest.json";

/// Version of the manifest format.
pub const MANIFEST_SCHEMA: u32 = 1;

/// One file passthru put into the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path in the guest.
    pub path: GuestPath,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (the host file's).
    pub time: FileTime,
    /// BLAKE3 of the content, lower-case hex.
    pub blake3: String,
}

/// One driver-store package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPackage {
    /// Folder name (`nv_dispi.inf_amd64_…`).
    pub name: String,
    /// `DriverVer` version of its INF (`27.21.14.7005`), or empty.
    pub driver_version: String,
    /// Its files.
    pub files: Vec<ManifestFile>,
}

/// One registry value passthru wrote into the guest's SYSTEM hive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestValue {
    /// Key inside the hive (`ControlSet001\Services\nvlddmkm`).
    pub key: String,
    /// Value name.
    pub name: String,
    /// Data.
    pub data: RegData,
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestManifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema: u32,
    /// `passthru <version>`.
    pub written_by: String,
    /// When (RFC 3339, UTC).
    pub written_at: String,
    /// The VM's name when it was written.
    pub vm: String,
    /// The GPU (`DriverDesc`).
    pub device: String,
    /// The display driver's version (`27.21.14.7005`).
    pub driver_version: String,
    /// Packages, display first.
    pub packages: Vec<ManifestPackage>,
    /// Files copied into System32/SysWOW64.
    pub promotions: Vec<ManifestFile>,
    /// Registry values written.
    pub registry: Vec<ManifestValue>,
}

impl GuestManifest {
    /// Every file recorded, packages first.
    pub fn all_files(&self) -> impl Iterator<Item = &ManifestFile> {
        self.packages
            .iter()
            .flat_map(|p| &p.files)
            .chain(&self.promotions)
    }

    /// Reads a manifest; `None` for text that is not one (a damaged or foreign file).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let manifest: Self = serde_json::from_slice(bytes)
            .map_err(|error| format!("the manifest is not readable: {error}"))?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(format!(
                "the manifest has schema {}, this passthru reads {MANIFEST_SCHEMA}; sync again",
                manifest.schema
            ));
        }
        Ok(manifest)
    }
}
