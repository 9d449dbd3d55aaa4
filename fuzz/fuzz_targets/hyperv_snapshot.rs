//! Windows snapshot files (`survey --from`), down to the planners.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_hyperv::plan::dda::{AssignRequest, ReleaseRequest, plan_assign, plan_release};
use passthru_hyperv::plan::gpu_p::{AddRequest, plan_add};
use passthru_hyperv::snapshot::{WindowsSnapshot, platform_of};
use passthru_hyperv::survey::{Source, analyze};

fuzz_target!(|bytes: &[u8]| {
    let _ = platform_of(bytes);
    let Ok(snapshot) = WindowsSnapshot::load(bytes) else {
        return;
    };
    let survey = analyze(&snapshot.answers(), Source::default());
    let vm = survey
        .vms
        .first()
        .map(|vm| vm.name.clone())
        .unwrap_or_default();
    let device = survey
        .devices
        .first()
        .map(|device| device.instance_id.clone())
        .unwrap_or_default();
    let _ = plan_assign(
        &survey,
        &AssignRequest {
            devices: vec![device.clone()],
            vm: vm.clone(),
            stop_vm: true,
            force: true,
        },
    );
    let _ = plan_release(
        &survey,
        &ReleaseRequest {
            devices: vec![device],
            vm: Some(vm.clone()),
            stop_vm: true,
        },
    );
    let _ = plan_add(
        &survey,
        &AddRequest {
            vm,
            gpu: None,
            stop_vm: true,
            force: true,
        },
    );
});
