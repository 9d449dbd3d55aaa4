//! PCI addresses (`DDDD:BB:DD.F`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A PCI function address: segment (domain), bus, device and function.
///
/// Domains are usually four hex digits, but Intel VMD exposes its devices in domains such as
/// `10000`, so the domain is kept as a `u32` and printed with at least four digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI segment group ("domain"), up to 32 bits.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl PciAddress {
    /// Builds an address, checking the device and function ranges.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Result<Self, AddressError> {
        if device > 31 {
            return Err(AddressError::DeviceOutOfRange(device));
        }
        if function > 7 {
            return Err(AddressError::FunctionOutOfRange(function));
        }
        Ok(Self {
            domain,
            bus,
            device,
            function,
        })
    }

    /// The same slot's function 0 (the GPU of a GPU + HDMI audio pair, for example).
    pub fn function_zero(self) -> Self {
        Self {
            function: 0,
            ..self
        }
    }

    /// Whether `other` sits in the same slot (same domain, bus and device).
    pub fn same_slot(self, other: Self) -> bool {
        self.domain == other.domain && self.bus == other.bus && self.device == other.device
    }

    /// Parses the short form `BB:DD.F` (domain 0) as well as the full form.
    pub fn parse_lenient(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.matches(':').count() == 1 {
            return Self::from_str(&format!("0000:{text}"));
        }
        Self::from_str(text)
    }
}

/// Room for the longest address text: an eight-digit domain, then `:BB:DD.F` with a function
/// of up to two digits (the fields are public, so a function above 7 can be printed).
const MAX_TEXT_LEN: usize = 8 + 1 + 2 + 1 + 2 + 1 + 2;

impl PciAddress {
    /// Writes `DDDD:BB:DD.F` (`{:04x}:{:02x}:{:02x}.{:x}`) into `buffer` by hand: a survey
    /// prints several addresses per device, and `fmt`'s padding machinery was a visible cost.
    fn write_text(self, buffer: &mut [u8; MAX_TEXT_LEN]) -> &str {
        let mut len = push_hex(buffer, 0, self.domain, 4);
        for (separator, value, min_digits) in [
            (b':', self.bus, 2),
            (b':', self.device, 2),
            (b'.', self.function, 1),
        ] {
            buffer[len] = separator;
            len = push_hex(buffer, len + 1, u32::from(value), min_digits);
        }
        std::str::from_utf8(&buffer[..len]).expect("hex digits and separators are ASCII")
    }
}

/// Writes `value` in lowercase hex, at least `min_digits` long, at `buffer[at..]`; returns the
/// index after it.
fn push_hex(buffer: &mut [u8], at: usize, value: u32, min_digits: u32) -> usize {
    let digits = (u32::BITS - value.leading_zeros())
        .div_ceil(4)
        .max(min_digits);
    let mut at = at;
    for digit in (0..digits).rev() {
        buffer[at] = b"0123456789abcdef"[(value >> (4 * digit)) as usize & 0xf];
        at += 1;
    }
    at
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write_text(&mut [0; MAX_TEXT_LEN]))
    }
}

/// Why a text is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text does not have the `DDDD:BB:DD.F` shape.
    #[error("`{0}` is not a PCI address; expected DDDD:BB:DD.F, for example 0000:01:00.0")]
    Malformed(String),
    /// The device number is above 31.
    #[error("device number {0:#x} is out of range (0..=1f)")]
    DeviceOutOfRange(u8),
    /// The function number is above 7.
    #[error("function number {0} is out of range (0..=7)")]
    FunctionOutOfRange(u8),
}

impl FromStr for PciAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || AddressError::Malformed(text.to_owned());
        let (domain, rest) = text.split_once(':').ok_or_else(malformed)?;
        let (bus, rest) = rest.split_once(':').ok_or_else(malformed)?;
        let (device, function) = rest.split_once('.').ok_or_else(malformed)?;
        let hex_field = |field: &str, max_len: usize| {
            if field.is_empty()
                || field.len() > max_len
                || !field.bytes().all(|b| b.is_ascii_hexdigit())
            {
                Err(malformed())
            } else {
                u32::from_str_radix(field, 16).map_err(|_| malformed())
            }
        };
        let domain = hex_field(domain, 8)?;
        let bus = hex_field(bus, 2)? as u8;
        let device = hex_field(device, 2)?;
        let function = hex_field(function, 1)?;
        if device > 31 {
            return Err(AddressError::DeviceOutOfRange(device as u8));
        }
        Self::new(domain, bus, device as u8, function as u8)
    }
}

impl Serialize for PciAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.write_text(&mut [0; MAX_TEXT_LEN]))
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_the_usual_form() {
        let address: PciAddress = "0000:01:00.1".parse().unwrap();
        assert_eq!(address, PciAddress::new(0, 1, 0, 1).unwrap());
        assert_eq!(address.to_string(), "0000:01:00.1");
    }

    #[test]
    fn accepts_five_digit_vmd_domains() {
        let address: PciAddress = "10000:e1:00.0".parse().unwrap();
        assert_eq!(address.domain, 0x10000);
        assert_eq!(address.to_string(), "10000:e1:00.0");
    }

    #[test]
    fn short_form_means_domain_zero() {
        let address = PciAddress::parse_lenient("01:00.0").unwrap();
        assert_eq!(address.to_string(), "0000:01:00.0");
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        assert!("0000:01:20.0".parse::<PciAddress>().is_err());
        assert!("0000:01:00.8".parse::<PciAddress>().is_err());
        assert!("0000:01:00".parse::<PciAddress>().is_err());
        assert!("0000:1g:00.0".parse::<PciAddress>().is_err());
        assert!("".parse::<PciAddress>().is_err());
        assert!("+000:01:00.0".parse::<PciAddress>().is_err());
    }

    proptest! {
        #[test]
        fn display_round_trips(domain in any::<u32>(), bus in any::<u8>(), device in 0u8..32, function in 0u8..8) {
            let address = PciAddress::new(domain, bus, device, function).unwrap();
            prop_assert_eq!(address.to_string().parse::<PciAddress>().unwrap(), address);
        }

        #[test]
        fn text_is_the_padded_hex_form(domain in any::<u32>(), bus in any::<u8>(), device in any::<u8>(), function in any::<u8>()) {
            let address = PciAddress { domain, bus, device, function };
            let expected = format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}");
            prop_assert_eq!(address.to_string(), expected.clone());
            prop_assert_eq!(serde_json::to_string(&address).unwrap(), format!("\"{expected}\""));
        }

        #[test]
        fn parsing_never_panics(text in ".{0,24}") {
            let _ = text.parse::<PciAddress>();
            let _ = PciAddress::parse_lenient(&text);
        }
    }
}
