use std::collections::BTreeSet;

use passthru_core::pci::PciAddress;
use passthru_core::plan::Step;

use crate::bind::{BindTarget, DeviceBinding, KernelPort, SysfsStep, bind_steps, release_steps};
use crate::errno::Errno;
use crate::sysfs;
use crate::testing::{FakeKernel, lab};

fn address(text: &str) -> PciAddress {
    text.parse().unwrap()
}

pub(super) fn assign_plan(kernel: &FakeKernel, devices: &[&str]) -> Vec<SysfsStep> {
    let fs = kernel.fs();
    let bindings: Vec<DeviceBinding> = devices
        .iter()
        .map(|device| DeviceBinding::read(fs, address(device)).unwrap())
        .collect();
    bind_steps(
        &bindings,
        &BindTarget::vfio_pci(),
        sysfs::loaded_modules(fs).unwrap(),
    )
}

fn apply_all(kernel: &mut FakeKernel, steps: &[SysfsStep]) {
    let port: &mut dyn KernelPort = kernel;
    for step in steps {
        step.apply(port)
            .unwrap_or_else(|error| panic!("{step:?}: {error}"));
        step.verify(port)
            .unwrap_or_else(|error| panic!("{step:?}: {error}"));
    }
}

#[test]
fn the_bind_recipe_writes_exactly_what_libvirt_does() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let steps = assign_plan(&kernel, &[lab::GPU, lab::AUDIO]);
    apply_all(&mut kernel, &steps);
    assert_eq!(
        kernel.log(),
        [
            "run modprobe vfio-pci",
            "write /sys/bus/pci/devices/0000:01:00.0/driver_override \"vfio-pci\\n\"",
            "write /sys/bus/pci/devices/0000:01:00.1/driver_override \"vfio-pci\\n\"",
            "write /sys/bus/pci/drivers/bochs-drm/unbind \"0000:01:00.0\\n\"",
            "write /sys/bus/pci/drivers/snd_hda_intel/unbind \"0000:01:00.1\\n\"",
            "write /sys/bus/pci/drivers_probe \"0000:01:00.0\\n\"",
            "write /sys/bus/pci/drivers_probe \"0000:01:00.1\\n\"",
        ]
    );
    assert_eq!(kernel.driver_of(address(lab::GPU)), Some("vfio-pci"));
    assert_eq!(kernel.driver_of(address(lab::AUDIO)), Some("vfio-pci"));
    assert!(kernel.fs().exists("/dev/vfio/3".as_ref()));
    assert!(kernel.fs().exists("/dev/vfio/vfio".as_ref()));
    // The boot VGA shares the driver but not the group; it stays.
    assert_eq!(kernel.driver_of(address(lab::BOOT_VGA)), Some("bochs-drm"));
    assert_eq!(
        sysfs::driver_devices(kernel.fs(), "vfio-pci"),
        [address(lab::GPU), address(lab::AUDIO)]
    );
}

#[test]
fn the_plan_renders_as_shell_lines_for_dry_run() {
    let kernel = FakeKernel::gpu_with_audio();
    let steps = assign_plan(&kernel, &[lab::GPU]);
    let lines: Vec<String> = steps
        .iter()
        .flat_map(|step| {
            let view = step.view();
            std::iter::once(view.summary).chain(view.actions)
        })
        .collect();
    assert_eq!(
        lines,
        [
            "Load the vfio-pci module",
            "modprobe vfio-pci",
            "Let only vfio-pci bind 0000:01:00.0 (driver_override)",
            "echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override",
            "Unbind 0000:01:00.0 from bochs-drm",
            "echo 0000:01:00.0 > /sys/bus/pci/drivers/bochs-drm/unbind",
            "Bind 0000:01:00.0 to vfio-pci (drivers_probe)",
            "echo 0000:01:00.0 > /sys/bus/pci/drivers_probe",
            "Check that 0000:01:00.0 is bound to vfio-pci",
            "readlink /sys/bus/pci/devices/0000:01:00.0/driver",
            "Check that VFIO group 3 exists (/dev/vfio/3)",
            "test -e /dev/vfio/3",
        ]
    );
}

#[test]
fn steps_survive_a_journal_round_trip() {
    let kernel = FakeKernel::gpu_with_audio();
    let steps = assign_plan(&kernel, &[lab::GPU, lab::AUDIO]);
    let json = serde_json::to_string(&steps).unwrap();
    assert!(json.contains("\"op\":\"set-override\""), "{json}");
    let back: Vec<SysfsStep> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, steps);
}

#[test]
fn probe_success_without_a_driver_is_caught_by_the_driver_link() {
    let mut kernel = FakeKernel::gpu_with_audio();
    kernel.fail_probe(address(lab::GPU), "vfio-pci", Errno::EINVAL);
    let steps = assign_plan(&kernel, &[lab::GPU]);
    let port: &mut dyn KernelPort = &mut kernel;
    let mut failure = None;
    for step in &steps {
        step.apply(port).unwrap();
        if let Err(error) = step.verify(port) {
            failure = Some(error);
            break;
        }
    }
    let failure = failure.expect("the probe step must notice that nothing bound");
    assert_eq!(
        failure.message,
        "0000:01:00.0 is bound to no driver instead of vfio-pci"
    );
    assert!(failure.help.unwrap().contains("dmesg"));
}

#[test]
fn a_device_without_iommu_group_is_refused_by_vfio_pci_probe() {
    let mut kernel = FakeKernel::builder()
        .vfio_modules()
        .module(
            crate::testing::FakeModule::new("e1000")
                .driver("e1000")
                .loaded(),
        )
        .device(crate::testing::FakeDevice::new("0000:00:04.0").driver("e1000"))
        .build();
    let steps = assign_plan(&kernel, &["0000:00:04.0"]);
    let port: &mut dyn KernelPort = &mut kernel;
    let mut verified = true;
    for step in &steps {
        step.apply(port).unwrap();
        verified &= step.verify(port).is_ok();
    }
    assert!(!verified);
    assert_eq!(kernel.driver_of(address("0000:00:04.0")), None);
}

#[test]
fn release_clears_the_override_and_brings_the_host_drivers_back() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let before = kernel.tree().clone();
    let plan = assign_plan(&kernel, &[lab::GPU, lab::AUDIO]);
    apply_all(&mut kernel, &plan);
    let fs = kernel.fs();
    let release: Vec<(DeviceBinding, Option<String>)> =
        [(lab::GPU, "bochs-drm"), (lab::AUDIO, "snd_hda_intel")]
            .iter()
            .map(|(device, host)| {
                (
                    DeviceBinding::read(fs, address(device)).unwrap(),
                    Some((*host).to_owned()),
                )
            })
            .collect();
    let steps = release_steps(&release);
    assert!(matches!(
        steps[0],
        SysfsStep::SetOverride { driver: None, .. }
    ));
    apply_all(&mut kernel, &steps);
    assert_eq!(kernel.driver_of(address(lab::GPU)), Some("bochs-drm"));
    assert_eq!(kernel.driver_of(address(lab::AUDIO)), Some("snd_hda_intel"));
    assert!(
        kernel
            .log()
            .iter()
            .any(|line| line == "write /sys/bus/pci/devices/0000:01:00.0/driver_override \"\\n\"")
    );
    // Only the vfio modules (release leaves them loaded) and /dev/vfio/vfio differ.
    let differences = before.diff(kernel.tree());
    assert!(
        differences
            .iter()
            .all(|line| line.contains("/sys/module/vfio")
                || line.contains("/dev/vfio")
                || line.contains("/sys/bus/pci/drivers/vfio-pci")
                || line.contains("/sys/module/irqbypass/")),
        "{differences:#?}"
    );
}

#[test]
fn an_override_left_set_keeps_the_host_driver_away() {
    // Why release must clear driver_override (OFS/opae-sdk#2729): unbind + probe alone binds
    // vfio-pci again.
    let mut kernel = FakeKernel::gpu_with_audio();
    let plan = assign_plan(&kernel, &[lab::GPU]);
    apply_all(&mut kernel, &plan);
    let steps = [
        SysfsStep::unbind(address(lab::GPU), "vfio-pci", Some("vfio_pci".into())),
        SysfsStep::probe(address(lab::GPU), None, None),
    ];
    apply_all(&mut kernel, &steps);
    assert_eq!(kernel.driver_of(address(lab::GPU)), Some("vfio-pci"));
}

#[test]
fn unbind_refuses_a_device_that_moved_to_another_driver() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let step = SysfsStep::unbind(address(lab::GPU), "nouveau", None);
    let port: &mut dyn KernelPort = &mut kernel;
    let error = step.apply(port).unwrap_err();
    assert!(
        error.message.contains("bound to bochs-drm, not to nouveau"),
        "{error}"
    );
    assert!(kernel.log().is_empty());
}

#[test]
fn a_hanging_unbind_is_reported_stuck_with_device_and_driver() {
    let mut kernel = FakeKernel::gpu_with_audio();
    kernel.hang_writes("/drivers/bochs-drm/unbind");
    let step = SysfsStep::unbind(address(lab::GPU), "bochs-drm", Some("bochs".into()));
    let port: &mut dyn KernelPort = &mut kernel;
    let error = step.apply(port).unwrap_err();
    assert_eq!(
        error.message,
        "unbinding 0000:01:00.0 from bochs-drm is stuck: the write to \
         `/sys/bus/pci/drivers/bochs-drm/unbind` did not return within 30 s"
    );
    assert!(error.help.unwrap().contains("fuser"));
}

#[test]
fn undo_of_load_module_removes_exactly_what_modprobe_added() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let before = kernel.tree().clone();
    let loaded: BTreeSet<String> = sysfs::loaded_modules(kernel.fs()).unwrap();
    let step = SysfsStep::load_module("vfio-pci", Some("vfio-pci"), loaded);
    let port: &mut dyn KernelPort = &mut kernel;
    step.apply(port).unwrap();
    step.verify(port).unwrap();
    assert!(kernel.module_loaded("vfio_iommu_type1"));
    let (actions, _) = step.undo_actions(kernel.fs()).unwrap();
    let lines: Vec<String> = actions.iter().map(ToString::to_string).collect();
    // irqbypass was loaded before (kvm uses it) and stays.
    assert_eq!(
        lines,
        [
            "rmmod vfio_pci",
            "rmmod vfio_iommu_type1",
            "rmmod vfio_pci_core",
            "rmmod vfio",
            "rmmod vfio_virqfd",
        ]
    );
    let port: &mut dyn KernelPort = &mut kernel;
    step.undo(port).unwrap();
    assert_eq!(before.diff(kernel.tree()), Vec::<String>::new());
}

#[test]
fn undo_of_load_module_leaves_a_module_someone_uses() {
    let mut kernel = FakeKernel::gpu_with_audio();
    let loaded = sysfs::loaded_modules(kernel.fs()).unwrap();
    let step = SysfsStep::load_module("vfio-pci", Some("vfio-pci"), loaded);
    let port: &mut dyn KernelPort = &mut kernel;
    step.apply(port).unwrap();
    // Another tool gives the NIC to vfio-pci meanwhile.
    let plan = assign_plan(&kernel, &[lab::NIC]);
    apply_all(&mut kernel, &plan[1..]);
    let (actions, _) = step.undo_actions(kernel.fs()).unwrap();
    assert!(actions.is_empty(), "{actions:?}");
    // A container open in QEMU holds vfio too.
    let mut kernel = FakeKernel::gpu_with_audio();
    let loaded = sysfs::loaded_modules(kernel.fs()).unwrap();
    let step = SysfsStep::load_module("vfio-pci", Some("vfio-pci"), loaded);
    step.apply(&mut kernel).unwrap();
    kernel.set_module_users("vfio_iommu_type1", 1);
    let (actions, _) = step.undo_actions(kernel.fs()).unwrap();
    let lines: Vec<String> = actions.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["rmmod vfio_pci", "rmmod vfio_pci_core", "rmmod vfio_virqfd"]
    );
}
