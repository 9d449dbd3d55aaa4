//! The PowerShell port: how passthru talks to Hyper-V.
//!
//! Everything passthru asks of a Windows host is a [`Script`]: the exact PowerShell people see
//! in `--dry-run` and in exported `.ps1` files, plus a machine-readable list of what it does
//! ([`Request`]). A [`PowerShell`] runs scripts and returns what they printed:
//!
//! - [`process::PowerShellProcess`] keeps one `powershell.exe -NoProfile -NonInteractive
//!   -Command -` alive for a whole run and feeds it one script at a time on stdin;
//! - [`oneshot::OneShot`] runs one process per script through
//!   [`passthru_core::runner::CommandRunner`] (read-only commands, which need one script);
//! - [`crate::sim::Simulator`] executes the requests against a simulated Hyper-V and prints
//!   the answer the real script would have printed.
//!
//! All three answer in the same JSON envelope ([`envelope`]), so the code that reads answers
//! and explains errors is the same for a real host and for the simulator.
//!
//! Other crates reuse the port for their own Windows work (guest driver provisioning): they
//! build scripts with [`Script::extension`] and, in tests, teach the simulator their requests
//! through [`crate::sim::Extension`].

pub mod envelope;
pub mod oneshot;
pub mod process;
pub mod quote;

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ops::Op;
use crate::query::Query;

/// What a script does, in a form the simulator can execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Read something.
    Query(Query),
    /// Change something.
    Op(Op),
    /// A request defined by another crate (kind names it, payload describes it).
    Extension {
        /// Namespaced kind, e.g. `driver.mount-vhd`.
        kind: String,
        /// Its parameters.
        payload: Value,
    },
}

/// One unit of work for PowerShell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The PowerShell, as shown to people (without the JSON envelope).
    pub body: String,
    /// What it does, in order.
    pub requests: Vec<Request>,
}

impl Script {
    /// The script that answers `query`.
    pub fn query(query: Query) -> Self {
        Self {
            body: query.powershell(),
            requests: vec![Request::Query(query)],
        }
    }

    /// The script that performs `op`.
    pub fn op(op: Op) -> Self {
        Self {
            body: op.powershell(),
            requests: vec![Request::Op(op)],
        }
    }

    /// A script for another crate's request: `body` is its PowerShell.
    pub fn extension(kind: impl Into<String>, payload: Value, body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            requests: vec![Request::Extension {
                kind: kind.into(),
                payload,
            }],
        }
    }

    /// The text PowerShell runs: the body inside the JSON envelope.
    pub fn wire(&self) -> String {
        envelope::wrap(&self.body)
    }
}

/// Runs scripts.
pub trait PowerShell {
    /// Runs `script` and returns everything it printed on standard output.
    fn run(&mut self, script: &Script) -> Result<Vec<u8>, PortError>;

    /// Says what this is ("Windows PowerShell (powershell.exe)", "simulated Hyper-V from
    /// state.json"), for messages.
    fn describe(&self) -> String;
}

/// The port itself failed (as opposed to a cmdlet failing inside a script).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// There is no PowerShell to talk to here.
    #[error("{reason}")]
    NotAvailable {
        /// Why.
        reason: String,
    },
    /// PowerShell could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Talking to PowerShell failed.
    #[error("lost contact with PowerShell: {0}")]
    Io(#[from] std::io::Error),
    /// PowerShell ended before answering.
    #[error("PowerShell ended without answering ({}){}", exit_status(*.status), stderr_context(.stderr))]
    Exited {
        /// Its exit status.
        status: Option<i32>,
        /// The end of its standard error.
        stderr: String,
    },
    /// PowerShell did not answer in time.
    #[error("PowerShell did not answer within {} seconds", .after.as_secs())]
    TimedOut {
        /// The limit.
        after: Duration,
    },
    /// The simulator could not do what was asked (a test set-up problem).
    #[error("simulated Hyper-V: {0}")]
    Simulator(String),
}

fn exit_status(status: Option<i32>) -> String {
    status.map_or_else(|| "killed".to_owned(), |code| format!("exit status {code}"))
}

fn stderr_context(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// The arguments passthru starts Windows PowerShell with.
pub const POWERSHELL_ARGS: [&str; 4] = ["-NoProfile", "-NonInteractive", "-Command", "-"];

/// How long one script may take before passthru gives up on it.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The lines written to PowerShell's stdin for one script: the script as one line
/// (base64 of UTF-8, so that neither the console input code page nor PowerShell's handling of
/// multi-line input under `-Command -` can alter it), then a string literal that PowerShell
/// echoes when the script is done.
pub fn stdin_lines(script: &Script, sentinel: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(script.wire().as_bytes());
    format!(
        "& ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('{encoded}'))))\n'{sentinel}'\n"
    )
}
