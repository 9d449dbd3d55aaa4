//! The initramfs part of a plan: what each generator needs so that vfio-pci (and, when
//! binding by address, passthru's udev rule) is inside every image, the rebuild commands for
//! every installed kernel, and the checks of each rebuilt image.

use std::collections::BTreeMap;
use std::path::Path;

use passthru_core::runner::CommandSpec;

use super::super::BootError;
use super::super::detect::{GeneratorKind, KernelImage};
use super::super::kernels::ModuleStatus;
use super::super::policy::Decisions;
use super::super::render;
use super::super::state::BindingMethod;
use super::super::step::{
    FileFormat, ImageCheck, ImageEntry, REBUILD_TIMEOUT, RunCommand, TOOL_TIMEOUT,
};
use super::super::textedit;
use super::{Files, Owned, PlanInput};

const INITRAMFS_TOOLS_MODULES: &str = "/etc/initramfs-tools/modules";
const MKINITCPIO_CONF: &str = "/etc/mkinitcpio.conf";
const BOOSTER_YAML: &str = "/etc/booster.yaml";
const BOOSTER_KEY: &str = "modules_force_load";

/// Generator configuration outcome.
#[derive(Debug, Default)]
pub(super) struct GeneratorOutcome {
    /// Items added to shared files, by place.
    pub added: BTreeMap<String, Vec<String>>,
    /// Explanations.
    pub notes: Vec<String>,
}

/// Rebuild commands and image checks.
#[derive(Debug, Default)]
pub(super) struct Rebuild {
    /// Commands, in order.
    pub commands: Vec<RunCommand>,
    /// One check per image.
    pub checks: Vec<ImageCheck>,
    /// Explanations.
    pub notes: Vec<String>,
}

fn by_address(decisions: &Decisions) -> bool {
    decisions.binding == BindingMethod::Address
}

/// Files the generator's configuration needs that passthru owns entirely.
pub(super) fn owned_files(
    input: PlanInput<'_>,
    decisions: &Decisions,
) -> Result<Vec<Owned>, BootError> {
    let generator = &input.detection.generator;
    let rule = by_address(decisions);
    let modules = &decisions.early_modules;
    Ok(match generator.kind {
        GeneratorKind::InitramfsTools => vec![(
            render::INITRAMFS_TOOLS_HOOK.to_owned(),
            rule.then(|| render::initramfs_tools_hook().into_bytes()),
            0o755,
            FileFormat::Shell,
            "copy the udev rule into the initramfs".to_owned(),
        )],
        GeneratorKind::Dracut => vec![(
            render::DRACUT_CONF.to_owned(),
            Some(render::dracut_conf(modules, rule).into_bytes()),
            0o644,
            FileFormat::Bash,
            "load the vfio modules early in the initramfs".to_owned(),
        )],
        GeneratorKind::Mkinitcpio if generator.dropin_dir => vec![(
            render::MKINITCPIO_DROPIN.to_owned(),
            Some(render::mkinitcpio_dropin(modules, rule).into_bytes()),
            0o644,
            FileFormat::Bash,
            "load the vfio modules early in the initramfs".to_owned(),
        )],
        GeneratorKind::Mkinitcpio => Vec::new(),
        GeneratorKind::Booster => {
            if rule {
                return Err(BootError::Refused(
                    "these devices share their ids with other devices, so they must be bound by \
                     address, and booster images run no udev rules; use mkinitcpio or dracut \
                     for this host, or bind at run time without --persistent"
                        .into(),
                ));
            }
            let exists = input.root.real_path(Path::new(BOOSTER_YAML)).exists();
            if exists && !recorded_owned(input, BOOSTER_YAML) {
                Vec::new()
            } else {
                vec![(
                    BOOSTER_YAML.to_owned(),
                    Some(format!("{BOOSTER_KEY}: {}\n", modules.join(",")).into_bytes()),
                    0o644,
                    FileFormat::Yaml,
                    "load the vfio modules early in the initramfs".to_owned(),
                )]
            }
        }
    })
}

/// Edits of generator files passthru shares with the user.
pub(super) fn plan_config(
    input: PlanInput<'_>,
    files: &mut Files<'_>,
    recorded: &BTreeMap<String, Vec<String>>,
    decisions: Option<&Decisions>,
) -> Result<GeneratorOutcome, BootError> {
    let mut outcome = GeneratorOutcome::default();
    let generator = &input.detection.generator;
    let modules = decisions
        .map(|d| d.early_modules.clone())
        .unwrap_or_default();
    match generator.kind {
        GeneratorKind::InitramfsTools => {
            let path = Path::new(INITRAMFS_TOOLS_MODULES);
            let text = files.text(path)?.unwrap_or_default();
            let user_text = textedit::remove_block(&text);
            let theirs: Vec<&str> = user_text
                .lines()
                .filter_map(|line| line.split_whitespace().next())
                .filter(|word| !word.starts_with('#'))
                .collect();
            let listed: Vec<String> = modules
                .iter()
                .filter(|module| !theirs.contains(&module.as_str()))
                .cloned()
                .collect();
            let new_text = if listed.is_empty() {
                user_text.clone()
            } else {
                textedit::set_block(&text, &listed)
            };
            if !listed.is_empty() {
                outcome
                    .added
                    .insert(INITRAMFS_TOOLS_MODULES.to_owned(), listed);
            }
            files.set(
                path,
                Some(new_text.into_bytes()),
                0o644,
                FileFormat::ModuleList,
                "modules the initramfs loads first",
            )?;
        }
        GeneratorKind::Mkinitcpio => {
            let path = Path::new(MKINITCPIO_CONF);
            let text = files.text(path)?.unwrap_or_default();
            if !hooks(&text).iter().any(|hook| hook == "modconf") {
                outcome.notes.push(
                    "mkinitcpio.conf has no `modconf` hook, so the images do not carry \
                     /etc/modprobe.d; vfio-pci still loads first from MODULES"
                        .into(),
                );
            }
            if generator.dropin_dir {
                // The drop-in carries everything; make sure no old block is left behind.
                files.set(
                    path,
                    Some(textedit::remove_block(&text).into_bytes()),
                    0o644,
                    FileFormat::Bash,
                    "passthru's settings moved to the drop-in",
                )?;
            } else {
                let new_text = match decisions {
                    Some(decisions) => textedit::set_block(
                        &text,
                        &render::mkinitcpio_lines(&modules, by_address(decisions)),
                    ),
                    None => textedit::remove_block(&text),
                };
                files.set(
                    path,
                    Some(new_text.into_bytes()),
                    0o644,
                    FileFormat::Bash,
                    "load the vfio modules early in the initramfs",
                )?;
            }
            for image in &generator.uki_images {
                outcome.notes.push(format!(
                    "{} is a unified kernel image: mkinitcpio -P rebuilds it with \
                     /etc/kernel/cmdline, but passthru cannot list its contents to check it",
                    image.display()
                ));
            }
        }
        GeneratorKind::Booster => {
            let path = Path::new(BOOSTER_YAML);
            if let Some(text) = files.text(path)?
                && !recorded_owned(input, BOOSTER_YAML)
            {
                let key = BOOSTER_YAML.to_owned();
                let recorded = recorded.get(&key).cloned().unwrap_or_default();
                let new_text = if let Some(range) = textedit::yaml_scalar(&text, BOOSTER_KEY)
                    && textedit::find_block(&text).is_none()
                {
                    let list = textedit::comma_list_remove(&text[range.clone()], &recorded);
                    let (list, added) = textedit::comma_list_add(&list, &modules);
                    let mut now_added: Vec<String> = recorded
                        .iter()
                        .filter(|m| modules.contains(m))
                        .cloned()
                        .collect();
                    now_added.extend(added);
                    if !now_added.is_empty() {
                        outcome.added.insert(key, now_added);
                    }
                    let mut edited = text.clone();
                    edited.replace_range(range, &list);
                    edited
                } else if modules.is_empty() {
                    textedit::remove_block(&text)
                } else {
                    outcome.added.insert(key, modules.clone());
                    textedit::set_block(&text, &[format!("{BOOSTER_KEY}: {}", modules.join(","))])
                };
                files.set(
                    path,
                    Some(new_text.into_bytes()),
                    0o644,
                    FileFormat::Yaml,
                    "load the vfio modules early in the initramfs",
                )?;
            }
        }
        GeneratorKind::Dracut => {}
    }
    Ok(outcome)
}

fn recorded_owned(input: PlanInput<'_>, path: &str) -> bool {
    input
        .state
        .is_some_and(|state| state.owned_files.iter().any(|p| p == Path::new(path)))
}

/// The words of `HOOKS=(…)` in mkinitcpio.conf.
fn hooks(text: &str) -> Vec<String> {
    let Some(start) = text
        .lines()
        .map(str::trim_start)
        .rfind(|line| line.starts_with("HOOKS=("))
    else {
        return Vec::new();
    };
    start
        .trim_start_matches("HOOKS=(")
        .split(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Rebuild commands for every image and the checks of the results.
pub(super) fn plan_rebuild(input: PlanInput<'_>, decisions: Option<&Decisions>) -> Rebuild {
    let generator = &input.detection.generator;
    let mut rebuild = Rebuild::default();
    for kernel in &generator.kernels_without_image {
        rebuild.notes.push(format!(
            "kernel {kernel} has no {} image, so there is nothing to rebuild for it; it will \
             boot without early vfio-pci binding",
            generator.kind
        ));
    }
    let command = |program: &str, args: Vec<String>| {
        CommandSpec::new(program, args).with_timeout(REBUILD_TIMEOUT)
    };
    match generator.kind {
        GeneratorKind::Mkinitcpio => {
            if !generator.images.is_empty() || !generator.uki_images.is_empty() {
                rebuild.commands.push(RunCommand {
                    purpose: "Rebuild every mkinitcpio preset (all kernels)".into(),
                    command: command("mkinitcpio", vec!["-P".into()]),
                    restores: Vec::new(),
                });
            }
        }
        kind => {
            for KernelImage { kernel, image } in &generator.images {
                let image_text = image.display().to_string();
                let spec = match kind {
                    GeneratorKind::InitramfsTools => command(
                        "update-initramfs",
                        vec!["-u".into(), "-k".into(), kernel.0.clone()],
                    ),
                    GeneratorKind::Dracut => command(
                        "dracut",
                        vec!["--force".into(), image_text, kernel.0.clone()],
                    ),
                    _ => command(
                        "booster",
                        vec![
                            "build".into(),
                            "--force".into(),
                            "--kernel-version".into(),
                            kernel.0.clone(),
                            image_text,
                        ],
                    ),
                };
                rebuild.commands.push(RunCommand {
                    purpose: format!("Rebuild the initramfs of kernel {kernel}"),
                    command: spec,
                    restores: Vec::new(),
                });
            }
        }
    }
    for KernelImage { kernel, image } in &generator.images {
        let (program, mut args) = match generator.kind {
            GeneratorKind::InitramfsTools => ("lsinitramfs", vec![]),
            GeneratorKind::Dracut => ("lsinitrd", vec![]),
            GeneratorKind::Mkinitcpio => ("lsinitcpio", vec![]),
            GeneratorKind::Booster => ("booster", vec!["ls".to_owned()]),
        };
        args.push(image.display().to_string());
        let carries_modprobe_d = match generator.kind {
            GeneratorKind::InitramfsTools => true,
            GeneratorKind::Mkinitcpio => {
                let conf = input.root.real_path(Path::new(MKINITCPIO_CONF));
                fs_err::read_to_string(conf)
                    .map(|text| hooks(&text).iter().any(|hook| hook == "modconf"))
                    .unwrap_or(false)
            }
            // dracut copies /etc/modprobe.d only in host-only mode; booster not at all.
            GeneratorKind::Dracut | GeneratorKind::Booster => false,
        };
        let modprobe = ImageEntry::File(render::MODPROBE_CONF.trim_start_matches('/').to_owned());
        let rule = ImageEntry::File(match generator.kind {
            // The hook copies it to /lib/udev/rules.d; dracut and mkinitcpio keep its path.
            GeneratorKind::InitramfsTools => "lib/udev/rules.d/05-passthru-vfio.rules".to_owned(),
            _ => render::UDEV_RULE.trim_start_matches('/').to_owned(),
        });
        let had_rule = input
            .state
            .is_some_and(|state| state.binding == BindingMethod::Address);
        let mut must_contain = Vec::new();
        let mut must_lack = Vec::new();
        match decisions {
            Some(decisions) => {
                let builtin = input
                    .facts
                    .kernels
                    .iter()
                    .find(|k| k.release == *kernel)
                    .is_some_and(|k| k.modules.status("vfio_pci") == ModuleStatus::Builtin);
                if !builtin {
                    must_contain.push(ImageEntry::Module("vfio_pci".into()));
                }
                if carries_modprobe_d && !decisions.softdeps.is_empty() {
                    must_contain.push(modprobe);
                }
                if by_address(decisions) {
                    must_contain.push(rule);
                } else if had_rule {
                    must_lack.push(rule);
                }
            }
            None => {
                if carries_modprobe_d {
                    must_lack.push(modprobe);
                }
                if had_rule {
                    must_lack.push(rule);
                }
            }
        }
        rebuild.checks.push(ImageCheck {
            image: image.clone(),
            kernel: kernel.0.clone(),
            list: CommandSpec::new(program, args).with_timeout(TOOL_TIMEOUT),
            must_contain,
            must_lack,
        });
    }
    rebuild
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_read_from_the_last_uncommented_array() {
        let text =
            "#    HOOKS=(base)\nHOOKS=(base udev autodetect modconf block filesystems fsck)\n";
        assert!(hooks(text).contains(&"modconf".to_owned()));
        assert!(
            hooks("HOOKS=(base systemd)\n")
                .iter()
                .all(|h| h != "modconf")
        );
    }
}
