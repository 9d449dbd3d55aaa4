//! Interrupted, failed and crashed runs, and what the next run makes of what they left.
//!
//! To stop a run at a known point without relying on timing, one source file is replaced by a
//! named pipe after planning: the only worker (`threads: 1`, files go largest first) blocks
//! when it opens it, after the larger files, until the test writes to the pipe.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use fs_err::os::unix::fs::OpenOptionsExt;

use super::*;

/// `count` files `partNN.bin` of distinct sizes (part00 smallest); returns their contents.
fn parts(source: &Path, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| {
            let content: Vec<u8> = (0..100_000 + index * 1000)
                .map(|at| (at * 7 + index) as u8)
                .collect();
            write(&source.join(format!("part{index:02}.bin")), &content);
            content
        })
        .collect()
}

/// Replaces the file at `path` with a named pipe.
fn make_fifo(path: &Path) {
    fs_err::remove_file(path).unwrap();
    let name = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `name` is a valid NUL-terminated path that outlives the call.
    let result = unsafe { libc::mkfifo(name.as_ptr(), 0o644) };
    assert_eq!(result, 0, "mkfifo {}", path.display());
}

/// Puts the regular file back where the pipe was, with the time the plan saw.
fn restore(path: &Path, content: &[u8], time: SystemTime) {
    fs_err::remove_file(path).unwrap();
    write(path, content);
    set_mtime(path, time);
}

/// Temporary files left in `dir` (not recursive: the tests' trees are flat).
fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(copy::PARTIAL_SUFFIX))
        .collect();
    names.sort();
    names
}

/// Opens the pipe at `path` for writing once its reader has it open; `None` when `give_up`
/// says so first.
fn open_writer(path: &Path, give_up: impl Fn() -> bool) -> Option<fs_err::File> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Non-blocking: fails while nobody reads, instead of waiting for a reader that may
        // never come.
        match fs_err::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(pipe) => return Some(pipe),
            Err(_) if give_up() => return None,
            Err(error) => assert!(Instant::now() < deadline, "{error}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Writes `content` into a non-blocking pipe while its reader takes it; stops when the reader
/// goes away.
fn feed(pipe: &mut fs_err::File, mut content: &[u8]) {
    while !content.is_empty() {
        match pipe.write(content) {
            Ok(written) => content = &content[written..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return,
        }
    }
}

/// Waits (at most a minute) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs the plan again after an interruption and checks that exactly the files not in place
/// are copied, that kept files take their hashes from the resume log, and that the result is
/// the source.
fn resume_copies_only_the_rest(t: &Trees, job: &SyncJob, options: &SyncOptions, in_place: usize) {
    let resume = plan(job, options).unwrap();
    let kept: Vec<_> = resume
        .files
        .iter()
        .filter(|f| f.action == Action::Keep)
        .collect();
    assert_eq!(kept.len(), in_place);
    let remaining: u64 = resume
        .files
        .iter()
        .filter(|f| f.action != Action::Keep)
        .map(|f| f.size)
        .sum();
    let report = execute_quietly(&resume, options).unwrap();
    assert_eq!(report.bytes_copied, remaining);
    assert_same_tree(&t.source, &t.dest);
    for file in &report.files {
        let content = fs_err::read(t.source.join(&file.dest)).unwrap();
        assert_eq!(file.hash.as_deref(), Some(content_hash(&content).as_str()));
    }
    assert!(temporaries(&t.dest).is_empty());
}

#[test]
fn cancelling_keeps_every_written_file_and_a_new_run_copies_the_rest() {
    let t = trees();
    let contents = parts(&t.source, 24);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let options = SyncOptions {
        threads: 1,
        ..SyncOptions::default()
    };
    let first_plan = plan(&job, &options).unwrap();
    // The 8th-largest file: the worker blocks on it unless the run is cancelled first.
    let blocker = t.source.join("part16.bin");
    let time = mtime(&blocker);
    make_fifo(&blocker);
    let cancel = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            wait_for("the cancellation", || {
                cancel.load(Ordering::Relaxed) || finished.load(Ordering::Relaxed)
            });
            // The worker is waiting for the pipe, or stopped before it (then nobody reads).
            if let Some(mut pipe) = open_writer(&blocker, || finished.load(Ordering::Relaxed)) {
                feed(&mut pipe, &contents[16]);
            }
        });
        let result = execute(
            &first_plan,
            &options,
            &mut |progress| {
                if progress.files_done >= 6 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        );
        finished.store(true, Ordering::Relaxed);
        result
    });
    let Err(SyncError::Interrupted { completed, total }) = result else {
        panic!("expected an interruption, got {result:?}");
    };
    assert!(
        (6..=8).contains(&completed) && total == 24,
        "{completed} of {total}"
    );
    // Every written file was put in place before the run returned: nothing is left half-way.
    assert!(temporaries(&t.dest).is_empty());
    let state = load_state(&t.dest.join(".passthru-sync-state.jsonl")).unwrap();
    assert_eq!(state.len(), completed);
    for (index, content) in contents.iter().enumerate().rev().take(completed) {
        let name = format!("part{index:02}.bin");
        assert_eq!(
            &fs_err::read(t.dest.join(&name)).unwrap(),
            content,
            "{name}"
        );
    }

    restore(&blocker, &contents[16], time);
    // A crash mid-file would leave a temporary file: the next run removes it.
    write(&t.dest.join(".part00.bin.passthru-partial"), b"torn");
    let resume = plan(&job, &options).unwrap();
    assert_eq!(
        resume.leftovers,
        [t.dest.join(".part00.bin.passthru-partial")]
    );
    assert!(
        resume
            .files
            .iter()
            .filter(|f| f.action == Action::Keep)
            .all(|f| f.known_hash.is_some()),
        "hashes come from the resume log"
    );
    resume_copies_only_the_rest(&t, &job, &options, completed);
}

#[test]
fn a_failing_file_stops_the_run_keeps_the_written_ones_and_the_rest_resumes() {
    let t = trees();
    parts(&t.source, 24);
    // A directory where the 8th-largest file belongs: copying it fails.
    fs_err::create_dir_all(t.dest.join("part16.bin/inner")).unwrap();
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let options = SyncOptions {
        threads: 1,
        ..SyncOptions::default()
    };
    let error = run(&job, &options).unwrap_err();
    let SyncError::Files(failures) = &error else {
        panic!("expected a file failure, got {error:?}");
    };
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].message.contains("part16.bin` is a directory"),
        "{error}"
    );
    // The seven larger files were written before the failure and are in place, complete;
    // files the worker took on after it (before it saw the stop) are complete too.
    let in_place: Vec<usize> = (0..24)
        .filter(|index| t.dest.join(format!("part{index:02}.bin")).is_file())
        .collect();
    assert!(
        (17..24).all(|index| in_place.contains(&index)),
        "{in_place:?}"
    );
    for index in &in_place {
        let name = format!("part{index:02}.bin");
        assert_eq!(
            fs_err::read(t.dest.join(&name)).unwrap(),
            fs_err::read(t.source.join(&name)).unwrap()
        );
    }
    assert!(temporaries(&t.dest).is_empty());

    fs_err::remove_dir_all(t.dest.join("part16.bin")).unwrap();
    resume_copies_only_the_rest(&t, &job, &options, in_place.len());
}

/// What a crash or power loss can leave before a file's rename reached the disk: the old file
/// under the final name, and a temporary file that is complete (crashed after the flush) or
/// has the right size and time but lost content (power loss during the flush). Both are
/// removed and copied again, never taken for finished.
#[test]
fn temporary_files_left_by_a_crash_are_never_trusted() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    run(&job, &SyncOptions::default()).unwrap();
    let new_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let flushed = b"new kernel driver, flushed but not renamed".to_vec();
    write(&t.source.join("nvlddmkm.sys"), &flushed);
    set_mtime(&t.source.join("nvlddmkm.sys"), new_time);
    write(&t.source.join("NvCamera/Color.fx"), b"shader v2");
    set_mtime(&t.source.join("NvCamera/Color.fx"), new_time);
    let complete = t.dest.join(".nvlddmkm.sys.passthru-partial");
    write(&complete, &flushed);
    set_mtime(&complete, new_time);
    let lost = t.dest.join("NvCamera/.Color.fx.passthru-partial");
    write(&lost, &[0u8; 9]);
    set_mtime(&lost, new_time);

    let plan = plan(&job, &SyncOptions::default()).unwrap();
    let mut leftovers = plan.leftovers.clone();
    leftovers.sort();
    assert_eq!(leftovers, [complete.clone(), lost.clone()]);
    assert_eq!(
        action_of(&plan, "nvlddmkm.sys"),
        Action::Replace { old_size: 300_000 }
    );
    assert_eq!(
        action_of(&plan, "Color.fx"),
        Action::Replace { old_size: 6 }
    );
    let report = execute_quietly(&plan, &SyncOptions::default()).unwrap();
    assert_eq!(report.bytes_copied, flushed.len() as u64 + 9);
    assert_same_tree(&t.source, &t.dest);
    assert!(!complete.exists() && !lost.exists());
}

#[test]
fn a_source_that_changes_during_the_sync_never_replaces_the_old_file() {
    let t = trees();
    write(&t.source.join("nvapi64.dll"), b"version 2");
    write(&t.dest.join("nvapi64.dll"), b"version 1, still working");
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let plan = plan(&job, &SyncOptions::default()).unwrap();
    // Rewritten between planning and copying (a driver update running at the same time).
    write(&t.source.join("nvapi64.dll"), b"version 2, longer");
    let error = execute_quietly(&plan, &SyncOptions::default()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("verification failed"), "{message}");
    assert!(
        message.contains(&t.dest.join("nvapi64.dll").display().to_string()),
        "{message}"
    );
    assert_eq!(
        fs_err::read(t.dest.join("nvapi64.dll")).unwrap(),
        b"version 1, still working"
    );
    assert!(temporaries(&t.dest).is_empty());
}

/// Environment variable that makes [`killed_child`] run (it names the test's directory).
const KILLED_CHILD_ENV: &str = "PASSTHRU_SYNC_KILLED_DIR";

/// A hard kill (no chance to clean up) in the middle of a run: the files committed before it
/// are in place and kept by the next run, the file being written is only a temporary file,
/// and the next run removes it and finishes.
#[test]
fn killed_mid_run_then_resumed() {
    let t = trees();
    let contents = parts(&t.source, 24);
    let blocker = t.source.join("part16.bin");
    let time = mtime(&blocker);
    let partial = t.dest.join(".part16.bin.passthru-partial");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sync::tests::interruption::killed_child",
            "--ignored",
            "--nocapture",
        ])
        .env(KILLED_CHILD_ENV, t.source.parent().unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The child turns part16 into a pipe after planning.
    wait_for("the child's pipe", || {
        fs_err::symlink_metadata(&blocker).is_ok_and(|meta| !meta.is_file())
    });
    // Half of part16, then nothing more: the child's worker waits in the middle of the file.
    let mut pipe = open_writer(&blocker, || false).unwrap();
    feed(&mut pipe, &contents[16][..50_000]);
    wait_for("the seven larger files and half of part16", || {
        (17..24).all(|index| t.dest.join(format!("part{index:02}.bin")).is_file())
            && fs_err::metadata(&partial).is_ok_and(|meta| meta.len() == 50_000)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    drop(pipe);

    assert!(!t.dest.join("part16.bin").exists(), "no half file in place");
    for (index, content) in contents.iter().enumerate().skip(17) {
        let name = format!("part{index:02}.bin");
        assert_eq!(&fs_err::read(t.dest.join(&name)).unwrap(), content);
    }
    restore(&blocker, &contents[16], time);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let options = SyncOptions {
        threads: 1,
        ..SyncOptions::default()
    };
    assert_eq!(plan(&job, &options).unwrap().leftovers, [partial]);
    resume_copies_only_the_rest(&t, &job, &options, 7);
}

#[test]
#[ignore = "run and killed by killed_mid_run_then_resumed"]
fn killed_child() {
    let base = PathBuf::from(std::env::var_os(KILLED_CHILD_ENV).expect("run by the parent test"));
    let (source, dest) = (base.join("source"), base.join("dest"));
    let job = SyncJob::mirror(&source, &dest).unwrap();
    let options = SyncOptions {
        threads: 1,
        ..SyncOptions::default()
    };
    let plan = plan(&job, &options).unwrap();
    make_fifo(&source.join("part16.bin"));
    // Never returns: the parent kills this process while the worker waits for the pipe.
    let result = execute(&plan, &options, &mut |_| {}, &AtomicBool::new(false));
    panic!("the run was meant to be killed, but it ended: {result:?}");
}
