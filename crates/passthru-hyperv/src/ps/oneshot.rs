//! One PowerShell process per script, through the shared command-runner port.
//!
//! Read-only commands (`survey`, `snapshot`, `gpu-p list`) need exactly one script, so one
//! process is the whole run; going through [`CommandRunner`] keeps the exact command line
//! testable with a fake runner.

use passthru_core::runner::{CommandRunner, CommandSpec};

use super::{POWERSHELL_ARGS, PortError, PowerShell, SCRIPT_TIMEOUT, Script, stdin_lines};

/// Runs each script in a fresh `powershell.exe` started by a [`CommandRunner`].
#[derive(Debug)]
pub struct OneShot<R> {
    program: String,
    runner: R,
}

impl<R: CommandRunner> OneShot<R> {
    /// Uses `runner` to start `program` (the path of `powershell.exe`).
    pub fn new(program: impl Into<String>, runner: R) -> Self {
        Self {
            program: program.into(),
            runner,
        }
    }

    /// The command that runs `script`.
    pub fn command(&self, script: &Script) -> CommandSpec {
        CommandSpec::new(self.program.clone(), POWERSHELL_ARGS)
            .with_stdin(stdin_lines(script, "@@passthru-end@@"))
            .with_timeout(SCRIPT_TIMEOUT)
    }
}

impl<R: CommandRunner> PowerShell for OneShot<R> {
    fn run(&mut self, script: &Script) -> Result<Vec<u8>, PortError> {
        let command = self.command(script);
        let output = self.runner.run(&command).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                PortError::Spawn {
                    program: self.program.clone(),
                    source,
                }
            } else {
                PortError::Io(source)
            }
        })?;
        if output.timed_out {
            return Err(PortError::TimedOut {
                after: SCRIPT_TIMEOUT,
            });
        }
        if output.stdout.is_empty() {
            return Err(PortError::Exited {
                status: output.status,
                stderr: output.stderr_text(),
            });
        }
        Ok(output.stdout)
    }

    fn describe(&self) -> String {
        format!("PowerShell (`{}`)", self.program)
    }
}
