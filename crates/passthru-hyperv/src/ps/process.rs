//! One long-lived PowerShell process for a whole run.
//!
//! Starting Windows PowerShell and loading the Hyper-V module costs seconds, and a plan's steps
//! must run one at a time with the journal written in between, so passthru starts
//! `powershell.exe -NoProfile -NonInteractive -Command -` once and feeds it scripts on stdin,
//! one line each ([`super::stdin_lines`]), reading stdout until the script's sentinel comes
//! back. The code is portable (tests drive it with a stand-in program); only the choice of
//! `powershell.exe` is Windows-specific (`crate::sys`).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{PortError, PowerShell, Script, stdin_lines};

/// A running PowerShell that answers scripts.
#[derive(Debug)]
pub struct PowerShellProcess {
    program: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    timeout: Duration,
    scripts: u64,
}

impl PowerShellProcess {
    /// Starts `program` with `args`; each script may take up to `timeout`.
    pub fn spawn(program: &str, args: &[&str], timeout: Duration) -> Result<Self, PortError> {
        let mut command = Command::new(program);
        command.args(args);
        Self::spawn_command(command, timeout)
    }

    /// Starts a prepared `command` (program, arguments, platform flags); its standard streams
    /// are replaced by pipes. Each script may take up to `timeout`.
    pub fn spawn_command(mut command: Command, timeout: Duration) -> Result<Self, PortError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let program = program.as_str();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| PortError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        let stdout = child.stdout.take().ok_or_else(|| PortError::Spawn {
            program: program.to_owned(),
            source: std::io::Error::other("no stdout pipe"),
        })?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if sender.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read) = pipe.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    if let Ok(mut sink) = sink.lock() {
                        sink.extend_from_slice(&buffer[..read]);
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(Self {
            program: program.to_owned(),
            child,
            stdin,
            lines,
            stderr,
            timeout,
            scripts: 0,
        })
    }

    fn stderr_tail(&self) -> String {
        let bytes = self
            .stderr
            .lock()
            .map(|bytes| bytes.clone())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl PowerShell for PowerShellProcess {
    fn run(&mut self, script: &Script) -> Result<Vec<u8>, PortError> {
        self.scripts += 1;
        let sentinel = format!("@@passthru-end-{}-{}@@", std::process::id(), self.scripts);
        let input = stdin_lines(script, &sentinel);
        let stdin = self.stdin.as_mut().ok_or_else(|| PortError::Exited {
            status: None,
            stderr: String::new(),
        })?;
        if let Err(error) = stdin
            .write_all(input.as_bytes())
            .and_then(|()| stdin.flush())
        {
            let status = self.child.try_wait().ok().flatten().and_then(|s| s.code());
            return Err(if error.kind() == std::io::ErrorKind::BrokenPipe {
                PortError::Exited {
                    status,
                    stderr: self.stderr_tail(),
                }
            } else {
                PortError::Io(error)
            });
        }
        let deadline = Instant::now() + self.timeout;
        let mut output = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let text = String::from_utf8_lossy(&line);
                    if let Some(at) = text.find(&sentinel) {
                        output.extend_from_slice(text[..at].as_bytes());
                        return Ok(output);
                    }
                    output.extend_from_slice(&line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    // What it prints later would be mistaken for the next script's answer:
                    // this session is over.
                    drop(self.stdin.take());
                    let _ = self.child.kill();
                    return Err(PortError::TimedOut {
                        after: self.timeout,
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok().and_then(|status| status.code());
                    // Give the stderr reader a moment to collect the last words.
                    std::thread::sleep(Duration::from_millis(20));
                    return Err(PortError::Exited {
                        status,
                        stderr: self.stderr_tail(),
                    });
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!("PowerShell (`{}`)", self.program)
    }
}

impl Drop for PowerShellProcess {
    fn drop(&mut self) {
        // Closing stdin ends `-Command -`; kill only if it does not go quietly.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
