//! No IOMMU, or a device the IOMMU does not translate.

use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;

use super::{Finding, FindingKind, Severity};
use crate::sysfs;

pub(super) fn findings(fs: &dyn HostFs, device: PciAddress) -> Vec<Finding> {
    let active = fs
        .read_dir(Path::new("/sys/class/iommu"))
        .is_ok_and(|entries| !entries.is_empty());
    let group = sysfs::iommu_group(fs, device).ok().flatten();
    match (active, group) {
        (_, Some(_)) => Vec::new(),
        (false, None) => vec![Finding::new(
            device,
            FindingKind::NoIommu,
            Severity::Blocked,
            "no IOMMU is active, so no device can be isolated for a VM",
            "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup; on Intel also add \
             `intel_iommu=on` to the kernel command line (AMD needs nothing: `amd_iommu=on` is \
             not a valid value); reboot, then `passthru survey` shows the groups",
        )],
        (true, None) => vec![Finding::new(
            device,
            FindingKind::NoIommuGroup,
            Severity::Blocked,
            format!("{device} is in no IOMMU group: the IOMMU does not translate it"),
            "such a device cannot be given to a VM safely; check `dmesg | grep -i iommu`",
        )],
    }
}
