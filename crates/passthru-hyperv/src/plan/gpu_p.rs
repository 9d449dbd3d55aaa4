//! GPU partitioning: add, remove, partition counts.

use passthru_core::plan::Plan;

use super::{HyperVStep, Proposal, Refusal, hyperv_ready, select, stop_steps};
use crate::mmio::{self, Need};
use crate::model::{PolicyValue, StopAction};
use crate::survey::{GpuKind, GpuReport, HostKind, VmReport, WindowsSurvey};
use crate::text::instance::same_gpu_path;

/// `passthru gpu-p add`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddRequest {
    /// The VM.
    pub vm: String,
    /// GPU selector (default: the only partitionable GPU).
    pub gpu: Option<String>,
    /// Shut the VM down if it runs.
    pub stop_vm: bool,
    /// Go ahead where passthru would refuse for a reason that can be overridden.
    pub force: bool,
}

/// `passthru gpu-p remove`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveRequest {
    /// The VM.
    pub vm: String,
    /// Only partitions of this GPU (default: all).
    pub gpu: Option<String>,
    /// Shut the VM down if it runs.
    pub stop_vm: bool,
}

/// `passthru gpu-p partitions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionsRequest {
    /// GPU selector.
    pub gpu: String,
    /// The new partition count.
    pub count: u32,
}

/// Steps that prepare a VM's settings for devices: memory, stop action, cache types, MMIO.
/// Shared with DDA; `need` is what the VM's devices will need in total, `floor_high` the
/// minimum high MMIO (GPU-P) and `stop_action` what the VM should do at host shutdown.
pub(super) fn prepare_vm(
    survey: &WindowsSurvey,
    vm: &VmReport,
    need: Option<Need>,
    floor_high: u64,
    stop_action: StopAction,
    plan: &mut Plan<HyperVStep>,
) {
    if vm.memory.dynamic
        && vm.memory.startup != vm.memory.minimum
        && let (Some(startup), Some(minimum)) = (vm.memory.startup, vm.memory.minimum)
    {
        plan.steps.push(HyperVStep::SetMemoryMinimum {
            vm: vm.name.clone(),
            to: startup,
            from: minimum,
        });
    }
    let current_action = vm.stop_action.as_deref().and_then(StopAction::parse);
    let wrong_action = match stop_action {
        StopAction::TurnOff => current_action != Some(StopAction::TurnOff),
        _ => current_action.is_none_or(|action| action == StopAction::Save),
    };
    if wrong_action {
        plan.steps.push(HyperVStep::SetStopAction {
            vm: vm.name.clone(),
            to: stop_action,
            from: current_action,
        });
    }
    if vm.cache_types != Some(true) {
        plan.steps.push(HyperVStep::SetCacheTypes {
            vm: vm.name.clone(),
            to: true,
            from: vm.cache_types,
        });
    }
    let sizing = mmio::size(
        need,
        floor_high,
        vm.low_mmio,
        vm.high_mmio,
        survey.host.cpu_physical_address_bits,
        vm.high_mmio_base,
    );
    plan.notes.push(format!("MMIO: {}.", sizing.reasoning));
    if survey.host.cpu_physical_address_bits.is_none() {
        plan.notes.push("the CPU's physical address width is unknown, so passthru could not check that the upper MMIO region fits it".to_owned());
    }
    if let Some(warning) = sizing.warning {
        plan.notes.push(format!("warning: {warning}"));
    }
    if sizing.low.is_some() || sizing.high.is_some() {
        plan.steps.push(HyperVStep::SetMmio {
            vm: vm.name.clone(),
            low_to: sizing.low,
            low_from: sizing.low.and(vm.low_mmio),
            high_to: sizing.high,
            high_from: sizing.high.and(vm.high_mmio),
        });
    }
}

fn gpu_need(survey: &WindowsSurvey, gpu: &GpuReport) -> Option<Need> {
    let verdict = gpu
        .location_path
        .as_deref()
        .and_then(|path| survey.device_at(path))
        .map(|device| &device.verdict);
    Some(Need {
        total: gpu.mmio_bytes?,
        below_4g: verdict
            .and_then(|verdict| verdict.mmio_below_4g_bytes)
            .unwrap_or(0),
    })
}

/// Plans `gpu-p add`.
pub fn plan_add(survey: &WindowsSurvey, request: &AddRequest) -> Result<Proposal, Refusal> {
    hyperv_ready(survey)?;
    let vm = select::vm(survey, &request.vm)?;
    let gpu = select::gpu(survey, request.gpu.as_deref())?;
    let pins = survey.host.gpu_instance_path;
    if !pins && survey.gpus.len() > 1 && request.gpu.is_some() && !request.force {
        return Err(Refusal::new(
            "this Windows build (below 22000) cannot pin a partition to a chosen GPU: Hyper-V picks one of the host's GPUs when the VM starts, so --gpu cannot be honoured",
        )
        .with_help("upgrade the host to Windows 11 / Server 2022 or later, or pass --force to add a partition anyway and let Hyper-V choose"));
    }
    if vm.gpu_adapters.iter().any(|adapter| {
        adapter
            .instance_path
            .as_deref()
            .is_some_and(|path| same_gpu_path(path, &gpu.instance_path))
    }) {
        return Err(Refusal::new(format!("'{}' already has a partition of {}", vm.name, gpu.name))
            .with_help("a second partition of the same GPU adds nothing; `passthru gpu-p remove` takes it away"));
    }

    let mut plan = Plan::new(format!(
        "gpu-p add: a partition of {} to VM '{}'",
        gpu.name, vm.name
    ));
    stop_steps(
        survey,
        std::slice::from_ref(&vm.name),
        request.stop_vm,
        &mut plan,
    )?;
    match gpu.kind {
        GpuKind::Paravirtual => plan.notes.push(
            "this is consumer GPU-PV: the VM shares the whole GPU with the host. passthru sets no Min/Max/Optimal partition values, because on GPU-PV they have no effect (Easy-GPU-PV #298, #49)".to_owned(),
        ),
        GpuKind::SrIov => plan.notes.push(format!(
            "this is SR-IOV GPU-P: the VM gets one of the GPU's {} partitions, chosen by Hyper-V",
            gpu.partition_count.map_or_else(|| "?".to_owned(), |count| count.to_string())
        )),
    }
    if !pins {
        plan.notes.push("this Windows build cannot pin a partition to a GPU (no -InstancePath below build 22000); Hyper-V chooses when the VM starts".to_owned());
    }
    if survey.host.kind == HostKind::Server {
        for value in PolicyValue::ALL {
            let current = survey.host.policy.get(value);
            if current != Some(0) {
                plan.steps.push(HyperVStep::SetPolicy {
                    value,
                    to: 0,
                    from: current,
                });
            }
        }
        if plan
            .steps
            .iter()
            .any(|step| matches!(step, HyperVStep::SetPolicy { .. }))
        {
            plan.notes.push("Windows Server refuses consumer GPUs for partitioning unless RequireSecureDeviceAssignment and RequireSupportedDeviceAssignment are 0 (\"not compliant with currently set group policy\")".to_owned());
        }
    }
    prepare_vm(
        survey,
        vm,
        gpu_need(survey, gpu),
        mmio::GPU_P_MIN_HIGH,
        StopAction::ShutDown,
        &mut plan,
    );
    if plan
        .steps
        .iter()
        .any(|step| matches!(step, HyperVStep::SetStopAction { .. }))
    {
        plan.notes.push("Hyper-V cannot save a VM that has a GPU partition, so the VM will shut down (not save) when the host does".to_owned());
    }
    for adapter in vm.gpu_adapters.iter().filter(|adapter| adapter.stale) {
        plan.notes.push(format!(
            "'{}' also has a stale partition of {}, which will keep it from starting; remove it with `passthru gpu-p remove --vm {}`",
            vm.name,
            adapter.instance_path.as_deref().unwrap_or("?"),
            vm.name
        ));
    }
    plan.steps.push(HyperVStep::AddGpuAdapter {
        vm: vm.name.clone(),
        instance_path: pins.then(|| gpu.instance_path.clone()),
        gpu_name: gpu.name.clone(),
        existing: vm
            .gpu_adapters
            .iter()
            .filter_map(|adapter| adapter.id.clone())
            .collect(),
    });
    let after = vec![
        format!(
            "the guest still needs the host's GPU driver (otherwise it shows the GPU with Code 43): `passthru driver sync --vm {}`",
            crate::ps::quote::cli_argument(&vm.name)
        ),
        format!("then start the VM: Start-VM -Name '{}'", vm.name),
    ];
    Ok(Proposal { plan, after })
}

/// Plans `gpu-p remove`.
pub fn plan_remove(survey: &WindowsSurvey, request: &RemoveRequest) -> Result<Proposal, Refusal> {
    hyperv_ready(survey)?;
    let vm = select::vm(survey, &request.vm)?;
    let wanted: Option<String> = match request.gpu.as_deref() {
        None => None,
        Some(selector) => match select::gpu(survey, Some(selector)) {
            Ok(gpu) => Some(gpu.instance_path.clone()),
            // A stale partition's GPU is not partitionable any more: match its path text.
            Err(refusal) => {
                if vm.gpu_adapters.iter().any(|adapter| {
                    adapter
                        .instance_path
                        .as_deref()
                        .is_some_and(|path| path.to_lowercase().contains(&selector.to_lowercase()))
                }) {
                    Some(selector.to_owned())
                } else {
                    return Err(refusal);
                }
            }
        },
    };
    let adapters: Vec<_> = vm
        .gpu_adapters
        .iter()
        .filter(|adapter| match &wanted {
            None => true,
            Some(wanted) => adapter.instance_path.as_deref().is_some_and(|path| {
                same_gpu_path(path, wanted) || path.to_lowercase().contains(&wanted.to_lowercase())
            }),
        })
        .collect();
    if adapters.is_empty() {
        return Err(Refusal::new(format!(
            "'{}' has no GPU partition{}",
            vm.name,
            if wanted.is_some() { " of that GPU" } else { "" }
        ))
        .with_help("`passthru gpu-p list` shows the partitions"));
    }
    let mut plan = Plan::new(format!("gpu-p remove: GPU partitions of VM '{}'", vm.name));
    stop_steps(
        survey,
        std::slice::from_ref(&vm.name),
        request.stop_vm,
        &mut plan,
    )?;
    for adapter in adapters {
        let Some(id) = adapter.id.clone() else {
            return Err(Refusal::new(format!(
                "Hyper-V reported a partition of '{}' without an id, so passthru cannot name it",
                vm.name
            ))
            .with_help(format!(
                "remove it by hand: Remove-VMGpuPartitionAdapter -VMName '{}'",
                vm.name
            )));
        };
        plan.steps.push(HyperVStep::RemoveGpuAdapter {
            vm: vm.name.clone(),
            adapter_id: id,
            instance_path: adapter.instance_path.clone(),
            gpu_name: adapter
                .gpu
                .clone()
                .or_else(|| adapter.instance_path.clone())
                .unwrap_or_else(|| "the GPU Hyper-V chose".to_owned()),
        });
    }
    plan.notes.push("MMIO, cache-type and memory settings stay as they are; they do no harm without a partition (`passthru undo` of the original `gpu-p add` restores them)".to_owned());
    Ok(Proposal {
        plan,
        after: Vec::new(),
    })
}

/// Plans `gpu-p partitions`.
pub fn plan_partitions(
    survey: &WindowsSurvey,
    request: &PartitionsRequest,
) -> Result<Proposal, Refusal> {
    hyperv_ready(survey)?;
    let gpu = select::gpu(survey, Some(&request.gpu))?;
    if gpu.kind == GpuKind::Paravirtual {
        return Err(Refusal::new(format!(
            "{} is a consumer GPU-PV GPU: its partition count ({}) is fixed by the driver and has no effect on how the GPU is shared",
            gpu.name,
            gpu.partition_count.map_or_else(|| "?".to_owned(), |count| count.to_string())
        ))
        .with_help("partition counts matter only for SR-IOV GPU-P (Windows Server 2025 / Azure Local with GPUs such as NVIDIA A2, A10, A16, L4)"));
    }
    if !gpu.valid_partition_counts.contains(&request.count) {
        return Err(Refusal::new(format!(
            "{} cannot be split into {} partitions",
            gpu.name, request.count
        ))
        .with_help(format!(
            "valid counts: {}",
            gpu.valid_partition_counts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut plan = Plan::new(format!(
        "gpu-p partitions: {} into {}",
        gpu.name, request.count
    ));
    let current = gpu.partition_count.unwrap_or(0);
    if current == request.count {
        plan.notes.push(format!(
            "{} already has {} partitions",
            gpu.name, request.count
        ));
        return Ok(Proposal {
            plan,
            after: Vec::new(),
        });
    }
    let running: Vec<String> = gpu
        .used_by
        .iter()
        .filter(|name| {
            survey.vm(name).is_some_and(|vm| {
                !vm.state
                    .as_deref()
                    .is_some_and(|state| state.eq_ignore_ascii_case("Off"))
            })
        })
        .cloned()
        .collect();
    if !running.is_empty() {
        return Err(Refusal::running(running));
    }
    plan.steps.push(HyperVStep::SetPartitionCount {
        gpu: gpu.instance_path.clone(),
        gpu_name: gpu.name.clone(),
        to: request.count,
        from: current,
    });
    Ok(Proposal {
        plan,
        after: Vec::new(),
    })
}
