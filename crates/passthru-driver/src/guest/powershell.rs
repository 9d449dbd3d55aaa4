//! The PowerShell behind every [`GuestHost`] operation, and an implementation of the port over
//! any runner of Windows PowerShell 5.1 scripts.
//!
//! Conventions (shared with the Hyper-V port): every script stops on the first error
//! (`$ErrorActionPreference = 'Stop'`), prints exactly one JSON document, wraps lists with
//! `ConvertTo-Json -InputObject @(...)` (PowerShell 5.1 unwraps one-element pipelines), and
//! converts enums to strings itself. Registry work uses the .NET `Microsoft.Win32.Registry`
//! API, not the `HKLM:` provider: it keeps value kinds exact, does not expand `%SystemRoot%`,
//! and holds no provider handles that would make `reg unload` fail.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::host::{BitLocker, GuestHost, GuestVolume, HostError, RegKey, VmDisk, VmState};
use crate::package::{AdapterRegistration, CopyToVmKey, CopyToVmValue, RegData};

/// Runs one request's script in Windows PowerShell 5.1 and returns what it printed. A script
/// that throws is an `Err` whose `operation` is [`GuestRequest::operation`] and whose message
/// is PowerShell's.
pub trait ScriptRunner {
    /// Runs `request.script()`. The request itself travels along so that a runner can name the
    /// operation and a simulated host can carry it out ([`GuestRequest`] is serializable).
    fn run(&mut self, request: &GuestRequest) -> Result<String, HostError>;
}

/// One operation on the Windows host, with its parameters: what each script does, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum GuestRequest {
    /// [`vm_state`].
    VmState {
        /// VM name.
        vm: String,
    },
    /// [`stop_vm`].
    StopVm {
        /// VM name.
        vm: String,
    },
    /// [`start_vm`].
    StartVm {
        /// VM name.
        vm: String,
    },
    /// [`vm_disks`].
    VmDisks {
        /// VM name.
        vm: String,
    },
    /// [`mounted_disk`].
    MountedDisk {
        /// Virtual disk file.
        vhd: String,
    },
    /// [`mount_vhd`].
    MountVhd {
        /// Virtual disk file.
        vhd: String,
    },
    /// [`dismount_vhd`].
    DismountVhd {
        /// Virtual disk file.
        vhd: String,
    },
    /// [`volumes`].
    Volumes {
        /// Host disk number.
        disk: u32,
    },
    /// [`access_path`].
    AccessPath {
        /// Host disk number.
        disk: u32,
        /// Partition number.
        partition: u32,
    },
    /// [`load_hive`].
    LoadHive {
        /// The hive file on the host.
        file: PathBuf,
        /// Mount name below HKLM.
        mount: String,
    },
    /// [`unload_hive`].
    UnloadHive {
        /// Mount name below HKLM.
        mount: String,
    },
    /// [`key_exists`].
    KeyExists {
        /// The key.
        key: RegKey,
    },
    /// [`read_value`].
    ReadValue {
        /// The key.
        key: RegKey,
        /// Value name.
        name: String,
    },
    /// [`write_value`].
    WriteValue {
        /// The key.
        key: RegKey,
        /// Value name.
        name: String,
        /// Data with its type.
        data: RegData,
    },
    /// [`delete_value`].
    DeleteValue {
        /// The key.
        key: RegKey,
        /// Value name.
        name: String,
    },
    /// [`delete_key`].
    DeleteKey {
        /// The key.
        key: RegKey,
    },
    /// [`adapter_registration`].
    AdapterRegistration {
        /// The GPU's PnP instance id.
        instance_id: String,
    },
}

impl GuestRequest {
    /// The PowerShell that carries the request out.
    pub fn script(&self) -> String {
        match self {
            Self::VmState { vm } => vm_state(vm),
            Self::StopVm { vm } => stop_vm(vm),
            Self::StartVm { vm } => start_vm(vm),
            Self::VmDisks { vm } => vm_disks(vm),
            Self::MountedDisk { vhd } => mounted_disk(vhd),
            Self::MountVhd { vhd } => mount_vhd(vhd),
            Self::DismountVhd { vhd } => dismount_vhd(vhd),
            Self::Volumes { disk } => volumes(*disk),
            Self::AccessPath { disk, partition } => access_path(*disk, *partition),
            Self::LoadHive { file, mount } => load_hive(file, mount),
            Self::UnloadHive { mount } => unload_hive(mount),
            Self::KeyExists { key } => key_exists(key),
            Self::ReadValue { key, name } => read_value(key, name),
            Self::WriteValue { key, name, data } => write_value(key, name, data),
            Self::DeleteValue { key, name } => delete_value(key, name),
            Self::DeleteKey { key } => delete_key(key),
            Self::AdapterRegistration { instance_id } => adapter_registration(instance_id),
        }
    }

    /// What it does, for error messages (`Mount-VHD 'D:\VMs\a.vhdx'`).
    pub fn operation(&self) -> String {
        match self {
            Self::VmState { vm } => format!("Get-VM '{vm}'"),
            Self::StopVm { vm } => format!("Stop-VM '{vm}'"),
            Self::StartVm { vm } => format!("Start-VM '{vm}'"),
            Self::VmDisks { vm } => format!("Get-VMHardDiskDrive '{vm}'"),
            Self::MountedDisk { vhd } => format!("Get-VHD '{vhd}'"),
            Self::MountVhd { vhd } => format!("Mount-VHD '{vhd}'"),
            Self::DismountVhd { vhd } => format!("Dismount-VHD '{vhd}'"),
            Self::Volumes { disk } => format!("Get-Partition -DiskNumber {disk}"),
            Self::AccessPath { disk, partition } => {
                format!("Add-PartitionAccessPath -DiskNumber {disk} -PartitionNumber {partition}")
            }
            Self::LoadHive { mount, .. } => format!("reg load HKLM\\{mount}"),
            Self::UnloadHive { mount } => format!("reg unload HKLM\\{mount}"),
            Self::KeyExists { key } => format!("open {key}"),
            Self::ReadValue { key, name } => format!("read {key}\\{name}"),
            Self::WriteValue { key, name, .. } => format!("write {key}\\{name}"),
            Self::DeleteValue { key, name } => format!("delete {key}\\{name}"),
            Self::DeleteKey { key } => format!("delete {key}"),
            Self::AdapterRegistration { .. } => "read the GPU's driver registration".to_owned(),
        }
    }

    /// The command that does the work (`Mount-VHD`, `reg load`), as fault injection and error
    /// explanations name it.
    pub fn command(&self) -> &'static str {
        match self {
            Self::VmState { .. } => "Get-VM",
            Self::StopVm { .. } => "Stop-VM",
            Self::StartVm { .. } => "Start-VM",
            Self::VmDisks { .. } => "Get-VMHardDiskDrive",
            Self::MountedDisk { .. } => "Get-VHD",
            Self::MountVhd { .. } => "Mount-VHD",
            Self::DismountVhd { .. } => "Dismount-VHD",
            Self::Volumes { .. } => "Get-Partition",
            Self::AccessPath { .. } => "Add-PartitionAccessPath",
            Self::LoadHive { .. } => "reg load",
            Self::UnloadHive { .. } => "reg unload",
            Self::KeyExists { .. } | Self::ReadValue { .. } => "OpenSubKey",
            Self::WriteValue { .. } => "SetValue",
            Self::DeleteValue { .. } => "DeleteValue",
            Self::DeleteKey { .. } => "DeleteSubKeyTree",
            Self::AdapterRegistration { .. } => "Get-WindowsDriver",
        }
    }
}

/// A PowerShell single-quoted string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

const PRELUDE: &str = "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n";

fn script(body: &str) -> String {
    format!("{PRELUDE}{}\n", body.trim())
}

/// `Get-VM`: `{"State":"Off"}`.
pub fn vm_state(vm: &str) -> String {
    script(&format!(
        "$vm = Get-VM -Name {}\n[pscustomobject]@{{ State = $vm.State.ToString() }} | ConvertTo-Json -Compress",
        quote(vm)
    ))
}

/// A clean shutdown through the guest, then waits (5 minutes at most) until the VM is off.
/// `-Force` is needed: without it Hyper-V refuses to shut down a guest whose screen is locked
/// or has a user logged on ("the machine is locked and cannot be shut down without the force
/// option", `Msvm_ShutdownComponent.InitiateShutdown` 32781), and a non-interactive session
/// cannot answer a prompt. The guest still shuts down cleanly.
pub fn stop_vm(vm: &str) -> String {
    let vm = quote(vm);
    script(&format!(
        r#"
Stop-VM -Name {vm} -Force
$deadline = (Get-Date).AddMinutes(5)
while ((Get-VM -Name {vm}).State -ne 'Off') {{
    if ((Get-Date) -gt $deadline) {{ throw "the VM did not turn off within 5 minutes; shut it down from inside and try again" }}
    Start-Sleep -Seconds 2
}}
[pscustomobject]@{{ State = 'Off' }} | ConvertTo-Json -Compress
"#
    ))
}

/// `Start-VM`.
pub fn start_vm(vm: &str) -> String {
    script(&format!("Start-VM -Name {}\n'{{}}'", quote(vm)))
}

/// `Get-VMHardDiskDrive`: `[{"Path":"D:\\VMs\\a.vhdx","DiskNumber":null,"Location":"SCSI 0:0"}]`.
pub fn vm_disks(vm: &str) -> String {
    script(&format!(
        r#"
$disks = @(Get-VMHardDiskDrive -VMName {} | ForEach-Object {{
    [pscustomobject]@{{
        Path = $_.Path
        DiskNumber = $_.DiskNumber
        Location = "$($_.ControllerType) $($_.ControllerNumber):$($_.ControllerLocation)"
    }}
}})
ConvertTo-Json -InputObject $disks -Compress
"#,
        quote(vm)
    ))
}

/// `Get-VHD`: `{"Attached":true,"DiskNumber":3}`.
pub fn mounted_disk(vhd: &str) -> String {
    script(&format!(
        "$vhd = Get-VHD -Path {}\n[pscustomobject]@{{ Attached = [bool]$vhd.Attached; DiskNumber = $vhd.DiskNumber }} | ConvertTo-Json -Compress",
        quote(vhd)
    ))
}

/// `Mount-VHD` without drive letters (no AutoPlay, no letters left behind): `{"DiskNumber":3}`.
pub fn mount_vhd(vhd: &str) -> String {
    script(&format!(
        "$disk = Mount-VHD -Path {} -NoDriveLetter -PassThru | Get-Disk\n[pscustomobject]@{{ DiskNumber = $disk.Number }} | ConvertTo-Json -Compress",
        quote(vhd)
    ))
}

/// `Dismount-VHD`.
pub fn dismount_vhd(vhd: &str) -> String {
    script(&format!("Dismount-VHD -Path {}\n'{{}}'", quote(vhd)))
}

/// Partitions with file system, drive letter and BitLocker state (from
/// `Win32_EncryptableVolume`, which works without a drive letter; `unknown` where that class
/// is missing, as on Home editions).
pub fn volumes(disk: u32) -> String {
    script(&format!(
        r#"
$encryption = @(Get-CimInstance -Namespace 'root\cimv2\Security\MicrosoftVolumeEncryption' -ClassName Win32_EncryptableVolume -ErrorAction SilentlyContinue)
$parts = @(Get-Partition -DiskNumber {disk} | ForEach-Object {{
    $volume = $_ | Get-Volume -ErrorAction SilentlyContinue
    $letter = @($_.AccessPaths | Where-Object {{ $_ -match '^[A-Za-z]:\\$' }})[0]
    $bitlocker = 'unknown'
    if ($volume) {{
        $ev = $encryption | Where-Object {{ $_.DeviceID -eq $volume.Path }}
        if ($ev) {{
            $lock = (Invoke-CimMethod -InputObject $ev -MethodName GetLockStatus).LockStatus
            if ($lock -eq 1) {{ $bitlocker = 'locked' }}
            elseif ($ev.ProtectionStatus -eq 0 -and $ev.ConversionStatus -eq 0) {{ $bitlocker = 'off' }}
            else {{ $bitlocker = 'unlocked' }}
        }}
    }}
    [pscustomobject]@{{
        Partition = $_.PartitionNumber
        Size = $_.Size
        FileSystem = "$($volume.FileSystem)"
        AccessPath = $letter
        BitLocker = $bitlocker
    }}
}})
ConvertTo-Json -InputObject $parts -Compress
"#
    ))
}

/// Gives a partition a drive letter unless it has one: `{"AccessPath":"E:\\"}`.
pub fn access_path(disk: u32, partition: u32) -> String {
    script(&format!(
        r#"
function Get-Letter {{ @((Get-Partition -DiskNumber {disk} -PartitionNumber {partition}).AccessPaths | Where-Object {{ $_ -match '^[A-Za-z]:\\$' }})[0] }}
$path = Get-Letter
if (-not $path) {{
    Add-PartitionAccessPath -DiskNumber {disk} -PartitionNumber {partition} -AssignDriveLetter
    $path = Get-Letter
}}
if (-not $path) {{ throw "Windows assigned no drive letter to disk {disk} partition {partition} (are all letters in use?)" }}
[pscustomobject]@{{ AccessPath = $path }} | ConvertTo-Json -Compress
"#
    ))
}

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
    /// `instance_id` ([`adapter_registration`]).
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

/// Turns `read_value`'s answer into typed data.
fn reg_data(operation: &str, kind: &str, data: &Value) -> Result<RegData, HostError> {
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

#[cfg(test)]
mod tests;
