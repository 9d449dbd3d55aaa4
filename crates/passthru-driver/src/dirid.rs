//! INF directory ids (dirids) and where they point inside a Windows guest volume.
//!
//! Source: Microsoft's "Using Dirids" page of the INF documentation. Dirid 13 is the driver
//! package's own folder in the driver store (Windows 10 1709 and later); in a GPU-PV guest that
//! folder is the copy under `HostDriverStore\FileRepository`. Dirids of the form 16384 + CSIDL
//! name shell folders.

use crate::guest_path::GuestPath;

/// The dirid of the driver package's driver-store folder.
pub const DRIVER_STORE: u32 = 13;

/// Where a dirid points inside the guest's system volume (relative to its root), or `None` for
/// dirids that are not fixed folders (01 = the INF's source, -1 = absolute) or unknown ones.
/// `package` is the guest folder of the package, for dirid 13.
pub fn guest_dir(dirid: u32, package: &GuestPath) -> Option<GuestPath> {
    let path = match dirid {
        10 => "Windows",
        11 => r"Windows\System32",
        12 => r"Windows\System32\drivers",
        DRIVER_STORE => return Some(package.clone()),
        17 => r"Windows\INF",
        18 => r"Windows\Help",
        20 => r"Windows\Fonts",
        23 => r"Windows\System32\spool\drivers\color",
        24 | 30 => "",
        50 => r"Windows\System",
        51 => r"Windows\System32\spool",
        52 => r"Windows\System32\spool\drivers",
        55 => r"Windows\System32\spool\prtprocs",
        16419 => "ProgramData",
        16420 => "Windows",
        16421 => r"Windows\System32",
        16422 => "Program Files",
        16425 => r"Windows\SysWOW64",
        16426 => "Program Files (x86)",
        16427 => r"Program Files\Common Files",
        16428 => r"Program Files (x86)\Common Files",
        _ => return None,
    };
    Some(GuestPath::new(path))
}

/// Expands a leading `%dirid%` in an INF path such as `%13%\nvlddmkm.sys`.
pub fn expand(path: &str, package: &GuestPath) -> Option<GuestPath> {
    let rest = path.strip_prefix('%')?;
    let (number, tail) = rest.split_once('%')?;
    let dir = guest_dir(number.parse().ok()?, package)?;
    Some(dir.join(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_common_dirids() {
        let package = GuestPath::host_driver_store_package("pkg");
        assert_eq!(
            guest_dir(11, &package).unwrap().as_str(),
            r"Windows\System32"
        );
        assert_eq!(guest_dir(13, &package), Some(package.clone()));
        assert_eq!(
            guest_dir(16422, &package).unwrap().as_str(),
            "Program Files"
        );
        assert_eq!(guest_dir(1, &package), None);
        assert_eq!(
            expand(r"%13%\nvlddmkm.sys", &package).unwrap().as_str(),
            r"Windows\System32\HostDriverStore\FileRepository\pkg\nvlddmkm.sys"
        );
        assert_eq!(
            expand(r"%12%\UMDF\x.dll", &package).unwrap().as_str(),
            r"Windows\System32\drivers\UMDF\x.dll"
        );
        assert_eq!(expand("nope", &package), None);
    }
}
