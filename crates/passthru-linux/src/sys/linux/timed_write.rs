//! One sysfs write with a time limit.
//!
//! A write to `unbind` runs the driver's `remove` callback, which can wait forever for the
//! driver's users (ipaqmaster/vfio#18, joeknock90/Single-GPU-Passthrough#6); the writing task
//! then sleeps uninterruptibly (state `D`) and no signal can wake it. So the write happens in
//! a **forked child process**, and the parent waits for its report with a time limit:
//!
//! - A thread would not do: a process cannot exit while one of its threads is stuck in the
//!   kernel, so passthru itself would hang at exit. A stuck child is simply left behind (it is
//!   sent `SIGKILL`, which takes effect if the write ever returns, and a detached thread reaps
//!   it), and passthru can report, roll back and exit.
//! - The child does not `exec` (no helper program needed on the host, works in a minimal
//!   initramfs). Between `fork` and `_exit` it only makes async-signal-safe calls (`close`,
//!   `open`, `write`, `_exit`) on memory prepared before the fork, as POSIX requires for a
//!   child of a multi-threaded process.
//! - Before writing, the child closes every file descriptor except its report pipe, so a
//!   child stuck for good keeps nothing of ours open: not the journal lock (a stuck child must
//!   not stop `passthru undo`), not the terminal or a pipe a caller waits on.
//!
//! Limits: a stuck child stays in the process table until the write returns or the machine
//! reboots, and the device stays locked in the kernel meanwhile, so later writes to the same
//! device (the rollback's) may time out too; the journal then says what is left to undo.
//! Closing descriptors uses `close_range` (Linux 5.9+) and falls back to closing each number
//! up to the soft `RLIMIT_NOFILE` (at most 65536).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::bind::WriteFailure;
use crate::errno::Errno;

const STAGE_DONE: i32 = 0;
const STAGE_OPEN: i32 = 1;
const STAGE_WRITE: i32 = 2;
const STAGE_SHORT: i32 = 3;
const REPORT_LEN: usize = 8;
const FALLBACK_MAX_FD: libc::c_int = 65536;

/// Writes `payload` to `path` (a real path) in a child process; gives up after `limit`.
pub fn timed_write(path: &Path, payload: &[u8], limit: Duration) -> Result<(), WriteFailure> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| WriteFailure::Other("the path contains a NUL byte".into()))?;
    let max_fd = highest_fd_to_close();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid, writable array of two descriptors for `pipe2` to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_error("could not create a pipe"));
    }
    // SAFETY: `pipe2` succeeded, so both descriptors are open and owned by nobody else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: the child branch below only calls async-signal-safe functions (`close`,
    // `syscall(close_range)`, `open`, `write`, `_exit`) on data prepared before the fork, and
    // never returns; the parent branch continues normally.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_error("could not start the writer process"));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child; see `child_write`.
        unsafe { child_write(writer.as_raw_fd(), &c_path, payload, max_fd) }
    }
    drop(writer);
    match wait_for_report(&reader, limit) {
        Ok(Some(report)) => {
            reap(pid);
            decode(report)
        }
        Ok(None) => {
            reap(pid);
            Err(WriteFailure::Other(
                "the writer process ended without reporting".into(),
            ))
        }
        Err(WaitError::TimedOut) => {
            abandon(pid);
            Err(WriteFailure::TimedOut(limit))
        }
        Err(WaitError::Poll(message)) => {
            abandon(pid);
            Err(WriteFailure::Other(message))
        }
    }
}

/// The child: close everything but the report pipe, open, write, report, exit.
///
/// # Safety
///
/// Must only be called in a child right after `fork`, with `path` and `payload` prepared
/// before the fork. Never returns.
unsafe fn child_write(
    report_fd: libc::c_int,
    path: &CString,
    payload: &[u8],
    max_fd: libc::c_int,
) -> ! {
    // SAFETY: only async-signal-safe calls on memory that was valid before the fork.
    unsafe {
        close_all_except(report_fd, max_fd);
        let (stage, value) = {
            // O_TRUNC as a shell's `>` does: sysfs ignores it, and a regular file under `--root`
            // then holds exactly the value, as an attribute would.
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
            );
            if fd < 0 {
                (STAGE_OPEN, *libc::__errno_location())
            } else {
                let written = libc::write(fd, payload.as_ptr().cast(), payload.len());
                if written < 0 {
                    (STAGE_WRITE, *libc::__errno_location())
                } else if written as usize != payload.len() {
                    (STAGE_SHORT, written as i32)
                } else {
                    (STAGE_DONE, 0)
                }
            }
        };
        let mut report = [0u8; REPORT_LEN];
        let stage_bytes = stage.to_ne_bytes();
        let value_bytes = value.to_ne_bytes();
        let mut index = 0;
        while index < 4 {
            report[index] = stage_bytes[index];
            report[index + 4] = value_bytes[index];
            index += 1;
        }
        libc::write(report_fd, report.as_ptr().cast(), REPORT_LEN);
        libc::_exit(0)
    }
}

/// Closes every descriptor except `keep`.
///
/// # Safety
///
/// Async-signal-safe; closes descriptors other code may own, so only for a forked child.
unsafe fn close_all_except(keep: libc::c_int, max_fd: libc::c_int) {
    let ranges = [(0, keep - 1), (keep + 1, libc::c_int::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range takes two descriptor numbers and flags; it touches no memory.
        let closed = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                last as libc::c_uint,
                0,
            )
        };
        if closed != 0 {
            for fd in first..=last.min(max_fd) {
                // SAFETY: closing a number that is not open is harmless (EBADF).
                unsafe { libc::close(fd) };
            }
        }
    }
}

fn highest_fd_to_close() -> libc::c_int {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return FALLBACK_MAX_FD;
    }
    libc::c_int::try_from(limit.rlim_cur)
        .unwrap_or(FALLBACK_MAX_FD)
        .min(FALLBACK_MAX_FD)
}

enum WaitError {
    TimedOut,
    Poll(String),
}

/// Waits for the child's report; `Ok(None)` when it closed the pipe without one.
fn wait_for_report(
    reader: &OwnedFd,
    limit: Duration,
) -> Result<Option<[u8; REPORT_LEN]>, WaitError> {
    let deadline = Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(WaitError::TimedOut);
        }
        let millis =
            libc::c_int::try_from(remaining.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut poll_fd = libc::pollfd {
            fd: reader.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll_fd` is one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll_fd, 1, millis) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(WaitError::Poll(format!(
                "could not wait for the writer: {error}"
            )));
        }
        if ready == 0 {
            continue;
        }
        let mut report = [0u8; REPORT_LEN];
        let mut filled = 0;
        while filled < REPORT_LEN {
            // SAFETY: the buffer has REPORT_LEN - filled writable bytes from `filled` on.
            let read = unsafe {
                libc::read(
                    reader.as_raw_fd(),
                    report[filled..].as_mut_ptr().cast(),
                    REPORT_LEN - filled,
                )
            };
            if read < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Ok(None);
            }
            if read == 0 {
                return Ok(None);
            }
            filled += read as usize;
        }
        return Ok(Some(report));
    }
}

fn decode(report: [u8; REPORT_LEN]) -> Result<(), WriteFailure> {
    let stage = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let value = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    match stage {
        STAGE_DONE => Ok(()),
        STAGE_OPEN | STAGE_WRITE => Err(WriteFailure::Rejected(Errno(value))),
        STAGE_SHORT => Err(WriteFailure::Other(format!(
            "the kernel accepted only {value} bytes"
        ))),
        _ => Err(WriteFailure::Other(
            "the writer sent a garbled report".into(),
        )),
    }
}

/// Waits for a child that has reported (it exits right after).
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int; `pid` is our child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}

/// Leaves a stuck child behind: kill it (effective once the write returns) and reap it from a
/// detached thread, which never keeps the process from exiting.
fn abandon(pid: libc::pid_t) {
    // SAFETY: sending a signal to our own child has no memory effects.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = std::thread::Builder::new()
        .name(format!("reap-writer-{pid}"))
        .spawn(move || reap(pid));
}

fn last_error(what: &str) -> WriteFailure {
    WriteFailure::Other(format!("{what}: {}", std::io::Error::last_os_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn fifo(path: &Path) {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn writes_a_file_and_reports_kernel_errors_by_errno() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("driver_override");
        // sysfs attributes are never created by a write: no O_CREAT.
        assert_eq!(
            timed_write(&target, b"vfio-pci\n", Duration::from_secs(5)),
            Err(WriteFailure::Rejected(Errno::ENOENT))
        );
        fs_err::write(&target, b"(null)\n").unwrap();
        timed_write(&target, b"vfio-pci\n", Duration::from_secs(5)).unwrap();
        assert_eq!(fs_err::read(&target).unwrap(), b"vfio-pci\n");

        let missing = dir.path().join("no/such/unbind");
        assert_eq!(
            timed_write(&missing, b"x", Duration::from_secs(5)),
            Err(WriteFailure::Rejected(Errno::ENOENT))
        );
        assert_eq!(
            timed_write(dir.path(), b"x", Duration::from_secs(5)),
            Err(WriteFailure::Rejected(Errno(libc::EISDIR)))
        );
    }

    #[test]
    fn a_write_that_never_returns_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("unbind");
        fifo(&pipe);
        // Opening a FIFO for writing blocks until a reader comes: a stand-in for a stuck unbind.
        let started = Instant::now();
        let result = timed_write(&pipe, b"0000:01:00.0\n", Duration::from_millis(200));
        assert_eq!(
            result,
            Err(WriteFailure::TimedOut(Duration::from_millis(200)))
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn the_writer_keeps_none_of_our_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("unbind");
        fifo(&pipe);
        let lock_path = dir.path().join("journal.lock");
        let lock = fs_err::File::create(&lock_path).unwrap();
        lock.file().lock().unwrap();

        let writer_pipe = pipe.clone();
        let writer = std::thread::spawn(move || {
            timed_write(&writer_pipe, b"0000:01:00.0\n", Duration::from_secs(20))
        });
        std::thread::sleep(Duration::from_millis(300));
        // The child is blocked in `open`. Had it inherited our lock, the lock would outlive
        // this drop and the second lock below would fail.
        drop(lock);
        let again = fs_err::File::open(&lock_path).unwrap();
        again
            .file()
            .try_lock()
            .expect("the blocked writer must not hold our lock");

        // Now let the write through and check what arrived.
        let mut reader = fs_err::File::open(&pipe).unwrap();
        let mut received = String::new();
        reader.read_to_string(&mut received).unwrap();
        assert_eq!(writer.join().unwrap(), Ok(()));
        assert_eq!(received, "0000:01:00.0\n");
    }
}
