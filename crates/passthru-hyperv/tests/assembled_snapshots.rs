//! Builds the assembled Windows snapshots in `fixtures/hyperv/snapshots/` from recorded output,
//! with passthru's own parsers, and checks that the committed files are exactly that.
//! `PASSTHRU_UPDATE_FIXTURES=1 cargo test -p passthru-hyperv --test assembled_snapshots`
//! rewrites them.

mod common;

use common::{device_from_survey, fixtures, recorded};
use passthru_hyperv::client::HyperVHost;
use passthru_hyperv::model::{
    AssignedDevice, Cmdlets, Disk, DisplayDriver, GpuAdapter, HostAssignableDevice, HostFacts,
    MemoryRange, PartitionableGpu, PnpDevice, Vm, VmMemory,
};
use passthru_hyperv::sim::{SimDda, SimDevice, SimState, Simulator};
use passthru_hyperv::snapshot::{Provenance, WindowsSnapshot};
use passthru_hyperv::text::format_list;
use passthru_hyperv::text::instance::host_form;
use passthru_hyperv::text::survey_dda;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn range(start: u64, size: u64) -> MemoryRange {
    MemoryRange {
        start: Some(start),
        end: Some(start + size - 1),
    }
}

fn snapshot(state: SimState, provenance: Provenance) -> WindowsSnapshot {
    let bits = state.host.cpu_physical_address_bits;
    let mut host = HyperVHost::new(Box::new(Simulator::new(state)), None);
    let (mut answers, warnings) = host.survey_raw().unwrap();
    // The survey script cannot know the CPU's address width; snapshots carry it separately.
    answers["host"]["cpuPhysicalAddressBits"] = serde_json::Value::Null;
    let mut snapshot = WindowsSnapshot::new(answers, warnings, bits, provenance);
    snapshot.captured = None;
    snapshot.passthru = None;
    snapshot
}

fn gpu_device(gpu: &PartitionableGpu, name: &str, vram: Option<u64>) -> SimDevice {
    SimDevice {
        pnp: PnpDevice {
            instance_id: gpu.interface_path().unwrap().instance_id.to_string(),
            name: Some(name.to_owned()),
            class: Some("Display".to_owned()),
            problem: Some(0),
            display_driver: Some(DisplayDriver {
                memory_size: vram,
                ..DisplayDriver::default()
            }),
            ..PnpDevice::default()
        },
        irqs: Vec::new(),
        memory: Vec::new(),
        dda: SimDda::Host,
        mitigation_driver: false,
    }
}

/// Windows 11 Pro laptop of seed 001 / the blog fixture, with the VM its commands configure.
fn win11_laptop() -> WindowsSnapshot {
    let gpus: Vec<PartitionableGpu> = format_list::parse(&recorded(
        "Get-VMHostPartitionableGpu_rtx4070laptop_intel_win11.txt",
    ))
    .iter()
    .filter_map(PartitionableGpu::from_list_record)
    .collect();
    let mut state = SimState::new(HostFacts {
        computer_name: Some("SINGL-LAPTOP".into()),
        caption: Some("Microsoft Windows 11 Pro".into()),
        edition_id: Some("Professional".into()),
        build: Some(22631),
        product_type: Some("WinNT".into()),
        hyperv_feature: Some("Enabled".into()),
        vmms_status: Some("Running".into()),
        hypervisor_present: Some(true),
        chassis_types: vec![10],
        battery: true,
        cmdlets: Cmdlets {
            get_vm_host_partitionable_gpu: true,
            get_vm_partitionable_gpu: true,
            set_vm_host_partitionable_gpu: true,
            add_gpu_adapter: true,
            add_gpu_adapter_instance_path: Some(true),
            add_assignable_device: true,
        },
        ..HostFacts::default()
    });
    state.devices = vec![
        gpu_device(&gpus[0], "NVIDIA GeForce RTX 4070 Laptop GPU", None),
        gpu_device(&gpus[1], "Intel(R) Iris(R) Xe Graphics", None),
    ];
    state.vms = vec![Vm {
        name: "exampleName".into(),
        id: Some("00000000-0000-4000-8000-000000000001".into()),
        state: Some("Off".into()),
        generation: Some(2),
        low_mmio: Some(GIB),
        high_mmio: Some(32 * GIB),
        guest_controlled_cache_types: Some(true),
        automatic_stop_action: Some("Save".into()),
        memory: VmMemory {
            dynamic: true,
            startup: Some(4 * GIB),
            minimum: Some(512 * MIB),
            maximum: Some(1 << 40),
        },
        gpu_adapters: vec![GpuAdapter {
            id: Some(r"Microsoft:00000000-0000-4000-8000-000000000001\00000000-0000-4000-8000-0000000000A1".into()),
            instance_path: Some(gpus[0].name.clone()),
        }],
        ..Vm::default()
    }];
    state.gpus = gpus;
    snapshot(
        state,
        Provenance {
            kind: "assembled".into(),
            note: "Assembled, not captured: no Windows host produced this file. The partitionable GPUs are the recorded Get-VMHostPartitionableGpu output of a Windows 11 Pro laptop (RTX 4070 Laptop + Intel iGPU, computer SINGL-LAPTOP); the VM 'exampleName' is what the blog's own commands configure (Add-VMGpuPartitionAdapter -InstancePath, GuestControlledCacheTypes $true, 1GB low / 32GB high MMIO). Assumed, not recorded: build 22631, the GPUs' friendly names, Hyper-V enabled and vmms running, laptop chassis type 10 with a battery, the VM's id, generation, Save stop action and dynamic memory (startup 4 GiB, minimum 512 MiB), the adapter id. Not known: DMA protection, IovSupport, the CPU's address width, the GPUs' BARs.".into(),
            sources: vec![
                "fixtures/hyperv/recorded/Get-VMHostPartitionableGpu_rtx4070laptop_intel_win11.txt".into(),
                "shared/seeds/001 (the blog post: instance path PCI\\VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1\\4&296b7397&0&0008, the configuration commands)".into(),
            ],
        },
    )
}

/// A Windows Server host carrying the devices of Microsoft's 2015 DDA blog posts, plus the
/// GTX 1080 Ti + HDMI audio pair recorded on another host.
fn server_dda() -> WindowsSnapshot {
    let mut state = SimState::new(HostFacts {
        computer_name: Some("JAKEO-T620".into()),
        caption: Some("Microsoft Windows Server 2016 Datacenter".into()),
        edition_id: Some("ServerDatacenter".into()),
        build: Some(14393),
        product_type: Some("ServerNT".into()),
        hyperv_feature: Some("Enabled".into()),
        vmms_status: Some("Running".into()),
        hypervisor_present: Some(true),
        iov_support: Some(true),
        cmdlets: Cmdlets {
            add_assignable_device: true,
            ..Cmdlets::default()
        },
        cpu_physical_address_bits: Some(46),
        ..HostFacts::default()
    });
    let survey = survey_dda::parse(&recorded("survey-dda_output_hp-server_gridk520.txt"));
    let k520_doc = survey_dda::parse(&recorded("SurveyDDA_output_gridk520_msdocs_F7.txt"));
    let ids = [
        r"PCI\VEN_103C&DEV_323B&SUBSYS_3351103C&REV_01\4&1F1A6A0B&0&0010",
        r"PCI\VEN_8086&DEV_1D2D&SUBSYS_3306103C&REV_05\3&21436425&0&D0",
        r"PCI\VEN_10DE&DEV_118A&SUBSYS_100D10DE&REV_A1\6&2C2B9C8A&0&00400008",
        r"PCI\VEN_8086&DEV_10C9&SUBSYS_A03C8086&REV_01\4&2A9F2F5C&0&0018",
        r"PCI\VEN_8086&DEV_10C9&SUBSYS_A03C8086&REV_01\4&2A9F2F5C&0&0118",
    ];
    for (index, entry) in survey.entries.iter().enumerate() {
        let mut entry = entry.clone();
        if entry.name == "NVIDIA GRID K520" {
            // The blog's excerpt has no MMIO line; Microsoft's planning doc gives the K520's.
            entry
                .findings
                .extend(k520_doc.entries[0].findings.iter().cloned());
        }
        let location = entry.location_path.clone();
        let (mut pnp, irqs, memory) = device_from_survey(
            &entry,
            ids[index],
            location.as_deref(),
            0x38_0000_0000 + (index as u64) * GIB,
        );
        pnp.class = Some(
            match index {
                0 => "SCSIAdapter",
                1 => "USB",
                2 => "Display",
                _ => "Net",
            }
            .to_owned(),
        );
        state.devices.push(SimDevice {
            pnp,
            irqs,
            memory,
            dda: SimDda::Host,
            mitigation_driver: false,
        });
    }
    // The NVMe of the dismount transcript, which then went into the VM StorageServer.
    let nvme: Vec<HostAssignableDevice> = format_list::parse(&recorded(
        "dismount_and_Get-VMHostAssignableDevice_nvme_ws2016.txt",
    ))
    .iter()
    .filter_map(HostAssignableDevice::from_list_record)
    .collect();
    let nvme_location = nvme[0].location_path.clone().unwrap();
    state.devices.push(SimDevice {
        pnp: PnpDevice {
            instance_id: host_form(nvme[0].instance_id.as_deref().unwrap()),
            name: Some("Samsung NVMe controller (144D:A820)".into()),
            class: Some("SCSIAdapter".into()),
            problem: Some(22),
            location_paths: vec![nvme_location.clone()],
            pci_device_type: Some(2),
            acs_up: Some(3),
            reserved_memory: Some(false),
            ..PnpDevice::default()
        },
        irqs: vec![common::MSI_IRQ],
        memory: vec![range(0xD000_0000, 16 * 1024)],
        dda: SimDda::Assigned {
            vm: "StorageServer".into(),
        },
        mitigation_driver: false,
    });
    // The USB 3 controller of the no-`-Force` error, at its recorded location.
    state.devices.push(SimDevice {
        pnp: PnpDevice {
            instance_id: r"PCI\VEN_8086&DEV_1E31&SUBSYS_3306103C&REV_04\3&21436425&0&A0".into(),
            name: Some("Intel(R) USB 3.0 eXtensible Host Controller".into()),
            class: Some("USB".into()),
            problem: Some(0),
            location_paths: vec!["PCIROOT(40)#PCI(0100)#PCI(0000)".into()],
            pci_device_type: Some(2),
            acs_up: Some(3),
            reserved_memory: Some(false),
            ..PnpDevice::default()
        },
        irqs: vec![common::MSI_IRQ],
        memory: vec![range(0xD010_0000, 64 * 1024)],
        dda: SimDda::Host,
        mitigation_driver: false,
    });
    // GTX 1080 Ti and its HDMI audio, as recorded by Get-PnpDevice on another host.
    let pair: Vec<PnpDevice> =
        format_list::parse(&recorded("Get-PnpDevice_LocationPaths_gtx1080ti_win11.txt"))
            .iter()
            .filter_map(PnpDevice::from_list_record)
            .collect();
    for (index, mut pnp) in pair.into_iter().enumerate() {
        pnp.problem = Some(0);
        pnp.pci_device_type = Some(2);
        pnp.acs_up = Some(3);
        pnp.reserved_memory = Some(false);
        let memory = if index == 0 {
            pnp.display_driver = Some(DisplayDriver {
                memory_size: Some(11 * GIB),
                version: Some("31.0.15.3640".into()),
                provider: Some("NVIDIA".into()),
                ..DisplayDriver::default()
            });
            vec![
                range(0xF600_0000, 16 * MIB),
                range(0xE000_0000, 256 * MIB),
                range(0xF000_0000, 32 * MIB),
            ]
        } else {
            vec![range(0xF708_0000, 16 * 1024)]
        };
        state.devices.push(SimDevice {
            pnp,
            irqs: vec![common::MSI_IRQ],
            memory,
            dda: SimDda::Host,
            mitigation_driver: false,
        });
    }
    state.vms = vec![Vm {
        name: "StorageServer".into(),
        id: Some("00000000-0000-4000-8000-000000000002".into()),
        state: Some("Off".into()),
        generation: Some(2),
        low_mmio: Some(128 * MIB),
        high_mmio: Some(512 * MIB),
        guest_controlled_cache_types: Some(false),
        automatic_stop_action: Some("TurnOff".into()),
        memory: VmMemory {
            dynamic: false,
            startup: Some(8 * GIB),
            minimum: Some(8 * GIB),
            maximum: Some(8 * GIB),
        },
        assigned_devices: vec![AssignedDevice {
            instance_id: nvme[0].instance_id.clone(),
            location_path: Some(nvme_location),
            name: Some("Samsung NVMe controller (144D:A820)".into()),
        }],
        ..Vm::default()
    }];
    state.disks = vec![Disk {
        number: Some(0),
        name: Some("HP LOGICAL VOLUME".into()),
        is_system: true,
        is_boot: true,
        path: Some(r"\\?\scsi#disk&ven_hp&prod_logical_volume#5&1a2b3c4d&0&000000#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}".into()),
        ancestors: vec![ids[0].to_owned(), r"ACPI\PNP0A08\0".into()],
    }];
    snapshot(
        state,
        Provenance {
            kind: "assembled".into(),
            note: "Assembled, not captured: no single Windows host produced this file. Recorded: the SurveyDDA verdicts and names of the HP server's devices (Smart Array P420i with BIOS-reserved memory, USB2 EHCI #2 as old-style PCI, GRID K520 at PCIROOT(0)#PCI(0300)#PCI(0000)#PCI(0800)#PCI(0000), two Gigabit ET ports without ACS), the K520's 176 MB MMIO from Microsoft's planning doc, the Dell T620's dismounted Samsung NVMe (PCIP id, PCIROOT(40)#PCI(0200)#PCI(0000)) assigned to the VM StorageServer, the USB 3 controller location of the no--Force error, and the GTX 1080 Ti + HDMI audio PnP listing of a Windows 11 AMD host. Derived from the verdicts: PCIe device types, ACS and reserved-memory properties, message-signalled interrupts. Assumed: Windows Server 2016 build 14393, ProductType ServerNT, IovSupport true, 46-bit CPU (Xeon E5 of a T620), the subsystem and instance parts of ids that were not recorded, every MMIO address, the 1080 Ti's BARs (16M+256M+32M) and driver, the USB 3 and NVMe names, the VM's settings, and a system disk behind the Smart Array.".into(),
            sources: vec![
                "fixtures/hyperv/recorded/survey-dda_output_hp-server_gridk520.txt".into(),
                "fixtures/hyperv/recorded/SurveyDDA_output_gridk520_msdocs_F7.txt".into(),
                "fixtures/hyperv/recorded/dismount_and_Get-VMHostAssignableDevice_nvme_ws2016.txt".into(),
                "fixtures/hyperv/recorded/error_Dismount-VMHostAssignableDevice_usb3_no_force.txt".into(),
                "fixtures/hyperv/recorded/Get-PnpDevice_LocationPaths_gtx1080ti_win11.txt".into(),
            ],
        },
    )
}

fn check(name: &str, built: &WindowsSnapshot) {
    let path = fixtures().join("snapshots").join(name);
    let text = built.to_text();
    if std::env::var_os("PASSTHRU_UPDATE_FIXTURES").is_some() {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, &text).unwrap();
    }
    let committed = fs_err::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from what the recorded output builds; run with PASSTHRU_UPDATE_FIXTURES=1 and review the diff",
        path.display()
    );
    let loaded = WindowsSnapshot::load(committed.as_bytes()).unwrap();
    assert!(
        loaded.answers().problems.is_empty(),
        "{:?}",
        loaded.answers().problems
    );
}

#[test]
fn win11_laptop_snapshot_is_built_from_recorded_output() {
    check("win11-laptop-gpu-pv.json", &win11_laptop());
}

#[test]
fn server_dda_snapshot_is_built_from_recorded_output() {
    check("server-dda.json", &server_dda());
}

fn check_state(name: &str, snapshot: &WindowsSnapshot) {
    let path = fixtures().join("simulator").join(name);
    let mut state = Simulator::from_answers(&snapshot.answers()).state;
    state.description = format!(
        "Simulator state seeded from fixtures/hyperv/snapshots/{} (assembled, see its provenance). The simulator rewrites this file as commands change the host: point PASSTHRU_HYPERV_SIMULATOR at a copy.",
        name.replace(".state.json", ".json")
    );
    let mut text = serde_json::to_string_pretty(&state).unwrap();
    text.push('\n');
    if std::env::var_os("PASSTHRU_UPDATE_FIXTURES").is_some() {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, &text).unwrap();
    }
    let committed = fs_err::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is out of date; run with PASSTHRU_UPDATE_FIXTURES=1",
        path.display()
    );
    Simulator::open(&path).unwrap();
}

#[test]
fn simulator_states_are_seeded_from_the_snapshots() {
    check_state("win11-laptop-gpu-pv.state.json", &win11_laptop());
    check_state("server-dda.state.json", &server_dda());
}
