//! A simulated Hyper-V behind the same [`PowerShell`] port as the real one.
//!
//! It keeps the state of a host — VMs (running or off, generation, MMIO, cache types, stop
//! action, dynamic memory, GPU partition adapters, assigned devices), partitionable GPUs and
//! their partition counts, PCI devices moving between host → dismounted (`PCIP\`) → VM, the
//! policy values, disks — and executes the [`Request`]s carried by each script, refusing the
//! way Hyper-V refuses, with Hyper-V's recorded messages where we have them (`sim/messages.rs`).
//! Its answers are the JSON lines the real scripts print, so everything after the port (answer
//! parsing, error classification, planners, executor, CLI) runs unchanged against it.
//!
//! The CLI uses it when `PASSTHRU_HYPERV_SIMULATOR` names a state file: the state is loaded
//! at start and written back after every script that changes it, so consecutive commands (`assign`, then
//! `undo`) see one consistent host — on any OS, which is how the Hyper-V commands are tested
//! end to end and under wine.

mod changes;
mod messages;
mod reads;
mod state;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use messages::vm_not_found;
pub use state::{Behaviour, FORMAT, Fault, SimDda, SimDevice, SimState};

use crate::error::ErrorRecord;
use crate::model::HostAnswers;
use crate::ps::envelope::Answer;
use crate::ps::{PortError, PowerShell, Request, Script};

/// Requests of other crates, taught to the simulator by those crates' tests.
pub trait Extension {
    /// Whether this extension handles requests of `kind`.
    fn handles(&self, kind: &str) -> bool;

    /// Executes one request. `state` is the simulated host; an extension keeps what it knows in
    /// [`SimState::extensions`] (saved with the rest) and honours [`SimState::faults`] for its
    /// cmdlets through [`SimState::take_fault`]. Returns what the script would output, or the
    /// error record it would raise.
    fn execute(
        &mut self,
        kind: &str,
        payload: &Value,
        state: &mut SimState,
    ) -> Result<Vec<Value>, Box<ErrorRecord>>;
}

/// The simulated host.
pub struct Simulator {
    /// The host's state.
    pub state: SimState,
    file: Option<PathBuf>,
    extensions: Vec<Box<dyn Extension>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("file", &self.file)
            .field("extensions", &self.extensions.len())
            .finish_non_exhaustive()
    }
}

/// Why a simulator state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading or writing it failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// It is not a simulator state.
    #[error("`{path}` is not a simulated Hyper-V state file: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Simulator {
    /// A simulator over `state` that is not backed by a file.
    pub fn new(state: SimState) -> Self {
        Self {
            state,
            file: None,
            extensions: Vec::new(),
        }
    }

    /// Loads a state file; the state is written back to it after every script that changes it.
    pub fn open(path: &Path) -> Result<Self, SimError> {
        let bytes = fs_err::read(path)?;
        let state: SimState =
            serde_json::from_slice(&bytes).map_err(|error| SimError::Invalid {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
        if state.format != FORMAT {
            return Err(SimError::Invalid {
                path: path.to_owned(),
                message: format!("its \"format\" is `{}`, not `{FORMAT}`", state.format),
            });
        }
        Ok(Self {
            state,
            file: Some(path.to_owned()),
            extensions: Vec::new(),
        })
    }

    /// A simulator seeded from a host's answers (a snapshot): its devices, GPUs, VMs and
    /// disks, with devices placed in the DDA state the answers show.
    pub fn from_answers(answers: &HostAnswers) -> Self {
        Self::new(state_from_answers(answers))
    }

    /// Adds an extension for another crate's requests.
    pub fn with_extension(mut self, extension: Box<dyn Extension>) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Writes the state back to its file, if it has one (atomically).
    pub fn save(&self) -> Result<(), SimError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut text = serde_json::to_string_pretty(&self.state).map_err(std::io::Error::other)?;
        text.push('\n');
        let temporary = path.with_extension("json.tmp");
        fs_err::write(&temporary, text)?;
        fs_err::rename(&temporary, path)?;
        Ok(())
    }

    fn execute(&mut self, request: &Request) -> Result<Vec<Value>, Box<ErrorRecord>> {
        match request {
            Request::Query(query) => reads::answer(&self.state, query),
            Request::Op(op) => {
                if let Some(record) = self.state.take_fault(op.cmdlet()) {
                    return Err(Box::new(record));
                }
                changes::apply(&mut self.state, op)?;
                self.state.log.push(op.powershell());
                Ok(Vec::new())
            }
            Request::Extension { kind, payload } => {
                let extension = self
                    .extensions
                    .iter_mut()
                    .find(|extension| extension.handles(kind));
                match extension {
                    Some(extension) => extension.execute(kind, payload, &mut self.state),
                    None => Err(Box::new(ErrorRecord {
                        exception_type: "System.Management.Automation.CommandNotFoundException"
                            .to_owned(),
                        fully_qualified_error_id: "CommandNotFoundException".to_owned(),
                        category: "ObjectNotFound".to_owned(),
                        message: format!(
                            "The simulated Hyper-V does not know the request `{kind}`."
                        ),
                        target: kind.clone(),
                        command: String::new(),
                    })),
                }
            }
        }
    }
}

impl PowerShell for Simulator {
    fn run(&mut self, script: &Script) -> Result<Vec<u8>, PortError> {
        let before = self.state.clone();
        let mut data = Vec::new();
        let mut failure = None;
        for request in &script.requests {
            match self.execute(request) {
                Ok(mut output) => data.append(&mut output),
                Err(record) => {
                    failure = Some(*record);
                    break;
                }
            }
        }
        let answer = match failure {
            Some(record) => Answer::failure(record, data),
            None => Answer::success(data),
        };
        // Reads leave the file alone; changes (and consumed faults) are written back.
        if self.state != before {
            self.save().map_err(|error| {
                PortError::Simulator(format!("could not save its state: {error}"))
            })?;
        }
        Ok(format!("{}\n", answer.to_line()).into_bytes())
    }

    fn describe(&self) -> String {
        match &self.file {
            Some(path) => format!("simulated Hyper-V from `{}`", path.display()),
            None => "simulated Hyper-V".to_owned(),
        }
    }
}

fn state_from_answers(answers: &HostAnswers) -> SimState {
    use crate::survey::resources::by_device;
    use crate::text::instance::{InstanceId, host_form};
    use crate::text::location::same_location;

    let mut state = SimState::new(answers.host.clone());
    state.description = "seeded from a host's survey answers".to_owned();
    state.gpus = answers.partitionable_gpus.clone();
    state.vms = answers.vms.clone();
    state.disks = answers.disks.clone();
    let resources = by_device(answers);
    for device in &answers.pnp_devices {
        let Ok(id) = InstanceId::parse(&device.instance_id) else {
            continue;
        };
        if id.is_dismounted() {
            continue;
        }
        let location = device.pci_location().map(str::to_owned);
        let dismounted = answers.pnp_devices.iter().any(|other| {
            InstanceId::parse(&other.instance_id).is_ok_and(|other_id| other_id.is_dismounted())
                && host_form(&other.instance_id).eq_ignore_ascii_case(&device.instance_id)
        }) || answers.host_assignable_devices.iter().any(|assignable| {
            match (&assignable.location_path, &location) {
                (Some(a), Some(b)) => same_location(a, b),
                _ => false,
            }
        });
        let owner = location.as_deref().and_then(|location| {
            answers.vms.iter().find(|vm| {
                vm.assigned_devices.iter().any(|assigned| {
                    assigned
                        .location_path
                        .as_deref()
                        .is_some_and(|path| same_location(path, location))
                })
            })
        });
        let present = device.present != Some(false);
        let dda = match (owner, dismounted) {
            (Some(vm), _) => SimDda::Assigned {
                vm: vm.name.clone(),
            },
            (None, true) => SimDda::Dismounted,
            (None, false) if present => SimDda::Host,
            (None, false) => continue,
        };
        let own = resources.get(&device.instance_id.to_ascii_uppercase());
        state.devices.push(SimDevice {
            pnp: device.clone(),
            irqs: own.map(|own| own.irqs.clone()).unwrap_or_default(),
            memory: own.map(|own| own.memory.clone()).unwrap_or_default(),
            dda,
            mitigation_driver: false,
        });
    }
    state
}
