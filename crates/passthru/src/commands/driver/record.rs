//! The host's copy of what each sync installed, next to the journal
//! (`<journal dir>/driver-sync/<operation>.json`), so that `driver status` can answer while
//! the VM runs and its disk cannot be read. A record counts only while its operation is
//! applied: once undone, the next older one is the truth again.

use std::io;
use std::path::PathBuf;

use passthru_core::plan::Step;
use passthru_core::plan::journal::{Journal, OperationState};
use passthru_driver::guest::{GuestManifest, GuestStep};

fn dir(journal: &Journal) -> PathBuf {
    journal.dir().join("driver-sync")
}

fn path(journal: &Journal, operation: &str) -> PathBuf {
    dir(journal).join(format!("{operation}.json"))
}

/// Keeps `manifest`, written by `operation`.
pub(super) fn save(journal: &Journal, operation: &str, manifest: &GuestManifest) -> io::Result<()> {
    fs_err::create_dir_all(dir(journal))?;
    let text = serde_json::to_string_pretty(manifest).map_err(io::Error::other)?;
    let target = path(journal, operation);
    let temporary = target.with_extension("json.partial");
    fs_err::write(&temporary, text)?;
    fs_err::rename(&temporary, &target)
}

/// The newest record of a sync into `vm` whose operation is still applied, with its operation.
pub(super) fn latest(journal: &Journal, vm: &str) -> io::Result<Option<(String, GuestManifest)>> {
    let operations = journal.operations().map_err(io::Error::other)?;
    for operation in operations.iter().rev() {
        if operation.kind != GuestStep::KIND || operation.state != OperationState::Applied {
            continue;
        }
        let Ok(bytes) = fs_err::read(path(journal, &operation.id)) else {
            continue;
        };
        match GuestManifest::from_json(&bytes) {
            Ok(manifest) if manifest.vm.eq_ignore_ascii_case(vm) => {
                return Ok(Some((operation.id.clone(), manifest)));
            }
            _ => continue,
        }
    }
    Ok(None)
}
