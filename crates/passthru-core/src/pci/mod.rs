//! The PCI model: addresses, class codes, resources and config-space capabilities.

pub mod address;
pub mod class;
pub mod config;
pub mod dump;
pub mod ids;
pub mod resource;

pub use address::{AddressError, PciAddress};
pub use class::{ClassCode, DeviceCategory};
