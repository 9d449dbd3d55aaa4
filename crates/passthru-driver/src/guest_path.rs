//! Paths inside a Windows guest volume, written the Windows way (`Windows\System32\...`) and
//! mapped onto wherever the volume is mounted on the host.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A path relative to the root of a Windows volume, with backslashes and no drive letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GuestPath(String);

/// Where the host's driver packages live inside the guest.
pub const HOST_DRIVER_STORE: &str = r"Windows\System32\HostDriverStore\FileRepository";

impl GuestPath {
    /// A path from backslash- or slash-separated text; empty components are dropped.
    pub fn new(text: &str) -> Self {
        let parts: Vec<&str> = text
            .split(['\\', '/'])
            .filter(|part| !part.is_empty() && *part != ".")
            .collect();
        Self(parts.join("\\"))
    }

    /// This path with `child` (backslash-separated) appended.
    pub fn join(&self, child: &str) -> Self {
        if self.0.is_empty() {
            Self::new(child)
        } else {
            Self::new(&format!("{}\\{child}", self.0))
        }
    }

    /// The text, with backslashes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('\\').next().unwrap_or("")
    }

    /// The path relative to a volume root, as a host relative path.
    pub fn to_relative(&self) -> PathBuf {
        self.0.split('\\').filter(|p| !p.is_empty()).collect()
    }

    /// The path on the host, below the mounted volume's `root`.
    pub fn on(&self, root: &Path) -> PathBuf {
        root.join(self.to_relative())
    }

    /// Whether `self` is `other` or below it (case-insensitive, as NTFS).
    pub fn starts_with(&self, other: &GuestPath) -> bool {
        let (mine, theirs) = (self.0.to_ascii_lowercase(), other.0.to_ascii_lowercase());
        mine == theirs || mine.starts_with(&format!("{theirs}\\"))
    }

    /// The package folder in the guest's host driver store.
    pub fn host_driver_store_package(package: &str) -> Self {
        Self::new(HOST_DRIVER_STORE).join(package)
    }
}

impl fmt::Display for GuestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_maps() {
        let package = GuestPath::host_driver_store_package("nv_dispi.inf_amd64_0123");
        assert_eq!(
            package.as_str(),
            r"Windows\System32\HostDriverStore\FileRepository\nv_dispi.inf_amd64_0123"
        );
        let file = package.join(r"NvCamera\Color.fx");
        assert_eq!(file.file_name(), "Color.fx");
        assert!(file.starts_with(&package));
        assert!(
            !GuestPath::new(r"Windows\System32x").starts_with(&GuestPath::new(r"windows\system32"))
        );
        assert_eq!(
            file.on(Path::new("/mnt/guest")),
            Path::new(
                "/mnt/guest/Windows/System32/HostDriverStore/FileRepository/nv_dispi.inf_amd64_0123/NvCamera/Color.fx"
            )
        );
        assert_eq!(
            GuestPath::new(r"\Windows\\System32\").as_str(),
            r"Windows\System32"
        );
    }
}
