//! What Windows says about an installed display adapter: the values of its class key
//! (`HKLM\SYSTEM\CurrentControlSet\Control\Class\{4d36e968-e325-11ce-bfc1-08002be10318}\NNNN`)
//! and the driver-store folder of its package. Read on the host by PowerShell; plain data here.

use serde::{Deserialize, Serialize};

/// A registry value's data, as far as passthru reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "kebab-case")]
pub enum RegData {
    /// `REG_SZ`.
    Sz(String),
    /// `REG_EXPAND_SZ` (kept unexpanded).
    ExpandSz(String),
    /// `REG_MULTI_SZ`.
    MultiSz(Vec<String>),
    /// `REG_DWORD`.
    Dword(u32),
    /// `REG_QWORD`.
    Qword(u64),
    /// `REG_BINARY`.
    Binary(Vec<u8>),
}

impl RegData {
    /// The registry type name (`REG_SZ`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Sz(_) => "REG_SZ",
            Self::ExpandSz(_) => "REG_EXPAND_SZ",
            Self::MultiSz(_) => "REG_MULTI_SZ",
            Self::Dword(_) => "REG_DWORD",
            Self::Qword(_) => "REG_QWORD",
            Self::Binary(_) => "REG_BINARY",
        }
    }
}

/// The four class-key subkeys that list files for a VM's System32/SysWOW64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyToVmKey {
    /// `CopyToVmOverwrite` → System32, always.
    CopyToVmOverwrite,
    /// `CopyToVmWhenNewer` → System32, when newer.
    CopyToVmWhenNewer,
    /// `CopyToVmOverwriteWow64` → SysWOW64, always.
    CopyToVmOverwriteWow64,
    /// `CopyToVmWhenNewerWow64` → SysWOW64, when newer.
    CopyToVmWhenNewerWow64,
}

impl CopyToVmKey {
    /// All four, in the order they are read.
    pub const ALL: [CopyToVmKey; 4] = [
        Self::CopyToVmOverwrite,
        Self::CopyToVmWhenNewer,
        Self::CopyToVmOverwriteWow64,
        Self::CopyToVmWhenNewerWow64,
    ];

    /// The subkey name.
    pub fn name(self) -> &'static str {
        match self {
            Self::CopyToVmOverwrite => "CopyToVmOverwrite",
            Self::CopyToVmWhenNewer => "CopyToVmWhenNewer",
            Self::CopyToVmOverwriteWow64 => "CopyToVmOverwriteWow64",
            Self::CopyToVmWhenNewerWow64 => "CopyToVmWhenNewerWow64",
        }
    }

    /// Whether the target is SysWOW64 (else System32).
    pub fn wow64(self) -> bool {
        matches!(
            self,
            Self::CopyToVmOverwriteWow64 | Self::CopyToVmWhenNewerWow64
        )
    }

    /// Whether an existing newer file is left alone.
    pub fn when_newer(self) -> bool {
        matches!(self, Self::CopyToVmWhenNewer | Self::CopyToVmWhenNewerWow64)
    }
}

/// One value under a `CopyToVm*` subkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyToVmValue {
    /// The subkey.
    pub key: CopyToVmKey,
    /// The value name (free text chosen by the driver).
    pub name: String,
    /// `REG_MULTI_SZ [source, target]` or `REG_SZ source`.
    pub data: RegData,
}

/// The class key of the adapter plus where its package is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterRegistration {
    /// PnP instance id (`PCI\VEN_10DE&DEV_2204&...\4&...`), for messages.
    pub instance_id: String,
    /// `InfPath`: the published name (`oem42.inf`).
    pub inf_path: String,
    /// `InfSection` (`Section090`), when Windows recorded it.
    #[serde(default)]
    pub inf_section: Option<String>,
    /// `MatchingDeviceId` (`pci\ven_10de&dev_2204`).
    pub matching_device_id: String,
    /// `DriverDesc`.
    pub driver_desc: String,
    /// `ProviderName`.
    pub provider_name: String,
    /// `DriverVersion` (`27.21.14.7005`).
    #[serde(default)]
    pub driver_version: Option<String>,
    /// The package's driver-store folder on the host, as `SetupGetInfDriverStoreLocation`
    /// reports it for `InfPath` (`C:\Windows\System32\DriverStore\FileRepository\nv_dispi.inf_amd64_…`).
    pub driver_store_dir: String,
    /// Every value under the four `CopyToVm*` subkeys.
    #[serde(default)]
    pub copy_to_vm: Vec<CopyToVmValue>,
}

/// The GPU vendor, from `VEN_xxxx` in the device id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// 10DE.
    Nvidia,
    /// 1002.
    Amd,
    /// 8086.
    Intel,
    /// 17CB / 5143.
    Qualcomm,
    /// Any other vendor id.
    Other(u16),
}

impl Vendor {
    /// Reads `VEN_xxxx` from a PnP id (case-insensitive).
    pub fn from_device_id(id: &str) -> Option<Vendor> {
        let upper = id.to_ascii_uppercase();
        let at = upper.find("VEN_")?;
        let hex = upper.get(at + 4..at + 8)?;
        let vendor = u16::from_str_radix(hex, 16).ok()?;
        Some(match vendor {
            0x10DE => Self::Nvidia,
            0x1002 => Self::Amd,
            0x8086 => Self::Intel,
            0x17CB | 0x5143 => Self::Qualcomm,
            other => Self::Other(other),
        })
    }
}
