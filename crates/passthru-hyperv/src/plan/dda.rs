//! Discrete Device Assignment: the three-state machine host → dismounted → VM and back.
//!
//! | from → to | steps |
//! |---|---|
//! | host → VM | disable, dismount (`-Force`), add to VM |
//! | dismounted → VM | add to VM |
//! | VM A → VM B | remove from A, add to B |
//! | VM → host | remove from VM, mount, enable |
//! | dismounted → host | mount, enable (recovering devices anyone left dismounted) |
//!
//! Before a device goes into a VM, the VM gets `AutomaticStopAction TurnOff`, guest-controlled
//! cache types, startup memory = minimum when dynamic memory is on, and MMIO sized from the
//! devices' BARs (Microsoft's sum-plus-defaults rule, bounded by the CPU). Whole cards move
//! together (a GPU and its HDMI audio). Because each step is journaled with its undo, any
//! failure rolls the devices back to the host.

use passthru_core::plan::Plan;

use super::gpu_p::prepare_vm;
use super::{HyperVStep, Proposal, Refusal, hyperv_ready, select, stop_steps};
use crate::mmio::Need;
use crate::model::StopAction;
use crate::survey::{DdaState, DeviceReport, HostKind, Status, WindowsSurvey};
use crate::text::location::same_location;

/// `passthru assign DEVICE... --vm NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignRequest {
    /// Device selectors.
    pub devices: Vec<String>,
    /// The VM that receives them.
    pub vm: String,
    /// Shut down running VMs involved.
    pub stop_vm: bool,
    /// Override refusals that can be overridden (missing ACS, no IOMMU reported).
    pub force: bool,
}

/// `passthru release DEVICE... [--vm NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// Device selectors (location paths of stale records are accepted with `vm`).
    pub devices: Vec<String>,
    /// The VM that holds them (required only for stale records).
    pub vm: Option<String>,
    /// Shut down running VMs involved.
    pub stop_vm: bool,
}

/// The named devices plus the other functions of their cards, without duplicates.
fn with_companions<'a>(
    survey: &'a WindowsSurvey,
    named: Vec<&'a DeviceReport>,
    notes: &mut Vec<String>,
) -> Vec<&'a DeviceReport> {
    let mut all: Vec<&DeviceReport> = Vec::new();
    let push = |all: &mut Vec<&'a DeviceReport>, device: &'a DeviceReport| {
        if !all
            .iter()
            .any(|known| known.instance_id == device.instance_id)
        {
            all.push(device);
        }
    };
    for device in &named {
        push(&mut all, device);
    }
    for device in named {
        for path in &device.companions {
            if let Some(companion) = survey.device_at(path)
                && !all
                    .iter()
                    .any(|known| known.instance_id == companion.instance_id)
            {
                notes.push(format!(
                        "{} goes along: it is another function of the same card as {} (a card moves as a whole)",
                        companion.name, device.name
                    ));
                push(&mut all, companion);
            }
        }
    }
    all
}

/// Plans `assign --vm`.
pub fn plan_assign(survey: &WindowsSurvey, request: &AssignRequest) -> Result<Proposal, Refusal> {
    hyperv_ready(survey)?;
    if survey.host.kind == HostKind::Client {
        return Err(Refusal::new(
            "Discrete Device Assignment is not available on client Windows: Hyper-V would accept the device, but the VM would fail to start with 0xC035001E (\"A hypervisor feature is not available to the user\")",
        )
        .with_help("use GPU partitioning instead (`passthru gpu-p add --vm NAME`), or run DDA on Windows Server"));
    }
    let vm = select::vm(survey, &request.vm)?;
    let mut notes = Vec::new();
    if survey.host.kind == HostKind::Unknown {
        notes.push(
            "Windows did not report its edition; DDA works only on Windows Server".to_owned(),
        );
    }
    if survey
        .host
        .checks
        .iter()
        .any(|check| check.id == "iommu" && check.status == Status::Warn)
    {
        if !request.force {
            return Err(
                Refusal::new("Windows reports no DMA protection (IOMMU), which DDA needs")
                    .with_help("enable VT-d / AMD-Vi in the firmware; --force tries anyway"),
            );
        }
        notes.push("going ahead although Windows reports no DMA protection (--force)".to_owned());
    }
    let mut named = Vec::new();
    for selector in &request.devices {
        named.push(select::device(survey, selector)?);
    }
    let devices = with_companions(survey, named, &mut notes);

    let mut moving: Vec<&DeviceReport> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    for device in devices {
        if device.bridge {
            return Err(Refusal::new(format!(
                "{} is a bridge or port, not a device to assign",
                device.name
            ))
            .with_help("assign the endpoint behind it"));
        }
        if device.state == DdaState::Assigned
            && device
                .vm
                .as_deref()
                .is_some_and(|owner| owner.eq_ignore_ascii_case(&vm.name))
        {
            notes.push(format!("{} is already in '{}'", device.name, vm.name));
            continue;
        }
        if let Some(blocker) = device.verdict.hard_blockers().next() {
            return Err(Refusal::new(format!(
                "{} cannot be assigned: {}",
                device.name, blocker.text
            )));
        }
        if let Some(blocker) = device.verdict.blocker() {
            if !request.force {
                return Err(Refusal::new(format!(
                    "{} should not be assigned: {}",
                    device.name, blocker.text
                ))
                .with_help("--force assigns it anyway; do that only for trusted guests"));
            }
            notes.push(format!(
                "{}: {} (overridden with --force)",
                device.name, blocker.text
            ));
        }
        if device.location_path.is_none() {
            return Err(Refusal::new(format!(
                "{} has no PCIROOT location path, which DDA needs",
                device.name
            )));
        }
        let unknown: Vec<&str> = device
            .verdict
            .reasons
            .iter()
            .filter(|reason| {
                !reason.blocking && (reason.code.ends_with("unknown") || reason.code == "disabled")
            })
            .map(|reason| reason.text.as_str())
            .collect();
        if !unknown.is_empty() {
            notes.push(format!(
                "{}: not everything could be checked: {}",
                device.name,
                unknown.join("; ")
            ));
        }
        if device.class.as_deref() == Some("Display")
            && device.state == DdaState::Host
            && !survey.devices.iter().any(|other| {
                other.instance_id != device.instance_id
                    && other.class.as_deref() == Some("Display")
                    && other.state == DdaState::Host
            })
        {
            notes.push(format!(
                "{} is the host's only enabled display adapter: the host's own screen goes dark until it comes back (manage the host remotely)",
                device.name
            ));
        }
        if device.state == DdaState::Assigned
            && let Some(owner) = &device.vm
            && !sources
                .iter()
                .any(|known| known.eq_ignore_ascii_case(owner))
        {
            sources.push(owner.clone());
        }
        moving.push(device);
    }

    let mut plan = Plan::new(format!(
        "assign {} to VM '{}'",
        moving
            .iter()
            .map(|device| device.name.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        vm.name
    ));
    plan.notes = notes;
    if moving.is_empty() {
        return Ok(Proposal {
            plan,
            after: Vec::new(),
        });
    }
    let mut involved = sources.clone();
    involved.push(vm.name.clone());
    stop_steps(survey, &involved, request.stop_vm, &mut plan)?;

    let already: Need = vm
        .devices
        .iter()
        .filter_map(|assigned| survey.device_at(assigned.location_path.as_deref()?))
        .map(device_need)
        .fold(Need::default(), Need::plus);
    let need = moving
        .iter()
        .map(|device| device_need(device))
        .fold(already, Need::plus);
    let known = moving
        .iter()
        .all(|device| device.verdict.mmio_bytes.is_some());
    prepare_vm(
        survey,
        vm,
        known.then_some(need),
        0,
        StopAction::TurnOff,
        &mut plan,
    );

    let mut forced = false;
    for device in &moving {
        let location = device.location_path.clone().unwrap_or_default();
        match device.state {
            DdaState::Host | DdaState::HostDisabled => {
                if device.state == DdaState::Host {
                    plan.steps.push(HyperVStep::DisableDevice {
                        instance_id: device.host_instance_id.clone(),
                        location_path: location.clone(),
                        name: device.name.clone(),
                    });
                }
                plan.steps.push(HyperVStep::DismountDevice {
                    location_path: location.clone(),
                    instance_id: device.host_instance_id.clone(),
                    name: device.name.clone(),
                    force: true,
                });
                forced = true;
            }
            DdaState::Dismounted => {}
            DdaState::Assigned => plan.steps.push(HyperVStep::RemoveAssignableDevice {
                vm: device.vm.clone().unwrap_or_default(),
                location_path: location.clone(),
                instance_id: Some(device.host_instance_id.clone()),
                name: device.name.clone(),
                stale: false,
            }),
        }
        plan.steps.push(HyperVStep::AddAssignableDevice {
            vm: vm.name.clone(),
            location_path: location,
            instance_id: device.host_instance_id.clone(),
            name: device.name.clone(),
        });
    }
    if forced {
        plan.notes.push("Dismount uses -Force, as Microsoft's GPU guide does: without it Hyper-V refuses every device whose vendor ships no \"mitigation driver\" (nearly all). passthru checked reserved memory, ACS, the device type and interrupts itself first".to_owned());
    }
    let after = vec![
        format!(
            "start the VM (Start-VM -Name '{}') and install the device's driver inside the guest",
            vm.name
        ),
        format!(
            "`passthru release {}` gives the device(s) back to the host; `passthru undo` reverts this whole operation",
            moving
                .iter()
                .map(|device| format!(
                    "\"{}\"",
                    device.location_path.as_deref().unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ];
    Ok(Proposal { plan, after })
}

fn device_need(device: &DeviceReport) -> Need {
    Need {
        total: device.verdict.mmio_bytes.unwrap_or(0),
        below_4g: device.verdict.mmio_below_4g_bytes.unwrap_or(0),
    }
}

/// Plans `release` (and the recovery of devices left dismounted).
pub fn plan_release(survey: &WindowsSurvey, request: &ReleaseRequest) -> Result<Proposal, Refusal> {
    hyperv_ready(survey)?;
    let wanted_vm = match &request.vm {
        Some(name) => Some(select::vm(survey, name)?),
        None => None,
    };
    let mut notes = Vec::new();
    let mut stale_steps = Vec::new();
    let mut named = Vec::new();
    for selector in &request.devices {
        if let Some(vm) = wanted_vm
            && let Some(stale) = vm.devices.iter().find(|device| {
                device.stale
                    && device
                        .location_path
                        .as_deref()
                        .is_some_and(|path| same_location(path, selector))
            })
        {
            stale_steps.push(HyperVStep::RemoveAssignableDevice {
                vm: vm.name.clone(),
                location_path: stale.location_path.clone().unwrap_or_default(),
                instance_id: None,
                name: stale
                    .name
                    .clone()
                    .unwrap_or_else(|| "a device that no longer exists".to_owned()),
                stale: true,
            });
            continue;
        }
        named.push(select::device(survey, selector)?);
    }
    let devices = with_companions(survey, named, &mut notes);
    let mut plan = Plan::new(String::new());
    let mut involved: Vec<String> = stale_steps
        .iter()
        .filter_map(|step| step.apply_op().vm().map(str::to_owned))
        .collect();
    let mut moves = Vec::new();
    for device in devices {
        let location = device.location_path.clone().unwrap_or_default();
        match device.state {
            DdaState::Assigned => {
                let owner = device.vm.clone().unwrap_or_default();
                if let Some(vm) = wanted_vm
                    && !vm.name.eq_ignore_ascii_case(&owner)
                {
                    return Err(Refusal::new(format!(
                        "{} is in '{owner}', not in '{}'",
                        device.name, vm.name
                    ))
                    .with_help(format!("pass --vm '{owner}', or leave --vm out")));
                }
                if !involved.contains(&owner) {
                    involved.push(owner.clone());
                }
                moves.push(HyperVStep::RemoveAssignableDevice {
                    vm: owner,
                    location_path: location.clone(),
                    instance_id: Some(device.host_instance_id.clone()),
                    name: device.name.clone(),
                    stale: false,
                });
                moves.push(mount(device, &location));
                moves.push(enable(device, &location));
            }
            DdaState::Dismounted => {
                notes.push(format!(
                    "{} is dismounted and in no VM: passthru mounts it back on the host",
                    device.name
                ));
                moves.push(mount(device, &location));
                moves.push(enable(device, &location));
            }
            DdaState::HostDisabled => {
                notes.push(format!(
                    "{} is on the host but disabled: passthru enables it",
                    device.name
                ));
                moves.push(enable(device, &location));
            }
            DdaState::Host => notes.push(format!("{} is already on the host", device.name)),
        }
    }
    stop_steps(survey, &involved, request.stop_vm, &mut plan)?;
    plan.steps.extend(stale_steps);
    plan.steps.extend(moves);
    plan.operation = format!(
        "release {}",
        if request.devices.is_empty() {
            "nothing".to_owned()
        } else {
            request.devices.join(", ")
        }
    );
    plan.notes = notes;
    Ok(Proposal {
        plan,
        after: Vec::new(),
    })
}

fn mount(device: &DeviceReport, location: &str) -> HyperVStep {
    HyperVStep::MountDevice {
        location_path: location.to_owned(),
        instance_id: device.host_instance_id.clone(),
        name: device.name.clone(),
    }
}

fn enable(device: &DeviceReport, location: &str) -> HyperVStep {
    HyperVStep::EnableDevice {
        instance_id: device.host_instance_id.clone(),
        location_path: location.to_owned(),
        name: device.name.clone(),
    }
}
