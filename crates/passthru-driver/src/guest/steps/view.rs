//! How each [`GuestStep`] describes itself in a plan: the lines `--dry-run` prints and the
//! journal keeps.

use passthru_core::plan::StepView;

use super::{GuestStep, PackageSync};
use crate::guest::SYSTEM_HIVE;
use crate::guest::manifest::MANIFEST_PATH;
use crate::package::RegData;
use crate::sync::Action;

impl GuestStep {
    /// What the step will do, as the plan lists it.
    pub(super) fn step_view(&self) -> StepView {
        match self {
            Self::ShutDownVm { vm } => StepView::new(format!("Shut down VM `{vm}`"))
                .action(format!("Stop-VM -Name '{vm}'  (undo: Start-VM)")),
            Self::MountSystemDisk { vhd, partition, .. } => {
                StepView::new(format!("Mount the system disk `{vhd}`"))
                    .action(format!("Mount-VHD -Path '{vhd}' -NoDriveLetter"))
                    .action(format!(
                        "Add-PartitionAccessPath -PartitionNumber {partition} -AssignDriveLetter"
                    ))
            }
            Self::RetirePackages {
                packages, backup, ..
            } => {
                let mut view = StepView::new(format!(
                    "Retire {} package folder(s) of the previous driver",
                    packages.len()
                ));
                for package in packages {
                    view = view.action(format!("move {} -> {backup}", package.dir));
                }
                view
            }
            Self::AdoptPackage { from, to, .. } => StepView::new(format!(
                "Start the new package folder from the previous version's `{}` (only changed files are copied)",
                from.file_name()
            ))
            .action(format!("rename {from} -> {}", to.file_name())),
            Self::SyncPackages(sync) => sync_view(sync),
            Self::PromoteFiles { files, .. } => {
                let mut view = StepView::new(format!(
                    "Copy {} file(s) into System32/SysWOW64",
                    files.len()
                ));
                for file in files {
                    let verb = match (file.existed, file.when_newer) {
                        (false, _) => "create ",
                        (true, false) => "replace",
                        (true, true) => "replace if older",
                    };
                    view = view.action(format!("{verb} {} <- {}", file.target, file.source));
                }
                view
            }
            Self::LoadSystemHive { mount, .. } => {
                StepView::new(format!("Load the guest's SYSTEM hive as HKLM\\{mount}"))
                    .action(format!("reg load HKLM\\{mount} <guest>\\{SYSTEM_HIVE}"))
            }
            Self::WriteRegistry {
                key,
                created,
                values,
                ..
            } => {
                let mut view = StepView::new(format!(
                    "{} {key}",
                    if *created { "Create" } else { "Update" }
                ));
                for value in values {
                    let before = value
                        .before
                        .as_ref()
                        .map(data_text)
                        .unwrap_or_else(|| "absent".to_owned());
                    view = view.action(format!(
                        "set {} = {}  (was: {before})",
                        value.name,
                        data_text(&value.data)
                    ));
                }
                view
            }
            Self::UnloadSystemHive { mount, .. } => StepView::new(format!("Unload HKLM\\{mount}"))
                .action(format!("reg unload HKLM\\{mount}")),
            Self::WriteManifest { header, before, .. } => StepView::new(format!(
                "{} the driver manifest ({}, {})",
                if before.is_some() { "Update" } else { "Write" },
                header.driver_version,
                MANIFEST_PATH
            )),
            Self::DismountSystemDisk { vhd, .. } => StepView::new(format!("Dismount `{vhd}`"))
                .action(format!("Dismount-VHD -Path '{vhd}'")),
        }
    }
}

fn sync_view(plan: &PackageSync) -> StepView {
    let bytes: u64 = plan
        .files
        .iter()
        .filter(|f| f.action != Action::Keep)
        .map(|f| f.size)
        .sum();
    let unchanged = plan
        .files
        .iter()
        .filter(|f| f.action == Action::Keep)
        .count();
    let mut view = StepView::new(format!(
        "Copy {} of {} driver file(s) ({}), remove {}, {unchanged} already up to date",
        plan.files.len() - unchanged,
        plan.files.len(),
        size_text(bytes),
        plan.removals.len()
    ));
    for file in &plan.files {
        let verb = match file.action {
            Action::Create => "create ",
            Action::Replace { .. } => "replace",
            Action::CheckContent => "compare",
            Action::Keep => continue,
        };
        view = view.action(format!("{verb} {} ({})", file.dest, size_text(file.size)));
    }
    for removal in &plan.removals {
        view = view.action(format!("remove  {removal}"));
    }
    view
}

fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn data_text(data: &RegData) -> String {
    let value = match data {
        RegData::Sz(text) | RegData::ExpandSz(text) => text.clone(),
        RegData::MultiSz(items) => items.join(" | "),
        RegData::Dword(number) => format!("{number}"),
        RegData::Qword(number) => format!("{number}"),
        RegData::Binary(bytes) => format!("{} bytes", bytes.len()),
    };
    format!("{} {value}", data.kind_name())
}
