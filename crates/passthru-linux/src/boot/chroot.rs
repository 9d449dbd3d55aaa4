//! Runs commands inside another root with `chroot`, so that `--root DIR` configures the
//! system in DIR with *its* tools (`update-initramfs`, `lsinitramfs`) and never this machine's.

use std::io;
use std::path::PathBuf;

use passthru_core::runner::{CommandOutput, CommandRunner, CommandSpec};

/// The `PATH` inside the root: distributions keep `update-initramfs` and friends in `sbin`.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Wraps a runner so that every command runs as `chroot ROOT PROGRAM ARGS…`.
#[derive(Debug)]
pub struct ChrootRunner<R> {
    root: PathBuf,
    inner: R,
}

impl<R: CommandRunner> ChrootRunner<R> {
    /// Runs commands inside `root` through `inner`.
    pub fn new(root: impl Into<PathBuf>, inner: R) -> Self {
        Self {
            root: root.into(),
            inner,
        }
    }

    /// The command as it is really run.
    pub fn wrap(&self, spec: &CommandSpec) -> CommandSpec {
        let mut args = vec![self.root.display().to_string(), spec.program.clone()];
        args.extend(spec.args.iter().cloned());
        let mut wrapped = spec.clone();
        wrapped.program = "chroot".to_owned();
        wrapped.args = args;
        wrapped.cwd = None;
        wrapped.env.push(("PATH".to_owned(), PATH.to_owned()));
        wrapped
    }
}

impl<R: CommandRunner> CommandRunner for ChrootRunner<R> {
    fn run(&mut self, spec: &CommandSpec) -> io::Result<CommandOutput> {
        let wrapped = self.wrap(spec);
        self.inner.run(&wrapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_prefixed_with_chroot_and_the_root() {
        let runner = ChrootRunner::new("/srv/img", passthru_core::runner::SystemRunner);
        let wrapped = runner.wrap(&CommandSpec::new("lsinitramfs", ["/boot/initrd.img-6.1"]));
        assert_eq!(
            wrapped.to_string(),
            "chroot /srv/img lsinitramfs /boot/initrd.img-6.1"
        );
        assert!(
            wrapped
                .env
                .iter()
                .any(|(k, v)| k == "PATH" && v.contains("/usr/sbin"))
        );
    }
}
