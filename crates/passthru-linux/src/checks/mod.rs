//! Checks: pure functions over an [`Inventory`](crate::inventory::Inventory) that say what
//! is ready, what is not, and why, in words a person can act on.
//!
//! - [`host::host_findings`]: is this host ready for passthrough at all (IOMMU, KVM, VFIO)?
//! - [`group::group_viability`]: can an IOMMU group be handed to VFIO as it is now?
//! - [`device::device_verdict`]: can this function be assigned, and what stands in the way?
//!
//! Rules follow the kernel's VFIO documentation and the field experience collected in the
//! project's reference notes (group viability, companion functions, boot VGA, resets).

pub mod device;
pub mod group;
pub mod host;

use serde::{Deserialize, Serialize};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Stops passthrough until it is fixed.
    Blocker,
    /// Works, with a caveat the person should know about.
    Warning,
    /// A fact worth showing.
    Info,
}

/// One reason, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// A stable identifier for programs (`group-shared`, `boot-vga`, ...); see
    /// `docs/json-schema.md`.
    pub code: String,
    /// What is the case, in one sentence.
    pub message: String,
    /// What to do about it, when there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding without a fix.
    pub fn new(severity: Severity, code: &str, message: impl Into<String>) -> Self {
        Self {
            severity,
            code: code.to_owned(),
            message: message.into(),
            fix: None,
        }
    }

    /// Adds what to do.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Drivers that keep an IOMMU group viable: VFIO drivers (`vfio-pci` and variant drivers such
/// as `mlx5_vfio_pci`), `pci-stub`, and `pcieport` (they manage DMA ownership themselves,
/// kernel 5.19+).
pub fn driver_keeps_group_viable(driver: Option<&str>) -> bool {
    match driver {
        None => true,
        Some(name) => {
            name == "pci-stub"
                || name == "pcieport"
                || name.ends_with("vfio-pci")
                || name.ends_with("vfio_pci")
        }
    }
}

/// Whether `driver` is a VFIO driver.
pub fn is_vfio_driver(driver: Option<&str>) -> bool {
    driver.is_some_and(|name| name.ends_with("vfio-pci") || name.ends_with("vfio_pci"))
}

/// Bytes as `512 KiB`, `16 MiB`, `24 GiB` (binary units, at most one decimal).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 || unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viable_drivers() {
        for driver in [
            None,
            Some("vfio-pci"),
            Some("mlx5_vfio_pci"),
            Some("pci-stub"),
            Some("pcieport"),
        ] {
            assert!(driver_keeps_group_viable(driver), "{driver:?}");
        }
        for driver in [
            "nvidia",
            "snd_hda_intel",
            "nvme",
            "xhci_hcd",
            "vfio-pci-not",
        ] {
            assert!(!driver_keeps_group_viable(Some(driver)), "{driver}");
        }
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(512 << 10), "512 KiB");
        assert_eq!(human_size(16 << 20), "16 MiB");
        assert_eq!(human_size((24 << 30) + (512 << 20)), "24.5 GiB");
        assert_eq!(human_size(100), "100 B");
    }
}
