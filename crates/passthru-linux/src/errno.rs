//! Linux error numbers as data: what the kernel answered to a sysfs write or an ioctl.
//!
//! Kept platform-neutral (the numbers are the generic Linux ones, `include/uapi/asm-generic/
//! errno-base.h` and `errno.h`), so that recorded answers can be interpreted and tested on any
//! machine, and messages do not depend on the C library that happens to be linked.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Linux `errno` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Known numbers: (value, name, description).
const KNOWN: &[(i32, &str, &str)] = &[
    (1, "EPERM", "operation not permitted"),
    (2, "ENOENT", "no such file or directory"),
    (4, "EINTR", "interrupted system call"),
    (5, "EIO", "input/output error"),
    (6, "ENXIO", "no such device or address"),
    (9, "EBADF", "bad file descriptor"),
    (11, "EAGAIN", "resource temporarily unavailable"),
    (12, "ENOMEM", "cannot allocate memory"),
    (13, "EACCES", "permission denied"),
    (14, "EFAULT", "bad address"),
    (16, "EBUSY", "device or resource busy"),
    (17, "EEXIST", "file exists"),
    (19, "ENODEV", "no such device"),
    (20, "ENOTDIR", "not a directory"),
    (21, "EISDIR", "is a directory"),
    (22, "EINVAL", "invalid argument"),
    (25, "ENOTTY", "inappropriate ioctl for device"),
    (28, "ENOSPC", "no space left on device"),
    (30, "EROFS", "read-only file system"),
    (38, "ENOSYS", "function not implemented"),
    (77, "EBADFD", "file descriptor in bad state"),
    (95, "EOPNOTSUPP", "operation not supported"),
    (110, "ETIMEDOUT", "connection timed out"),
];

impl Errno {
    /// `EPERM`.
    pub const EPERM: Self = Self(1);
    /// `ENOENT`.
    pub const ENOENT: Self = Self(2);
    /// `EIO`.
    pub const EIO: Self = Self(5);
    /// `EAGAIN`.
    pub const EAGAIN: Self = Self(11);
    /// `EACCES`.
    pub const EACCES: Self = Self(13);
    /// `EBUSY`.
    pub const EBUSY: Self = Self(16);
    /// `EEXIST`.
    pub const EEXIST: Self = Self(17);
    /// `ENODEV`.
    pub const ENODEV: Self = Self(19);
    /// `EINVAL`.
    pub const EINVAL: Self = Self(22);
    /// `ENOTTY`.
    pub const ENOTTY: Self = Self(25);
    /// `ENOSPC`.
    pub const ENOSPC: Self = Self(28);
    /// `ENOSYS`.
    pub const ENOSYS: Self = Self(38);

    /// The symbolic name (`EBUSY`), or `errno N` for numbers this table does not know.
    pub fn name(self) -> String {
        KNOWN
            .iter()
            .find(|(value, _, _)| *value == self.0)
            .map_or_else(
                || format!("errno {}", self.0),
                |(_, name, _)| (*name).to_owned(),
            )
    }

    /// What the number means, in words (empty for unknown numbers).
    pub fn description(self) -> &'static str {
        KNOWN
            .iter()
            .find(|(value, _, _)| *value == self.0)
            .map_or("", |(_, _, text)| text)
    }

    /// The `errno` of an I/O error from the operating system, if it carries one.
    pub fn from_io(error: &std::io::Error) -> Option<Self> {
        error.raw_os_error().map(Self)
    }

    fn parse(text: &str) -> Option<Self> {
        if let Some(number) = text.strip_prefix("errno ") {
            return number.trim().parse().ok().map(Self);
        }
        KNOWN
            .iter()
            .find(|(_, name, _)| *name == text)
            .map(|(value, _, _)| Self(*value))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let description = self.description();
        if description.is_empty() {
            write!(f, "{}", self.name())
        } else {
            write!(f, "{} ({description})", self.name())
        }
    }
}

impl Serialize for Errno {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Errno {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an errno name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json() {
        for errno in [Errno::EBUSY, Errno(16), Errno(4095)] {
            let json = serde_json::to_string(&errno).unwrap();
            assert_eq!(serde_json::from_str::<Errno>(&json).unwrap(), errno);
        }
        assert_eq!(serde_json::to_string(&Errno::EBUSY).unwrap(), "\"EBUSY\"");
        assert_eq!(Errno(4095).to_string(), "errno 4095");
        assert_eq!(Errno::ENODEV.to_string(), "ENODEV (no such device)");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn numbers_match_the_running_platform() {
        assert_eq!(Errno::EBUSY.0, libc::EBUSY);
        assert_eq!(Errno::ENODEV.0, libc::ENODEV);
        assert_eq!(Errno::EINVAL.0, libc::EINVAL);
        assert_eq!(Errno::ENOTTY.0, libc::ENOTTY);
        assert_eq!(Errno(77).0, libc::EBADFD);
        assert_eq!(Errno(95).0, libc::EOPNOTSUPP);
    }
}
