//! Fuzzes the INF parser and every typed view over it: no input may panic.
//!
//! Run: `cargo +nightly fuzz run inf` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_driver::inf::Inf;

fuzz_target!(|data: &[u8]| {
    let Ok(inf) = Inf::parse(data) else { return };
    let version = inf.version("amd64");
    let _ = version.driver_ver.map(|ver| ver.to_string());
    let _ = inf.package_files("amd64", "fuzz.inf");
    let _ = inf.copy_infs(None);
    // Every section as an install section, capped so one input stays fast to run.
    for section in inf.sections().iter().take(64) {
        let _ = inf.copy_files(&section.name);
        let _ = inf.service_binaries(&section.name);
    }
    if let Some(install) = inf.install_section("PCI\\VEN_10DE&DEV_2204", "amd64") {
        let _ = inf.copy_files(&install.name);
    }
});
