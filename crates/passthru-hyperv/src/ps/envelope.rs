//! The JSON envelope around every script: what is sent, and how the answer is read.
//!
//! Windows PowerShell 5.1 is easy to misread. The envelope makes its answers unambiguous:
//!
//! - `$ErrorActionPreference = 'Stop'`, so the first failing cmdlet ends the script and its
//!   error record is answered as data (type, `FullyQualifiedErrorId`, category, message,
//!   target), never as localised console text;
//! - output is collected into `@(...)`, so one object and a list of one look the same, and
//!   serialised with `ConvertTo-Json -InputObject` (no pipeline unrolling of arrays) with an
//!   explicit `-Depth` (the default of 2 silently truncates nested objects to type names);
//! - `[Console]::OutputEncoding` is UTF-8 without BOM, so VM names in any script survive;
//! - warnings (stream 3) are captured separately rather than mixed into the data;
//! - the answer is one line starting with `{"passthru":"answer/1"`, found among whatever else a
//!   profile or module may print.
//!
//! Scripts themselves convert enums to strings (`[string]$vm.State`): `ConvertTo-Json` in 5.1
//! writes enums as numbers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorRecord;

/// The marker that starts every answer line.
pub const ANSWER_TAG: &str = "answer/1";

/// `ConvertTo-Json -Depth` used for answers: deep enough for every shape passthru reads.
pub const JSON_DEPTH: u32 = 12;

/// What one script answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Answer {
    /// Always [`ANSWER_TAG`].
    pub passthru: String,
    /// Whether the script ran to its end.
    pub ok: bool,
    /// Everything the script wrote to its output, in order.
    pub data: Vec<Value>,
    /// Warnings it wrote.
    pub warnings: Vec<String>,
    /// The error that stopped it.
    pub error: Option<ErrorRecord>,
}

impl Answer {
    /// A successful answer carrying `data`.
    pub fn success(data: Vec<Value>) -> Self {
        Self {
            passthru: ANSWER_TAG.to_owned(),
            ok: true,
            data,
            warnings: Vec::new(),
            error: None,
        }
    }

    /// A failed answer.
    pub fn failure(error: ErrorRecord, data: Vec<Value>) -> Self {
        Self {
            passthru: ANSWER_TAG.to_owned(),
            ok: false,
            data,
            warnings: Vec::new(),
            error: Some(error),
        }
    }

    /// The answer as the one line the envelope prints.
    pub fn to_line(&self) -> String {
        // Serialising plain data cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a script's output could not be read as an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No answer line at all.
    #[error("PowerShell printed no answer{}", context(.output))]
    Missing {
        /// The start of what it printed instead.
        output: String,
    },
    /// The answer line is not valid JSON of the expected shape.
    #[error("PowerShell's answer is unreadable ({message})")]
    Malformed {
        /// What the decoder said.
        message: String,
    },
}

fn context(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!("; it printed: {}", output.trim())
    }
}

/// Wraps a script body in the envelope. The result is what PowerShell runs.
pub fn wrap(body: &str) -> String {
    format!(
        r#"$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'Continue'
[Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false
$passthruAnswer = [ordered]@{{ passthru = '{ANSWER_TAG}'; ok = $true; data = @(); warnings = @(); error = $null }}
try {{
    $passthruOutput = @(& {{
{body}
    }} 3>&1)
    $passthruAnswer.data = @($passthruOutput | Where-Object {{ $_ -isnot [System.Management.Automation.WarningRecord] }})
    $passthruAnswer.warnings = @($passthruOutput | Where-Object {{ $_ -is [System.Management.Automation.WarningRecord] }} | ForEach-Object {{ [string]$_.Message }})
}} catch {{
    $passthruAnswer.ok = $false
    $passthruAnswer.error = [ordered]@{{
        type = [string]$_.Exception.GetType().FullName
        fullyQualifiedErrorId = [string]$_.FullyQualifiedErrorId
        category = [string]$_.CategoryInfo.Category
        message = [string]$_.Exception.Message
        target = [string]$_.TargetObject
        command = [string]$_.InvocationInfo.MyCommand.Name
    }}
}}
ConvertTo-Json -InputObject $passthruAnswer -Depth {JSON_DEPTH} -Compress
"#
    )
}

/// Finds and decodes the answer line in a script's standard output.
pub fn parse(stdout: &[u8]) -> Result<Answer, AnswerError> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let prefix = format!("{{\"passthru\":\"{ANSWER_TAG}\"");
    let line = text
        .lines()
        .rev()
        .map(|line| line.trim_start_matches('\u{feff}').trim())
        .find(|line| line.starts_with(&prefix))
        .ok_or_else(|| AnswerError::Missing {
            output: text.chars().take(400).collect(),
        })?;
    let answer: Answer = serde_json::from_str(line).map_err(|error| AnswerError::Malformed {
        message: error.to_string(),
    })?;
    if !answer.ok && answer.error.is_none() {
        return Err(AnswerError::Malformed {
            message: "it reports a failure without an error record".to_owned(),
        });
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_answer_among_noise() {
        let answer = Answer::success(vec![serde_json::json!({"name": "Win11"})]);
        let stdout = format!(
            "\u{feff}Loading profile...\n{}\nPS C:\\> \n",
            answer.to_line()
        );
        assert_eq!(parse(stdout.as_bytes()).unwrap(), answer);
    }

    #[test]
    fn reports_missing_and_malformed_answers() {
        assert!(matches!(parse(b"boom"), Err(AnswerError::Missing { .. })));
        assert!(matches!(
            parse(b"{\"passthru\":\"answer/1\",\"ok\":"),
            Err(AnswerError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"{\"passthru\":\"answer/1\",\"ok\":false}"),
            Err(AnswerError::Malformed { .. })
        ));
    }

    #[test]
    fn wrapped_body_is_inside_the_try_block() {
        let text = wrap("Get-VM");
        let try_at = text.find("try {").unwrap();
        let body_at = text.find("Get-VM").unwrap();
        let catch_at = text.find("} catch {").unwrap();
        assert!(try_at < body_at && body_at < catch_at);
        assert!(text.contains("-Depth 12"));
        assert!(text.contains("ConvertTo-Json -InputObject"));
    }
}
