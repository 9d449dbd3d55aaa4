//! Ctrl-C during a driver sync.
//!
//! The default reaction (the process dies at once) could leave the VM's disk mounted and its
//! registry hive loaded. passthru takes Ctrl-C itself instead: the first press sets a flag that
//! the sync checks after every file it writes and before every step
//! ([`passthru_driver::guest::GuestSession::with_cancel`]); the step fails, and the executor
//! rolls everything back in reverse order, which unloads the hive and dismounts the disk. On
//! Windows PowerShell runs in its own process group, so Ctrl-C does not reach it and the
//! rollback can still use it. Further presses only say that the clean-up is under way. If the
//! process is killed anyway, the journal knows what may have run: `passthru undo` finishes the
//! job (and dismounts).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag Ctrl-C sets, with the handler installed (once per process).
pub(super) fn install() -> Arc<AtomicBool> {
    Arc::clone(INTERRUPTED.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&flag);
        // Without a handler (another one is installed) Ctrl-C ends the process, and the
        // journal is what recovers; that is no reason to refuse the command.
        let _ = ctrlc::set_handler(move || {
            let mut stderr = anstream::stderr().lock();
            let _ = if seen.swap(true, Ordering::SeqCst) {
                writeln!(stderr, "\nstill cleaning up: the VM's disk is being dismounted")
            } else {
                writeln!(
                    stderr,
                    "\ninterrupted: passthru stops after the files being written, puts the VM's disk back as it was and dismounts it"
                )
            };
        });
        flag
    }))
}
