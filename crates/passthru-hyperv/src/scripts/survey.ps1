# --- host ---
$os = Read-Part 'Win32_OperatingSystem' { Get-CimInstance -ClassName Win32_OperatingSystem }
$cv = Read-Part 'Windows version' { Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' }
$productType = Read-Part 'ProductType' { (Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\ProductOptions').ProductType }
$computerSystem = Read-Part 'Win32_ComputerSystem' { Get-CimInstance -ClassName Win32_ComputerSystem }
$features = @{}
Read-Part 'Win32_OptionalFeature' { Get-CimInstance -ClassName Win32_OptionalFeature -Filter "Name = 'Microsoft-Hyper-V-All' OR Name = 'Microsoft-Hyper-V' OR Name = 'Microsoft-Windows-Subsystem-Linux'" } | ForEach-Object {
    $features[[string]$_.Name] = [int]$_.InstallState
}
function Get-FeatureState([string]$name) {
    switch ($features[$name]) { 1 { 'Enabled' } 2 { 'Disabled' } 3 { 'Absent' } }
}
$hyperVFeature = Get-FeatureState 'Microsoft-Hyper-V-All'
if (-not $hyperVFeature) { $hyperVFeature = Get-FeatureState 'Microsoft-Hyper-V' }
$vmms = Get-Service -Name vmms -ErrorAction SilentlyContinue
$deviceGuard = Read-Part 'Win32_DeviceGuard' { Get-CimInstance -Namespace 'root\Microsoft\Windows\DeviceGuard' -ClassName Win32_DeviceGuard }
$deviceGuardAvailable = @()
if ($deviceGuard) { $deviceGuardAvailable = @($deviceGuard.AvailableSecurityProperties | ForEach-Object { [int]$_ }) }
$vmHost = $null
if (Test-Command 'Get-VMHost') { $vmHost = Read-Part 'Get-VMHost' { Get-VMHost } }
$iovReasons = @()
if ($vmHost) { $iovReasons = @($vmHost.IovSupportReasons | ForEach-Object { [string]$_ }) }
$policy = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\HyperV' -ErrorAction SilentlyContinue
$chassis = @(Read-Part 'Win32_SystemEnclosure' { Get-CimInstance -ClassName Win32_SystemEnclosure } | ForEach-Object { $_.ChassisTypes } | ForEach-Object { [int]$_ })
$battery = @(Read-Part 'Win32_Battery' { Get-CimInstance -ClassName Win32_Battery }).Count -gt 0
$cpu = Read-Part 'Win32_Processor' { Get-CimInstance -ClassName Win32_Processor | Select-Object -First 1 }
$addGpu = Get-Command -Name Add-VMGpuPartitionAdapter -ErrorAction SilentlyContinue
$hostFacts = [ordered]@{
    computerName = $env:COMPUTERNAME
    caption = if ($os) { [string]$os.Caption } else { $null }
    editionId = if ($cv) { [string]$cv.EditionID } else { $null }
    build = if ($cv) { [string]$cv.CurrentBuildNumber } else { $null }
    ubr = if ($cv) { $cv.UBR } else { $null }
    displayVersion = if ($cv) { [string]$cv.DisplayVersion } else { $null }
    productType = [string]$productType
    powershellVersion = [string]$PSVersionTable.PSVersion
    hypervFeature = $hyperVFeature
    vmmsStatus = if ($vmms) { [string]$vmms.Status } else { $null }
    hypervisorPresent = if ($computerSystem) { [bool]$computerSystem.HypervisorPresent } else { $null }
    deviceGuardRead = [bool]$deviceGuard
    deviceGuardAvailable = $deviceGuardAvailable
    vbsStatus = if ($deviceGuard) { $deviceGuard.VirtualizationBasedSecurityStatus } else { $null }
    iovSupport = if ($vmHost) { [bool]$vmHost.IovSupport } else { $null }
    iovSupportReasons = $iovReasons
    policy = [ordered]@{
        requireSecureDeviceAssignment = if ($policy) { $policy.RequireSecureDeviceAssignment } else { $null }
        requireSupportedDeviceAssignment = if ($policy) { $policy.RequireSupportedDeviceAssignment } else { $null }
    }
    wslFeature = Get-FeatureState 'Microsoft-Windows-Subsystem-Linux'
    chassisTypes = $chassis
    battery = $battery
    cmdlets = [ordered]@{
        getVmHostPartitionableGpu = Test-Command 'Get-VMHostPartitionableGpu'
        getVmPartitionableGpu = Test-Command 'Get-VMPartitionableGpu'
        setVmHostPartitionableGpu = Test-Command 'Set-VMHostPartitionableGpu'
        addGpuAdapter = [bool]$addGpu
        addGpuAdapterInstancePath = if ($addGpu) { $addGpu.Parameters.ContainsKey('InstancePath') } else { $null }
        addAssignableDevice = Test-Command 'Add-VMAssignableDevice'
    }
    cpuName = if ($cpu) { ([string]$cpu.Name).Trim() } else { $null }
}

# --- partitionable GPUs ---
$gpuCmdlet = Get-PassthruGpuCmdlet
$gpus = @()
if ($gpuCmdlet) {
    $gpus = @(Read-Part $gpuCmdlet { & $gpuCmdlet } | ForEach-Object { ConvertTo-PassthruGpu $_ })
}

# --- PCI devices (PCI\ on the host, PCIP\ when dismounted for DDA) ---
$devices = @(Read-Part 'Get-PnpDevice' { Get-PnpDevice } | Where-Object { $_.InstanceId -like 'PCI\*' -or $_.InstanceId -like 'PCIP\*' })
$pciProperty = '{3AB22E31-8264-4b4e-9AF5-A8D2D8E33E62}'
$keys = [ordered]@{
    locationPaths = 'DEVPKEY_Device_LocationPaths'
    locationInfo = 'DEVPKEY_Device_LocationInfo'
    busNumber = 'DEVPKEY_Device_BusNumber'
    address = 'DEVPKEY_Device_Address'
    parent = 'DEVPKEY_Device_Parent'
    present = 'DEVPKEY_Device_IsPresent'
    service = 'DEVPKEY_Device_Service'
    driverKey = 'DEVPKEY_Device_Driver'
    driverVersion = 'DEVPKEY_Device_DriverVersion'
    pciDeviceType = "$pciProperty 1"
    pciBaseClass = "$pciProperty 3"
    pciSubClass = "$pciProperty 4"
    acsUp = "$pciProperty 31"
    reservedMemory = "$pciProperty 34"
}
$props = @{}
$ids = @($devices | ForEach-Object { [string]$_.InstanceId })
if ($ids.Count -gt 0) {
    foreach ($field in @($keys.Keys)) {
        Get-PnpDeviceProperty -InstanceId $ids -KeyName $keys[$field] -ErrorAction SilentlyContinue | ForEach-Object {
            $props[([string]$_.InstanceId).ToUpperInvariant() + '|' + $field] = $_.Data
        }
    }
}
function Get-Prop([string]$id, [string]$field) { $props[$id + '|' + $field] }
$pnpDevices = @(foreach ($device in $devices) {
    $id = ([string]$device.InstanceId).ToUpperInvariant()
    $driver = $null
    $driverKey = Get-Prop $id 'driverKey'
    if ([string]$device.Class -eq 'Display' -and $driverKey) {
        $classKey = Get-ItemProperty -LiteralPath ('HKLM:\SYSTEM\CurrentControlSet\Control\Class\' + $driverKey) -ErrorAction SilentlyContinue
        if ($classKey) {
            $driver = [ordered]@{
                key = [string]$driverKey
                version = [string]$classKey.DriverVersion
                provider = [string]$classKey.ProviderName
                infPath = [string]$classKey.InfPath
                memorySize = $classKey.'HardwareInformation.qwMemorySize'
                memorySizeLegacy = $classKey.'HardwareInformation.MemorySize'
            }
        }
    }
    $paths = @(Get-Prop $id 'locationPaths' | ForEach-Object { [string]$_ })
    [ordered]@{
        instanceId = [string]$device.InstanceId
        name = [string]$device.FriendlyName
        class = [string]$device.Class
        manufacturer = [string]$device.Manufacturer
        status = [string]$device.Status
        present = Get-Prop $id 'present'
        problem = $device.ConfigManagerErrorCode
        service = Get-Prop $id 'service'
        locationPaths = $paths
        locationInfo = Get-Prop $id 'locationInfo'
        busNumber = Get-Prop $id 'busNumber'
        address = Get-Prop $id 'address'
        parent = Get-Prop $id 'parent'
        driverVersion = Get-Prop $id 'driverVersion'
        pciDeviceType = Get-Prop $id 'pciDeviceType'
        pciBaseClass = Get-Prop $id 'pciBaseClass'
        pciSubClass = Get-Prop $id 'pciSubClass'
        acsUp = Get-Prop $id 'acsUp'
        reservedMemory = Get-Prop $id 'reservedMemory'
        displayDriver = $driver
    }
})

# --- interrupts and memory ranges, read the way SurveyDDA reads them (WMI object paths) ---
$allocated = @(Read-Part 'Win32_PnPAllocatedResource' { Get-WmiObject -Class Win32_PnPAllocatedResource } | Where-Object {
    ([string]$_.Dependent) -like '*DeviceID="PCI*' -and (([string]$_.Antecedent) -like '*Win32_IRQResource*' -or ([string]$_.Antecedent) -like '*Win32_DeviceMemoryAddress*')
} | ForEach-Object {
    [ordered]@{ antecedent = [string]$_.Antecedent; dependent = [string]$_.Dependent }
})
$memoryRanges = @(Read-Part 'Win32_DeviceMemoryAddress' { Get-WmiObject -Class Win32_DeviceMemoryAddress } | ForEach-Object {
    [ordered]@{ start = [uint64]$_.StartingAddress; end = [uint64]$_.EndingAddress }
})

# --- DDA: dismounted devices, VMs ---
$hostAssignable = @()
if (Test-Command 'Get-VMHostAssignableDevice') {
    $hostAssignable = @(Read-Part 'Get-VMHostAssignableDevice' { Get-VMHostAssignableDevice } | ForEach-Object {
        [ordered]@{ instanceId = [string]$_.InstanceID; locationPath = [string]$_.LocationPath }
    })
}
$vms = @()
if (Test-Command 'Get-VM') {
    $mmioBases = Get-PassthruMmioBases
    $vms = @(Read-Part 'Get-VM' { Get-VM } | ForEach-Object {
        $vm = $_
        Read-Part ('VM ' + $vm.Name) { ConvertTo-PassthruVm $vm $mmioBases }
    })
}

# --- disks, with the devnodes above them (to find the system disk's controller) ---
$disks = @()
if (Test-Command 'Get-Disk') {
    $disks = @(Read-Part 'Get-Disk' { Get-Disk } | ForEach-Object {
        $disk = $_
        $chain = New-Object 'System.Collections.Generic.List[string]'
        $path = [string]$disk.Path
        $current = $null
        if ($path -match '^\\\\\?\\(.+?)#\{') { $current = $Matches[1] -replace '#', '\' }
        for ($i = 0; $i -lt 8 -and $current; $i++) {
            $parent = (Get-PnpDeviceProperty -InstanceId $current -KeyName 'DEVPKEY_Device_Parent' -ErrorAction SilentlyContinue).Data
            if (-not $parent) { break }
            $chain.Add([string]$parent)
            $current = [string]$parent
        }
        [ordered]@{
            number = $disk.Number
            name = [string]$disk.FriendlyName
            isSystem = [bool]$disk.IsSystem
            isBoot = [bool]$disk.IsBoot
            path = $path
            ancestors = @($chain)
        }
    })
}

[ordered]@{
    host = $hostFacts
    gpuCmdlet = $gpuCmdlet
    partitionableGpus = $gpus
    pnpDevices = $pnpDevices
    allocatedResources = $allocated
    memoryRanges = $memoryRanges
    hostAssignableDevices = $hostAssignable
    vms = $vms
    disks = $disks
    problems = @($problems)
}
