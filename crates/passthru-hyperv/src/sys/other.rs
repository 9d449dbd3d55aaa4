//! Everything but Windows: there is no Hyper-V to talk to.

use crate::ps::{PortError, PowerShell};

fn not_windows() -> PortError {
    PortError::NotAvailable {
        reason: format!(
            "Hyper-V is only on Windows, and this is {}; to try the Hyper-V commands anywhere, point PASSTHRU_HYPERV_SIMULATOR at a simulator state file (docs/hyperv.md)",
            std::env::consts::OS
        ),
    }
}

/// Always fails: there is no PowerShell with Hyper-V here.
pub fn persistent_powershell() -> Result<Box<dyn PowerShell>, PortError> {
    Err(not_windows())
}

/// Always fails: there is no PowerShell with Hyper-V here.
pub fn read_only_powershell() -> Result<Box<dyn PowerShell>, PortError> {
    Err(not_windows())
}
