//! Human names for PCI ids, from the `pci.ids` database (the PCI ID Project, shipped by
//! distributions as hwdata).
//!
//! A host has a few dozen distinct ids but the database has about 40,000 lines, so the lookup
//! streams through the file once and keeps only the names that were asked for
//! ([`NamesQuery`]). The system copy is preferred; a compressed copy is bundled for hosts
//! without one (see `data/README.md` for its version and licence).

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pci::ClassCode;

/// The bundled copy of `pci.ids` (gzip).
const BUNDLED_GZ: &[u8] = include_bytes!("../../data/pci.ids.gz");

/// Where the system keeps `pci.ids`, in the order passthru looks (hwdata first, as lspci does).
pub const SYSTEM_LOCATIONS: [&str; 2] = ["/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids"];

/// The ids whose names are wanted.
#[derive(Debug, Clone, Default)]
pub struct NamesQuery {
    vendors: BTreeSet<u16>,
    devices: BTreeSet<(u16, u16)>,
    subsystems: BTreeSet<(u16, u16, u16, u16)>,
    classes: BTreeSet<u32>,
}

impl NamesQuery {
    /// An empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for the names of one function: its vendor and device, its subsystem (and the
    /// subsystem vendor), and its class.
    pub fn add(
        &mut self,
        vendor: Option<u16>,
        device: Option<u16>,
        subsystem: Option<(u16, u16)>,
        class: Option<ClassCode>,
    ) {
        if let Some(vendor) = vendor {
            self.vendors.insert(vendor);
            if let Some(device) = device {
                self.devices.insert((vendor, device));
                if let Some((sub_vendor, sub_device)) = subsystem {
                    self.vendors.insert(sub_vendor);
                    self.subsystems
                        .insert((vendor, device, sub_vendor, sub_device));
                }
            }
        }
        if let Some(class) = class {
            self.classes.insert(class.0 & 0x00ff_ffff);
        }
    }

    fn wants_class(&self, base: u8) -> bool {
        self.classes.iter().any(|class| (class >> 16) as u8 == base)
    }

    fn wants_subclass(&self, base: u8, sub: u8) -> bool {
        let prefix = (u32::from(base) << 8) | u32::from(sub);
        self.classes.iter().any(|class| class >> 8 == prefix)
    }
}

/// The names found for a [`NamesQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciNames {
    vendors: HashMap<u16, String>,
    devices: HashMap<(u16, u16), String>,
    subsystems: HashMap<(u16, u16, u16, u16), String>,
    base_classes: HashMap<u8, String>,
    subclasses: HashMap<(u8, u8), String>,
    prog_ifs: HashMap<(u8, u8, u8), String>,
}

impl PciNames {
    /// The vendor's name (`NVIDIA Corporation`).
    pub fn vendor(&self, vendor: u16) -> Option<&str> {
        self.vendors.get(&vendor).map(String::as_str)
    }

    /// The device's name (`GA102 [GeForce RTX 3090]`).
    pub fn device(&self, vendor: u16, device: u16) -> Option<&str> {
        self.devices.get(&(vendor, device)).map(String::as_str)
    }

    /// The subsystem's own name, listed under the device (`Virtio 1.0 network device`).
    pub fn subsystem(
        &self,
        vendor: u16,
        device: u16,
        sub_vendor: u16,
        sub_device: u16,
    ) -> Option<&str> {
        self.subsystems
            .get(&(vendor, device, sub_vendor, sub_device))
            .map(String::as_str)
    }

    /// The most specific class name: the subclass (`VGA compatible controller`), else the
    /// base class (`Display controller`).
    pub fn class(&self, class: ClassCode) -> Option<&str> {
        self.subclasses
            .get(&(class.base(), class.sub()))
            .or_else(|| self.base_classes.get(&class.base()))
            .map(String::as_str)
    }

    /// The programming interface's name (`NVM Express`), when the database has one.
    pub fn prog_if(&self, class: ClassCode) -> Option<&str> {
        self.prog_ifs
            .get(&(class.base(), class.sub(), class.prog_if()))
            .map(String::as_str)
    }
}

/// Which copy of the database the names came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NamesSource {
    /// A `pci.ids` file on this machine.
    File {
        /// Its path.
        path: PathBuf,
        /// Its `# Version:` line, when it has one.
        version: Option<String>,
    },
    /// The copy bundled with passthru.
    Bundled {
        /// Its `# Version:` line.
        version: Option<String>,
    },
    /// No database could be read (the bundled copy is damaged): ids are shown without names.
    None,
}

/// Reads the first readable `pci.ids` among `candidates`, or the bundled copy, and looks up
/// `query`.
pub fn load(candidates: &[PathBuf], query: &NamesQuery) -> (PciNames, NamesSource) {
    for path in candidates {
        if let Ok(bytes) = fs_err::read(path) {
            let version = database_version(&bytes);
            return (
                lookup(&bytes, query),
                NamesSource::File {
                    path: path.clone(),
                    version,
                },
            );
        }
    }
    match bundled() {
        Some(bytes) => {
            let version = database_version(&bytes);
            (lookup(&bytes, query), NamesSource::Bundled { version })
        }
        None => (PciNames::default(), NamesSource::None),
    }
}

/// The places to look for `pci.ids`: under `root` first (a mounted image carries its own),
/// then on this machine.
pub fn candidate_paths(root: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(root) = root.filter(|root| *root != Path::new("/")) {
        for location in SYSTEM_LOCATIONS {
            paths.push(root.join(location.trim_start_matches('/')));
        }
    }
    paths.extend(SYSTEM_LOCATIONS.iter().map(PathBuf::from));
    paths
}

/// The bundled database, decompressed.
pub fn bundled() -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(BUNDLED_GZ.len() * 5);
    flate2::read::GzDecoder::new(BUNDLED_GZ)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// The `# Version: 2023.04.10` line of a database.
pub fn database_version(database: &[u8]) -> Option<String> {
    lines(database)
        .take(40)
        .filter_map(|line| std::str::from_utf8(line).ok())
        .find_map(|line| {
            line.trim_start_matches('#')
                .trim()
                .strip_prefix("Version:")
                .map(|version| version.trim().to_owned())
        })
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

fn hex_u16(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..4)?).ok()?;
    u16::from_str_radix(text, 16).ok()
}

fn hex_u8(bytes: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(bytes.get(..2)?).ok()?;
    u8::from_str_radix(text, 16).ok()
}

/// The name after an id: `10de  NVIDIA Corporation` → `NVIDIA Corporation`.
fn name_after(line: &[u8], id_len: usize) -> Option<String> {
    let rest = line.get(id_len..)?;
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let name = String::from_utf8_lossy(rest).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// Where the scan is inside the database.
#[derive(Clone, Copy)]
enum Section {
    /// Inside a vendor's block; `wanted` when the query names that vendor.
    Vendor { vendor: u16, wanted: bool },
    /// Inside a class block (`C 03  Display controller`).
    Class { base: u8, wanted: bool },
    /// Before the first vendor, or after a line that could not be parsed.
    Unknown,
}

/// Looks up `query` in the text of a `pci.ids` database. Malformed lines are skipped.
pub fn lookup(database: &[u8], query: &NamesQuery) -> PciNames {
    let mut names = PciNames::default();
    let mut section = Section::Unknown;
    // The device (inside a wanted vendor) or subclass (inside a wanted class) whose children
    // (subsystems, programming interfaces) follow.
    let mut current_device: Option<u16> = None;
    let mut current_subclass: Option<u8> = None;
    for line in lines(database) {
        match line.first() {
            None | Some(b'#') => {}
            Some(b'\t') if line.get(1) == Some(&b'\t') => {
                let entry = &line[2..];
                match section {
                    Section::Vendor {
                        vendor,
                        wanted: true,
                    } => {
                        let Some(device) = current_device else {
                            continue;
                        };
                        let (Some(sub_vendor), Some(sub_device)) =
                            (hex_u16(entry), entry.get(5..).and_then(hex_u16))
                        else {
                            continue;
                        };
                        let key = (vendor, device, sub_vendor, sub_device);
                        if query.subsystems.contains(&key)
                            && let Some(name) = name_after(entry, 9)
                        {
                            names.subsystems.insert(key, name);
                        }
                    }
                    Section::Class { base, wanted: true } => {
                        let (Some(sub), Some(prog_if)) = (current_subclass, hex_u8(entry)) else {
                            continue;
                        };
                        let code =
                            (u32::from(base) << 16) | (u32::from(sub) << 8) | u32::from(prog_if);
                        if query.classes.contains(&code)
                            && let Some(name) = name_after(entry, 2)
                        {
                            names.prog_ifs.insert((base, sub, prog_if), name);
                        }
                    }
                    _ => {}
                }
            }
            Some(b'\t') => {
                let entry = &line[1..];
                match section {
                    Section::Vendor {
                        vendor,
                        wanted: true,
                    } => {
                        current_device = None;
                        let Some(device) = hex_u16(entry) else {
                            continue;
                        };
                        if query.devices.contains(&(vendor, device)) {
                            current_device = Some(device);
                            if let Some(name) = name_after(entry, 4) {
                                names.devices.insert((vendor, device), name);
                            }
                        }
                    }
                    Section::Class { base, wanted: true } => {
                        current_subclass = None;
                        let Some(sub) = hex_u8(entry) else {
                            continue;
                        };
                        if query.wants_subclass(base, sub) {
                            current_subclass = Some(sub);
                            if let Some(name) = name_after(entry, 2) {
                                names.subclasses.insert((base, sub), name);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Some(b'C') if line.get(1) == Some(&b' ') => {
                current_device = None;
                current_subclass = None;
                section = match line.get(2..).and_then(hex_u8) {
                    Some(base) => {
                        let wanted = query.wants_class(base);
                        if wanted && let Some(name) = name_after(&line[2..], 2) {
                            names.base_classes.insert(base, name);
                        }
                        Section::Class { base, wanted }
                    }
                    None => Section::Unknown,
                };
            }
            Some(_) => {
                current_device = None;
                current_subclass = None;
                section = match hex_u16(line) {
                    Some(vendor) => {
                        let wanted = query.vendors.contains(&vendor);
                        if wanted && let Some(name) = name_after(line, 4) {
                            names.vendors.insert(vendor, name);
                        }
                        Section::Vendor {
                            vendor,
                            wanted: wanted
                                && query
                                    .devices
                                    .range((vendor, 0)..=(vendor, u16::MAX))
                                    .next()
                                    .is_some(),
                        }
                    }
                    // Other sections (`X` for the device-independent subsystem ids, ...).
                    None => Section::Unknown,
                };
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\
#\tList of PCI ID's
#\tVersion: 2023.04.10
10de  NVIDIA Corporation
\t1244  GF116 [GeForce GTX 550 Ti]
\t\t1458 351a  GV-N550D5-1GI
\t1aef  GA102 High Definition Audio Controller
1af4  Red Hat, Inc.
\t1041  Virtio 1.0 network device
\t\t1af4 1041  Virtio 1.0 network device
# a comment inside
8086  Intel Corporation
\t0d57  Device 0d57 (made up)
C 02  Network controller
\t00  Ethernet controller
C 03  Display controller
\t00  VGA compatible controller
\t\t00  VGA controller
\t02  3D controller
C 06  Bridge
\t00  Host bridge
";

    type Wanted = (u16, u16, Option<(u16, u16)>, u32);

    fn query(entries: &[Wanted]) -> NamesQuery {
        let mut query = NamesQuery::new();
        for &(vendor, device, subsystem, class) in entries {
            query.add(
                Some(vendor),
                Some(device),
                subsystem,
                Some(ClassCode(class)),
            );
        }
        query
    }

    #[test]
    fn finds_vendor_device_subsystem_and_class_names() {
        let names = lookup(
            SAMPLE.as_bytes(),
            &query(&[
                (0x10de, 0x1244, Some((0x1458, 0x351a)), 0x030000),
                (0x1af4, 0x1041, Some((0x1af4, 0x1041)), 0x020000),
            ]),
        );
        assert_eq!(names.vendor(0x10de), Some("NVIDIA Corporation"));
        assert_eq!(
            names.device(0x10de, 0x1244),
            Some("GF116 [GeForce GTX 550 Ti]")
        );
        assert_eq!(
            names.subsystem(0x10de, 0x1244, 0x1458, 0x351a),
            Some("GV-N550D5-1GI")
        );
        assert_eq!(
            names.subsystem(0x1af4, 0x1041, 0x1af4, 0x1041),
            Some("Virtio 1.0 network device")
        );
        assert_eq!(
            names.class(ClassCode(0x030000)),
            Some("VGA compatible controller")
        );
        assert_eq!(names.prog_if(ClassCode(0x030000)), Some("VGA controller"));
        assert_eq!(
            names.class(ClassCode(0x020000)),
            Some("Ethernet controller")
        );
        // Only what was asked for is kept.
        assert_eq!(names.device(0x10de, 0x1aef), None);
        assert_eq!(names.vendor(0x8086), None);
        assert_eq!(names.class(ClassCode(0x060000)), None);
    }

    #[test]
    fn unknown_subclass_falls_back_to_the_base_class() {
        let names = lookup(
            SAMPLE.as_bytes(),
            &query(&[(0x10de, 0x1244, None, 0x038000)]),
        );
        assert_eq!(names.class(ClassCode(0x038000)), Some("Display controller"));
    }

    #[test]
    fn reads_the_version_line() {
        assert_eq!(
            database_version(SAMPLE.as_bytes()).as_deref(),
            Some("2023.04.10")
        );
    }

    #[test]
    fn bundled_copy_decompresses_and_knows_common_ids() {
        let bytes = bundled().expect("bundled pci.ids decompresses");
        let names = lookup(&bytes, &query(&[(0x10de, 0x2204, None, 0x030000)]));
        assert_eq!(names.vendor(0x10de), Some("NVIDIA Corporation"));
        assert_eq!(
            names.device(0x10de, 0x2204),
            Some("GA102 [GeForce RTX 3090]")
        );
        assert!(database_version(&bytes).is_some());
    }

    #[test]
    fn missing_system_files_fall_back_to_the_bundled_copy() {
        let (names, source) = load(
            &[PathBuf::from("/nonexistent/pci.ids")],
            &query(&[(0x8086, 0x0d57, None, 0x060000)]),
        );
        assert!(matches!(source, NamesSource::Bundled { .. }));
        assert_eq!(names.vendor(0x8086), Some("Intel Corporation"));
        assert_eq!(names.class(ClassCode(0x060000)), Some("Host bridge"));
    }

    #[test]
    fn candidate_paths_look_under_the_root_first() {
        let paths = candidate_paths(Some(Path::new("/mnt/image")));
        assert_eq!(
            paths[0],
            PathBuf::from("/mnt/image/usr/share/hwdata/pci.ids")
        );
        assert_eq!(paths.len(), 4);
        assert_eq!(candidate_paths(Some(Path::new("/"))).len(), 2);
    }

    proptest! {
        #[test]
        fn lookup_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = lookup(&bytes, &query(&[(0x3030, 0x3030, Some((0x3030, 0x3030)), 0x303030)]));
            let _ = database_version(&bytes);
        }

        #[test]
        fn lookup_never_panics_on_line_shaped_garbage(
            lines in proptest::collection::vec("(C |\t|\t\t)?[0-9a-f ]{0,10}[a-z ]{0,5}", 0..40)
        ) {
            let text = lines.join("\n");
            let _ = lookup(text.as_bytes(), &query(&[(0x1234, 0x5678, Some((0x1234, 0x0001)), 0x030000)]));
        }
    }
}
