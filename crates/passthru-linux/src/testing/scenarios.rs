//! Ready-made fake kernels that mirror the VM lab's guest.

use super::builder::{FakeDevice, FakeKernelBuilder, FakeModule};
use super::kernel::FakeKernel;

/// Addresses used by [`FakeKernel::gpu_with_audio`].
pub mod lab {
    /// The boot VGA (`bochs-drm`, group 1).
    pub const BOOT_VGA: &str = "0000:00:01.0";
    /// The root port above the GPU (`pcieport`, group 2).
    pub const ROOT_PORT: &str = "0000:00:02.0";
    /// The GPU-like device (`bochs-drm`, group 3).
    pub const GPU: &str = "0000:01:00.0";
    /// Its HD audio function (`snd_hda_intel`, group 3).
    pub const AUDIO: &str = "0000:01:00.1";
    /// The host's network card (`e1000e`, group 4).
    pub const NIC: &str = "0000:00:03.0";
    /// The root port above the PCIe-to-PCI bridge (`pcieport`, group 6), in
    /// [`FakeKernel::q35_lab`](super::FakeKernel::q35_lab).
    pub const BRIDGE_PORT: &str = "0000:00:06.0";
    /// The PCIe-to-PCI bridge (no driver, group 7).
    pub const PCI_BRIDGE: &str = "0000:07:00.0";
    /// The first e1000 behind the bridge (group 7).
    pub const BRIDGED_NIC_1: &str = "0000:08:01.0";
    /// The second e1000 behind the bridge (group 7).
    pub const BRIDGED_NIC_2: &str = "0000:08:02.0";
}

impl FakeKernel {
    /// Starts a fake kernel from scratch.
    pub fn builder() -> FakeKernelBuilder {
        FakeKernelBuilder::new()
    }

    /// The VM lab's topology in small: an Intel IOMMU; a boot VGA; a GPU-like device
    /// (`1234:1111`, `bochs-drm`) with an HD audio function (`8086:293e`, `snd_hda_intel`)
    /// behind a root port, both in group 3; a host NIC; `kvm` loaded (so `irqbypass` is
    /// loaded before any vfio module); the vfio modules available but not loaded.
    pub fn gpu_with_audio() -> Self {
        Self::gpu_with_audio_builder().build()
    }

    /// [`FakeKernel::gpu_with_audio`] before building, to change it.
    pub fn gpu_with_audio_builder() -> FakeKernelBuilder {
        FakeKernel::builder()
            .intel_iommu()
            .module(FakeModule::new("pcieport").driver("pcieport").builtin())
            .module(FakeModule::new("drm").loaded())
            .module(
                FakeModule::new("bochs")
                    .depends(&["drm"])
                    .driver("bochs-drm")
                    .loaded(),
            )
            .module(FakeModule::new("snd_hda_core").loaded())
            .module(
                FakeModule::new("snd_hda_intel")
                    .depends(&["snd_hda_core"])
                    .driver("snd_hda_intel")
                    .loaded(),
            )
            .module(FakeModule::new("e1000e").driver("e1000e").loaded())
            .module(FakeModule::new("irqbypass").loaded())
            .module(FakeModule::new("kvm").depends(&["irqbypass"]).loaded())
            .vfio_modules_without_irqbypass()
            .device(
                FakeDevice::new("0000:00:00.0")
                    .ids(0x8086, 0x29c0)
                    .class(0x060000)
                    .group(0),
            )
            .device(
                FakeDevice::new(lab::BOOT_VGA)
                    .ids(0x1234, 0x1111)
                    .class(0x030000)
                    .group(1)
                    .driver("bochs-drm")
                    .file("boot_vga", "1\n"),
            )
            .device(
                FakeDevice::new(lab::ROOT_PORT)
                    .ids(0x1b36, 0x000c)
                    .class(0x060400)
                    .group(2)
                    .driver("pcieport"),
            )
            .device(
                FakeDevice::new(lab::GPU)
                    .behind(lab::ROOT_PORT)
                    .ids(0x1234, 0x1111)
                    .class(0x030000)
                    .group(3)
                    .driver("bochs-drm")
                    .file("boot_vga", "0\n"),
            )
            .device(
                FakeDevice::new(lab::AUDIO)
                    .behind(lab::ROOT_PORT)
                    .ids(0x8086, 0x293e)
                    .class(0x040300)
                    .group(3)
                    .driver("snd_hda_intel")
                    .file("reset_method", "flr bus\n"),
            )
            .device(
                FakeDevice::new(lab::NIC)
                    .ids(0x8086, 0x10d3)
                    .class(0x020000)
                    .group(4)
                    .driver("e1000e"),
            )
    }
}

impl FakeKernel {
    /// [`FakeKernel::gpu_with_audio`] as the VM lab's guest shows it in full: fbcon bound and
    /// drawing on the boot VGA's framebuffer (`fb0`; the GPU-like device has `fb1`), and a
    /// PCIe-to-PCI bridge whose two `e1000` cards share IOMMU group 7 with it.
    pub fn q35_lab() -> Self {
        Self::q35_lab_builder().build()
    }

    /// [`FakeKernel::q35_lab`] before building.
    pub fn q35_lab_builder() -> FakeKernelBuilder {
        Self::gpu_with_audio_builder()
            .module(FakeModule::new("e1000").driver("e1000").loaded())
            .device(
                FakeDevice::new(lab::BRIDGE_PORT)
                    .ids(0x1b36, 0x000c)
                    .class(0x060400)
                    .group(6)
                    .driver("pcieport"),
            )
            .device(
                FakeDevice::new(lab::PCI_BRIDGE)
                    .behind(lab::BRIDGE_PORT)
                    .ids(0x1b36, 0x000e)
                    .class(0x060400)
                    .group(7),
            )
            .device(
                FakeDevice::new(lab::BRIDGED_NIC_1)
                    .behind(lab::PCI_BRIDGE)
                    .ids(0x8086, 0x100e)
                    .class(0x020000)
                    .group(7)
                    .driver("e1000"),
            )
            .device(
                FakeDevice::new(lab::BRIDGED_NIC_2)
                    .behind(lab::PCI_BRIDGE)
                    .ids(0x8086, 0x100e)
                    .class(0x020000)
                    .group(7)
                    .driver("e1000"),
            )
            .framebuffer(0, lab::BOOT_VGA)
            .framebuffer(1, lab::GPU)
            .fbcon()
    }
}

impl FakeKernelBuilder {
    /// [`FakeKernelBuilder::vfio_modules`] for kernels that already have `irqbypass`.
    pub fn vfio_modules_without_irqbypass(self) -> Self {
        self.module(FakeModule::new("vfio_virqfd"))
            .module(FakeModule::new("vfio").softdep_post(&["vfio_iommu_type1"]))
            .module(FakeModule::new("vfio_iommu_type1").depends(&["vfio"]))
            .module(FakeModule::new("vfio_pci_core").depends(&["vfio", "vfio_virqfd", "irqbypass"]))
            .module(
                FakeModule::new("vfio_pci")
                    .depends(&["vfio_pci_core", "vfio"])
                    .driver("vfio-pci"),
            )
    }
}
