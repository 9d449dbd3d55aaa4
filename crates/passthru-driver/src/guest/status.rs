//! `driver status`: the host's driver against what the guest's manifest says was installed,
//! and (when the guest volume is mounted) against the files really there.

use std::path::Path;

use serde::Serialize;

use super::manifest::GuestManifest;
use crate::guest_path::GuestPath;
use crate::package::ResolvedDriver;
use crate::sync::FileTime;

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Freshness {
    /// The guest has exactly the host's driver.
    UpToDate,
    /// The guest has an older or damaged copy: sync again.
    Stale,
    /// passthru never synced this guest (or its manifest is gone).
    NotInstalled,
}

/// The comparison, with every reason.
#[derive(Debug, Clone, Serialize)]
pub struct DriverStatus {
    /// Verdict.
    pub freshness: Freshness,
    /// The host's display driver version.
    pub host_version: String,
    /// The version the manifest records.
    pub guest_version: Option<String>,
    /// Why the verdict is not "up to date", one sentence each.
    pub reasons: Vec<String>,
    /// Host files the guest does not have.
    pub missing: Vec<GuestPath>,
    /// Host files that differ from the guest's recorded copy (size or time).
    pub outdated: Vec<GuestPath>,
    /// Guest files changed or deleted since the sync (only when the volume was examined).
    pub damaged: Vec<GuestPath>,
}

/// Compares `driver` with `manifest`; with `guest_root`, also checks the guest's files against
/// the manifest (size and time; with `verify_hashes` also the content).
pub fn compare_with_guest(
    driver: &ResolvedDriver,
    manifest: Option<&GuestManifest>,
    guest_root: Option<&Path>,
    verify_hashes: bool,
) -> std::io::Result<DriverStatus> {
    let host_version = driver
        .driver_ver
        .map(|v| v.version_string())
        .unwrap_or_default();
    let mut status = DriverStatus {
        freshness: Freshness::UpToDate,
        host_version: host_version.clone(),
        guest_version: manifest.map(|m| m.driver_version.clone()),
        reasons: Vec::new(),
        missing: Vec::new(),
        outdated: Vec::new(),
        damaged: Vec::new(),
    };
    let Some(manifest) = manifest else {
        status.freshness = Freshness::NotInstalled;
        status.reasons.push(
            "the guest has no passthru driver manifest: the driver was never synced by passthru \
             (or was copied by hand)"
                .to_owned(),
        );
        return Ok(status);
    };
    if manifest.driver_version != host_version {
        status.reasons.push(format!(
            "the host runs driver {host_version}, the guest has {}",
            manifest.driver_version
        ));
    }
    for package in &driver.packages {
        if !manifest
            .packages
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(&package.name))
        {
            status.reasons.push(format!(
                "the host's package {} is not in the guest",
                package.name
            ));
        }
    }
    for package in &driver.packages {
        for file in &package.files {
            let path = package.guest_dir.join(&file.relative);
            let recorded = manifest
                .all_files()
                .find(|m| m.path.as_str().eq_ignore_ascii_case(path.as_str()));
            match recorded {
                None => status.missing.push(path),
                Some(recorded) => {
                    let time = fs_err::metadata(&file.source)
                        .and_then(|m| m.modified())
                        .map(FileTime::from_system)?;
                    if recorded.size != file.size || !time.same_as(recorded.time) {
                        status.outdated.push(path);
                    }
                }
            }
        }
    }
    if !status.missing.is_empty() {
        status.reasons.push(format!(
            "{} host file(s) are missing in the guest",
            status.missing.len()
        ));
    }
    if !status.outdated.is_empty() {
        status.reasons.push(format!(
            "{} file(s) changed on the host since the last sync",
            status.outdated.len()
        ));
    }
    if let Some(root) = guest_root {
        for file in manifest.all_files() {
            let full = file.path.on(root);
            let damaged = match fs_err::metadata(&full) {
                Err(_) => true,
                Ok(meta) => {
                    let time = meta.modified().map(FileTime::from_system)?;
                    meta.len() != file.size
                        || !file.time.same_as(time)
                        || (verify_hashes && {
                            let mut hasher = blake3::Hasher::new();
                            std::io::copy(&mut fs_err::File::open(&full)?, &mut hasher)?;
                            hasher.finalize().to_hex().as_str() != file.blake3
                        })
                }
            };
            if damaged {
                status.damaged.push(file.path.clone());
            }
        }
        if !status.damaged.is_empty() {
            status.reasons.push(format!(
                "{} file(s) in the guest were changed or deleted after the sync",
                status.damaged.len()
            ));
        }
    }
    if !status.reasons.is_empty() {
        status.freshness = Freshness::Stale;
    }
    Ok(status)
}
