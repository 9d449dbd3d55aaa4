# Helpers shared by passthru's read scripts. Every read that can fail on some hosts goes
# through Read-Part, so that one unreadable part becomes a line in "problems" instead of
# ending the whole survey.
$problems = New-Object 'System.Collections.Generic.List[string]'
function Read-Part([string]$what, [scriptblock]$read) {
    try { & $read } catch { $problems.Add(('{0}: {1}' -f $what, $_.Exception.Message)) }
}
function Test-Command([string]$name) {
    [bool](Get-Command -Name $name -ErrorAction SilentlyContinue)
}
function ConvertTo-PassthruResource($gpu, [string]$suffix) {
    [ordered]@{
        total = $gpu."Total$suffix"
        available = $gpu."Available$suffix"
        minPartition = $gpu."MinPartition$suffix"
        maxPartition = $gpu."MaxPartition$suffix"
        optimalPartition = $gpu."OptimalPartition$suffix"
    }
}
function ConvertTo-PassthruGpu($gpu) {
    $counts = @($gpu.ValidPartitionCounts | ForEach-Object { [int]$_ })
    [ordered]@{
        name = [string]$gpu.Name
        validPartitionCounts = $counts
        partitionCount = $gpu.PartitionCount
        supportsIncomingLiveMigration = $gpu.SupportsIncomingLiveMigration
        vram = ConvertTo-PassthruResource $gpu 'VRAM'
        encode = ConvertTo-PassthruResource $gpu 'Encode'
        decode = ConvertTo-PassthruResource $gpu 'Decode'
        compute = ConvertTo-PassthruResource $gpu 'Compute'
    }
}
function Get-PassthruGpuCmdlet {
    if (Test-Command 'Get-VMHostPartitionableGpu') { 'Get-VMHostPartitionableGpu' }
    elseif (Test-Command 'Get-VMPartitionableGpu') { 'Get-VMPartitionableGpu' }
}
function Get-PassthruMmioBases {
    # HighMmioGapBase (MB) is a WMI property that Get-VM does not show (reference §7.6).
    $bases = @{}
    try {
        Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName Msvm_VirtualSystemSettingData -Filter "VirtualSystemType = 'Microsoft:Hyper-V:System:Realized'" | ForEach-Object {
            if ($null -ne $_.HighMmioGapBase) {
                $bases[([string]$_.VirtualSystemIdentifier).ToUpperInvariant()] = [uint64]$_.HighMmioGapBase * 1MB
            }
        }
    } catch { }
    $bases
}
function ConvertTo-PassthruVm($vm, $mmioBases) {
    $adapters = @()
    if (Test-Command 'Get-VMGpuPartitionAdapter') {
        $adapters = @(Get-VMGpuPartitionAdapter -VM $vm | ForEach-Object {
            [ordered]@{ id = [string]$_.Id; instancePath = [string]$_.InstancePath }
        })
    }
    $devices = @()
    if (Test-Command 'Get-VMAssignableDevice') {
        $devices = @(Get-VMAssignableDevice -VM $vm | ForEach-Object {
            [ordered]@{ instanceId = [string]$_.InstanceID; locationPath = [string]$_.LocationPath; name = [string]$_.Name }
        })
    }
    $id = [string]$vm.Id
    [ordered]@{
        name = [string]$vm.Name
        id = $id
        state = [string]$vm.State
        generation = [int]$vm.Generation
        version = [string]$vm.Version
        lowMmio = [uint64]$vm.LowMemoryMappedIoSpace
        highMmio = [uint64]$vm.HighMemoryMappedIoSpace
        highMmioBase = $mmioBases[$id.ToUpperInvariant()]
        guestControlledCacheTypes = [bool]$vm.GuestControlledCacheTypes
        automaticStopAction = [string]$vm.AutomaticStopAction
        memory = [ordered]@{
            dynamic = [bool]$vm.DynamicMemoryEnabled
            startup = [uint64]$vm.MemoryStartup
            minimum = [uint64]$vm.MemoryMinimum
            maximum = [uint64]$vm.MemoryMaximum
        }
        gpuAdapters = $adapters
        assignedDevices = $devices
    }
}
