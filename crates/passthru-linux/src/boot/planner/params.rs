//! Kernel parameters, per boot loader: where they live, what to add and remove, and how to
//! check the result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use passthru_core::runner::CommandSpec;

use super::super::BootError;
use super::super::cmdline;
use super::super::detect::Bootloader;
use super::super::policy::RETIRED_PARAMS;
use super::super::step::{EntriesCheck, FileFormat, RunCommand, Snapshot, TOOL_TIMEOUT};
use super::super::textedit::{self, Quoting};
use super::{Files, PlanInput};

/// What the kernel-parameter part of a plan consists of.
#[derive(Debug, Default)]
pub(super) struct ParamsOutcome {
    /// Parameters passthru added, by place.
    pub added: BTreeMap<String, Vec<String>>,
    /// Explanations.
    pub notes: Vec<String>,
    /// Tools that edit their own files (grubby, kernelstub).
    pub tool_runs: Vec<RunCommand>,
    /// Boot-menu regeneration (after the initramfs rebuild).
    pub rebuild: Vec<RunCommand>,
    /// Read-back checks.
    pub checks: Vec<EntriesCheck>,
}

/// The parameters to have at one place, given what the user has there already.
#[derive(Debug, Default, PartialEq, Eq)]
struct Resolved {
    /// Parameters passthru wants at this place after the operation.
    wanted: Vec<String>,
    /// Parameters passthru added earlier and now takes away.
    remove: Vec<String>,
}

/// The user's own parameters in `line`: everything except what passthru recorded as added.
fn users_part(line: &str, recorded: &[String]) -> String {
    cmdline::remove(line, recorded).0
}

/// Works out, for one place whose user-owned parameters (including text the user controls
/// that is combined with it, such as `GRUB_CMDLINE_LINUX`) are `users`, what to keep, add and
/// remove.
fn resolve(
    users: &str,
    place: &str,
    recorded: &[String],
    wanted: &[String],
    notes: &mut Vec<String>,
) -> Result<Resolved, BootError> {
    if !cmdline::quotes_balanced(users) {
        return Err(BootError::Refused(format!(
            "the kernel command line in {place} has a double quote that is never closed; \
             passthru will not edit it. Fix the quoting first"
        )));
    }
    let mut effective = Vec::new();
    for param in wanted {
        let name = cmdline::normalized_name(param);
        let theirs: Vec<&str> = cmdline::values_of(users, &name)
            .into_iter()
            .map(|value| value.unwrap_or(""))
            .collect();
        match name.as_str() {
            "intel_iommu" if theirs.iter().any(|v| v.split(',').any(|o| o == "off")) => {
                return Err(BootError::Refused(format!(
                    "{place} has intel_iommu=off, which turns off the IOMMU that vfio-pci needs; \
                     remove it (or change it to intel_iommu=on) and run passthru again"
                )));
            }
            "intel_iommu" if theirs.iter().any(|v| v.split(',').any(|o| o == "on")) => {
                notes.push(format!(
                    "{place}: intel_iommu=on is already set; kept as it is"
                ));
                continue;
            }
            "iommu" if theirs.contains(&"off") => {
                return Err(BootError::Refused(format!(
                    "{place} has iommu=off, which turns off the IOMMU that vfio-pci needs; \
                     remove it and run passthru again"
                )));
            }
            "iommu" if !theirs.is_empty() => {
                if !theirs
                    .iter()
                    .any(|value| Some(*value) == param.split_once('=').map(|p| p.1))
                {
                    notes.push(format!(
                        "{place}: keeps your iommu={} instead of adding {param}",
                        theirs.join(",")
                    ));
                }
                continue;
            }
            "vfio_pci.ids" if !theirs.is_empty() => {
                return Err(BootError::Refused(format!(
                    "{place} already has vfio-pci.ids={} that passthru did not add; passthru \
                     will not change your own binding. Remove it (passthru then binds the \
                     devices you name), or keep binding by hand",
                    theirs.join(",")
                )));
            }
            _ => {}
        }
        effective.push(param.clone());
    }
    for retired in RETIRED_PARAMS {
        if cmdline::contains(users, retired) {
            notes.push(format!(
                "{place}: {retired} is not a valid value and does nothing (the AMD IOMMU is on by \
                 default); passthru leaves your setting alone"
            ));
        }
    }
    let remove = recorded
        .iter()
        .filter(|param| !effective.contains(param))
        .cloned()
        .collect();
    Ok(Resolved {
        wanted: effective,
        remove,
    })
}

/// Applies a resolution to the editable text: removes, then adds. Returns the new text and
/// what passthru has added there afterwards.
fn edit(text: &str, recorded: &[String], resolved: &Resolved) -> (String, Vec<String>) {
    let (text, _) = cmdline::remove(text, &resolved.remove);
    let (text, newly) = cmdline::add(&text, &resolved.wanted);
    let added = resolved
        .wanted
        .iter()
        .filter(|param| {
            newly.contains(param) || (recorded.contains(param) && cmdline::contains(&text, param))
        })
        .cloned()
        .collect();
    (text, added)
}

pub(super) fn plan(
    input: PlanInput<'_>,
    files: &mut Files<'_>,
    recorded: &BTreeMap<String, Vec<String>>,
    wanted: &[String],
) -> Result<ParamsOutcome, BootError> {
    let mut outcome = ParamsOutcome::default();
    let recorded_at = |place: &str| recorded.get(place).cloned().unwrap_or_default();
    match &input.detection.bootloader {
        Bootloader::Grub {
            defaults,
            grub_cfg,
            mkconfig,
        } => {
            let changes_before = files.changes.len();
            grub(files, defaults, &recorded_at, wanted, &mut outcome)?;
            if files.changes.len() == changes_before {
                return Ok(outcome);
            }
            let snapshot = Snapshot {
                path: grub_cfg.clone(),
                before: files
                    .current(grub_cfg)?
                    .map(|(bytes, mode)| files.store(&bytes, mode)),
            };
            outcome.rebuild.push(RunCommand {
                purpose: format!("Regenerate the GRUB menu {}", grub_cfg.display()),
                command: mkconfig.clone().with_timeout(TOOL_TIMEOUT),
                restores: vec![snapshot],
            });
            // Only what passthru put into the GRUB defaults (not, say, its module lists).
            let removed: Vec<String> = defaults
                .iter()
                .filter_map(|path| recorded.get(&path.display().to_string()))
                .flatten()
                .filter(|param| !outcome.added.values().flatten().any(|kept| kept == *param))
                .cloned()
                .collect();
            outcome.checks.push(EntriesCheck {
                files: vec![grub_cfg.clone()],
                line_keyword: "linux".into(),
                present: outcome.added.values().flatten().cloned().collect(),
                absent: removed,
                first_only: true,
            });
        }
        Bootloader::SystemdBoot {
            entries,
            fallback_entries,
            kernel_cmdline,
            ..
        } => {
            for entry in entries {
                boot_entry(files, entry, &recorded_at, wanted, &mut outcome)?;
            }
            if let Some(path) = kernel_cmdline {
                kernel_cmdline_file(files, path, &recorded_at, wanted, &mut outcome)?;
            }
            if !fallback_entries.is_empty() {
                let names: Vec<String> = fallback_entries
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                outcome.notes.push(format!(
                    "left alone on purpose, so you can always boot without vfio-pci: {}",
                    names.join(", ")
                ));
            }
        }
        Bootloader::Grubby {
            entries,
            also_touches,
        } => tool_managed(
            files,
            "grubby",
            entries,
            also_touches,
            &recorded_at("grubby"),
            wanted,
            &mut outcome,
            |add, remove| {
                let mut args = vec!["--update-kernel=ALL".to_owned()];
                if !add.is_empty() {
                    args.push(format!("--args={}", add.join(" ")));
                }
                if !remove.is_empty() {
                    args.push(format!("--remove-args={}", remove.join(" ")));
                }
                vec![CommandSpec::new("grubby", args).with_timeout(TOOL_TIMEOUT)]
            },
        )?,
        Bootloader::Kernelstub { config, entries } => {
            let also = vec![config.clone()];
            tool_managed(
                files,
                "kernelstub",
                entries,
                &also,
                &recorded_at("kernelstub"),
                wanted,
                &mut outcome,
                |add, remove| {
                    let mut commands = Vec::new();
                    if !remove.is_empty() {
                        commands.push(
                            CommandSpec::new("kernelstub", ["-d".to_owned(), remove.join(" ")])
                                .with_timeout(TOOL_TIMEOUT),
                        );
                    }
                    if !add.is_empty() {
                        commands.push(
                            CommandSpec::new("kernelstub", ["-a".to_owned(), add.join(" ")])
                                .with_timeout(TOOL_TIMEOUT),
                        );
                    }
                    commands
                },
            )?;
            if let Some(options) = kernelstub_options(files, config)? {
                outcome.notes.push(format!(
                    "kernelstub keeps the kernel options in {} (now: {})",
                    config.display(),
                    options
                ));
            }
        }
    }
    Ok(outcome)
}

const GRUB_VAR: &str = "GRUB_CMDLINE_LINUX_DEFAULT";

/// GRUB: edit the winning `GRUB_CMDLINE_LINUX_DEFAULT` (normal entries only, so the recovery
/// entries keep booting without vfio-pci) in place when it is a plain literal, or else put a
/// line that appends to it into passthru's block at the end of that file.
fn grub(
    files: &mut Files<'_>,
    defaults: &[PathBuf],
    recorded_at: &dyn Fn(&str) -> Vec<String>,
    wanted: &[String],
    outcome: &mut ParamsOutcome,
) -> Result<(), BootError> {
    let mut place = PathBuf::from("/etc/default/grub");
    let mut linux_value = String::new();
    for path in defaults {
        let Some(text) = files.text(path)? else {
            continue;
        };
        if let Some(found) = textedit::last_assignment(&text, "GRUB_CMDLINE_LINUX")
            && found.literal
        {
            linux_value = text[found.value].to_owned();
        }
        if textedit::last_assignment(&text, GRUB_VAR).is_some()
            || textedit::find_block(&text).is_some()
        {
            place = path.clone();
        }
    }
    let text = files.text(&place)?.unwrap_or_default();
    let key = place.display().to_string();
    let recorded = recorded_at(&key);
    let assignment = textedit::last_assignment(&text, GRUB_VAR);
    let in_block = textedit::find_block(&text).is_some();
    let new_text;
    let added;
    match assignment {
        Some(found) if found.literal && !in_block => {
            let value = &text[found.value.clone()];
            let context = format!("{linux_value} {}", users_part(value, &recorded));
            let resolved = resolve(&context, &key, &recorded, wanted, &mut outcome.notes)?;
            let (value, now_added) = edit(value, &recorded, &resolved);
            let unsafe_char = match found.quoting {
                Quoting::Double => ['"', '$', '`', '\\'].as_slice(),
                Quoting::Single | Quoting::Bare => ['\''].as_slice(),
            };
            if value.contains(unsafe_char) {
                return Err(BootError::Refused(format!(
                    "the new {GRUB_VAR} in {key} would need shell quoting passthru does not do"
                )));
            }
            let mut edited = text.clone();
            edited.replace_range(found.value, &value);
            new_text = edited;
            added = now_added;
        }
        _ => {
            let user_value = assignment
                .filter(|found| found.literal)
                .map(|found| text[found.value].to_owned())
                .unwrap_or_default();
            let context = format!("{linux_value} {user_value}");
            let resolved = resolve(&context, &key, &[], wanted, &mut outcome.notes)?;
            new_text = if resolved.wanted.is_empty() {
                textedit::remove_block(&text)
            } else {
                outcome.notes.push(format!(
                    "{key}: {GRUB_VAR} is not a plain quoted value, so passthru appends to it in \
                     its own block instead of editing your line"
                ));
                textedit::set_block(
                    &text,
                    &[format!(
                        "{GRUB_VAR}=\"${{{GRUB_VAR}}} {}\"",
                        resolved.wanted.join(" ")
                    )],
                )
            };
            added = resolved.wanted;
        }
    }
    record(outcome, &key, added);
    files.set(
        &place,
        Some(new_text.into_bytes()),
        0o644,
        FileFormat::Shell,
        "kernel parameters for the normal boot entries",
    )
}

fn record(outcome: &mut ParamsOutcome, key: &str, added: Vec<String>) {
    if !added.is_empty() {
        outcome.added.insert(key.to_owned(), added);
    }
}

/// A systemd-boot entry: edit its last `options` line.
fn boot_entry(
    files: &mut Files<'_>,
    entry: &Path,
    recorded_at: &dyn Fn(&str) -> Vec<String>,
    wanted: &[String],
    outcome: &mut ParamsOutcome,
) -> Result<(), BootError> {
    let Some(text) = files.text(entry)? else {
        return Ok(());
    };
    let key = entry.display().to_string();
    let mut offset = 0;
    let mut span = None;
    for piece in text.split_inclusive('\n') {
        let line = piece.trim_end_matches('\n');
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("options")
            && (rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            let keyword_end = offset + (line.len() - trimmed.len()) + "options".len();
            let value_start = keyword_end + (rest.len() - rest.trim_start().len());
            let line_end = (offset + line.trim_end().len()).max(value_start);
            span = Some(value_start..line_end);
        }
        offset += piece.len();
    }
    let Some(span) = span else {
        outcome.notes.push(format!(
            "{key} has no `options` line; passthru leaves this entry alone"
        ));
        return Ok(());
    };
    let recorded = recorded_at(&key);
    let value = &text[span.clone()];
    let resolved = resolve(
        &users_part(value, &recorded),
        &key,
        &recorded,
        wanted,
        &mut outcome.notes,
    )?;
    let (value, added) = edit(value, &recorded, &resolved);
    let mut edited = text.clone();
    edited.replace_range(span, &value);
    record(outcome, &key, added);
    files.set(
        entry,
        Some(edited.into_bytes()),
        0o644,
        FileFormat::BootEntry,
        "kernel parameters of this boot entry",
    )
}

/// `/etc/kernel/cmdline`: one line, used for kernels and UKIs built later.
fn kernel_cmdline_file(
    files: &mut Files<'_>,
    path: &Path,
    recorded_at: &dyn Fn(&str) -> Vec<String>,
    wanted: &[String],
    outcome: &mut ParamsOutcome,
) -> Result<(), BootError> {
    let text = files.text(path)?.unwrap_or_default();
    let key = path.display().to_string();
    let recorded = recorded_at(&key);
    let (line, newline) = match text.strip_suffix('\n') {
        Some(line) => (line, "\n"),
        None => (text.as_str(), ""),
    };
    let resolved = resolve(
        &users_part(line, &recorded),
        &key,
        &recorded,
        wanted,
        &mut outcome.notes,
    )?;
    let (line, added) = edit(line, &recorded, &resolved);
    record(outcome, &key, added);
    files.set(
        path,
        Some(format!("{line}{newline}").into_bytes()),
        0o644,
        FileFormat::Cmdline,
        "kernel parameters for kernels installed later",
    )
}

/// A boot loader whose own tool edits the parameters (grubby, kernelstub): passthru passes
/// the differences to the tool and saves every file the tool rewrites, so undo puts them back
/// byte for byte.
#[allow(clippy::too_many_arguments)]
fn tool_managed(
    files: &mut Files<'_>,
    tool: &str,
    entries: &[PathBuf],
    also_touches: &[PathBuf],
    recorded: &[String],
    wanted: &[String],
    outcome: &mut ParamsOutcome,
    commands: impl Fn(&[String], &[String]) -> Vec<CommandSpec>,
) -> Result<(), BootError> {
    let mut option_lines = Vec::new();
    for entry in entries {
        if let Some(text) = files.text(entry)? {
            for line in text.lines() {
                if let Some(rest) = line.trim_start().strip_prefix("options") {
                    option_lines.push(rest.trim().to_owned());
                }
            }
        }
    }
    if option_lines.iter().any(|line| line.contains("$kernelopts")) {
        outcome.notes.push(
            "the BLS entries take their options from $kernelopts in grubenv; grubby updates it"
                .into(),
        );
    }
    let context: Vec<String> = option_lines
        .iter()
        .map(|line| users_part(line, recorded))
        .collect();
    let resolved = resolve(
        &context.join(" "),
        tool,
        recorded,
        wanted,
        &mut outcome.notes,
    )?;
    let everywhere = |param: &String| {
        !option_lines.is_empty()
            && option_lines
                .iter()
                .all(|line| cmdline::contains(line, param))
    };
    let add: Vec<String> = resolved
        .wanted
        .iter()
        .filter(|param| !everywhere(param))
        .cloned()
        .collect();
    let remove: Vec<String> = resolved
        .remove
        .iter()
        .filter(|param| {
            option_lines
                .iter()
                .any(|line| cmdline::contains(line, param))
        })
        .cloned()
        .collect();
    let added: Vec<String> = resolved
        .wanted
        .iter()
        .filter(|param| add.contains(param) || recorded.contains(param))
        .cloned()
        .collect();
    record(outcome, tool, added);
    if add.is_empty() && remove.is_empty() {
        return Ok(());
    }
    let mut restores = Vec::new();
    for path in entries.iter().chain(also_touches) {
        restores.push(Snapshot {
            path: path.clone(),
            before: files
                .current(path)?
                .map(|(bytes, mode)| files.store(&bytes, mode)),
        });
    }
    for command in commands(&add, &remove) {
        outcome.tool_runs.push(RunCommand {
            purpose: format!("Set the kernel parameters with {tool}"),
            command,
            restores: restores.clone(),
        });
    }
    if !option_lines.iter().any(|line| line.contains("$kernelopts")) {
        outcome.checks.push(EntriesCheck {
            files: entries.to_vec(),
            line_keyword: "options".into(),
            present: resolved.wanted.clone(),
            absent: remove,
            first_only: false,
        });
    }
    Ok(())
}

/// The user's kernel options in kernelstub's configuration, for the notes.
fn kernelstub_options(files: &Files<'_>, config: &Path) -> Result<Option<String>, BootError> {
    let Some(text) = files.text(config)? else {
        return Ok(None);
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|error| BootError::Malformed {
            path: config.to_owned(),
            what: format!("it is not valid JSON ({error}); kernelstub could not read it either"),
        })?;
    let options = &json["user"]["kernel_options"];
    Ok(Some(match options {
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|item| item.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::String(text) => text.clone(),
        _ => String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn conflicts_are_refused_or_respected() {
        let mut notes = Vec::new();
        let wanted = strings(&["intel_iommu=on", "iommu=pt", "vfio-pci.ids=10de:1b80"]);
        let error = resolve("quiet intel_iommu=off", "x", &[], &wanted, &mut notes).unwrap_err();
        assert!(error.to_string().contains("intel_iommu=off"));
        let error = resolve("vfio_pci.ids=1002:73ff", "x", &[], &wanted, &mut notes).unwrap_err();
        assert!(error.to_string().contains("vfio-pci.ids=1002:73ff"));
        let resolved = resolve(
            "intel_iommu=on,sm_on iommu=nopt",
            "x",
            &[],
            &wanted,
            &mut notes,
        )
        .unwrap();
        assert_eq!(resolved.wanted, strings(&["vfio-pci.ids=10de:1b80"]));
        assert!(notes.iter().any(|n| n.contains("keeps your iommu=nopt")));
    }

    #[test]
    fn passthrus_own_earlier_values_are_replaced_not_refused() {
        let mut notes = Vec::new();
        let recorded = strings(&["iommu=pt", "vfio-pci.ids=10de:1b80"]);
        let wanted = strings(&["iommu=pt", "vfio-pci.ids=10de:10f0,10de:1b80"]);
        let line = "quiet iommu=pt vfio-pci.ids=10de:1b80";
        let resolved = resolve(
            &users_part(line, &recorded),
            "x",
            &recorded,
            &wanted,
            &mut notes,
        )
        .unwrap();
        assert_eq!(resolved.remove, strings(&["vfio-pci.ids=10de:1b80"]));
        let (text, added) = edit(line, &recorded, &resolved);
        assert_eq!(text, "quiet iommu=pt vfio-pci.ids=10de:10f0,10de:1b80");
        assert_eq!(added, wanted);
    }

    #[test]
    fn the_useless_amd_switch_of_the_user_is_reported_and_kept() {
        let mut notes = Vec::new();
        let resolved = resolve(
            "quiet amd_iommu=on",
            "x",
            &[],
            &strings(&["iommu=pt"]),
            &mut notes,
        )
        .unwrap();
        assert_eq!(resolved.wanted, strings(&["iommu=pt"]));
        assert!(
            notes
                .iter()
                .any(|n| n.contains("amd_iommu=on is not a valid value"))
        );
    }

    #[test]
    fn an_amd_switch_passthru_once_added_is_removed() {
        let mut notes = Vec::new();
        let recorded = strings(&["amd_iommu=on", "iommu=pt"]);
        let line = "quiet amd_iommu=on iommu=pt";
        let resolved = resolve(
            &users_part(line, &recorded),
            "x",
            &recorded,
            &strings(&["iommu=pt"]),
            &mut notes,
        )
        .unwrap();
        let (text, added) = edit(line, &recorded, &resolved);
        assert_eq!(text, "quiet iommu=pt");
        assert_eq!(added, strings(&["iommu=pt"]));
    }
}
