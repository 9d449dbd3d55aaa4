//! The CPU's physical address width, which bounds where a VM's MMIO regions may lie.
//!
//! PowerShell has no property for it, and Hyper-V reports it only when a VM fails to start
//! (reference F8b: a 36-bit CPU cannot place a 32 GB upper MMIO region). CPUID leaf
//! 0x80000008 gives it directly (EAX bits 7:0).

/// The physical address width of the CPU this process runs on, in bits; `None` on
/// architectures without CPUID or when the leaf is not available.
pub fn physical_address_bits() -> Option<u32> {
    imp::physical_address_bits()
}

#[cfg(target_arch = "x86_64")]
#[path = "cpu/x86_64.rs"]
mod imp;

#[cfg(not(target_arch = "x86_64"))]
#[path = "cpu/other.rs"]
mod imp;
