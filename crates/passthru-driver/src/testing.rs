//! Test data for this crate's tests, the CLI's end-to-end tests and the example that builds a
//! simulated lab (feature `testing`): a driver store holding the real NVIDIA 470.05 package,
//! and ([`lab`]) a simulated Hyper-V host whose VM has several disks.

pub mod lab;

use std::path::{Path, PathBuf};

use crate::inf::Inf;
use crate::package::{ARCH, AdapterRegistration, CopyToVmKey, CopyToVmValue, RegData};

/// NVIDIA's 470.05 display INF (fixtures/inf).
pub const NV_DISPI: &[u8] = include_bytes!("../../../fixtures/inf/nvidia_nv_dispi_470.05.inf");
/// The driver-store folder name the tests give that package.
pub const NV_PACKAGE: &str = "nv_dispi.inf_amd64_8f1a2b3c4d5e6f70";

/// Writes a file, creating its directory (panics on failure: test data).
pub fn write(path: &Path, content: &[u8]) {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, content).unwrap();
}

/// A FileRepository holding the NVIDIA package as the INF declares it, minus one declared file
/// and plus one file the INF does not declare, next to unrelated packages.
pub fn nvidia_store(root: &Path) -> PathBuf {
    let repository = root.join("Windows/System32/DriverStore/FileRepository");
    let package = repository.join(NV_PACKAGE);
    let inf = Inf::parse(NV_DISPI).unwrap();
    let (files, _) = inf.package_files(ARCH, "nv_dispi.inf");
    for file in files {
        if file.relative_path == "nvdebugdump.exe" {
            continue;
        }
        let path: PathBuf = file.relative_path.split('\\').collect();
        write(&package.join(path), file.relative_path.as_bytes());
    }
    write(&package.join("nv_dispi.inf"), NV_DISPI);
    write(&package.join("nvpcf.inf"), b"[Version]\n");
    write(&package.join("NvTelemetry/extra.bin"), b"undeclared");
    write(
        &repository.join("nvhda.inf_amd64_1111/nvhda.inf"),
        b"[Version]\n",
    );
    write(
        &repository.join("netkvm.inf_amd64_2222/netkvm.inf"),
        b"[Version]\n",
    );
    package
}

/// The class key of an RTX 3090 using the package in `package`, with `CopyToVm*` values of
/// every shape (including a file the package lacks and a value of the wrong type).
pub fn nvidia_registration(package: &Path) -> AdapterRegistration {
    AdapterRegistration {
        instance_id: r"PCI\VEN_10DE&DEV_2204&SUBSYS_38801458&REV_A1\4&1BA4A77C&0&0008".to_owned(),
        inf_path: "oem42.inf".to_owned(),
        inf_section: None,
        matching_device_id: r"pci\ven_10de&dev_2204".to_owned(),
        driver_desc: "NVIDIA GeForce RTX 3090".to_owned(),
        provider_name: "NVIDIA".to_owned(),
        driver_version: Some("27.21.14.7005".to_owned()),
        driver_store_dir: package.display().to_string(),
        copy_to_vm: vec![
            CopyToVmValue {
                key: CopyToVmKey::CopyToVmOverwrite,
                name: "nvcuda".to_owned(),
                data: RegData::MultiSz(vec![
                    "nvcuda_loader64.dll".to_owned(),
                    "nvcuda.dll".to_owned(),
                ]),
            },
            CopyToVmValue {
                key: CopyToVmKey::CopyToVmWhenNewerWow64,
                name: "camera".to_owned(),
                data: RegData::Sz(r"NvCamera\NvCamera32.dll".to_owned()),
            },
            CopyToVmValue {
                key: CopyToVmKey::CopyToVmOverwrite,
                name: "three".to_owned(),
                data: RegData::MultiSz(vec!["a".into(), "b".into(), "c".into()]),
            },
            CopyToVmValue {
                key: CopyToVmKey::CopyToVmWhenNewer,
                name: "gone".to_owned(),
                data: RegData::Sz("missing.dll".to_owned()),
            },
            CopyToVmValue {
                key: CopyToVmKey::CopyToVmOverwrite,
                name: "dword".to_owned(),
                data: RegData::Dword(1),
            },
        ],
    }
}
