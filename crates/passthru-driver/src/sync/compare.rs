//! Deciding, per file, whether the destination already holds the source's content.
//!
//! The rules, cheapest evidence first:
//!
//! 1. No destination file → **create**.
//! 2. Sizes differ → **replace** (certain).
//! 3. Same size and same modification time → **keep** (the usual proof, as rsync and robocopy
//!    use it; passthru always gives a copy the source's time). Times are compared at 100 ns
//!    (NTFS's resolution); a destination time with no sub-second part equals a source time in
//!    the same second (file systems that store whole seconds).
//! 4. Same size, different time → **unsure**: someone touched the file, or the host
//!    re-extracted the same package. Both files are hashed (BLAKE3); equal content is kept and
//!    only the time is corrected, different content is replaced.
//!
//! With [`CompareMode::Checksum`] every same-size file is treated as unsure. A file changed in
//! place with its size and time preserved is therefore only found in checksum mode (or by
//! `driver status` comparing against the hashes recorded at sync time).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How sure a size-and-time match has to be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompareMode {
    /// Size and modification time decide; content is hashed only when they disagree.
    #[default]
    SizeAndTime,
    /// Hash every file whose size matches (slow: reads both sides completely).
    Checksum,
}

/// A modification time as whole seconds and nanoseconds since the Unix epoch (negative seconds
/// for times before 1970), so that it survives JSON unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileTime {
    /// Seconds since 1970-01-01 UTC.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl FileTime {
    /// Converts a `SystemTime`.
    pub fn from_system(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self {
                secs: after.as_secs() as i64,
                nanos: after.subsec_nanos(),
            },
            Err(before) => {
                let before = before.duration();
                let mut secs = -(before.as_secs() as i64);
                let mut nanos = before.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Self { secs, nanos }
            }
        }
    }

    /// Back to a `SystemTime`.
    pub fn to_system(self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::new(self.secs as u64, self.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.secs.unsigned_abs())
                + Duration::from_nanos(u64::from(self.nanos))
        }
    }

    /// Whether two times name the same moment as far as file systems can tell (see the module
    /// documentation).
    pub fn same_as(self, destination: FileTime) -> bool {
        if self.secs != destination.secs {
            return false;
        }
        self.nanos / 100 == destination.nanos / 100 || destination.nanos == 0
    }
}

/// What to do with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// The destination has no such file.
    Create,
    /// The destination file's size differs.
    Replace {
        /// Size of the destination file now.
        old_size: u64,
    },
    /// Same size but different time (or checksum mode): hash both, then keep or replace.
    CheckContent,
    /// Same size and time: nothing to copy.
    Keep,
}

/// Chooses the action for a source file and what the destination holds.
pub fn decide(
    mode: CompareMode,
    source_size: u64,
    source_time: FileTime,
    destination: Option<(u64, FileTime)>,
) -> Action {
    let Some((dest_size, dest_time)) = destination else {
        return Action::Create;
    };
    if dest_size != source_size {
        return Action::Replace {
            old_size: dest_size,
        };
    }
    if mode == CompareMode::Checksum || !source_time.same_as(dest_time) {
        return Action::CheckContent;
    }
    Action::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64, nanos: u32) -> FileTime {
        FileTime { secs, nanos }
    }

    #[test]
    fn decisions() {
        let mode = CompareMode::SizeAndTime;
        assert_eq!(decide(mode, 5, t(10, 0), None), Action::Create);
        assert_eq!(
            decide(mode, 5, t(10, 0), Some((6, t(10, 0)))),
            Action::Replace { old_size: 6 }
        );
        assert_eq!(
            decide(mode, 5, t(10, 123_456_789), Some((5, t(10, 123_456_700)))),
            Action::Keep
        );
        assert_eq!(
            decide(mode, 5, t(10, 123_456_789), Some((5, t(10, 0)))),
            Action::Keep
        );
        assert_eq!(
            decide(mode, 5, t(10, 5), Some((5, t(11, 5)))),
            Action::CheckContent
        );
        assert_eq!(
            decide(mode, 5, t(10, 0), Some((5, t(10, 500)))),
            Action::CheckContent
        );
        assert_eq!(
            decide(CompareMode::Checksum, 5, t(10, 0), Some((5, t(10, 0)))),
            Action::CheckContent
        );
    }

    #[test]
    fn times_round_trip_both_sides_of_the_epoch() {
        for time in [
            t(0, 0),
            t(1_600_000_000, 999_999_999),
            t(-1, 1),
            t(-86_400, 0),
        ] {
            assert_eq!(FileTime::from_system(time.to_system()), time);
        }
    }
}
