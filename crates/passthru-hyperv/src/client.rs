//! Typed access to a Hyper-V host through any [`PowerShell`].

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{HyperVError, classify};
use crate::model::{DeviceStatus, HostAnswers, PartitionableGpu, PolicyValues, Vm};
use crate::ops::Op;
use crate::ps::envelope::{self, Answer, AnswerError};
use crate::ps::{PortError, PowerShell, Script};
use crate::query::Query;

/// Why a request to the host failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// PowerShell could not be reached.
    #[error(transparent)]
    Port(#[from] PortError),
    /// PowerShell answered something unreadable.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// A cmdlet failed; the error is classified and explained.
    #[error(transparent)]
    HyperV(Box<HyperVError>),
    /// The answer did not have the expected shape.
    #[error("{0}")]
    Unexpected(String),
}

impl HostError {
    /// What to do next, when known.
    pub fn help(&self) -> Option<String> {
        match self {
            Self::HyperV(error) => error.help(),
            Self::Port(PortError::Spawn { .. } | PortError::NotAvailable { .. }) => Some(
                "passthru's Hyper-V commands need Windows with Windows PowerShell 5.1 and the Hyper-V module".to_owned(),
            ),
            Self::Port(PortError::Exited { .. }) | Self::Answer(AnswerError::Missing { .. }) => Some(
                "this does not look like a working Windows PowerShell 5.1 with the Hyper-V module (under wine, powershell.exe is only a stub); on Windows, check that `powershell.exe -NoProfile -Command Get-VM` works in an elevated prompt".to_owned(),
            ),
            _ => None,
        }
    }

    /// The classified Hyper-V error, when that is what this is.
    pub fn hyperv(&self) -> Option<&HyperVError> {
        match self {
            Self::HyperV(error) => Some(error),
            _ => None,
        }
    }
}

/// Where the CPU's physical address width comes from when PowerShell cannot say.
pub type CpuProbe = fn() -> Option<u32>;

/// A Hyper-V host reached through PowerShell (real or simulated).
pub struct HyperVHost {
    powershell: Box<dyn PowerShell>,
    cpu_probe: Option<CpuProbe>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for HyperVHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperVHost")
            .field("powershell", &self.powershell.describe())
            .finish()
    }
}

impl HyperVHost {
    /// Talks to `powershell`. `cpu_probe` fills in the CPU's physical address width when the
    /// answers lack it (the real host: CPUID in this process; the simulator answers it).
    pub fn new(powershell: Box<dyn PowerShell>, cpu_probe: Option<CpuProbe>) -> Self {
        Self {
            powershell,
            cpu_probe,
            warnings: Vec::new(),
        }
    }

    /// What this host is ("PowerShell (`powershell.exe`)", "simulated Hyper-V ...").
    pub fn describe(&self) -> String {
        self.powershell.describe()
    }

    /// Warnings PowerShell printed so far.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Gives the PowerShell back (to save a simulator's state, say).
    pub fn into_powershell(self) -> Box<dyn PowerShell> {
        self.powershell
    }

    /// Runs any script and returns its answer; a cmdlet failure becomes [`HostError::HyperV`].
    pub fn run(&mut self, script: &Script) -> Result<Answer, HostError> {
        let stdout = self.powershell.run(script)?;
        let answer = envelope::parse(&stdout)?;
        self.warnings.extend(answer.warnings.iter().cloned());
        match &answer.error {
            Some(record) if !answer.ok => Err(HostError::HyperV(Box::new(classify(record)))),
            _ => Ok(answer),
        }
    }

    /// Performs one change.
    pub fn perform(&mut self, op: &Op) -> Result<(), HostError> {
        self.run(&Script::op(op.clone())).map(|_| ())
    }

    fn query_one<T: DeserializeOwned>(&mut self, query: Query, what: &str) -> Result<T, HostError> {
        let answer = self.run(&Script::query(query))?;
        let value = answer
            .data
            .into_iter()
            .next()
            .ok_or_else(|| HostError::Unexpected(format!("PowerShell answered no {what}")))?;
        serde_json::from_value(value).map_err(|error| {
            HostError::Unexpected(format!("PowerShell's {what} is unreadable: {error}"))
        })
    }

    /// Runs the survey script and returns its answer exactly as PowerShell printed it, with
    /// the warnings it printed (what `passthru snapshot` stores).
    pub fn survey_raw(&mut self) -> Result<(Value, Vec<String>), HostError> {
        let answer = self.run(&Script::query(Query::Survey))?;
        let value = answer.data.into_iter().next().unwrap_or(Value::Null);
        if !value.is_object() {
            return Err(HostError::Unexpected(
                "PowerShell answered no survey data".to_owned(),
            ));
        }
        Ok((value, answer.warnings))
    }

    /// The CPU's physical address width from this host's probe, when it has one.
    pub fn cpu_bits(&self) -> Option<u32> {
        self.cpu_probe.and_then(|probe| probe())
    }

    /// Reads everything the survey needs.
    pub fn survey(&mut self) -> Result<HostAnswers, HostError> {
        let (value, warnings) = self.survey_raw()?;
        let mut answers = HostAnswers::from_value(&value);
        answers.warnings.extend(warnings);
        if answers.host.cpu_physical_address_bits.is_none() {
            answers.host.cpu_physical_address_bits = self.cpu_bits();
        }
        Ok(answers)
    }

    /// Reads one VM by exact name. Hyper-V allows several VMs with one name; passthru refuses
    /// to guess between them.
    pub fn vm(&mut self, name: &str) -> Result<Vm, HostError> {
        let answer = self.run(&Script::query(Query::Vm {
            name: name.to_owned(),
        }))?;
        let mut vms: Vec<Vm> = answer
            .data
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .filter(|vm: &Vm| vm.name.eq_ignore_ascii_case(name))
            .collect();
        match vms.len() {
            1 => Ok(vms.remove(0)),
            0 => Err(HostError::Unexpected(format!(
                "Hyper-V has no VM named `{name}`"
            ))),
            count => Err(HostError::Unexpected(format!(
                "{count} VMs are named `{name}`; rename them so that passthru can tell them apart"
            ))),
        }
    }

    /// Where a device is in the DDA state machine.
    pub fn device(
        &mut self,
        location_path: &str,
        instance_id: Option<&str>,
    ) -> Result<DeviceStatus, HostError> {
        self.query_one(
            Query::Device {
                location_path: location_path.to_owned(),
                instance_id: instance_id.map(str::to_owned),
            },
            "device status",
        )
    }

    /// The Hyper-V group-policy values.
    pub fn policy(&mut self) -> Result<PolicyValues, HostError> {
        self.query_one(Query::Policy, "policy values")
    }

    /// The partitionable GPUs.
    pub fn partitionable_gpus(&mut self) -> Result<Vec<PartitionableGpu>, HostError> {
        let answer = self.run(&Script::query(Query::PartitionableGpus))?;
        Ok(answer
            .data
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect())
    }
}
