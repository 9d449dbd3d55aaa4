//! How much MMIO space a VM needs, and how much this CPU allows.
//!
//! A VM has a low MMIO gap (below 4 GiB, for 32-bit BARs) and a high one (above RAM). Devices
//! given to the VM need their BARs to fit there:
//!
//! - Microsoft's DDA planning guide: the defaults are **128 MB low, 512 MB high**; set the gap
//!   to the sum of all assigned devices' needs plus the default as a buffer (reference §3.3);
//! - a GPU partition below 8 GB of high MMIO tends to show Code 43 in the guest
//!   (Easy-GPU-PV #298), so GPU-P gets at least 8 GiB;
//! - the high gap must end inside the CPU's physical address space: on a 36-bit CPU a VM with
//!   32 GB of high MMIO does not start (reference F8b). In that recorded failure the region
//!   ended at `0x17dffff000` with 32 GB configured, so Hyper-V had placed it at
//!   `0xFE0000000` (63.5 GiB); with the 512 MB workaround it ends exactly at 64 GiB, which
//!   agrees. passthru therefore assumes that base unless the host reports `HighMmioGapBase`;
//! - Hyper-V caps the high gap at 262656 MB (measured by ExHyperV, reference §7.6) and the low
//!   gap at 3584 MB (the value ExHyperV uses as its maximum).
//!
//! passthru only ever raises a VM's gaps, never lowers what the user set, except to bring the
//! high gap inside the address space when it would otherwise not start.

use crate::model::MemoryRange;

/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// 1 GiB.
pub const GIB: u64 = 1 << 30;
/// Hyper-V's default low MMIO gap.
pub const DEFAULT_LOW: u64 = 128 * MIB;
/// Hyper-V's default high MMIO gap.
pub const DEFAULT_HIGH: u64 = 512 * MIB;
/// The largest low gap passthru sets.
pub const MAX_LOW: u64 = 3584 * MIB;
/// Hyper-V's cap on the high gap (ExHyperV's measurement).
pub const MAX_HIGH: u64 = 262_656 * MIB;
/// Where Hyper-V put the high gap in the recorded 36-bit failure (see the module docs).
pub const ASSUMED_HIGH_BASE: u64 = 0x000F_E000_0000;
/// The smallest high gap passthru gives a GPU partition (Easy-GPU-PV #298).
pub const GPU_P_MIN_HIGH: u64 = 8 * GIB;

/// What a set of devices needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Need {
    /// Bytes of BARs the host placed below 4 GiB (32-bit BARs).
    pub below_4g: u64,
    /// Bytes of all BARs.
    pub total: u64,
}

impl Need {
    /// Adds up memory ranges the way the host placed them.
    pub fn of(ranges: &[MemoryRange]) -> Self {
        let mut need = Self::default();
        for range in ranges {
            let size = range.size();
            need.total = need.total.saturating_add(size);
            if range.start.is_some_and(|start| start < 4 * GIB) {
                need.below_4g = need.below_4g.saturating_add(size);
            }
        }
        need
    }

    /// The sum of two needs.
    pub fn plus(self, other: Self) -> Self {
        Self {
            below_4g: self.below_4g.saturating_add(other.below_4g),
            total: self.total.saturating_add(other.total),
        }
    }
}

/// The highest address + 1 the CPU can reach, for `bits` of physical address width.
pub fn address_limit(bits: u32) -> Option<u64> {
    (32..64).contains(&bits).then(|| 1u64 << bits)
}

/// The largest high gap that still ends inside the address space.
pub fn max_high(bits: Option<u32>, base: Option<u64>) -> u64 {
    let base = base.unwrap_or(ASSUMED_HIGH_BASE);
    match bits.and_then(address_limit) {
        Some(limit) => limit.saturating_sub(base).min(MAX_HIGH),
        None => MAX_HIGH,
    }
}

/// Whether a high gap of `size` starting at `base` fits the CPU.
pub fn high_fits(size: u64, bits: Option<u32>, base: Option<u64>) -> bool {
    size <= max_high(bits, base)
}

fn round_up(value: u64, unit: u64) -> u64 {
    value.div_ceil(unit).saturating_mul(unit)
}

/// The MMIO sizes a VM should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    /// New low gap, when it must grow.
    pub low: Option<u64>,
    /// New high gap, when it must change.
    pub high: Option<u64>,
    /// What the numbers are based on, for the plan's notes.
    pub reasoning: String,
    /// A warning when the CPU cannot fit what the devices need.
    pub warning: Option<String>,
}

/// Sizes a VM's gaps for devices with total `need` (`None`: the devices' memory ranges are
/// not known), starting from its current sizes. `floor_high` is a minimum for the high gap
/// (GPU-P's 8 GiB), 0 for DDA.
pub fn size(
    need: Option<Need>,
    floor_high: u64,
    current_low: Option<u64>,
    current_high: Option<u64>,
    bits: Option<u32>,
    base: Option<u64>,
) -> Sizing {
    let known = need.is_some();
    let need = need.unwrap_or_default();
    let current_low = current_low.unwrap_or(DEFAULT_LOW);
    let current_high = current_high.unwrap_or(DEFAULT_HIGH);
    let wanted_low = round_up(DEFAULT_LOW + need.below_4g, MIB).min(MAX_LOW);
    let wanted_high = round_up(need.total + DEFAULT_HIGH, MIB).max(floor_high);
    let ceiling = max_high(bits, base);
    let mut reasoning = if known {
        format!(
            "the devices' BARs add up to {} ({} of them below 4 GiB); Microsoft's rule: their sum plus the default 512 MB high / 128 MB low",
            human(need.total),
            human(need.below_4g)
        )
    } else {
        "Windows did not report the devices' memory ranges, so passthru keeps at least the defaults (128 MB low, 512 MB high)".to_owned()
    };
    if floor_high > 0 {
        reasoning.push_str(&format!(
            "; at least {} for a GPU partition (Easy-GPU-PV #298)",
            human(floor_high)
        ));
    }
    let mut warning = None;
    let target_high = wanted_high.max(current_high);
    let high = if target_high > ceiling {
        let bits_text = bits.map_or_else(|| "this".to_owned(), |bits| format!("this {bits}-bit"));
        warning = Some(format!(
            "{bits_text} CPU lets the upper MMIO region be at most {} (it must end below {}), less than the {} wanted; the VM gets {} so that it can start, and the device may report Code 12 or 43 in the guest",
            human(ceiling),
            bits.and_then(address_limit).map_or_else(
                || "the address limit".to_owned(),
                |limit| format!("{limit:#x}")
            ),
            human(target_high),
            human(ceiling)
        ));
        (ceiling != current_high).then_some(ceiling)
    } else {
        (target_high != current_high).then_some(target_high)
    };
    let low = (wanted_low > current_low).then_some(wanted_low);
    Sizing {
        low,
        high,
        reasoning,
        warning,
    }
}

/// Bytes for people: `512 MiB`, `32 GiB`, `1.5 GiB`, `176 MiB`.
pub fn human(bytes: u64) -> String {
    if bytes >= GIB {
        let tenths = (u128::from(bytes) * 10).div_ceil(u128::from(GIB));
        if tenths % 10 == 0 {
            format!("{} GiB", tenths / 10)
        } else {
            format!("{}.{} GiB", tenths / 10, tenths % 10)
        }
    } else if bytes >= MIB {
        format!("{} MiB", bytes.div_ceil(MIB))
    } else if bytes >= 1024 {
        format!("{} KiB", bytes.div_ceil(1024))
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, size: u64) -> MemoryRange {
        MemoryRange {
            start: Some(start),
            end: Some(start + size - 1),
        }
    }

    #[test]
    fn recorded_36_bit_failure_is_reproduced() {
        // F8b: 32 GB high MMIO at the assumed base ends at 0x17e0000000, above 2^36.
        assert!(!high_fits(32 * GIB, Some(36), None));
        assert_eq!(ASSUMED_HIGH_BASE + 32 * GIB - 0x1000, 0x17_dfff_f000);
        // The community workaround (512 MB) ends exactly at 64 GiB and fits.
        assert_eq!(max_high(Some(36), None), 512 * MIB);
        assert!(high_fits(512 * MIB, Some(36), None));
        assert!(high_fits(32 * GIB, Some(39), None));
        assert_eq!(max_high(Some(48), None), MAX_HIGH);
    }

    #[test]
    fn dda_follows_microsofts_formula() {
        // The planning guide's K520: 176 MB of MMIO -> 176 + 512 MB high.
        let need = Need::of(&[range(0x38_0000_0000, 176 * MIB)]);
        let sizing = size(
            Some(need),
            0,
            Some(DEFAULT_LOW),
            Some(DEFAULT_HIGH),
            Some(46),
            None,
        );
        assert_eq!(sizing.high, Some(688 * MIB));
        assert_eq!(sizing.low, None);
        assert!(sizing.warning.is_none());
    }

    #[test]
    fn gpu_p_gets_at_least_8_gib_but_never_less_than_set() {
        let need = Need::of(&[
            range(0xF600_0000, 16 * MIB),
            range(0x60_0000_0000, 256 * MIB),
        ]);
        let sizing = size(Some(need), GPU_P_MIN_HIGH, None, None, Some(39), None);
        assert_eq!(sizing.high, Some(8 * GIB));
        assert_eq!(sizing.low, Some(144 * MIB));
        let kept = size(
            Some(need),
            GPU_P_MIN_HIGH,
            Some(3 * GIB),
            Some(32 * GIB),
            Some(39),
            None,
        );
        assert_eq!((kept.low, kept.high), (None, None));
    }

    #[test]
    fn clamps_to_the_cpu_with_a_warning() {
        let sizing = size(None, GPU_P_MIN_HIGH, None, Some(32 * GIB), Some(36), None);
        assert_eq!(sizing.high, Some(512 * MIB));
        assert!(sizing.warning.unwrap().contains("36-bit"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512 * MIB), "512 MiB");
        assert_eq!(human(32 * GIB), "32 GiB");
        assert_eq!(human(3 * GIB / 2), "1.5 GiB");
        assert_eq!(human(176 * MIB), "176 MiB");
        assert_eq!(human(0), "0 B");
    }
}
