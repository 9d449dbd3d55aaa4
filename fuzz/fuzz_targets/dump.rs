//! `pci::dump::parse_dump` on arbitrary text, then `pci::config::decode` on every image it
//! reads: neither may panic, and no image may exceed 4096 bytes. Seed it with the real dumps:
//! `cargo +nightly fuzz run dump fuzz/corpus/dump fixtures/pci-config/gpu`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_core::pci::config::decode;
use passthru_core::pci::dump::{MAX_CONFIG_SIZE, parse_dump};

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(devices) = parse_dump(&text) {
        for device in devices {
            assert!(device.config.len() <= MAX_CONFIG_SIZE);
            let _ = decode(&device.config);
        }
    }
});
