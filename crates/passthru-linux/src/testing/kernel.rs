//! The fake kernel's state, behaviour on writes and commands, and fault injection.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;
use passthru_core::runner::{CommandOutput, CommandSpec};

use super::tree::MemTree;
use crate::bind::{KernelPort, Timeouts, WriteError, WriteFailure, WriteKind};
use crate::errno::Errno;
use crate::sysfs;

/// One device's dynamic state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeviceState {
    /// The real sysfs directory (`/sys/devices/pci0000:00/.../0000:01:00.0`).
    pub(super) path: PathBuf,
    pub(super) group: Option<u32>,
    /// The driver whose id table matches the device.
    pub(super) natural_driver: Option<String>,
    pub(super) driver: Option<String>,
    pub(super) driver_override: Option<String>,
}

/// One module's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ModuleState {
    pub(super) driver: Option<String>,
    pub(super) depends: Vec<String>,
    pub(super) softdep_post: Vec<String>,
    pub(super) builtin: bool,
    pub(super) loaded: bool,
    /// References apart from dependent modules (open files, ...).
    pub(super) users: u64,
}

/// A fault on writes to paths ending in `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFault {
    /// Matches host-absolute paths that end with this text.
    pub suffix: String,
    /// `Some(errno)` rejects; `None` hangs (the write times out and changes nothing).
    pub errno: Option<Errno>,
    /// How many more writes it hits; `None` for every one.
    pub remaining: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct Faults {
    fail_mutation: Option<(usize, Errno)>,
    writes: Vec<WriteFault>,
    probes: BTreeMap<(PciAddress, String), Errno>,
    modprobe: BTreeSet<String>,
}

/// The fake kernel (see the [module documentation](super)).
#[derive(Debug, Clone)]
pub struct FakeKernel {
    pub(super) tree: MemTree,
    pub(super) devices: BTreeMap<PciAddress, DeviceState>,
    pub(super) modules: BTreeMap<String, ModuleState>,
    pub(super) rendered: Vec<PathBuf>,
    faults: Faults,
    log: Vec<String>,
    mutations: usize,
    timeouts: Timeouts,
}

impl FakeKernel {
    pub(super) fn from_parts(
        tree: MemTree,
        devices: BTreeMap<PciAddress, DeviceState>,
        modules: BTreeMap<String, ModuleState>,
        unbound: &[PciAddress],
    ) -> Self {
        let mut kernel = Self {
            tree,
            devices,
            modules,
            rendered: Vec::new(),
            faults: Faults::default(),
            log: Vec::new(),
            mutations: 0,
            timeouts: Timeouts::default(),
        };
        // Boot: every loaded driver binds the devices it matches.
        let addresses: Vec<PciAddress> = kernel.devices.keys().copied().collect();
        for address in addresses {
            if !unbound.contains(&address) {
                kernel.autoprobe(address);
            }
        }
        kernel.render();
        kernel
    }

    /// The visible state: every file, directory and link.
    pub fn tree(&self) -> &MemTree {
        &self.tree
    }

    /// Adds or replaces a static file (e.g. `/proc/iomem`).
    pub fn put_file(&mut self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        self.tree.file(path, contents);
    }

    /// Adds or replaces a symbolic link (e.g. `/proc/<pid>/fd/<n>` of a process holding a
    /// device file).
    pub fn put_symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) {
        self.tree.symlink(path, target);
    }

    /// Every write and command so far, in order (`write PATH "VALUE"`, `run COMMAND`).
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// How many mutating calls (writes and commands) have been made.
    pub fn mutations(&self) -> usize {
        self.mutations
    }

    /// The driver bound to a device.
    pub fn driver_of(&self, device: PciAddress) -> Option<&str> {
        self.devices
            .get(&device)
            .and_then(|state| state.driver.as_deref())
    }

    /// Whether a module is loaded.
    pub fn module_loaded(&self, module: &str) -> bool {
        self.modules
            .get(&sysfs::module_sysfs_name(module))
            .is_some_and(|state| state.loaded)
    }

    /// Sets the number of users of a module (open files and the like).
    pub fn set_module_users(&mut self, module: &str, users: u64) {
        if let Some(state) = self.modules.get_mut(&sysfs::module_sysfs_name(module)) {
            state.users = users;
        }
        self.render();
    }

    /// The `n`-th mutating call from now on (0 = the next) fails with `errno` and changes
    /// nothing.
    pub fn fail_mutation(&mut self, n: usize, errno: Errno) {
        self.faults.fail_mutation = Some((self.mutations + n, errno));
    }

    /// Writes to paths ending in `suffix` fail with `errno`, `times` times (`None`: always).
    pub fn fail_writes(&mut self, suffix: &str, errno: Errno, times: Option<usize>) {
        self.faults.writes.push(WriteFault {
            suffix: suffix.to_owned(),
            errno: Some(errno),
            remaining: times,
        });
    }

    /// Writes to paths ending in `suffix` hang (time out without effect) until faults are
    /// cleared.
    pub fn hang_writes(&mut self, suffix: &str) {
        self.faults.writes.push(WriteFault {
            suffix: suffix.to_owned(),
            errno: None,
            remaining: None,
        });
    }

    /// `driver`'s probe fails with `errno` for `device` (the device stays unbound).
    pub fn fail_probe(&mut self, device: PciAddress, driver: &str, errno: Errno) {
        self.faults
            .probes
            .insert((device, driver.to_owned()), errno);
    }

    /// `modprobe module` fails.
    pub fn fail_modprobe(&mut self, module: &str) {
        self.faults
            .modprobe
            .insert(sysfs::module_sysfs_name(module));
    }

    /// Removes every injected fault.
    pub fn clear_faults(&mut self) {
        self.faults = Faults::default();
    }

    fn injected_mutation_failure(&mut self) -> Option<Errno> {
        let index = self.mutations;
        self.mutations += 1;
        match self.faults.fail_mutation {
            Some((at, errno)) if at == index => {
                self.faults.fail_mutation = None;
                Some(errno)
            }
            _ => None,
        }
    }

    fn injected_write_fault(&mut self, path: &Path) -> Option<Option<Errno>> {
        let text = path.to_string_lossy();
        let fault = self
            .faults
            .writes
            .iter_mut()
            .find(|fault| text.ends_with(&fault.suffix) && fault.remaining != Some(0))?;
        if let Some(remaining) = fault.remaining.as_mut() {
            *remaining -= 1;
        }
        Some(fault.errno)
    }

    fn matches(&self, driver: &str, device: PciAddress) -> bool {
        let state = &self.devices[&device];
        match &state.driver_override {
            Some(name) => name == driver,
            None => state.natural_driver.as_deref() == Some(driver),
        }
    }

    /// Runs `driver`'s probe on `device`.
    fn probe_with(&mut self, device: PciAddress, driver: &str) -> Result<(), Errno> {
        if let Some(errno) = self.faults.probes.get(&(device, driver.to_owned())) {
            return Err(*errno);
        }
        let state = self.devices.get_mut(&device).ok_or(Errno::ENODEV)?;
        if driver == "vfio-pci" && state.group.is_none() {
            // vfio_pci_core_register_device -> vfio_device_set_group: no IOMMU group.
            return Err(Errno::EINVAL);
        }
        state.driver = Some(driver.to_owned());
        Ok(())
    }

    /// What the bus does for an unbound device: try each loaded driver that matches.
    fn autoprobe(&mut self, device: PciAddress) {
        let drivers: Vec<String> = self
            .modules
            .values()
            .filter(|module| module.loaded)
            .filter_map(|module| module.driver.clone())
            .collect();
        for driver in drivers {
            if self.matches(&driver, device) && self.probe_with(device, &driver).is_ok() {
                return;
            }
        }
    }

    fn device_from_payload(&self, payload: &[u8]) -> Result<PciAddress, Errno> {
        let text = String::from_utf8_lossy(payload);
        let address: PciAddress = text.trim().parse().map_err(|_| Errno::ENODEV)?;
        if self.devices.contains_key(&address) {
            Ok(address)
        } else {
            Err(Errno::ENODEV)
        }
    }

    fn perform_write(&mut self, path: &Path, payload: &[u8]) -> Result<(), Errno> {
        let real = self.tree.resolve(path, true).map_err(|_| Errno::ENOENT)?;
        if !self.tree.exists(&real) {
            return Err(Errno::ENOENT);
        }
        let name = real
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = real.parent().map(Path::to_path_buf).unwrap_or_default();
        if name == "driver_override" {
            let device = self
                .devices
                .iter()
                .find(|(_, state)| state.path == parent)
                .map(|(address, _)| *address)
                .ok_or(Errno::EACCES)?;
            let text = String::from_utf8_lossy(payload);
            let value = text.strip_suffix('\n').unwrap_or(&text);
            if value.len() >= 4096 {
                return Err(Errno::EINVAL);
            }
            let state = self.devices.get_mut(&device).ok_or(Errno::ENODEV)?;
            state.driver_override = (!value.is_empty()).then(|| value.to_owned());
            return Ok(());
        }
        if real == Path::new(sysfs::DRIVERS_PROBE) {
            let device = self.device_from_payload(payload)?;
            if self.devices[&device].driver.is_none() {
                self.autoprobe(device);
            }
            return Ok(());
        }
        let drivers_dir = Path::new("/sys/bus/pci/drivers");
        if parent.parent() == Some(drivers_dir) {
            let driver = parent
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let device = self.device_from_payload(payload)?;
            match name.as_str() {
                "unbind" => {
                    let state = self.devices.get_mut(&device).ok_or(Errno::ENODEV)?;
                    if state.driver.as_deref() != Some(driver.as_str()) {
                        return Err(Errno::ENODEV);
                    }
                    state.driver = None;
                    return Ok(());
                }
                "bind" => {
                    if self.devices[&device].driver.is_some() {
                        return Err(Errno::EBUSY);
                    }
                    if !self.matches(&driver, device) {
                        return Err(Errno::ENODEV);
                    }
                    return self.probe_with(device, &driver);
                }
                _ => {}
            }
        }
        // Anything else passthru has no business writing (new_id above all).
        Err(Errno::EACCES)
    }

    fn refcount(&self, module: &str) -> u64 {
        let dependents = self
            .modules
            .values()
            .filter(|state| state.loaded && state.depends.iter().any(|dep| dep == module))
            .count() as u64;
        self.modules
            .get(module)
            .map_or(0, |state| state.users + dependents)
    }

    pub(super) fn holders(&self, module: &str) -> Vec<String> {
        self.modules
            .iter()
            .filter(|(_, state)| state.loaded && state.depends.iter().any(|dep| dep == module))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub(super) fn module_refcount(&self, module: &str) -> u64 {
        self.refcount(module)
    }

    fn load_module(&mut self, module: &str, depth: usize) -> Result<(), String> {
        let Some(state) = self.modules.get(module).cloned() else {
            return Err(format!(
                "modprobe: FATAL: Module {module} not found in directory /lib/modules/6.1.0-fake"
            ));
        };
        if state.loaded || depth > 16 {
            return Ok(());
        }
        for dependency in &state.depends {
            self.load_module(dependency, depth + 1)?;
        }
        if let Some(module_state) = self.modules.get_mut(module) {
            module_state.loaded = true;
        }
        for soft in &state.softdep_post {
            self.load_module(soft, depth + 1)?;
        }
        if let Some(driver) = &state.driver {
            let unbound: Vec<PciAddress> = self
                .devices
                .iter()
                .filter(|(_, device)| device.driver.is_none())
                .map(|(address, _)| *address)
                .collect();
            for device in unbound {
                if self.matches(driver, device) {
                    let _ = self.probe_with(device, driver);
                }
            }
        }
        Ok(())
    }

    fn unload_module(&mut self, module: &str) -> Result<(), String> {
        let Some(state) = self.modules.get(module).cloned() else {
            return Err(format!(
                "rmmod: ERROR: Module {module} is not currently loaded"
            ));
        };
        if state.builtin {
            return Err(format!("rmmod: ERROR: Module {module} is builtin."));
        }
        if !state.loaded {
            return Err(format!(
                "rmmod: ERROR: Module {module} is not currently loaded"
            ));
        }
        if self.refcount(module) > 0 {
            let holders = self.holders(module);
            return Err(if holders.is_empty() {
                format!("rmmod: ERROR: Module {module} is in use")
            } else {
                format!(
                    "rmmod: ERROR: Module {module} is in use by: {}",
                    holders.join(" ")
                )
            });
        }
        if let Some(driver) = &state.driver {
            for device in self.devices.values_mut() {
                if device.driver.as_deref() == Some(driver.as_str()) {
                    device.driver = None;
                }
            }
        }
        if let Some(module_state) = self.modules.get_mut(module) {
            module_state.loaded = false;
        }
        Ok(())
    }

    fn run_command(&mut self, command: &CommandSpec) -> Result<(), String> {
        let args: Vec<&str> = command.args.iter().map(String::as_str).collect();
        match (command.program.as_str(), args.as_slice()) {
            ("modprobe", [module]) => {
                let module = sysfs::module_sysfs_name(module);
                if self.faults.modprobe.contains(&module) {
                    return Err(format!(
                        "modprobe: ERROR: could not insert '{module}': Invalid argument"
                    ));
                }
                self.load_module(&module, 0)
            }
            ("rmmod", [module]) => self.unload_module(&sysfs::module_sysfs_name(module)),
            _ => Err(format!("fake kernel: `{command}` is not modelled")),
        }
    }
}

fn output(result: Result<(), String>) -> CommandOutput {
    match result {
        Ok(()) => CommandOutput {
            status: Some(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
            timed_out: false,
        },
        Err(message) => CommandOutput {
            status: Some(1),
            stdout: Vec::new(),
            stderr: format!("{message}\n").into_bytes(),
            timed_out: false,
        },
    }
}

impl KernelPort for FakeKernel {
    fn fs(&self) -> &dyn HostFs {
        &self.tree
    }

    fn write(&mut self, path: &Path, payload: &[u8], kind: WriteKind) -> Result<(), WriteError> {
        self.log.push(format!(
            "write {} {:?}",
            path.display(),
            String::from_utf8_lossy(payload)
        ));
        let failure = |failure| WriteError {
            path: path.to_path_buf(),
            failure,
        };
        if let Some(errno) = self.injected_mutation_failure() {
            return Err(failure(WriteFailure::Rejected(errno)));
        }
        match self.injected_write_fault(path) {
            Some(Some(errno)) => return Err(failure(WriteFailure::Rejected(errno))),
            Some(None) => {
                return Err(failure(WriteFailure::TimedOut(
                    self.timeouts.for_write(kind),
                )));
            }
            None => {}
        }
        let result = self.perform_write(path, payload);
        self.render();
        result.map_err(|errno| failure(WriteFailure::Rejected(errno)))
    }

    fn run(&mut self, command: &CommandSpec) -> io::Result<CommandOutput> {
        self.log.push(format!("run {command}"));
        if let Some(errno) = self.injected_mutation_failure() {
            return Ok(output(Err(format!(
                "fake kernel: injected failure {errno}"
            ))));
        }
        let result = self.run_command(command);
        self.render();
        Ok(output(result))
    }
}
