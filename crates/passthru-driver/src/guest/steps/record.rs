//! The manifest of what a run installed: each copied file recorded as the sync reports it,
//! written into the guest at the end of the run, and the previous manifest's hashes read back
//! so that unchanged files are not hashed again.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use passthru_core::plan::StepError;

use super::{GuestSession, ManifestHeader, VolumeRef, io_failed};
use crate::guest::manifest::{
    GuestManifest, MANIFEST_PATH, MANIFEST_SCHEMA, ManifestFile, ManifestPackage,
};
use crate::guest_path::GuestPath;
use crate::sync::{self, KnownFile};

/// The previous manifest's hashes, so unchanged files are not read again.
pub(crate) fn known_hashes(root: &Path) -> BTreeMap<String, KnownFile> {
    let path = GuestPath::new(MANIFEST_PATH).on(root);
    let Ok(bytes) = fs_err::read(path) else {
        return BTreeMap::new();
    };
    let Ok(manifest) = GuestManifest::from_json(&bytes) else {
        return BTreeMap::new();
    };
    manifest
        .all_files()
        .map(|file| {
            let known = KnownFile {
                size: file.size,
                time: file.time,
                hash: file.blake3.clone(),
            };
            (sync::relative_key(&file.path.to_relative()), known)
        })
        .collect()
}

/// Keeps what a sync reports about each file of its job for the manifest, so the files need
/// not be read again to describe them.
pub(super) fn record_synced(session: &mut GuestSession, files: Vec<sync::SyncedFile>) {
    for file in files {
        let path = GuestPath::new(&sync::relative_key(&file.dest));
        let entry = ManifestFile {
            path: path.clone(),
            size: file.size,
            time: file.time,
            blake3: file.hash.unwrap_or_default(),
        };
        session
            .installed
            .insert(path.as_str().to_ascii_lowercase(), entry);
    }
}

pub(super) fn write_manifest(
    session: &mut GuestSession,
    volume: &VolumeRef,
    header: &ManifestHeader,
) -> Result<(), StepError> {
    let root = session.root_for(volume)?;
    let mut packages = Vec::new();
    for (dir, version) in &header.packages {
        let mut files: Vec<ManifestFile> = session
            .installed
            .values()
            .filter(|f| f.path.starts_with(dir))
            .cloned()
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        packages.push(ManifestPackage {
            name: dir.file_name().to_owned(),
            driver_version: version.clone(),
            files,
        });
    }
    let mut promotions = Vec::new();
    for target in &header.promotions {
        if let Some(file) = session.installed.get(&target.as_str().to_ascii_lowercase()) {
            promotions.push(file.clone());
        } else if target.on(&root).is_file() {
            // Kept as it was (a newer file the guest already had): described as found.
            promotions.push(describe(&root, target).map_err(io_failed)?);
        }
    }
    let manifest = GuestManifest {
        schema: MANIFEST_SCHEMA,
        written_by: format!("passthru {}", env!("CARGO_PKG_VERSION")),
        written_at: passthru_core::plan::journal::now_rfc3339(),
        vm: header.vm.clone(),
        device: header.device.clone(),
        driver_version: header.driver_version.clone(),
        packages,
        promotions,
        registry: header.registry.clone(),
    };
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| StepError::new(e.to_string()))?;
    let path = GuestPath::new(MANIFEST_PATH).on(&root);
    write_atomically(&path, text.as_bytes()).map_err(io_failed)?;
    session.manifest = Some(manifest);
    Ok(())
}

/// Size, time and hash of a guest file as it is now.
fn describe(root: &Path, path: &GuestPath) -> io::Result<ManifestFile> {
    let full = path.on(root);
    let meta = fs_err::metadata(&full)?;
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut fs_err::File::open(&full)?, &mut hasher)?;
    Ok(ManifestFile {
        path: path.clone(),
        size: meta.len(),
        time: sync::FileTime::from_system(meta.modified()?),
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("json.passthru-partial");
    {
        let mut file = fs_err::File::create(&temporary)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
    }
    fs_err::rename(&temporary, path)
}
