//! What PowerShell prints: the answer envelope, the survey answer inside it, the error
//! classification, and every conclusion drawn from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_hyperv::error::classify;
use passthru_hyperv::model::HostAnswers;
use passthru_hyperv::ps::envelope;
use passthru_hyperv::survey::{Source, analyze};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(answer) = envelope::parse(bytes) {
        if let Some(record) = &answer.error {
            let error = classify(record);
            let _ = error.summary();
            let _ = error.help();
        }
        for value in &answer.data {
            let _ = analyze(&HostAnswers::from_value(value), Source::default());
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let _ = analyze(&HostAnswers::from_value(&value), Source::default());
    }
});
