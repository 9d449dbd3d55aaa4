//! `pci::config::decode` on arbitrary config-space images: it must not panic, and every
//! capability it lists must lie inside the image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_core::pci::config::{CapabilityReadout, decode};

fuzz_target!(|bytes: &[u8]| {
    if let CapabilityReadout::Decoded(caps) = decode(bytes) {
        for entry in &caps.list {
            let size = if entry.extended { 4 } else { 2 };
            assert!(
                usize::from(entry.offset) + size <= bytes.len(),
                "{entry:?} lies past the image"
            );
        }
    }
});
