//! `passthru undo --dry-run` for sysfs steps: the exact actions undo will take, step by step.
//!
//! What undoing a step does depends on the kernel's state when that step is reached, which
//! the steps undone before it change. So the preview runs the steps' undo planning in order
//! over a [`PredictedFs`]: the host as it is now, with the predicted effect of every earlier
//! action laid over it (driver links, `driver_override`, driver directories).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::{Entry, EntryKind, HostFs};
use passthru_core::plan::StepError;

use super::action::Action;
use super::step::SysfsStep;
use crate::sysfs;

/// The host now, plus predicted changes.
struct PredictedFs<'a> {
    base: &'a dyn HostFs,
    files: BTreeMap<PathBuf, Vec<u8>>,
    links: BTreeMap<PathBuf, PathBuf>,
    removed: BTreeSet<PathBuf>,
}

impl<'a> PredictedFs<'a> {
    fn new(base: &'a dyn HostFs) -> Self {
        Self {
            base,
            files: BTreeMap::new(),
            links: BTreeMap::new(),
            removed: BTreeSet::new(),
        }
    }

    fn link(&mut self, path: PathBuf, target: PathBuf) {
        self.removed.remove(&path);
        self.links.insert(path, target);
    }

    fn remove(&mut self, path: PathBuf) {
        self.links.remove(&path);
        self.files.remove(&path);
        self.removed.insert(path);
    }

    /// Lays the effect of `action` over the host, as the kernel would apply it.
    fn predict(&mut self, action: &Action) {
        match action {
            Action::SetOverride { device, driver } => {
                let text = format!("{}\n", driver.as_deref().unwrap_or("(null)"));
                self.files
                    .insert(sysfs::driver_override(*device), text.into_bytes());
            }
            Action::Unbind { device, driver } => {
                self.remove(sysfs::driver_link(*device));
                self.remove(sysfs::driver_dir(driver).join(device.to_string()));
            }
            Action::Bind { device, driver } => {
                self.link(
                    sysfs::driver_link(*device),
                    PathBuf::from("../../../bus/pci/drivers").join(driver),
                );
                self.link(
                    sysfs::driver_dir(driver).join(device.to_string()),
                    PathBuf::from("../../../../devices").join(device.to_string()),
                );
            }
            Action::Probe { .. } | Action::LoadModule { .. } | Action::UnloadModule { .. } => {}
        }
    }
}

impl HostFs for PredictedFs<'_> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if let Some(bytes) = self.files.get(path) {
            return Ok(bytes.clone());
        }
        if self.removed.contains(path) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "removed"));
        }
        self.base.read(path)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        if let Some(target) = self.links.get(path) {
            return Ok(target.clone());
        }
        if self.removed.contains(path) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "removed"));
        }
        self.base.read_link(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<Entry>> {
        let mut entries: Vec<Entry> = self
            .base
            .read_dir(path)?
            .into_iter()
            .filter(|entry| !self.removed.contains(&path.join(&entry.name)))
            .collect();
        for added in self.links.keys().filter(|link| link.parent() == Some(path)) {
            let name = added
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !entries.iter().any(|entry| entry.name == name) {
                entries.push(Entry {
                    name,
                    kind: EntryKind::Symlink,
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn kind(&self, path: &Path) -> Option<EntryKind> {
        if self.links.contains_key(path) {
            return Some(EntryKind::Symlink);
        }
        if self.files.contains_key(path) {
            return Some(EntryKind::File);
        }
        if self.removed.contains(path) {
            return None;
        }
        self.base.kind(path)
    }
}

/// The actions undo will take for each of `pending` (in that order), predicted from `fs`.
pub fn preview_undo(
    steps: &[SysfsStep],
    pending: &[usize],
    fs: &dyn HostFs,
) -> Vec<(usize, Result<Vec<Action>, StepError>)> {
    let mut predicted = PredictedFs::new(fs);
    let mut previews = Vec::new();
    for &index in pending {
        let Some(step) = steps.get(index) else {
            continue;
        };
        let planned = step.undo_actions(&predicted).map(|(actions, cleanup)| {
            let all: Vec<Action> = actions.into_iter().chain(cleanup).collect();
            for action in &all {
                predicted.predict(action);
            }
            all
        });
        previews.push((index, planned));
    }
    previews
}
