//! Tier 1: every parser of host output, on real recorded output (`fixtures/hyperv/recorded`).

mod common;

use common::{device_from_survey, recorded};
use passthru_hyperv::error::{ErrorKind, ErrorRecord, classify};
use passthru_hyperv::model::{GpuAdapter, HostAssignableDevice, PartitionableGpu, PnpDevice};
use passthru_hyperv::survey::resources::DeviceResources;
use passthru_hyperv::survey::verdict::judge;
use passthru_hyperv::text::format_list;
use passthru_hyperv::text::instance::{GpuInterfacePath, InstanceId};
use passthru_hyperv::text::location::{LocationPath, pick_pci_path};
use passthru_hyperv::text::survey_dda::{self, Finding};

fn gpus(file: &str) -> Vec<PartitionableGpu> {
    format_list::parse(&recorded(file))
        .iter()
        .filter_map(PartitionableGpu::from_list_record)
        .collect()
}

#[test]
fn f1_wrapped_name_is_joined() {
    let gpus = gpus("Get-VMHostPartitionableGpu_rtx3060_exhyperv67_F1.txt");
    assert_eq!(gpus.len(), 1);
    let gpu = &gpus[0];
    assert_eq!(
        gpu.name,
        r"\\?\PCI#VEN_10DE&DEV_2504&SUBSYS_40741458&REV_A1#4&23b96b75&0&0008#{064092b3-625e-43bf-9eb5-dc845897dd59}\GPUPARAV"
    );
    assert!(gpu.is_paravirtual());
    assert!(gpu.reports_placeholders());
    assert_eq!(gpu.valid_partition_counts, vec![32]);
    assert_eq!(gpu.encode.total, Some(u64::MAX));
    assert_eq!(gpu.supports_incoming_live_migration, Some(false));
    let path = gpu.interface_path().unwrap();
    assert_eq!(
        path.instance_id.vendor_device().as_deref(),
        Some("10de:2504")
    );
}

#[test]
fn laptop_listing_and_the_seeds_collapsed_copy_read_the_same() {
    let padded = gpus("Get-VMHostPartitionableGpu_rtx4070laptop_intel_win11.txt");
    let collapsed = gpus("Get-VMHostPartitionableGpu_seed001_collapsed.txt");
    assert_eq!(padded.len(), 2);
    assert_eq!(padded, collapsed);
    let ids: Vec<String> = padded
        .iter()
        .map(|gpu| {
            gpu.interface_path()
                .unwrap()
                .instance_id
                .vendor_device()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, vec!["10de:2860", "8086:a7a0"]);
}

#[test]
fn f2_sr_iov_gpus_with_truncated_counts() {
    let text = recorded("Get-VMHostPartitionableGpu_nvidia-a2_ws2025_msdocs_F2.txt");
    let records = format_list::parse(&text);
    assert_eq!(records.len(), 2);
    assert!(records[0].list("ValidPartitionCounts").unwrap().truncated);
    let gpus = gpus("Get-VMHostPartitionableGpu_nvidia-a2_ws2025_msdocs_F2.txt");
    assert!(gpus.iter().all(|gpu| !gpu.is_paravirtual()));
    assert_eq!(gpus[0].valid_partition_counts, vec![16, 8, 4, 2]);
    assert_eq!(gpus[1].partition_count, Some(4));
}

#[test]
fn f3_adapter_instance_path() {
    let records = format_list::parse(&recorded("Get-VMGpuPartitionAdapter_ws2025_msdocs_F3.txt"));
    let adapter = GpuAdapter::from_list_record(&records[0]).unwrap();
    assert!(GpuInterfacePath::parse(adapter.instance_path.as_deref().unwrap()).is_ok());
    assert_eq!(records[0].get("PartitionVfLuid"), Some("10-973909323"));
}

#[test]
fn microsoft_driver_doc_sample_with_indent_wrap_commas_and_stray_blank_line() {
    let text = recorded("Get-VMPartitionableGpu_and_Get-VMGpuPartitionAdapter_msdocs_example.txt");
    let records = format_list::parse(&text);
    assert_eq!(records.len(), 2, "{records:#?}");
    let gpu = PartitionableGpu::from_list_record(&records[0]).unwrap();
    assert_eq!(
        gpu.name,
        r"\\?\PCI#VEN_10DE&DEV_1C02&SUBSYS_11C210DE&REV_A1#4&275d7527&0&0010#{064092b3-625e-43bf-9eb5-dc845897dd59}\GPUPARAV"
    );
    assert_eq!(gpu.vram.total, Some(1_000_000_000));
    assert_eq!(gpu.encode.max_partition, Some(u64::MAX));
    // After the stray blank line, still the same record.
    assert_eq!(gpu.encode.optimal_partition, Some(u64::MAX));
    assert_eq!(gpu.compute.optimal_partition, Some(1_000_000_000));
    let adapter = GpuAdapter::from_list_record(&records[1]).unwrap();
    assert_eq!(
        adapter.id.as_deref(),
        Some(
            r"Microsoft:9ABB95E2-D12D-43C3-B840-6F4A9CFB217B\929890BC-BB33-4687-BC1A-F72A4F1B3B3F"
        )
    );
    assert_eq!(adapter.instance_path, None);
    assert_eq!(records[1].get("VMName"), Some("TEST"));
    assert_eq!(records[1].non_empty("MinPartitionVRAM"), None);
}

#[test]
fn pnp_devices_with_joined_location_paths() {
    let records = format_list::parse(&recorded("Get-PnpDevice_LocationPaths_gtx1080ti_win11.txt"));
    let devices: Vec<PnpDevice> = records
        .iter()
        .filter_map(PnpDevice::from_list_record)
        .collect();
    assert_eq!(devices.len(), 2);
    assert_eq!(
        devices[0].pci_location(),
        Some("PCIROOT(0)#PCI(0301)#PCI(0000)")
    );
    assert_eq!(devices[0].location_paths.len(), 2);
    let gpu = LocationPath::parse(devices[0].pci_location().unwrap()).unwrap();
    let audio = LocationPath::parse(devices[1].pci_location().unwrap()).unwrap();
    assert!(gpu.same_slot(&audio));
    let id = InstanceId::parse(&devices[1].instance_id).unwrap();
    assert_eq!(id.vendor_device().as_deref(), Some("10de:10ef"));
    assert_eq!(devices[1].class.as_deref(), Some("MEDIA"));
}

#[test]
fn dismounted_nvme_listing() {
    let text = recorded("dismount_and_Get-VMHostAssignableDevice_nvme_ws2016.txt");
    let devices: Vec<HostAssignableDevice> = format_list::parse(&text)
        .iter()
        .filter_map(HostAssignableDevice::from_list_record)
        .collect();
    assert_eq!(devices.len(), 1);
    let id = InstanceId::parse(devices[0].instance_id.as_deref().unwrap()).unwrap();
    assert!(id.is_dismounted());
    assert_eq!(
        devices[0].location_path.as_deref(),
        Some("PCIROOT(40)#PCI(0200)#PCI(0000)")
    );
    assert_eq!(
        pick_pci_path(&["PCIROOT(40)#PCI(0200)#PCI(0000)"]),
        Some("PCIROOT(40)#PCI(0200)#PCI(0000)")
    );
}

#[test]
fn video_controller_listing_shows_the_32_bit_adapter_ram_cap() {
    let records = format_list::parse(&recorded(
        "Get-WmiObject_Win32_VideoController_rx580_ws2022.txt",
    ));
    let controller = records
        .iter()
        .find(|record| record.get("__CLASS") == Some("Win32_VideoController"))
        .unwrap();
    assert_eq!(controller.number("AdapterRAM"), Some(4_293_918_720));
    assert!(controller.number("AdapterRAM").unwrap() < 1 << 32);
    assert_eq!(controller.get("DriverVersion"), Some("31.0.12044.3"));
    let drivers = controller.get("InstalledDisplayDrivers").unwrap();
    assert!(
        drivers.contains(r"u0385558.inf_amd64_a02c8b890e9f278a\B385477\aticfx64.dll"),
        "{drivers}"
    );
    assert!(drivers.ends_with("amdxc64.dll"));
    let id = InstanceId::parse(controller.get("PNPDeviceID").unwrap()).unwrap();
    assert_eq!(id.vendor_device().as_deref(), Some("1002:6fdf"));
}

#[test]
fn surveydda_outputs_and_verdict_parity() {
    for (file, expected) in [
        (
            "survey-dda_output_hp-server_gridk520.txt",
            vec![false, false, true, false, false],
        ),
        (
            "SurveyDDA_output_consumer-z390_haxm149_F7.txt",
            vec![false, false, true, false],
        ),
        ("SurveyDDA_output_gridk520_msdocs_F7.txt", vec![true]),
    ] {
        let report = survey_dda::parse(&recorded(file));
        let verdicts: Vec<bool> = report
            .entries
            .iter()
            .map(|entry| entry.assignable())
            .collect();
        assert_eq!(verdicts, expected, "{file}: {report:#?}");
        for (index, entry) in report.entries.iter().enumerate() {
            // The same properties through passthru's verdict yield SurveyDDA's findings again.
            let (device, irqs, memory) = device_from_survey(
                entry,
                &format!(r"PCI\VEN_1234&DEV_{index:04}\1"),
                None,
                0x38_0000_0000,
            );
            let verdict = judge(&device, Some(&DeviceResources { irqs, memory }), false);
            let ours = survey_dda::parse(&format!(
                "{}\n{}",
                entry.name,
                verdict.survey_dda.join("\n")
            ));
            let our_findings = &ours.entries[0].findings;
            for finding in &entry.findings {
                assert!(
                    our_findings.contains(finding),
                    "{file}: {} lost {finding:?}: {our_findings:?}",
                    entry.name
                );
            }
            assert_eq!(
                entry.assignable(),
                ours.entries[0].assignable(),
                "{file}: {}",
                entry.name
            );
        }
    }
    let k520 = survey_dda::parse(&recorded("survey-dda_output_hp-server_gridk520.txt"));
    assert_eq!(
        k520.entries[2].location_path.as_deref(),
        Some("PCIROOT(0)#PCI(0300)#PCI(0000)#PCI(0800)#PCI(0000)")
    );
    assert!(k520.entries[0].findings.contains(&Finding::BiosOwnedMemory));
}

fn fenced_block(text: &str) -> String {
    text.split("```")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn recorded_errors_are_classified() {
    let start_failure = fenced_block(&recorded("error_DDA_0xC035001E_and_guest_nvidia_probe.txt"));
    let record = ErrorRecord {
        command: "Start-VM".into(),
        message: start_failure,
        ..ErrorRecord::default()
    };
    assert_eq!(
        classify(&record).kind,
        ErrorKind::HypervisorFeatureUnavailable
    );

    let dismount = recorded("error_Dismount-VMHostAssignableDevice_usb3_no_force.txt");
    let message: String = dismount
        .lines()
        .skip_while(|line| !line.starts_with("Dismount-VMHostAssignableDevice :"))
        .map(|line| line.trim_start_matches("Dismount-VMHostAssignableDevice : "))
        .collect::<Vec<_>>()
        .join("\n");
    let record = ErrorRecord {
        message,
        ..ErrorRecord::default()
    };
    assert_eq!(classify(&record).kind, ErrorKind::NoMitigationDriver);
}

#[test]
fn seed_000_gpu_path_parses_even_with_its_redacted_guid() {
    let seed = "$gpupath=\"\\\\?\\PCI#VEN_10DE&DEV_2782&SUBSYS_88DC1043&REV_A1#4&1babdf5b&0&0009#{064092b3-625e-43bf-9eb5-dc845897xx59}\\GPUPARAV\"";
    let path = seed.split('"').nth(1).unwrap();
    let parsed = GpuInterfacePath::parse(path).unwrap();
    assert!(parsed.paravirtual);
    assert_eq!(
        parsed.instance_id.vendor_device().as_deref(),
        Some("10de:2782")
    );
}
