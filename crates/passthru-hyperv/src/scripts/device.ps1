$location = __LOCATION__
$instanceId = __INSTANCE_ID__
$hostDevice = $null
if ($instanceId) { $hostDevice = Get-PnpDevice -InstanceId $instanceId -ErrorAction SilentlyContinue | Select-Object -First 1 }
$dismounted = @()
if (Get-Command -Name Get-VMHostAssignableDevice -ErrorAction SilentlyContinue) {
    $dismounted = @(Get-VMHostAssignableDevice -ErrorAction SilentlyContinue | Where-Object { [string]$_.LocationPath -eq $location })
}
$owners = @()
if (Get-Command -Name Get-VMAssignableDevice -ErrorAction SilentlyContinue) {
    $owners = @(Get-VM | Where-Object {
        @(Get-VMAssignableDevice -VM $_ | Where-Object { [string]$_.LocationPath -eq $location }).Count -gt 0
    } | ForEach-Object { [string]$_.Name })
}
[ordered]@{
    locationPath = $location
    hostInstanceId = if ($hostDevice) { [string]$hostDevice.InstanceId } else { $null }
    present = if ($hostDevice) { [bool]$hostDevice.Present } else { $null }
    problem = if ($hostDevice) { $hostDevice.ConfigManagerErrorCode } else { $null }
    dismountedInstanceId = if ($dismounted.Count -gt 0) { [string]$dismounted[0].InstanceID } else { $null }
    assignedTo = $owners
}
