//! Which boot loader and initramfs generator a root *uses*, not merely has installed.
//!
//! Installed tools are only candidates. A candidate counts as in use when its own outputs are
//! there (a `grub.cfg`, a `loader.conf` with entries, images named the way that generator names
//! them) and, on a running system, when the boot itself left a trace: GRUB puts `BOOT_IMAGE=`
//! on the command line, systemd-boot sets the `LoaderInfo` EFI variable. When two candidates
//! are equally plausible, detection stops and lists the evidence for each, so that the person
//! can pick one (`--bootloader`, `--initramfs`) instead of passthru guessing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use passthru_core::hostfs::{EntryKind, HostFs};
use passthru_core::runner::CommandSpec;
use serde::{Deserialize, Serialize};

use super::BootError;
use super::facts::HostFacts;
use super::kernels::KernelRelease;
use super::textedit;

/// Boot loaders passthru can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootloaderKind {
    /// GRUB configured through `/etc/default/grub` and regenerated with `grub-mkconfig`.
    Grub,
    /// GRUB with BLS entries, edited with `grubby` (Fedora, RHEL).
    Grubby,
    /// systemd-boot with entries in `loader/entries` (and `/etc/kernel/cmdline`).
    SystemdBoot,
    /// Pop!_OS's kernelstub, which writes systemd-boot entries from its own configuration.
    Kernelstub,
}

/// Initramfs generators passthru can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorKind {
    /// Debian's initramfs-tools (`update-initramfs`).
    InitramfsTools,
    /// dracut (Fedora, RHEL, openSUSE, Gentoo; Debian optionally).
    Dracut,
    /// Arch's mkinitcpio.
    Mkinitcpio,
    /// booster.
    Booster,
}

macro_rules! names {
    ($type:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $type {
            /// Every variant, in the order shown to people.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The name used on the command line and in messages.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $type {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|kind| kind.name() == text)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                        format!("unknown name `{text}`; expected one of {}", names.join(", "))
                    })
            }
        }
    };
}

names!(BootloaderKind {
    Grub => "grub",
    Grubby => "grubby",
    SystemdBoot => "systemd-boot",
    Kernelstub => "kernelstub",
});

names!(GeneratorKind {
    InitramfsTools => "initramfs-tools",
    Dracut => "dracut",
    Mkinitcpio => "mkinitcpio",
    Booster => "booster",
});

/// The detected boot loader and how it is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootloader {
    /// GRUB with `/etc/default/grub`.
    Grub {
        /// The files `grub-mkconfig` sources, in order (`/etc/default/grub`, then Debian's
        /// `/etc/default/grub.d/*.cfg`), those that exist.
        defaults: Vec<PathBuf>,
        /// The generated configuration that the firmware's GRUB reads.
        grub_cfg: PathBuf,
        /// The command that regenerates it.
        mkconfig: CommandSpec,
    },
    /// GRUB with BLS entries and grubby.
    Grubby {
        /// The BLS entries (`/boot/loader/entries/*.conf`).
        entries: Vec<PathBuf>,
        /// Other files grubby may rewrite (saved so undo restores them byte for byte).
        also_touches: Vec<PathBuf>,
    },
    /// systemd-boot.
    SystemdBoot {
        /// The loader directory (`/boot/efi/loader`, `/efi/loader`, `/boot/loader`).
        loader_dir: PathBuf,
        /// Entries passthru edits (every Linux entry except fallback ones).
        entries: Vec<PathBuf>,
        /// Entries left alone on purpose, so a boot without vfio-pci stays available.
        fallback_entries: Vec<PathBuf>,
        /// `/etc/kernel/cmdline`, when present (used by `kernel-install` and UKI builders for
        /// kernels installed later).
        kernel_cmdline: Option<PathBuf>,
    },
    /// kernelstub.
    Kernelstub {
        /// `/etc/kernelstub/configuration`.
        config: PathBuf,
        /// Entries kernelstub writes (`Pop_OS-current.conf`, `Pop_OS-oldkern.conf`).
        entries: Vec<PathBuf>,
    },
}

impl Bootloader {
    /// Its kind.
    pub fn kind(&self) -> BootloaderKind {
        match self {
            Self::Grub { .. } => BootloaderKind::Grub,
            Self::Grubby { .. } => BootloaderKind::Grubby,
            Self::SystemdBoot { .. } => BootloaderKind::SystemdBoot,
            Self::Kernelstub { .. } => BootloaderKind::Kernelstub,
        }
    }
}

/// One initramfs image and the kernel it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelImage {
    /// The kernel.
    pub kernel: KernelRelease,
    /// Host-absolute image path.
    pub image: PathBuf,
}

/// The detected initramfs generator and its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    /// Which one.
    pub kind: GeneratorKind,
    /// The images it builds that exist now, one or more per kernel.
    pub images: Vec<KernelImage>,
    /// Kernels that have no image from this generator (left alone; see the notes).
    pub kernels_without_image: Vec<KernelRelease>,
    /// mkinitcpio: whether `/etc/mkinitcpio.conf.d/` exists (drop-ins are supported).
    pub dropin_dir: bool,
    /// mkinitcpio presets that build unified kernel images (cannot be listed).
    pub uki_images: Vec<PathBuf>,
}

/// What detection found, with the evidence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The boot loader in use.
    pub bootloader: Bootloader,
    /// Why passthru thinks so.
    pub bootloader_evidence: Vec<String>,
    /// The initramfs generator in use.
    pub generator: Generator,
    /// Why passthru thinks so.
    pub generator_evidence: Vec<String>,
}

/// Choices made on the command line, or by an earlier assign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectOptions {
    /// `--bootloader`.
    pub bootloader: Option<BootloaderKind>,
    /// `--initramfs`.
    pub generator: Option<GeneratorKind>,
    /// The boot loader passthru configured before (used when `bootloader` is not given).
    pub recorded_bootloader: Option<BootloaderKind>,
    /// The generator passthru configured before (used when `generator` is not given).
    pub recorded_generator: Option<GeneratorKind>,
}

/// Why a kind was chosen without looking at the evidence.
fn forced<K>(explicit: Option<K>, recorded: Option<K>) -> Option<(K, &'static str)> {
    explicit
        .map(|kind| (kind, "chosen on the command line"))
        .or_else(|| {
            recorded.map(|kind| {
                (
                    kind,
                    "configured by passthru before (/etc/passthru/persistent.json)",
                )
            })
        })
}

/// Looks for a program where distributions install them; returns its host path.
pub fn find_tool(fs: &dyn HostFs, name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| fs.exists(path))
}

fn exists_any(fs: &dyn HostFs, paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|path| fs.exists(path))
}

/// Regular files in `dir` whose names end with `suffix`, sorted.
pub fn files_in(fs: &dyn HostFs, dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fs.read_dir(dir)
        .map(|entries| {
            entries
                .into_iter()
                .filter(|entry| entry.kind == EntryKind::File && entry.name.ends_with(suffix))
                .map(|entry| dir.join(entry.name))
                .collect()
        })
        .unwrap_or_default()
}

struct Candidate<T> {
    value: T,
    evidence: Vec<String>,
    /// Evidence that this boot actually went through it (not only that its files exist).
    booted: bool,
    /// Whether the images it would produce are the ones the boot loader references.
    referenced: bool,
}

/// Detects the boot loader and initramfs generator under the root.
pub fn detect(
    fs: &dyn HostFs,
    facts: &HostFacts,
    options: DetectOptions,
) -> Result<Detection, BootError> {
    let (bootloader, bootloader_evidence) = choose(
        "boot loader",
        bootloader_candidates(fs, facts),
        forced(options.bootloader, options.recorded_bootloader),
        Bootloader::kind,
        BootloaderKind::ALL.iter().map(|k| k.name()),
    )?;
    let referenced = referenced_images(fs, &bootloader);
    let mut candidates = generator_candidates(fs, facts);
    for candidate in &mut candidates {
        let hits: Vec<String> = candidate
            .value
            .images
            .iter()
            .filter_map(|image| image.image.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| referenced.contains(name))
            .collect();
        if !hits.is_empty() {
            candidate.referenced = true;
            candidate.evidence.push(format!(
                "the boot loader's entries load {}",
                hits.join(", ")
            ));
        }
    }
    let (generator, generator_evidence) = choose(
        "initramfs generator",
        candidates,
        forced(options.generator, options.recorded_generator),
        |generator: &Generator| generator.kind,
        GeneratorKind::ALL.iter().map(|k| k.name()),
    )?;
    Ok(Detection {
        bootloader,
        bootloader_evidence,
        generator,
        generator_evidence,
    })
}

fn choose<T, K: PartialEq + fmt::Display + Copy>(
    what: &'static str,
    candidates: Vec<Candidate<T>>,
    forced: Option<(K, &'static str)>,
    kind_of: impl Fn(&T) -> K,
    supported: impl Iterator<Item = &'static str>,
) -> Result<(T, Vec<String>), BootError> {
    if let Some((forced, why)) = forced {
        return candidates
            .into_iter()
            .find(|candidate| kind_of(&candidate.value) == forced)
            .map(|candidate| {
                let mut evidence = candidate.evidence;
                evidence.insert(0, why.to_owned());
                (candidate.value, evidence)
            })
            .ok_or_else(|| BootError::NotFound {
                what,
                detail: format!("{forced} was asked for, but its configuration is not there"),
            });
    }
    let supported: Vec<&str> = supported.collect();
    if candidates.is_empty() {
        return Err(BootError::NotFound {
            what,
            detail: format!("looked for {}", supported.join(", ")),
        });
    }
    // Narrow down by the strongest evidence that is present at all.
    let strongest = |c: &Candidate<T>| (c.booted, c.referenced);
    let best = candidates.iter().map(strongest).max().unwrap_or_default();
    let mut best_candidates: Vec<Candidate<T>> = candidates
        .into_iter()
        .filter(|candidate| strongest(candidate) == best)
        .collect();
    if best_candidates.len() == 1 {
        let candidate = best_candidates.remove(0);
        return Ok((candidate.value, candidate.evidence));
    }
    let lines: Vec<String> = best_candidates
        .iter()
        .map(|candidate| {
            format!(
                "  - {}: {}",
                kind_of(&candidate.value),
                candidate.evidence.join("; ")
            )
        })
        .collect();
    Err(BootError::Ambiguous {
        what,
        candidates: lines.join("\n"),
    })
}

fn bootloader_candidates(fs: &dyn HostFs, facts: &HostFacts) -> Vec<Candidate<Bootloader>> {
    let mut candidates = Vec::new();
    let booted_by_grub = facts
        .running_cmdline
        .as_deref()
        .is_some_and(|line| line.contains("BOOT_IMAGE="));
    let systemd_boot_info = systemd_boot_loader_info(fs);

    let grub_default = PathBuf::from("/etc/default/grub");
    let grub_cfg = exists_any(fs, &["/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"]);
    let bls_entries = files_in(fs, Path::new("/boot/loader/entries"), ".conf");
    let grub_defaults_text = fs
        .read(&grub_default)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .ok();
    let bls_enabled = grub_defaults_text.as_deref().is_some_and(|text| {
        textedit::last_assignment(text, "GRUB_ENABLE_BLSCFG")
            .is_some_and(|found| &text[found.value] == "true")
    });
    if let (Some(grub_cfg), Some(_)) = (&grub_cfg, &grub_defaults_text) {
        let mut evidence = vec![format!(
            "{} and {} exist",
            grub_default.display(),
            grub_cfg.display()
        )];
        if booted_by_grub {
            evidence.push("this boot's command line has BOOT_IMAGE= (set by GRUB)".into());
        }
        let grubby = find_tool(fs, "grubby");
        if bls_enabled && !bls_entries.is_empty() && grubby.is_some() {
            evidence.push(format!(
                "GRUB_ENABLE_BLSCFG=true with {} BLS entries in /boot/loader/entries and grubby installed",
                bls_entries.len()
            ));
            let also_touches = [
                "/etc/default/grub",
                "/etc/kernel/cmdline",
                "/boot/grub2/grubenv",
                "/boot/grub/grubenv",
            ]
            .iter()
            .map(PathBuf::from)
            .filter(|path| fs.exists(path))
            .collect();
            candidates.push(Candidate {
                value: Bootloader::Grubby {
                    entries: bls_entries.clone(),
                    also_touches,
                },
                evidence,
                booted: booted_by_grub,
                referenced: false,
            });
        } else if let Some(mkconfig) = grub_mkconfig(fs, grub_cfg) {
            evidence.push(format!("regenerated with `{mkconfig}`"));
            let mut defaults = vec![grub_default.clone()];
            if fs.exists(Path::new("/etc/default/grub.d")) {
                defaults.extend(files_in(fs, Path::new("/etc/default/grub.d"), ".cfg"));
            }
            candidates.push(Candidate {
                value: Bootloader::Grub {
                    defaults,
                    grub_cfg: grub_cfg.clone(),
                    mkconfig,
                },
                evidence,
                booted: booted_by_grub,
                referenced: false,
            });
        }
    }

    let kernelstub_config = PathBuf::from("/etc/kernelstub/configuration");
    let kernelstub = fs.exists(&kernelstub_config) && find_tool(fs, "kernelstub").is_some();
    for loader_dir in ["/boot/efi/loader", "/efi/loader", "/boot/loader"] {
        let loader_dir = PathBuf::from(loader_dir);
        if !fs.exists(&loader_dir.join("loader.conf")) {
            continue;
        }
        let all_entries = files_in(fs, &loader_dir.join("entries"), ".conf");
        let (fallback_entries, entries): (Vec<PathBuf>, Vec<PathBuf>) =
            all_entries.into_iter().partition(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().contains("fallback"))
            });
        let mut evidence = vec![format!(
            "{}/loader.conf with {} entries",
            loader_dir.display(),
            entries.len() + fallback_entries.len()
        )];
        if let Some(info) = &systemd_boot_info {
            evidence.push(format!(
                "this boot was started by {info} (LoaderInfo EFI variable)"
            ));
        }
        let booted = systemd_boot_info.is_some();
        if kernelstub && loader_dir.starts_with("/boot/efi") {
            evidence.insert(
                0,
                format!(
                    "{} exists and kernelstub is installed",
                    kernelstub_config.display()
                ),
            );
            candidates.push(Candidate {
                value: Bootloader::Kernelstub {
                    config: kernelstub_config.clone(),
                    entries,
                },
                evidence,
                booted,
                referenced: false,
            });
        } else {
            let kernel_cmdline =
                Some(PathBuf::from("/etc/kernel/cmdline")).filter(|path| fs.exists(path));
            candidates.push(Candidate {
                value: Bootloader::SystemdBoot {
                    loader_dir,
                    entries,
                    fallback_entries,
                    kernel_cmdline,
                },
                evidence,
                booted,
                referenced: false,
            });
        }
    }
    candidates
}

/// The regeneration command for `grub_cfg`: Debian's `update-grub` when present, otherwise
/// `grub-mkconfig`/`grub2-mkconfig -o grub.cfg`.
fn grub_mkconfig(fs: &dyn HostFs, grub_cfg: &Path) -> Option<CommandSpec> {
    let output = grub_cfg.to_string_lossy().into_owned();
    if find_tool(fs, "update-grub").is_some() && grub_cfg == Path::new("/boot/grub/grub.cfg") {
        return Some(CommandSpec::new("update-grub", Vec::<String>::new()));
    }
    ["grub-mkconfig", "grub2-mkconfig"]
        .iter()
        .find(|tool| find_tool(fs, tool).is_some())
        .map(|tool| CommandSpec::new(*tool, ["-o".to_owned(), output]))
}

/// systemd-boot's `LoaderInfo` EFI variable (4 attribute bytes, then UTF-16LE text).
fn systemd_boot_loader_info(fs: &dyn HostFs) -> Option<String> {
    let bytes = fs
        .read(Path::new(
            "/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f",
        ))
        .ok()?;
    let units: Vec<u16> = bytes
        .get(4..)?
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|unit| *unit != 0)
        .collect();
    let text = String::from_utf16_lossy(&units);
    text.to_ascii_lowercase()
        .contains("systemd-boot")
        .then_some(text)
}

fn generator_candidates(fs: &dyn HostFs, facts: &HostFacts) -> Vec<Candidate<Generator>> {
    let mut candidates = Vec::new();
    let per_kernel = |patterns: &[&str]| -> (Vec<KernelImage>, Vec<KernelRelease>) {
        let mut images = Vec::new();
        let mut missing = Vec::new();
        for kernel in &facts.kernels {
            let found = patterns
                .iter()
                .map(|pattern| PathBuf::from(pattern.replace("{kver}", &kernel.release.0)))
                .find(|path| fs.exists(path));
            match found {
                Some(image) => images.push(KernelImage {
                    kernel: kernel.release.clone(),
                    image,
                }),
                None => missing.push(kernel.release.clone()),
            }
        }
        (images, missing)
    };
    let plain = |kind, images, kernels_without_image| Generator {
        kind,
        images,
        kernels_without_image,
        dropin_dir: false,
        uki_images: Vec::new(),
    };

    if find_tool(fs, "update-initramfs").is_some()
        && fs.exists(Path::new("/etc/initramfs-tools/initramfs.conf"))
    {
        let (images, missing) = per_kernel(&["/boot/initrd.img-{kver}"]);
        let mut evidence =
            vec!["update-initramfs and /etc/initramfs-tools/initramfs.conf exist".into()];
        if !images.is_empty() {
            evidence.push(format!(
                "/boot/initrd.img-* exist for {} kernel(s)",
                images.len()
            ));
        }
        candidates.push(Candidate {
            booted: false,
            referenced: false,
            value: plain(GeneratorKind::InitramfsTools, images, missing),
            evidence,
        });
    }
    if find_tool(fs, "dracut").is_some()
        && (fs.exists(Path::new("/etc/dracut.conf")) || fs.exists(Path::new("/etc/dracut.conf.d")))
    {
        let (images, missing) =
            per_kernel(&["/boot/initramfs-{kver}.img", "/boot/initrd.img-{kver}"]);
        let mut evidence = vec!["dracut and its configuration exist".into()];
        if !images.is_empty() {
            evidence.push(format!("its images exist for {} kernel(s)", images.len()));
        }
        candidates.push(Candidate {
            booted: false,
            referenced: false,
            value: plain(GeneratorKind::Dracut, images, missing),
            evidence,
        });
    }
    if find_tool(fs, "mkinitcpio").is_some() && fs.exists(Path::new("/etc/mkinitcpio.conf")) {
        let (images, uki_images, missing) = mkinitcpio_images(fs, facts);
        let mut evidence = vec!["mkinitcpio and /etc/mkinitcpio.conf exist".into()];
        if !images.is_empty() || !uki_images.is_empty() {
            evidence.push(format!(
                "its presets in /etc/mkinitcpio.d name {} images",
                images.len() + uki_images.len()
            ));
        }
        candidates.push(Candidate {
            booted: false,
            referenced: false,
            value: Generator {
                kind: GeneratorKind::Mkinitcpio,
                images,
                kernels_without_image: missing,
                dropin_dir: fs.exists(Path::new("/etc/mkinitcpio.conf.d")),
                uki_images,
            },
            evidence,
        });
    }
    if find_tool(fs, "booster").is_some() {
        let mut images = Vec::new();
        let mut missing = Vec::new();
        for kernel in &facts.kernels {
            let name = kernel
                .pkgbase
                .clone()
                .unwrap_or_else(|| kernel.release.0.clone());
            let image = PathBuf::from(format!("/boot/booster-{name}.img"));
            if fs.exists(&image) {
                images.push(KernelImage {
                    kernel: kernel.release.clone(),
                    image,
                });
            } else {
                missing.push(kernel.release.clone());
            }
        }
        if !images.is_empty() {
            candidates.push(Candidate {
                booted: false,
                referenced: false,
                evidence: vec![format!(
                    "booster and {} images /boot/booster-*.img",
                    images.len()
                )],
                value: plain(GeneratorKind::Booster, images, missing),
            });
        }
    }
    candidates
}

/// mkinitcpio's images from its presets: `PRESETS=(…)` with `<preset>_image=` or
/// `<preset>_uki=`; the preset file's name is the kernel's `pkgbase`.
fn mkinitcpio_images(
    fs: &dyn HostFs,
    facts: &HostFacts,
) -> (Vec<KernelImage>, Vec<PathBuf>, Vec<KernelRelease>) {
    let mut images = Vec::new();
    let mut uki_images = Vec::new();
    let mut covered = Vec::new();
    for preset in files_in(fs, Path::new("/etc/mkinitcpio.d"), ".preset") {
        let Ok(bytes) = fs.read(&preset) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let pkgbase = preset
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kernel = facts
            .kernels
            .iter()
            .find(|kernel| kernel.pkgbase.as_deref() == Some(pkgbase.as_str()))
            .or_else(|| (facts.kernels.len() == 1).then(|| &facts.kernels[0]));
        let Some(kernel) = kernel else { continue };
        covered.push(kernel.release.clone());
        for name in preset_names(&text) {
            if let Some(path) = shell_value(&text, &format!("{name}_uki")) {
                uki_images.push(PathBuf::from(path));
            } else if let Some(path) = shell_value(&text, &format!("{name}_image")) {
                let image = PathBuf::from(path);
                if fs.exists(&image) {
                    images.push(KernelImage {
                        kernel: kernel.release.clone(),
                        image,
                    });
                }
            }
        }
    }
    let missing = facts
        .kernels
        .iter()
        .map(|kernel| kernel.release.clone())
        .filter(|release| !covered.contains(release))
        .collect();
    (images, uki_images, missing)
}

/// The literal value of a shell assignment, without quotes.
fn shell_value(text: &str, name: &str) -> Option<String> {
    let found = textedit::last_assignment(text, name)?;
    Some(text[found.value].to_owned())
}

/// `PRESETS=('default' 'fallback')` → `["default", "fallback"]`.
fn preset_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("PRESETS=("))
        .and_then(|rest| rest.split(')').next())
        .map(|inside| {
            inside
                .split_whitespace()
                .map(|word| word.trim_matches(|c| c == '\'' || c == '"').to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// File names of the initramfs images the boot loader's entries load, to tell which
/// generator's images are the ones in use.
fn referenced_images(fs: &dyn HostFs, bootloader: &Bootloader) -> Vec<String> {
    let files: Vec<PathBuf> = match bootloader {
        Bootloader::Grub { grub_cfg, .. } => vec![grub_cfg.clone()],
        Bootloader::Grubby { entries, .. } => entries.clone(),
        Bootloader::SystemdBoot {
            entries,
            fallback_entries,
            ..
        } => entries.iter().chain(fallback_entries).cloned().collect(),
        Bootloader::Kernelstub { .. } => Vec::new(),
    };
    let mut names = Vec::new();
    for file in files {
        let Ok(bytes) = fs.read(&file) else { continue };
        for line in String::from_utf8_lossy(&bytes).lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("initrd") {
                for word in words {
                    if let Some(name) = Path::new(word).file_name() {
                        names.push(name.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for kind in BootloaderKind::ALL {
            assert_eq!(kind.name().parse::<BootloaderKind>().unwrap(), *kind);
        }
        let error = "lilo".parse::<BootloaderKind>().unwrap_err();
        assert!(
            error.contains("grub, grubby, systemd-boot, kernelstub"),
            "{error}"
        );
        assert_eq!(
            "mkinitcpio".parse::<GeneratorKind>().unwrap(),
            GeneratorKind::Mkinitcpio
        );
    }

    #[test]
    fn presets_are_read_from_the_array() {
        assert_eq!(
            preset_names("PRESETS=('default' 'fallback')\n"),
            ["default", "fallback"]
        );
        assert!(preset_names("#PRESETS=('x')\n").is_empty());
    }
}
