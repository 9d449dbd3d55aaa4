//! PCI class codes and the coarse categories users filter by.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A 24-bit PCI class code: base class, subclass and programming interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassCode(pub u32);

impl ClassCode {
    /// The base class (the top byte), e.g. `0x03` for display controllers.
    pub fn base(self) -> u8 {
        (self.0 >> 16) as u8
    }

    /// The subclass, e.g. `0x02` for a 3D controller within base class `0x03`.
    pub fn sub(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The programming interface byte.
    pub fn prog_if(self) -> u8 {
        self.0 as u8
    }

    /// Base class and subclass together, e.g. `0x0300`.
    pub fn base_sub(self) -> u16 {
        (self.0 >> 8) as u16
    }

    /// The coarse category used by filters and by the human output.
    pub fn category(self) -> DeviceCategory {
        match (self.base(), self.sub()) {
            // VGA-compatible, XGA and 3D controllers (laptop/compute dGPUs are 3D controllers).
            (0x03, 0x00 | 0x01 | 0x02 | 0x80) => DeviceCategory::Gpu,
            (0x04, 0x01 | 0x03) => DeviceCategory::Audio,
            (0x02, _) => DeviceCategory::Network,
            (0x01, _) => DeviceCategory::Storage,
            (0x0c, 0x03) => DeviceCategory::Usb,
            (0x06, 0x00) => DeviceCategory::HostBridge,
            (0x06, 0x04 | 0x09) => DeviceCategory::Bridge,
            (0x06, _) => DeviceCategory::OtherBridge,
            _ => DeviceCategory::Other,
        }
    }

    /// Whether this is a PCI-to-PCI bridge (root port, switch port, conventional bridge).
    pub fn is_pci_bridge(self) -> bool {
        matches!(self.base_sub(), 0x0604 | 0x0609)
    }
}

impl fmt::Display for ClassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06x}", self.0 & 0x00ff_ffff)
    }
}

impl FromStr for ClassCode {
    type Err = String;

    /// Accepts the sysfs form `0x030000` and the bare form `030000`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text
            .trim()
            .strip_prefix("0x")
            .unwrap_or_else(|| text.trim());
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{}` is not a PCI class code", text.trim()));
        }
        u32::from_str_radix(digits, 16)
            .map(ClassCode)
            .map_err(|_| format!("`{}` is not a PCI class code", text.trim()))
    }
}

impl Serialize for ClassCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("0x{self}"))
    }
}

impl<'de> Deserialize<'de> for ClassCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Coarse device categories. `gpu` covers VGA *and* 3D controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceCategory {
    /// Display controllers: VGA, XGA, 3D and other display controllers.
    Gpu,
    /// HD Audio and audio devices (including a GPU's HDMI/DP audio function).
    Audio,
    /// Network controllers (Ethernet, Wi-Fi, InfiniBand, ...).
    Network,
    /// Mass storage controllers (NVMe, SATA/AHCI, SAS, RAID, ...).
    Storage,
    /// USB controllers.
    Usb,
    /// Host bridges.
    HostBridge,
    /// PCI-to-PCI bridges: root ports, switch ports, conventional bridges.
    Bridge,
    /// Other bridge types (ISA/LPC bridges and the like).
    OtherBridge,
    /// Everything else.
    Other,
}

impl DeviceCategory {
    /// The name used on the command line (`--class gpu`) and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gpu => "gpu",
            Self::Audio => "audio",
            Self::Network => "net",
            Self::Storage => "storage",
            Self::Usb => "usb",
            Self::HostBridge => "host-bridge",
            Self::Bridge => "bridge",
            Self::OtherBridge => "other-bridge",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_covers_vga_and_3d_controllers() {
        assert_eq!(ClassCode(0x030000).category(), DeviceCategory::Gpu);
        assert_eq!(ClassCode(0x030200).category(), DeviceCategory::Gpu);
        assert_eq!(ClassCode(0x040300).category(), DeviceCategory::Audio);
        assert_eq!(ClassCode(0x010802).category(), DeviceCategory::Storage);
        assert_eq!(ClassCode(0x0c0330).category(), DeviceCategory::Usb);
        assert_eq!(ClassCode(0x060400).category(), DeviceCategory::Bridge);
        assert_eq!(ClassCode(0x060000).category(), DeviceCategory::HostBridge);
    }

    #[test]
    fn parses_sysfs_text() {
        assert_eq!(
            "0x030000\n".parse::<ClassCode>().unwrap(),
            ClassCode(0x030000)
        );
        assert!("0xzz".parse::<ClassCode>().is_err());
        assert!("".parse::<ClassCode>().is_err());
        assert_eq!(ClassCode(0x030000).to_string(), "030000");
    }
}
