//! The planners over fake kernels that mirror the VM lab's guest: what moves, what stays, what
//! is refused and why; then full assign and release runs with failures and crashes at every
//! step.

mod faults;
mod release;

use std::collections::BTreeMap;

use passthru_core::pci::PciAddress;
use passthru_core::plan::executor::{self, ExecOptions, Report};
use passthru_core::plan::journal::{Journal, Outcome};
use passthru_core::plan::{Plan, Step};

use super::*;
use crate::bind::{KernelPort, SysfsStep};
use crate::inventory::read_inventory;
use crate::testing::{FakeDevice, FakeKernel, FakeModule, lab};

fn address(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn request(devices: &[&str]) -> AssignRequest {
    AssignRequest {
        devices: devices.iter().map(|d| (*d).to_owned()).collect(),
        with_group: false,
        force: false,
    }
}

fn assign(kernel: &FakeKernel, request: &AssignRequest) -> Result<AssignPlan, PlanError> {
    let inventory = read_inventory(kernel.tree());
    prepare_assign(kernel.tree(), &inventory, request)
}

fn refused(result: Result<AssignPlan, PlanError>) -> Refusal {
    match result {
        Err(PlanError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:#?}"),
    }
}

fn codes(refusal: &Refusal) -> Vec<&str> {
    refusal.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn moved(plan: &AssignPlan) -> Vec<(String, MoveReason)> {
    plan.moves
        .iter()
        .map(|m| (m.device.to_string(), m.why))
        .collect()
}

/// Applies `plan` to `kernel` through the real executor, journaling into `journal`.
fn run(kernel: &mut FakeKernel, journal: &mut Journal, plan: &Plan<SysfsStep>) -> Report {
    let port: &mut dyn KernelPort = kernel;
    executor::apply(journal, plan, port, &ExecOptions::default(), &mut |_| {}).unwrap()
}

#[test]
fn the_gpu_takes_its_audio_function_along_and_nothing_else() {
    let kernel = FakeKernel::q35_lab();
    let plan = assign(&kernel, &request(&["01:00.0"])).unwrap();
    assert_eq!(
        moved(&plan),
        [
            (lab::GPU.to_owned(), MoveReason::Named),
            (
                lab::AUDIO.to_owned(),
                MoveReason::SameCard {
                    of: address(lab::GPU)
                }
            ),
        ]
    );
    assert_eq!(plan.groups(), [3]);
    assert!(plan.forced.is_empty(), "{:?}", plan.forced);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    insta::assert_snapshot!(plan.plan.render().to_string(), @r"
    Plan: assign 0000:01:00.0
      note: 0000:01:00.1 moves too: another function of the same card as 0000:01:00.0, in the same IOMMU group
      1. Load the vfio-pci module
           modprobe vfio-pci
      2. Let only vfio-pci bind 0000:01:00.0 (driver_override)
           echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override
      3. Let only vfio-pci bind 0000:01:00.1 (driver_override)
           echo vfio-pci > /sys/bus/pci/devices/0000:01:00.1/driver_override
      4. Unbind 0000:01:00.0 from bochs-drm
           echo 0000:01:00.0 > /sys/bus/pci/drivers/bochs-drm/unbind
      5. Unbind 0000:01:00.1 from snd_hda_intel
           echo 0000:01:00.1 > /sys/bus/pci/drivers/snd_hda_intel/unbind
      6. Bind 0000:01:00.0 to vfio-pci (drivers_probe)
           echo 0000:01:00.0 > /sys/bus/pci/drivers_probe
      7. Bind 0000:01:00.1 to vfio-pci (drivers_probe)
           echo 0000:01:00.1 > /sys/bus/pci/drivers_probe
      8. Check that 0000:01:00.0 is bound to vfio-pci
           readlink /sys/bus/pci/devices/0000:01:00.0/driver
      9. Check that 0000:01:00.1 is bound to vfio-pci
           readlink /sys/bus/pci/devices/0000:01:00.1/driver
      10. Check that VFIO group 3 exists (/dev/vfio/3)
           test -e /dev/vfio/3
    ");
}

#[test]
fn naming_the_audio_function_moves_the_gpu_too_and_the_root_port_stays() {
    let kernel = FakeKernel::q35_lab();
    let plan = assign(&kernel, &request(&["8086:293e"])).unwrap();
    assert_eq!(
        moved(&plan),
        [
            (
                lab::GPU.to_owned(),
                MoveReason::SameCard {
                    of: address(lab::AUDIO)
                }
            ),
            (lab::AUDIO.to_owned(), MoveReason::Named),
        ]
    );
    assert!(
        plan.left_alone.is_empty(),
        "the root port is in its own group"
    );
}

#[test]
fn the_boot_vga_with_the_console_on_it_is_refused_unless_forced() {
    let kernel = FakeKernel::q35_lab();
    let refusal = refused(assign(&kernel, &request(&[lab::BOOT_VGA])));
    assert_eq!(codes(&refusal), ["console-framebuffer"]);
    assert!(refusal.force_would_help());
    assert_eq!(
        refusal.reasons[0].message,
        "the host's text console draws on 0000:00:01.0: fbcon is bound and uses /dev/fb0 (fb0 \
         belongs to the primary (boot VGA) display)"
    );
    assert!(
        refusal.reasons[0]
            .help
            .contains("/sys/class/vtconsole/vtcon1/bind")
    );

    let mut forced = request(&[lab::BOOT_VGA]);
    forced.force = true;
    let plan = assign(&kernel, &forced).unwrap();
    assert_eq!(plan.forced.len(), 1);
    assert!(
        plan.plan.notes.iter().any(|note| note.starts_with(
            "--force: going ahead although the host's text console draws on 0000:00:01.0"
        )),
        "{:#?}",
        plan.plan.notes
    );
}

#[test]
fn the_console_follows_fbcon_map_on_the_command_line() {
    let kernel = FakeKernel::q35_lab_builder()
        .file("/proc/cmdline", "console=tty0 fbcon=map:1\n")
        .build();
    assert!(assign(&kernel, &request(&[lab::BOOT_VGA])).is_ok());
    let refusal = refused(assign(&kernel, &request(&[lab::GPU])));
    assert_eq!(codes(&refusal), ["console-framebuffer"]);
    assert!(
        refusal.reasons[0]
            .message
            .contains("`fbcon=map:` names fb1")
    );
}

#[test]
fn an_idle_boot_vga_is_allowed_with_a_note() {
    let kernel = FakeKernel::gpu_with_audio();
    let plan = assign(&kernel, &request(&[lab::BOOT_VGA])).unwrap();
    assert!(
        plan.plan
            .notes
            .contains(&"0000:00:01.0 is the boot VGA device, but no console, framebuffer or program uses it now".to_owned()),
        "{:#?}",
        plan.plan.notes
    );
}

#[test]
fn a_shared_bridge_group_needs_with_group_and_the_bridge_stays() {
    let kernel = FakeKernel::q35_lab();
    let refusal = refused(assign(&kernel, &request(&[lab::BRIDGED_NIC_1])));
    assert_eq!(codes(&refusal), ["group-shared"]);
    assert!(!refusal.force_would_help());
    insta::assert_snapshot!(refusal.to_string(), @r"
    passthru will not assign 0000:08:01.0:
      - IOMMU group 7 of 0000:08:01.0 also holds 0000:08:02.0 (net, bound to e1000): a group goes to VFIO whole, so it leaves its host driver too
        what to do: add --with-group to move it to vfio-pci as well (the host loses it), or move the card to a slot with its own IOMMU group; `passthru survey --group 7` shows the group
    ");

    let mut with_group = request(&[lab::BRIDGED_NIC_1]);
    with_group.with_group = true;
    let plan = assign(&kernel, &with_group).unwrap();
    assert_eq!(
        moved(&plan),
        [
            (lab::BRIDGED_NIC_1.to_owned(), MoveReason::Named),
            (
                lab::BRIDGED_NIC_2.to_owned(),
                MoveReason::WithGroup { group: 7 }
            ),
        ]
    );
    assert_eq!(plan.left_alone.len(), 1);
    assert_eq!(plan.left_alone[0].device, lab::PCI_BRIDGE);
    let text = plan.plan.render().to_string();
    assert!(text.contains(lab::BRIDGED_NIC_2));
    assert!(
        !text.contains(&format!("devices/{}", lab::PCI_BRIDGE)),
        "the bridge is never written to:\n{text}"
    );
}

#[test]
fn naming_both_members_of_a_shared_group_needs_no_with_group() {
    let kernel = FakeKernel::q35_lab();
    let plan = assign(&kernel, &request(&["08:01.0", "08:02.0"])).unwrap();
    assert_eq!(plan.moves.len(), 2);
    assert!(plan.moves.iter().all(|m| m.why == MoveReason::Named));
}

#[test]
fn without_an_iommu_the_refusal_says_so() {
    let kernel = FakeKernel::q35_lab_builder().without_iommu().build();
    let refusal = refused(assign(&kernel, &request(&[lab::GPU])));
    assert_eq!(codes(&refusal), ["no-iommu"]);
    assert!(!refusal.force_would_help());
    let mut forced = request(&[lab::GPU]);
    forced.force = true;
    assert_eq!(codes(&refused(assign(&kernel, &forced))), ["no-iommu"]);
}

#[test]
fn bridges_are_not_assigned() {
    let kernel = FakeKernel::q35_lab();
    let refusal = refused(assign(&kernel, &request(&[lab::PCI_BRIDGE])));
    assert_eq!(codes(&refusal), ["not-an-endpoint"]);
}

#[test]
fn a_selector_naming_two_devices_lists_both() {
    let kernel = FakeKernel::q35_lab();
    match assign(&kernel, &request(&["1234:1111"])) {
        Err(PlanError::Select(error)) => {
            let text = error.to_string();
            assert!(
                text.contains(lab::BOOT_VGA) && text.contains(lab::GPU),
                "{text}"
            );
        }
        other => panic!("expected an ambiguous selector, got {other:?}"),
    }
}

#[test]
fn an_assigned_group_is_nothing_to_do() {
    let mut kernel = FakeKernel::q35_lab();
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = assign(&kernel, &request(&[lab::GPU])).unwrap();
    assert_eq!(
        run(&mut kernel, &mut journal, &plan.plan).outcome,
        Outcome::Applied
    );
    let again = assign(&kernel, &request(&[lab::GPU])).unwrap();
    assert!(again.nothing_to_do());
    assert!(again.moves.is_empty());
    assert_eq!(
        again.already_assigned,
        [address(lab::GPU), address(lab::AUDIO)]
    );
}

#[test]
fn half_assigned_groups_move_only_what_is_left() {
    let mut kernel = FakeKernel::q35_lab();
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    let plan = assign(&kernel, &request(&["08:01.0", "08:02.0"])).unwrap();
    let mut first = plan.plan.clone();
    first
        .steps
        .retain(|step| !step.view().summary.contains(lab::BRIDGED_NIC_2));
    run(&mut kernel, &mut journal, &first);
    assert_eq!(
        kernel.driver_of(address(lab::BRIDGED_NIC_1)),
        Some("vfio-pci")
    );
    assert_eq!(kernel.driver_of(address(lab::BRIDGED_NIC_2)), Some("e1000"));
    let rest = assign(&kernel, &request(&[lab::BRIDGED_NIC_2])).unwrap();
    assert_eq!(
        moved(&rest),
        [(lab::BRIDGED_NIC_2.to_owned(), MoveReason::Named)]
    );
    assert!(
        rest.left_alone
            .iter()
            .any(|left| left.device == lab::BRIDGED_NIC_1 && left.why == "already on vfio-pci")
    );
}

/// The lab kernel plus an NVMe holding `/`, the NIC carrying the default route, and a program
/// holding the GPU's DRM node.
fn busy_host() -> FakeKernel {
    FakeKernel::q35_lab_builder()
        .module(FakeModule::new("nvme").driver("nvme").loaded())
        .device(
            FakeDevice::new("0000:00:04.0")
                .ids(0x1b36, 0x0010)
                .class(0x010802)
                .group(8)
                .driver("nvme"),
        )
        .file(
            "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1/partition",
            "1\n",
        )
        .symlink(
            "/sys/dev/block/259:1",
            "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p1",
        )
        .file(
            "/proc/self/mountinfo",
            "22 1 259:1 / / rw,relatime - ext4 /dev/nvme0n1p1 rw\n",
        )
        .file(
            "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/ifindex",
            "2\n",
        )
        .symlink(
            "/sys/class/net/eth0",
            "../../devices/pci0000:00/0000:00:03.0/net/eth0",
        )
        .file(
            "/proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
        )
        .file(
            "/sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0/drm/card1/dev",
            "226:1\n",
        )
        .symlink(
            "/sys/class/drm/card1",
            "../../devices/pci0000:00/0000:00:02.0/0000:01:00.0/drm/card1",
        )
        .file("/proc/4242/comm", "Xorg\n")
        .symlink("/proc/4242/fd/12", "/dev/dri/card1")
        .build()
}

#[test]
fn the_root_disk_is_refused_even_with_force() {
    let kernel = busy_host();
    let mut forced = request(&["0000:00:04.0"]);
    forced.force = true;
    let refusal = refused(assign(&kernel, &forced));
    assert_eq!(codes(&refusal), ["root-filesystem"]);
    assert!(refusal.reasons[0].message.contains("root filesystem"));
}

#[test]
fn the_default_route_and_a_gpu_in_use_need_force() {
    let kernel = busy_host();
    let refusal = refused(assign(&kernel, &request(&[lab::NIC, lab::GPU])));
    assert_eq!(codes(&refusal), ["default-route", "device-files-open"]);
    assert!(refusal.force_would_help());
    assert!(
        refusal.reasons[1]
            .message
            .contains("Xorg (pid 4242) has /dev/dri/card1 open"),
        "{:?}",
        refusal.reasons[1]
    );
    let mut forced = request(&[lab::NIC, lab::GPU]);
    forced.force = true;
    let plan = assign(&kernel, &forced).unwrap();
    assert_eq!(plan.forced.len(), 2);
}

#[test]
fn with_group_cannot_take_a_member_the_host_cannot_lose() {
    // The root disk's controller shares the group of the GPU-like card.
    let kernel = FakeKernel::q35_lab_builder()
        .module(FakeModule::new("nvme").driver("nvme").loaded())
        .device(
            FakeDevice::new("0000:02:00.0")
                .behind(lab::ROOT_PORT)
                .ids(0x1b36, 0x0010)
                .class(0x010802)
                .group(3)
                .driver("nvme"),
        )
        .file(
            "/sys/devices/pci0000:00/0000:00:02.0/0000:02:00.0/nvme/nvme0/nvme0n1/dev",
            "259:0\n",
        )
        .symlink(
            "/sys/dev/block/259:0",
            "../../devices/pci0000:00/0000:00:02.0/0000:02:00.0/nvme/nvme0/nvme0n1",
        )
        .file(
            "/proc/self/mountinfo",
            "22 1 259:0 / / rw - ext4 /dev/nvme0n1 rw\n",
        )
        .build();
    let mut with_group = request(&[lab::GPU]);
    with_group.with_group = true;
    with_group.force = true;
    let refusal = refused(assign(&kernel, &with_group));
    assert_eq!(codes(&refusal), ["root-filesystem"]);
    assert!(
        refusal.reasons[0]
            .message
            .ends_with("(it shares IOMMU group 3 with the devices you named)"),
        "{}",
        refusal.reasons[0].message
    );
}

#[test]
fn plans_serialize_for_json() {
    let kernel = FakeKernel::q35_lab();
    let plan = assign(&kernel, &request(&[lab::GPU])).unwrap();
    let json = serde_json::to_value(&plan.moves).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"device": lab::GPU, "name": "Device 1234:1111", "driver": "bochs-drm", "iommu_group": 3, "why": "named"},
            {"device": lab::AUDIO, "name": "Device 8086:293e", "driver": "snd_hda_intel", "iommu_group": 3, "why": "same-card", "of": lab::GPU},
        ])
    );
}

/// Every device's driver and override, for comparing whole-kernel states in messages.
fn bindings(kernel: &FakeKernel) -> BTreeMap<PciAddress, Option<String>> {
    [
        lab::GPU,
        lab::AUDIO,
        lab::BOOT_VGA,
        lab::BRIDGED_NIC_1,
        lab::BRIDGED_NIC_2,
    ]
    .iter()
    .map(|device| {
        let device = address(device);
        (device, kernel.driver_of(device).map(str::to_owned))
    })
    .collect()
}
