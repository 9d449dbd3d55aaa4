//! Progress lines while a plan runs (`[3/10] Unbind 0000:01:00.0 from bochs-drm ... ok`), and
//! the test-only pause hook.
//!
//! **Test hook, not a feature:** with `PASSTHRU_TEST_PAUSE_AFTER_STEP=N` in the environment,
//! passthru stops for `PASSTHRU_TEST_PAUSE_SECONDS` (default 300) right after step N of a plan
//! applied and verified, after saying so on stderr. The VM lab uses it to kill passthru in the
//! middle of an assign and prove that `passthru undo` recovers (docs/vm-lab.md). It changes
//! nothing else; do not set it in production.

use std::io::Write;
use std::time::Duration;

use passthru_core::plan::executor::Progress;

use crate::output::style;

/// The step after which to pause, from `PASSTHRU_TEST_PAUSE_AFTER_STEP` (1-based).
fn pause_hook() -> Option<(usize, Duration)> {
    let step = std::env::var("PASSTHRU_TEST_PAUSE_AFTER_STEP")
        .ok()?
        .trim()
        .parse::<usize>()
        .ok()?;
    let seconds = std::env::var("PASSTHRU_TEST_PAUSE_SECONDS")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(300);
    Some((step, Duration::from_secs(seconds)))
}

/// Prints each step as it runs to `out` (nothing with `--json`), and honours the pause hook.
pub(crate) fn printer<'a>(out: &'a mut dyn Write, json: bool) -> impl FnMut(Progress<'_>) + 'a {
    let pause = pause_hook();
    move |progress| {
        if !json {
            print(out, progress);
        }
        if let (Progress::Applied { index }, Some((step, how_long))) = (progress, pause)
            && index + 1 == step
        {
            let _ = out.flush();
            eprintln!(
                "passthru: paused after step {step} for {} s (PASSTHRU_TEST_PAUSE_AFTER_STEP, a \
                 test hook)",
                how_long.as_secs()
            );
            std::thread::sleep(how_long);
        }
    }
}

fn print(out: &mut dyn Write, progress: Progress<'_>) {
    let _ = match progress {
        Progress::Applying { index, total, view } => {
            write!(out, "[{}/{total}] {} ... ", index + 1, view.summary).and_then(|()| out.flush())
        }
        Progress::Applied { .. } => {
            writeln!(out, "{}ok{}", style::GOOD, style::GOOD.render_reset())
        }
        Progress::Failed { error, .. } => {
            let mut text = format!(
                "{}failed{}\n  {}",
                style::BAD,
                style::BAD.render_reset(),
                error.message.replace('\n', "\n  ")
            );
            if let Some(help) = &error.help {
                text.push_str(&format!("\n  help: {help}"));
            }
            writeln!(out, "{text}")
        }
        Progress::Undoing { index, view } => {
            write!(out, "  undo {}: {} ... ", index + 1, view.summary).and_then(|()| out.flush())
        }
        Progress::Undone { .. } => {
            writeln!(out, "{}restored{}", style::GOOD, style::GOOD.render_reset())
        }
        Progress::UndoFailed { error, .. } => writeln!(
            out,
            "{}could not restore{}\n    {}",
            style::BAD,
            style::BAD.render_reset(),
            error.message.replace('\n', "\n    ")
        ),
    };
}
