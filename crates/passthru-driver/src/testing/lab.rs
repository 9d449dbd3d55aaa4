//! A simulated Hyper-V host for `driver sync`, written into a directory: the simulator state
//! file, the host's driver store, and the VM's disks as directories.
//!
//! The host is the Windows 11 host of `fixtures/hyperv/simulator/win11-laptop-gpu-pv.state.json`
//! with its NVIDIA GPU made an RTX 3090 running NVIDIA 470.05 (27.21.14.7005), the driver whose
//! INF is in `fixtures/inf` (the package's files are stand-ins named after themselves). Its VM
//! `exampleName` (off, with a partition of that GPU) has three disks: a data disk, the system
//! disk (EFI, MSR and Windows partitions), and a BitLocker-locked backup disk.
//!
//! ```text
//! DIR/state.json                         PASSTHRU_HYPERV_SIMULATOR=DIR/state.json
//! DIR/host/Windows/System32/DriverStore/FileRepository/nv_dispi.inf_amd64_.../
//! DIR/disks/data/p1/                     data.vhdx, partition 1
//! DIR/disks/system/p1, p2, p3/           exampleName.vhdx: EFI, MSR, Windows
//! DIR/disks/backup/p1/                   backup.vhdx, BitLocker-locked
//! ```

use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{NV_DISPI, NV_PACKAGE, nvidia_registration, nvidia_store, write};
use crate::guest::host::BitLocker;
use crate::guest::simulated::hive::HiveKeys;
use crate::guest::simulated::state::{EXTENSION, GuestDisks, SimPartition, SimVhd, SimVmDisk};
use crate::package::{AdapterRegistration, RegData};

/// The Hyper-V state the lab starts from.
const BASE_STATE: &str =
    include_str!("../../../../fixtures/hyperv/simulator/win11-laptop-gpu-pv.state.json");

/// A lab directory.
#[derive(Debug, Clone)]
pub struct SimLab {
    dir: PathBuf,
}

/// What [`SimLab::update_driver`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverUpdate {
    /// The new package folder's name.
    pub package: String,
    /// Files whose content changed (the INF among them), package-relative.
    pub changed: Vec<String>,
    /// A file the new version no longer has.
    pub removed: String,
    /// A file only the new version has.
    pub added: String,
}

impl SimLab {
    /// The VM.
    pub const VM: &'static str = "exampleName";
    /// Its system disk (second of three).
    pub const SYSTEM_VHD: &'static str =
        r"D:\Hyper-V\exampleName\Virtual Hard Disks\exampleName.vhdx";
    /// Its data disk (first).
    pub const DATA_VHD: &'static str = r"D:\Hyper-V\exampleName\Virtual Hard Disks\data.vhdx";
    /// Its BitLocker-locked backup disk (third).
    pub const LOCKED_VHD: &'static str = r"D:\Hyper-V\exampleName\Virtual Hard Disks\backup.vhdx";
    /// The NVIDIA GPU's PnP instance id.
    pub const GPU_INSTANCE_ID: &'static str =
        r"PCI\VEN_10DE&DEV_2204&SUBSYS_38801458&REV_A1\4&1ba4a77c&0&0008";
    /// The driver version the host runs at first.
    pub const VERSION: &'static str = "27.21.14.7005";
    /// The package folder and version after [`Self::update_driver`].
    pub const UPDATED_PACKAGE: &'static str = "nv_dispi.inf_amd64_0c9e2d7a5b4f3e21";
    /// The driver version after [`Self::update_driver`].
    pub const UPDATED_VERSION: &'static str = "27.21.14.7099";

    /// Writes a fresh lab into `dir` (which should be empty).
    pub fn build(dir: &Path) -> io::Result<Self> {
        let lab = Self {
            dir: dir.to_path_buf(),
        };
        let package = nvidia_store(&dir.join("host"));
        let windows = lab.guest_root();
        write(
            &windows.join("Windows/SysWOW64/kernel32.dll"),
            b"the guest's own",
        );
        write(
            &windows.join("Windows/System32/nvml.dll"),
            b"a copy a user put here by hand",
        );
        write(
            &windows.join("Users/Public/Desktop/desktop.ini"),
            b"[.ShellClassInfo]",
        );
        let mut hive = HiveKeys::default();
        for (name, number) in [
            ("Current", 1),
            ("Default", 1),
            ("Failed", 0),
            ("LastKnownGood", 1),
        ] {
            hive.set("Select", name, RegData::Dword(number));
        }
        hive.set(
            r"ControlSet001\Services\BasicDisplay",
            "Start",
            RegData::Dword(1),
        );
        hive.set(
            r"ControlSet001\Control\Class\{4d36e968-e325-11ce-bfc1-08002be10318}",
            "Class",
            RegData::Sz("Display".to_owned()),
        );
        let hive_file = windows.join("Windows/System32/config/SYSTEM");
        fs_err::create_dir_all(hive_file.parent().unwrap_or(dir))?;
        hive.write(&hive_file)?;
        write(
            &dir.join("disks/system/p1/EFI/Microsoft/Boot/bootmgfw.efi"),
            b"MZ",
        );
        fs_err::create_dir_all(dir.join("disks/system/p2"))?;
        write(&dir.join("disks/data/p1/Games/readme.txt"), b"data");
        write(&dir.join("disks/backup/p1/unreadable.bin"), b"-FVE-FS-");

        let registration = nvidia_registration(&package);
        let relative = |path: &Path| portable(path.strip_prefix(dir).unwrap_or(path));
        let disk = |path: &str, location: &str| SimVmDisk {
            path: path.to_owned(),
            disk_number: None,
            location: location.to_owned(),
        };
        let partition = |number: u32, size: u64, fs: &str, root: &str| SimPartition {
            number,
            size,
            file_system: fs.to_owned(),
            bit_locker: BitLocker::Off,
            root: PathBuf::from(root),
        };
        let mut locked = partition(1, 256 << 30, "NTFS", "disks/backup/p1");
        locked.bit_locker = BitLocker::Locked;
        let disks = GuestDisks {
            adapters: vec![AdapterRegistration {
                instance_id: Self::GPU_INSTANCE_ID.to_owned(),
                inf_section: Some("Section090".to_owned()),
                driver_store_dir: relative(&package),
                copy_to_vm: registration
                    .copy_to_vm
                    .iter()
                    .filter(|value| value.name == "nvcuda" || value.name == "camera")
                    .cloned()
                    .collect(),
                ..registration
            }],
            vm_disks: [(
                Self::VM.to_owned(),
                vec![
                    disk(Self::DATA_VHD, "SCSI 0:0"),
                    disk(Self::SYSTEM_VHD, "SCSI 0:1"),
                    disk(Self::LOCKED_VHD, "SCSI 0:2"),
                ],
            )]
            .into(),
            vhds: [
                (
                    Self::DATA_VHD.to_owned(),
                    SimVhd {
                        partitions: vec![partition(1, 64 << 30, "NTFS", "disks/data/p1")],
                    },
                ),
                (
                    Self::SYSTEM_VHD.to_owned(),
                    SimVhd {
                        partitions: vec![
                            partition(1, 100 << 20, "FAT32", "disks/system/p1"),
                            partition(2, 16 << 20, "", "disks/system/p2"),
                            partition(3, 127 << 30, "NTFS", "disks/system/p3"),
                        ],
                    },
                ),
                (
                    Self::LOCKED_VHD.to_owned(),
                    SimVhd {
                        partitions: vec![locked],
                    },
                ),
            ]
            .into(),
            next_disk: 2,
            ..GuestDisks::default()
        };

        let text = BASE_STATE
            .replace(
                "VEN_10DE&DEV_2860&SUBSYS_252D1043&REV_A1",
                "VEN_10DE&DEV_2204&SUBSYS_38801458&REV_A1",
            )
            .replace("4&296b7397&0&0008", "4&1ba4a77c&0&0008")
            .replace(
                "NVIDIA GeForce RTX 4070 Laptop GPU",
                "NVIDIA GeForce RTX 3090",
            );
        let mut state: Value = serde_json::from_str(&text).map_err(io::Error::other)?;
        state["description"] = Value::from(
            "passthru driver-sync lab: the Windows 11 host of \
             fixtures/hyperv/simulator/win11-laptop-gpu-pv.state.json with its NVIDIA GPU made \
             an RTX 3090 running NVIDIA 470.05 (the INF in fixtures/inf; the package's files are \
             stand-ins). VM exampleName (prepared as `passthru gpu-p add` leaves it) has a data disk, the system disk and a BitLocker-locked \
             disk; their partitions are the directories under disks/. The simulator rewrites \
             this file as commands change the host.",
        );
        // As `passthru gpu-p add` leaves it: minimum memory = startup, no saving at host
        // shutdown (otherwise Hyper-V refuses to start a VM with a GPU partition).
        if let Some(vm) = state["vms"]
            .as_array_mut()
            .and_then(|vms| vms.iter_mut().find(|vm| vm["name"] == Self::VM))
        {
            vm["memory"]["minimum"] = vm["memory"]["startup"].clone();
            vm["automaticStopAction"] = Value::from("ShutDown");
        }
        state["extensions"][EXTENSION] = serde_json::to_value(&disks).map_err(io::Error::other)?;
        lab.write_state(&state)?;
        Ok(lab)
    }

    /// A lab that [`Self::build`] wrote earlier.
    pub fn open(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The lab directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file (`PASSTHRU_HYPERV_SIMULATOR`).
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The directory standing for the guest's Windows volume (`C:` inside the VM).
    pub fn guest_root(&self) -> PathBuf {
        self.dir.join("disks/system/p3")
    }

    /// The host's FileRepository.
    pub fn host_repository(&self) -> PathBuf {
        self.dir
            .join("host/Windows/System32/DriverStore/FileRepository")
    }

    /// A connection to the lab's simulated host, as each passthru command makes one.
    pub fn host(&self) -> crate::guest::hyperv::HyperVGuestHost {
        let state = self.state_file();
        let simulator = passthru_hyperv::sim::Simulator::open(&state)
            .expect("the lab's state file")
            .with_extension(Box::new(
                crate::guest::simulated::GuestDiskSimulator::for_state_file(&state),
            ));
        crate::guest::hyperv::HyperVGuestHost::new(passthru_hyperv::client::HyperVHost::new(
            Box::new(simulator),
            None,
        ))
    }

    /// The state as JSON.
    pub fn state(&self) -> io::Result<Value> {
        serde_json::from_slice(&fs_err::read(self.state_file())?).map_err(io::Error::other)
    }

    /// What the simulator says about guest disks now.
    pub fn guest_disks(&self) -> io::Result<GuestDisks> {
        serde_json::from_value(self.state()?["extensions"][EXTENSION].clone())
            .map_err(io::Error::other)
    }

    fn write_state(&self, state: &Value) -> io::Result<()> {
        let mut text = serde_json::to_string_pretty(state).map_err(io::Error::other)?;
        text.push('\n');
        fs_err::write(self.state_file(), text)
    }

    /// Changes the state file.
    pub fn edit_state(&self, change: impl FnOnce(&mut Value)) -> io::Result<()> {
        let mut state = self.state()?;
        change(&mut state);
        self.write_state(&state)
    }

    /// Changes the guest-disk part of the state.
    pub fn edit_disks(&self, change: impl FnOnce(&mut GuestDisks)) -> io::Result<()> {
        let mut disks = self.guest_disks()?;
        change(&mut disks);
        let value = serde_json::to_value(&disks).map_err(io::Error::other)?;
        self.edit_state(|state| state["extensions"][EXTENSION] = value)
    }

    /// A host driver update as Windows does one: the new version is a new driver-store folder
    /// (its INF's `DriverVer` changed, so its name did), the class key points at it, and the
    /// old folder is gone. About one file in ten changed; unchanged files keep their time, as
    /// files installed from a package do.
    pub fn update_driver(&self) -> io::Result<DriverUpdate> {
        let old = self.host_repository().join(NV_PACKAGE);
        let new = self.host_repository().join(Self::UPDATED_PACKAGE);
        let mut files = Vec::new();
        collect(&old, &old, &mut files)?;
        files.sort();
        let mut changed = Vec::new();
        let mut removed = String::new();
        for (index, relative) in files.iter().enumerate() {
            let from = old.join(relative);
            let to = new.join(relative);
            let name = relative.to_string_lossy().replace('/', "\\");
            if index + 1 == files.len() {
                removed = name;
                continue;
            }
            if let Some(parent) = to.parent() {
                fs_err::create_dir_all(parent)?;
            }
            if name.eq_ignore_ascii_case("nv_dispi.inf") {
                let inf = String::from_utf8_lossy(NV_DISPI).replace(
                    "DriverVer   = 02/26/2021, 27.21.14.7005",
                    "DriverVer   = 04/13/2021, 27.21.14.7099",
                );
                fs_err::write(&to, inf)?;
                changed.push(name);
            } else if index % 10 == 3 {
                let mut bytes = fs_err::read(&from)?;
                bytes.extend_from_slice(b" (470.99)");
                fs_err::write(&to, bytes)?;
                changed.push(name);
            } else {
                fs_err::copy(&from, &to)?;
                let time = fs_err::metadata(&from)?.modified()?;
                fs_err::File::options()
                    .write(true)
                    .open(&to)?
                    .set_modified(time)?;
            }
        }
        let added = "nvidia-update-notes.txt".to_owned();
        fs_err::write(new.join(&added), b"470.99 hotfix")?;
        fs_err::remove_dir_all(&old)?;
        let relative = portable(new.strip_prefix(&self.dir).unwrap_or(&new));
        self.edit_disks(|disks| {
            for adapter in &mut disks.adapters {
                adapter.inf_path = "oem43.inf".to_owned();
                adapter.driver_version = Some(Self::UPDATED_VERSION.to_owned());
                adapter.driver_store_dir = relative.clone();
            }
        })?;
        Ok(DriverUpdate {
            package: Self::UPDATED_PACKAGE.to_owned(),
            changed,
            removed,
            added,
        })
    }
}

/// A relative path with `/`, which Windows reads too (the state file works under wine).
fn portable(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_path_buf());
        }
    }
    Ok(())
}
