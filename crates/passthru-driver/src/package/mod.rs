//! Package resolution: from what Windows says about an adapter to the exact files its guest
//! needs and where they go.
//!
//! The result ([`ResolvedDriver`]) lists, for every package the GPU uses, every file of its
//! driver-store folder with its guest destination under
//! `Windows\System32\HostDriverStore\FileRepository\<package>\`; the System32/SysWOW64
//! promotions (from the class key's `CopyToVm*` values, and from the INF's own copies to
//! System32/SysWOW64 where the registry names none for that file); the kernel service binary;
//! and, in [`ResolvedDriver::notes`], everything that could not be resolved and why.
//!
//! Only the GPU's own package is copied (plus, for AMD, the companion packages its INF names
//! with `CopyINF` and the same `DriverVer`, as ExHyperV's resolver does): not the whole host
//! FileRepository, which holds every driver of the host.

pub mod registration;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dirid;
use crate::guest_path::GuestPath;
use crate::inf::{DriverVer, Inf, InfError};
use crate::sync::FileToSync;
pub use registration::{AdapterRegistration, CopyToVmKey, CopyToVmValue, RegData, Vendor};

/// The architecture whose INF sections are used.
pub const ARCH: &str = "amd64";

/// Why a driver could not be resolved at all.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The package folder is not inside a driver store `FileRepository`.
    #[error(
        "the driver package folder `{}` is not inside a driver store FileRepository; \
         passthru copies only packages installed in the driver store (reinstall the GPU driver \
         with its installer or pnputil)",
        .0.display()
    )]
    NotInDriverStore(PathBuf),
    /// The package folder could not be read.
    #[error("cannot read the driver package: {0}")]
    Io(#[from] io::Error),
    /// The package has no INF file, or several candidates.
    #[error("cannot find the INF file in `{}`: {reason}", .dir.display())]
    NoInf {
        /// The package folder.
        dir: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The INF could not be read.
    #[error("the INF file `{}` is unreadable: {source}", .path.display())]
    Inf {
        /// The INF.
        path: PathBuf,
        /// Why.
        source: InfError,
    },
}

/// Which packages a resolved driver has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageRole {
    /// The display driver the adapter's class key names.
    Display,
    /// A package the display INF names with `CopyINF` (AMD OpenCL, ...).
    Companion,
}

/// One file of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageFile {
    /// Path inside the package folder, with backslashes.
    pub relative: String,
    /// The file on the host.
    pub source: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Whether the INF declares it (`SourceDisksFiles`, the INF, its catalog).
    pub declared: bool,
}

/// One driver-store package to copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedPackage {
    /// Folder name (`nv_dispi.inf_amd64_2f1a...`).
    pub name: String,
    /// Its role.
    pub role: PackageRole,
    /// The folder on the host.
    pub host_dir: PathBuf,
    /// The folder in the guest.
    pub guest_dir: GuestPath,
    /// The INF file name inside the folder.
    pub inf_name: String,
    /// `DriverVer` of its INF.
    pub driver_ver: Option<DriverVer>,
    /// Every file, in path order.
    pub files: Vec<PackageFile>,
}

/// Where a promotion comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum PromotionOrigin {
    /// A `CopyToVm*` value of the class key.
    Registry {
        /// Subkey.
        key: CopyToVmKey,
        /// Value name.
        value: String,
    },
    /// A `CopyFiles` entry of the install section that copies into System32/SysWOW64.
    Inf {
        /// The file-list section (`nv_system32_copyfiles__01`), or `@file`.
        section: String,
        /// Its line.
        line: usize,
    },
}

/// A file copied from the package into System32 or SysWOW64 of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    /// The package folder name.
    pub package: String,
    /// Path inside the package.
    pub source_relative: String,
    /// The file on the host.
    pub source: PathBuf,
    /// Destination in the guest (`Windows\System32\nvcuda.dll`).
    pub target: GuestPath,
    /// Copy only when the package's file is newer than the guest's (`CopyToVmWhenNewer*`).
    pub when_newer: bool,
    /// Why.
    pub origin: PromotionOrigin,
}

/// The kernel-mode service of the display driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelService {
    /// Service name (`nvlddmkm`).
    pub name: String,
    /// `Type`, `Start`, `ErrorControl`, `Group` as the INF's service-install section sets them
    /// (the values Windows wrote on the host).
    pub values: Vec<(String, RegData)>,
    /// The binary inside the package (`nvlddmkm.sys`).
    pub binary_relative: String,
    /// `ImagePath` for the guest (`\SystemRoot\System32\HostDriverStore\FileRepository\...`).
    pub guest_image_path: String,
}

/// Everything a guest needs from the host for one GPU.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedDriver {
    /// The adapter's vendor.
    pub vendor: Option<Vendor>,
    /// `DriverDesc`.
    pub description: String,
    /// `DriverVer` of the display INF.
    pub driver_ver: Option<DriverVer>,
    /// The install section used.
    pub install_section: Option<String>,
    /// The display package first, then companions.
    pub packages: Vec<ResolvedPackage>,
    /// System32/SysWOW64 promotions.
    pub promotions: Vec<Promotion>,
    /// The kernel service.
    pub kernel_service: Option<KernelService>,
    /// What could not be resolved, and what passthru did instead.
    pub notes: Vec<String>,
}

impl ResolvedDriver {
    /// The package files as a sync job's file list (destinations relative to the volume root).
    pub fn package_sync_files(&self) -> Vec<FileToSync> {
        self.packages
            .iter()
            .flat_map(|package| {
                package.files.iter().map(|file| FileToSync {
                    source: file.source.clone(),
                    dest: package.guest_dir.join(&file.relative).to_relative(),
                })
            })
            .collect()
    }

    /// The guest package folders (relative), where files no longer wanted may be removed.
    pub fn managed_dirs(&self) -> Vec<PathBuf> {
        self.packages
            .iter()
            .map(|package| package.guest_dir.to_relative())
            .collect()
    }

    /// Total bytes of all package files.
    pub fn total_bytes(&self) -> u64 {
        self.packages
            .iter()
            .flat_map(|p| &p.files)
            .map(|f| f.size)
            .sum()
    }
}

/// Resolves the files for an adapter. Reads the package folder (and, for companions, its
/// sibling folders) from the host file system.
pub fn resolve(registration: &AdapterRegistration) -> Result<ResolvedDriver, ResolveError> {
    let host_dir = PathBuf::from(&registration.driver_store_dir);
    let repository = host_dir
        .parent()
        .filter(|parent| {
            parent
                .file_name()
                .is_some_and(|name| name.eq_ignore_ascii_case("FileRepository"))
        })
        .ok_or_else(|| ResolveError::NotInDriverStore(host_dir.clone()))?
        .to_path_buf();
    let mut notes = Vec::new();
    let vendor = Vendor::from_device_id(&registration.matching_device_id)
        .or_else(|| Vendor::from_device_id(&registration.instance_id));
    let (display, inf) = read_package(&host_dir, PackageRole::Display, &mut notes)?;

    let install = match &registration.inf_section {
        Some(section) => Some(inf.decorated_install_section(section, ARCH)),
        None => inf
            .install_section(&registration.matching_device_id, ARCH)
            .map(|install| install.name),
    };
    if install.is_none() {
        notes.push(format!(
            "the INF has no install section for `{}`; System32 copies and the kernel service \
             could not be read from it",
            registration.matching_device_id
        ));
    }

    let mut promotions = registry_promotions(registration, &display, &mut notes);
    if let Some(install) = &install {
        inf_promotions(&inf, install, &display, &mut promotions, &mut notes);
    }
    let kernel_service = install
        .as_deref()
        .and_then(|install| kernel_service(&inf, install, &display, &mut notes));

    let mut packages = vec![display];
    let companions = install
        .as_deref()
        .map(|install| inf.copy_infs(Some(install)))
        .unwrap_or_default();
    for companion in companions {
        if vendor != Some(Vendor::Amd) {
            notes.push(format!(
                "`{companion}` (named by CopyINF) is a separate device's driver (audio, USB-C); \
                 a GPU partition does not need it, so it is not copied"
            ));
            continue;
        }
        match find_companion(&repository, &companion, packages[0].driver_ver, &mut notes)? {
            Some(package) => packages.push(package),
            None => continue,
        }
    }
    Ok(ResolvedDriver {
        vendor,
        description: registration.driver_desc.clone(),
        driver_ver: packages[0].driver_ver,
        install_section: install,
        packages,
        promotions,
        kernel_service,
        notes,
    })
}

/// Lists a package folder and parses its INF.
fn read_package(
    dir: &Path,
    role: PackageRole,
    notes: &mut Vec<String>,
) -> Result<(ResolvedPackage, Inf), ResolveError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut listing = BTreeMap::new();
    list_files(dir, "", &mut listing)?;
    let inf_name = inf_name_for(&name, &listing).ok_or_else(|| ResolveError::NoInf {
        dir: dir.to_path_buf(),
        reason: "the folder has no .inf file matching its name, and not exactly one .inf file"
            .to_owned(),
    })?;
    let inf_path = dir.join(&inf_name);
    let inf = Inf::parse(&fs_err::read(&inf_path)?).map_err(|source| ResolveError::Inf {
        path: inf_path.clone(),
        source,
    })?;
    let (declared, warnings) = inf.package_files(ARCH, &inf_name);
    for warning in warnings {
        notes.push(format!("{inf_name}: {warning}"));
    }
    let mut files = Vec::new();
    let mut missing = Vec::new();
    let mut declared_keys = std::collections::HashSet::new();
    for decl in &declared {
        let key = decl.relative_path.to_ascii_lowercase();
        declared_keys.insert(key.clone());
        if !listing.contains_key(&key) {
            missing.push(decl.relative_path.clone());
        }
    }
    let mut undeclared = 0;
    for (key, (relative, size)) in &listing {
        let is_declared = declared_keys.contains(key);
        undeclared += usize::from(!is_declared);
        files.push(PackageFile {
            relative: relative.clone(),
            source: dir.join(relative.replace('\\', std::path::MAIN_SEPARATOR_STR)),
            size: *size,
            declared: is_declared,
        });
    }
    if !missing.is_empty() {
        notes.push(format!(
            "{name}: {} file(s) the INF declares are not in the driver store folder (first: {}); \
             Windows copies only what the package had, so they are not copied either",
            missing.len(),
            missing[0]
        ));
    }
    if undeclared > 0 {
        notes.push(format!(
            "{name}: {undeclared} file(s) in the folder are not declared by the INF; they belong \
             to the package, so they are copied too"
        ));
    }
    let driver_ver = inf.version(ARCH).driver_ver;
    let package = ResolvedPackage {
        guest_dir: GuestPath::host_driver_store_package(&name),
        name,
        role,
        host_dir: dir.to_path_buf(),
        inf_name,
        driver_ver,
        files,
    };
    Ok((package, inf))
}

/// Every file below `dir`: lower-case relative path → (relative path as found, size).
fn list_files(
    dir: &Path,
    prefix: &str,
    out: &mut BTreeMap<String, (String, u64)>,
) -> io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}\\{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), &relative, out)?;
        } else if kind.is_file() {
            let size = entry.metadata()?.len();
            out.insert(relative.to_ascii_lowercase(), (relative, size));
        }
    }
    Ok(())
}

/// `nv_dispi.inf_amd64_<hash>` holds `nv_dispi.inf`; otherwise the only `.inf` in the root.
fn inf_name_for(folder: &str, listing: &BTreeMap<String, (String, u64)>) -> Option<String> {
    let lower = folder.to_ascii_lowercase();
    if let Some(end) = lower.find(".inf") {
        let key = &lower[..end + 4];
        if let Some((name, _)) = listing.get(key) {
            return Some(name.clone());
        }
    }
    let mut infs = listing
        .values()
        .filter(|(name, _)| !name.contains('\\') && name.to_ascii_lowercase().ends_with(".inf"));
    match (infs.next(), infs.next()) {
        (Some((name, _)), None) => Some(name.clone()),
        _ => None,
    }
}

fn registry_promotions(
    registration: &AdapterRegistration,
    display: &ResolvedPackage,
    notes: &mut Vec<String>,
) -> Vec<Promotion> {
    let mut promotions = Vec::new();
    for value in &registration.copy_to_vm {
        let what = format!("{}\\{}", value.key.name(), value.name);
        let (source, target) = match &value.data {
            RegData::Sz(source) => (source.clone(), String::new()),
            RegData::MultiSz(strings) if (1..=2).contains(&strings.len()) => (
                strings[0].clone(),
                strings.get(1).cloned().unwrap_or_default(),
            ),
            RegData::MultiSz(strings) => {
                notes.push(format!(
                    "{what} has {} strings; Windows allows one or two (source, target), so it is skipped",
                    strings.len()
                ));
                continue;
            }
            other => {
                notes.push(format!(
                    "{what} is {}; only REG_SZ and REG_MULTI_SZ are defined, so it is skipped",
                    other.kind_name()
                ));
                continue;
            }
        };
        let source = GuestPath::new(&source).as_str().to_owned();
        let target_name = if target.is_empty() {
            GuestPath::new(&source).file_name().to_owned()
        } else {
            target
        };
        if target_name.contains(['\\', '/']) || target_name.is_empty() {
            notes.push(format!(
                "{what} names the target `{target_name}`, which must be a plain file name; skipped"
            ));
            continue;
        }
        let Some(file) = display
            .files
            .iter()
            .find(|f| f.relative.eq_ignore_ascii_case(&source))
        else {
            notes.push(format!(
                "{what} names `{source}`, which is not in the package {}; skipped",
                display.name
            ));
            continue;
        };
        let dir = if value.key.wow64() {
            r"Windows\SysWOW64"
        } else {
            r"Windows\System32"
        };
        promotions.push(Promotion {
            package: display.name.clone(),
            source_relative: file.relative.clone(),
            source: file.source.clone(),
            target: GuestPath::new(dir).join(&target_name),
            when_newer: value.key.when_newer(),
            origin: PromotionOrigin::Registry {
                key: value.key,
                value: value.name.clone(),
            },
        });
    }
    promotions
}

/// Copies the INF makes into System32 (dirid 11, or 10 `SysWow64`) become promotions where the
/// registry has none for the same target. Other destinations outside the package are noted.
fn inf_promotions(
    inf: &Inf,
    install: &str,
    display: &ResolvedPackage,
    promotions: &mut Vec<Promotion>,
    notes: &mut Vec<String>,
) {
    let (ops, warnings) = inf.copy_files(install);
    for warning in warnings {
        notes.push(format!("{}: {warning}", display.inf_name));
    }
    let mut elsewhere: BTreeMap<String, usize> = BTreeMap::new();
    for op in ops {
        let Some(dest) = &op.dest_dir else { continue };
        let Some(dir) = dirid::guest_dir(dest.dirid, &display.guest_dir) else {
            *elsewhere
                .entry(format!("dirid {}", dest.dirid))
                .or_default() += 1;
            continue;
        };
        let dir = match &dest.subdir {
            Some(subdir) => dir.join(subdir),
            None => dir,
        };
        let system = [r"Windows\System32", r"Windows\SysWOW64"]
            .iter()
            .any(|root| dir.starts_with(&GuestPath::new(root)));
        let in_package = dir.starts_with(&display.guest_dir);
        if in_package {
            continue;
        }
        // Kernel drivers directly in `drivers` run from HostDriverStore through their service
        // key; vendor folders below it (NVIDIA's `drivers\NVIDIA Corporation\Drs` profile
        // database) are data the user-mode driver looks for, so they are copied.
        let kernel_dir = dir
            .as_str()
            .eq_ignore_ascii_case(r"Windows\System32\drivers");
        if !system || kernel_dir {
            *elsewhere.entry(dir.as_str().to_owned()).or_default() += 1;
            continue;
        }
        let target = dir.join(&op.dest_name);
        if promotions
            .iter()
            .any(|p| p.target.as_str().eq_ignore_ascii_case(target.as_str()))
        {
            continue;
        }
        let Some(file) = display
            .files
            .iter()
            .find(|f| f.relative.eq_ignore_ascii_case(&op.source_name))
        else {
            notes.push(format!(
                "{}: line {} copies `{}` to {target}, but the package has no such file; skipped",
                display.inf_name, op.line, op.source_name
            ));
            continue;
        };
        promotions.push(Promotion {
            package: display.name.clone(),
            source_relative: file.relative.clone(),
            source: file.source.clone(),
            target,
            when_newer: false,
            origin: PromotionOrigin::Inf {
                section: op.section.clone().unwrap_or_else(|| "@file".to_owned()),
                line: op.line,
            },
        });
    }
    for (dir, count) in elsewhere {
        notes.push(format!(
            "the INF also copies {count} file(s) to {dir}; a GPU partition loads its driver from \
             HostDriverStore, so they are not copied"
        ));
    }
}

fn kernel_service(
    inf: &Inf,
    install: &str,
    display: &ResolvedPackage,
    notes: &mut Vec<String>,
) -> Option<KernelService> {
    for service in inf.services(install) {
        let (name, binary) = (service.name.clone(), service.binary.clone());
        let Some(path) = dirid::expand(&binary, &display.guest_dir) else {
            continue;
        };
        if !path.starts_with(&display.guest_dir) || !binary.to_ascii_lowercase().ends_with(".sys") {
            continue;
        }
        let relative = path.as_str()[display.guest_dir.as_str().len()..]
            .trim_start_matches('\\')
            .to_owned();
        if !display
            .files
            .iter()
            .any(|f| f.relative.eq_ignore_ascii_case(&relative))
        {
            notes.push(format!(
                "the service `{name}` runs `{binary}`, which is not in the package; its \
                 service key is not written"
            ));
            continue;
        }
        let mut values = Vec::new();
        for (value, number) in [
            ("Type", service.service_type),
            ("Start", service.start_type),
            ("ErrorControl", service.error_control),
        ] {
            if let Some(number) = number {
                values.push((value.to_owned(), RegData::Dword(number)));
            }
        }
        if let Some(group) = service.load_order_group {
            values.push(("Group".to_owned(), RegData::Sz(group)));
        }
        return Some(KernelService {
            name,
            values,
            guest_image_path: format!(r"\SystemRoot\{}", &path.as_str()["Windows\\".len()..]),
            binary_relative: relative,
        });
    }
    None
}

/// Finds the companion package `inf_name` whose `DriverVer` equals the display driver's.
fn find_companion(
    repository: &Path,
    inf_name: &str,
    driver_ver: Option<DriverVer>,
    notes: &mut Vec<String>,
) -> Result<Option<ResolvedPackage>, ResolveError> {
    let prefix = format!("{}_", inf_name.to_ascii_lowercase());
    let mut candidates = Vec::new();
    for entry in fs_err::read_dir(repository)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
        if name.starts_with(&prefix) && entry.file_type()?.is_dir() {
            candidates.push(entry.path());
        }
    }
    candidates.sort();
    let mut matching = Vec::new();
    for dir in candidates {
        let mut scratch = Vec::new();
        match read_package(&dir, PackageRole::Companion, &mut scratch) {
            Ok((package, _)) if driver_ver.is_some() && package.driver_ver == driver_ver => {
                notes.extend(scratch);
                matching.push(package);
            }
            Ok(_) => {}
            Err(error) => notes.push(format!("companion candidate skipped: {error}")),
        }
    }
    let wanted = driver_ver
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    match matching.len() {
        1 => Ok(matching.pop()),
        0 => {
            notes.push(format!(
                "no `{inf_name}` package in the driver store has DriverVer {wanted}; the \
                 companion is not copied (reinstall the GPU driver if OpenCL/Vulkan fail in the guest)"
            ));
            Ok(None)
        }
        count => {
            notes.push(format!(
                "{count} `{inf_name}` packages have DriverVer {wanted}; the first ({}) is copied",
                matching[0].name
            ));
            Ok(Some(matching.swap_remove(0)))
        }
    }
}

#[cfg(test)]
mod tests;
