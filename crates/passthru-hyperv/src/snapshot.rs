//! Windows snapshots: the raw answers a survey read, in one portable file.
//!
//! `passthru snapshot FILE` on Windows stores exactly what the survey script answered (the
//! JSON object, unmodified, including fields this build does not use) plus the CPU's address
//! width, which PowerShell cannot report. `passthru survey --from FILE` replays it on any
//! machine. The file identifies itself, so that one `--from` can take Linux and Windows
//! snapshots alike:
//!
//! ```json
//! { "format": "passthru-snapshot", "version": 1, "platform": "windows", ... }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::HostAnswers;

/// The `format` value of every passthru snapshot.
pub const FORMAT: &str = "passthru-snapshot";
/// The `platform` value of Windows snapshots.
pub const PLATFORM: &str = "windows";
/// The newest Windows snapshot version this build writes and reads.
pub const VERSION: u32 = 1;

/// Where a snapshot came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    /// `captured` (from a real host), `assembled` (put together from recorded outputs of
    /// several sources), or `simulated`.
    pub kind: String,
    /// Free text: what it is and what it is not.
    pub note: String,
    /// Where the data came from (one line each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// A Windows snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowsSnapshot {
    /// [`FORMAT`].
    pub format: String,
    /// Snapshot version.
    pub version: u32,
    /// [`PLATFORM`].
    pub platform: String,
    /// When it was captured (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<String>,
    /// The passthru version that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthru: Option<String>,
    /// Origin.
    #[serde(default)]
    pub provenance: Provenance,
    /// The CPU's physical address width (CPUID), which PowerShell cannot report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_physical_address_bits: Option<u32>,
    /// Warnings PowerShell printed while answering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The survey script's answer, as PowerShell printed it.
    pub answers: Value,
}

/// Why a file is not a usable Windows snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not JSON at all.
    #[error("it is not a passthru snapshot (not JSON: {0})")]
    NotJson(String),
    /// JSON, but not ours.
    #[error("it is not a passthru snapshot (no \"format\": \"passthru-snapshot\")")]
    NotSnapshot,
    /// A snapshot of another platform.
    #[error("it is a {0} snapshot, not a Windows one")]
    OtherPlatform(String),
    /// Written by a newer passthru.
    #[error(
        "it was written by a newer passthru (Windows snapshot version {0}); this build reads version {VERSION}"
    )]
    TooNew(u32),
    /// Damaged.
    #[error("it is damaged: {0}")]
    Damaged(String),
}

/// The platform a snapshot file declares (`"linux"`, `"windows"`), without decoding the rest.
/// `None` when it is not a passthru snapshot or names no platform.
pub fn platform_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Header {
        format: Option<String>,
        platform: Option<String>,
    }
    let header: Header = serde_json::from_slice(bytes).ok()?;
    (header.format.as_deref() == Some(FORMAT))
        .then_some(header.platform)
        .flatten()
}

impl WindowsSnapshot {
    /// A snapshot of `answers` as PowerShell printed them.
    pub fn new(
        answers: Value,
        warnings: Vec<String>,
        cpu_bits: Option<u32>,
        provenance: Provenance,
    ) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            platform: PLATFORM.to_owned(),
            captured: Some(passthru_core::plan::journal::now_rfc3339()),
            passthru: Some(env!("CARGO_PKG_VERSION").to_owned()),
            provenance,
            cpu_physical_address_bits: cpu_bits,
            warnings,
            answers,
        }
    }

    /// Reads a snapshot file's bytes.
    pub fn load(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| SnapshotError::NotJson(error.to_string()))?;
        if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(SnapshotError::NotSnapshot);
        }
        match value.get("platform").and_then(Value::as_str) {
            Some(PLATFORM) => {}
            Some(other) => return Err(SnapshotError::OtherPlatform(other.to_owned())),
            None => return Err(SnapshotError::OtherPlatform("platform-less".to_owned())),
        }
        let version = value.get("version").and_then(Value::as_u64).unwrap_or(0);
        if version > u64::from(VERSION) {
            return Err(SnapshotError::TooNew(
                u32::try_from(version).unwrap_or(u32::MAX),
            ));
        }
        let snapshot: Self = serde_json::from_value(value)
            .map_err(|error| SnapshotError::Damaged(error.to_string()))?;
        if !snapshot.answers.is_object() {
            return Err(SnapshotError::Damaged(
                "its \"answers\" is not an object".to_owned(),
            ));
        }
        Ok(snapshot)
    }

    /// The answers, decoded (unreadable elements become problems), with the CPU width and
    /// warnings merged in.
    pub fn answers(&self) -> HostAnswers {
        let mut answers = HostAnswers::from_value(&self.answers);
        if answers.host.cpu_physical_address_bits.is_none() {
            answers.host.cpu_physical_address_bits = self.cpu_physical_address_bits;
        }
        answers.warnings.extend(self.warnings.iter().cloned());
        answers
    }

    /// The file's text (pretty JSON, newline at the end).
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_identifies_itself() {
        let snapshot = WindowsSnapshot::new(
            serde_json::json!({"host": {"build": 22631}}),
            vec![],
            Some(39),
            Provenance {
                kind: "captured".into(),
                ..Provenance::default()
            },
        );
        let text = snapshot.to_text();
        assert_eq!(platform_of(text.as_bytes()).as_deref(), Some("windows"));
        let loaded = WindowsSnapshot::load(text.as_bytes()).unwrap();
        assert_eq!(loaded.answers().host.cpu_physical_address_bits, Some(39));
        assert_eq!(loaded.answers().host.build, Some(22631));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            WindowsSnapshot::load(b"nope"),
            Err(SnapshotError::NotJson(_))
        ));
        assert_eq!(
            WindowsSnapshot::load(b"{}"),
            Err(SnapshotError::NotSnapshot)
        );
        assert_eq!(
            WindowsSnapshot::load(br#"{"format":"passthru-snapshot","platform":"linux"}"#),
            Err(SnapshotError::OtherPlatform("linux".into()))
        );
        assert_eq!(
            WindowsSnapshot::load(
                br#"{"format":"passthru-snapshot","platform":"windows","version":9,"answers":{}}"#
            ),
            Err(SnapshotError::TooNew(9))
        );
        assert!(matches!(
            WindowsSnapshot::load(
                br#"{"format":"passthru-snapshot","platform":"windows","version":1,"answers":[]}"#
            ),
            Err(SnapshotError::Damaged(_))
        ));
        assert_eq!(platform_of(br#"{"platform":"windows"}"#), None);
    }
}
