//! The scripts for the VM and its disks: its state, shutting it down and starting it, its
//! virtual disks, mounting one, and finding and lettering its partitions.

use super::{quote, script};

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
