//! The kernel console on a GPU: fbcon drawing on one of the GPU's framebuffers.
//!
//! `/proc/iomem` only shows *firmware* framebuffers (`BOOTFB`, `efifb`, ...). Once a DRM
//! driver has taken over (`bochs-drm`, `amdgpu`, `i915`, ...), its fbdev emulation registers
//! `/dev/fbN` and fbcon draws the text console there; `/proc/iomem` then names only the
//! driver. The VM lab's boot VGA is such a case (SeaBIOS, `bochs-drm`; docs/vm-lab.md), and so
//! is every desktop after the DRM driver loaded. So the console is found the way the kernel
//! shows it: `/sys/class/vtconsole/vtcon*/{name,bind}` says whether fbcon is bound, and
//! `/sys/class/graphics/fbN/device` which PCI device each framebuffer belongs to.
//!
//! Which framebuffer fbcon uses: `fbcon=map:N...` on the command line when given; otherwise,
//! with `CONFIG_FRAMEBUFFER_CONSOLE_DETECT_PRIMARY` (Debian, Fedora, Arch), the framebuffer of
//! the primary display device (`boot_vga` = 1); otherwise the first one registered
//! (drivers/video/fbdev/core/fbcon.c: `fbcon_fb_registered`, `primary_device`).

use std::collections::BTreeMap;
use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;

use super::{Finding, FindingKind, Severity};
use crate::sysfs;

/// What fbcon is doing, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleUse {
    /// Framebuffer index → the PCI device it belongs to.
    pub framebuffers: BTreeMap<u32, PciAddress>,
    /// The `/sys/class/vtconsole` entry of fbcon when it is bound to the virtual terminals
    /// (`vtcon1`).
    pub fbcon_bound: Option<String>,
    /// The framebuffer fbcon draws on, and why passthru thinks so.
    pub console_fb: Option<(u32, String)>,
}

impl ConsoleUse {
    /// The PCI device the console draws on, when fbcon is bound.
    pub fn console_device(&self) -> Option<(u32, PciAddress, &str)> {
        self.fbcon_bound.as_ref()?;
        let (index, why) = self.console_fb.as_ref()?;
        let device = self.framebuffers.get(index)?;
        Some((*index, *device, why.as_str()))
    }
}

/// The first framebuffer of `fbcon=map:<digits>` (console 0 goes to the first digit's fb).
pub fn fbcon_map_from_cmdline(cmdline: &str) -> Option<u32> {
    cmdline.split_whitespace().find_map(|word| {
        let value = word.strip_prefix("fbcon=")?;
        value
            .split(',')
            .find_map(|option| option.strip_prefix("map:"))
            .and_then(|digits| digits.chars().next())
            .and_then(|digit| digit.to_digit(10))
    })
}

pub(super) fn framebuffers(fs: &dyn HostFs) -> BTreeMap<u32, PciAddress> {
    let base = Path::new("/sys/class/graphics");
    let mut found = BTreeMap::new();
    for entry in fs.read_dir(base).unwrap_or_default() {
        let Some(index) = entry
            .name
            .strip_prefix("fb")
            .and_then(|digits| digits.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(address) = sysfs::canonicalize(fs, &base.join(&entry.name).join("device"))
            .ok()
            .and_then(|real| sysfs::pci_ancestor(&real))
        {
            found.insert(index, address);
        }
    }
    found
}

fn fbcon_bound(fs: &dyn HostFs) -> Option<String> {
    let base = Path::new("/sys/class/vtconsole");
    fs.read_dir(base)
        .unwrap_or_default()
        .into_iter()
        .find(|entry| {
            let dir = base.join(&entry.name);
            let name = fs.read_text(&dir.join("name")).unwrap_or_default();
            let bound = fs.read_text(&dir.join("bind")).unwrap_or_default();
            name.contains("frame buffer device") && bound.trim() == "1"
        })
        .map(|entry| entry.name)
}

fn is_boot_vga(fs: &dyn HostFs, device: PciAddress) -> bool {
    fs.read_text(&sysfs::device_dir(device).join("boot_vga"))
        .is_ok_and(|text| text.trim() == "1")
}

pub(super) fn read_console_use(fs: &dyn HostFs) -> ConsoleUse {
    let framebuffers = framebuffers(fs);
    let cmdline = fs.read_text(Path::new("/proc/cmdline")).unwrap_or_default();
    let console_fb = if let Some(index) = fbcon_map_from_cmdline(&cmdline) {
        Some((index, format!("`fbcon=map:` names fb{index}")))
    } else if let Some((index, _)) = framebuffers
        .iter()
        .find(|(_, device)| is_boot_vga(fs, **device))
    {
        Some((
            *index,
            format!("fb{index} belongs to the primary (boot VGA) display"),
        ))
    } else {
        framebuffers.keys().next().map(|index| {
            (
                *index,
                format!("fb{index} is the first framebuffer, which fbcon takes by default"),
            )
        })
    };
    ConsoleUse {
        fbcon_bound: fbcon_bound(fs),
        framebuffers,
        console_fb,
    }
}

pub(super) fn findings(console: &ConsoleUse, device: PciAddress) -> Option<Finding> {
    let (index, on, why) = console.console_device()?;
    if on != device {
        return None;
    }
    let vtcon = console.fbcon_bound.as_deref().unwrap_or("vtcon1");
    Some(Finding::new(
        device,
        FindingKind::ConsoleFramebuffer,
        Severity::NeedsForce,
        format!(
            "the host's text console draws on {device}: fbcon is bound and uses /dev/fb{index} \
             ({why})"
        ),
        format!(
            "taking the GPU away leaves the host without a local console, and its driver may \
             not let go while fbcon holds it. Use another GPU for the console (`fbcon=map:N` on \
             the kernel command line), unbind the console first (`echo 0 > \
             /sys/class/vtconsole/{vtcon}/bind`), or --force if you manage the host remotely"
        ),
    ))
}
