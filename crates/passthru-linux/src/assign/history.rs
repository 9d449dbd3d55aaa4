//! What the journal remembers about devices: the driver each had when it was last assigned.

use std::collections::BTreeMap;

use passthru_core::pci::PciAddress;
use passthru_core::plan::Step;
use passthru_core::plan::executor::decode_steps;
use passthru_core::plan::journal::{Operation, OperationState};
use serde::{Deserialize, Serialize};

use super::combined::LinuxStep;
use crate::bind::SysfsStep;
use crate::checks::is_vfio_driver;

/// The driver a device had before an assign took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDriver {
    /// The driver (`None`: the device had no driver then).
    pub driver: Option<String>,
    /// The module that provided it.
    pub module: Option<String>,
    /// The operation that recorded it.
    pub operation: String,
}

/// The sysfs steps of an operation, whichever kind carried them (`linux-sysfs`, or
/// `linux-assign` for `--persistent`). Empty for other kinds and undecodable operations.
pub fn sysfs_steps(operation: &Operation) -> Vec<SysfsStep> {
    if operation.kind == SysfsStep::KIND {
        decode_steps::<SysfsStep>(operation).unwrap_or_default()
    } else if operation.kind == LinuxStep::KIND {
        decode_steps::<LinuxStep>(operation)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|step| match step {
                LinuxStep::Sysfs(step) => Some(step),
                LinuxStep::Boot(_) => None,
            })
            .collect()
    } else {
        Vec::new()
    }
}

/// For every device an applied operation gave to vfio-pci, the driver it took the device
/// from, newest operation first: an `Unbind` from a host driver, or, when the operation bound
/// the device without unbinding it, no driver.
pub fn recorded_host_drivers(operations: &[Operation]) -> BTreeMap<PciAddress, RecordedDriver> {
    let mut recorded = BTreeMap::new();
    for operation in operations.iter().rev() {
        if operation.state != OperationState::Applied {
            continue;
        }
        let steps = sysfs_steps(operation);
        let mut found: BTreeMap<PciAddress, RecordedDriver> = BTreeMap::new();
        for step in &steps {
            match step {
                SysfsStep::Unbind {
                    device,
                    driver,
                    module,
                } if !is_vfio_driver(Some(driver)) => {
                    found.insert(
                        *device,
                        RecordedDriver {
                            driver: Some(driver.clone()),
                            module: module.clone(),
                            operation: operation.id.clone(),
                        },
                    );
                }
                SysfsStep::Probe {
                    device,
                    expect: Some(driver),
                    ..
                } if is_vfio_driver(Some(driver)) => {
                    found.entry(*device).or_insert_with(|| RecordedDriver {
                        driver: None,
                        module: None,
                        operation: operation.id.clone(),
                    });
                }
                _ => {}
            }
        }
        for (device, record) in found {
            recorded.entry(device).or_insert(record);
        }
    }
    recorded
}
