//! `passthru gpu-p`: Hyper-V GPU partitioning.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use passthru_hyperv::mmio::human;
use passthru_hyperv::plan::gpu_p::{
    AddRequest, PartitionsRequest, RemoveRequest, plan_add, plan_partitions, plan_remove,
};
use passthru_hyperv::survey::GpuKind;

use crate::cli::GlobalArgs;
use crate::hyperv::apply::{connect_and_survey, plan_with_consent, run as run_plan};
use crate::hyperv::{HyperVArgs, Purpose};
use crate::output::{self, Failure, style};

/// GPU partitioning subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GpuPCommand {
    /// Add a GPU partition to a VM (and prepare the VM: cache types, MMIO, memory, policy).
    Add {
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Which partitionable GPU: part of its name, vendor:device, its instance id or path
        /// (default: the only one).
        #[arg(long, value_name = "SELECTOR")]
        gpu: Option<String>,
        /// Go ahead where passthru would refuse for a reason that can be overridden.
        #[arg(long)]
        force: bool,
        /// Print the exact plan (PowerShell) and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        hyperv: HyperVArgs,
    },
    /// Remove a VM's GPU partition adapters (all, or those of one GPU).
    Remove {
        /// The VM.
        #[arg(long, value_name = "NAME")]
        vm: String,
        /// Only partitions of this GPU.
        #[arg(long, value_name = "SELECTOR")]
        gpu: Option<String>,
        /// Print the exact plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        hyperv: HyperVArgs,
    },
    /// List partitionable GPUs and the VMs' partition adapters.
    List,
    /// Set how many partitions an SR-IOV GPU-P GPU offers.
    Partitions {
        /// Which GPU.
        #[arg(long, value_name = "SELECTOR")]
        gpu: String,
        /// Partition count (one of the GPU's valid counts).
        #[arg(long, value_name = "N")]
        count: u32,
        /// Print the exact plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        hyperv: HyperVArgs,
    },
}

pub(crate) fn run(command: GpuPCommand, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    match command {
        GpuPCommand::Add {
            vm,
            gpu,
            force,
            dry_run,
            hyperv,
        } => {
            let (mut host, survey) = connect_and_survey(Purpose::Change)?;
            let proposal = plan_with_consent(&hyperv, dry_run, global, |stop_vm| {
                plan_add(
                    &survey,
                    &AddRequest {
                        vm: vm.clone(),
                        gpu: gpu.clone(),
                        stop_vm,
                        force,
                    },
                )
            })?;
            run_plan(proposal, &mut host, &hyperv, dry_run, global)
        }
        GpuPCommand::Remove {
            vm,
            gpu,
            dry_run,
            hyperv,
        } => {
            let (mut host, survey) = connect_and_survey(Purpose::Change)?;
            let proposal = plan_with_consent(&hyperv, dry_run, global, |stop_vm| {
                plan_remove(
                    &survey,
                    &RemoveRequest {
                        vm: vm.clone(),
                        gpu: gpu.clone(),
                        stop_vm,
                    },
                )
            })?;
            run_plan(proposal, &mut host, &hyperv, dry_run, global)
        }
        GpuPCommand::Partitions {
            gpu,
            count,
            dry_run,
            hyperv,
        } => {
            let (mut host, survey) = connect_and_survey(Purpose::Change)?;
            let proposal = plan_with_consent(&hyperv, dry_run, global, |_| {
                plan_partitions(
                    &survey,
                    &PartitionsRequest {
                        gpu: gpu.clone(),
                        count,
                    },
                )
            })?;
            run_plan(proposal, &mut host, &hyperv, dry_run, global)
        }
        GpuPCommand::List => list(global),
    }
}

fn list(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let (_, survey) = connect_and_survey(Purpose::Read)?;
    if global.json {
        let vms: Vec<_> = survey
            .vms
            .iter()
            .filter(|vm| !vm.gpu_adapters.is_empty())
            .map(|vm| serde_json::json!({"name": vm.name, "state": vm.state, "adapters": vm.gpu_adapters}))
            .collect();
        output::print_json(&serde_json::json!({
            "schema": "passthru.gpu-p.list/1",
            "gpus": survey.gpus,
            "vms": vms,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = anstream::stdout().lock();
    let heading = |text: &str| format!("{}{text}{}", style::HEADING, style::HEADING.render_reset());
    if survey.gpus.is_empty() {
        let _ = writeln!(out, "No partitionable GPU on this host.");
    }
    for gpu in &survey.gpus {
        let kind = match gpu.kind {
            GpuKind::Paravirtual => "GPU-PV",
            GpuKind::SrIov => "SR-IOV GPU-P",
        };
        let _ = writeln!(
            out,
            "{}  {kind}, {} partitions{}",
            heading(&gpu.name),
            gpu.partition_count
                .map_or_else(|| "?".to_owned(), |count| count.to_string()),
            gpu.vram_bytes
                .map(|vram| format!(", {} VRAM", human(vram)))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "    {}", gpu.instance_path);
        let _ = writeln!(
            out,
            "    in VMs: {}",
            if gpu.used_by.is_empty() {
                "none".to_owned()
            } else {
                gpu.used_by.join(", ")
            }
        );
    }
    for vm in survey.vms.iter().filter(|vm| {
        vm.gpu_adapters
            .iter()
            .any(|adapter| adapter.stale || adapter.gpu.is_none())
    }) {
        for adapter in vm
            .gpu_adapters
            .iter()
            .filter(|adapter| adapter.stale || adapter.gpu.is_none())
        {
            let _ = writeln!(
                out,
                "{}: partition {} {}",
                heading(&vm.name),
                adapter
                    .instance_path
                    .as_deref()
                    .unwrap_or("(GPU chosen at VM start)"),
                if adapter.stale {
                    "is STALE: its GPU is gone (`passthru gpu-p remove`)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
