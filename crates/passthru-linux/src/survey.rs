//! The survey: an inventory with names, verdicts and host findings, filtered, in the shape
//! `passthru survey --json` prints (schema: `docs/json-schema.md`).

use std::collections::BTreeSet;

use passthru_core::pci::ids::{NamesQuery, NamesSource, PciNames};
use passthru_core::pci::{DeviceCategory, PciAddress};
use passthru_core::select::{SelectError, select_by_text};
use serde::{Deserialize, Serialize};

use crate::boot::postboot::{self, PostBootReport};
use crate::checks::device::{Verdict, device_verdict};
use crate::checks::group::{GroupViability, group_viability};
use crate::checks::host::{host_findings, iommu_active};
use crate::checks::{Finding, Severity};
use crate::inventory::{HostInfo, Inventory, IommuGroup, PciDevice, ReservedRegion};

/// The `schema` field of `survey --json`.
pub const SCHEMA: &str = "passthru-survey";
/// The schema version; it changes only when a field changes meaning or disappears (new
/// fields may appear within a version).
pub const SCHEMA_VERSION: u32 = 1;

/// Where the host data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SurveySource {
    /// A live host or a tree under `--root`.
    Host {
        /// The root directory (`/` for this machine).
        root: String,
    },
    /// A replayed snapshot.
    Snapshot {
        /// The snapshot file.
        file: String,
        /// Its `created_by`.
        created_by: String,
        /// Its `description`, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// Host readiness: the facts and the findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// Whether an IOMMU translates DMA (IOMMU groups exist).
    pub iommu_active: bool,
    /// IOMMU groups on the host (before filtering).
    pub iommu_group_count: usize,
    /// The facts read.
    #[serde(flatten)]
    pub info: HostInfo,
    /// What they mean, most severe first.
    pub findings: Vec<Finding>,
}

/// One IOMMU group with its viability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Group number.
    pub number: u32,
    /// Viability and classified members.
    #[serde(flatten)]
    pub viability: GroupViability,
    /// `reserved_regions`.
    pub reserved_regions: Vec<ReservedRegion>,
    /// `type` (default DMA domain).
    pub default_domain: Option<String>,
    /// Problems reading the group.
    pub warnings: Vec<String>,
}

/// One device with its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Everything read.
    #[serde(flatten)]
    pub device: PciDevice,
    /// Category used by `--class` (`gpu`, `net`, `storage`, `usb`, `audio`, ...).
    pub category: DeviceCategory,
    /// Assignability.
    pub verdict: Verdict,
}

/// The filters of `passthru survey`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyFilter {
    /// Categories (`gpu`, `net`, `storage`, `usb`, `audio`); any of them matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// IOMMU group numbers; any of them matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
    /// Device selectors; each must name exactly one device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
}

impl SurveyFilter {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty() && self.groups.is_empty() && self.devices.is_empty()
    }
}

/// The categories `--class` accepts.
pub const CLASS_FILTERS: [DeviceCategory; 5] = [
    DeviceCategory::Gpu,
    DeviceCategory::Network,
    DeviceCategory::Storage,
    DeviceCategory::Usb,
    DeviceCategory::Audio,
];

/// Why a filter could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// An unknown `--class`.
    #[error("`{0}` is not a device class; use one of gpu, net, storage, usb, audio")]
    UnknownClass(String),
    /// A `--group` that does not exist.
    #[error("there is no IOMMU group {number}; {known}")]
    UnknownGroup {
        /// The number asked for.
        number: u32,
        /// Which groups exist, in words.
        known: String,
    },
    /// A device selector matched nothing or several devices.
    #[error(transparent)]
    Select(#[from] SelectError),
}

/// A survey of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Survey {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Where the data came from.
    pub source: SurveySource,
    /// Which `pci.ids` the names came from.
    pub names_source: NamesSource,
    /// The filters applied (empty: everything).
    pub filter: SurveyFilter,
    /// Devices on the host before filtering.
    pub total_devices: usize,
    /// Host readiness.
    pub host: HostReport,
    /// IOMMU groups that hold a shown device (all groups without filters).
    pub groups: Vec<GroupReport>,
    /// The devices shown, sorted by address.
    pub devices: Vec<DeviceReport>,
    /// Problems that belong to no single device or group.
    pub warnings: Vec<String>,
    /// After a boot: whether passthru's persistent assignment (`assign --persistent`) took
    /// effect, per device. Absent when passthru has made none on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<PostBootReport>,
}

/// Adds the post-boot check of a persistent assignment to a survey: the report itself, one
/// host finding, and one finding in the verdict of each device shown that it names
/// (`persistent-effective`, `persistent-pending-reboot`, `persistent-bound-at-run-time`,
/// `persistent-not-effective`).
pub fn attach_persistent(survey: &mut Survey, report: PostBootReport) {
    let count = |verdict: postboot::Verdict| {
        report
            .findings
            .iter()
            .filter(|finding| finding.verdict == verdict)
            .count()
    };
    let total = report.findings.len();
    let not_effective = count(postboot::Verdict::NotEffective);
    let pending = count(postboot::Verdict::PendingReboot);
    let runtime = count(postboot::Verdict::BoundAtRunTime);
    let host = if not_effective > 0 {
        Finding::new(
            Severity::Warning,
            "persistent-not-effective",
            format!(
                "passthru's persistent assignment did not take effect for {not_effective} of {total} device(s) in this boot"
            ),
        )
        .with_fix("the device lines below say why; `passthru release DEVICE --persistent` or `passthru undo` takes the boot configuration back")
    } else if pending > 0 {
        Finding::new(
            Severity::Info,
            "persistent-pending-reboot",
            format!(
                "passthru's persistent assignment of {total} device(s) takes effect at the next boot"
            ),
        )
    } else if runtime > 0 {
        Finding::new(
            Severity::Warning,
            "persistent-bound-at-run-time",
            format!(
                "{runtime} of {total} persistently assigned device(s) are on vfio-pci only because they were bound at run time, not by the boot configuration"
            ),
        )
    } else {
        Finding::new(
            Severity::Info,
            "persistent-effective",
            format!(
                "passthru's persistent assignment is effective: {total} device(s) on vfio-pci since boot ({})",
                report.required_param
            ),
        )
    };
    survey.host.findings.push(host);
    survey.host.findings.sort_by_key(|finding| finding.severity);
    for device in &mut survey.devices {
        let Some(finding) = report
            .findings
            .iter()
            .find(|finding| finding.address == device.device.address)
        else {
            continue;
        };
        let because = finding.reasons.join("; ");
        let (severity, code, message) = match finding.verdict {
            postboot::Verdict::Effective => (
                Severity::Info,
                "persistent-effective",
                "persistent assignment effective: on vfio-pci since boot".to_owned(),
            ),
            postboot::Verdict::PendingReboot => (
                Severity::Info,
                "persistent-pending-reboot",
                format!("persistent assignment pending reboot: {because}"),
            ),
            postboot::Verdict::BoundAtRunTime => (
                Severity::Warning,
                "persistent-bound-at-run-time",
                format!(
                    "persistent assignment not effective in this boot, bound at run time: {because}"
                ),
            ),
            postboot::Verdict::NotEffective => (
                Severity::Warning,
                "persistent-not-effective",
                format!("persistent assignment not effective because {because}"),
            ),
        };
        device
            .verdict
            .reasons
            .push(Finding::new(severity, code, message));
        device
            .verdict
            .reasons
            .sort_by_key(|finding| finding.severity);
        if severity == Severity::Warning
            && device.verdict.status == crate::checks::device::VerdictStatus::Assignable
        {
            device.verdict.status = crate::checks::device::VerdictStatus::Caution;
        }
    }
    survey.persistent = Some(report);
}

/// Asks for the names of every device in `inventory`.
pub fn names_query(inventory: &Inventory) -> NamesQuery {
    let mut query = NamesQuery::new();
    for device in &inventory.devices {
        let subsystem = device.subsystem_vendor.zip(device.subsystem_device);
        query.add(device.vendor, device.device, subsystem, device.class);
    }
    query
}

/// Writes the names into the devices.
pub fn apply_names(inventory: &mut Inventory, names: &PciNames) {
    for device in &mut inventory.devices {
        let names_of = &mut device.names;
        names_of.vendor = device
            .vendor
            .and_then(|vendor| names.vendor(vendor))
            .map(str::to_owned);
        names_of.device = device
            .vendor
            .zip(device.device)
            .and_then(|(vendor, id)| names.device(vendor, id))
            .map(str::to_owned);
        names_of.subsystem_vendor = device
            .subsystem_vendor
            .and_then(|vendor| names.vendor(vendor))
            .map(str::to_owned);
        names_of.subsystem = match (
            device.vendor,
            device.device,
            device.subsystem_vendor,
            device.subsystem_device,
        ) {
            (Some(vendor), Some(id), Some(sub_vendor), Some(sub_device)) => names
                .subsystem(vendor, id, sub_vendor, sub_device)
                .map(str::to_owned),
            _ => None,
        };
        names_of.class = device
            .class
            .and_then(|class| names.class(class))
            .map(str::to_owned);
    }
}

/// Judges an inventory (with names already applied) and applies `filter`.
pub fn build(
    inventory: Inventory,
    source: SurveySource,
    names_source: NamesSource,
    filter: &SurveyFilter,
) -> Result<Survey, FilterError> {
    let shown = shown_devices(&inventory, filter)?;
    let verdicts: Vec<Option<Verdict>> = inventory
        .devices
        .iter()
        .map(|device| {
            shown
                .contains(&device.address)
                .then(|| device_verdict(&inventory, device))
        })
        .collect();
    let shown_groups: BTreeSet<u32> = if filter.is_empty() {
        inventory.groups.iter().map(|group| group.number).collect()
    } else {
        inventory
            .devices
            .iter()
            .filter(|device| shown.contains(&device.address))
            .filter_map(|device| device.iommu_group)
            .chain(filter.groups.iter().copied())
            .collect()
    };
    let groups = inventory
        .groups
        .iter()
        .filter(|group| shown_groups.contains(&group.number))
        .map(|group| group_report(&inventory, group))
        .collect();
    let host = HostReport {
        iommu_active: iommu_active(&inventory),
        iommu_group_count: inventory.groups.len(),
        findings: host_findings(&inventory),
        info: inventory.host,
    };
    let total_devices = inventory.devices.len();
    // The devices move into the reports: a big host has thousands, too many to copy.
    let devices = inventory
        .devices
        .into_iter()
        .zip(verdicts)
        .filter_map(|(device, verdict)| {
            Some(DeviceReport {
                category: device.category(),
                verdict: verdict?,
                device,
            })
        })
        .collect();
    Ok(Survey {
        schema: SCHEMA.to_owned(),
        schema_version: SCHEMA_VERSION,
        source,
        names_source,
        filter: filter.clone(),
        total_devices,
        host,
        groups,
        devices,
        warnings: inventory.warnings,
        persistent: None,
    })
}

fn group_report(inventory: &Inventory, group: &IommuGroup) -> GroupReport {
    GroupReport {
        number: group.number,
        viability: group_viability(inventory, group),
        reserved_regions: group.reserved_regions.clone(),
        default_domain: group.default_domain.clone(),
        warnings: group.warnings.clone(),
    }
}

fn shown_devices(
    inventory: &Inventory,
    filter: &SurveyFilter,
) -> Result<BTreeSet<PciAddress>, FilterError> {
    let mut categories = Vec::new();
    for class in &filter.classes {
        let wanted = class.trim().to_lowercase();
        let category = CLASS_FILTERS
            .into_iter()
            .find(|category| {
                category.name() == wanted
                    || (wanted == "network" && *category == DeviceCategory::Network)
            })
            .ok_or_else(|| FilterError::UnknownClass(class.clone()))?;
        categories.push(category);
    }
    for number in &filter.groups {
        if inventory.group(*number).is_none() {
            let known = match (inventory.groups.first(), inventory.groups.last()) {
                (Some(first), Some(last)) => format!(
                    "this host has {} groups, numbered {} to {} (with gaps possible)",
                    inventory.groups.len(),
                    first.number,
                    last.number
                ),
                _ => "this host has no IOMMU groups (no IOMMU is active)".to_owned(),
            };
            return Err(FilterError::UnknownGroup {
                number: *number,
                known,
            });
        }
    }
    let selected: Option<BTreeSet<PciAddress>> = if filter.devices.is_empty() {
        None
    } else {
        Some(
            select_by_text(&inventory.devices, &filter.devices)?
                .into_iter()
                .map(|index| inventory.devices[index].address)
                .collect(),
        )
    };
    Ok(inventory
        .devices
        .iter()
        .filter(|device| categories.is_empty() || categories.contains(&device.category()))
        .filter(|device| {
            filter.groups.is_empty()
                || device
                    .iommu_group
                    .is_some_and(|number| filter.groups.contains(&number))
        })
        .filter(|device| {
            selected
                .as_ref()
                .is_none_or(|selected| selected.contains(&device.address))
        })
        .map(|device| device.address)
        .collect())
}
