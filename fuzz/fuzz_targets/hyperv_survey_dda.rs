//! SurveyDDA output as people paste it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_hyperv::text::survey_dda;

fuzz_target!(|text: &str| {
    for entry in survey_dda::parse(text).entries {
        let _ = entry.assignable();
        let _ = entry.mmio_megabytes();
    }
});
