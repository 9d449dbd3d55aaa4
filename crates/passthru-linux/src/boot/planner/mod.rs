//! Builds the plan for `assign --persistent` and `release --persistent`.
//!
//! The planner reads the current files under the root, works out the files as they must be
//! (from the devices that will be assigned *after* this operation), and emits one step per
//! file that differs, then the rebuild commands for every kernel, then checks of what was
//! rebuilt. Everything passthru adds to shared files is recorded in the state file, so a
//! release removes exactly that and an assign of a device that is already configured plans
//! nothing.

mod initramfs;
mod params;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::RealFs;
use passthru_core::pci::PciAddress;
use passthru_core::plan::Plan;
use passthru_core::runner::CommandSpec;

use super::BootError;
use super::atomic;
use super::detect::{Detection, KernelImage};
use super::diff;
use super::facts::{HostFacts, TargetDevice};
use super::policy::{self, Decisions};
use super::render;
use super::state::{self, PersistedDevice, PersistentState, STATE_PATH, STATE_SCHEMA};
use super::step::{BootStep, FileChange, FileFormat, StoredFile};

/// What the person asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Add these devices to the persistent assignment.
    Assign(Vec<TargetDevice>),
    /// Remove these addresses from it.
    Release(Vec<PciAddress>),
}

/// A plan plus what executing it needs.
#[derive(Debug, Clone)]
pub struct BootPlan {
    /// The steps.
    pub plan: Plan<BootStep>,
    /// File contents the steps name by hash; stored in the journal before anything runs.
    pub contents: BTreeMap<String, Vec<u8>>,
    /// The record after the operation (`None`: no persistent assignment remains).
    pub state_after: Option<PersistentState>,
    /// Images that will be rebuilt (for the free-space check).
    pub images: Vec<KernelImage>,
    /// Modules that must exist in every kernel (for the preflight).
    pub required_modules: Vec<String>,
}

impl BootPlan {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.plan.steps.is_empty()
    }

    /// The new contents of a file the plan writes, if it writes one.
    pub fn new_contents(&self, change: &FileChange) -> Option<&[u8]> {
        change
            .after
            .as_ref()
            .and_then(|stored| self.contents.get(&stored.sha256))
            .map(Vec::as_slice)
    }
}

/// Everything the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The root being configured.
    pub root: &'a RealFs,
    /// Its facts.
    pub facts: &'a HostFacts,
    /// Its boot loader and generator.
    pub detection: &'a Detection,
    /// The record as it is now.
    pub state: Option<&'a PersistentState>,
    /// The time to record (RFC 3339).
    pub now: &'a str,
}

/// Collects file changes and their contents.
struct Files<'a> {
    root: &'a RealFs,
    changes: Vec<FileChange>,
    contents: BTreeMap<String, Vec<u8>>,
    created_dirs: Vec<PathBuf>,
}

impl<'a> Files<'a> {
    fn new(root: &'a RealFs) -> Self {
        Self {
            root,
            changes: Vec::new(),
            contents: BTreeMap::new(),
            created_dirs: Vec::new(),
        }
    }

    /// The current bytes and mode of a host file.
    fn current(&self, path: &Path) -> Result<Option<(Vec<u8>, u32)>, BootError> {
        atomic::read_state(&self.root.real_path(path)).map_err(|error| BootError::read(path, error))
    }

    fn text(&self, path: &Path) -> Result<Option<String>, BootError> {
        Ok(self
            .current(path)?
            .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn store(&mut self, bytes: &[u8], mode: u32) -> StoredFile {
        let stored = StoredFile::of(bytes, mode);
        self.contents
            .entry(stored.sha256.clone())
            .or_insert_with(|| bytes.to_vec());
        stored
    }

    /// The ancestors of `path` that do not exist yet, outermost first.
    fn missing_dirs(&self, path: &Path) -> Vec<PathBuf> {
        let mut missing = Vec::new();
        let mut dir = path.parent();
        while let Some(parent) = dir {
            if parent == Path::new("/") || self.root.real_path(parent).exists() {
                break;
            }
            missing.insert(0, parent.to_owned());
            dir = parent.parent();
        }
        missing
    }

    /// Plans `path` to hold `new` (`None`: not exist). New files get `mode`; replaced files
    /// keep theirs.
    fn set(
        &mut self,
        path: &Path,
        new: Option<Vec<u8>>,
        mode: u32,
        format: FileFormat,
        purpose: impl Into<String>,
    ) -> Result<(), BootError> {
        let current = self.current(path)?;
        if current.as_ref().map(|(bytes, _)| bytes) == new.as_ref() {
            return Ok(());
        }
        let before = current
            .as_ref()
            .map(|(bytes, mode)| self.store(bytes, *mode));
        let keep_mode = current.as_ref().map_or(mode, |(_, mode)| *mode);
        let after = new.as_ref().map(|bytes| self.store(bytes, keep_mode));
        let created_dirs = if current.is_none() {
            self.missing_dirs(path)
        } else {
            Vec::new()
        };
        self.created_dirs.extend(created_dirs.iter().cloned());
        self.changes.push(FileChange {
            path: path.to_owned(),
            purpose: purpose.into(),
            diff: diff::unified(
                path,
                current.as_ref().map(|(bytes, _)| bytes.as_slice()),
                new.as_deref(),
            ),
            before,
            after,
            format,
            created_dirs,
            removes_dirs: Vec::new(),
        });
        Ok(())
    }
}

/// Builds the plan.
pub fn plan(input: PlanInput<'_>, request: &Request) -> Result<BootPlan, BootError> {
    let (devices, operation) = desired_devices(input, request)?;
    let mut files = Files::new(input.root);
    let mut added: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut notes = Vec::new();

    let decisions = if devices.is_empty() {
        None
    } else {
        Some(policy::decide(&devices, input.facts))
    };
    if let Some(decisions) = &decisions {
        notes.extend(decisions.notes.iter().cloned());
    }
    let recorded = input.state.map(|state| &state.added);
    let empty = BTreeMap::new();
    let recorded = recorded.unwrap_or(&empty);

    // Kernel parameters.
    let wanted_params: Vec<String> = decisions
        .as_ref()
        .map(|d| d.kernel_params.clone())
        .unwrap_or_default();
    let params_outcome = params::plan(input, &mut files, recorded, &wanted_params)?;
    notes.extend(params_outcome.notes);
    added.extend(params_outcome.added);

    // Owned files and the initramfs configuration.
    let owned = owned_files(decisions.as_ref(), &devices, input)?;
    for (path, contents, mode, format, purpose) in &owned {
        files.set(
            Path::new(path),
            contents.clone(),
            *mode,
            *format,
            purpose.clone(),
        )?;
    }
    if let Some(state) = input.state {
        for path in &state.owned_files {
            if !owned.iter().any(|(p, ..)| Path::new(p) == path) {
                files.set(path, None, 0o644, FileFormat::Shell, "no longer needed")?;
            }
        }
    }
    let generator_outcome =
        initramfs::plan_config(input, &mut files, recorded, decisions.as_ref())?;
    notes.extend(generator_outcome.notes);
    added.extend(generator_outcome.added);

    // The record.
    let mut created_dirs: Vec<PathBuf> = input
        .state
        .map(|state| state.created_dirs.clone())
        .unwrap_or_default();
    let state_dirs = files.missing_dirs(Path::new(STATE_PATH));
    for dir in files.created_dirs.iter().chain(&state_dirs) {
        if !created_dirs.contains(dir) {
            created_dirs.push(dir.clone());
        }
    }
    let state_after = decisions.as_ref().map(|decisions| PersistentState {
        schema: STATE_SCHEMA.to_owned(),
        changed_at: input.now.to_owned(),
        devices: devices.clone(),
        binding: decisions.binding,
        bootloader: input.detection.bootloader.kind(),
        generator: input.detection.generator.kind,
        kernel_params: decisions.kernel_params.clone(),
        early_modules: decisions.early_modules.clone(),
        added: added.clone(),
        owned_files: owned
            .iter()
            .filter(|(_, contents, ..)| contents.is_some())
            .map(|(path, ..)| PathBuf::from(path))
            .collect(),
        created_dirs: created_dirs.clone(),
        kernels: input
            .detection
            .generator
            .images
            .iter()
            .map(|image| image.kernel.0.clone())
            .collect(),
    });
    let state_changed = match (&state_after, input.state) {
        (Some(after), Some(before)) => !same_except_time(after, before),
        (None, None) => false,
        _ => true,
    };
    let files_changed = !files.changes.is_empty();
    if state_changed || files_changed {
        let bytes = state_after.as_ref().map(state::to_bytes);
        files.set(
            Path::new(STATE_PATH),
            bytes,
            0o644,
            FileFormat::State,
            "passthru's record of what it changed",
        )?;
        if state_after.is_none()
            && let Some(change) = files.changes.last_mut()
        {
            let mut dirs = input
                .state
                .map(|state| state.created_dirs.clone())
                .unwrap_or_default();
            dirs.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
            change.removes_dirs = dirs;
        }
    }

    let mut steps = Vec::new();
    let rebuild = initramfs::plan_rebuild(input, decisions.as_ref());
    let mut rebuild_on_undo: Vec<CommandSpec> =
        rebuild.commands.iter().map(|r| r.command.clone()).collect();
    rebuild_on_undo.extend(params_outcome.rebuild.iter().map(|r| r.command.clone()));
    if !files.changes.is_empty() || !params_outcome.tool_runs.is_empty() {
        steps.push(BootStep::Begin {
            root: input.root.root().to_owned(),
            rebuild_on_undo,
        });
        steps.extend(files.changes.drain(..).map(BootStep::File));
        steps.extend(params_outcome.tool_runs.into_iter().map(BootStep::Run));
        steps.extend(rebuild.commands.into_iter().map(BootStep::Run));
        steps.extend(params_outcome.rebuild.into_iter().map(BootStep::Run));
        steps.extend(rebuild.checks.into_iter().map(BootStep::CheckImage));
        steps.extend(
            params_outcome
                .checks
                .into_iter()
                .map(BootStep::CheckEntries),
        );
    }
    notes.extend(rebuild.notes);

    let mut plan = Plan::new(operation);
    plan.notes = notes;
    plan.steps = steps;
    Ok(BootPlan {
        plan,
        contents: files.contents,
        state_after,
        images: input.detection.generator.images.clone(),
        required_modules: decisions.map(|d| d.early_modules).unwrap_or_default(),
    })
}

fn same_except_time(a: &PersistentState, b: &PersistentState) -> bool {
    let mut a = a.clone();
    a.changed_at.clone_from(&b.changed_at);
    a == *b
}

/// The devices assigned after this operation, and the operation's name.
fn desired_devices(
    input: PlanInput<'_>,
    request: &Request,
) -> Result<(Vec<PersistedDevice>, String), BootError> {
    let mut devices: Vec<PersistedDevice> = input
        .state
        .map(|state| state.devices.clone())
        .unwrap_or_default();
    match request {
        Request::Assign(targets) => {
            for target in targets {
                let fresh = policy::persisted(target, input.facts);
                match devices.iter_mut().find(|d| d.address == target.address) {
                    Some(known) => {
                        // Keep what was learned before (the host driver is gone once vfio-pci
                        // has the device) and add what is known now.
                        for driver in fresh.host_drivers {
                            if !known.host_drivers.contains(&driver) {
                                known.host_drivers.push(driver);
                            }
                        }
                        known.host_drivers.sort();
                    }
                    None => devices.push(fresh),
                }
            }
            devices.sort_by_key(|device| device.address);
            let names: Vec<String> = targets.iter().map(|t| t.address.to_string()).collect();
            Ok((devices, format!("assign {} --persistent", names.join(" "))))
        }
        Request::Release(addresses) => {
            for address in addresses {
                let Some(position) = devices.iter().position(|d| d.address == *address) else {
                    return Err(BootError::Refused(format!(
                        "{address} has no persistent assignment made by passthru, so there is \
                         nothing to release at boot (see {STATE_PATH})"
                    )));
                };
                devices.remove(position);
            }
            let names: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            Ok((devices, format!("release {} --persistent", names.join(" "))))
        }
    }
}

/// Files passthru owns entirely: path, contents (`None`: must not exist), mode, format, why.
type Owned = (String, Option<Vec<u8>>, u32, FileFormat, String);

fn owned_files(
    decisions: Option<&Decisions>,
    devices: &[PersistedDevice],
    input: PlanInput<'_>,
) -> Result<Vec<Owned>, BootError> {
    let Some(decisions) = decisions else {
        return Ok(Vec::new());
    };
    let by_address = decisions.binding == super::state::BindingMethod::Address;
    let mut owned: Vec<Owned> = vec![(
        render::MODPROBE_CONF.to_owned(),
        Some(render::modprobe_conf(&decisions.softdeps).into_bytes()),
        0o644,
        FileFormat::Modprobe,
        if decisions.softdeps.is_empty() {
            "vfio-pci needs no ordering: no host driver claims these devices".to_owned()
        } else {
            format!("load vfio-pci before {}", decisions.softdeps.join(", "))
        },
    )];
    let addresses: Vec<PciAddress> = devices.iter().map(|d| d.address).collect();
    owned.push((
        render::UDEV_RULE.to_owned(),
        by_address.then(|| render::udev_rule(&addresses).into_bytes()),
        0o644,
        FileFormat::Udev,
        "bind each chosen address to vfio-pci as it appears".to_owned(),
    ));
    owned.extend(initramfs::owned_files(input, decisions)?);
    Ok(owned)
}
