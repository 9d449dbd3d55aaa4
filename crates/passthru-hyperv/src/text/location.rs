//! PnP location paths (`DEVPKEY_Device_LocationPaths`): `PCIROOT(0)#PCI(0301)#PCI(0000)`.
//!
//! The location path names a PCI function by the route from its root bus: `PCIROOT(x)` (hex root
//! bus number) followed by one `PCI(ddff)` hop per bridge level, `dd` the device and `ff` the
//! function, both hex (`1400` = device 20, function 0). DDA cmdlets take this path, and unlike
//! the instance id it does not change when a device is dismounted (`PCI\` → `PCIP\`). A device
//! usually also has an `ACPI(...)` path; passthru prefers the `PCIROOT` one, as ExHyperV does
//! (SurveyDDA takes the first entry, whatever it is).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A parsed `PCIROOT(...)#PCI(...)...` path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocationPath {
    /// The root bus (`PCIROOT(B4)` → 0xB4).
    pub root: u32,
    /// `(device, function)` per hop, from the root down to the function itself.
    pub hops: Vec<(u8, u8)>,
}

/// Why a string is not a PCI location path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a PCI location path ({reason}); expected something like PCIROOT(0)#PCI(0100)#PCI(0000)"
)]
pub struct LocationError {
    /// The input.
    pub text: String,
    /// What was wrong.
    pub reason: &'static str,
}

impl LocationPath {
    /// Parses a location path. Spaces are ignored (`PCIROOT (0) #PCI (1004)` as typed in forum
    /// posts), case does not matter.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        let error = |reason| LocationError {
            text: text.to_owned(),
            reason,
        };
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let mut parts = compact.split('#');
        let root_part = parts.next().unwrap_or_default();
        let root_hex = root_part
            .strip_prefix("PCIROOT(")
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| error("it does not start with PCIROOT(...)"))?;
        if root_hex.is_empty() || root_hex.len() > 8 {
            return Err(error("the root bus is not a hex number"));
        }
        let root = u32::from_str_radix(root_hex, 16)
            .map_err(|_| error("the root bus is not a hex number"))?;
        let mut hops = Vec::new();
        for part in parts {
            let digits = part
                .strip_prefix("PCI(")
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(|| error("a hop is not PCI(ddff)"))?;
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error("a hop is not PCI(ddff) with four hex digits"));
            }
            let device = u8::from_str_radix(&digits[..2], 16)
                .map_err(|_| error("a hop is not PCI(ddff)"))?;
            let function = u8::from_str_radix(&digits[2..], 16)
                .map_err(|_| error("a hop is not PCI(ddff)"))?;
            if device > 31 || function > 7 {
                return Err(error("a hop names a device above 31 or a function above 7"));
            }
            hops.push((device, function));
        }
        if hops.is_empty() {
            return Err(error("it has no PCI(...) hop"));
        }
        Ok(Self { root, hops })
    }

    /// The function number of the device itself.
    pub fn function(&self) -> u8 {
        self.hops.last().map_or(0, |hop| hop.1)
    }

    /// The path of the same card's function 0 (ExHyperV's `CardKey`): a GPU and its HDMI audio
    /// share it, so they move together.
    pub fn slot(&self) -> Self {
        let mut slot = self.clone();
        if let Some(last) = slot.hops.last_mut() {
            last.1 = 0;
        }
        slot
    }

    /// Whether `other` is another function of the same card.
    pub fn same_slot(&self, other: &Self) -> bool {
        self.slot() == other.slot()
    }

    /// The path of the bridge (or root port) above this device, if any.
    pub fn parent(&self) -> Option<Self> {
        (self.hops.len() > 1).then(|| Self {
            root: self.root,
            hops: self.hops[..self.hops.len() - 1].to_vec(),
        })
    }
}

impl fmt::Display for LocationPath {
    /// Renders the path the way Windows prints it: `PCIROOT(B4)#PCI(0100)#PCI(0000)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PCIROOT({:X})", self.root)?;
        for (device, function) in &self.hops {
            write!(f, "#PCI({device:02X}{function:02X})")?;
        }
        Ok(())
    }
}

/// Picks the `PCIROOT(...)` entry from a device's location paths, as ExHyperV does.
pub fn pick_pci_path<S: AsRef<str>>(paths: &[S]) -> Option<&str> {
    paths
        .iter()
        .map(AsRef::as_ref)
        .find(|path| LocationPath::parse(path).is_ok())
}

/// Splits a `"; "`-joined list of location paths (how people print the property with
/// `-join '; '`) into its entries.
pub fn split_joined(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Two location path strings name the same device (Windows compares them without regard to
/// case; passthru also ignores spaces and leading zeros in the root).
pub fn same_location(a: &str, b: &str) -> bool {
    match (LocationPath::parse(a), LocationPath::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_paths() {
        let gpu = LocationPath::parse("PCIROOT(0)#PCI(0301)#PCI(0000)").unwrap();
        assert_eq!(gpu.root, 0);
        assert_eq!(gpu.hops, vec![(3, 1), (0, 0)]);
        let switch = LocationPath::parse(
            "PCIROOT(B4)#PCI(0100)#PCI(0000)#PCI(0200)#PCI(0000)#PCI(0800)#PCI(0000)",
        )
        .unwrap();
        assert_eq!(switch.root, 0xB4);
        assert_eq!(switch.hops.len(), 6);
        assert_eq!(
            switch.to_string(),
            "PCIROOT(B4)#PCI(0100)#PCI(0000)#PCI(0200)#PCI(0000)#PCI(0800)#PCI(0000)"
        );
        let typed = LocationPath::parse("PCIROOT (0) #PCI (1004) #PCI (0000)").unwrap();
        assert_eq!(typed.to_string(), "PCIROOT(0)#PCI(1004)#PCI(0000)");
        assert_eq!(
            LocationPath::parse("PCIROOT(0)#PCI(1400)").unwrap().hops,
            vec![(0x14, 0)]
        );
    }

    #[test]
    fn rejects_other_paths_with_reasons() {
        for bad in [
            "ACPI(_SB_)#ACPI(PCI0)#ACPI(GPP8)#ACPI(VGA_)",
            "PCIROOT(0)",
            "PCIROOT(0)#PCI(301)",
            "PCIROOT(0)#PCI(2000)",
            "PCIROOT(0)#PCI(0008)",
            "PCIROOT(ZZ)#PCI(0000)",
            "",
        ] {
            assert!(LocationPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audio_function_shares_the_gpu_slot() {
        let gpu = LocationPath::parse("PCIROOT(0)#PCI(0301)#PCI(0000)").unwrap();
        let audio = LocationPath::parse("PCIROOT(0)#PCI(0301)#PCI(0001)").unwrap();
        let other = LocationPath::parse("PCIROOT(0)#PCI(0302)#PCI(0000)").unwrap();
        assert!(gpu.same_slot(&audio));
        assert!(!gpu.same_slot(&other));
        assert_eq!(audio.function(), 1);
        assert_eq!(audio.parent().unwrap().to_string(), "PCIROOT(0)#PCI(0301)");
    }

    #[test]
    fn picks_the_pciroot_entry() {
        let paths = split_joined("ACPI(_SB_)#ACPI(PCI0); PCIROOT(0)#PCI(0301)#PCI(0000)");
        assert_eq!(
            pick_pci_path(&paths),
            Some("PCIROOT(0)#PCI(0301)#PCI(0000)")
        );
        assert!(same_location(
            "pciroot(00)#pci(0301)#pci(0000)",
            "PCIROOT(0)#PCI(0301)#PCI(0000)"
        ));
    }
}
