//! Starting a new driver version from the previous one's folder in the guest.
//!
//! Windows keeps every driver version in its own driver-store folder, named after the INF and
//! a hash (`nv_dispi.inf_amd64_8f1a...`); a new version gets a new name although most of its
//! files are unchanged. Copying the new folder from scratch would copy gigabytes again, so when
//! the guest holds the folder of the version passthru installed before, the sync renames that
//! folder to the new name first and then copies only what differs (files the new version no
//! longer has go to the backup folder, as always). Undo renames it back after the sync's undo
//! has put the old files back.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::manifest::GuestManifest;
use crate::guest_path::GuestPath;
use crate::package::ResolvedDriver;
use crate::sync::{self, KnownFile};

/// An old package folder that becomes a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// The previous version's folder in the guest.
    pub from: GuestPath,
    /// The new version's folder in the guest.
    pub to: GuestPath,
}

/// The folder name without its hash (`nv_dispi.inf_amd64`), lower case.
fn stem(name: &str) -> String {
    name.rsplit_once('_')
        .map_or(name, |(stem, _)| stem)
        .to_ascii_lowercase()
}

/// Which folders of the previous sync (`old`) the new packages of `driver` start from: a new
/// package folder the guest does not have yet, and an old one of the same INF that the new
/// driver does not use any more and that is still in the guest (`root`).
pub fn adoptions(old: &GuestManifest, driver: &ResolvedDriver, root: &Path) -> Vec<Adoption> {
    let mut found: Vec<Adoption> = Vec::new();
    for package in &driver.packages {
        if package.guest_dir.on(root).exists() {
            continue;
        }
        let candidate = old.packages.iter().find(|previous| {
            stem(&previous.name) == stem(&package.name)
                && !driver
                    .packages
                    .iter()
                    .any(|p| p.name.eq_ignore_ascii_case(&previous.name))
                && !found
                    .iter()
                    .any(|a| a.from.file_name().eq_ignore_ascii_case(&previous.name))
        });
        if let Some(previous) = candidate {
            let from = GuestPath::host_driver_store_package(&previous.name);
            if from.on(root).is_dir() {
                found.push(Adoption {
                    from,
                    to: package.guest_dir.clone(),
                });
            }
        }
    }
    found
}

/// `path` with the folder `from` replaced by `to`, when it lies in `from`.
pub fn moved(path: &GuestPath, from: &GuestPath, to: &GuestPath) -> Option<GuestPath> {
    if !path.starts_with(from) {
        return None;
    }
    let rest = path.as_str().get(from.as_str().len()..).unwrap_or("");
    Some(to.join(rest))
}

/// `path` as it is named before the adoptions happen (in the old folders).
pub fn before(path: &GuestPath, adoptions: &[Adoption]) -> GuestPath {
    adoptions
        .iter()
        .find_map(|a| moved(path, &a.to, &a.from))
        .unwrap_or_else(|| path.clone())
}

/// `path` as it is named after the adoptions (in the new folders).
pub fn after(path: &GuestPath, adoptions: &[Adoption]) -> GuestPath {
    adoptions
        .iter()
        .find_map(|a| moved(path, &a.from, &a.to))
        .unwrap_or_else(|| path.clone())
}

/// The hashes known for the old folders' files, also under their new names, so the files that
/// did not change are not read again.
pub fn carry_known(known: &mut BTreeMap<String, KnownFile>, adoptions: &[Adoption]) {
    let mut carried = Vec::new();
    for (key, file) in known.iter() {
        let path = GuestPath::new(key);
        let renamed = after(&path, adoptions);
        if renamed != path {
            carried.push((sync::relative_key(&renamed.to_relative()), file.clone()));
        }
    }
    known.extend(carried);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_move_between_folders() {
        let adoption = Adoption {
            from: GuestPath::host_driver_store_package("nv_dispi.inf_amd64_aaaa"),
            to: GuestPath::host_driver_store_package("nv_dispi.inf_amd64_bbbb"),
        };
        let file = adoption.to.join(r"NvCamera\Color.fx");
        let old = before(&file, std::slice::from_ref(&adoption));
        assert_eq!(old, adoption.from.join(r"NvCamera\Color.fx"));
        assert_eq!(after(&old, std::slice::from_ref(&adoption)), file);
        let elsewhere = GuestPath::new(r"Windows\System32\nvcuda.dll");
        assert_eq!(before(&elsewhere, &[adoption]), elsewhere);
        assert_eq!(stem("nv_dispi.inf_amd64_8F1A"), "nv_dispi.inf_amd64");
    }
}
