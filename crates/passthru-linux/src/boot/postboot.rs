//! After the next boot: did the persistent assignment take effect, and if not, why?
//!
//! The answer compares passthru's record with what this boot shows: the kernel command line
//! (`/proc/cmdline`: did the boot go through an entry passthru configured?), when the system
//! booted (`btime` in `/proc/stat`: has it rebooted since the change?), whether the IOMMU and
//! vfio-pci are there, and each device's driver and `driver_override`. A device on vfio-pci
//! whose boot did not carry passthru's parameter was bound at run time, not by the boot
//! configuration, and is reported as such.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use serde::{Deserialize, Serialize};

use super::BootError;
use super::cmdline;
use super::policy::ADDRESS_SWITCH;
use super::render::UDEV_RULE;
use super::state::{self, BindingMethod, PersistentState};

/// A device as this boot shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNow {
    /// Its address.
    pub address: PciAddress,
    /// Whether it exists at all.
    pub present: bool,
    /// Bound driver.
    pub driver: Option<String>,
    /// `driver_override` (`None` when unset, i.e. `(null)`).
    pub driver_override: Option<String>,
}

/// What this boot shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// When the system booted (seconds since the epoch), from `/proc/stat`.
    pub boot_time: Option<u64>,
    /// Whether an IOMMU is active (`/sys/class/iommu` has entries).
    pub iommu_active: bool,
    /// Whether vfio-pci is loaded or built in (`/sys/module/vfio_pci`).
    pub vfio_pci_present: bool,
    /// Whether passthru's udev rule is installed.
    pub rule_installed: bool,
    /// The devices of the record.
    pub devices: Vec<DeviceNow>,
}

/// The verdict for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// On vfio-pci since boot, through passthru's boot configuration.
    Effective,
    /// The configuration changed after this boot; it takes effect at the next one.
    PendingReboot,
    /// On vfio-pci, but not because of the boot configuration (bound at run time).
    BoundAtRunTime,
    /// Not on vfio-pci; the reasons say why.
    NotEffective,
}

/// One device's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The device.
    pub address: PciAddress,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in sentences a person can act on.
    pub reasons: Vec<String>,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostBootReport {
    /// How the devices are bound at boot.
    pub binding: BindingMethod,
    /// The kernel parameter that must be on this boot's command line.
    pub required_param: String,
    /// Per device.
    pub findings: Vec<Finding>,
}

impl PostBootReport {
    /// Whether every device is on vfio-pci through the boot configuration.
    pub fn all_effective(&self) -> bool {
        self.findings
            .iter()
            .all(|finding| finding.verdict == Verdict::Effective)
    }
}

/// Reads the record and this boot's state under `fs` and assesses them. `None` when passthru
/// has no persistent assignment there.
pub fn check(fs: &dyn HostFs) -> Result<Option<PostBootReport>, BootError> {
    let Some(state) = state::load(fs)? else {
        return Ok(None);
    };
    let observation = observe(fs, &state);
    Ok(Some(assess(&state, &observation)))
}

/// Reads what this boot shows about the recorded devices.
pub fn observe(fs: &dyn HostFs, state: &PersistentState) -> Observation {
    let devices = state
        .devices
        .iter()
        .map(|device| {
            let dir = Path::new("/sys/bus/pci/devices").join(device.address.to_string());
            let driver = fs.resolve_link(&dir.join("driver")).ok().and_then(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            });
            let driver_override = fs
                .read_text(&dir.join("driver_override"))
                .ok()
                .filter(|text| !text.is_empty() && text != "(null)");
            DeviceNow {
                address: device.address,
                present: fs.exists(&dir),
                driver,
                driver_override,
            }
        })
        .collect();
    let boot_time = fs.read(Path::new("/proc/stat")).ok().and_then(|bytes| {
        String::from_utf8_lossy(&bytes)
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|value| value.trim().parse().ok())
    });
    Observation {
        cmdline: fs.read_text(Path::new("/proc/cmdline")).unwrap_or_default(),
        boot_time,
        iommu_active: fs
            .read_dir(Path::new("/sys/class/iommu"))
            .is_ok_and(|entries| !entries.is_empty()),
        vfio_pci_present: fs.exists(Path::new("/sys/module/vfio_pci")),
        rule_installed: fs.exists(Path::new(UDEV_RULE)),
        devices,
    }
}

/// The kernel parameter that carries the binding.
fn required_param(state: &PersistentState) -> String {
    match state.binding {
        BindingMethod::Address => ADDRESS_SWITCH.to_owned(),
        BindingMethod::Ids => state
            .kernel_params
            .iter()
            .find(|param| cmdline::normalized_name(param) == "vfio_pci.ids")
            .cloned()
            .unwrap_or_else(|| "vfio-pci.ids=".to_owned()),
    }
}

/// Compares the record with an observation.
pub fn assess(state: &PersistentState, now: &Observation) -> PostBootReport {
    let required = required_param(state);
    let booted_with = cmdline::contains(&now.cmdline, &required);
    let changed_at = humantime::parse_rfc3339(&state.changed_at)
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|age| age.as_secs());
    let changed_after_boot =
        matches!((changed_at, now.boot_time), (Some(changed), Some(boot)) if changed > boot);
    let findings = now
        .devices
        .iter()
        .map(|device| {
            let mut reasons = Vec::new();
            let on_vfio = device.driver.as_deref() == Some("vfio-pci");
            let verdict = if !device.present {
                reasons.push(format!(
                    "there is no device at {} now; if the card moved to another slot its \
                     address changed: release it and assign the new address",
                    device.address
                ));
                Verdict::NotEffective
            } else if changed_after_boot {
                reasons.push(format!(
                    "the boot configuration was changed at {} (after this boot at {}); it takes \
                     effect at the next boot",
                    state.changed_at,
                    format_epoch(now.boot_time.unwrap_or_default())
                ));
                Verdict::PendingReboot
            } else if on_vfio && booted_with {
                if state.binding == BindingMethod::Address
                    && device.driver_override.as_deref() != Some("vfio-pci")
                {
                    reasons.push(
                        "on vfio-pci, but driver_override is not vfio-pci, so something other \
                         than passthru's udev rule bound it"
                            .into(),
                    );
                    Verdict::BoundAtRunTime
                } else {
                    Verdict::Effective
                }
            } else if on_vfio {
                reasons.push(format!(
                    "on vfio-pci, but this boot's command line lacks {required}: the boot \
                     configuration did not bind it (it was bound at run time). The boot went \
                     through an entry passthru did not configure: a recovery or fallback entry, \
                     another boot loader, or a menu that was not regenerated"
                ));
                Verdict::BoundAtRunTime
            } else {
                not_effective_reasons(state, now, device, &required, booted_with, &mut reasons);
                Verdict::NotEffective
            };
            Finding {
                address: device.address,
                verdict,
                reasons,
            }
        })
        .collect();
    PostBootReport {
        binding: state.binding,
        required_param: required,
        findings,
    }
}

fn not_effective_reasons(
    state: &PersistentState,
    now: &Observation,
    device: &DeviceNow,
    required: &str,
    booted_with: bool,
    reasons: &mut Vec<String>,
) {
    let holder = device.driver.as_deref().map_or_else(
        || "no driver".to_owned(),
        |driver| format!("driver {driver}"),
    );
    if !booted_with {
        reasons.push(format!(
            "this boot's command line lacks {required}, so the boot configuration was not used: \
             the boot went through a recovery or fallback entry, another boot loader, or a menu \
             that was not regenerated (it has {holder})"
        ));
        return;
    }
    if !now.iommu_active {
        reasons.push(
            "no IOMMU is active (/sys/class/iommu is empty): switch on VT-d or AMD-Vi (SVM/IOMMU) \
             in the firmware settings"
                .into(),
        );
    }
    if !now.vfio_pci_present {
        reasons.push(
            "vfio-pci never loaded in this boot: the initramfs does not carry it, or nothing \
             asked for it; check the image with lsinitramfs/lsinitrd/lsinitcpio"
                .into(),
        );
    }
    match state.binding {
        BindingMethod::Address => {
            if !now.rule_installed {
                reasons.push(format!("{UDEV_RULE} is missing"));
            } else if device.driver_override.as_deref() != Some("vfio-pci") {
                reasons.push(
                    "driver_override is not vfio-pci, so passthru's udev rule did not run for \
                     it (is the rule in the initramfs?)"
                        .into(),
                );
            }
        }
        BindingMethod::Ids => {}
    }
    if let Some(driver) = &device.driver {
        reasons.push(format!(
            "{driver} took it before vfio-pci could: {driver} is built into the kernel or loaded \
             before vfio-pci (check /etc/modprobe.d/passthru-vfio.conf and the initramfs)"
        ));
    } else if now.vfio_pci_present {
        reasons.push(
            "vfio-pci is loaded but did not bind it; see `dmesg | grep -i vfio` for the reason"
                .into(),
        );
    }
}

fn format_epoch(seconds: u64) -> String {
    let time: SystemTime = UNIX_EPOCH + Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::detect::{BootloaderKind, GeneratorKind};
    use crate::boot::facts::PciId;
    use crate::boot::state::{PersistedDevice, STATE_SCHEMA};
    use passthru_core::pci::ClassCode;
    use std::collections::BTreeMap;

    fn state(binding: BindingMethod) -> PersistentState {
        PersistentState {
            schema: STATE_SCHEMA.into(),
            changed_at: "2025-01-01T10:00:00Z".into(),
            devices: vec![PersistedDevice {
                address: "0000:01:00.0".parse().unwrap(),
                id: PciId {
                    vendor: 0x1002,
                    device: 0x73ff,
                },
                class: ClassCode(0x030000),
                host_drivers: vec!["amdgpu".into()],
                boot_vga: false,
            }],
            binding,
            bootloader: BootloaderKind::Grub,
            generator: GeneratorKind::InitramfsTools,
            kernel_params: vec!["iommu=pt".into(), "vfio-pci.ids=1002:73ff".into()],
            early_modules: vec!["vfio_pci".into()],
            added: BTreeMap::new(),
            owned_files: Vec::new(),
            created_dirs: Vec::new(),
            kernels: Vec::new(),
        }
    }

    fn observation(cmdline: &str, driver: Option<&str>) -> Observation {
        Observation {
            cmdline: cmdline.into(),
            // 2025-01-02: after the change.
            boot_time: Some(1_735_776_000),
            iommu_active: true,
            vfio_pci_present: true,
            rule_installed: false,
            devices: vec![DeviceNow {
                address: "0000:01:00.0".parse().unwrap(),
                present: true,
                driver: driver.map(str::to_owned),
                driver_override: None,
            }],
        }
    }

    #[test]
    fn effective_when_booted_with_the_parameter_and_on_vfio() {
        let report = assess(
            &state(BindingMethod::Ids),
            &observation(
                "BOOT_IMAGE=/vmlinuz ro iommu=pt vfio-pci.ids=1002:73ff",
                Some("vfio-pci"),
            ),
        );
        assert!(report.all_effective(), "{report:?}");
    }

    #[test]
    fn a_boot_without_the_parameter_is_explained() {
        let report = assess(
            &state(BindingMethod::Ids),
            &observation("ro single", Some("amdgpu")),
        );
        assert_eq!(report.findings[0].verdict, Verdict::NotEffective);
        assert!(report.findings[0].reasons[0].contains("recovery or fallback entry"));

        let report = assess(
            &state(BindingMethod::Ids),
            &observation("ro", Some("vfio-pci")),
        );
        assert_eq!(report.findings[0].verdict, Verdict::BoundAtRunTime);
    }

    #[test]
    fn a_change_after_this_boot_is_pending() {
        let mut observed = observation("ro", Some("amdgpu"));
        observed.boot_time = Some(1_700_000_000);
        let report = assess(&state(BindingMethod::Ids), &observed);
        assert_eq!(report.findings[0].verdict, Verdict::PendingReboot);
    }

    #[test]
    fn the_host_driver_winning_and_a_missing_rule_are_named() {
        let mut observed = observation("ro passthru.vfio=1", Some("amdgpu"));
        observed.iommu_active = false;
        let report = assess(&state(BindingMethod::Address), &observed);
        let reasons = report.findings[0].reasons.join("\n");
        assert!(reasons.contains("no IOMMU is active"), "{reasons}");
        assert!(
            reasons.contains("05-passthru-vfio.rules is missing"),
            "{reasons}"
        );
        assert!(reasons.contains("amdgpu took it"), "{reasons}");
    }
}
