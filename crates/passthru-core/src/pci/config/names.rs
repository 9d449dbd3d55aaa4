//! Short names of capability ids, for display.
//!
//! Ids and names follow the PCI Code and ID Assignment Specification (PCI-SIG), sections
//! "Capability IDs" and "Extended Capability IDs"; the same tables drive pciutils'
//! `ls-caps.c` and `ls-ecaps.c` and the kernel's `include/uapi/linux/pci_regs.h`.

/// Short name of a standard (conventional PCI) capability id.
pub(crate) fn standard(id: u8) -> String {
    let name = match id {
        0x00 => "Null",
        0x01 => "Power Management",
        0x02 => "AGP",
        0x03 => "VPD",
        0x04 => "Slot ID",
        0x05 => "MSI",
        0x06 => "CompactPCI Hot Swap",
        0x07 => "PCI-X",
        0x08 => "HyperTransport",
        0x09 => "Vendor Specific",
        0x0a => "Debug Port",
        0x0b => "CompactPCI Resource Control",
        0x0c => "Hot-Plug",
        0x0d => "Bridge Subsystem ID",
        0x0e => "AGP 8x",
        0x0f => "Secure Device",
        0x10 => "PCI Express",
        0x11 => "MSI-X",
        0x12 => "SATA",
        0x13 => "Advanced Features",
        0x14 => "Enhanced Allocation",
        0x15 => "Flattening Portal Bridge",
        _ => return format!("Unknown {id:#04x}"),
    };
    name.to_owned()
}

/// Short name of an extended (PCI Express) capability id.
pub(crate) fn extended(id: u16) -> String {
    let name = match id {
        0x0000 => "Null",
        0x0001 => "AER",
        0x0002 | 0x0009 => "Virtual Channel",
        0x0003 => "Device Serial Number",
        0x0004 => "Power Budgeting",
        0x0005 => "Root Complex Link Declaration",
        0x0006 => "Root Complex Internal Link Control",
        0x0007 => "Root Complex Event Collector Association",
        0x0008 => "MFVC",
        0x000a => "RCRB Header",
        0x000b => "Vendor Specific",
        0x000c => "Configuration Access Correlation",
        0x000d => "ACS",
        0x000e => "ARI",
        0x000f => "ATS",
        0x0010 => "SR-IOV",
        0x0011 => "MR-IOV",
        0x0012 => "Multicast",
        0x0013 => "PRI",
        0x0014 => "Reserved (AMD)",
        0x0015 => "Resizable BAR",
        0x0016 => "DPA",
        0x0017 => "TPH",
        0x0018 => "LTR",
        0x0019 => "Secondary PCI Express",
        0x001a => "PMUX",
        0x001b => "PASID",
        0x001c => "LN Requester",
        0x001d => "DPC",
        0x001e => "L1 PM Substates",
        0x001f => "PTM",
        0x0020 => "M-PCIe",
        0x0021 => "FRS Queueing",
        0x0022 => "Readiness Time Reporting",
        0x0023 => "DVSEC",
        0x0024 => "VF Resizable BAR",
        0x0025 => "Data Link Feature",
        0x0026 => "Physical Layer 16 GT/s",
        0x0027 => "Lane Margining",
        0x0028 => "Hierarchy ID",
        0x0029 => "NPEM",
        0x002a => "Physical Layer 32 GT/s",
        0x002b => "Alternate Protocol",
        0x002c => "SFI",
        0x002d => "Shadow Functions",
        0x002e => "DOE",
        0x002f => "Device 3",
        0x0030 => "IDE",
        0x0031 => "Physical Layer 64 GT/s",
        0x0032 => "Flit Logging",
        0x0033 => "Flit Performance Measurement",
        0x0034 => "Flit Error Injection",
        _ => return format!("Unknown {id:#06x}"),
    };
    name.to_owned()
}
