//! Resolution tests on driver-store folders built in temp dirs from the real NVIDIA INF, and on
//! a synthetic AMD layout (no real AMD display INF is available in the fixtures).

use super::*;

use crate::testing::{NV_PACKAGE, nvidia_registration, nvidia_store, write};

fn target<'a>(driver: &'a ResolvedDriver, path: &str) -> &'a Promotion {
    driver
        .promotions
        .iter()
        .find(|p| p.target.as_str().eq_ignore_ascii_case(path))
        .unwrap_or_else(|| panic!("no promotion to {path}"))
}

#[test]
fn nvidia_package_resolves_to_its_own_folder() {
    let root = tempfile::tempdir().unwrap();
    let package = nvidia_store(root.path());
    let driver = resolve(&nvidia_registration(&package)).unwrap();
    assert_eq!(driver.vendor, Some(Vendor::Nvidia));
    assert_eq!(driver.install_section.as_deref(), Some("Section090"));
    assert_eq!(driver.driver_ver.unwrap().version_string(), "27.21.14.7005");
    assert_eq!(
        driver.packages.len(),
        1,
        "nvhda/nvppc are other devices' drivers"
    );
    let display = &driver.packages[0];
    assert_eq!(
        display.guest_dir.as_str(),
        format!(r"Windows\System32\HostDriverStore\FileRepository\{NV_PACKAGE}")
    );
    // 309 declared (308 SourceDisksFiles + the catalog) - 1 missing + 2 undeclared.
    assert_eq!(display.files.len(), 309 - 1 + 2);
    assert!(
        display
            .files
            .iter()
            .any(|f| f.relative == r"NvCamera\Color.fx" && f.declared)
    );
    assert!(
        display
            .files
            .iter()
            .any(|f| f.relative == r"NvTelemetry\extra.bin" && !f.declared)
    );

    let notes = driver.notes.join("\n");
    assert!(notes.contains("nvdebugdump.exe"), "{notes}");
    assert!(
        notes.contains("2 file(s) in the folder are not declared"),
        "{notes}"
    );
    assert!(notes.contains("`nvhda.inf` (named by CopyINF)"), "{notes}");
    assert!(notes.contains("three has 3 strings"), "{notes}");
    assert!(
        notes.contains("`missing.dll`, which is not in the package"),
        "{notes}"
    );
    assert!(notes.contains("dword is REG_DWORD"), "{notes}");

    // The registry wins over the INF for the same target.
    let nvcuda = target(&driver, r"Windows\System32\nvcuda.dll");
    assert!(matches!(nvcuda.origin, PromotionOrigin::Registry { .. }));
    assert_eq!(nvcuda.source_relative, "nvcuda_loader64.dll");
    let camera = target(&driver, r"Windows\SysWOW64\NvCamera32.dll");
    assert!(camera.when_newer);
    // The INF's own System32 copies (rename form) are promoted where the registry is silent.
    let nvml = target(&driver, r"Windows\System32\nvml.dll");
    assert_eq!(nvml.source_relative, "nvml_loader.dll");
    assert!(matches!(nvml.origin, PromotionOrigin::Inf { .. }));
    assert_eq!(
        target(&driver, r"Windows\SysWow64\nvcuda.dll").source_relative,
        "nvcuda_loader32.dll"
    );
    assert_eq!(
        target(&driver, r"Windows\System32\lxss\lib\libcuda.so.1.1").source_relative,
        "libcuda_loader.so"
    );
    assert_eq!(
        target(
            &driver,
            r"Windows\System32\drivers\NVIDIA Corporation\Drs\nvdrsdb.bin"
        )
        .source_relative,
        "nvdrsdb.bin"
    );
    // The INF copies nvdebugdump.exe to System32, but the package lacks it.
    assert!(notes.contains("copies `nvdebugdump.exe`"), "{notes}");

    let service = driver.kernel_service.as_ref().unwrap();
    assert_eq!(service.name, "nvlddmkm");
    // `[nv_nvlddmkm_serviceInstallRS__01]`: ServiceType 1, StartType 3, ErrorControl 0, Video.
    assert_eq!(
        service.values,
        [
            ("Type".to_owned(), RegData::Dword(1)),
            ("Start".to_owned(), RegData::Dword(3)),
            ("ErrorControl".to_owned(), RegData::Dword(0)),
            ("Group".to_owned(), RegData::Sz("Video".to_owned())),
        ]
    );
    assert_eq!(
        service.guest_image_path,
        format!(r"\SystemRoot\System32\HostDriverStore\FileRepository\{NV_PACKAGE}\nvlddmkm.sys")
    );

    let files = driver.package_sync_files();
    assert_eq!(files.len(), display.files.len());
    assert!(
        files
            .iter()
            .all(|f| f.dest.starts_with(display.guest_dir.to_relative()))
    );
    assert_eq!(driver.managed_dirs(), [display.guest_dir.to_relative()]);
}

#[test]
fn the_class_keys_inf_section_wins() {
    let root = tempfile::tempdir().unwrap();
    let package = nvidia_store(root.path());
    let mut registration = nvidia_registration(&package);
    registration.inf_section = Some("Section002".to_owned());
    registration.matching_device_id = r"pci\ven_10de&dev_ffff".to_owned();
    let driver = resolve(&registration).unwrap();
    assert_eq!(driver.install_section.as_deref(), Some("Section002"));
}

#[test]
fn refuses_folders_outside_the_driver_store() {
    let root = tempfile::tempdir().unwrap();
    let mut registration = nvidia_registration(&root.path().join("Downloads/nv_dispi.inf_amd64_1"));
    let error = resolve(&registration).unwrap_err().to_string();
    assert!(
        error.contains("not inside a driver store FileRepository"),
        "{error}"
    );
    let empty = root.path().join("FileRepository/empty.inf_amd64_1");
    fs_err::create_dir_all(&empty).unwrap();
    registration.driver_store_dir = empty.display().to_string();
    let error = resolve(&registration).unwrap_err().to_string();
    assert!(error.contains("cannot find the INF file"), "{error}");
}

// A synthetic AMD layout: the display INF names `amdocl.inf` with CopyINF; two versions of that
// package are in the store and only one has the display driver's DriverVer.
const AMD_DISPLAY: &str = r#"[Version]
Signature="$Windows NT$"
Class=Display
ClassGUID={4d36e968-e325-11ce-bfc1-08002be10318}
Provider=%ATI%
DriverVer=05/01/2024, 31.0.24033.1003
CatalogFile=u0403046.cat
[Manufacturer]
%ATI%=ATI.Mfg, NTamd64.10.0...19041
[ATI.Mfg.NTamd64.10.0...19041]
"Radeon RX 6800" = ati2mtag_Navi21, PCI\VEN_1002&DEV_73BF
[ati2mtag_Navi21]
CopyINF = amdocl.inf
CopyFiles = amd_kmd, amd_sys32
[ati2mtag_Navi21.Services]
AddService = amdkmdag, 0x00000002, amdkmdag_Service
[amdkmdag_Service]
ServiceBinary = %13%\amdkmdag.sys
[DestinationDirs]
amd_kmd = 13
amd_sys32 = 11
[amd_kmd]
amdkmdag.sys
[amd_sys32]
amdxc64.dll
[SourceDisksNames]
1 = %DiskId%
[SourceDisksFiles]
amdkmdag.sys = 1
amdxc64.dll = 1
[Strings]
ATI = "Advanced Micro Devices, Inc."
DiskId = "AMD"
"#;

fn amd_companion(version: &str) -> String {
    format!(
        "[Version]\nClass=SoftwareComponent\nDriverVer=05/01/2024,{version}\nCatalogFile=amdocl.cat\n\
         [SourceDisksNames]\n1=disk\n[SourceDisksFiles]\namdocl64.dll=1\n"
    )
}

#[test]
fn amd_companions_are_chosen_by_driver_ver() {
    let root = tempfile::tempdir().unwrap();
    let repository = root.path().join("FileRepository");
    let display = repository.join("u0403046.inf_amd64_aaaa");
    write(&display.join("u0403046.inf"), AMD_DISPLAY.as_bytes());
    write(&display.join("u0403046.cat"), b"cat");
    write(&display.join("amdkmdag.sys"), b"kmd");
    write(&display.join("amdxc64.dll"), b"xc");
    for (folder, version) in [
        ("amdocl.inf_amd64_1111", "31.0.21000.1"),
        ("amdocl.inf_amd64_2222", "31.0.24033.1003"),
    ] {
        write(
            &repository.join(folder).join("amdocl.inf"),
            amd_companion(version).as_bytes(),
        );
        write(
            &repository.join(folder).join("amdocl64.dll"),
            version.as_bytes(),
        );
        write(&repository.join(folder).join("amdocl.cat"), b"cat");
    }
    let registration = AdapterRegistration {
        instance_id: r"PCI\VEN_1002&DEV_73BF&SUBSYS_0E3A1002&REV_C1\6&1".to_owned(),
        inf_path: "oem7.inf".to_owned(),
        inf_section: None,
        matching_device_id: r"PCI\VEN_1002&DEV_73BF".to_owned(),
        driver_desc: "AMD Radeon RX 6800".to_owned(),
        provider_name: "Advanced Micro Devices, Inc.".to_owned(),
        driver_version: None,
        driver_store_dir: display.display().to_string(),
        copy_to_vm: Vec::new(),
    };
    let driver = resolve(&registration).unwrap();
    assert_eq!(driver.vendor, Some(Vendor::Amd));
    let names: Vec<&str> = driver.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["u0403046.inf_amd64_aaaa", "amdocl.inf_amd64_2222"]);
    assert_eq!(driver.packages[1].role, PackageRole::Companion);
    assert_eq!(
        target(&driver, r"Windows\System32\amdxc64.dll").source_relative,
        "amdxc64.dll"
    );
    assert_eq!(driver.kernel_service.as_ref().unwrap().name, "amdkmdag");
    assert_eq!(driver.managed_dirs().len(), 2);

    // Without a matching version the companion is left out, with a note.
    fs_err::remove_dir_all(repository.join("amdocl.inf_amd64_2222")).unwrap();
    let driver = resolve(&registration).unwrap();
    assert_eq!(driver.packages.len(), 1);
    assert!(
        driver
            .notes
            .iter()
            .any(|n| n.contains("no `amdocl.inf` package")),
        "{:?}",
        driver.notes
    );
}
