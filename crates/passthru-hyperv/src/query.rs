//! What passthru reads from a Windows host, and the scripts that read it.

use serde::{Deserialize, Serialize};

use crate::ps::quote;

const COMMON: &str = include_str!("scripts/common.ps1");
const SURVEY: &str = include_str!("scripts/survey.ps1");
const DEVICE: &str = include_str!("scripts/device.ps1");

/// A read request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "kebab-case")]
pub enum Query {
    /// Everything `passthru survey` shows, in one answer ([`crate::model::HostAnswers`]).
    Survey,
    /// One VM by exact name ([`crate::model::Vm`]; several when names repeat).
    Vm {
        /// The VM's name.
        name: String,
    },
    /// Where one device is in the DDA state machine ([`crate::model::DeviceStatus`]).
    Device {
        /// Its location path.
        location_path: String,
        /// Its host instance id (`PCI\...`), when known.
        instance_id: Option<String>,
    },
    /// The group-policy values ([`crate::model::PolicyValues`]).
    Policy,
    /// The partitionable GPUs ([`crate::model::PartitionableGpu`], one per data element).
    PartitionableGpus,
}

impl Query {
    /// The PowerShell that answers this query.
    pub fn powershell(&self) -> String {
        match self {
            Self::Survey => format!("{COMMON}\n{SURVEY}"),
            Self::Vm { name } => format!(
                "{COMMON}\n$mmioBases = Get-PassthruMmioBases\nGet-VM -Name {} | ForEach-Object {{ ConvertTo-PassthruVm $_ $mmioBases }}\n",
                quote::string(name)
            ),
            Self::Device {
                location_path,
                instance_id,
            } => DEVICE
                .replace("__LOCATION__", &quote::string(location_path))
                .replace(
                    "__INSTANCE_ID__",
                    &instance_id
                        .as_deref()
                        .map_or_else(|| "$null".to_owned(), quote::string),
                ),
            Self::Policy => format!(
                "$policy = Get-ItemProperty -LiteralPath {} -ErrorAction SilentlyContinue\n[ordered]@{{\n    requireSecureDeviceAssignment = if ($policy) {{ $policy.RequireSecureDeviceAssignment }} else {{ $null }}\n    requireSupportedDeviceAssignment = if ($policy) {{ $policy.RequireSupportedDeviceAssignment }} else {{ $null }}\n}}\n",
                quote::string(crate::model::PolicyValue::KEY)
            ),
            Self::PartitionableGpus => format!(
                "{COMMON}\n$gpuCmdlet = Get-PassthruGpuCmdlet\nif ($gpuCmdlet) {{ & $gpuCmdlet | ForEach-Object {{ ConvertTo-PassthruGpu $_ }} }}\n"
            ),
        }
    }
}
