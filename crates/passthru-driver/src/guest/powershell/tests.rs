//! Snapshots of every generated script, and parsing of answers in the shapes Windows
//! PowerShell 5.1 prints.

use std::collections::VecDeque;
use std::path::Path;

use super::*;
use crate::guest::host::{BitLocker, GuestHost, VmState};

const VHD: &str = r"D:\Hyper-V\Virtual Hard Disks\Win11 GPU's disk.vhdx";

fn key() -> RegKey {
    RegKey(r"PASSTHRU_GUEST_SYSTEM\ControlSet001\Services\nvlddmkm".to_owned())
}

#[test]
fn scripts() {
    let hive = Path::new(r"E:\Windows\System32\config\SYSTEM");
    let all = [
        ("vm_state", vm_state("Win11 GPU")),
        ("stop_vm", stop_vm("Win11 GPU")),
        ("start_vm", start_vm("Win11 GPU")),
        ("vm_disks", vm_disks("Win11 GPU")),
        ("mounted_disk", mounted_disk(VHD)),
        ("mount_vhd", mount_vhd(VHD)),
        ("dismount_vhd", dismount_vhd(VHD)),
        ("volumes", volumes(3)),
        ("access_path", access_path(3, 4)),
        ("load_hive", load_hive(hive, "PASSTHRU_GUEST_SYSTEM")),
        ("unload_hive", unload_hive("PASSTHRU_GUEST_SYSTEM")),
        ("key_exists", key_exists(&key())),
        ("read_value", read_value(&key(), "ImagePath")),
        (
            "write_value_expand_sz",
            write_value(
                &key(),
                "ImagePath",
                &RegData::ExpandSz(r"\SystemRoot\System32\HostDriverStore\FileRepository\nv_dispi.inf_amd64_1\nvlddmkm.sys".to_owned()),
            ),
        ),
        ("write_value_dword", write_value(&key(), "Start", &RegData::Dword(0xFFFF_FFFF))),
        (
            "write_value_multi_sz",
            write_value(&key(), "DependOnService", &RegData::MultiSz(vec!["a".into(), "it's".into()])),
        ),
        ("delete_value", delete_value(&key(), "ImagePath")),
        ("delete_key", delete_key(&key())),
        (
            "adapter_registration",
            adapter_registration(r"PCI\VEN_10DE&DEV_2204&SUBSYS_38801458&REV_A1\4&1BA4A77C&0&0008"),
        ),
    ];
    for (name, text) in all {
        assert!(text.starts_with(PRELUDE), "{name}");
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn quoting_doubles_single_quotes() {
    assert_eq!(quote("Win11 GPU's"), "'Win11 GPU''s'");
    assert!(
        vm_state("x'; Remove-Item C:\\ -Recurse; '")
            .contains("'x''; Remove-Item C:\\ -Recurse; '''")
    );
}

/// Answers scripts from a queue and keeps what it was asked.
#[derive(Debug, Default)]
struct Canned {
    answers: VecDeque<Result<String, HostError>>,
    asked: Vec<String>,
}

impl ScriptRunner for Canned {
    fn run(&mut self, request: &GuestRequest) -> Result<String, HostError> {
        let operation = request.operation();
        self.asked.push(operation.clone());
        self.answers
            .pop_front()
            .unwrap_or_else(|| Err(HostError::new(operation, "no canned answer")))
    }
}

fn host(answers: &[&str]) -> PowerShellGuestHost<Canned> {
    PowerShellGuestHost::new(Canned {
        answers: answers.iter().map(|a| Ok((*a).to_owned())).collect(),
        asked: Vec::new(),
    })
}

#[test]
fn parses_answers() {
    let mut ps = host(&[
        r#"{"State":"Running"}"#,
        r#"[{"Path":"D:\\VMs\\os.vhdx","DiskNumber":null,"Location":"SCSI 0:0"},{"Path":"Disk 2 931.51 GB Bus 0 Lun 0 Target 0","DiskNumber":2,"Location":"SCSI 0:1"}]"#,
        r#"{"Attached":false,"DiskNumber":null}"#,
        r#"{"DiskNumber":5}"#,
        r#"[{"Partition":1,"Size":104857600,"FileSystem":"FAT32","AccessPath":null,"BitLocker":"unknown"},{"Partition":3,"Size":63000000000,"FileSystem":"","AccessPath":null,"BitLocker":"locked"}]"#,
        r#"{"AccessPath":"F:\\"}"#,
    ]);
    assert_eq!(ps.vm_state("w").unwrap(), VmState::Running);
    let disks = ps.vm_disks("w").unwrap();
    assert_eq!(disks[0].path.as_deref(), Some(r"D:\VMs\os.vhdx"));
    assert_eq!(disks[1].path, None, "a pass-through disk has no file");
    assert_eq!(ps.mounted_disk("x").unwrap(), None);
    assert_eq!(ps.mount_vhd("x").unwrap(), 5);
    let volumes = ps.volumes(5).unwrap();
    assert_eq!(volumes[1].bitlocker, BitLocker::Locked);
    assert_eq!(volumes[0].file_system, "FAT32");
    assert_eq!(ps.access_path(5, 3).unwrap(), PathBuf::from(r"F:\"));
}

#[test]
fn parses_one_element_lists_as_powershell_prints_them() {
    // ConvertTo-Json -InputObject @(x) keeps the brackets, which is why the scripts use it.
    let mut ps = host(&[r#"[{"Path":"D:\\os.vhdx","DiskNumber":null,"Location":"IDE 0:0"}]"#]);
    assert_eq!(ps.vm_disks("w").unwrap().len(), 1);
}

#[test]
fn parses_registry_values_of_every_kind() {
    let mut ps = host(&[
        r#"{"Kind":"ExpandString","Data":"\\SystemRoot\\System32\\x.sys"}"#,
        r#"{"Kind":"DWord","Data":-1}"#,
        r#"{"Kind":"MultiString","Data":"only one"}"#,
        r#"{"Kind":"MultiString","Data":["a","b"]}"#,
        r#"{"Kind":"Binary","Data":[1,2,255]}"#,
        r#"{"Kind":"QWord","Data":8589934592}"#,
        r#"{"Kind":null,"Data":null}"#,
        r#"{"Kind":"DWord","Data":"oops"}"#,
        r#"{"Kind":"None","Data":null}"#,
        "WARNING: something\n",
    ]);
    let read = |ps: &mut PowerShellGuestHost<Canned>| ps.read_value(&key(), "v");
    assert_eq!(
        read(&mut ps).unwrap(),
        Some(RegData::ExpandSz(r"\SystemRoot\System32\x.sys".into()))
    );
    assert_eq!(read(&mut ps).unwrap(), Some(RegData::Dword(0xFFFF_FFFF)));
    assert_eq!(
        read(&mut ps).unwrap(),
        Some(RegData::MultiSz(vec!["only one".into()]))
    );
    assert_eq!(
        read(&mut ps).unwrap(),
        Some(RegData::MultiSz(vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        read(&mut ps).unwrap(),
        Some(RegData::Binary(vec![1, 2, 255]))
    );
    assert_eq!(read(&mut ps).unwrap(), Some(RegData::Qword(1 << 33)));
    assert_eq!(read(&mut ps).unwrap(), None);
    let error = read(&mut ps).unwrap_err();
    assert!(error.message.contains("unexpected DWord data"), "{error}");
    let error = read(&mut ps).unwrap_err();
    assert!(error.message.contains("kind None"), "{error}");
    let error = read(&mut ps).unwrap_err();
    assert!(error.message.contains("cannot read"), "{error}");
    assert!(
        error.operation.contains(r"HKLM\PASSTHRU_GUEST_SYSTEM"),
        "{error}"
    );
}

#[test]
fn runner_errors_pass_through() {
    let mut ps = PowerShellGuestHost::new(Canned {
        answers: [Err(HostError::new(
            "Mount-VHD",
            "The process cannot access the file because it is being used by another process.",
        ))]
        .into(),
        asked: Vec::new(),
    });
    let error = ps.mount_vhd(VHD).unwrap_err();
    assert!(error.to_string().contains("being used by another process"));
    assert_eq!(ps.into_runner().asked, [format!("Mount-VHD '{VHD}'")]);
}

#[test]
fn parses_the_adapter_registration() {
    // The shape ConvertTo-Json prints for a class key with one CopyToVm value (an object, not
    // a one-element array) and a DriverStoreDir from Get-WindowsDriver.
    let output = r#"{"InstanceId":"PCI\\VEN_10DE&DEV_2204\\4&1","InfPath":"oem42.inf","InfSection":"Section090","MatchingDeviceId":"pci\\ven_10de&dev_2204","DriverDesc":"NVIDIA GeForce RTX 3090","ProviderName":"NVIDIA","DriverVersion":"27.21.14.7005","DriverStoreDir":"C:\\Windows\\System32\\DriverStore\\FileRepository\\nv_dispi.inf_amd64_8f1a","CopyToVm":{"Key":"CopyToVmOverwrite","Name":"nvcuda","Kind":"MultiString","Data":["nvcuda_loader64.dll","nvcuda.dll"]}}"#;
    let registration = parse_adapter_registration(output).unwrap();
    assert_eq!(registration.inf_section.as_deref(), Some("Section090"));
    assert_eq!(registration.copy_to_vm.len(), 1);
    assert_eq!(
        registration.copy_to_vm[0].data,
        RegData::MultiSz(vec!["nvcuda_loader64.dll".into(), "nvcuda.dll".into()])
    );
    assert!(
        registration
            .driver_store_dir
            .ends_with("nv_dispi.inf_amd64_8f1a")
    );

    let many = output.replace(
        r#""CopyToVm":{"Key""#,
        r#""CopyToVm":[{"Key":"CopyToVmWhenNewerWow64","Name":"x","Kind":"String","Data":"x.dll"},{"Key""#,
    ).replace(r#""nvcuda.dll"]}}"#, r#""nvcuda.dll"]}]}"#);
    assert_eq!(
        parse_adapter_registration(&many).unwrap().copy_to_vm.len(),
        2
    );

    let missing = output.replace(
        r#""DriverStoreDir":"C:"#,
        r#""DriverStoreDir":null,"Old":"C:"#,
    );
    let error = parse_adapter_registration(&missing).unwrap_err();
    assert!(
        error.to_string().contains("no driver store folder"),
        "{error}"
    );
    assert!(parse_adapter_registration("garbage").is_err());
}

#[test]
fn stop_vm_forces_the_shutdown_of_a_locked_guest() {
    // Without -Force, Hyper-V refuses a guest whose screen is locked (32781), and a
    // non-interactive PowerShell cannot answer the prompt either.
    assert!(stop_vm("Win11 GPU").contains("Stop-VM -Name 'Win11 GPU' -Force"));
}

#[test]
fn requests_travel_as_data_and_carry_their_scripts() {
    let requests = [
        GuestRequest::MountVhd { vhd: VHD.into() },
        GuestRequest::LoadHive {
            file: PathBuf::from(r"E:\Windows\System32\config\SYSTEM"),
            mount: "PASSTHRU_GUEST_SYSTEM".into(),
        },
        GuestRequest::WriteValue {
            key: key(),
            name: "Start".into(),
            data: RegData::Dword(3),
        },
        GuestRequest::AccessPath {
            disk: 3,
            partition: 4,
        },
    ];
    for request in requests {
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(
            serde_json::from_value::<GuestRequest>(value).unwrap(),
            request
        );
        assert!(request.script().starts_with(PRELUDE));
    }
    assert_eq!(
        GuestRequest::MountVhd { vhd: VHD.into() }.script(),
        mount_vhd(VHD)
    );
    assert_eq!(
        GuestRequest::UnloadHive {
            mount: "PASSTHRU_GUEST_SYSTEM".into()
        }
        .operation(),
        r"reg unload HKLM\PASSTHRU_GUEST_SYSTEM"
    );
    assert_eq!(
        serde_json::to_value(GuestRequest::Volumes { disk: 2 }).unwrap(),
        serde_json::json!({"request": "volumes", "disk": 2})
    );
}
