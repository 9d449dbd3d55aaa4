//! Reading what [`crate::package::resolve`] needs about a host GPU from its driver's class key
//! and the driver store.

use serde::Deserialize;
use serde_json::Value;

use super::registry::reg_data;
use super::{quote, script};
use crate::guest::host::HostError;
use crate::package::{AdapterRegistration, CopyToVmKey, CopyToVmValue};

/// Reads what [`crate::package::resolve`] needs about a host GPU: the class key of its driver
/// (`InfPath`, `InfSection`, `MatchingDeviceId`, `DriverDesc`, `ProviderName`,
/// `DriverVersion`, the four `CopyToVm*` subkeys with their value kinds) and the driver-store
/// folder of `InfPath` (from `Get-WindowsDriver`, whose `OriginalFileName` is the INF inside
/// the FileRepository). Parse the answer with [`parse_adapter_registration`].
pub fn adapter_registration(instance_id: &str) -> String {
    script(&format!(
        r#"
$instance = {}
$driver = (Get-ItemProperty -LiteralPath "HKLM:\SYSTEM\CurrentControlSet\Enum\$instance").Driver
if (-not $driver) {{ throw "the device $instance has no driver installed" }}
$key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey("SYSTEM\CurrentControlSet\Control\Class\$driver")
if (-not $key) {{ throw "the class key of $instance ($driver) does not exist" }}
$copy = @()
foreach ($sub in 'CopyToVmOverwrite', 'CopyToVmWhenNewer', 'CopyToVmOverwriteWow64', 'CopyToVmWhenNewerWow64') {{
    $subkey = $key.OpenSubKey($sub)
    if ($subkey) {{
        foreach ($name in $subkey.GetValueNames()) {{
            $copy += [pscustomobject]@{{
                Key = $sub
                Name = $name
                Kind = $subkey.GetValueKind($name).ToString()
                Data = $subkey.GetValue($name, $null, 'DoNotExpandEnvironmentNames')
            }}
        }}
        $subkey.Close()
    }}
}}
$infPath = $key.GetValue('InfPath')
$store = @(Get-WindowsDriver -Online -Driver $infPath)[0].OriginalFileName
[pscustomobject]@{{
    InstanceId = $instance
    InfPath = $infPath
    InfSection = $key.GetValue('InfSection')
    MatchingDeviceId = $key.GetValue('MatchingDeviceId')
    DriverDesc = $key.GetValue('DriverDesc')
    ProviderName = $key.GetValue('ProviderName')
    DriverVersion = $key.GetValue('DriverVersion')
    DriverStoreDir = if ($store) {{ Split-Path -Parent $store }} else {{ $null }}
    CopyToVm = $copy
}} | ConvertTo-Json -Compress -Depth 4
$key.Close()
"#,
        quote(instance_id)
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegistrationAnswer {
    instance_id: String,
    inf_path: Option<String>,
    inf_section: Option<String>,
    matching_device_id: Option<String>,
    driver_desc: Option<String>,
    provider_name: Option<String>,
    driver_version: Option<String>,
    driver_store_dir: Option<String>,
    #[serde(default)]
    copy_to_vm: CopyToVmAnswers,
}

/// PowerShell 5.1 prints an empty array as `[]`, one element as an object, more as an array.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum CopyToVmAnswers {
    #[default]
    None,
    One(CopyToVmAnswer),
    Many(Vec<CopyToVmAnswer>),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CopyToVmAnswer {
    key: String,
    name: String,
    kind: String,
    data: Value,
}

/// Turns [`adapter_registration`]'s answer into an [`AdapterRegistration`].
pub fn parse_adapter_registration(output: &str) -> Result<AdapterRegistration, HostError> {
    let operation = "read the GPU's driver registration";
    let answer: RegistrationAnswer = serde_json::from_str(output.trim()).map_err(|error| {
        HostError::new(
            operation,
            format!("PowerShell printed something passthru cannot read ({error})"),
        )
    })?;
    let required = |value: Option<String>, name: &str| {
        value.filter(|v| !v.is_empty()).ok_or_else(|| {
            HostError::new(operation, format!("the class key of {} has no {name}", answer.instance_id))
                .with_help("reinstall the GPU driver; passthru copies only drivers installed through the driver store")
        })
    };
    let entries = match answer.copy_to_vm {
        CopyToVmAnswers::None => Vec::new(),
        CopyToVmAnswers::One(one) => vec![one],
        CopyToVmAnswers::Many(many) => many,
    };
    let mut copy_to_vm = Vec::new();
    for entry in entries {
        let Some(key) = CopyToVmKey::ALL.into_iter().find(|k| k.name() == entry.key) else {
            continue;
        };
        copy_to_vm.push(CopyToVmValue {
            key,
            data: reg_data(operation, &entry.kind, &entry.data)?,
            name: entry.name,
        });
    }
    Ok(AdapterRegistration {
        inf_path: required(answer.inf_path, "InfPath")?,
        matching_device_id: required(answer.matching_device_id, "MatchingDeviceId")?,
        driver_store_dir: required(answer.driver_store_dir, "driver store folder")?,
        driver_desc: answer.driver_desc.unwrap_or_default(),
        provider_name: answer.provider_name.unwrap_or_default(),
        inf_section: answer.inf_section,
        driver_version: answer.driver_version,
        instance_id: answer.instance_id,
        copy_to_vm,
    })
}
