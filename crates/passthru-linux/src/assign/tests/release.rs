//! The release planner: the driver from the journal, the modalias fallback, a VM holding the
//! group, and devices that are with the host already.

use super::*;
use crate::assign::history::recorded_host_drivers;

fn release_request(devices: &[&str]) -> ReleaseRequest {
    ReleaseRequest {
        devices: devices.iter().map(|d| (*d).to_owned()).collect(),
    }
}

fn release(
    kernel: &FakeKernel,
    journal: &Journal,
    devices: &[&str],
) -> Result<ReleasePlan, PlanError> {
    let inventory = read_inventory(kernel.tree());
    let recorded = recorded_host_drivers(&journal.operations().unwrap());
    prepare_release(
        kernel.tree(),
        &inventory,
        &recorded,
        &release_request(devices),
    )
}

/// The lab kernel with the GPU and its audio function assigned through the planner.
fn assigned() -> (FakeKernel, tempfile::TempDir) {
    let mut kernel = FakeKernel::q35_lab();
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = assign(&kernel, &request(&[lab::GPU])).unwrap();
    run(&mut kernel, &mut journal, &plan.plan);
    (kernel, dir)
}

#[test]
fn release_goes_back_to_the_drivers_the_journal_recorded() {
    let (mut kernel, dir) = assigned();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = release(&kernel, &journal, &["01:00.0"]).unwrap();
    let assign_id = journal.operations().unwrap()[0].id.clone();
    assert_eq!(plan.returns.len(), 2);
    assert_eq!(plan.returns[0].driver.as_deref(), Some("bochs-drm"));
    assert_eq!(plan.returns[1].driver.as_deref(), Some("snd_hda_intel"));
    assert_eq!(plan.returns[1].with, Some(address(lab::GPU)));
    assert!(plan.returns.iter().all(|r| r.source
        == DriverSource::Journal {
            operation: assign_id.clone()
        }));
    insta::assert_snapshot!(plan.plan.render().to_string(), @r"
    Plan: release 0000:01:00.0
      note: 0000:01:00.1 goes back too: another function of the same card as 0000:01:00.0
      1. Clear driver_override of 0000:01:00.0 so its usual driver may bind it
           echo > /sys/bus/pci/devices/0000:01:00.0/driver_override
      2. Clear driver_override of 0000:01:00.1 so its usual driver may bind it
           echo > /sys/bus/pci/devices/0000:01:00.1/driver_override
      3. Unbind 0000:01:00.0 from vfio-pci
           echo 0000:01:00.0 > /sys/bus/pci/drivers/vfio-pci/unbind
      4. Unbind 0000:01:00.1 from vfio-pci
           echo 0000:01:00.1 > /sys/bus/pci/drivers/vfio-pci/unbind
      5. Bind 0000:01:00.0 to bochs-drm (drivers_probe)
           echo 0000:01:00.0 > /sys/bus/pci/drivers_probe
      6. Bind 0000:01:00.1 to snd_hda_intel (drivers_probe)
           echo 0000:01:00.1 > /sys/bus/pci/drivers_probe
      7. Check that 0000:01:00.0 is bound to bochs-drm
           readlink /sys/bus/pci/devices/0000:01:00.0/driver
      8. Check that 0000:01:00.1 is bound to snd_hda_intel
           readlink /sys/bus/pci/devices/0000:01:00.1/driver
    ");
    assert_eq!(
        run(&mut kernel, &mut journal, &plan.plan).outcome,
        Outcome::Applied
    );
    assert_eq!(kernel.driver_of(address(lab::GPU)), Some("bochs-drm"));
    assert_eq!(kernel.driver_of(address(lab::AUDIO)), Some("snd_hda_intel"));
    assert!(!kernel.tree().exists("/dev/vfio/3".as_ref()));

    let again = release(&kernel, &journal, &["01:00.0"]).unwrap();
    assert!(again.nothing_to_do());
    assert_eq!(
        again.already_released,
        [(address(lab::GPU), Some("bochs-drm".to_owned()))]
    );
}

#[test]
fn without_a_record_the_module_aliases_name_the_driver_and_say_so() {
    let (kernel, _dir) = assigned();
    let empty = tempfile::tempdir().unwrap();
    let journal = Journal::open(empty.path()).unwrap();
    let plan = release(&kernel, &journal, &[lab::AUDIO]).unwrap();
    assert_eq!(plan.returns[1].device, address(lab::AUDIO));
    assert_eq!(plan.returns[1].driver.as_deref(), Some("snd_hda_intel"));
    assert_eq!(
        plan.returns[1].source,
        DriverSource::Modalias {
            modules: vec!["snd_hda_intel".into()]
        }
    );
    assert!(
        plan.plan.notes.iter().any(|note| note
            == "the journal has no assign of 0000:01:00.1, so passthru does not know which driver it had; the kernel's module aliases name snd_hda_intel for it, so snd_hda_intel is expected back"),
        "{:#?}",
        plan.plan.notes
    );
}

#[test]
fn a_host_driver_whose_module_went_away_is_loaded_again() {
    let (mut kernel, dir) = assigned();
    let port: &mut dyn KernelPort = &mut kernel;
    let output = port
        .run(&passthru_core::runner::CommandSpec::new(
            "rmmod",
            ["snd_hda_intel"],
        ))
        .unwrap();
    assert!(output.success());
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = release(&kernel, &journal, &[lab::GPU]).unwrap();
    assert_eq!(
        plan.plan.steps[0],
        SysfsStep::load_module(
            "snd_hda_intel",
            Some("snd_hda_intel"),
            crate::sysfs::loaded_modules(kernel.tree()).unwrap()
        )
    );
    run(&mut kernel, &mut journal, &plan.plan);
    assert_eq!(kernel.driver_of(address(lab::AUDIO)), Some("snd_hda_intel"));
}

#[test]
fn a_group_a_vm_holds_is_not_released() {
    let (mut kernel, dir) = assigned();
    kernel.put_file("/proc/812/comm", "qemu-system-x86\n");
    let journal = Journal::open(dir.path()).unwrap();
    let mut busy = kernel.clone();
    busy.put_symlink("/proc/812/fd/23", "/dev/vfio/3");
    match release(&busy, &journal, &[lab::GPU]) {
        Err(PlanError::Refused(refusal)) => {
            assert_eq!(refusal.reasons.len(), 1);
            assert_eq!(refusal.reasons[0].code, "vfio-group-in-use");
            assert!(
                refusal.reasons[0]
                    .message
                    .contains("qemu-system-x86 (pid 812) has /dev/vfio/3 open"),
                "{}",
                refusal.reasons[0].message
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(release(&kernel, &journal, &[lab::GPU]).is_ok());
}

#[test]
fn a_stranded_device_gets_its_driver_back() {
    // driver_override names vfio-pci but nothing is bound (vfio-pci refused it).
    let kernel = FakeKernel::q35_lab_builder().without_iommu().build();
    let mut kernel = kernel;
    let port: &mut dyn KernelPort = &mut kernel;
    for action in [
        crate::bind::Action::LoadModule {
            module: "vfio-pci".into(),
        },
        crate::bind::Action::SetOverride {
            device: address(lab::AUDIO),
            driver: Some("vfio-pci".into()),
        },
        crate::bind::Action::Unbind {
            device: address(lab::AUDIO),
            driver: "snd_hda_intel".into(),
        },
        crate::bind::Action::Probe {
            device: address(lab::AUDIO),
        },
    ] {
        action.perform(port).unwrap();
    }
    assert_eq!(kernel.driver_of(address(lab::AUDIO)), None);
    let empty = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(empty.path()).unwrap();
    let plan = release(&kernel, &journal, &[lab::AUDIO]).unwrap();
    assert_eq!(plan.returns.len(), 1);
    run(&mut kernel, &mut journal, &plan.plan);
    assert_eq!(kernel.driver_of(address(lab::AUDIO)), Some("snd_hda_intel"));
}

#[test]
fn the_history_skips_undone_operations_and_prefers_the_newest() {
    let (mut kernel, dir) = assigned();
    let mut journal = Journal::open(dir.path()).unwrap();
    let release_plan = release(&kernel, &journal, &[lab::GPU]).unwrap();
    run(&mut kernel, &mut journal, &release_plan.plan);
    let operations = journal.operations().unwrap();
    let recorded = recorded_host_drivers(&operations);
    assert_eq!(
        recorded[&address(lab::GPU)].driver.as_deref(),
        Some("bochs-drm")
    );
    assert_eq!(recorded[&address(lab::GPU)].operation, operations[0].id);
    assert_eq!(
        recorded[&address(lab::GPU)].module.as_deref(),
        Some("bochs")
    );
    // Undo the assign: it no longer speaks for the device.
    let assign_op = journal.operation(&operations[0].id).unwrap();
    let port: &mut dyn KernelPort = &mut kernel;
    let _ = executor::undo::<SysfsStep>(&mut journal, &assign_op, port, &mut |_| {});
    let recorded = recorded_host_drivers(&journal.operations().unwrap());
    assert!(!recorded.contains_key(&address(lab::GPU)));
}
