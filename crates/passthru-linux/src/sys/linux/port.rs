//! [`SysfsPort`]: the real kernel behind the [`KernelPort`] of the sysfs steps.

use std::io;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::{HostFs, RealFs};
use passthru_core::runner::{CommandOutput, CommandRunner, CommandSpec, SystemRunner};

use super::timed_write::timed_write;
use crate::bind::{KernelPort, Timeouts, WriteError, WriteKind};

/// The running kernel as seen under a root directory (`/` in production). Writes go through
/// [`timed_write`]; module commands through a [`CommandRunner`].
///
/// With any root other than `/`, module commands are refused: they would change the running
/// kernel, not the tree under the root.
pub struct SysfsPort {
    fs: RealFs,
    runner: Box<dyn CommandRunner>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for SysfsPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysfsPort")
            .field("root", &self.fs.root())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl SysfsPort {
    /// The kernel under `root`, with default time limits and the system's programs.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            fs: RealFs::new(root),
            runner: Box::new(SystemRunner),
            timeouts: Timeouts::default(),
        }
    }

    /// Uses other time limits.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Runs module commands through `runner` instead of the system.
    pub fn with_runner(mut self, runner: impl CommandRunner + 'static) -> Self {
        self.runner = Box::new(runner);
        self
    }

    fn is_real_root(&self) -> bool {
        self.fs.root() == Path::new("/")
    }
}

impl KernelPort for SysfsPort {
    fn fs(&self) -> &dyn HostFs {
        &self.fs
    }

    fn write(&mut self, path: &Path, payload: &[u8], kind: WriteKind) -> Result<(), WriteError> {
        let real = self.fs.real_path(path);
        timed_write(&real, payload, self.timeouts.for_write(kind)).map_err(|failure| WriteError {
            path: path.to_path_buf(),
            failure,
        })
    }

    fn run(&mut self, command: &CommandSpec) -> io::Result<CommandOutput> {
        if !self.is_real_root() {
            return Err(io::Error::other(format!(
                "`{command}` would change the running kernel, not the host under `{}`; module \
                 commands only run with the root `/`",
                self.fs.root().display()
            )));
        }
        let mut command = command.clone();
        command.timeout.get_or_insert(self.timeouts.command);
        self.runner.run(&command)
    }
}
