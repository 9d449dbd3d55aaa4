//! `Format-List` text as people paste it (bug reports, procedures).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_hyperv::model::{GpuAdapter, HostAssignableDevice, PartitionableGpu, PnpDevice};
use passthru_hyperv::text::format_list;

fuzz_target!(|text: &str| {
    for record in format_list::parse(text) {
        let _ = PartitionableGpu::from_list_record(&record);
        let _ = GpuAdapter::from_list_record(&record);
        let _ = PnpDevice::from_list_record(&record);
        let _ = HostAssignableDevice::from_list_record(&record);
        for (_, value) in &record.fields {
            let _ = format_list::parse_number(value);
            let _ = format_list::parse_list(value);
        }
    }
});
