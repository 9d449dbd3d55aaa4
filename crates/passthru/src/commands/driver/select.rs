//! Which GPU's driver a `driver` command is about.
//!
//! Without `--gpu`: the GPU the VM has a partition of; with no partition (or one Windows 10
//! pins to no GPU), the only partitionable GPU. Anything ambiguous is refused with the
//! candidates.

use passthru_hyperv::plan::select;
use passthru_hyperv::ps::quote::cli_argument;
use passthru_hyperv::survey::{GpuReport, VmReport, WindowsSurvey};
use passthru_hyperv::text::instance::same_gpu_path;

use crate::hyperv::refusal_failure;
use crate::output::Failure;

/// The chosen GPU.
#[derive(Debug)]
pub(super) struct GpuChoice {
    /// Its Device Manager name.
    pub(super) name: String,
    /// Its PnP instance id (where its driver registration is).
    pub(super) instance_id: String,
    /// What to tell the user about the choice.
    pub(super) notes: Vec<String>,
}

/// Chooses the GPU for `vm`.
pub(super) fn choose(
    survey: &WindowsSurvey,
    vm: &VmReport,
    selector: Option<&str>,
) -> Result<GpuChoice, Failure> {
    let partitioned: Vec<&GpuReport> = survey
        .gpus
        .iter()
        .filter(|gpu| {
            vm.gpu_adapters.iter().any(|adapter| {
                !adapter.stale
                    && adapter
                        .instance_path
                        .as_deref()
                        .is_some_and(|path| same_gpu_path(path, &gpu.instance_path))
            })
        })
        .collect();
    let mut notes = Vec::new();
    let gpu = match selector {
        Some(selector) => {
            let gpu = select::gpu(survey, Some(selector)).map_err(|r| refusal_failure(&r))?;
            if !partitioned
                .iter()
                .any(|p| p.instance_path == gpu.instance_path)
            {
                notes.push(format!(
                    "VM '{}' has no partition of {}; add one with `passthru gpu-p add --vm {} --gpu {}`",
                    vm.name,
                    gpu.name,
                    cli_argument(&vm.name),
                    cli_argument(selector)
                ));
            }
            gpu
        }
        None => match partitioned.as_slice() {
            [one] => one,
            [] => {
                if vm.gpu_adapters.is_empty() {
                    notes.push(format!(
                        "VM '{}' has no GPU partition yet; `passthru gpu-p add --vm {}` adds one",
                        vm.name,
                        cli_argument(&vm.name)
                    ));
                }
                select::gpu(survey, None).map_err(|refusal| refusal_failure(&refusal))?
            }
            several => {
                return Err(Failure::new(format!(
                    "VM '{}' has partitions of {} GPUs; say whose driver to use with --gpu",
                    vm.name,
                    several.len()
                ))
                .with_help(format!(
                    "candidates: {}",
                    several
                        .iter()
                        .map(|gpu| format!(
                            "{} ({})",
                            gpu.name,
                            gpu.vendor_device.as_deref().unwrap_or("?")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
        },
    };
    let instance_id = gpu.instance_id.clone().ok_or_else(|| {
        Failure::new(format!(
            "Windows reported no device instance id for the GPU `{}`, so passthru cannot find its driver",
            gpu.instance_path
        ))
        .with_help("`passthru survey` shows what Windows reports about it")
    })?;
    Ok(GpuChoice {
        name: gpu.name.clone(),
        instance_id,
        notes,
    })
}
