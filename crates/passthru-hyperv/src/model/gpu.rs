//! Partitionable GPUs and the partition adapters of VMs.

use serde::{Deserialize, Serialize};

use super::lenient;
use crate::text::format_list::ListRecord;
use crate::text::instance::GpuInterfacePath;

/// One resource of a partitionable GPU (VRAM, encode, decode or compute), as
/// `Msvm_PartitionableGpu` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PartitionResource {
    /// `Total*`.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub total: Option<u64>,
    /// `Available*`.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub available: Option<u64>,
    /// `MinPartition*`.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub min_partition: Option<u64>,
    /// `MaxPartition*`.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub max_partition: Option<u64>,
    /// `OptimalPartition*`.
    #[serde(deserialize_with = "lenient::u64_opt")]
    pub optimal_partition: Option<u64>,
}

/// The placeholder every consumer GPU reports for VRAM, decode and compute (reference §7.1).
pub const PLACEHOLDER: u64 = 1_000_000_000;

/// One entry of `Get-VMHostPartitionableGpu` (or `Get-VMPartitionableGpu`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PartitionableGpu {
    /// `Name`: the GPU's device-interface path (what `-InstancePath` takes).
    pub name: String,
    /// `ValidPartitionCounts`.
    #[serde(deserialize_with = "lenient::u32s")]
    pub valid_partition_counts: Vec<u32>,
    /// `PartitionCount`.
    #[serde(deserialize_with = "lenient::u32_opt")]
    pub partition_count: Option<u32>,
    /// `SupportsIncomingLiveMigration` (absent on older builds).
    #[serde(deserialize_with = "lenient::bool_opt")]
    pub supports_incoming_live_migration: Option<bool>,
    /// VRAM figures.
    pub vram: PartitionResource,
    /// Encoder figures.
    pub encode: PartitionResource,
    /// Decoder figures.
    pub decode: PartitionResource,
    /// Compute figures.
    pub compute: PartitionResource,
}

impl PartitionableGpu {
    /// The parsed interface path, when it is one.
    pub fn interface_path(&self) -> Option<GpuInterfacePath> {
        GpuInterfacePath::parse(&self.name).ok()
    }

    /// Whether this is a paravirtualised (client GPU-PV, `\GPUPARAV`) source rather than an
    /// SR-IOV GPU-P one.
    pub fn is_paravirtual(&self) -> bool {
        self.interface_path().map_or_else(
            || self.name.to_ascii_uppercase().ends_with("GPUPARAV"),
            |path| path.paravirtual,
        )
    }

    /// Whether the resources are the consumer placeholders (1000000000 everywhere) rather
    /// than real figures.
    pub fn reports_placeholders(&self) -> bool {
        [self.vram.total, self.decode.total, self.compute.total]
            .iter()
            .all(|total| *total == Some(PLACEHOLDER))
    }

    /// Reads one record of `Format-List` output (reference F1, F2, and the seeds' listing).
    pub fn from_list_record(record: &ListRecord) -> Option<Self> {
        let name = record.non_empty("Name")?.to_owned();
        let resource = |suffix: &str| PartitionResource {
            total: record.number(&format!("Total{suffix}")),
            available: record.number(&format!("Available{suffix}")),
            min_partition: record.number(&format!("MinPartition{suffix}")),
            max_partition: record.number(&format!("MaxPartition{suffix}")),
            optimal_partition: record.number(&format!("OptimalPartition{suffix}")),
        };
        Some(Self {
            name,
            valid_partition_counts: record
                .list("ValidPartitionCounts")
                .map(|list| {
                    list.items
                        .iter()
                        .filter_map(|item| crate::text::format_list::parse_number(item))
                        .filter_map(|count| u32::try_from(count).ok())
                        .collect()
                })
                .unwrap_or_default(),
            partition_count: record
                .number("PartitionCount")
                .and_then(|count| u32::try_from(count).ok()),
            supports_incoming_live_migration: record.boolean("SupportsIncomingLiveMigration"),
            vram: resource("VRAM"),
            encode: resource("Encode"),
            decode: resource("Decode"),
            compute: resource("Compute"),
        })
    }
}

/// One GPU partition adapter of a VM (`Get-VMGpuPartitionAdapter`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GpuAdapter {
    /// `Id` (`Microsoft:<VM id>\<adapter id>`).
    #[serde(deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// `InstancePath`: the partitionable GPU it was pinned to; empty on Windows 10, where the
    /// GPU is chosen when the VM starts.
    #[serde(deserialize_with = "lenient::text")]
    pub instance_path: Option<String>,
}

impl GpuAdapter {
    /// Reads one record of `Get-VMGpuPartitionAdapter | Format-List` (reference F3 and the
    /// Microsoft driver documentation sample).
    pub fn from_list_record(record: &ListRecord) -> Option<Self> {
        let adapter = Self {
            id: record.non_empty("Id").map(str::to_owned),
            instance_path: record.non_empty("InstancePath").map(str::to_owned),
        };
        (adapter.id.is_some() || adapter.instance_path.is_some()).then_some(adapter)
    }
}
