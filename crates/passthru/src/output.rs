//! Human and JSON output, colours, and how failures are reported.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use anstyle::{AnsiColor, Style};

use crate::cli::ColorChoice;

mod indented;

/// Applies the `--color` choice to everything written through `anstream`.
pub(crate) fn init_color(choice: ColorChoice) {
    let choice = match choice {
        ColorChoice::Auto => anstream::ColorChoice::Auto,
        ColorChoice::Always => anstream::ColorChoice::Always,
        ColorChoice::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}

/// Styles used across commands, so colours mean the same thing everywhere.
pub(crate) mod style {
    use super::*;

    /// Headings and device addresses.
    pub(crate) const HEADING: Style = Style::new().bold();
    /// Good news: viable, assignable, ready.
    pub(crate) const GOOD: Style = AnsiColor::Green.on_default();
    /// Warnings: works with caveats.
    pub(crate) const WARN: Style = AnsiColor::Yellow.on_default();
    /// Bad news: blocked, not assignable, failed.
    pub(crate) const BAD: Style = AnsiColor::Red.on_default().bold();
    /// Secondary text.
    pub(crate) const DIM: Style = Style::new().dimmed();
    /// GPUs and the functions that travel with them (HDMI audio, USB-C), so they stand out.
    pub(crate) const GPU: Style = AnsiColor::Magenta.on_default().bold();
}

/// Prints `value` as pretty JSON followed by a newline, streamed through one buffer: a
/// survey of a big host is megabytes, and building it in memory first costs page faults and
/// copies, while token-by-token writes to an unbuffered stdout cost a system call each.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    // JSON carries no colour, so it skips anstream's escape-stripping pass.
    let stdout = std::io::stdout().lock();
    let mut writer = std::io::BufWriter::with_capacity(1 << 16, stdout);
    indented::to_writer_indented(&mut writer, value)
        .map_err(|error| Failure::new(format!("could not write JSON: {error}")))?;
    writer
        .write_all(b"\n")
        .and_then(|()| writer.flush())
        .map_err(|error| Failure::new(format!("could not write output: {error}")))?;
    Ok(())
}

/// Prints `value` as pretty JSON followed by a newline to `out` (for commands that write to a
/// given stream, so that tests can capture it).
pub(crate) fn print_json_to<T: serde::Serialize>(
    out: &mut dyn Write,
    value: &T,
) -> Result<(), Failure> {
    indented::to_writer_indented(&mut *out, value)
        .map_err(|error| Failure::new(format!("could not write JSON: {error}")))?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(|error| Failure::new(format!("could not write output: {error}")))
}

/// A command failed: what happened, and what the person can do next.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    help: Option<String>,
    code: u8,
}

impl Failure {
    /// A failure with exit code 1.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            help: None,
            code: 1,
        }
    }

    /// Adds a hint on what to do next.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The hint, if any.
    pub(crate) fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// Sets the exit code.
    #[allow(dead_code)]
    pub(crate) fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// Builds a failure from any error, including its chain of causes.
    pub(crate) fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Self::new(message)
    }

    /// Prints the failure to stderr and returns its exit code.
    pub(crate) fn report(&self) -> ExitCode {
        let mut stderr = anstream::stderr().lock();
        let _ = writeln!(
            stderr,
            "{}error:{} {}",
            style::BAD,
            style::BAD.render_reset(),
            self.message
        );
        if let Some(help) = &self.help {
            let _ = writeln!(
                stderr,
                "  {}help:{} {help}",
                style::WARN,
                style::WARN.render_reset()
            );
        }
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
