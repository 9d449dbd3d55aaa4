//! `passthru survey` and `passthru snapshot` on a Windows target, and `survey --from` a
//! Windows snapshot on any OS.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use passthru_hyperv::model::HostAnswers;
use passthru_hyperv::snapshot::{self, Provenance, WindowsSnapshot};
use passthru_hyperv::survey::{Source, WindowsSurvey, analyze};

use super::{Purpose, connect, host_failure, is_windows_target, render};
use crate::cli::GlobalArgs;
use crate::output::{self, Failure};

/// What the survey shows of the devices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Device classes (`gpu`, `net`, `storage`, `usb`, `audio`).
    pub(crate) classes: Vec<String>,
    /// Device selectors.
    pub(crate) devices: Vec<String>,
}

/// Runs the Windows survey when this run is about Windows: `--from` names a Windows snapshot,
/// or (without `--from`) the target is Windows. Returns `None` to let the Linux survey run.
pub(crate) fn dispatch(
    from: Option<&Path>,
    filter: &Filter,
    global: &GlobalArgs,
) -> Result<Option<ExitCode>, Failure> {
    let survey = match from {
        // Standard input belongs to the Linux reader: peeking at it would consume it.
        Some(path) if path == Path::new("-") => return Ok(None),
        Some(path) => {
            let bytes = fs_err::read(path).map_err(|error| Failure::from_error(&error))?;
            match snapshot::platform_of(&bytes).as_deref() {
                Some(snapshot::PLATFORM) => {}
                _ => return Ok(None),
            }
            let loaded = WindowsSnapshot::load(&bytes).map_err(|error| {
                Failure::new(format!("`{}` cannot be replayed: {error}", path.display()))
            })?;
            analyze(
                &loaded.answers(),
                Source {
                    kind: "snapshot".to_owned(),
                    path: Some(path.display().to_string()),
                    provenance: Some(format!(
                        "{}: {}",
                        loaded.provenance.kind, loaded.provenance.note
                    )),
                    captured: loaded.captured.clone(),
                },
            )
        }
        None if is_windows_target() => {
            let (mut host, kind) = connect(Purpose::Read)?;
            let answers: HostAnswers = host.survey().map_err(|error| host_failure(&error))?;
            analyze(
                &answers,
                Source {
                    kind,
                    path: std::env::var_os(super::SIMULATOR_ENV)
                        .map(|path| path.to_string_lossy().into_owned()),
                    ..Source::default()
                },
            )
        }
        None => return Ok(None),
    };
    let survey = apply_filter(survey, filter)?;
    if global.json {
        output::print_json(&survey)?;
    } else {
        let mut out = anstream::stdout().lock();
        render::survey(&mut out, &survey)
            .map_err(|error| Failure::new(format!("could not write output: {error}")))?;
    }
    Ok(Some(ExitCode::SUCCESS))
}

fn class_matches(class: Option<&str>, wanted: &str) -> bool {
    let class = class.unwrap_or_default().to_ascii_lowercase();
    match wanted.to_ascii_lowercase().as_str() {
        "gpu" | "display" => class == "display",
        "net" | "network" => class == "net",
        "storage" => matches!(class.as_str(), "scsiadapter" | "hdc"),
        "usb" => class == "usb",
        "audio" => matches!(class.as_str(), "media" | "audioendpoint"),
        other => class == other,
    }
}

fn apply_filter(mut survey: WindowsSurvey, filter: &Filter) -> Result<WindowsSurvey, Failure> {
    if !filter.devices.is_empty() {
        let mut keep = Vec::new();
        for selector in &filter.devices {
            let device = passthru_hyperv::plan::select::device(&survey, selector)
                .map_err(|refusal| super::refusal_failure(&refusal))?;
            keep.push(device.instance_id.clone());
        }
        survey
            .devices
            .retain(|device| keep.contains(&device.instance_id));
    }
    if !filter.classes.is_empty() {
        survey.devices.retain(|device| {
            filter
                .classes
                .iter()
                .any(|class| class_matches(device.class.as_deref(), class))
        });
    }
    Ok(survey)
}

/// Writes a Windows snapshot when the target is Windows; `None` otherwise.
pub(crate) fn snapshot_dispatch(
    file: &Path,
    global: &GlobalArgs,
) -> Result<Option<ExitCode>, Failure> {
    if !is_windows_target() {
        return Ok(None);
    }
    let (mut host, kind) = connect(Purpose::Read)?;
    let (answers, warnings) = host.survey_raw().map_err(|error| host_failure(&error))?;
    let provenance = Provenance {
        kind: if kind == "simulator" {
            "simulated".to_owned()
        } else {
            "captured".to_owned()
        },
        note: format!("captured by `passthru snapshot` from {}", host.describe()),
        sources: Vec::new(),
    };
    let snapshot = WindowsSnapshot::new(answers, warnings, host.cpu_bits(), provenance);
    let text = snapshot.to_text();
    if file == Path::new("-") {
        let mut out = anstream::stdout().lock();
        out.write_all(text.as_bytes())
            .map_err(|error| Failure::new(format!("could not write output: {error}")))?;
    } else {
        fs_err::write(file, &text).map_err(|error| Failure::from_error(&error))?;
        if !global.json {
            let _ = writeln!(
                anstream::stderr().lock(),
                "wrote {} ({} bytes); replay it anywhere with `passthru survey --from {}`",
                file.display(),
                text.len(),
                file.display()
            );
        }
    }
    Ok(Some(ExitCode::SUCCESS))
}
