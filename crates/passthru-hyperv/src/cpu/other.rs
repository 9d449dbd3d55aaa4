//! Architectures without CPUID: the width is unknown.

pub(super) fn physical_address_bits() -> Option<u32> {
    None
}
