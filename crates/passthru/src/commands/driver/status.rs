//! `passthru driver status`: the host's driver against the copy in a VM.
//!
//! With the VM off, its disk is mounted (and dismounted again) and the VM's own record is read
//! and checked against the files really there (`--verify`: their content too). While it runs,
//! the host's copy of the record of the last sync is used ([`super::record`]).
//! Exit status: 0 up to date, 1 stale or not installed, 2 could not tell.

use std::io::Write;
use std::process::ExitCode;

use passthru_driver::guest::manifest::MANIFEST_PATH;
use passthru_driver::guest::{
    DriverStatus, Freshness, GuestError, GuestManifest, VmState, compare_with_guest,
    with_system_volume,
};
use passthru_driver::guest_path::GuestPath;
use passthru_hyperv::ps::quote::cli_argument;
use serde_json::json;

use super::{Target, guest_failure, interrupt, record, state_name};
use crate::cli::GlobalArgs;
use crate::hyperv::paint;
use crate::output::{self, Failure, style};

/// Where the guest's record came from.
#[derive(Debug)]
enum Source {
    /// The VM's disk.
    GuestDisk,
    /// The host's copy, written by this journal operation.
    HostRecord(String),
}

/// How many paths of each kind the human output lists.
const LISTED: usize = 10;

pub(super) fn run(
    vm: &str,
    gpu: Option<&str>,
    verify: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    // Ctrl-C must not leave the disk mounted: the check finishes and dismounts first.
    let _cancel = interrupt::install();
    let (target, mut host) = Target::connect(vm, gpu)?;
    let mut notes = target.notes.clone();
    let state = target.vm_state();
    let (status, manifest, source) = match &state {
        VmState::Off => {
            let (status, manifest) = with_system_volume(&mut host, &target.vm.name, |_, volume| {
                let manifest = read_manifest(&volume.root, &mut notes)?;
                let status = compare_with_guest(
                    &target.driver,
                    manifest.as_ref(),
                    Some(&volume.root),
                    verify,
                )?;
                Ok((status, manifest))
            })
            .map_err(|error| guest_failure(&error))?;
            (status, manifest, Source::GuestDisk)
        }
        other => {
            let Some((operation, manifest)) = host_record(&target, global, &mut notes) else {
                return Err(Failure::new(format!(
                    "cannot tell: VM '{}' is {}, so its disk cannot be read, and this host has no record of a passthru sync into it",
                    target.vm.name,
                    state_name(other)
                ))
                .with_help(format!(
                    "shut the VM down and ask again, or sync now: `passthru driver sync --vm {} --stop-vm`",
                    cli_argument(&target.vm.name)
                )));
            };
            notes.push(format!(
                "VM '{}' is {}, so its disk was not read: compared with this host's record of the last sync ({operation}); changes made inside the VM are not seen{}",
                target.vm.name,
                state_name(other),
                if verify { "; --verify needs the VM off" } else { "" }
            ));
            let status = compare_with_guest(&target.driver, Some(&manifest), None, false)
                .map_err(|error| Failure::from_error(&error))?;
            (status, Some(manifest), Source::HostRecord(operation))
        }
    };
    let code = match status.freshness {
        Freshness::UpToDate => ExitCode::SUCCESS,
        Freshness::Stale | Freshness::NotInstalled => ExitCode::from(1),
    };
    if global.json {
        output::print_json(&json!({
            "schema": "passthru.driver.status/1",
            "vm": target.vm.name,
            "vm_state": state_name(&state),
            "gpu": target.gpu,
            "source": match &source { Source::GuestDisk => "guest-disk", Source::HostRecord(_) => "host-record" },
            "record_operation": match &source { Source::HostRecord(id) => Some(id), Source::GuestDisk => None },
            "synced_at": manifest.as_ref().map(|m| &m.written_at),
            "host_packages": target.driver.packages.iter().map(|p| &p.name).collect::<Vec<_>>(),
            "verified_content": verify && matches!(source, Source::GuestDisk),
            "status": status,
            "notes": notes,
        }))?;
        return Ok(code);
    }
    print_human(&target, &status, manifest.as_ref(), &source, &notes);
    Ok(code)
}

/// The VM's record; `None` when it has none (or one passthru cannot read, which is noted).
fn read_manifest(
    root: &std::path::Path,
    notes: &mut Vec<String>,
) -> Result<Option<GuestManifest>, GuestError> {
    let path = GuestPath::new(MANIFEST_PATH).on(root);
    let bytes = match fs_err::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    match GuestManifest::from_json(&bytes) {
        Ok(manifest) => Ok(Some(manifest)),
        Err(message) => {
            notes.push(format!("{MANIFEST_PATH} in the VM: {message}"));
            Ok(None)
        }
    }
}

/// The host's record of the last sync into the VM, if the journal has one.
fn host_record(
    target: &Target,
    global: &GlobalArgs,
    notes: &mut Vec<String>,
) -> Option<(String, GuestManifest)> {
    let journal = match crate::commands::open_journal(global) {
        Ok(journal) => journal,
        Err(failure) => {
            notes.push(format!("the journal could not be read: {failure}"));
            return None;
        }
    };
    match record::latest(&journal, &target.vm.name) {
        Ok(found) => found,
        Err(error) => {
            notes.push(format!("the host's records could not be read: {error}"));
            None
        }
    }
}

fn print_human(
    target: &Target,
    status: &DriverStatus,
    manifest: Option<&GuestManifest>,
    source: &Source,
    notes: &[String],
) {
    let mut out = anstream::stdout().lock();
    let verdict = match status.freshness {
        Freshness::UpToDate => paint(style::GOOD, "up to date"),
        Freshness::Stale => paint(style::WARN, "stale"),
        Freshness::NotInstalled => paint(style::WARN, "not installed"),
    };
    let _ = writeln!(
        out,
        "Driver of {} in VM {}: {verdict}",
        paint(style::HEADING, &target.gpu),
        target.vm.name
    );
    let files: usize = target.driver.packages.iter().map(|p| p.files.len()).sum();
    let _ = writeln!(
        out,
        "  host:  {} ({}, {files} files)",
        status.host_version,
        target
            .driver
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(manifest) = manifest {
        let _ = writeln!(
            out,
            "  guest: {}, synced {} by {} ({})",
            manifest.driver_version,
            manifest.written_at,
            manifest.written_by,
            match source {
                Source::GuestDisk => "read from the VM's disk".to_owned(),
                Source::HostRecord(id) => format!("this host's record, {id}"),
            }
        );
    }
    for note in notes {
        let _ = writeln!(out, "  note: {note}");
    }
    for reason in &status.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    // Every file of a package the VM does not have is missing; the reason above says so once.
    let absent: Vec<_> = target
        .driver
        .packages
        .iter()
        .filter(|package| {
            !manifest.is_some_and(|m| {
                m.packages
                    .iter()
                    .any(|p| p.name.eq_ignore_ascii_case(&package.name))
            })
        })
        .map(|package| &package.guest_dir)
        .collect();
    let missing: Vec<GuestPath> = status
        .missing
        .iter()
        .filter(|path| !absent.iter().any(|dir| path.starts_with(dir)))
        .cloned()
        .collect();
    for (what, paths) in [
        ("missing in the VM", &missing),
        ("changed on the host", &status.outdated),
        ("changed or deleted in the VM", &status.damaged),
    ] {
        for path in paths.iter().take(LISTED) {
            let _ = writeln!(out, "    {what}: {path}");
        }
        if paths.len() > LISTED {
            let _ = writeln!(
                out,
                "    {what}: ... and {} more (--json lists them all)",
                paths.len() - LISTED
            );
        }
    }
    if status.freshness != Freshness::UpToDate {
        let _ = writeln!(
            out,
            "Run `passthru driver sync --vm {}` to bring it up to date.",
            cli_argument(&target.vm.name)
        );
    }
}
