//! Device selectors: how people name the devices they mean, on every platform.
//!
//! A selector is a full PCI address (`0000:01:00.0`, also with a VMD domain such as
//! `10000:e1:00.0`), a short address (`01:00.0`, any domain), a `vendor:device` id pair
//! (`10de:2204`), or a case-insensitive substring of the device's name (`rtx 3090`). Each
//! selector must name exactly one device: a selector that fits several is an error listing
//! them, so that nobody hands the wrong one of two identical GPUs to a VM.

use std::fmt;
use std::str::FromStr;

use crate::pci::PciAddress;

/// What a platform's device must tell the selector logic about itself.
pub trait Selectable {
    /// The PCI address, when the platform knows it.
    fn pci_address(&self) -> Option<PciAddress>;
    /// Vendor and device id.
    fn pci_ids(&self) -> Option<(u16, u16)>;
    /// Whether the device's human name (vendor, device, subsystem names) contains `needle`,
    /// which is already lower-case.
    fn name_contains(&self, needle: &str) -> bool;
    /// One line naming the device for error messages (`0000:01:00.0 NVIDIA GA102 [10de:2204]`).
    fn describe(&self) -> String;
}

/// One way of naming a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// A full address, `DDDD:BB:DD.F`.
    Address(PciAddress),
    /// `BB:DD.F` in any domain.
    ShortAddress {
        /// Bus number.
        bus: u8,
        /// Device number.
        device: u8,
        /// Function number.
        function: u8,
    },
    /// `vendor:device`, four hex digits each.
    Ids {
        /// Vendor id.
        vendor: u16,
        /// Device id.
        device: u16,
    },
    /// A substring of the name, stored lower-case.
    Name(String),
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(address) => write!(f, "{address}"),
            Self::ShortAddress {
                bus,
                device,
                function,
            } => write!(f, "{bus:02x}:{device:02x}.{function:x}"),
            Self::Ids { vendor, device } => write!(f, "{vendor:04x}:{device:04x}"),
            Self::Name(name) => write!(f, "\"{name}\""),
        }
    }
}

/// Why a selector could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The selector text is empty.
    #[error(
        "an empty device selector names nothing; give a PCI address, vendor:device or part of a name"
    )]
    Empty,
    /// No device fits the selector.
    #[error(
        "no device matches {selector}; run `passthru survey` to see the devices and their addresses"
    )]
    NoMatch {
        /// The selector as given.
        selector: String,
    },
    /// Several devices fit the selector.
    #[error("{selector} matches {} devices; name one of them by its address:\n{}", candidates.len(), candidates.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    Ambiguous {
        /// The selector as given.
        selector: String,
        /// One line per matching device.
        candidates: Vec<String>,
    },
}

fn parse_hex4(text: &str) -> Option<u16> {
    (text.len() == 4 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u16::from_str_radix(text, 16).ok())
        .flatten()
}

impl FromStr for DeviceSelector {
    type Err = SelectError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SelectError::Empty);
        }
        if text.contains('.') && text.contains(':') {
            if text.matches(':').count() == 2
                && let Ok(address) = text.parse::<PciAddress>()
            {
                return Ok(Self::Address(address));
            }
            if text.matches(':').count() == 1
                && let Ok(address) = PciAddress::parse_lenient(text)
            {
                return Ok(Self::ShortAddress {
                    bus: address.bus,
                    device: address.device,
                    function: address.function,
                });
            }
        }
        if let Some((vendor, device)) = text.split_once(':')
            && let (Some(vendor), Some(device)) = (parse_hex4(vendor), parse_hex4(device))
        {
            return Ok(Self::Ids { vendor, device });
        }
        Ok(Self::Name(text.to_lowercase()))
    }
}

impl DeviceSelector {
    /// Whether `item` fits this selector.
    pub fn matches<T: Selectable + ?Sized>(&self, item: &T) -> bool {
        match self {
            Self::Address(address) => item.pci_address() == Some(*address),
            Self::ShortAddress {
                bus,
                device,
                function,
            } => item.pci_address().is_some_and(|address| {
                address.bus == *bus && address.device == *device && address.function == *function
            }),
            Self::Ids { vendor, device } => item.pci_ids() == Some((*vendor, *device)),
            Self::Name(needle) => item.name_contains(needle),
        }
    }
}

/// The indices of the items named by `selectors`, in item order, without repeats. Every
/// selector must fit exactly one item.
pub fn select<T: Selectable>(
    items: &[T],
    selectors: &[DeviceSelector],
) -> Result<Vec<usize>, SelectError> {
    let mut chosen = Vec::new();
    for selector in selectors {
        let matching: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| selector.matches(*item))
            .map(|(index, _)| index)
            .collect();
        match matching.as_slice() {
            [] => {
                return Err(SelectError::NoMatch {
                    selector: selector.to_string(),
                });
            }
            [index] => chosen.push(*index),
            _ => {
                return Err(SelectError::Ambiguous {
                    selector: selector.to_string(),
                    candidates: matching
                        .iter()
                        .map(|&index| items[index].describe())
                        .collect(),
                });
            }
        }
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

/// Parses selector texts, then [`select`]s.
pub fn select_by_text<T: Selectable, S: AsRef<str>>(
    items: &[T],
    texts: &[S],
) -> Result<Vec<usize>, SelectError> {
    let selectors = texts
        .iter()
        .map(|text| text.as_ref().parse())
        .collect::<Result<Vec<DeviceSelector>, _>>()?;
    select(items, &selectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Fake {
        address: &'static str,
        ids: (u16, u16),
        name: &'static str,
    }

    impl Selectable for Fake {
        fn pci_address(&self) -> Option<PciAddress> {
            self.address.parse().ok()
        }
        fn pci_ids(&self) -> Option<(u16, u16)> {
            Some(self.ids)
        }
        fn name_contains(&self, needle: &str) -> bool {
            self.name.to_lowercase().contains(needle)
        }
        fn describe(&self) -> String {
            format!("{} {}", self.address, self.name)
        }
    }

    fn host() -> Vec<Fake> {
        vec![
            Fake {
                address: "0000:01:00.0",
                ids: (0x10de, 0x2204),
                name: "NVIDIA GA102 [GeForce RTX 3090]",
            },
            Fake {
                address: "0000:01:00.1",
                ids: (0x10de, 0x1aef),
                name: "NVIDIA GA102 High Definition Audio Controller",
            },
            Fake {
                address: "0000:02:00.0",
                ids: (0x10de, 0x2204),
                name: "NVIDIA GA102 [GeForce RTX 3090]",
            },
            Fake {
                address: "10000:e1:00.0",
                ids: (0x144d, 0xa826),
                name: "Samsung NVMe SSD Controller PM174X",
            },
        ]
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "0000:01:00.0".parse::<DeviceSelector>().unwrap(),
            DeviceSelector::Address("0000:01:00.0".parse().unwrap())
        );
        assert_eq!(
            "e1:00.0".parse::<DeviceSelector>().unwrap(),
            DeviceSelector::ShortAddress {
                bus: 0xe1,
                device: 0,
                function: 0
            }
        );
        assert_eq!(
            "10DE:2204".parse::<DeviceSelector>().unwrap(),
            DeviceSelector::Ids {
                vendor: 0x10de,
                device: 0x2204
            }
        );
        assert_eq!(
            "RTX 3090".parse::<DeviceSelector>().unwrap(),
            DeviceSelector::Name("rtx 3090".into())
        );
        assert_eq!("  ".parse::<DeviceSelector>(), Err(SelectError::Empty));
    }

    #[test]
    fn selects_by_address_short_address_and_vmd_domain() {
        let host = host();
        assert_eq!(select_by_text(&host, &["0000:01:00.1"]).unwrap(), vec![1]);
        assert_eq!(select_by_text(&host, &["02:00.0"]).unwrap(), vec![2]);
        assert_eq!(select_by_text(&host, &["e1:00.0"]).unwrap(), vec![3]);
        assert_eq!(select_by_text(&host, &["10000:e1:00.0"]).unwrap(), vec![3]);
    }

    #[test]
    fn identical_gpus_are_ambiguous_and_listed() {
        let host = host();
        let error = select_by_text(&host, &["10de:2204"]).unwrap_err();
        let SelectError::Ambiguous { candidates, .. } = &error else {
            panic!("expected ambiguity, got {error:?}");
        };
        assert_eq!(candidates.len(), 2);
        assert!(error.to_string().contains("0000:02:00.0"));
        assert!(select_by_text(&host, &["ga102"]).is_err());
    }

    #[test]
    fn names_are_case_insensitive_and_results_deduplicated() {
        let host = host();
        assert_eq!(
            select_by_text(&host, &["audio", "0000:01:00.1", "samsung"]).unwrap(),
            vec![1, 3]
        );
    }

    #[test]
    fn no_match_says_so() {
        let error = select_by_text(&host(), &["8086:1234"]).unwrap_err();
        assert_eq!(
            error,
            SelectError::NoMatch {
                selector: "8086:1234".into()
            }
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,30}") {
            let _ = text.parse::<DeviceSelector>();
        }
    }
}
