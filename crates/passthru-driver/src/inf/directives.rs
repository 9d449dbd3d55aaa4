//! Typed views of the INF directives that decide which files a driver package has and where
//! Windows puts them.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use super::{Entry, Inf, InfWarning};

/// The `[Version]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// `Signature` (`$Windows NT$`, `$Chicago$`).
    pub signature: Option<String>,
    /// `Class` (`Display`, `MEDIA`).
    pub class: Option<String>,
    /// `ClassGuid` as written.
    pub class_guid: Option<String>,
    /// `Provider`, after string substitution.
    pub provider: Option<String>,
    /// `CatalogFile` (or the `CatalogFile.NT<arch>` variant asked for).
    pub catalog_file: Option<String>,
    /// `DriverVer`, when present and readable.
    pub driver_ver: Option<DriverVer>,
    /// Why `DriverVer` could not be read, when it is present but malformed or empty.
    pub driver_ver_problem: Option<String>,
}

/// `DriverVer = mm/dd/yyyy[,w.x.y.z]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DriverVer {
    /// Year (four digits).
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
    /// The four-part version, when given.
    pub version: Option<[u16; 4]>,
}

impl DriverVer {
    /// Parses the values of a `DriverVer` line: `["02/26/2021", "27.21.14.7005"]`.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let date = values.first().map(|v| v.trim()).unwrap_or("");
        if date.is_empty() {
            return Err("DriverVer is empty (an unstamped INF template?)".to_owned());
        }
        let parts: Vec<&str> = date.split(['/', '-']).collect();
        let [month, day, year] = parts[..] else {
            return Err(format!("DriverVer date `{date}` is not mm/dd/yyyy"));
        };
        let number = |text: &str| text.trim().parse::<u16>().ok();
        let (Some(month), Some(day), Some(year)) = (number(month), number(day), number(year))
        else {
            return Err(format!("DriverVer date `{date}` is not mm/dd/yyyy"));
        };
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1980 {
            return Err(format!("DriverVer date `{date}` is out of range"));
        }
        let version = match values.get(1).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => None,
            Some(text) => {
                let numbers: Option<Vec<u16>> = text.split('.').map(number).collect();
                match numbers.as_deref() {
                    Some(parts @ [_, ..]) if parts.len() <= 4 => {
                        let mut version = [0; 4];
                        version[..parts.len()].copy_from_slice(parts);
                        Some(version)
                    }
                    _ => return Err(format!("DriverVer version `{text}` is not w.x.y.z")),
                }
            }
        };
        Ok(Self {
            year,
            month: month as u8,
            day: day as u8,
            version,
        })
    }

    /// The version as `w.x.y.z`, or an empty string.
    pub fn version_string(&self) -> String {
        self.version
            .map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}"))
            .unwrap_or_default()
    }
}

impl fmt::Display for DriverVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = format!("{:04}-{:02}-{:02}", self.year, self.month, self.day);
        match self.version {
            Some(_) => write!(f, "{} ({date})", self.version_string()),
            None => f.write_str(&date),
        }
    }
}

/// A destination directory: a directory id plus an optional subdirectory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestDir {
    /// The dirid (11 = System32, 12 = drivers, 13 = the driver store package, ...).
    pub dirid: u32,
    /// Subdirectory below it, with backslashes.
    pub subdir: Option<String>,
}

/// One line of `[SourceDisksFiles]`: where a package file sits in the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceDiskFile {
    /// File name.
    pub name: String,
    /// Disk id (a key of `[SourceDisksNames]`).
    pub disk_id: String,
    /// Subdirectory below the disk's path.
    pub subdir: Option<String>,
    /// Line in the INF.
    pub line: usize,
}

/// A file the package declares, with its path inside the package directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageFileDecl {
    /// Path relative to the package root, with backslashes (`NvCamera\Color.fx`).
    pub relative_path: String,
    /// Line of the `SourceDisksFiles` entry (0 for the INF and catalog themselves).
    pub line: usize,
}

/// The install section chosen for a hardware id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallSection {
    /// The models section the match was found in (`NVIDIA_Devices.NTamd64.10.0...17098`).
    pub models_section: String,
    /// The undecorated install section named there (`Section047`).
    pub base: String,
    /// The section Windows would run (`Section047`, or `MyDevice_Install.NT`).
    pub name: String,
    /// The device description (the models line's key, after substitution).
    pub description: String,
}

/// One file copy Windows performs for an install section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyFileOp {
    /// File-list section, or `None` for the `CopyFiles = @file` form.
    pub section: Option<String>,
    /// Where the file goes, or `None` when `DestinationDirs` names no directory for it.
    pub dest_dir: Option<DestDir>,
    /// Name at the destination.
    pub dest_name: String,
    /// Name in the package (differs from `dest_name` in the rename form `dest,source`).
    pub source_name: String,
    /// `COPYFLG_*` flags.
    pub flags: u32,
    /// Line in the INF.
    pub line: usize,
}

impl Inf {
    /// The `[Version]` section; `arch` selects `CatalogFile.NT<arch>` when present.
    pub fn version(&self, arch: &str) -> VersionInfo {
        let Some(version) = self.section("Version") else {
            return VersionInfo {
                driver_ver_problem: Some("the INF has no [Version] section".to_owned()),
                ..VersionInfo::default()
            };
        };
        let value = |key: &str| version.first_value(key).map(str::to_owned);
        let mut info = VersionInfo {
            signature: value("Signature"),
            class: value("Class"),
            class_guid: value("ClassGuid"),
            provider: value("Provider"),
            catalog_file: value(&format!("CatalogFile.NT{arch}"))
                .or_else(|| value("CatalogFile.NT"))
                .or_else(|| value("CatalogFile")),
            ..VersionInfo::default()
        };
        match version.entries_for("DriverVer").next() {
            None => info.driver_ver_problem = Some("[Version] has no DriverVer".to_owned()),
            Some(entry) => match DriverVer::parse(&entry.values) {
                Ok(ver) => info.driver_ver = Some(ver),
                Err(problem) => info.driver_ver_problem = Some(problem),
            },
        }
        info
    }

    /// Where `DestinationDirs` sends the files of `file_list_section` (or its `DefaultDestDir`).
    pub fn destination_dir(&self, file_list_section: Option<&str>) -> Option<DestDir> {
        let dirs = self.section("DestinationDirs")?;
        let entry = file_list_section
            .and_then(|name| dirs.entries_for(name).next())
            .or_else(|| dirs.entries_for("DefaultDestDir").next())?;
        parse_dest_dir(entry)
    }

    /// `[SourceDisksFiles]` merged with `[SourceDisksFiles.<arch>]` (the decorated one wins).
    pub fn source_disks_files(&self, arch: &str) -> Vec<SourceDiskFile> {
        let mut files: Vec<SourceDiskFile> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for name in [
            "SourceDisksFiles".to_owned(),
            format!("SourceDisksFiles.{arch}"),
        ] {
            let Some(section) = self.section(&name) else {
                continue;
            };
            for entry in &section.entries {
                let Some(file) = entry.key.as_deref().filter(|k| !k.is_empty()) else {
                    continue;
                };
                let decl = SourceDiskFile {
                    name: file.to_owned(),
                    disk_id: entry.value(0).unwrap_or("").to_owned(),
                    subdir: entry.value(1).map(clean_subdir),
                    line: entry.line,
                };
                match by_name.get(&file.to_ascii_lowercase()) {
                    Some(&at) => files[at] = decl,
                    None => {
                        by_name.insert(file.to_ascii_lowercase(), files.len());
                        files.push(decl);
                    }
                }
            }
        }
        files
    }

    /// Every file the package carries, with its path inside the package directory: the
    /// `SourceDisksFiles` (placed under their disk's path and subdirectory), the INF itself
    /// (`inf_name`) and its catalog. Problems (an unknown disk id) are returned as warnings.
    pub fn package_files(
        &self,
        arch: &str,
        inf_name: &str,
    ) -> (Vec<PackageFileDecl>, Vec<InfWarning>) {
        let mut warnings = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        seen.insert(inf_name.to_ascii_lowercase());
        let mut files = vec![PackageFileDecl {
            relative_path: inf_name.to_owned(),
            line: 0,
        }];
        if let Some(catalog) = self.version(arch).catalog_file
            && seen.insert(catalog.to_ascii_lowercase())
        {
            files.push(PackageFileDecl {
                relative_path: catalog,
                line: 0,
            });
        }
        for file in self.source_disks_files(arch) {
            let disk_path = match self.disk_path(&file.disk_id, arch) {
                Some(path) => path,
                None => {
                    warnings.push(InfWarning::new(
                        file.line,
                        format!(
                            "`{}` names disk `{}`, which [SourceDisksNames] does not define; \
                             assuming the package root",
                            file.name, file.disk_id
                        ),
                    ));
                    None
                }
            };
            let relative_path = [disk_path, file.subdir.clone(), Some(file.name.clone())]
                .into_iter()
                .flatten()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("\\");
            if !seen.insert(relative_path.to_ascii_lowercase()) {
                continue;
            }
            files.push(PackageFileDecl {
                relative_path,
                line: file.line,
            });
        }
        (files, warnings)
    }

    /// The path of disk `disk_id` (fourth field of `[SourceDisksNames]`). `None` when the disk
    /// is not defined; `Some(None)` when it is defined without a path.
    fn disk_path(&self, disk_id: &str, arch: &str) -> Option<Option<String>> {
        let mut found = None;
        for name in [
            "SourceDisksNames".to_owned(),
            format!("SourceDisksNames.{arch}"),
        ] {
            if let Some(entry) = self
                .section(&name)
                .and_then(|section| section.entries_for(disk_id).next())
            {
                found = Some(entry.value(3).map(clean_subdir));
            }
        }
        found
    }

    /// Finds the install section for `hardware_id` (case-insensitive, e.g. the class key's
    /// `MatchingDeviceId`) in the models sections for `arch`, preferring the most specific
    /// target-OS decoration.
    pub fn install_section(&self, hardware_id: &str, arch: &str) -> Option<InstallSection> {
        let manufacturer = self.section("Manufacturer")?;
        for entry in &manufacturer.entries {
            let Some(base) = entry.value(0) else { continue };
            let mut candidates: Vec<(Vec<u32>, String)> = entry.values[1..]
                .iter()
                .filter(|decoration| decoration_matches(decoration, arch))
                .map(|decoration| {
                    (
                        decoration_version(decoration),
                        format!("{base}.{decoration}"),
                    )
                })
                .collect();
            candidates.sort_by(|a, b| b.0.cmp(&a.0));
            candidates.push((Vec::new(), base.to_owned()));
            for (_, models) in candidates {
                let Some(section) = self.section(&models) else {
                    continue;
                };
                for line in &section.entries {
                    let matches = line
                        .values
                        .iter()
                        .skip(1)
                        .any(|id| id.eq_ignore_ascii_case(hardware_id));
                    let Some(install) = line.value(0).filter(|_| matches) else {
                        continue;
                    };
                    return Some(InstallSection {
                        models_section: section.name.clone(),
                        base: install.to_owned(),
                        name: self.decorated_install_section(install, arch),
                        description: line.key.clone().unwrap_or_default(),
                    });
                }
            }
        }
        None
    }

    /// `base.NT<arch>`, else `base.NT`, else `base`: the section Windows runs for `base`.
    pub fn decorated_install_section(&self, base: &str, arch: &str) -> String {
        [format!("{base}.NT{arch}"), format!("{base}.NT")]
            .into_iter()
            .find_map(|name| self.section(&name).map(|s| s.name.clone()))
            .unwrap_or_else(|| base.to_owned())
    }

    /// The files an install section copies (`CopyFiles = section, @file, ...`), in order, with
    /// warnings for file-list sections that do not exist or have no destination.
    pub fn copy_files(&self, install_section: &str) -> (Vec<CopyFileOp>, Vec<InfWarning>) {
        let mut ops = Vec::new();
        let mut warnings = Vec::new();
        let Some(section) = self.section(install_section) else {
            warnings.push(InfWarning::new(
                0,
                format!("install section [{install_section}] does not exist"),
            ));
            return (ops, warnings);
        };
        for directive in section.entries_for("CopyFiles") {
            for target in directive.values.iter().filter(|v| !v.is_empty()) {
                if let Some(file) = target.strip_prefix('@') {
                    let dest_dir = self.destination_dir(None);
                    if dest_dir.is_none() {
                        warnings.push(no_destination(directive.line, target));
                    }
                    ops.push(CopyFileOp {
                        section: None,
                        dest_dir,
                        dest_name: file.to_owned(),
                        source_name: file.to_owned(),
                        flags: 0,
                        line: directive.line,
                    });
                    continue;
                }
                let Some(list) = self.section(target) else {
                    warnings.push(InfWarning::new(
                        directive.line,
                        format!(
                            "CopyFiles names [{target}], which does not exist; it copies nothing"
                        ),
                    ));
                    continue;
                };
                let dest_dir = self.destination_dir(Some(target));
                if dest_dir.is_none() && !list.entries.is_empty() {
                    warnings.push(no_destination(directive.line, target));
                }
                for file in &list.entries {
                    match copy_line(file) {
                        Some((dest_name, source_name, flags)) => ops.push(CopyFileOp {
                            section: Some(list.name.clone()),
                            dest_dir: dest_dir.clone(),
                            dest_name,
                            source_name,
                            flags,
                            line: file.line,
                        }),
                        None => warnings.push(InfWarning::new(
                            file.line,
                            format!("a line of [{}] names no file; skipped", list.name),
                        )),
                    }
                }
            }
        }
        (ops, warnings)
    }

    /// `CopyINF` names in `install_section`, or in every section when `None`.
    pub fn copy_infs(&self, install_section: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let sections: Vec<_> = match install_section {
            Some(name) => self.section(name).into_iter().collect(),
            None => self.sections().iter().collect(),
        };
        for section in sections {
            for entry in section.entries_for("CopyINF") {
                for name in entry.values.iter().filter(|v| !v.is_empty()) {
                    if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                        names.push(name.clone());
                    }
                }
            }
        }
        names
    }

    /// The services `install_section.Services` adds, with their service-install sections.
    pub fn services(&self, install_section: &str) -> Vec<ServiceInstall> {
        let Some(services) = self.section(&format!("{install_section}.Services")) else {
            return Vec::new();
        };
        services
            .entries_for("AddService")
            .filter_map(|entry| {
                let name = entry.value(0)?;
                let install = self.section(entry.value(2)?)?;
                let number = |key: &str| install.first_value(key).and_then(leading_number);
                Some(ServiceInstall {
                    name: name.to_owned(),
                    binary: install.first_value("ServiceBinary")?.to_owned(),
                    service_type: number("ServiceType"),
                    start_type: number("StartType"),
                    error_control: number("ErrorControl"),
                    load_order_group: install.first_value("LoadOrderGroup").map(str::to_owned),
                })
            })
            .collect()
    }

    /// `(service name, ServiceBinary)` of each service `install_section.Services` adds.
    pub fn service_binaries(&self, install_section: &str) -> Vec<(String, String)> {
        self.services(install_section)
            .into_iter()
            .map(|service| (service.name, service.binary))
            .collect()
    }
}

/// A service an install section adds (`AddService` plus its service-install section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInstall {
    /// Service name (`nvlddmkm`).
    pub name: String,
    /// `ServiceBinary` as written (`%13%\nvlddmkm.sys`).
    pub binary: String,
    /// `ServiceType` (1 = kernel driver).
    pub service_type: Option<u32>,
    /// `StartType` (3 = on demand).
    pub start_type: Option<u32>,
    /// `ErrorControl`.
    pub error_control: Option<u32>,
    /// `LoadOrderGroup` (`Video`).
    pub load_order_group: Option<String>,
}

/// `0x10;SERVICE_WIN32_OWN_PROCESS`-style values: the number before any trailing text.
fn leading_number(text: &str) -> Option<u32> {
    let token = text.split([';', ' ']).next().unwrap_or("");
    parse_number(token)
}

fn no_destination(line: usize, target: &str) -> InfWarning {
    InfWarning::new(
        line,
        format!(
            "[DestinationDirs] names no directory for `{target}` and has no DefaultDestDir; \
             its files have no known destination"
        ),
    )
}

/// A file-list line: `dest[,source[,temp[,flags]]]`.
fn copy_line(entry: &Entry) -> Option<(String, String, u32)> {
    if entry.key.is_some() {
        // `name = ...` is not file-list syntax; Windows would read the whole text as a name.
        return None;
    }
    let dest = entry.value(0)?.to_owned();
    let source = entry.value(1).unwrap_or(&dest).to_owned();
    let flags = entry.value(3).and_then(parse_number).unwrap_or(0);
    Some((dest, source, flags))
}

fn parse_dest_dir(entry: &Entry) -> Option<DestDir> {
    let dirid = entry.value(0).and_then(parse_number)?;
    Some(DestDir {
        dirid,
        subdir: entry.value(1).map(clean_subdir),
    })
}

/// Parses `0x00004000` or `16384`.
pub(crate) fn parse_number(text: &str) -> Option<u32> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn clean_subdir(text: &str) -> String {
    text.trim().trim_matches('\\').replace('/', "\\")
}

/// Whether a models decoration (`NTamd64.10.0...17098`, `NT`, `NT$ARCH$`) applies to `arch`.
fn decoration_matches(decoration: &str, arch: &str) -> bool {
    let platform = decoration
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let arch = arch.to_ascii_lowercase();
    platform == "nt" || platform == format!("nt{arch}") || platform == "nt$arch$"
}

/// The OS version numbers of a decoration, for preferring the most specific one.
fn decoration_version(decoration: &str) -> Vec<u32> {
    decoration
        .split('.')
        .skip(1)
        .map(|part| parse_number(part).unwrap_or(0))
        .collect()
}
