//! The scripts for the guest's offline SYSTEM hive (`reg load`/`reg unload`, then keys and
//! values through .NET), and reading registry data back from the JSON PowerShell prints.

use std::path::Path;

use serde_json::Value;

use super::{quote, script};
use crate::guest::host::{HostError, RegKey};
use crate::package::RegData;

/// `reg load`.
pub fn load_hive(file: &Path, mount: &str) -> String {
    script(&format!(
        r#"
# Windows PowerShell 5.1 turns a native program's stderr into errors, which 'Stop' would throw
# before the exit code could be read.
$ErrorActionPreference = 'Continue'
$out = & reg.exe load {} {} 2>&1
$ErrorActionPreference = 'Stop'
if ($LASTEXITCODE -ne 0) {{ throw "reg load failed: $out" }}
'{{}}'
"#,
        quote(&format!("HKLM\\{mount}")),
        quote(&file.display().to_string())
    ))
}

/// `reg unload`, after letting .NET release its handles; retried because a handle closed a
/// moment ago can still keep the hive busy.
pub fn unload_hive(mount: &str) -> String {
    script(&format!(
        r#"
[gc]::Collect()
[gc]::WaitForPendingFinalizers()
$ErrorActionPreference = 'Continue'
for ($try = 1; $try -le 5; $try++) {{
    $out = & reg.exe unload {} 2>&1
    if ($LASTEXITCODE -eq 0) {{ break }}
    if ($try -eq 5) {{ throw "reg unload failed: $out" }}
    Start-Sleep -Seconds 1
}}
$ErrorActionPreference = 'Stop'
'{{}}'
"#,
        quote(&format!("HKLM\\{mount}"))
    ))
}

/// `{"Exists":true}`.
pub fn key_exists(key: &RegKey) -> String {
    script(&format!(
        r#"
$key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey({})
[pscustomobject]@{{ Exists = ($null -ne $key) }} | ConvertTo-Json -Compress
if ($key) {{ $key.Close() }}
"#,
        quote(&key.0)
    ))
}

/// `{"Kind":"ExpandString","Data":"\\SystemRoot\\..."}`; `Kind` is null when absent.
pub fn read_value(key: &RegKey, name: &str) -> String {
    let name = quote(name);
    script(&format!(
        r#"
$key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey({})
$result = [pscustomobject]@{{ Kind = $null; Data = $null }}
if ($key) {{
    if ($key.GetValueNames() -contains {name}) {{
        $result.Kind = $key.GetValueKind({name}).ToString()
        $result.Data = $key.GetValue({name}, $null, 'DoNotExpandEnvironmentNames')
    }}
    $key.Close()
}}
ConvertTo-Json -InputObject $result -Compress -Depth 3
"#,
        quote(&key.0)
    ))
}

/// Sets a value with its exact kind, creating the key.
pub fn write_value(key: &RegKey, name: &str, data: &RegData) -> String {
    let (literal, kind) = match data {
        RegData::Sz(text) => (quote(text), "String"),
        RegData::ExpandSz(text) => (quote(text), "ExpandString"),
        RegData::MultiSz(items) => (
            format!(
                "[string[]]@({})",
                items
                    .iter()
                    .map(|i| quote(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "MultiString",
        ),
        // .NET takes DWORDs as Int32: values above 0x7FFFFFFF are passed as their negative twin.
        RegData::Dword(number) => (format!("[int32]({})", *number as i32), "DWord"),
        RegData::Qword(number) => (format!("[int64]({})", *number as i64), "QWord"),
        RegData::Binary(bytes) => (
            format!(
                "[byte[]]@({})",
                bytes
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "Binary",
        ),
    };
    script(&format!(
        r#"
$key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey({})
$key.SetValue({}, {literal}, [Microsoft.Win32.RegistryValueKind]::{kind})
$key.Close()
'{{}}'
"#,
        quote(&key.0),
        quote(name)
    ))
}

/// Deletes a value if present.
pub fn delete_value(key: &RegKey, name: &str) -> String {
    script(&format!(
        r#"
$key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey({}, $true)
if ($key) {{ $key.DeleteValue({}, $false); $key.Close() }}
'{{}}'
"#,
        quote(&key.0),
        quote(name)
    ))
}

/// Deletes a key and its subkeys if present.
pub fn delete_key(key: &RegKey) -> String {
    script(&format!(
        "[Microsoft.Win32.Registry]::LocalMachine.DeleteSubKeyTree({}, $false)\n'{{}}'",
        quote(&key.0)
    ))
}

/// Turns `read_value`'s answer into typed data.
pub(super) fn reg_data(operation: &str, kind: &str, data: &Value) -> Result<RegData, HostError> {
    let bad = || HostError::new(operation, format!("unexpected {kind} data {data}"));
    Ok(match kind {
        "String" => RegData::Sz(data.as_str().ok_or_else(bad)?.to_owned()),
        "ExpandString" => RegData::ExpandSz(data.as_str().ok_or_else(bad)?.to_owned()),
        // PowerShell 5.1 writes a one-element string[] as a bare string.
        "MultiString" => match data {
            Value::String(text) => RegData::MultiSz(vec![text.clone()]),
            Value::Null => RegData::MultiSz(Vec::new()),
            Value::Array(items) => RegData::MultiSz(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad()),
        },
        // .NET hands DWORDs out as Int32.
        "DWord" => RegData::Dword(data.as_i64().ok_or_else(bad)? as i32 as u32),
        "QWord" => RegData::Qword(data.as_i64().ok_or_else(bad)? as u64),
        "Binary" => RegData::Binary(match data {
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_u64()
                        .and_then(|b| u8::try_from(b).ok())
                        .ok_or_else(bad)
                })
                .collect::<Result<_, _>>()?,
            Value::Number(n) => vec![
                n.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .ok_or_else(bad)?,
            ],
            _ => return Err(bad()),
        }),
        _ => {
            return Err(HostError::new(
                operation,
                format!("the value has kind {kind}, which passthru does not handle"),
            ));
        }
    })
}
