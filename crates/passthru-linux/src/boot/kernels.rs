//! Installed kernels and their modules, read from a root file system: which kernels have a
//! modules directory *and* an image (leftover module directories of removed kernels do not
//! count), which modules each one has (`modules.dep`), has built in (`modules.builtin`), and
//! which drivers claim a device (`modules.alias`), and whether its Intel IOMMU is on by default
//! (`CONFIG_INTEL_IOMMU_DEFAULT_ON` in `/boot/config-VERSION`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::{EntryKind, HostFs};
use serde::{Deserialize, Serialize};

/// A kernel release string (`6.1.0-28-amd64`, `6.12.10-arch1-1`, `6.11.4-301.fc41.x86_64`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KernelRelease(pub String);

impl KernelRelease {
    /// The leading `major.minor`, when the release starts with them.
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let mut numbers = self
            .0
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(str::parse::<u32>);
        let major = numbers.next()?.ok()?;
        let minor = numbers.next()?.ok()?;
        Some((major, minor))
    }

    /// Whether this kernel is older than `major.minor` (unknown versions count as not older).
    pub fn older_than(&self, major: u32, minor: u32) -> bool {
        self.major_minor()
            .is_some_and(|version| version < (major, minor))
    }
}

impl fmt::Display for KernelRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a module exists for a kernel, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleStatus {
    /// A loadable module at this path (relative to the modules directory).
    Loadable(String),
    /// Built into the kernel image.
    Builtin,
    /// Neither.
    Missing,
}

/// What a kernel's module index files say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleIndex {
    loadable: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
    aliases: Vec<(String, String)>,
    /// Whether `modules.dep` was found (without it nothing can be said).
    pub indexed: bool,
}

impl ModuleIndex {
    /// Reads `modules.dep`, `modules.builtin` and `modules.alias` from a modules directory.
    /// Missing files leave the corresponding part empty.
    pub fn read(fs: &dyn HostFs, modules_dir: &Path) -> Self {
        let mut index = Self::default();
        if let Ok(dep) = fs.read(&modules_dir.join("modules.dep")) {
            index.indexed = true;
            for line in String::from_utf8_lossy(&dep).lines() {
                let path = line.split(':').next().unwrap_or("").trim();
                if let Some(name) = module_name_from_path(path) {
                    index.loadable.insert(name, path.to_owned());
                }
            }
        }
        if let Ok(builtin) = fs.read(&modules_dir.join("modules.builtin")) {
            for line in String::from_utf8_lossy(&builtin).lines() {
                if let Some(name) = module_name_from_path(line.trim()) {
                    index.builtin.insert(name);
                }
            }
        }
        if let Ok(aliases) = fs.read(&modules_dir.join("modules.alias")) {
            for line in String::from_utf8_lossy(&aliases).lines() {
                let mut words = line.split_whitespace();
                if let (Some("alias"), Some(pattern), Some(module)) =
                    (words.next(), words.next(), words.next())
                    && pattern.starts_with("pci:")
                {
                    index
                        .aliases
                        .push((pattern.to_owned(), normalize_module(module)));
                }
            }
        }
        index
    }

    /// Whether `name` (either spelling, `vfio-pci` or `vfio_pci`) exists for this kernel.
    pub fn status(&self, name: &str) -> ModuleStatus {
        let name = normalize_module(name);
        if let Some(path) = self.loadable.get(&name) {
            ModuleStatus::Loadable(path.clone())
        } else if self.builtin.contains(&name) {
            ModuleStatus::Builtin
        } else {
            ModuleStatus::Missing
        }
    }

    /// The modules whose PCI aliases match a device's `modalias`, sorted.
    pub fn drivers_for(&self, modalias: &str) -> Vec<String> {
        let mut drivers: Vec<String> = self
            .aliases
            .iter()
            .filter(|(pattern, _)| glob_match(pattern.as_bytes(), modalias.as_bytes()))
            .map(|(_, module)| module.clone())
            .collect();
        drivers.sort();
        drivers.dedup();
        drivers
    }
}

/// `kernel/drivers/vfio/pci/vfio-pci.ko.zst` → `vfio_pci`.
pub fn module_name_from_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = file.split(".ko").next()?;
    if stem.is_empty() || !file.contains(".ko") {
        return None;
    }
    Some(normalize_module(stem))
}

/// Module names are compared with `-` and `_` equal; the canonical spelling uses `_`.
pub fn normalize_module(name: &str) -> String {
    name.replace('-', "_")
}

/// `fnmatch(3)` subset used by `modules.alias`: `*`, `?` and `[…]` classes.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    backtrack = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, text[t])
                        && matched
                    {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                byte if byte == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match backtrack {
            Some((star, consumed)) => {
                p = star + 1;
                t = consumed + 1;
                backtrack = Some((star, consumed + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

/// Matches `byte` against the class starting at `pattern[start] == b'['`; returns whether it
/// matched and where the pattern continues, or `None` for an unterminated class.
fn class_match(pattern: &[u8], start: usize, byte: u8) -> Option<(bool, usize)> {
    let mut index = start + 1;
    let negate = matches!(pattern.get(index), Some(b'!' | b'^'));
    if negate {
        index += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&current) = pattern.get(index) {
        if current == b']' && !first {
            return Some((matched != negate, index + 1));
        }
        if pattern.get(index + 1) == Some(&b'-')
            && let Some(&high) = pattern.get(index + 2)
            && high != b']'
        {
            matched |= (current..=high).contains(&byte);
            index += 3;
        } else {
            matched |= current == byte;
            index += 1;
        }
        first = false;
    }
    None
}

/// An installed kernel: modules directory plus image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledKernel {
    /// Its release string.
    pub release: KernelRelease,
    /// Host-absolute modules directory (`/usr/lib/modules/6.1.0-28-amd64`).
    pub modules_dir: PathBuf,
    /// Host-absolute kernel image.
    pub image: PathBuf,
    /// Arch's `pkgbase` file (`linux`, `linux-lts`): names the mkinitcpio preset.
    pub pkgbase: Option<String>,
    /// `CONFIG_INTEL_IOMMU_DEFAULT_ON` from its config: `None` when no config was found.
    pub intel_iommu_default_on: Option<bool>,
    /// Its module index.
    pub modules: ModuleIndex,
}

/// Where kernels keep their modules; `/usr/lib/modules` wins on merged-/usr systems.
const MODULE_ROOTS: [&str; 2] = ["/usr/lib/modules", "/lib/modules"];

/// Every installed kernel under the root, sorted by release, and the module directories that
/// were skipped because no kernel image belongs to them.
pub fn installed_kernels(fs: &dyn HostFs) -> (Vec<InstalledKernel>, Vec<String>) {
    let mut seen = BTreeSet::new();
    let mut kernels = Vec::new();
    let mut skipped = Vec::new();
    for root in MODULE_ROOTS {
        let Ok(entries) = fs.read_dir(Path::new(root)) else {
            continue;
        };
        for entry in entries {
            if entry.kind != EntryKind::Dir || !seen.insert(entry.name.clone()) {
                continue;
            }
            let modules_dir = Path::new(root).join(&entry.name);
            let release = KernelRelease(entry.name.clone());
            let image = [
                PathBuf::from(format!("/boot/vmlinuz-{release}")),
                modules_dir.join("vmlinuz"),
            ]
            .into_iter()
            .find(|path| fs.exists(path));
            let Some(image) = image else {
                skipped.push(entry.name.clone());
                continue;
            };
            let pkgbase = fs
                .read_text(&modules_dir.join("pkgbase"))
                .ok()
                .filter(|text| !text.is_empty());
            let intel_iommu_default_on = [
                PathBuf::from(format!("/boot/config-{release}")),
                modules_dir.join("config"),
            ]
            .iter()
            .find_map(|path| fs.read(path).ok())
            .map(|config| intel_iommu_default_on(&String::from_utf8_lossy(&config)));
            kernels.push(InstalledKernel {
                modules: ModuleIndex::read(fs, &modules_dir),
                release,
                modules_dir,
                image,
                pkgbase,
                intel_iommu_default_on,
            });
        }
    }
    kernels.sort_by(|a, b| {
        a.release
            .major_minor()
            .cmp(&b.release.major_minor())
            .then_with(|| a.release.cmp(&b.release))
    });
    (kernels, skipped)
}

/// Reads `CONFIG_INTEL_IOMMU_DEFAULT_ON` from a kernel config (`=y` on, anything else off).
pub fn intel_iommu_default_on(config: &str) -> bool {
    config
        .lines()
        .any(|line| line.trim() == "CONFIG_INTEL_IOMMU_DEFAULT_ON=y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_compare_by_major_minor() {
        assert_eq!(
            KernelRelease("6.1.0-28-amd64".into()).major_minor(),
            Some((6, 1))
        );
        assert!(KernelRelease("6.1.0-28-amd64".into()).older_than(6, 2));
        assert!(!KernelRelease("6.12.10-arch1-1".into()).older_than(6, 2));
        assert!(!KernelRelease("weird".into()).older_than(6, 2));
    }

    #[test]
    fn module_names_from_paths() {
        assert_eq!(
            module_name_from_path("kernel/drivers/vfio/pci/vfio-pci.ko.zst").as_deref(),
            Some("vfio_pci")
        );
        assert_eq!(
            module_name_from_path("kernel/drivers/vfio/vfio.ko").as_deref(),
            Some("vfio")
        );
        assert_eq!(module_name_from_path("modules.order"), None);
    }

    #[test]
    fn alias_globs_match_like_fnmatch() {
        let alias = b"pci:v00001002d0000731Fsv*sd*bc*sc*i*";
        let device = b"pci:v00001002d0000731Fsv00001458sd00002316bc03sc00i00";
        assert!(glob_match(alias, device));
        assert!(!glob_match(
            alias,
            b"pci:v00001002d0000731Esv0sd0bc03sc00i00"
        ));
        assert!(glob_match(
            b"pci:v00008086d*sv*sd*bc03sc[08]0i*",
            b"pci:v00008086d00003E92sv0sd0bc03sc00i00"
        ));
        assert!(!glob_match(
            b"pci:v00008086d*sv*sd*bc03sc[!0]0i*",
            b"pci:v00008086d00003E92sv0sd0bc03sc00i00"
        ));
        assert!(glob_match(b"a?c*", b"abcdef"));
        assert!(!glob_match(b"[a", b"a"));
    }

    #[test]
    fn config_flag_is_read() {
        assert!(intel_iommu_default_on(
            "CONFIG_INTEL_IOMMU=y\nCONFIG_INTEL_IOMMU_DEFAULT_ON=y\n"
        ));
        assert!(!intel_iommu_default_on(
            "# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\n"
        ));
    }

    proptest::proptest! {
        #[test]
        fn module_paths_never_panic(path in "\\PC{0,40}") {
            if let Some(name) = module_name_from_path(&path) {
                proptest::prop_assert!(!name.is_empty() && !name.contains('-'));
            }
        }

        #[test]
        fn glob_never_panics(pattern in "[a-z*?\\[\\]!-]{0,12}", text in "[a-z]{0,12}") {
            let _ = glob_match(pattern.as_bytes(), text.as_bytes());
        }
    }
}
