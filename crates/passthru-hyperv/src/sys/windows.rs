//! Windows: the real `powershell.exe` (Windows PowerShell 5.1, which has the Hyper-V module;
//! PowerShell 7 would need the Windows compatibility layer for it).

use std::os::windows::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use passthru_core::runner::SystemRunner;

use crate::ps::oneshot::OneShot;
use crate::ps::process::PowerShellProcess;
use crate::ps::{POWERSHELL_ARGS, PortError, PowerShell, SCRIPT_TIMEOUT};

/// `%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe`, the 5.1 that ships with
/// Windows; a `powershell.exe` earlier on `PATH` is not trusted to be it.
fn program() -> String {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    PathBuf::from(root)
        .join("System32")
        .join("WindowsPowerShell")
        .join("v1.0")
        .join("powershell.exe")
        .to_string_lossy()
        .into_owned()
}

/// `CREATE_NEW_PROCESS_GROUP` (winbase.h): a process in its own group has Ctrl-C disabled.
const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;

/// One PowerShell process for the whole run (commands that change the host).
///
/// Ctrl-C in a console reaches every process attached to it. PowerShell runs in a process group
/// of its own so that it ignores Ctrl-C: passthru handles the interruption itself and still
/// needs PowerShell afterwards to roll back (dismount a guest disk, unload a hive).
pub fn persistent_powershell() -> Result<Box<dyn PowerShell>, PortError> {
    let mut command = Command::new(program());
    command
        .args(POWERSHELL_ARGS)
        .creation_flags(CREATE_NEW_PROCESS_GROUP);
    Ok(Box::new(PowerShellProcess::spawn_command(
        command,
        SCRIPT_TIMEOUT,
    )?))
}

/// One process per script, through the command runner (read-only commands).
pub fn read_only_powershell() -> Result<Box<dyn PowerShell>, PortError> {
    Ok(Box::new(OneShot::new(program(), SystemRunner)))
}
