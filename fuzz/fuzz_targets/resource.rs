//! `pci::resource::parse_resource` on arbitrary text: it must not panic, nor must the totals
//! computed from what it returns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_core::pci::resource::parse_resource;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(resources) = parse_resource(&text) {
        let _ = (resources.mmio_total(), resources.mmio_64bit_prefetchable());
    }
});
