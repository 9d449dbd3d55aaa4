//! What a person sees while a sync runs: one line per step; during the copy a progress bar
//! with throughput when stderr is a terminal, otherwise a plain line every few seconds; a
//! summary line when the copy ends. Nothing of this with `--json`.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use passthru_core::plan::executor::Progress;
use passthru_driver::guest::steps::ProgressObserver;
use passthru_driver::sync::SyncProgress;

use crate::hyperv::paint;
use crate::output::style;

/// How copy progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A redrawn bar on stderr.
    Bar,
    /// A line now and then on stdout.
    Lines,
}

#[derive(Debug)]
struct CopyState {
    mode: Mode,
    last: Option<SyncProgress>,
    drawn: Option<Instant>,
    bar_visible: bool,
}

/// The display of one run.
#[derive(Debug, Clone)]
pub(super) struct Display {
    copy: Rc<RefCell<CopyState>>,
}

const BAR_EVERY: Duration = Duration::from_millis(100);
const LINE_EVERY: Duration = Duration::from_secs(5);

impl Display {
    /// A display on this process's terminal (or not).
    pub(super) fn new() -> Self {
        let mode = if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        };
        Self {
            copy: Rc::new(RefCell::new(CopyState {
                mode,
                last: None,
                drawn: None,
                bar_visible: false,
            })),
        }
    }

    /// The observer the sync engine reports copy progress to.
    pub(super) fn copy_observer(&self) -> ProgressObserver {
        let copy = Rc::clone(&self.copy);
        Box::new(move |progress: &SyncProgress| copy.borrow_mut().update(progress))
    }

    /// Shows the executor's progress.
    pub(super) fn step(&self, progress: Progress<'_>) {
        let mut out = anstream::stdout().lock();
        match progress {
            Progress::Applying { index, total, view } => {
                let _ = writeln!(out, "  [{}/{total}] {}", index + 1, view.summary);
            }
            Progress::Applied { .. } => {
                drop(out);
                self.copy.borrow_mut().finish(None);
            }
            Progress::Failed { error, .. } => {
                drop(out);
                self.copy.borrow_mut().finish(Some(()));
                let mut out = anstream::stdout().lock();
                let _ = writeln!(
                    out,
                    "        {} {}",
                    paint(style::BAD, "failed:"),
                    error.message
                );
            }
            Progress::Undoing { index, view } => {
                let _ = writeln!(out, "  undo [{}] {}", index + 1, view.summary);
            }
            Progress::Undone { .. } => {}
            Progress::UndoFailed { error, .. } => {
                let _ = writeln!(
                    out,
                    "        {} {}",
                    paint(style::BAD, "undo failed:"),
                    error.message
                );
            }
        }
        let _ = std::io::stdout().flush();
    }
}

impl CopyState {
    fn update(&mut self, progress: &SyncProgress) {
        let due = self.drawn.is_none_or(|at| {
            at.elapsed()
                >= if self.mode == Mode::Bar {
                    BAR_EVERY
                } else {
                    LINE_EVERY
                }
        });
        self.last = Some(progress.clone());
        if !due {
            return;
        }
        self.drawn = Some(Instant::now());
        match self.mode {
            Mode::Bar => {
                let mut err = anstream::stderr().lock();
                let _ = write!(err, "\r\x1b[2K        {}", bar_line(progress));
                let _ = err.flush();
                self.bar_visible = true;
            }
            Mode::Lines if progress.elapsed >= LINE_EVERY => {
                let mut out = anstream::stdout().lock();
                let _ = writeln!(out, "        {}", counts(progress));
            }
            Mode::Lines => {}
        }
    }

    /// The copy ended (or failed): clear the bar and say what was copied.
    fn finish(&mut self, failed: Option<()>) {
        if self.bar_visible {
            let mut err = anstream::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.bar_visible = false;
        }
        if let (Some(last), None) = (self.last.take(), failed) {
            let mut out = anstream::stdout().lock();
            let _ = writeln!(
                out,
                "        copy finished: {} file(s), {} in {:.1} s ({}/s)",
                last.files_done,
                size(last.bytes_done),
                last.elapsed.as_secs_f64(),
                size(last.bytes_per_second() as u64)
            );
        }
        self.drawn = None;
    }
}

fn counts(progress: &SyncProgress) -> String {
    format!(
        "{} of {}, {}/{} files, {}/s",
        size(progress.bytes_done),
        size(progress.bytes_total),
        progress.files_done,
        progress.files_total,
        size(progress.bytes_per_second() as u64)
    )
}

fn bar_line(progress: &SyncProgress) -> String {
    const WIDTH: usize = 24;
    let fraction = if progress.bytes_total == 0 {
        1.0
    } else {
        progress.bytes_done as f64 / progress.bytes_total as f64
    };
    let filled = ((fraction * WIDTH as f64).round() as usize).min(WIDTH);
    format!(
        "[{}{}] {:>3.0}%  {}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        fraction * 100.0,
        counts(progress)
    )
}

/// Bytes for people (binary units, as the plan shows them).
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            return format!("{:.1} {name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_and_sizes_read_well() {
        let progress = SyncProgress {
            files_done: 140,
            files_total: 310,
            bytes_done: 650 << 20,
            bytes_total: 1400 << 20,
            elapsed: Duration::from_secs(2),
            last_file: None,
        };
        assert_eq!(
            bar_line(&progress),
            "[###########.............]  46%  650.0 MiB of 1.4 GiB, 140/310 files, 325.0 MiB/s"
        );
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
