//! CPUID on x86-64.

pub(super) fn physical_address_bits() -> Option<u32> {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86-64 CPU; leaf 0x80000000 says how far the extended leaves go.
    let highest = __cpuid(0x8000_0000).eax;
    if highest < 0x8000_0008 {
        return None;
    }
    let bits = __cpuid(0x8000_0008).eax & 0xff;
    (bits >= 32).then_some(bits)
}
