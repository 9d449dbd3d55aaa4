//! The copy pipeline of [`super::execute`]: worker threads write files under temporary names,
//! committer threads flush them to disk and rename them into place, and the calling thread
//! keeps the books and reports progress.
//!
//! Why two kinds of threads: a flush waits for the device (about 5 ms per file on the
//! benchmark's disk, however small the file), and a thread that copies and then flushes copies
//! nothing meanwhile. Separate committers flush several files at the same time (the block layer
//! merges concurrent flushes) while the workers keep reading and writing. See
//! [`super::commit`] for why committing files this way is crash-safe.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use super::commit;
use super::compare::Action;
use super::copy::{self, CopyError, CopyRequest, Written};
use super::run::SyncProgress;
use super::state::{KnownFile, StateLog};
use super::{FileFailure, PlannedFile, SyncOptions, SyncPlan, relative_key};

/// Threads that flush written files and rename them into place: enough concurrent flushes to
/// be merged (measured: 8 flushed 64 small files 10x faster than 1, 16 were no faster).
const COMMITTERS: usize = 8;
/// Written files waiting for a committer, at most; a worker waits when the queue is full, so a
/// hard kill loses at most this many files plus those being committed.
const COMMIT_QUEUE: usize = 16;
/// Bytes per read, hash and write.
const CHUNK: usize = 1 << 20;

/// The work of one [`super::execute`] call.
pub(super) struct Pipeline<'a> {
    pub(super) plan: &'a SyncPlan,
    pub(super) options: &'a SyncOptions,
    /// Indexes into `plan.files`, in the order to start them.
    pub(super) work: &'a [usize],
    pub(super) cancel: &'a AtomicBool,
}

/// How one file of the plan ended up, if it was worked on.
pub(super) enum Outcome {
    /// Written and committed.
    Copied { hash: Option<String> },
    /// Already in place (hashed or content-checked).
    Kept { hash: Option<String> },
}

/// What the pipeline achieved, file by file.
pub(super) struct Ledger {
    /// By plan index.
    pub(super) outcomes: Vec<Option<Outcome>>,
    pub(super) failures: Vec<FileFailure>,
    /// Files in place (committed or kept).
    pub(super) finished: usize,
    /// Directories that got new names.
    pub(super) dirs: BTreeSet<PathBuf>,
    pub(super) bytes_copied: u64,
    /// Whether the run stopped before the end (cancelled or a file failed).
    pub(super) stopped: bool,
    state_path: Option<PathBuf>,
    /// The resume log, opened at the first finished file so that a run with nothing to do
    /// writes nothing to the destination.
    state: Option<StateLog>,
}

enum Event {
    Bytes(u64),
    /// A worker is done with a file (a written one is queued for a committer).
    Done {
        index: usize,
        result: Result<Finished, CopyError>,
    },
    /// A committer is done with a file.
    Committed {
        index: usize,
        result: io::Result<Option<String>>,
    },
}

/// A worker's result for one file.
enum Finished {
    Written,
    Kept { hash: Option<String> },
}

/// A worker's result before a written file is handed to the committers.
enum Processed {
    Written(Written),
    Kept { hash: Option<String> },
}

impl Pipeline<'_> {
    /// Runs every file of the work list through the pipeline; `observer` gets `progress` on
    /// the calling thread. Every written file is committed before this returns, also when the
    /// run stops early.
    pub(super) fn run(
        &self,
        progress: &mut SyncProgress,
        started: Instant,
        observer: &mut dyn FnMut(&SyncProgress),
    ) -> Ledger {
        let plan = self.plan;
        let mut ledger = Ledger::new(plan);
        let stop = AtomicBool::new(false);
        let next = AtomicUsize::new(0);
        let workers = self.options.threads.clamp(1, 64).min(self.work.len());
        let committers = if workers == 0 { 0 } else { COMMITTERS };
        let (queue, queued) = mpsc::sync_channel::<(usize, Written)>(COMMIT_QUEUE);
        let queued = Mutex::new(queued);
        std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::channel::<Event>();
            for _ in 0..committers {
                let (sender, queued) = (sender.clone(), &queued);
                scope.spawn(move || self.commit_loop(queued, &sender));
            }
            for _ in 0..workers {
                let (sender, queue) = (sender.clone(), queue.clone());
                let (next, stop) = (&next, &stop);
                scope.spawn(move || self.work_loop(next, stop, &queue, &sender));
            }
            // The channels close when the last worker (queue) and then the last committer
            // (events) are done.
            drop((sender, queue));
            let mut last_report = Instant::now();
            loop {
                match receiver.recv_timeout(Duration::from_millis(100)) {
                    Ok(Event::Bytes(bytes)) => {
                        progress.bytes_done += bytes;
                        ledger.bytes_copied += bytes;
                    }
                    Ok(Event::Done { index, result }) => {
                        let file = &plan.files[index];
                        match result {
                            Ok(finished) => {
                                progress.files_done += 1;
                                progress.last_file = Some(file.dest.clone());
                                if let Finished::Kept { hash } = finished {
                                    progress.bytes_done += file.size;
                                    ledger.finish(file, index, Outcome::Kept { hash });
                                }
                            }
                            Err(CopyError::Cancelled) => {}
                            Err(CopyError::Io(error)) => ledger.fail(file, error.to_string()),
                        }
                        progress.elapsed = started.elapsed();
                        observer(progress);
                        last_report = Instant::now();
                    }
                    Ok(Event::Committed { index, result }) => {
                        let file = &plan.files[index];
                        match result {
                            Ok(hash) => {
                                if let Some(dir) = plan.dest_root.join(&file.dest).parent() {
                                    ledger.dirs.insert(dir.to_path_buf());
                                }
                                ledger.finish(file, index, Outcome::Copied { hash });
                            }
                            Err(error) => ledger.fail(file, error.to_string()),
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if self.cancel.load(Ordering::Relaxed) || !ledger.failures.is_empty() {
                    stop.store(true, Ordering::Relaxed);
                }
                if last_report.elapsed() >= Duration::from_millis(100) {
                    progress.elapsed = started.elapsed();
                    observer(progress);
                    last_report = Instant::now();
                }
            }
        });
        ledger.stopped = stop.load(Ordering::Relaxed);
        ledger
    }

    /// A worker: takes files off the work list until it is empty or the run stops.
    fn work_loop(
        &self,
        next: &AtomicUsize,
        stop: &AtomicBool,
        queue: &mpsc::SyncSender<(usize, Written)>,
        events: &mpsc::Sender<Event>,
    ) {
        let mut buffer = vec![0u8; CHUNK];
        while !stop.load(Ordering::Relaxed) && !self.cancel.load(Ordering::Relaxed) {
            let Some(&index) = self.work.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let file = &self.plan.files[index];
            let mut report = |bytes| {
                let _ = events.send(Event::Bytes(bytes));
            };
            let result = match self.process(file, stop, &mut buffer, &mut report) {
                Ok(Processed::Written(written)) => {
                    // The committers stop only after every worker has, so this cannot fail.
                    let _ = queue.send((index, written));
                    Ok(Finished::Written)
                }
                Ok(Processed::Kept { hash }) => Ok(Finished::Kept { hash }),
                Err(error) => Err(error),
            };
            let _ = events.send(Event::Done { index, result });
        }
    }

    /// A committer: flushes and renames written files until the workers are all done.
    fn commit_loop(
        &self,
        queued: &Mutex<mpsc::Receiver<(usize, Written)>>,
        events: &mpsc::Sender<Event>,
    ) {
        loop {
            let job = queued.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok((index, written)) = job else {
                return;
            };
            let result = commit::commit(written, self.options.durable);
            let _ = events.send(Event::Committed { index, result });
        }
    }

    /// Does one file's work on a worker thread.
    fn process(
        &self,
        file: &PlannedFile,
        stop: &AtomicBool,
        buffer: &mut [u8],
        report: &mut dyn FnMut(u64),
    ) -> Result<Processed, CopyError> {
        let (plan, options) = (self.plan, self.options);
        let dest = plan.dest_root.join(&file.dest);
        let copy_it = |buffer: &mut [u8], report: &mut dyn FnMut(u64)| {
            let request = CopyRequest {
                source: &file.source,
                dest: &dest,
                size: file.size,
                time: file.time,
                read_only: options.read_only,
                hash: options.hashes,
                backup: plan
                    .backup_dir
                    .as_ref()
                    .filter(|_| file.action != Action::Create)
                    .map(|backup| backup.join(&file.dest)),
                cancel: stop,
            };
            copy::write_temporary(&request, buffer, report).map(Processed::Written)
        };
        match file.action {
            Action::Create | Action::Replace { .. } => copy_it(buffer, report),
            Action::Keep => Ok(Processed::Kept {
                hash: Some(copy::hash_file(&dest, stop, buffer)?),
            }),
            Action::CheckContent => {
                let source_hash = copy::hash_file(&file.source, stop, buffer)?;
                let dest_hash = copy::hash_file(&dest, stop, buffer)?;
                if source_hash == dest_hash {
                    copy::set_time(&dest, file.time)?;
                    Ok(Processed::Kept {
                        hash: Some(source_hash),
                    })
                } else {
                    copy_it(buffer, report)
                }
            }
        }
    }
}

impl Ledger {
    fn new(plan: &SyncPlan) -> Self {
        Self {
            outcomes: (0..plan.files.len()).map(|_| None).collect(),
            failures: Vec::new(),
            finished: 0,
            dirs: BTreeSet::new(),
            bytes_copied: 0,
            stopped: false,
            state_path: plan.state_file.clone(),
            state: None,
        }
    }

    fn finish(&mut self, file: &PlannedFile, index: usize, outcome: Outcome) {
        let (Outcome::Copied { hash } | Outcome::Kept { hash }) = &outcome;
        if let (Some(path), Some(hash)) = (&self.state_path, hash) {
            if self.state.is_none() {
                // The log only saves re-hashing: without it the run still works.
                self.state = StateLog::open(path).ok();
            }
            if let Some(log) = self.state.as_mut() {
                let known = KnownFile {
                    size: file.size,
                    time: file.time,
                    hash: hash.clone(),
                };
                let _ = log.record(&relative_key(&file.dest), &known);
            }
        }
        self.outcomes[index] = Some(outcome);
        self.finished += 1;
    }

    fn fail(&mut self, file: &PlannedFile, message: String) {
        self.failures.push(FileFailure {
            dest: file.dest.clone(),
            message,
        });
    }

    /// Closes the resume log (before the caller removes it).
    pub(super) fn close_state(&mut self) {
        self.state = None;
    }
}
