//! The steps of a boot-configuration plan (`linux-boot` in the journal) and the host they act
//! through.
//!
//! File contents never travel inside the steps: a step names them by SHA-256 and the bytes
//! live in the journal's blob store, so the journal stays small and an undo after a crash has
//! the original bytes of every file. Undo order matters: files are restored in reverse, and
//! only then are the initramfs images and the boot menu rebuilt. Because the executor undoes
//! steps last-first, the rebuild-on-undo lives in the *first* step ([`BootStep::Begin`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passthru_core::hostfs::RealFs;
use passthru_core::plan::journal::BlobStore;
use passthru_core::plan::{Step, StepError, StepView};
use passthru_core::runner::{CommandOutput, CommandRunner, CommandSpec};
use serde::{Deserialize, Serialize};

use super::atomic;
use super::kernels::normalize_module;

/// How long an initramfs or boot-menu rebuild may take before passthru gives up on it.
pub const REBUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How long listing an image or running a configuration tool may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The host a boot plan acts on: a root directory, a command runner that runs programs
/// *inside* that root, and the journal's blob store.
pub struct BootHost {
    fs: RealFs,
    runner: Box<dyn CommandRunner>,
    blobs: BlobStore,
}

impl std::fmt::Debug for BootHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootHost")
            .field("root", &self.fs.root())
            .field("blobs", &self.blobs)
            .finish_non_exhaustive()
    }
}

impl BootHost {
    /// A host rooted at `root` (`/` for the machine itself).
    pub fn new(root: impl Into<PathBuf>, runner: Box<dyn CommandRunner>, blobs: BlobStore) -> Self {
        Self {
            fs: RealFs::new(root),
            runner,
            blobs,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.fs.root()
    }

    /// Where a host-absolute path really is.
    pub fn real(&self, path: &Path) -> PathBuf {
        self.fs.real_path(path)
    }

    /// The runner (to reuse it after a plan ran).
    pub fn runner(&mut self) -> &mut dyn CommandRunner {
        self.runner.as_mut()
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn run(&mut self, command: &CommandSpec) -> Result<CommandOutput, StepError> {
        let output = self.runner.run(command).map_err(|error| {
            StepError::new(format!("could not run `{command}`: {error}"))
                .with_help("check that the program is installed in the system being configured")
        })?;
        if output.timed_out {
            return Err(StepError::new(format!(
                "`{command}` did not finish in time and was stopped"
            )));
        }
        if !output.success() {
            let mut message = format!(
                "`{command}` failed (exit status {})",
                output
                    .status
                    .map_or_else(|| "none".to_owned(), |code| code.to_string())
            );
            let stderr = output.stderr_text();
            let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
            for line in tail.iter().rev() {
                let _ = write!(message, "\n    {line}");
            }
            return Err(StepError::new(message));
        }
        Ok(output)
    }

    fn load(&self, stored: &StoredFile) -> Result<Vec<u8>, StepError> {
        self.blobs.load(&stored.sha256).map_err(|error| {
            StepError::new(format!("the journal lost the saved contents: {error}"))
                .with_help("the journal directory was changed or damaged; restore it from a backup")
        })
    }

    fn state_of(&self, path: &Path) -> Result<Option<(Vec<u8>, u32)>, StepError> {
        atomic::read_state(&self.real(path))
            .map_err(|error| StepError::new(format!("could not read {}: {error}", path.display())))
    }

    fn put(&self, path: &Path, state: Option<&StoredFile>) -> Result<(), StepError> {
        let real = self.real(path);
        let result = match state {
            Some(stored) => {
                let bytes = self.load(stored)?;
                atomic::write(&real, &bytes, stored.mode)
            }
            None => atomic::remove(&real),
        };
        result
            .map_err(|error| StepError::new(format!("could not write {}: {error}", path.display())))
    }
}

/// File contents kept in the journal's blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// SHA-256 of the bytes (the blob id).
    pub sha256: String,
    /// Permission bits.
    pub mode: u32,
    /// Size in bytes (for people reading the journal).
    pub len: u64,
}

impl StoredFile {
    /// Describes `bytes`.
    pub fn of(bytes: &[u8], mode: u32) -> Self {
        Self {
            sha256: passthru_core::plan::journal::sha256_hex(bytes),
            mode,
            len: bytes.len() as u64,
        }
    }

    fn matches(&self, bytes: &[u8]) -> bool {
        passthru_core::plan::journal::sha256_hex(bytes) == self.sha256
    }
}

/// What kind of file a change writes, so that the preflight can parse the new contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// Sourced by a POSIX shell (`/etc/default/grub`, initramfs-tools hooks).
    Shell,
    /// Sourced by bash (dracut and mkinitcpio configuration use bash arrays and `+=`).
    Bash,
    /// `/etc/modprobe.d/*.conf`.
    Modprobe,
    /// A udev rules file.
    Udev,
    /// `/etc/initramfs-tools/modules`: one module per line.
    ModuleList,
    /// A kernel command line (`/etc/kernel/cmdline`).
    Cmdline,
    /// A BLS / systemd-boot entry.
    BootEntry,
    /// Flat YAML (`/etc/booster.yaml`).
    Yaml,
    /// passthru's own record (JSON).
    State,
}

/// One file created, replaced or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Host-absolute path.
    pub path: PathBuf,
    /// Why (shown in the plan).
    pub purpose: String,
    /// The file before (`None`: it did not exist).
    pub before: Option<StoredFile>,
    /// The file after (`None`: delete it).
    pub after: Option<StoredFile>,
    /// Format of the new contents.
    pub format: FileFormat,
    /// Directories this change creates (deepest last), removed again on undo when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created_dirs: Vec<PathBuf>,
    /// Directories passthru once created that this change removes when they end up empty
    /// (deepest first); undo creates them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removes_dirs: Vec<PathBuf>,
    /// Unified diff of the change (for people).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}

/// A command that changes the system (a rebuild, or a tool that edits its own files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCommand {
    /// Why (shown in the plan).
    pub purpose: String,
    /// The command.
    pub command: CommandSpec,
    /// Files the command rewrites, as they were before; undo puts them back byte for byte.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<Snapshot>,
}

/// A file as it was before a command changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Host-absolute path.
    pub path: PathBuf,
    /// Contents before (`None`: did not exist).
    pub before: Option<StoredFile>,
}

/// Something an image must or must not contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum ImageEntry {
    /// A kernel module, any compression (`vfio_pci` matches `vfio-pci.ko.zst`).
    Module(String),
    /// A file, by path inside the image (`etc/modprobe.d/passthru-vfio.conf`), or by the end
    /// of it (`udev/rules.d/x.rules` matches `usr/lib/udev/rules.d/x.rules`).
    File(String),
}

impl std::fmt::Display for ImageEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Module(name) => write!(f, "module {name}"),
            Self::File(path) => write!(f, "/{path}"),
        }
    }
}

/// Lists a rebuilt image and checks what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCheck {
    /// Host-absolute image path.
    pub image: PathBuf,
    /// The kernel it belongs to.
    pub kernel: String,
    /// The listing command (`lsinitramfs IMAGE`).
    pub list: CommandSpec,
    /// Entries that must be there.
    pub must_contain: Vec<ImageEntry>,
    /// Entries that must not be there.
    pub must_lack: Vec<ImageEntry>,
}

/// Reads boot entries back and checks the kernel parameters on their kernel lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntriesCheck {
    /// Files to read (`/boot/grub/grub.cfg`, BLS entries).
    pub files: Vec<PathBuf>,
    /// The first word of a kernel line (`linux`, `options`).
    pub line_keyword: String,
    /// Parameters every checked line must carry.
    pub present: Vec<String>,
    /// Parameters no checked line may carry.
    pub absent: Vec<String>,
    /// Whether only the first matching line per file must comply (GRUB's default entry) or
    /// every line (BLS `options`).
    pub first_only: bool,
}

/// One step of a boot-configuration plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum BootStep {
    /// First step: records the root and what to rebuild when the plan is undone. Its undo runs
    /// last, after every file is back, so the rebuilt images match the restored files.
    Begin {
        /// The root the plan was made for (undo refuses another).
        root: PathBuf,
        /// Rebuild commands to run after an undo.
        rebuild_on_undo: Vec<CommandSpec>,
    },
    /// Create, replace or delete a file.
    File(FileChange),
    /// Run a command.
    Run(RunCommand),
    /// Check a rebuilt image.
    CheckImage(ImageCheck),
    /// Check boot entries.
    CheckEntries(EntriesCheck),
}

impl Step for BootStep {
    type Host = BootHost;
    const KIND: &'static str = "linux-boot";

    fn view(&self) -> StepView {
        match self {
            Self::Begin {
                rebuild_on_undo, ..
            } => {
                let mut view =
                    StepView::new("On undo: once every file below is restored, rebuild with:");
                for command in rebuild_on_undo {
                    view = view.action(format!("(on undo) $ {command}"));
                }
                view
            }
            Self::File(change) => {
                let verb = match (&change.before, &change.after) {
                    (None, Some(_)) => "Create",
                    (Some(_), None) => "Delete",
                    _ => "Change",
                };
                let mut view = StepView::new(format!(
                    "{verb} {} ({})",
                    change.path.display(),
                    change.purpose
                ));
                view.actions.clone_from(&change.diff);
                view
            }
            Self::Run(run) => {
                let mut view =
                    StepView::new(run.purpose.clone()).action(format!("$ {}", run.command));
                if !run.restores.is_empty() {
                    let names: Vec<String> = run
                        .restores
                        .iter()
                        .map(|snapshot| snapshot.path.display().to_string())
                        .collect();
                    view = view.action(format!("(saved for undo: {})", names.join(", ")));
                }
                view
            }
            Self::CheckImage(check) => {
                let mut wanted: Vec<String> =
                    check.must_contain.iter().map(ToString::to_string).collect();
                wanted.extend(check.must_lack.iter().map(|entry| format!("no {entry}")));
                StepView::new(format!(
                    "Check {} (kernel {}) contains {}",
                    check.image.display(),
                    check.kernel,
                    wanted.join(", ")
                ))
                .action(format!("$ {}", check.list))
            }
            Self::CheckEntries(check) => {
                let files: Vec<String> = check
                    .files
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                let mut what = Vec::new();
                if !check.present.is_empty() {
                    what.push(format!("carry {}", check.present.join(" ")));
                }
                if !check.absent.is_empty() {
                    what.push(format!("no longer carry {}", check.absent.join(" ")));
                }
                StepView::new(format!(
                    "Check that the `{}` lines of {} {}",
                    check.line_keyword,
                    files.join(", "),
                    what.join(" and ")
                ))
            }
        }
    }

    fn apply(&self, host: &mut BootHost) -> Result<(), StepError> {
        match self {
            Self::Begin { root, .. } => check_root(host, root),
            Self::File(change) => apply_file(host, change),
            Self::Run(run) => {
                let mut command = run.command.clone();
                command.timeout.get_or_insert(REBUILD_TIMEOUT);
                host.run(&command).map(drop)
            }
            Self::CheckImage(check) => check_image(host, check),
            Self::CheckEntries(check) => check_entries(host, check),
        }
    }

    fn verify(&self, host: &mut BootHost) -> Result<(), StepError> {
        match self {
            Self::File(change) => {
                let now = host.state_of(&change.path)?;
                let matches = match (&now, &change.after) {
                    (None, None) => true,
                    (Some((bytes, _)), Some(after)) => after.matches(bytes),
                    _ => false,
                };
                if matches {
                    Ok(())
                } else {
                    Err(StepError::new(format!(
                        "{} does not hold what passthru just wrote",
                        change.path.display()
                    )))
                }
            }
            _ => Ok(()),
        }
    }

    fn undo(&self, host: &mut BootHost) -> Result<(), StepError> {
        match self {
            Self::Begin {
                root,
                rebuild_on_undo,
            } => {
                check_root(host, root)?;
                let mut failures = Vec::new();
                for command in rebuild_on_undo {
                    let mut command = command.clone();
                    command.timeout.get_or_insert(REBUILD_TIMEOUT);
                    if let Err(error) = host.run(&command) {
                        failures.push(error.message);
                    }
                }
                if failures.is_empty() {
                    Ok(())
                } else {
                    Err(StepError::new(format!(
                        "the files are restored, but rebuilding failed:\n{}",
                        failures.join("\n")
                    ))
                    .with_help(
                        "fix the cause and run the rebuild commands shown in the plan by hand",
                    ))
                }
            }
            Self::File(change) => undo_file(host, change),
            Self::Run(run) => {
                for snapshot in &run.restores {
                    host.put(&snapshot.path, snapshot.before.as_ref())?;
                }
                Ok(())
            }
            Self::CheckImage(_) | Self::CheckEntries(_) => Ok(()),
        }
    }
}

/// Whether a plan made for `recorded` may act on the system under `actual`: the same root, or
/// a plan made for the machine itself (`/`) acting on it mounted elsewhere, as when repairing
/// it from a live system (`--root /mnt`).
pub fn root_matches(recorded: &Path, actual: &Path) -> bool {
    recorded == actual || recorded == Path::new("/")
}

fn check_root(host: &BootHost, root: &Path) -> Result<(), StepError> {
    if root_matches(root, host.root()) {
        Ok(())
    } else {
        Err(StepError::new(format!(
            "this plan was made for the system under {}, not {}",
            root.display(),
            host.root().display()
        ))
        .with_help(format!("run it again with --root {}", root.display())))
    }
}

fn apply_file(host: &mut BootHost, change: &FileChange) -> Result<(), StepError> {
    let now = host.state_of(&change.path)?;
    let unchanged = match (&now, &change.before) {
        (None, None) => true,
        (Some((bytes, _)), Some(before)) => before.matches(bytes),
        _ => false,
    };
    if !unchanged {
        return Err(StepError::new(format!(
            "{} changed after the plan was made",
            change.path.display()
        ))
        .with_help("run the command again so that passthru plans from the current contents"));
    }
    for dir in &change.created_dirs {
        fs_err::create_dir_all(host.real(dir))
            .map_err(|error| StepError::new(error.to_string()))?;
    }
    host.put(&change.path, change.after.as_ref())?;
    for dir in &change.removes_dirs {
        // Only empty directories go; anything someone put there stays.
        let _ = fs_err::remove_dir(host.real(dir));
    }
    Ok(())
}

fn undo_file(host: &mut BootHost, change: &FileChange) -> Result<(), StepError> {
    for dir in change.removes_dirs.iter().rev() {
        fs_err::create_dir_all(host.real(dir))
            .map_err(|error| StepError::new(error.to_string()))?;
    }
    let now = host.state_of(&change.path)?;
    let is = |state: &Option<StoredFile>| match (&now, state) {
        (None, None) => true,
        (Some((bytes, _)), Some(stored)) => stored.matches(bytes),
        _ => false,
    };
    if !is(&change.before) {
        if !is(&change.after) {
            let saved = change.before.as_ref().map_or_else(
                || "it did not exist".to_owned(),
                |b| format!("journal blob {}", b.sha256),
            );
            return Err(StepError::new(format!(
                "{} was changed by someone else after passthru wrote it, so passthru leaves it alone",
                change.path.display()
            ))
            .with_help(format!(
                "compare it with the original ({saved}) and restore what you need by hand"
            )));
        }
        host.put(&change.path, change.before.as_ref())?;
    }
    for dir in change.created_dirs.iter().rev() {
        // Only empty directories go; anything someone put there stays.
        let _ = fs_err::remove_dir(host.real(dir));
    }
    Ok(())
}

/// Whether a listing of an image (one path per line, possibly `ls -l`-style with the path
/// last, possibly with a leading `./` or `/`) contains `entry`.
pub fn listing_contains(listing: &str, entry: &ImageEntry) -> bool {
    listing.lines().any(|line| {
        let Some(last) = line.split_whitespace().last() else {
            return false;
        };
        let path = last.trim_start_matches("./").trim_start_matches('/');
        match entry {
            ImageEntry::File(wanted) => {
                let wanted = wanted.trim_start_matches('/');
                path == wanted || path.ends_with(&format!("/{wanted}"))
            }
            ImageEntry::Module(name) => {
                let file = path.rsplit('/').next().unwrap_or(path);
                file.split_once(".ko").is_some_and(|(stem, suffix)| {
                    normalize_module(stem) == normalize_module(name)
                        && matches!(suffix, "" | ".xz" | ".zst" | ".gz" | ".lz4")
                })
            }
        }
    })
}

fn check_image(host: &mut BootHost, check: &ImageCheck) -> Result<(), StepError> {
    let mut command = check.list.clone();
    command.timeout.get_or_insert(TOOL_TIMEOUT);
    let listing = host.run(&command)?.stdout_text();
    let missing: Vec<String> = check
        .must_contain
        .iter()
        .filter(|entry| !listing_contains(&listing, entry))
        .map(ToString::to_string)
        .collect();
    let unwanted: Vec<String> = check
        .must_lack
        .iter()
        .filter(|entry| listing_contains(&listing, entry))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() && unwanted.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("lacks {}", missing.join(", ")));
    }
    if !unwanted.is_empty() {
        problems.push(format!("still contains {}", unwanted.join(", ")));
    }
    Err(StepError::new(format!(
        "the rebuilt {} (kernel {}) {}; booting it would not bind the devices as planned",
        check.image.display(),
        check.kernel,
        problems.join(" and ")
    ))
    .with_help("passthru put every file back; see docs/persistent.md for this generator's needs"))
}

fn check_entries(host: &mut BootHost, check: &EntriesCheck) -> Result<(), StepError> {
    let mut problems = Vec::new();
    for file in &check.files {
        let text = match host.state_of(file)? {
            Some((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                problems.push(format!("{} is missing", file.display()));
                continue;
            }
        };
        let mut lines = text
            .lines()
            .map(str::trim_start)
            .filter(|line| line.split_whitespace().next() == Some(check.line_keyword.as_str()));
        let checked: Vec<&str> = if check.first_only {
            lines.next().into_iter().collect()
        } else {
            lines.collect()
        };
        if checked.is_empty() && !check.present.is_empty() {
            problems.push(format!(
                "{} has no `{}` line",
                file.display(),
                check.line_keyword
            ));
        }
        for line in checked {
            let missing: Vec<&String> = check
                .present
                .iter()
                .filter(|param| !super::cmdline::contains(line, param))
                .collect();
            let left: Vec<&String> = check
                .absent
                .iter()
                .filter(|param| super::cmdline::contains(line, param))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "{}: a `{}` line lacks {}",
                    file.display(),
                    check.line_keyword,
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            if !left.is_empty() {
                problems.push(format!(
                    "{}: a `{}` line still has {}",
                    file.display(),
                    check.line_keyword,
                    left.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StepError::new(format!(
            "the boot entries do not show the planned kernel parameters:\n  {}",
            problems.join("\n  ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_for_the_machine_itself_may_repair_it_mounted_elsewhere() {
        assert!(root_matches(Path::new("/"), Path::new("/mnt")));
        assert!(root_matches(Path::new("/srv/img"), Path::new("/srv/img")));
        assert!(!root_matches(Path::new("/srv/img"), Path::new("/")));
        assert!(!root_matches(
            Path::new("/srv/img"),
            Path::new("/srv/other")
        ));
    }

    #[test]
    fn listings_of_every_tool_are_understood() {
        let lsinitramfs = "usr/lib/modules/6.1.0-28-amd64/kernel/drivers/vfio/pci/vfio-pci.ko\netc/modprobe.d/passthru-vfio.conf\n";
        let lsinitrd = "-rw-r--r--   1 root     root        41236 Nov  1 12:00 usr/lib/modules/6.11.4-301.fc41.x86_64/kernel/drivers/vfio/pci/vfio-pci.ko.xz\n";
        let booster = "./usr/lib/modules/vfio_pci.ko\n";
        for listing in [lsinitramfs, lsinitrd, booster] {
            assert!(
                listing_contains(listing, &ImageEntry::Module("vfio_pci".into())),
                "{listing}"
            );
            assert!(
                !listing_contains(listing, &ImageEntry::Module("vfio".into())),
                "{listing}"
            );
        }
        assert!(listing_contains(
            lsinitramfs,
            &ImageEntry::File("/etc/modprobe.d/passthru-vfio.conf".into())
        ));
        assert!(!listing_contains(
            "vfio-pci-core.ko\n",
            &ImageEntry::Module("vfio-pci".into())
        ));
    }
}
