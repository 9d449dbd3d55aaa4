//! The port through which passthru runs external programs (`update-initramfs`, `modprobe`,
//! `powershell.exe`, ...). Production uses [`SystemRunner`]; tests substitute a fake that
//! records the calls and answers from a script.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A program invocation, fully described so that it can be shown by `--dry-run`, journaled,
/// and replayed by a fake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// Program name or path.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Bytes fed to standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<Vec<u8>>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Give up (and kill the program) after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl CommandSpec {
    /// A command with arguments and no input.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
            env: Vec::new(),
            cwd: None,
            timeout: None,
        }
    }

    /// Sets standard input.
    pub fn with_stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }

    /// Sets a timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl fmt::Display for CommandSpec {
    /// Shell-like rendering for people (quotes arguments that need it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes a word for a POSIX shell when it contains anything unusual.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal or by the timeout.
    pub status: Option<i32>,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
    /// Whether the timeout expired and the program was killed.
    pub timed_out: bool,
}

impl CommandOutput {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs external programs.
pub trait CommandRunner {
    /// Runs `command` to completion (or to its timeout) and captures its output.
    fn run(&mut self, command: &CommandSpec) -> io::Result<CommandOutput>;
}

/// Runs programs on this machine.
#[derive(Debug, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&mut self, spec: &CommandSpec) -> io::Result<CommandOutput> {
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .stdin(if spec.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("could not start `{}`: {error}", spec.program),
            )
        })?;
        // Feed stdin and drain stdout/stderr on threads so a chatty child cannot deadlock us.
        let stdin_thread = match (child.stdin.take(), spec.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let stdout_thread = child.stdout.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        });
        let stderr_thread = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        });
        let started = Instant::now();
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if spec.timeout.is_some_and(|limit| started.elapsed() >= limit) {
                timed_out = true;
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(thread) = stdin_thread {
            let _ = thread.join();
        }
        let stdout = stdout_thread
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        let stderr = stderr_thread
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        Ok(CommandOutput {
            status: if timed_out { None } else { status.code() },
            stdout,
            stderr,
            timed_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_shell_safe() {
        assert_eq!(shell_quote("update-initramfs"), "update-initramfs");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[cfg(unix)]
    #[test]
    fn system_runner_captures_output_and_feeds_stdin() {
        let output = SystemRunner
            .run(&CommandSpec::new("sh", ["-c", "cat; echo err >&2; exit 3"]).with_stdin("hi"))
            .unwrap();
        assert_eq!(output.stdout_text(), "hi");
        assert_eq!(output.stderr_text(), "err\n");
        assert_eq!(output.status, Some(3));
    }

    #[cfg(unix)]
    #[test]
    fn system_runner_kills_on_timeout() {
        let output = SystemRunner
            .run(&CommandSpec::new("sleep", ["5"]).with_timeout(Duration::from_millis(50)))
            .unwrap();
        assert!(output.timed_out);
        assert!(!output.success());
    }

    #[test]
    fn missing_program_names_it() {
        let error = SystemRunner
            .run(&CommandSpec::new(
                "passthru-no-such-program",
                Vec::<String>::new(),
            ))
            .unwrap_err();
        assert!(error.to_string().contains("passthru-no-such-program"));
    }
}
