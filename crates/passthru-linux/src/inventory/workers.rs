//! Reading devices and groups on several threads, each worker with its own scratch space.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use passthru_core::hostfs::{HostDir, HostFs};

/// Items (devices, groups) per thread below which reading in parallel is not worth a thread.
const ITEMS_PER_THREAD: usize = 64;
/// Most threads used to read devices (sysfs reads scale with cores, then contend).
const MAX_THREADS: usize = 8;

/// What one worker reuses from item to item: a buffer for attribute values and names, and
/// the directory that holds the devices it reads.
pub(crate) struct Scratch<'a> {
    /// Attribute bytes.
    pub(crate) bytes: Vec<u8>,
    /// Config space bytes.
    pub(crate) config: Vec<u8>,
    /// Entry names built from parts (`12/reserved_regions`).
    pub(crate) name: String,
    pub(crate) parents: ParentDirs<'a>,
}

impl<'a> Scratch<'a> {
    pub(crate) fn new(fs: &'a dyn HostFs) -> Self {
        Self {
            bytes: Vec::new(),
            config: Vec::new(),
            name: String::new(),
            parents: ParentDirs {
                fs,
                last_parent: PathBuf::new(),
                open: None,
            },
        }
    }
}

/// Opens device directories. Sibling functions (a PF's virtual functions, the functions of
/// one card) share their parent: once two devices in a row do, the parent is held open and
/// each device is opened relative to it, which spares the kernel walking the whole path
/// (`/sys/devices/pci0000:00/0000:00:01.0/...`) again for every device.
pub(crate) struct ParentDirs<'a> {
    fs: &'a dyn HostFs,
    last_parent: PathBuf,
    open: Option<Box<dyn HostDir + 'a>>,
}

impl<'a> ParentDirs<'a> {
    /// Opens the directory at the host-absolute `path`.
    pub(crate) fn open(&mut self, path: &Path) -> Box<dyn HostDir + 'a> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return self.fs.open_dir(path);
        };
        if parent != self.last_parent {
            self.last_parent = parent.to_path_buf();
            self.open = None;
            return self.fs.open_dir(path);
        }
        let fs = self.fs;
        let parent_dir = self.open.get_or_insert_with(|| fs.open_dir(parent));
        match parent_dir.open_subdir(name) {
            Ok(dir) => dir,
            Err(_) => self.fs.open_dir(path),
        }
    }
}

/// One worker per idle core, for at least [`ITEMS_PER_THREAD`] items each.
fn worker_count(items: usize) -> usize {
    let cores = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_THREADS);
    let wanted = cores.min(items / ITEMS_PER_THREAD);
    if wanted <= 1 {
        return 1;
    }
    wanted.min(idle_cores(cores)).max(1)
}

/// Cores that nothing else wants right now: a second worker on a core that already runs
/// another program does not read faster, it only takes turns with that program and with the
/// first worker (measured on a busy 2-core machine: 5–15 % slower than one worker). Counted
/// from the runnable tasks in `/proc/loadavg` (`0.52 0.58 0.59 3/611 12345`: 3 runnable,
/// this process included); without that file every core counts as idle.
fn idle_cores(cores: usize) -> usize {
    let Ok(text) = fs_err::read_to_string("/proc/loadavg") else {
        return cores;
    };
    let runnable = text
        .split_whitespace()
        .nth(3)
        .and_then(|field| field.split_once('/'))
        .and_then(|(runnable, _)| runnable.parse::<usize>().ok());
    match runnable {
        Some(runnable) => cores.saturating_sub(runnable.saturating_sub(1)),
        None => cores,
    }
}

/// Maps `work` over `items` on up to [`MAX_THREADS`] threads (one per core), keeping order;
/// each worker owns the state `init` makes. Workers take batches from a shared counter, so
/// slow items (a PF with 60 VF links) do not leave the other cores idle.
pub(crate) fn parallel_map<T: Sync, R: Send, S>(
    items: &[T],
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    map_on_threads(worker_count(items.len()), items, init, work)
}

/// [`parallel_map`] on `threads` workers.
fn map_on_threads<T: Sync, R: Send, S>(
    threads: usize,
    items: &[T],
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    const BATCH: usize = 16;
    if threads <= 1 {
        let mut state = init();
        return items.iter().map(|item| work(&mut state, item)).collect();
    }
    let next = AtomicUsize::new(0);
    let (init, work, next) = (&init, &work, &next);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut state = init();
                    let mut done = Vec::new();
                    loop {
                        let start = next.fetch_add(BATCH, Ordering::Relaxed);
                        if start >= items.len() {
                            break done;
                        }
                        for (index, item) in items.iter().enumerate().skip(start).take(BATCH) {
                            done.push((index, work(&mut state, item)));
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_count_keeps_the_order() {
        let items: Vec<u32> = (0..1000).collect();
        let expected: Vec<u64> = items.iter().map(|item| u64::from(*item) * 3).collect();
        for threads in [1, 2, 3, 8] {
            let counted = map_on_threads(
                threads,
                &items,
                || 0usize,
                |seen, item| {
                    *seen += 1;
                    u64::from(*item) * 3
                },
            );
            assert_eq!(counted, expected, "{threads} workers");
        }
    }

    #[test]
    fn small_jobs_stay_on_one_thread() {
        assert_eq!(worker_count(ITEMS_PER_THREAD), 1);
        assert!(worker_count(100_000) <= MAX_THREADS);
    }
}
