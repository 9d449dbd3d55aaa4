//! Every plan, refusal and rollback, against the simulated Hyper-V: plans run through the real
//! executor and journal; a fault injected at each step must leave the host as it was; a crash
//! at each step must be undoable by `undo` from the journal alone.

mod common;

use common::fixtures;
use passthru_core::plan::executor::{self, CrashPoint, ExecError, ExecOptions};
use passthru_core::plan::journal::{Journal, Outcome};
use passthru_core::plan::{Plan, Step};
use passthru_hyperv::client::{HostError, HyperVHost};
use passthru_hyperv::error::ErrorKind;
use passthru_hyperv::model::{HostAnswers, PartitionableGpu, StopAction};
use passthru_hyperv::ops::Op;
use passthru_hyperv::plan::dda::{AssignRequest, ReleaseRequest, plan_assign, plan_release};
use passthru_hyperv::plan::gpu_p::{
    AddRequest, PartitionsRequest, RemoveRequest, plan_add, plan_partitions, plan_remove,
};
use passthru_hyperv::plan::{HyperVStep, Proposal, Refusal};
use passthru_hyperv::sim::{Fault, SimDda, SimState, Simulator};
use passthru_hyperv::survey::{Source, WindowsSurvey, analyze};
use passthru_hyperv::text::format_list;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn state(name: &str) -> SimState {
    let text = fs_err::read_to_string(fixtures().join("simulator").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn laptop() -> SimState {
    let mut state = state("win11-laptop-gpu-pv.state.json");
    state.host.cpu_physical_address_bits = Some(39);
    state
}

fn server() -> SimState {
    state("server-dda.state.json")
}

fn sim_host(state: SimState) -> HyperVHost {
    HyperVHost::new(Box::new(Simulator::new(state)), None)
}

fn answers(host: &mut HyperVHost) -> HostAnswers {
    host.survey().unwrap()
}

fn survey(host: &mut HyperVHost) -> WindowsSurvey {
    analyze(&answers(host), Source::default())
}

fn ops(plan: &Plan<HyperVStep>) -> Vec<String> {
    plan.steps
        .iter()
        .map(|step| step.apply_op().powershell())
        .collect()
}

/// Runs `plan` on a fresh copy of `initial`, with a fault on every step in turn and a crash
/// before and after every step; each time the host must end up exactly as it began.
fn prove_rollback_and_undo(initial: &SimState, make: impl Fn(&WindowsSurvey) -> Proposal) {
    let mut probe = sim_host(initial.clone());
    let before = answers(&mut probe);
    let plan = make(&survey(&mut probe)).plan;
    assert!(!plan.steps.is_empty());

    // Fault injection: step `index` fails the way a cmdlet fails.
    for index in 0..plan.steps.len() {
        let cmdlet = plan.steps[index].apply_op().cmdlet();
        let skip = plan.steps[..index]
            .iter()
            .filter(|step| step.apply_op().cmdlet() == cmdlet)
            .count() as u32;
        let mut faulty = initial.clone();
        faulty.faults.push(Fault {
            cmdlet: cmdlet.to_owned(),
            skip,
            error: None,
        });
        let mut host = sim_host(faulty);
        match execute(&mut host, &plan, None).1 {
            Err(ExecError::StepFailed {
                index: failed,
                rollback,
                ..
            }) => {
                assert_eq!(failed, index, "{}", plan.steps[index].summary());
                assert_eq!(
                    rollback.outcome,
                    Outcome::RolledBack,
                    "{:?}",
                    rollback.undo_errors
                );
            }
            other => panic!("step {index}: expected a failure, got {other:?}"),
        }
        assert_eq!(
            answers(&mut host),
            before,
            "fault at step {index}: {}",
            plan.steps[index].summary()
        );
    }

    // Crashes: the journal alone lets a new process undo what was done.
    for index in 0..plan.steps.len() {
        for crash in [
            CrashPoint::BeforeApply(index),
            CrashPoint::AfterApply(index),
        ] {
            let mut host = sim_host(initial.clone());
            let (dir, result) = execute(&mut host, &plan, Some(crash));
            assert!(matches!(result, Err(ExecError::Crashed(_))));
            let report = undo_last(&dir, &mut host);
            assert_eq!(
                report.outcome,
                Outcome::Undone,
                "{crash:?}: {:?}",
                report.undo_errors
            );
            assert_eq!(answers(&mut host), before, "{crash:?}");
        }
    }

    // And the whole plan applies, verifies, and undoes.
    let mut host = sim_host(initial.clone());
    let (dir, report) = execute(&mut host, &plan, None);
    assert_eq!(report.unwrap().outcome, Outcome::Applied);
    assert_ne!(answers(&mut host), before);
    undo_last(&dir, &mut host);
    assert_eq!(answers(&mut host), before);
}

/// Runs `plan` with a fresh journal in a temporary directory (returned, with the result).
fn execute(
    host: &mut HyperVHost,
    plan: &Plan<HyperVStep>,
    crash: Option<CrashPoint>,
) -> (tempfile::TempDir, Result<executor::Report, ExecError>) {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    let result = executor::apply(
        &mut journal,
        plan,
        host,
        &ExecOptions { crash },
        &mut |_| {},
    );
    (dir, result)
}

/// Undoes the last undoable operation in the journal in `dir`.
fn undo_last(dir: &tempfile::TempDir, host: &mut HyperVHost) -> executor::Report {
    let mut journal = Journal::open(dir.path()).unwrap();
    let operation = journal.last_undoable().unwrap().unwrap();
    assert_eq!(operation.kind, HyperVStep::KIND);
    executor::undo::<HyperVStep>(&mut journal, &operation, host, &mut |_| {}).unwrap()
}

fn apply(host: &mut HyperVHost, plan: &Plan<HyperVStep>) {
    execute(host, plan, None).1.unwrap();
}

fn hyperv_error(result: Result<(), HostError>) -> ErrorKind {
    match result {
        Err(HostError::HyperV(error)) => error.kind.clone(),
        other => panic!("expected a Hyper-V error, got {other:?}"),
    }
}

/// The VM running. Hyper-V would not have started it with dynamic memory in conflict with
/// its devices, so that is made consistent first.
fn running(mut state: SimState, vm: &str) -> SimState {
    let machine = state.vm_mut(vm).unwrap();
    machine.state = Some("Running".into());
    if machine.memory.dynamic {
        machine.memory.minimum = machine.memory.startup;
    }
    state
}

// ---------------------------------------------------------------- GPU partitioning

#[test]
fn gpu_p_add_prepares_the_vm_and_the_vm_starts() {
    let initial = running(laptop(), "exampleName");
    // Undo what the blog's commands did, so that the plan has everything to do.
    let mut initial = initial;
    {
        let vm = initial.vm_mut("exampleName").unwrap();
        vm.gpu_adapters.clear();
        vm.guest_controlled_cache_types = Some(false);
        vm.low_mmio = Some(128 * MIB);
        vm.high_mmio = Some(512 * MIB);
    }
    let request = AddRequest {
        vm: "exampleName".into(),
        gpu: Some("4070".into()),
        stop_vm: true,
        force: false,
    };
    let mut host = sim_host(initial.clone());
    let proposal = plan_add(&survey(&mut host), &request).unwrap();
    insta::assert_snapshot!("gpu_p_add_laptop", ops(&proposal.plan).join("\n"));
    assert!(
        proposal
            .plan
            .notes
            .iter()
            .any(|note| note.contains("no effect"))
    );
    assert!(proposal.after[0].contains("passthru driver sync --vm exampleName"));
    apply(&mut host, &proposal.plan);
    host.perform(&Op::StartVm {
        vm: "exampleName".into(),
    })
    .unwrap();
    prove_rollback_and_undo(&initial, |survey| plan_add(survey, &request).unwrap());
}

#[test]
fn gpu_p_add_refuses_a_running_vm_unless_told_to_stop_it() {
    let mut host = sim_host(running(laptop(), "exampleName"));
    let survey = survey(&mut host);
    let request = AddRequest {
        vm: "exampleName".into(),
        gpu: Some("Iris".into()),
        ..AddRequest::default()
    };
    let refusal = plan_add(&survey, &request).unwrap_err();
    assert_eq!(refusal.running_vms, vec!["exampleName".to_owned()]);
    assert!(refusal.help.unwrap().contains("--stop-vm"));
}

#[test]
fn gpu_p_refusals_explain_themselves() {
    let mut host = sim_host(laptop());
    let survey = survey(&mut host);
    let refuse = |request: AddRequest| plan_add(&survey, &request).unwrap_err();
    let ambiguous = refuse(AddRequest {
        vm: "exampleName".into(),
        ..AddRequest::default()
    });
    assert!(
        ambiguous.message.contains("2 partitionable GPUs"),
        "{ambiguous:?}"
    );
    let duplicate = refuse(AddRequest {
        vm: "exampleName".into(),
        gpu: Some("10de:2860".into()),
        ..AddRequest::default()
    });
    assert!(duplicate.message.contains("already has a partition"));
    let unknown = refuse(AddRequest {
        vm: "nope".into(),
        gpu: Some("4070".into()),
        ..AddRequest::default()
    });
    assert!(unknown.help.unwrap().contains("exampleName"));
    let wildcard = refuse(AddRequest {
        vm: "a[1]".into(),
        ..AddRequest::default()
    });
    assert!(wildcard.message.contains("wildcard"));
    let consumer = plan_partitions(
        &survey,
        &PartitionsRequest {
            gpu: "4070".into(),
            count: 8,
        },
    )
    .unwrap_err();
    assert!(consumer.message.contains("GPU-PV"));
}

#[test]
fn gpu_p_on_windows_server_sets_the_policy_values_and_then_starts() {
    let mut initial = laptop();
    initial.host.product_type = Some("ServerNT".into());
    initial.host.policy.require_secure_device_assignment = Some(1);
    initial.vm_mut("exampleName").unwrap().gpu_adapters.clear();
    let request = AddRequest {
        vm: "exampleName".into(),
        gpu: Some("4070".into()),
        ..AddRequest::default()
    };
    let mut host = sim_host(initial.clone());
    let plan = plan_add(&survey(&mut host), &request).unwrap().plan;
    let policy: Vec<_> = plan
        .steps
        .iter()
        .filter(|step| matches!(step, HyperVStep::SetPolicy { .. }))
        .collect();
    assert_eq!(policy.len(), 2);

    // Without the policy change Hyper-V refuses at start, with the recorded F8a message.
    let mut unprepared = sim_host(initial.clone());
    unprepared
        .perform(&Op::AddGpuAdapter {
            vm: "exampleName".into(),
            instance_path: Some(initial.gpus[0].name.clone()),
        })
        .unwrap_err();
    apply(&mut host, &plan);
    host.perform(&Op::StartVm {
        vm: "exampleName".into(),
    })
    .unwrap();
    prove_rollback_and_undo(&initial, |survey| plan_add(survey, &request).unwrap());
}

#[test]
fn gpu_p_policy_refusal_at_start_is_explained() {
    let mut state = laptop();
    state.host.product_type = Some("ServerNT".into());
    let vm = state.vm_mut("exampleName").unwrap();
    vm.memory.minimum = vm.memory.startup;
    let mut host = sim_host(state);
    assert_eq!(
        hyperv_error(host.perform(&Op::StartVm {
            vm: "exampleName".into()
        })),
        ErrorKind::GpuPolicy
    );
}

#[test]
fn dynamic_memory_conflict_is_refused_in_chinese_and_understood() {
    let mut host = sim_host(laptop());
    assert_eq!(
        hyperv_error(host.perform(&Op::StartVm {
            vm: "exampleName".into()
        })),
        ErrorKind::DynamicMemoryConflict
    );
}

#[test]
fn a_36_bit_cpu_gets_mmio_it_can_address() {
    let mut initial = laptop();
    initial.host.cpu_physical_address_bits = Some(36);
    {
        let vm = initial.vm_mut("exampleName").unwrap();
        vm.memory.minimum = vm.memory.startup;
        vm.automatic_stop_action = Some("ShutDown".into());
    }
    // The blog's 32 GB does not start on this CPU: the recorded F8b failure.
    let mut host = sim_host(initial.clone());
    match host.perform(&Op::StartVm {
        vm: "exampleName".into(),
    }) {
        Err(HostError::HyperV(error)) => {
            assert_eq!(
                error.kind,
                ErrorKind::MmioAboveAddressRange {
                    limit: Some(1 << 36)
                }
            );
            assert!(
                error.record.message.contains("0x00000017dffff000"),
                "{}",
                error.record.message
            );
        }
        other => panic!("{other:?}"),
    }
    initial.vm_mut("exampleName").unwrap().gpu_adapters.clear();
    let mut host = sim_host(initial.clone());
    let proposal = plan_add(
        &survey(&mut host),
        &AddRequest {
            vm: "exampleName".into(),
            gpu: Some("4070".into()),
            ..AddRequest::default()
        },
    )
    .unwrap();
    assert!(
        proposal
            .plan
            .notes
            .iter()
            .any(|note| note.contains("36-bit")),
        "{:?}",
        proposal.plan.notes
    );
    assert!(
        ops(&proposal.plan)
            .iter()
            .any(|op| op.contains("-HighMemoryMappedIoSpace 512MB"))
    );
    apply(&mut host, &proposal.plan);
    host.perform(&Op::StartVm {
        vm: "exampleName".into(),
    })
    .unwrap();
}

#[test]
fn windows_10_cannot_pin_a_gpu() {
    let mut initial = laptop();
    initial.host.build = Some(19045);
    initial.host.cmdlets.add_gpu_adapter_instance_path = Some(false);
    initial.vm_mut("exampleName").unwrap().gpu_adapters.clear();
    let mut host = sim_host(initial.clone());
    assert_eq!(
        hyperv_error(host.perform(&Op::AddGpuAdapter {
            vm: "exampleName".into(),
            instance_path: Some(initial.gpus[0].name.clone()),
        })),
        ErrorKind::NoInstancePathParameter
    );
    let survey = survey(&mut host);
    let pinned = AddRequest {
        vm: "exampleName".into(),
        gpu: Some("4070".into()),
        ..AddRequest::default()
    };
    assert!(
        plan_add(&survey, &pinned)
            .unwrap_err()
            .message
            .contains("cannot pin")
    );
    let forced = plan_add(
        &survey,
        &AddRequest {
            force: true,
            ..pinned
        },
    )
    .unwrap();
    assert!(
        ops(&forced.plan)
            .last()
            .unwrap()
            .ends_with("-VMName 'exampleName'")
    );
    prove_rollback_and_undo(&initial, |survey| {
        plan_add(
            survey,
            &AddRequest {
                vm: "exampleName".into(),
                gpu: Some("4070".into()),
                force: true,
                ..AddRequest::default()
            },
        )
        .unwrap()
    });
}

#[test]
fn gpu_p_remove_and_undo_re_adds() {
    let initial = running(laptop(), "exampleName");
    let request = RemoveRequest {
        vm: "exampleName".into(),
        stop_vm: true,
        ..RemoveRequest::default()
    };
    let mut host = sim_host(initial.clone());
    let plan = plan_remove(&survey(&mut host), &request).unwrap().plan;
    insta::assert_snapshot!("gpu_p_remove", ops(&plan).join("\n"));
    let (dir, result) = execute(&mut host, &plan, None);
    result.unwrap();
    assert!(
        survey(&mut host)
            .vm("exampleName")
            .unwrap()
            .gpu_adapters
            .is_empty()
    );
    // Undo re-adds a partition of the same GPU (Hyper-V gives it a new id).
    undo_last(&dir, &mut host);
    let after = survey(&mut host);
    let vm = after.vm("exampleName").unwrap();
    assert_eq!(vm.gpu_adapters.len(), 1);
    assert_eq!(
        vm.gpu_adapters[0].instance_path.as_deref(),
        Some(initial.gpus[0].name.as_str())
    );
    assert_eq!(vm.state.as_deref(), Some("Running"));
}

#[test]
fn stale_gpu_partitions_are_found_and_removable() {
    let mut state = laptop();
    state.gpus.retain(|gpu| !gpu.name.contains("DEV_2860"));
    let mut host = sim_host(state);
    let survey = survey(&mut host);
    let vm = survey.vm("exampleName").unwrap();
    assert!(vm.gpu_adapters[0].stale);
    assert!(
        vm.problems
            .iter()
            .any(|problem| problem.contains("not a partitionable GPU here any more"))
    );
    let plan = plan_remove(
        &survey,
        &RemoveRequest {
            vm: "exampleName".into(),
            gpu: Some("DEV_2860".into()),
            ..RemoveRequest::default()
        },
    )
    .unwrap()
    .plan;
    apply(&mut host, &plan);
}

fn sr_iov_host() -> SimState {
    let gpus: Vec<PartitionableGpu> = format_list::parse(&common::recorded(
        "Get-VMHostPartitionableGpu_nvidia-a2_ws2025_msdocs_F2.txt",
    ))
    .iter()
    .filter_map(PartitionableGpu::from_list_record)
    .collect();
    let mut state = laptop();
    state.host.product_type = Some("ServerNT".into());
    state.gpus = gpus;
    state.vms.clear();
    state.devices.clear();
    state
}

#[test]
fn sr_iov_partition_counts() {
    let initial = sr_iov_host();
    let mut host = sim_host(initial.clone());
    let survey = survey(&mut host);
    let bad = plan_partitions(
        &survey,
        &PartitionsRequest {
            gpu: "4&18416dc3".into(),
            count: 3,
        },
    )
    .unwrap_err();
    assert!(bad.help.unwrap().contains("16, 8, 4, 2"));
    let same = plan_partitions(
        &survey,
        &PartitionsRequest {
            gpu: "4&18416dc3".into(),
            count: 4,
        },
    )
    .unwrap();
    assert!(same.plan.steps.is_empty());
    let request = PartitionsRequest {
        gpu: "4&5906f5e".into(),
        count: 8,
    };
    prove_rollback_and_undo(&initial, |survey| {
        plan_partitions(survey, &request).unwrap()
    });
}

// ---------------------------------------------------------------- DDA

fn assign(devices: &[&str], vm: &str) -> AssignRequest {
    AssignRequest {
        devices: devices.iter().map(|device| (*device).to_owned()).collect(),
        vm: vm.into(),
        stop_vm: true,
        force: false,
    }
}

#[test]
fn dda_assigns_a_gpu_with_its_audio_and_rolls_back_on_any_failure() {
    // A running VM with dynamic memory and no devices yet (the NVMe back on the host).
    let mut initial = running(server(), "StorageServer");
    {
        let vm = initial.vm_mut("StorageServer").unwrap();
        vm.assigned_devices.clear();
        vm.memory.dynamic = true;
        vm.memory.minimum = Some(2 * GIB);
        vm.automatic_stop_action = Some("Save".into());
    }
    let nvme = initial
        .devices
        .iter_mut()
        .find(|device| device.pnp.instance_id.contains("DEV_A820"))
        .unwrap();
    nvme.dda = SimDda::Host;
    nvme.pnp.problem = Some(0);
    let request = assign(&["1080 Ti"], "StorageServer");
    let mut host = sim_host(initial.clone());
    let proposal = plan_assign(&survey(&mut host), &request).unwrap();
    insta::assert_snapshot!("dda_assign_gpu_and_audio", ops(&proposal.plan).join("\n"));
    assert!(
        proposal
            .plan
            .notes
            .iter()
            .any(|note| note.contains("goes along"))
    );
    apply(&mut host, &proposal.plan);
    let after = survey(&mut host);
    let vm = after.vm("StorageServer").unwrap();
    assert_eq!(vm.devices.len(), 2);
    assert_eq!(vm.stop_action.as_deref(), Some(StopAction::TurnOff.name()));
    assert!(vm.problems.is_empty(), "{:?}", vm.problems);
    host.perform(&Op::StartVm {
        vm: "StorageServer".into(),
    })
    .unwrap();
    prove_rollback_and_undo(&initial, |survey| plan_assign(survey, &request).unwrap());
}

#[test]
fn dda_moves_a_device_from_vm_to_vm() {
    let mut initial = server();
    let mut second = initial.vms[0].clone();
    second.name = "Analytics".into();
    second.id = Some("00000000-0000-4000-8000-000000000003".into());
    second.assigned_devices.clear();
    initial.vms.push(second);
    let request = assign(&["PCIROOT(40)#PCI(0200)#PCI(0000)"], "Analytics");
    let mut host = sim_host(initial.clone());
    let plan = plan_assign(&survey(&mut host), &request).unwrap().plan;
    insta::assert_snapshot!("dda_vm_to_vm", ops(&plan).join("\n"));
    prove_rollback_and_undo(&initial, |survey| plan_assign(survey, &request).unwrap());
}

#[test]
fn dda_release_gives_devices_back() {
    let initial = running(server(), "StorageServer");
    let request = ReleaseRequest {
        devices: vec!["144d:a820".into()],
        vm: None,
        stop_vm: true,
    };
    let mut host = sim_host(initial.clone());
    let plan = plan_release(&survey(&mut host), &request).unwrap().plan;
    insta::assert_snapshot!("dda_release", ops(&plan).join("\n"));
    prove_rollback_and_undo(&initial, |survey| plan_release(survey, &request).unwrap());
}

#[test]
fn devices_left_dismounted_by_anyone_are_recovered() {
    let mut initial = server();
    // Dismounted the usual way: disabled first, then dismounted, then never assigned.
    let k520 = initial
        .devices
        .iter_mut()
        .find(|device| device.pnp.name.as_deref() == Some("NVIDIA GRID K520"))
        .unwrap();
    k520.dda = SimDda::Dismounted;
    k520.pnp.problem = Some(22);
    let mut host = sim_host(initial.clone());
    let survey = survey(&mut host);
    assert!(
        survey
            .host
            .checks
            .iter()
            .any(|check| check.id == "dismounted")
    );
    let request = ReleaseRequest {
        devices: vec!["GRID K520".into()],
        ..ReleaseRequest::default()
    };
    let plan = plan_release(&survey, &request).unwrap().plan;
    assert_eq!(
        ops(&plan),
        vec![
            "Mount-VMHostAssignableDevice -LocationPath 'PCIROOT(0)#PCI(0300)#PCI(0000)#PCI(0800)#PCI(0000)'".to_owned(),
            "Enable-PnpDevice -InstanceId 'PCI\\VEN_10DE&DEV_118A&SUBSYS_100D10DE&REV_A1\\6&2C2B9C8A&0&00400008' -Confirm:$false".to_owned(),
        ]
    );
    prove_rollback_and_undo(&initial, |survey| plan_release(survey, &request).unwrap());
}

#[test]
fn stale_device_records_are_removed() {
    let mut state = server();
    state
        .devices
        .retain(|device| !device.pnp.instance_id.contains("DEV_A820"));
    let mut host = sim_host(state);
    let survey = survey(&mut host);
    assert!(survey.vm("StorageServer").unwrap().devices[0].stale);
    let plan = plan_release(
        &survey,
        &ReleaseRequest {
            devices: vec!["PCIROOT(40)#PCI(0200)#PCI(0000)".into()],
            vm: Some("StorageServer".into()),
            stop_vm: false,
        },
    )
    .unwrap()
    .plan;
    assert_eq!(plan.steps.len(), 1);
    apply(&mut host, &plan);
    assert!(
        self::survey(&mut host)
            .vm("StorageServer")
            .unwrap()
            .devices
            .is_empty()
    );
}

fn refuse(state: SimState, request: &AssignRequest) -> Refusal {
    let mut host = sim_host(state);
    plan_assign(&survey(&mut host), request).unwrap_err()
}

#[test]
fn dda_refusals() {
    let client = refuse(laptop(), &assign(&["4070"], "exampleName"));
    assert!(client.message.contains("0xC035001E"), "{client:?}");
    let rmrr = refuse(server(), &assign(&["Smart Array"], "StorageServer"));
    assert!(rmrr.message.contains("firmware-owned memory"), "{rmrr:?}");
    let no_acs = refuse(
        server(),
        &assign(&["Gigabit ET Dual Port Server Adapter #2"], "StorageServer"),
    );
    assert!(no_acs.help.unwrap().contains("--force"));
    let legacy = refuse(server(), &assign(&["USB2 Enhanced"], "StorageServer"));
    assert!(legacy.message.contains("conventional PCI"));
    let ambiguous = refuse(server(), &assign(&["Gigabit"], "StorageServer"));
    assert!(ambiguous.message.contains("matches 2 devices"));
    let missing = refuse(server(), &assign(&["nothing-like-this"], "StorageServer"));
    assert!(missing.help.unwrap().contains("GRID K520"));
    let mut saved = server();
    saved.vm_mut("StorageServer").unwrap().state = Some("Saved".into());
    assert!(
        refuse(saved, &assign(&["K520"], "StorageServer"))
            .message
            .contains("saved state")
    );
    let mut not_asked = running(server(), "StorageServer");
    not_asked.vms[0].state = Some("Running".into());
    let running = refuse(
        not_asked,
        &AssignRequest {
            stop_vm: false,
            ..assign(&["K520"], "StorageServer")
        },
    );
    assert_eq!(running.running_vms, vec!["StorageServer".to_owned()]);
}

#[test]
fn the_system_disk_controller_is_never_assigned() {
    let mut state = server();
    let usb3 = state
        .devices
        .iter()
        .find(|device| device.pnp.instance_id.contains("DEV_1E31"))
        .unwrap()
        .pnp
        .instance_id
        .clone();
    state.disks[0].ancestors = vec![usb3];
    let mut request = assign(&["USB 3.0"], "StorageServer");
    request.force = true;
    let refusal = refuse(state, &request);
    assert!(
        refusal.message.contains("disk Windows is running from"),
        "{refusal:?}"
    );
}

#[test]
fn no_acs_can_be_forced_and_then_rolls_back_too() {
    let mut initial = server();
    // Give the NIC a location so that DDA can name it.
    let nic = initial
        .devices
        .iter_mut()
        .find(|device| {
            device.pnp.name.as_deref() == Some("Intel(R) Gigabit ET Dual Port Server Adapter #2")
        })
        .unwrap();
    nic.pnp.location_paths = vec!["PCIROOT(0)#PCI(0200)#PCI(0001)".into()];
    let mut request = assign(&["PCIROOT(0)#PCI(0200)#PCI(0001)"], "StorageServer");
    request.force = true;
    let mut host = sim_host(initial.clone());
    let proposal = plan_assign(&survey(&mut host), &request).unwrap();
    assert!(
        proposal
            .plan
            .notes
            .iter()
            .any(|note| note.contains("overridden with --force"))
    );
    prove_rollback_and_undo(&initial, |survey| plan_assign(survey, &request).unwrap());
}

#[test]
fn hyper_v_refusals_carry_the_recorded_messages() {
    // Client SKU: assigning works, starting fails with 0xC035001E (tfslabs/HyperV-DDA#2).
    let mut client = server();
    client.host.product_type = Some("WinNT".into());
    let mut host = sim_host(client);
    assert_eq!(
        hyperv_error(host.perform(&Op::StartVm {
            vm: "StorageServer".into()
        })),
        ErrorKind::HypervisorFeatureUnavailable
    );
    // Dismount without -Force and without a mitigation driver.
    let mut host = sim_host(server());
    let location = "PCIROOT(0)#PCI(0300)#PCI(0000)#PCI(0800)#PCI(0000)".to_owned();
    assert_eq!(
        hyperv_error(host.perform(&Op::DismountDevice {
            location_path: location.clone(),
            force: false,
        })),
        ErrorKind::NoMitigationDriver
    );
    // Firmware kept PCIe control.
    let mut no_control = server();
    no_control.behaviour.os_pcie_control = false;
    let mut host = sim_host(no_control);
    assert_eq!(
        hyperv_error(host.perform(&Op::DismountDevice {
            location_path: location,
            force: true,
        })),
        ErrorKind::NoOsPcieControl
    );
    // Changing a running VM.
    let mut host = sim_host(running(server(), "StorageServer"));
    assert_eq!(
        hyperv_error(host.perform(&Op::SetCacheTypes {
            vm: "StorageServer".into(),
            enabled: true,
        })),
        ErrorKind::VmState
    );
    assert_eq!(
        hyperv_error(host.perform(&Op::StopVm {
            vm: "Nope".into(),
            turn_off: false,
        })),
        ErrorKind::VmNotFound
    );
}

#[test]
fn a_failed_guest_shutdown_stops_the_plan_before_anything_changes() {
    let mut initial = running(server(), "StorageServer");
    initial.behaviour.no_guest_shutdown = vec!["StorageServer".into()];
    let mut host = sim_host(initial);
    let before = answers(&mut host);
    let plan = plan_assign(&survey(&mut host), &assign(&["K520"], "StorageServer"))
        .unwrap()
        .plan;
    let error = execute(&mut host, &plan, None).1.unwrap_err();
    assert!(
        matches!(error, ExecError::StepFailed { index: 0, .. }),
        "{error:?}"
    );
    assert_eq!(answers(&mut host), before);
}
