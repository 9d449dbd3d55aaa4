//! PnP device instance ids (`PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019`)
//! and the GPU device-interface paths that Hyper-V uses to name partitionable GPUs
//! (`\\?\PCI#VEN_10DE&DEV_2531&...#4&18416dc3&0&0000#{064092b3-...}\GPUPARAV`).
//!
//! A dismounted DDA device enumerates as `PCIP\...` with the same hardware and instance parts
//! (reference F6, ExHyperV `PCIeService.cs`), which is how passthru tells the three DDA states
//! apart without Hyper-V cmdlets.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A parsed device instance id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceId {
    /// Enumerator, upper case: `PCI`, `PCIP`, `SCSI`, `ACPI`, ...
    pub enumerator: String,
    /// The hardware part: `VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1`.
    pub hardware: String,
    /// The instance part: `4&1D81E16&0&0019`.
    pub instance: String,
    /// `VEN_xxxx`, when present.
    pub vendor: Option<u16>,
    /// `DEV_xxxx`, when present.
    pub device: Option<u16>,
    /// `SUBSYS_xxxxxxxx`, when present.
    pub subsystem: Option<u32>,
    /// `REV_xx`, when present.
    pub revision: Option<u8>,
}

/// Why a string is not an instance id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a device instance id ({reason})")]
pub struct InstanceIdError {
    /// The input.
    pub text: String,
    /// What was wrong.
    pub reason: &'static str,
}

impl InstanceId {
    /// Parses `ENUM\HARDWARE\INSTANCE`.
    pub fn parse(text: &str) -> Result<Self, InstanceIdError> {
        let error = |reason| InstanceIdError {
            text: text.to_owned(),
            reason,
        };
        let mut parts = text.trim().splitn(3, '\\');
        let enumerator = parts.next().unwrap_or_default();
        let hardware = parts.next().ok_or_else(|| error("it has no `\\`"))?;
        let instance = parts
            .next()
            .ok_or_else(|| error("it has no instance part"))?;
        if enumerator.is_empty() || hardware.is_empty() || instance.is_empty() {
            return Err(error("a part is empty"));
        }
        if instance.contains('\\') {
            return Err(error("it has more than three parts"));
        }
        let mut id = Self {
            enumerator: enumerator.to_ascii_uppercase(),
            hardware: hardware.to_owned(),
            instance: instance.to_owned(),
            vendor: None,
            device: None,
            subsystem: None,
            revision: None,
        };
        for field in hardware.split('&') {
            let upper = field.to_ascii_uppercase();
            if let Some(hex) = upper.strip_prefix("VEN_") {
                id.vendor = u16::from_str_radix(hex, 16).ok();
            } else if let Some(hex) = upper.strip_prefix("DEV_") {
                id.device = u16::from_str_radix(hex, 16).ok();
            } else if let Some(hex) = upper.strip_prefix("SUBSYS_") {
                id.subsystem = u32::from_str_radix(hex, 16).ok();
            } else if let Some(hex) = upper.strip_prefix("REV_") {
                id.revision = u8::from_str_radix(hex, 16).ok();
            }
        }
        Ok(id)
    }

    /// Whether this is a PCI function (`PCI\` or, dismounted, `PCIP\`).
    pub fn is_pci(&self) -> bool {
        self.enumerator == "PCI" || self.enumerator == "PCIP"
    }

    /// Whether the device is dismounted for DDA (`PCIP\`).
    pub fn is_dismounted(&self) -> bool {
        self.enumerator == "PCIP"
    }

    /// The id under a different enumerator (`PCIP\...` ↔ `PCI\...`).
    pub fn with_enumerator(&self, enumerator: &str) -> Self {
        Self {
            enumerator: enumerator.to_ascii_uppercase(),
            ..self.clone()
        }
    }

    /// `vendor:device` in lower-case hex (`10de:1b06`), when both are known.
    pub fn vendor_device(&self) -> Option<String> {
        Some(format!("{:04x}:{:04x}", self.vendor?, self.device?))
    }

    /// Whether two ids name the same devnode (Windows compares ids without regard to case).
    pub fn same_device(&self, other: &Self) -> bool {
        self.to_string().eq_ignore_ascii_case(&other.to_string())
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\\{}\\{}",
            self.enumerator, self.hardware, self.instance
        )
    }
}

/// The host-side (`PCI\`) form of a possibly dismounted (`PCIP\`) instance id string.
pub fn host_form(instance_id: &str) -> String {
    match InstanceId::parse(instance_id) {
        Ok(id) if id.is_dismounted() => id.with_enumerator("PCI").to_string(),
        _ => instance_id.to_owned(),
    }
}

/// Whether two instance id strings name the same devnode (case-insensitive).
pub fn same_instance(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Whether two GPU interface paths name the same GPU (Windows compares them without case).
pub fn same_gpu_path(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A GPU device-interface path as used in `Get-VMHostPartitionableGpu` `Name` and
/// `Add-VMGpuPartitionAdapter -InstancePath`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInterfacePath {
    /// The PnP instance id of the GPU (`PCI\VEN_...\4&...`).
    pub instance_id: InstanceId,
    /// The interface class GUID, without braces.
    pub interface_class: String,
    /// Whether the path ends in `\GPUPARAV`: a paravirtualised (GPU-PV, client) partition
    /// source rather than an SR-IOV GPU-P one (reference §7.2).
    pub paravirtual: bool,
}

impl GpuInterfacePath {
    /// Parses `\\?\PCI#hardware#instance#{guid}[\GPUPARAV]`.
    pub fn parse(text: &str) -> Result<Self, InstanceIdError> {
        let error = |reason| InstanceIdError {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix(r"\\?\")
            .ok_or_else(|| error("a GPU path starts with \\\\?\\"))?;
        let (body, paravirtual) = match body
            .len()
            .checked_sub(9)
            .filter(|&cut| body.is_char_boundary(cut))
            .map(|cut| body.split_at(cut))
        {
            Some((rest, suffix)) if suffix.eq_ignore_ascii_case(r"\GPUPARAV") => (rest, true),
            _ => (body, false),
        };
        let parts: Vec<&str> = body.split('#').collect();
        if parts.len() != 4 {
            return Err(error("a GPU path has four `#`-separated parts"));
        }
        let guid = parts[3]
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .ok_or_else(|| error("the interface class is not a {GUID}"))?;
        let instance_id = InstanceId::parse(&format!("{}\\{}\\{}", parts[0], parts[1], parts[2]))?;
        Ok(Self {
            instance_id,
            interface_class: guid.to_ascii_lowercase(),
            paravirtual,
        })
    }
}

/// Converts a device-interface path (`\\?\scsi#disk&ven_nvme#5&...#{53f5...}`) into the
/// instance id of its devnode (`SCSI\DISK&VEN_NVME\5&...`), as ExHyperV normalises them.
pub fn interface_path_to_instance_id(path: &str) -> Option<String> {
    let body = path.trim().strip_prefix(r"\\?\")?;
    let body = match body.find("#{") {
        Some(cut) => &body[..cut],
        None => body,
    };
    let instance = body.replace('#', "\\");
    InstanceId::parse(&instance).ok().map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pci_and_pcip_ids() {
        let id =
            InstanceId::parse(r"PCI\VEN_10DE&DEV_1B06&SUBSYS_36021462&REV_A1\4&1D81E16&0&0019")
                .unwrap();
        assert_eq!(id.vendor, Some(0x10de));
        assert_eq!(id.device, Some(0x1b06));
        assert_eq!(id.subsystem, Some(0x3602_1462));
        assert_eq!(id.revision, Some(0xa1));
        assert_eq!(id.vendor_device().as_deref(), Some("10de:1b06"));
        assert!(!id.is_dismounted());
        let dismounted =
            InstanceId::parse(r"PCIP\VEN_144D&DEV_A820&SUBSYS_1F951028&REV_03\4&368722DD&0&0010")
                .unwrap();
        assert!(dismounted.is_dismounted());
        assert_eq!(
            host_form(&dismounted.to_string()),
            r"PCI\VEN_144D&DEV_A820&SUBSYS_1F951028&REV_03\4&368722DD&0&0010"
        );
    }

    #[test]
    fn parses_gpu_interface_paths() {
        let pv = GpuInterfacePath::parse(r"\\?\PCI#VEN_10DE&DEV_2531&SUBSYS_151D103C&REV_A1#4&18416dc3&0&0000#{064092b3-625e-43bf-9eb5-dc845897dd59}\GPUPARAV").unwrap();
        assert!(pv.paravirtual);
        assert_eq!(
            pv.instance_id.to_string(),
            r"PCI\VEN_10DE&DEV_2531&SUBSYS_151D103C&REV_A1\4&18416dc3&0&0000"
        );
        assert_eq!(pv.interface_class, "064092b3-625e-43bf-9eb5-dc845897dd59");
        let sriov = GpuInterfacePath::parse(r"\\?\PCI#VEN_10DE&DEV_25B6&SUBSYS_157E10DE&REV_A1#4&18416dc3&0&0000#{064092b3-625e-43bf-9eb5-dc845897dd59}").unwrap();
        assert!(!sriov.paravirtual);
        assert!(GpuInterfacePath::parse("PCI#x#y#{z}").is_err());
        assert!(GpuInterfacePath::parse(r"\\?\PCI#x#{z}").is_err());
    }

    #[test]
    fn interface_paths_map_to_instance_ids() {
        assert_eq!(
            interface_path_to_instance_id(r"\\?\scsi#disk&ven_nvme&prod_samsung#5&2a3b&0&000000#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}").as_deref(),
            Some(r"SCSI\disk&ven_nvme&prod_samsung\5&2a3b&0&000000")
        );
        assert_eq!(interface_path_to_instance_id("no"), None);
    }
}
