//! `passthru survey`: every PCI device, IOMMU group and verdict of a Linux host (or of a
//! snapshot of one).

mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use passthru_core::hostfs::RealFs;
use passthru_core::pci::ids;
use passthru_linux::inventory::{Inventory, read_inventory};
use passthru_linux::snapshot::{Snapshot, SnapshotFs};
use passthru_linux::survey::{self, FilterError, SurveyFilter, SurveySource};

use crate::cli::GlobalArgs;
use crate::output::{Failure, print_json};

/// Arguments of `passthru survey`.
#[derive(Debug, Args)]
pub(crate) struct SurveyArgs {
    /// Replay a snapshot file (from `passthru snapshot`) instead of reading this host.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    pub(crate) from: Option<PathBuf>,

    /// Only devices of this class: gpu (VGA and 3D controllers), net, storage, usb, audio
    /// (repeatable).
    #[arg(long = "class", value_name = "CLASS")]
    pub(crate) classes: Vec<String>,

    /// Only this IOMMU group (repeatable).
    #[arg(long = "group", value_name = "N")]
    pub(crate) groups: Vec<u32>,

    /// Only these devices: a BDF (0000:01:00.0), a short BDF (01:00.0), vendor:device
    /// (10de:2684), or a name substring. Each must name exactly one device.
    #[arg(value_name = "DEVICE")]
    pub(crate) devices: Vec<String>,
}

/// Reads the host (or the snapshot) into an inventory and says where it came from.
pub(crate) fn read_source(
    from: Option<&Path>,
    root: Option<&Path>,
) -> Result<(Inventory, SurveySource, Option<PathBuf>), Failure> {
    if let Some(file) = from {
        let snapshot = Snapshot::load(file).map_err(|error| {
            Failure::from_error(&error).with_help(format!(
                "`{}` should be a file written by `passthru snapshot`",
                file.display()
            ))
        })?;
        let inventory = read_inventory(&SnapshotFs::new(&snapshot));
        let source = SurveySource::Snapshot {
            file: file.display().to_string(),
            created_by: snapshot.created_by.clone(),
            description: snapshot.description.clone(),
        };
        return Ok((inventory, source, None));
    }
    let root = root.map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    if !root.is_dir() {
        return Err(
            Failure::new(format!("the root `{}` is not a directory", root.display())).with_help(
                "--root takes a directory holding sys/ and proc/, such as a mounted system image",
            ),
        );
    }
    let inventory = read_inventory(&RealFs::new(&root));
    let source = SurveySource::Host {
        root: root.display().to_string(),
    };
    Ok((inventory, source, Some(root)))
}

/// Where to look for `pci.ids`: `PASSTHRU_PCI_IDS` (a file, or `bundled` for the copy built
/// into passthru), else under the root, else this machine's hwdata.
pub(crate) fn names_candidates(root: Option<&Path>) -> Vec<PathBuf> {
    match std::env::var_os("PASSTHRU_PCI_IDS") {
        Some(value) if value == "bundled" => Vec::new(),
        Some(value) => vec![PathBuf::from(value)],
        None => ids::candidate_paths(root),
    }
}

pub(crate) fn run(args: SurveyArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    // A Windows host, the simulated Hyper-V, or a Windows snapshot: the Hyper-V survey.
    let windows_filter = crate::hyperv::survey::Filter {
        classes: args.classes.clone(),
        devices: args.devices.clone(),
    };
    if let Some(code) =
        crate::hyperv::survey::dispatch(args.from.as_deref(), &windows_filter, global)?
    {
        return Ok(code);
    }
    let (mut inventory, source, root) = read_source(args.from.as_deref(), global.root.as_deref())?;
    let (names, names_source) = ids::load(
        &names_candidates(root.as_deref()),
        &survey::names_query(&inventory),
    );
    survey::apply_names(&mut inventory, &names);
    let filter = SurveyFilter {
        classes: args.classes,
        groups: args.groups,
        devices: args.devices,
    };
    let mut report = survey::build(inventory, source, names_source, &filter).map_err(|error| {
        let failure = Failure::from_error(&error);
        match error {
            FilterError::Select(_) => {
                failure.with_help("`passthru survey` without arguments lists every device")
            }
            _ => failure,
        }
    })?;
    // After a boot: did passthru's persistent assignment take effect? (Live hosts and roots
    // only: a snapshot does not carry passthru's record.)
    if let Some(root) = &root {
        match passthru_linux::boot::postboot::check(&RealFs::new(root)) {
            Ok(Some(persistent)) => survey::attach_persistent(&mut report, persistent),
            Ok(None) => {}
            Err(error) => report.warnings.push(format!(
                "could not read passthru's record of the persistent assignment: {error}"
            )),
        }
    }
    if global.json {
        print_json(&report)?;
        // The process ends now: freeing a big host's thousands of devices one allocation at a
        // time would only delay the exit that returns all of it at once.
        std::mem::forget(report);
    } else {
        let text = render::render(&report);
        let mut stdout = anstream::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .map_err(|error| Failure::new(format!("could not write output: {error}")))?;
    }
    Ok(ExitCode::SUCCESS)
}
