//! Hand-built hosts for what no capture here has, assembled from real config-space captures
//! in `fixtures/lspci-dumps/` (pciutils test data, GPL-2.0-or-later; see the README there).
//! Each scenario says in its description what was changed from the capture.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use passthru_core::pci::PciAddress;

use super::lspci_dump::{self, DumpedDevice};
use super::{FakeDevice, FakeHost, FakeHostInfo, FakeNode};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// The ASUS P6T6 (X58) whole-machine capture from the pciutils test suite.
const P6T6: &str = "pciutils-tree-asus-p6t6_lspci-vvvxxxx.txt";
/// Intel 82576 with SR-IOV (pciutils tests/cap-pcie-2).
const I82576: &str = "8086-10c9_Device-10c9_pciutils-cap-pcie-2_01-00.0.txt";
/// Samsung PM174X NVMe (pciutils tests/cap-phy32).
const PM174X: &str = "144d-a826_NVMe-SSD-Controller-PM174X_pciutils-cap-phy32_2e-00.0.txt";
/// AMD Fiji (Radeon R9 Nano) with Resizable BAR (pciutils tests/cap-rebar).
const FIJI: &str = "1002-7300_Fiji-Radeon-R9-FURY-NANO-Series_pciutils-cap-rebar_09-00.0.txt";

/// The names of the scenarios, for fixtures and tests.
pub const NAMES: [&str; 4] = [
    "desktop-gpu-shared-group",
    "sriov-nic",
    "vmd-nvme",
    "malformed",
];

/// Builds the scenario called `name`.
pub fn build(name: &str, dumps: &Dumps) -> io::Result<FakeHost> {
    match name {
        "desktop-gpu-shared-group" => desktop_gpu_shared_group(dumps),
        "sriov-nic" => sriov_nic(dumps),
        "vmd-nvme" => vmd_nvme(dumps),
        "malformed" => malformed(dumps),
        other => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no scenario called `{other}`"),
        )),
    }
}

/// The folder of lspci dumps the scenarios take their config images from.
#[derive(Debug)]
pub struct Dumps {
    dir: PathBuf,
    parsed: Mutex<HashMap<String, Vec<DumpedDevice>>>,
}

impl Dumps {
    /// Dumps in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// `fixtures/lspci-dumps` of this repository.
    pub fn repository() -> Self {
        Self::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/lspci-dumps"))
    }

    fn read(&self, file: &str) -> io::Result<Vec<DumpedDevice>> {
        if let Some(devices) = self
            .parsed
            .lock()
            .ok()
            .and_then(|parsed| parsed.get(file).cloned())
        {
            return Ok(devices);
        }
        let text = fs_err::read_to_string(self.dir.join(file))?;
        let devices = lspci_dump::parse(&text).map_err(|error| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{file}: {error}"))
        })?;
        if let Ok(mut parsed) = self.parsed.lock() {
            parsed.insert(file.to_owned(), devices.clone());
        }
        Ok(devices)
    }

    /// The config image of the only device in `file`.
    pub fn config(&self, file: &str) -> io::Result<Vec<u8>> {
        self.slot(file, None)
    }

    /// The config image of `slot` (`06:00.0`) in a whole-machine dump.
    pub fn machine(&self, file: &str, slot: &str) -> io::Result<Vec<u8>> {
        self.slot(file, Some(slot))
    }

    fn slot(&self, file: &str, slot: Option<&str>) -> io::Result<Vec<u8>> {
        let devices = self.read(file)?;
        let found = match slot {
            Some(slot) => devices.into_iter().find(|device| device.slot == slot),
            None => devices.into_iter().next(),
        };
        found.map(|device| device.config).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{file} has no device {}", slot.unwrap_or("at all")),
            )
        })
    }
}

fn address(text: &str) -> PciAddress {
    text.parse().unwrap_or(PciAddress {
        domain: 0,
        bus: 0,
        device: 0,
        function: 0,
    })
}

fn root_dir(domain_bus: &str) -> String {
    format!("/sys/devices/pci{domain_bus}")
}

fn under(parent: &FakeDevice) -> String {
    parent.dir().display().to_string()
}

fn intel_host(cmdline_extra: &str, model: &str, physical_bits: u32) -> FakeHostInfo {
    FakeHostInfo {
        kernel_release: "6.1.0-18-amd64".to_owned(),
        cmdline: format!("BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=3b5a2c1e-8f0d-4d1a-9d7e-2f4c6b8a9e10 ro quiet {cmdline_extra}"),
        cpuinfo: format!(
            "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: {model}\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx rdtscp lm constant_tsc pni vmx est ssse3 cx16 sse4_1 sse4_2 popcnt lahf_lm ept vpid\naddress sizes\t: {physical_bits} bits physical, 48 bits virtual\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n"
        ),
        iommu_units: vec!["dmar0".to_owned(), "dmar1".to_owned()],
        kvm: true,
        loaded_modules: ["kvm", "kvm_intel", "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_pci_core"]
            .map(str::to_owned)
            .to_vec(),
        modules_dep: Some(
            "kernel/drivers/vfio/vfio.ko: kernel/virt/lib/irqbypass.ko\nkernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko\nkernel/drivers/vfio/pci/vfio-pci-core.ko: kernel/drivers/vfio/vfio.ko\nkernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko\nkernel/arch/x86/kvm/kvm.ko:\nkernel/arch/x86/kvm/kvm-intel.ko: kernel/arch/x86/kvm/kvm.ko\n".to_owned(),
        ),
    }
}

/// A consumer GPU and its HDMI audio sharing an IOMMU group with chipset devices, a second
/// GPU isolated and bound to vfio-pci, gaps in group numbers and a non-PCI group member.
pub fn desktop_gpu_shared_group(dumps: &Dumps) -> io::Result<FakeHost> {
    let mut host = FakeHost::new();
    host.describe(
        "hand-built: ASUS P6T6 (X58) desktop from the pciutils capture tests/tree-asus-p6t6; the GeForce 210 and its HDMI audio moved behind the ICH10 root ports so they share IOMMU group 9 with two chipset NICs; a Radeon R9 Nano (pciutils tests/cap-rebar) added in the first x16 slot on vfio-pci; a non-PCI ACPI device added to group 12; group numbers have gaps",
    );
    host.host_info(&intel_host(
        "intel_iommu=on iommu=pt",
        "Intel(R) Core(TM) i7 CPU         920  @ 2.67GHz",
        36,
    ));
    let machine = |slot: &str| dumps.machine(P6T6, slot);
    let root = root_dir("0000:00");

    let host_bridge =
        FakeDevice::from_config(address("0000:00:00.0"), &root, machine("00:00.0")?).group(0);
    host.device(&host_bridge);

    let port1 = FakeDevice::from_config(address("0000:00:01.0"), &root, machine("00:01.0")?)
        .driver("pcieport")
        .group(1)
        .reset("bus")
        .link("8.0 GT/s PCIe", 16, "8.0 GT/s PCIe", 16);
    host.device(&port1);
    let mut nano =
        FakeDevice::from_config(address("0000:01:00.0"), &under(&port1), dumps.config(FIJI)?)
            .driver("vfio-pci")
            .group(1)
            .bars(
                &[(0, 256 * MIB), (2, 2 * MIB), (4, 256), (5, 256 * KIB)],
                Some(128 * KIB),
            )
            .reset("bus")
            .link("8.0 GT/s PCIe", 16, "8.0 GT/s PCIe", 16);
    nano.boot_vga = Some(false);
    host.device(&nano);

    let port3 = FakeDevice::from_config(address("0000:00:03.0"), &root, machine("00:03.0")?)
        .driver("pcieport")
        .group(2)
        .reset("bus")
        .link("5.0 GT/s PCIe", 16, "5.0 GT/s PCIe", 16);
    host.device(&port3);
    let nf200 =
        FakeDevice::from_config(address("0000:02:00.0"), &under(&port3), machine("02:00.0")?)
            .driver("pcieport")
            .group(2)
            .link("5.0 GT/s PCIe", 16, "5.0 GT/s PCIe", 16);
    host.device(&nf200);
    for (slot, dump_slot) in [("0000:03:00.0", "03:00.0"), ("0000:03:02.0", "03:02.0")] {
        host.device(
            &FakeDevice::from_config(address(slot), &under(&nf200), machine(dump_slot)?)
                .driver("pcieport")
                .group(2),
        );
    }
    let nf200_down =
        FakeDevice::from_config(address("0000:03:00.0"), &under(&nf200), machine("03:00.0")?);
    host.device(
        &FakeDevice::from_config(
            address("0000:04:00.0"),
            &under(&nf200_down),
            machine("04:00.0")?,
        )
        .driver("mpt3sas")
        .group(2)
        .bars(&[(0, 256), (1, 16 * KIB), (3, 256 * KIB)], Some(512 * KIB))
        .reset("bus")
        .msi("msix", 16)
        .link("5.0 GT/s PCIe", 8, "5.0 GT/s PCIe", 8),
    );

    host.device(
        &FakeDevice::from_config(address("0000:00:07.0"), &root, machine("00:07.0")?)
            .driver("pcieport")
            .group(4)
            .reset("bus"),
    );
    host.device(
        &FakeDevice::from_config(address("0000:00:1a.0"), &root, machine("00:1a.0")?)
            .driver("uhci_hcd")
            .group(5)
            .bars(&[(4, 32)], None),
    );
    host.device(
        &FakeDevice::from_config(address("0000:00:1b.0"), &root, machine("00:1b.0")?)
            .driver("snd_hda_intel")
            .group(7)
            .bars(&[(0, 16 * KIB)], None)
            .reset("pm")
            .msi("msi", 1),
    );

    let mut ports = Vec::new();
    for slot in ["00:1c.0", "00:1c.1", "00:1c.2"] {
        let port = FakeDevice::from_config(address(&format!("0000:{slot}")), &root, machine(slot)?)
            .driver("pcieport")
            .group(9)
            .reset("bus")
            .link("2.5 GT/s PCIe", 1, "2.5 GT/s PCIe", 1);
        host.device(&port);
        ports.push(port);
    }
    for (index, slot) in ["07:00.0", "08:00.0"].into_iter().enumerate() {
        host.device(
            &FakeDevice::from_config(
                address(&format!("0000:{slot}")),
                &under(&ports[index]),
                machine(slot)?,
            )
            .driver("r8169")
            .group(9)
            .bars(&[(0, 256), (2, 4 * KIB), (4, 64 * KIB)], Some(64 * KIB))
            .reset("bus")
            .msi("msi", 1)
            .link("2.5 GT/s PCIe", 1, "2.5 GT/s PCIe", 1),
        );
    }
    let mut geforce = FakeDevice::from_config(
        address("0000:06:00.0"),
        &under(&ports[2]),
        machine("06:00.0")?,
    )
    .driver("nouveau")
    .group(9)
    .bars(
        &[(0, 16 * MIB), (1, 256 * MIB), (3, 32 * MIB), (5, 128)],
        Some(512 * KIB),
    )
    .reset("bus")
    .msi("msi", 1)
    .link("2.5 GT/s PCIe", 1, "2.5 GT/s PCIe", 16);
    geforce.boot_vga = Some(true);
    host.device(&geforce);
    host.device(
        &FakeDevice::from_config(
            address("0000:06:00.1"),
            &under(&ports[2]),
            machine("06:00.1")?,
        )
        .driver("snd_hda_intel")
        .group(9)
        .bars(&[(0, 16 * KIB)], None)
        .reset("bus")
        .msi("msi", 1)
        .link("2.5 GT/s PCIe", 1, "2.5 GT/s PCIe", 16),
    );

    for (slot, driver, bars) in [
        ("00:1f.0", "lpc_ich", vec![]),
        (
            "00:1f.2",
            "ahci",
            vec![(0, 8), (1, 4), (2, 8), (3, 4), (4, 32), (5, 2 * KIB)],
        ),
        ("00:1f.3", "i801_smbus", vec![(0, 256), (4, 32)]),
    ] {
        host.device(
            &FakeDevice::from_config(address(&format!("0000:{slot}")), &root, machine(slot)?)
                .driver(driver)
                .group(12)
                .bars(&bars, None),
        );
    }
    host.non_pci_member(12, "INT33C3:00", Some("i2c_designware"));
    Ok(host)
}

fn sriov_vf_config(pf: &[u8]) -> Vec<u8> {
    // A VF's config space: its own Vendor/Device ID registers read 0xffff (SR-IOV spec), and
    // its BARs are not programmable. Synthetic, from the PF's conventional space.
    let mut config = pf
        .get(..256)
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| vec![0xff; 256]);
    config[..4].copy_from_slice(&[0xff; 4]);
    for byte in &mut config[0x10..0x28] {
        *byte = 0;
    }
    config
}

/// The X58 host bridge (group 0) and its first root port (group 1, `pcieport`) from the
/// pciutils ASUS P6T6 capture; returns the port, under which the scenario's cards go.
fn x58_root(host: &mut FakeHost, dumps: &Dumps) -> io::Result<FakeDevice> {
    let root = root_dir("0000:00");
    host.device(
        &FakeDevice::from_config(
            address("0000:00:00.0"),
            &root,
            dumps.machine(P6T6, "00:00.0")?,
        )
        .group(0),
    );
    let port = FakeDevice::from_config(
        address("0000:00:01.0"),
        &root,
        dumps.machine(P6T6, "00:01.0")?,
    )
    .driver("pcieport")
    .group(1)
    .reset("bus");
    host.device(&port);
    Ok(port)
}

/// An Intel 82576 physical function (`igb`) with `vfs` enabled out of `total`.
fn igb_pf(
    address: PciAddress,
    parent: &FakeDevice,
    config: Vec<u8>,
    group: u32,
    total: u32,
    vfs: Vec<PciAddress>,
) -> FakeDevice {
    let mut pf = FakeDevice::from_config(address, &under(parent), config)
        .driver("igb")
        .group(group)
        .bars(
            &[(0, 128 * KIB), (1, 4 * MIB), (2, 32), (3, 16 * KIB)],
            Some(4 * MIB),
        )
        .reset("flr bus")
        .msi("msix", 10)
        .link("2.5 GT/s PCIe", 4, "2.5 GT/s PCIe", 4);
    pf.sriov = Some((total, vfs));
    pf
}

/// An Intel 82576 virtual function of `pf`, on `driver` (`igbvf` gets its MSI-X vectors).
fn igb_vf(
    address: PciAddress,
    parent: &FakeDevice,
    config: Vec<u8>,
    group: u32,
    pf: PciAddress,
    driver: Option<&str>,
) -> FakeDevice {
    let mut vf = FakeDevice::from_config(address, &under(parent), config)
        .group(group)
        .bars(&[(0, 16 * KIB), (3, 16 * KIB)], None)
        .reset("flr");
    vf.ids = (0x8086, 0x10ca, 0x8086, 0xa03c);
    vf.class = 0x020000;
    vf.physfn = Some(pf);
    match driver {
        Some("igbvf") => vf.driver("igbvf").msi("msix", 3),
        Some(driver) => vf.driver(driver),
        None => vf,
    }
}

/// An SR-IOV physical function with four virtual functions on different drivers.
pub fn sriov_nic(dumps: &Dumps) -> io::Result<FakeHost> {
    let mut host = FakeHost::new();
    host.describe(
        "hand-built: Intel 82576 (pciutils tests/cap-pcie-2) as an SR-IOV PF with 4 of 8 VFs enabled (NumVFs patched from 1 to 4); VF config images are synthetic (the PF's conventional space with the VF's 0xffff ids); X58 host bridge and root port from pciutils tests/tree-asus-p6t6",
    );
    host.host_info(&intel_host(
        "intel_iommu=on",
        "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz",
        46,
    ));
    let port = x58_root(&mut host, dumps)?;
    let mut pf_config = dumps.config(I82576)?;
    // NumVFs (SR-IOV capability at 0x160, register at +0x10).
    if let Some(num_vfs) = pf_config.get_mut(0x170..0x172) {
        num_vfs.copy_from_slice(&4u16.to_le_bytes());
    }
    let vfs: Vec<PciAddress> = [
        "0000:02:10.0",
        "0000:02:10.2",
        "0000:02:10.4",
        "0000:02:10.6",
    ]
    .map(address)
    .to_vec();
    let pf = igb_pf(
        address("0000:01:00.0"),
        &port,
        pf_config.clone(),
        2,
        8,
        vfs.clone(),
    );
    host.device(&pf);
    host.file(pf.dir().join("sriov_vf_device"), "10ca\n");
    let drivers = [Some("vfio-pci"), Some("vfio-pci"), Some("igbvf"), None];
    for (index, (vf, driver)) in vfs.into_iter().zip(drivers).enumerate() {
        host.device(&igb_vf(
            vf,
            &port,
            sriov_vf_config(&pf_config),
            3 + index as u32,
            pf.address,
            driver,
        ));
    }
    Ok(host)
}

fn vmd_controller_config() -> Vec<u8> {
    // Synthetic header of an Intel VMD controller (8086:28c0, class 0x010400): no capture of
    // one exists here. Header only; no capability list.
    let mut config = vec![0u8; 256];
    config[..4].copy_from_slice(&[0x86, 0x80, 0xc0, 0x28]);
    config[4..8].copy_from_slice(&[0x06, 0x04, 0x00, 0x00]);
    config[8..12].copy_from_slice(&[0x04, 0x00, 0x04, 0x01]);
    config[0x10..0x18].copy_from_slice(&[0x0c, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00]);
    config[0x2c..0x30].copy_from_slice(&[0x86, 0x80, 0x00, 0x00]);
    config
}

/// An NVMe drive behind an Intel VMD controller (domain 10000), and one outside VMD.
pub fn vmd_nvme(dumps: &Dumps) -> io::Result<FakeHost> {
    let mut host = FakeHost::new();
    host.describe(
        "hand-built: Intel VMD domain 10000 with a Samsung PM174X NVMe (pciutils tests/cap-phy32) at 10000:e1:00.0 behind a VMD root port (ICH10 root port capture as a stand-in), a second PM174X outside VMD; the VMD controller's config header is synthetic",
    );
    host.host_info(&intel_host(
        "intel_iommu=on",
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        46,
    ));
    let root = root_dir("0000:00");
    let nvme = dumps.config(PM174X)?;
    let port = x58_root(&mut host, dumps)?;
    host.device(
        &FakeDevice::from_config(address("0000:02:00.0"), &under(&port), nvme.clone())
            .driver("nvme")
            .group(5)
            .bars(&[(0, 32 * KIB)], None)
            .reset("flr bus")
            .msi("msix", 33)
            .link("16.0 GT/s PCIe", 4, "16.0 GT/s PCIe", 4),
    );
    let vmd = FakeDevice::from_config(address("0000:00:0e.0"), &root, vmd_controller_config())
        .driver("vmd")
        .group(3)
        .bars(&[(0, 32 * MIB), (2, 32 * MIB), (4, MIB)], None);
    host.device(&vmd);
    let vmd_bus = format!("{}/pci10000:e0", vmd.dir().display());
    let vmd_port = FakeDevice::from_config(
        address("10000:e0:1d.0"),
        &vmd_bus,
        dumps.machine(P6T6, "00:1c.0")?,
    )
    .driver("pcieport")
    .link("16.0 GT/s PCIe", 4, "16.0 GT/s PCIe", 4);
    host.device(&vmd_port);
    host.device(
        &FakeDevice::from_config(address("10000:e1:00.0"), &under(&vmd_port), nvme)
            .driver("nvme")
            .bars(&[(0, 32 * KIB)], None)
            .reset("flr bus")
            .msi("msix", 33)
            .link("16.0 GT/s PCIe", 4, "16.0 GT/s PCIe", 4),
    );
    Ok(host)
}

/// A host whose sysfs is damaged in every way survey must survive.
pub fn malformed(dumps: &Dumps) -> io::Result<FakeHost> {
    let mut host = FakeHost::new();
    host.describe(
        "hand-built: damaged sysfs for robustness tests: garbage class, truncated resource, unreadable config, dangling driver and iommu_group links, an empty vendor file (on the device whose config is unreadable), non-address entries, a group member that does not exist, a dangling non-PCI member, a malformed reserved_regions line; AMD host with amd_iommu=on and pcie_acs_override; configs from pciutils tests/tree-asus-p6t6",
    );
    let mut info = intel_host(
        "amd_iommu=on iommu=pt pcie_acs_override=downstream,multifunction",
        "AMD Ryzen 9 5950X 16-Core Processor",
        48,
    );
    info.kernel_release = "6.8.0-45-generic".to_owned();
    info.cpuinfo = info
        .cpuinfo
        .replace("GenuineIntel", "AuthenticAMD")
        .replace(" vmx ", " svm ");
    info.iommu_units = vec!["ivhd0".to_owned()];
    info.loaded_modules = vec!["kvm".to_owned(), "kvm_amd".to_owned()];
    info.modules_dep = Some(
        "kernel/arch/x86/kvm/kvm.ko:\nkernel/arch/x86/kvm/kvm-amd.ko: kernel/arch/x86/kvm/kvm.ko\n"
            .to_owned(),
    );
    host.host_info(&info);
    let root = root_dir("0000:00");
    let machine = |slot: &str| dumps.machine(P6T6, slot);
    host.device(
        &FakeDevice::from_config(address("0000:00:00.0"), &root, machine("00:00.0")?).group(0),
    );

    let gpu = FakeDevice::from_config(address("0000:00:02.0"), &root, machine("06:00.0")?)
        .driver("nouveau")
        .group(1)
        .bars(
            &[(0, 16 * MIB), (1, 256 * MIB), (3, 32 * MIB), (5, 128)],
            Some(512 * KIB),
        )
        .reset("bus");
    host.device(&gpu);
    host.file(gpu.dir().join("class"), "0xzzzz\n");
    host.file(
        "/sys/kernel/iommu_groups/1/reserved_regions",
        "0x00000000fee00000 0x00000000feefffff msi\nthis line is not a region\n",
    );

    let nic = FakeDevice::from_config(address("0000:00:03.0"), &root, machine("07:00.0")?)
        .driver("r8169")
        .group(2)
        .reset("bus");
    host.device(&nic);
    host.file(
        nic.dir().join("resource"),
        "0x000000000000d000 0x000000000000d0ff 0x0000000000040101\n0x00000000fe00",
    );
    host.link(
        "/sys/kernel/iommu_groups/2/devices/0000:00:09.0",
        "../../../../devices/pci0000:00/0000:00:09.0",
    );

    let nvme = FakeDevice::from_config(address("0000:00:04.0"), &root, dumps.config(PM174X)?)
        .group(3)
        .bars(&[(0, 32 * KIB)], None)
        .reset("flr bus");
    host.device(&nvme);
    host.unreadable(nvme.dir().join("config"));
    host.link(
        nvme.dir().join("driver"),
        "../../../bus/pci/drivers/ghost_nvme",
    );
    // With config unreadable the ids come from sysfs alone, and this vendor file is empty.
    host.file(nvme.dir().join("vendor"), "");
    host.link(
        "/sys/kernel/iommu_groups/3/devices/MSFT0101:00",
        "../../../../devices/platform/MSFT0101:00",
    );

    let sas = FakeDevice::from_config(address("0000:00:05.0"), &root, machine("04:00.0")?)
        .driver("mpt3sas")
        .bars(&[(0, 256), (1, 16 * KIB), (3, 256 * KIB)], None);
    host.device(&sas);
    host.link(
        sas.dir().join("iommu_group"),
        "../../../kernel/iommu_groups/99",
    );

    host.set("/sys/bus/pci/devices/not-a-device", FakeNode::Dir);
    host.set("/sys/kernel/iommu_groups/bogus", FakeNode::Dir);
    Ok(host)
}

/// A big SR-IOV host for benchmarks: `pfs` Intel 82576 functions, each with `vfs_per_pf`
/// VFs, every function in its own IOMMU group. `pfs * (vfs_per_pf + 1) + 2` devices.
pub fn sriov_farm(dumps: &Dumps, pfs: usize, vfs_per_pf: usize) -> io::Result<FakeHost> {
    let mut host = FakeHost::new();
    host.describe(&format!(
        "generated: {pfs} Intel 82576 PFs with {vfs_per_pf} VFs each, one IOMMU group per function"
    ));
    host.host_info(&intel_host(
        "intel_iommu=on iommu=pt",
        "Intel(R) Xeon(R) Platinum 8480+",
        46,
    ));
    let port = x58_root(&mut host, dumps)?;
    let pf_config = dumps.config(I82576)?;
    let vf_config = sriov_vf_config(&pf_config);
    let mut group = 2;
    for pf_index in 0..pfs {
        // PF n on bus 0x10 + n/8, function-packed with ARI-style numbering.
        let pf_address = PciAddress {
            domain: 0,
            bus: 0x10u8.wrapping_add((pf_index / 8) as u8),
            device: 0,
            function: (pf_index % 8) as u8,
        };
        let vfs: Vec<PciAddress> = (0..vfs_per_pf)
            .map(|vf| {
                let routing = 0x80 + vf + pf_index * vfs_per_pf;
                PciAddress {
                    domain: 0,
                    bus: 0x40u8.wrapping_add((routing / 256) as u8),
                    device: ((routing % 256) / 8) as u8,
                    function: (routing % 8) as u8,
                }
            })
            .collect();
        host.device(&igb_pf(
            pf_address,
            &port,
            pf_config.clone(),
            group,
            vfs_per_pf as u32,
            vfs.clone(),
        ));
        group += 1;
        for (index, vf) in vfs.into_iter().enumerate() {
            let driver = if index % 2 == 0 { "vfio-pci" } else { "igbvf" };
            host.device(&igb_vf(
                vf,
                &port,
                vf_config.clone(),
                group,
                pf_address,
                Some(driver),
            ));
            group += 1;
        }
    }
    Ok(host)
}
