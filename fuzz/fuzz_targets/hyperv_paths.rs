//! Location paths, instance ids, GPU interface paths and WMI object paths from the host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_hyperv::text::instance::{
    GpuInterfacePath, InstanceId, interface_path_to_instance_id,
};
use passthru_hyperv::text::location::LocationPath;
use passthru_hyperv::text::wmi_path::WmiPath;

fuzz_target!(|text: &str| {
    if let Ok(path) = LocationPath::parse(text) {
        assert_eq!(LocationPath::parse(&path.to_string()).as_ref(), Ok(&path));
        let _ = path.slot();
        let _ = path.parent();
    }
    if let Ok(id) = InstanceId::parse(text) {
        let _ = id.vendor_device();
        let _ = id.with_enumerator("PCI");
    }
    let _ = GpuInterfacePath::parse(text);
    let _ = interface_path_to_instance_id(text);
    let _ = WmiPath::parse(text);
});
