//! [`HyperVStep`]: one journaled, verifiable, undoable change on a Hyper-V host.
//!
//! Each step carries the state from before it (captured when the plan was made), so `undo`
//! needs nothing but the journal. Undo first looks at the host and only acts where the change
//! is still there: a step interrupted before it acted, or already undone, costs nothing.

mod check;
mod describe;
mod revert;

use passthru_core::plan::{Step, StepError, StepView};
use serde::{Deserialize, Serialize};

use crate::client::{HostError, HyperVHost};
use crate::model::{PolicyValue, StopAction};

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum HyperVStep {
    /// Shut a running VM down (undo: start it again).
    StopVm {
        /// The VM.
        vm: String,
        /// Power off instead of asking the guest.
        turn_off: bool,
    },
    /// Set `GuestControlledCacheTypes`.
    SetCacheTypes {
        /// The VM.
        vm: String,
        /// New value.
        to: bool,
        /// Value before.
        from: Option<bool>,
    },
    /// Set the MMIO gaps.
    SetMmio {
        /// The VM.
        vm: String,
        /// New low gap, when it changes.
        low_to: Option<u64>,
        /// Low gap before.
        low_from: Option<u64>,
        /// New high gap, when it changes.
        high_to: Option<u64>,
        /// High gap before.
        high_from: Option<u64>,
    },
    /// Set `AutomaticStopAction`.
    SetStopAction {
        /// The VM.
        vm: String,
        /// New action.
        to: StopAction,
        /// Action before.
        from: Option<StopAction>,
    },
    /// Set the minimum memory (to the startup memory, for dynamic memory with devices).
    SetMemoryMinimum {
        /// The VM.
        vm: String,
        /// New minimum.
        to: u64,
        /// Minimum before.
        from: u64,
    },
    /// Set a Hyper-V group-policy value.
    SetPolicy {
        /// Which value.
        value: PolicyValue,
        /// New data.
        to: u32,
        /// Data before (`None`: the value did not exist).
        from: Option<u32>,
    },
    /// Add a GPU partition adapter.
    AddGpuAdapter {
        /// The VM.
        vm: String,
        /// The partitionable GPU (`None` on Windows 10, which cannot pin one).
        instance_path: Option<String>,
        /// The GPU's name, for people.
        gpu_name: String,
        /// Adapter ids the VM had before (undo removes any other).
        existing: Vec<String>,
    },
    /// Remove a GPU partition adapter.
    RemoveGpuAdapter {
        /// The VM.
        vm: String,
        /// The adapter's id.
        adapter_id: String,
        /// The GPU it was pinned to (undo re-adds a partition of it).
        instance_path: Option<String>,
        /// The GPU's name, for people.
        gpu_name: String,
    },
    /// Set an SR-IOV GPU's partition count.
    SetPartitionCount {
        /// The partitionable GPU's name.
        gpu: String,
        /// Its name, for people.
        gpu_name: String,
        /// New count.
        to: u32,
        /// Count before.
        from: u32,
    },
    /// Disable a device on the host.
    DisableDevice {
        /// Host instance id.
        instance_id: String,
        /// Location path.
        location_path: String,
        /// Device name.
        name: String,
    },
    /// Dismount a device from the host.
    DismountDevice {
        /// Location path.
        location_path: String,
        /// Host instance id.
        instance_id: String,
        /// Device name.
        name: String,
        /// Pass `-Force`.
        force: bool,
    },
    /// Assign a dismounted device to a VM.
    AddAssignableDevice {
        /// The VM.
        vm: String,
        /// Location path.
        location_path: String,
        /// Host instance id.
        instance_id: String,
        /// Device name.
        name: String,
    },
    /// Take a device out of a VM (it stays dismounted).
    RemoveAssignableDevice {
        /// The VM.
        vm: String,
        /// Location path.
        location_path: String,
        /// Host instance id, when the device still exists.
        instance_id: Option<String>,
        /// Device name.
        name: String,
        /// The record points at hardware that no longer exists (cannot be re-added on undo).
        stale: bool,
    },
    /// Mount a dismounted device back on the host.
    MountDevice {
        /// Location path.
        location_path: String,
        /// Host instance id.
        instance_id: String,
        /// Device name.
        name: String,
    },
    /// Enable a device on the host.
    EnableDevice {
        /// Host instance id.
        instance_id: String,
        /// Location path.
        location_path: String,
        /// Device name.
        name: String,
    },
}

pub(super) fn failed(error: &HostError) -> StepError {
    let message = match error {
        HostError::HyperV(error) => error.summary(),
        other => other.to_string(),
    };
    let mut step_error = StepError::new(message);
    if let Some(help) = error.help() {
        step_error = step_error.with_help(help);
    }
    step_error
}

pub(super) fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), StepError> {
    if ok {
        Ok(())
    } else {
        Err(StepError::new(message()))
    }
}

impl Step for HyperVStep {
    type Host = HyperVHost;
    const KIND: &'static str = "hyperv";

    fn view(&self) -> StepView {
        let mut view = StepView::new(self.summary());
        for line in self.apply_op().powershell().lines() {
            view = view.action(line);
        }
        view
    }

    fn apply(&self, host: &mut HyperVHost) -> Result<(), StepError> {
        host.perform(&self.apply_op())
            .map_err(|error| failed(&error))
    }

    fn verify(&self, host: &mut HyperVHost) -> Result<(), StepError> {
        self.check_applied(host)
    }

    fn undo(&self, host: &mut HyperVHost) -> Result<(), StepError> {
        self.revert(host)
    }
}
