//! Host readiness: can this Windows do GPU partitioning and DDA, and what is in the way.

use super::{Check, DdaState, DeviceReport, GpuReport, HostKind, HostReport, Status};
use crate::mmio::{self, human};
use crate::model::{HostAnswers, PolicyValue};

fn check(id: &str, status: Status, summary: impl Into<String>) -> Check {
    Check {
        id: id.to_owned(),
        status,
        summary: summary.into(),
        detail: Vec::new(),
        help: None,
    }
}

impl Check {
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    fn detail(mut self, lines: Vec<String>) -> Self {
        self.detail = lines;
        self
    }
}

pub(super) fn report(
    answers: &HostAnswers,
    gpus: &[GpuReport],
    devices: &[DeviceReport],
) -> HostReport {
    let facts = &answers.host;
    let kind = match facts.is_server() {
        Some(true) => HostKind::Server,
        Some(false) => HostKind::Client,
        None => HostKind::Unknown,
    };
    let mut checks = Vec::new();

    let build = facts.build.map_or_else(
        || "unknown build".to_owned(),
        |build| match facts.ubr {
            Some(ubr) => format!("build {build}.{ubr}"),
            None => format!("build {build}"),
        },
    );
    checks.push(check(
        "windows",
        Status::Info,
        format!(
            "{} ({build}), {}",
            facts.caption.as_deref().unwrap_or("Windows"),
            match kind {
                HostKind::Client => "client edition",
                HostKind::Server => "server edition",
                HostKind::Unknown => "edition unknown",
            }
        ),
    ));

    let feature_on = facts
        .hyperv_feature
        .as_deref()
        .is_some_and(|state| state.eq_ignore_ascii_case("Enabled"));
    let vmms_running = facts
        .vmms_status
        .as_deref()
        .is_some_and(|status| status.eq_ignore_ascii_case("Running"));
    let hyperv = if feature_on && vmms_running && facts.hypervisor_present != Some(false) {
        check(
            "hyper-v",
            Status::Ok,
            "Hyper-V is enabled and its management service (vmms) is running",
        )
    } else if !feature_on {
        check("hyper-v", Status::Bad, format!(
            "the Hyper-V feature is {}",
            facts.hyperv_feature.as_deref().map_or("not reported".to_owned(), str::to_lowercase)
        ))
        .help(match kind {
            HostKind::Server => "Install-WindowsFeature -Name Hyper-V -IncludeManagementTools -Restart",
            _ => "Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V-All, then reboot",
        })
    } else if !vmms_running {
        check(
            "hyper-v",
            Status::Bad,
            format!(
                "the Hyper-V management service (vmms) is {}",
                facts
                    .vmms_status
                    .as_deref()
                    .map_or("missing".to_owned(), str::to_lowercase)
            ),
        )
        .help("Start-Service vmms")
    } else {
        check("hyper-v", Status::Bad, "Hyper-V is enabled but the hypervisor is not running")
            .help("turn on virtualization (VT-x/AMD-V) in the firmware and check `bcdedit /enum` for hypervisorlaunchtype Auto, then reboot")
    };
    checks.push(hyperv);

    checks.push(match facts.dma_protection() {
        Some(true) => check("iommu", Status::Ok, "DMA protection (IOMMU) is available"),
        Some(false) => check(
            "iommu",
            Status::Warn,
            "Windows reports no DMA protection (IOMMU); DDA needs one",
        )
        .help("enable VT-d / AMD-Vi (IOMMU) in the firmware"),
        None => check(
            "iommu",
            Status::Info,
            "DMA protection (IOMMU) could not be read (Win32_DeviceGuard)",
        ),
    });

    match facts.iov_support {
        Some(true) => checks.push(check("sr-iov", Status::Ok, "IovSupport: the host supports SR-IOV")),
        Some(false) => checks.push(
            check("sr-iov", Status::Warn, "IovSupport is false (SurveyDDA: \"this machine doesn't support using them in a VM\")")
                .detail(facts.iov_support_reasons.clone())
                .help("enable SR-IOV, VT-d/AMD-Vi and ACS in the firmware; SR-IOV GPU-P needs it, DDA usually works only where it is true"),
        ),
        None => {}
    }

    let dda_supported = kind != HostKind::Client;
    checks.push(match kind {
        HostKind::Server => check("dda", Status::Ok, "Discrete Device Assignment is supported on Windows Server"),
        HostKind::Client => check("dda", Status::Warn, "Discrete Device Assignment is not supported on client Windows (ProductType WinNT): VMs with assigned devices fail to start with 0xC035001E")
            .help("use GPU partitioning (`passthru gpu-p add`) on this host, or run DDA on Windows Server"),
        HostKind::Unknown => check("dda", Status::Info, "Windows did not report its ProductType; DDA needs Windows Server"),
    });

    let policy = facts.policy;
    let relaxed = PolicyValue::ALL
        .iter()
        .all(|value| policy.get(*value) == Some(0));
    if kind == HostKind::Server && !gpus.is_empty() {
        checks.push(if relaxed {
            check("gpu-policy", Status::Ok, "RequireSecureDeviceAssignment and RequireSupportedDeviceAssignment are 0")
        } else {
            check("gpu-policy", Status::Warn, format!(
                "RequireSecureDeviceAssignment = {}, RequireSupportedDeviceAssignment = {}: Windows Server refuses consumer GPU partitions unless both are 0",
                show(policy.require_secure_device_assignment),
                show(policy.require_supported_device_assignment)
            ))
            .help("`passthru gpu-p add` sets both to 0 (and `undo` restores them)")
        });
    }

    if let Some(state) = facts
        .wsl_feature
        .as_deref()
        .filter(|state| state.eq_ignore_ascii_case("Enabled"))
    {
        checks.push(
            check("wsl", Status::Warn, format!("Windows Subsystem for Linux is {}: Easy-GPU-PV users report it interfering with GPU partitions (Code 43 in the guest)", state.to_lowercase()))
                .help("if the guest shows Code 43, try with WSL disabled"),
        );
    }

    let display_count = devices
        .iter()
        .filter(|device| {
            device.class.as_deref() == Some("Display") && device.state != DdaState::Assigned
        })
        .count();
    if facts.is_laptop() {
        checks.push(
            check("laptop", Status::Warn, "this is a laptop: hybrid (Optimus) graphics often fail with GPU partitioning; laptops with a MUX switch set to the discrete GPU work better")
        );
    }
    let instance_path = facts.has_instance_path();
    if !gpus.is_empty() {
        checks.push(if instance_path {
            check("gpu-selection", Status::Ok, "Add-VMGpuPartitionAdapter can pin a partition to one GPU (-InstancePath)")
        } else if display_count > 1 || gpus.len() > 1 {
            check("gpu-selection", Status::Warn, "this Windows build (below 22000) cannot choose which GPU a partition uses, and there are several: Hyper-V picks one when the VM starts (the first VM may get the discrete GPU, the next the integrated one)")
                .help("upgrade the host to Windows 11 / Server 2022 or later to pin a GPU")
        } else {
            check("gpu-selection", Status::Info, "this Windows build (below 22000) cannot pin a partition to a GPU; with one GPU that does not matter")
        });
    }
    if let Some(cmdlet) = &answers.gpu_cmdlet {
        checks.push(check(
            "gpu-cmdlet",
            Status::Info,
            format!("partitionable GPUs are listed with {cmdlet}"),
        ));
    } else if facts.cmdlets.add_gpu_adapter || feature_on {
        checks.push(check("gpu-cmdlet", Status::Info, "no partitionable-GPU cmdlet on this host (GPU partitioning needs Windows 10 20H1 / build 19041 or later)"));
    }
    if facts.device_guard_read == Some(true) && facts.vbs_status != Some(2) {
        checks.push(check("vbs", Status::Info, "virtualization-based security is not running; a VM whose device requires it will not start (\"virtualization-based security is not running on the host\")"));
    }

    let max_high = facts
        .cpu_physical_address_bits
        .map(|bits| mmio::max_high(Some(bits), None));
    if let (Some(bits), Some(max_high)) = (facts.cpu_physical_address_bits, max_high) {
        let status = if max_high < mmio::GPU_P_MIN_HIGH {
            Status::Warn
        } else {
            Status::Info
        };
        checks.push(check(
            "cpu-address-width",
            status,
            format!(
                "the CPU addresses {bits} bits of physical memory: a VM's upper MMIO region can be at most {} here",
                human(max_high)
            ),
        ));
    }

    let dismounted: Vec<String> = devices
        .iter()
        .filter(|device| device.state == DdaState::Dismounted)
        .map(DeviceReport::label)
        .collect();
    if !dismounted.is_empty() {
        checks.push(
            check("dismounted", Status::Warn, format!(
                "{} device(s) are dismounted but in no VM, so neither the host nor a VM can use them",
                dismounted.len()
            ))
            .detail(dismounted)
            .help("give them back with `passthru release DEVICE`, or assign them with `passthru assign DEVICE --vm NAME`"),
        );
    }
    if !answers.problems.is_empty() {
        checks.push(
            check(
                "unreadable",
                Status::Warn,
                "parts of the host could not be read",
            )
            .detail(answers.problems.clone()),
        );
    }

    HostReport {
        name: facts.computer_name.clone(),
        os: facts.caption.clone(),
        edition: facts.edition_id.clone(),
        build: facts.build,
        ubr: facts.ubr,
        kind,
        cpu: facts.cpu_name.clone(),
        cpu_physical_address_bits: facts.cpu_physical_address_bits,
        max_high_mmio_bytes: max_high,
        gpu_cmdlet: answers.gpu_cmdlet.clone(),
        gpu_instance_path: instance_path,
        dda_supported,
        policy: policy.into(),
        checks,
    }
}

fn show(value: Option<u32>) -> String {
    value.map_or_else(|| "not set".to_owned(), |value| value.to_string())
}
