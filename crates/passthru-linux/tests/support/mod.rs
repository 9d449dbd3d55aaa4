//! Test support for boot configuration: fixture roots with a sysfs, and fake distribution
//! tools that behave like the real ones closely enough for the plans to be checked end to
//! end (an "image" is the list of paths it contains).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use passthru_core::hostfs::RealFs;
use passthru_core::plan::executor::ExecOptions;
use passthru_core::plan::journal::{Journal, Outcome};
use passthru_core::runner::{CommandOutput, CommandRunner, CommandSpec, SystemRunner};
use passthru_linux::boot::detect::DetectOptions;
use passthru_linux::boot::execute::{self, Prepared};
use passthru_linux::boot::planner::Request;
use passthru_linux::boot::preflight::FixedSpace;
use passthru_linux::boot::step::BootHost;

/// A fixed time for plans, so snapshots are stable.
pub(crate) const NOW: &str = "2025-06-01T12:00:00Z";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/roots")
}

/// A fixture root copied into a temporary directory.
pub(crate) struct Root {
    pub(crate) dir: tempfile::TempDir,
}

impl Root {
    /// Copies `fixtures/roots/NAME`.
    pub(crate) fn copy(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fixtures_dir().join(name), dir.path());
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn real(&self, host_path: &str) -> PathBuf {
        self.dir.path().join(host_path.trim_start_matches('/'))
    }

    pub(crate) fn read(&self, host_path: &str) -> String {
        fs_err::read_to_string(self.real(host_path)).unwrap()
    }

    pub(crate) fn write(&self, host_path: &str, text: &str) {
        let path = self.real(host_path);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
    }

    /// Adds a PCI function to the root's sysfs: `driver` is `(driver name, module)`; a module
    /// of `None` means the driver is built in.
    pub(crate) fn add_pci(
        &self,
        address: &str,
        id: (u16, u16),
        class: u32,
        driver: Option<(&str, Option<&str>)>,
        boot_vga: bool,
    ) {
        let dir = self.real(&format!("/sys/bus/pci/devices/{address}"));
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("vendor"), format!("0x{:04x}\n", id.0)).unwrap();
        fs_err::write(dir.join("device"), format!("0x{:04x}\n", id.1)).unwrap();
        fs_err::write(dir.join("class"), format!("0x{class:06x}\n")).unwrap();
        fs_err::write(dir.join("driver_override"), "(null)\n").unwrap();
        fs_err::write(
            dir.join("modalias"),
            format!(
                "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}\n",
                id.0,
                id.1,
                id.0,
                0x1234,
                class >> 16,
                (class >> 8) & 0xff,
                class & 0xff
            ),
        )
        .unwrap();
        if class >> 16 == 0x03 {
            fs_err::write(dir.join("boot_vga"), if boot_vga { "1\n" } else { "0\n" }).unwrap();
        }
        if let Some((name, module)) = driver {
            let driver_dir = self.real(&format!("/sys/bus/pci/drivers/{name}"));
            fs_err::create_dir_all(&driver_dir).unwrap();
            symlink(&format!("../../drivers/{name}"), &dir.join("driver"));
            if let Some(module) = module {
                fs_err::create_dir_all(self.real(&format!("/sys/module/{module}"))).unwrap();
                let link = driver_dir.join("module");
                if !link.exists() {
                    symlink(&format!("../../../../module/{module}"), &link);
                }
            }
        }
    }

    /// Every file under the root (except sysfs) with its bytes and mode, and every directory.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, (Vec<u8>, u32)> {
        let mut out = BTreeMap::new();
        walk(self.path(), self.path(), &mut out);
        out
    }
}

#[cfg(unix)]
fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() == ".gitkeep" {
            // Stands for an empty directory in the fixture.
        } else {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
    use std::os::unix::fs::MetadataExt;
    for entry in fs_err::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap().display().to_string();
        if relative == "sys" {
            continue;
        }
        let metadata = fs_err::symlink_metadata(&path).unwrap();
        if metadata.is_dir() {
            out.insert(
                format!("{relative}/"),
                (Vec::new(), metadata.mode() & 0o7777),
            );
            walk(root, &path, out);
        } else {
            out.insert(
                relative,
                (fs_err::read(&path).unwrap(), metadata.mode() & 0o7777),
            );
        }
    }
}

/// Plans `request` on `root` and checks the plan (with plenty of room in /boot).
pub(crate) fn prepare(root: &Root, request: &Request) -> Prepared {
    let fs = RealFs::new(root.path());
    let prepared = execute::prepare(&fs, request, DetectOptions::default(), NOW).unwrap();
    execute::check(&prepared, &fs, &mut SystemRunner, &FixedSpace(1 << 40)).unwrap();
    prepared
}

/// Applies a prepared plan with the fake tools; it must succeed.
pub(crate) fn apply(root: &Root, journal: &mut Journal, prepared: &Prepared, tools: &FakeTools) {
    let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
    let report = execute::apply(
        journal,
        &prepared.plan,
        &mut host,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
}

/// Undoes the journal's last operation with the fake tools; it must restore everything.
pub(crate) fn undo_last(root: &Root, journal: &mut Journal, tools: &FakeTools) {
    let operation = journal.last_undoable().unwrap().unwrap();
    let mut host = BootHost::new(root.path(), tools.boxed(), journal.blobs());
    let report = execute::undo(journal, &operation, &mut host, &mut |_| {}).unwrap();
    assert!(report.undo_errors.is_empty(), "{:?}", report.undo_errors);
}

/// Asserts that the root holds exactly the files, bytes, modes and directories of `before`.
pub(crate) fn assert_unchanged(before: &BTreeMap<String, (Vec<u8>, u32)>, root: &Root) {
    assert_eq!(differences(before, &root.snapshot()), Vec::<String>::new());
}

/// The differences between two snapshots, for readable assertion messages.
pub(crate) fn differences(
    before: &BTreeMap<String, (Vec<u8>, u32)>,
    after: &BTreeMap<String, (Vec<u8>, u32)>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, value) in before {
        match after.get(path) {
            None => lines.push(format!("missing: {path}")),
            Some(other) if other.0 != value.0 => lines.push(format!("changed: {path}")),
            Some(other) if other.1 != value.1 => lines.push(format!("mode changed: {path}")),
            _ => {}
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            lines.push(format!("added: {path}"));
        }
    }
    lines
}

/// Fake distribution tools acting on a root.
#[derive(Clone)]
pub(crate) struct FakeTools {
    root: PathBuf,
    /// Every command run, as text.
    pub(crate) log: Rc<RefCell<Vec<String>>>,
    /// A command whose text contains this fails.
    pub(crate) fail_on: Rc<RefCell<Option<String>>>,
    /// Whether `fail_on` fails only the first matching command (a transient failure).
    pub(crate) fail_once: Rc<RefCell<bool>>,
    /// Paths containing this are silently left out of every image built (a broken generator).
    pub(crate) leave_out: Rc<RefCell<Option<String>>>,
}

impl FakeTools {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            log: Rc::default(),
            fail_on: Rc::default(),
            fail_once: Rc::default(),
            leave_out: Rc::default(),
        }
    }

    pub(crate) fn boxed(&self) -> Box<dyn CommandRunner> {
        Box::new(self.clone())
    }

    fn real(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    fn text(&self, host_path: &str) -> Option<String> {
        fs_err::read_to_string(self.real(host_path)).ok()
    }

    fn files_in(&self, dir: &str, suffix: &str) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(self.real(dir))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(suffix))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|name| format!("{dir}/{name}"))
            .collect()
    }

    /// Module paths (with dependencies) for `names` in kernel `kver`'s modules.dep.
    fn module_paths(&self, kver: &str, names: &[String]) -> Result<Vec<String>, String> {
        let dir = ["/usr/lib/modules", "/lib/modules"]
            .iter()
            .map(|base| format!("{base}/{kver}"))
            .find(|dir| self.real(dir).exists())
            .ok_or_else(|| format!("no modules for {kver}"))?;
        let dep = self.text(&format!("{dir}/modules.dep")).unwrap_or_default();
        let builtin = self
            .text(&format!("{dir}/modules.builtin"))
            .unwrap_or_default();
        let mut paths = Vec::new();
        for name in names {
            let normalized = name.replace('-', "_");
            let line = dep.lines().find(|line| {
                let path = line.split(':').next().unwrap_or("");
                let file = path.rsplit('/').next().unwrap_or("");
                file.split(".ko").next().unwrap_or("").replace('-', "_") == normalized
            });
            match line {
                Some(line) => {
                    let (path, deps) = line.split_once(':').unwrap_or((line, ""));
                    for item in std::iter::once(path).chain(deps.split_whitespace()) {
                        paths.push(format!("usr/lib/modules/{kver}/{item}"));
                    }
                }
                None if builtin.lines().any(|l| {
                    l.rsplit('/').next().unwrap_or("").split(".ko").next() == Some(name)
                }) => {}
                None => return Err(format!("FATAL: Module {name} not found in directory {dir}")),
            }
        }
        Ok(paths)
    }

    fn write_image(&self, image: &str, mut lines: Vec<String>) -> Result<(), String> {
        let base = self
            .text(image)
            .ok_or_else(|| format!("{image} does not exist. Cannot update."))?;
        let leave_out = self.leave_out.borrow().clone();
        let mut all: Vec<String> = base
            .lines()
            .filter(|line| {
                !line.contains("/vfio")
                    && !line.contains("etc/modprobe.d/passthru")
                    && !line.contains("05-passthru-vfio")
                    && !line.ends_with("/irqbypass.ko")
                    && !line.contains("/irqbypass.ko.")
            })
            .map(str::to_owned)
            .collect();
        all.append(&mut lines);
        if let Some(leave_out) = leave_out {
            all.retain(|line| !line.contains(&leave_out));
        }
        all.sort();
        all.dedup();
        let mut text = all.join("\n");
        text.push('\n');
        fs_err::write(self.real(image), text).map_err(|e| e.to_string())
    }

    fn modprobe_confs(&self) -> Vec<String> {
        self.files_in("/etc/modprobe.d", ".conf")
            .into_iter()
            .map(|path| path.trim_start_matches('/').to_owned())
            .collect()
    }

    fn update_initramfs(&self, args: &[String]) -> Result<String, String> {
        let kver = args
            .iter()
            .position(|a| a == "-k")
            .and_then(|i| args.get(i + 1))
            .ok_or("usage: update-initramfs -u -k VERSION")?;
        let modules: Vec<String> = self
            .text("/etc/initramfs-tools/modules")
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect();
        let mut lines = self.module_paths(kver, &modules)?;
        lines.extend(self.modprobe_confs());
        let hook = "/etc/initramfs-tools/hooks/passthru-vfio";
        if self.real(hook).exists() {
            if !self
                .real("/etc/udev/rules.d/05-passthru-vfio.rules")
                .exists()
            {
                return Err(format!("E: {hook} failed with return 1."));
            }
            lines.push("usr/lib/udev/rules.d/05-passthru-vfio.rules".into());
        }
        self.write_image(&format!("/boot/initrd.img-{kver}"), lines)?;
        Ok(format!(
            "update-initramfs: Generating /boot/initrd.img-{kver}\n"
        ))
    }

    fn dracut(&self, args: &[String]) -> Result<String, String> {
        let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        let (image, kver) = match positional.as_slice() {
            [image, kver] => (image.as_str(), kver.as_str()),
            _ => return Err("usage: dracut --force IMAGE KVER".into()),
        };
        let mut drivers = Vec::new();
        let mut items = Vec::new();
        for conf in self.files_in("/etc/dracut.conf.d", ".conf") {
            for line in self.text(&conf).unwrap_or_default().lines() {
                for key in ["force_drivers+=\"", "add_drivers+=\"", "install_items+=\""] {
                    if let Some(value) = line.trim().strip_prefix(key) {
                        if !value.starts_with(' ') {
                            return Err(format!(
                                "{conf}: dracut concatenates `{key}` values; it needs a leading space"
                            ));
                        }
                        let words = value
                            .trim_end_matches('"')
                            .split_whitespace()
                            .map(str::to_owned);
                        if key.starts_with("install") {
                            items.extend(words);
                        } else {
                            drivers.extend(words);
                        }
                    }
                }
            }
        }
        let mut lines = self.module_paths(kver, &drivers)?;
        lines.extend(
            items
                .iter()
                .map(|item| item.trim_start_matches('/').to_owned()),
        );
        lines.extend(self.modprobe_confs());
        self.write_image(image, lines)?;
        Ok(String::new())
    }

    /// Evaluates the mkinitcpio configuration with the real bash, as mkinitcpio does.
    fn mkinitcpio(&self) -> Result<String, String> {
        let script = format!(
            "source '{root}/etc/mkinitcpio.conf'; for f in '{root}'/etc/mkinitcpio.conf.d/*.conf; do [ -e \"$f\" ] && source \"$f\"; done; printf '%s\\n' \"${{MODULES[@]}}\"; echo --; printf '%s\\n' \"${{FILES[@]}}\"; echo --; printf '%s\\n' \"${{HOOKS[@]}}\"",
            root = self.root.display()
        );
        let output = SystemRunner
            .run(&CommandSpec::new("bash", ["-c".to_owned(), script]))
            .map_err(|e| e.to_string())?;
        if !output.success() {
            return Err(output.stderr_text());
        }
        let text = output.stdout_text();
        let mut parts = text.split("--\n");
        let words = |part: Option<&str>| -> Vec<String> {
            part.unwrap_or("")
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let modules = words(parts.next());
        let files = words(parts.next());
        let hooks = words(parts.next());
        for preset in self.files_in("/etc/mkinitcpio.d", ".preset") {
            let pkgbase = preset
                .rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".preset");
            let kver = fs_err::read_dir(self.real("/usr/lib/modules"))
                .map_err(|e| e.to_string())?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|k| {
                    self.text(&format!("/usr/lib/modules/{k}/pkgbase"))
                        .as_deref()
                        .map(str::trim)
                        == Some(pkgbase)
                })
                .ok_or("no kernel for preset")?;
            for line in self.text(&preset).unwrap_or_default().lines() {
                if let Some((name, value)) = line.split_once("_image=")
                    && !name.starts_with('#')
                {
                    let image = value.trim_matches('"');
                    let mut lines = self.module_paths(&kver, &modules)?;
                    lines.extend(
                        files
                            .iter()
                            .map(|f| format!("./{}", f.trim_start_matches('/'))),
                    );
                    if hooks.iter().any(|h| h == "modconf") {
                        lines.extend(self.modprobe_confs().into_iter().map(|p| format!("./{p}")));
                    }
                    let lines = lines
                        .into_iter()
                        .map(|l| {
                            if l.starts_with("./") {
                                l
                            } else {
                                format!("./{l}")
                            }
                        })
                        .collect();
                    self.write_image(image, lines)?;
                }
            }
        }
        Ok(String::new())
    }

    fn booster_build(&self, args: &[String]) -> Result<String, String> {
        let kver = args
            .iter()
            .position(|a| a == "--kernel-version")
            .and_then(|i| args.get(i + 1))
            .ok_or("--kernel-version missing")?;
        let image = args.last().ok_or("output missing")?;
        let config = self.text("/etc/booster.yaml").unwrap_or_default();
        let modules: Vec<String> = config
            .lines()
            .filter_map(|l| l.strip_prefix("modules_force_load:"))
            .flat_map(|v| v.trim().split(',').map(str::to_owned).collect::<Vec<_>>())
            .filter(|m| !m.is_empty())
            .collect();
        let paths = self.module_paths(kver, &modules)?;
        let lines = paths
            .iter()
            .map(|p| {
                format!(
                    "./usr/lib/modules/{}",
                    p.rsplit('/').next().unwrap().replace('-', "_")
                )
            })
            .collect();
        self.write_image(image, lines)?;
        Ok(String::new())
    }

    /// Evaluates /etc/default/grub (and grub.d) with the real sh and rewrites the `linux`
    /// lines of grub.cfg the way 10_linux writes them.
    fn grub_mkconfig(&self, output: &str) -> Result<String, String> {
        let script = format!(
            ". '{root}/etc/default/grub'; for f in '{root}'/etc/default/grub.d/*.cfg; do [ -e \"$f\" ] && . \"$f\"; done; printf '%s\\n%s\\n' \"$GRUB_CMDLINE_LINUX\" \"$GRUB_CMDLINE_LINUX_DEFAULT\"",
            root = self.root.display()
        );
        let result = SystemRunner
            .run(&CommandSpec::new("sh", ["-c".to_owned(), script]))
            .map_err(|e| e.to_string())?;
        let text = result.stdout_text();
        let mut values = text.lines();
        let linux = values.next().unwrap_or("").to_owned();
        let default = values.next().unwrap_or("").to_owned();
        let cfg = self.text(output).ok_or("no grub.cfg")?;
        let mut out = String::new();
        for line in cfg.lines() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("linux\t") {
                let indent = &line[..line.len() - trimmed.len()];
                let kernel = rest.split_whitespace().next().unwrap_or("");
                if rest.contains(" single") {
                    out.push_str(&format!(
                        "{indent}linux\t{kernel} root=/dev/vda1 ro single {linux}\n"
                    ));
                } else {
                    out.push_str(&format!(
                        "{indent}linux\t{kernel} root=/dev/vda1 ro {linux} {default}\n"
                    ));
                }
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        fs_err::write(self.real(output), out).map_err(|e| e.to_string())?;
        Ok("Generating grub configuration file ...\ndone\n".into())
    }

    /// grubby: edits every BLS entry's options, and GRUB_CMDLINE_LINUX like grubby-bls does.
    fn grubby(&self, args: &[String]) -> Result<String, String> {
        let value = |prefix: &str| -> Vec<String> {
            args.iter()
                .filter_map(|a| a.strip_prefix(prefix))
                .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        let add = value("--args=");
        let remove = value("--remove-args=");
        let edit = |line: &str| -> String {
            let mut words: Vec<String> = line
                .split_whitespace()
                .filter(|w| !remove.contains(&(*w).to_owned()))
                .map(str::to_owned)
                .collect();
            for arg in &add {
                if !words.contains(arg) {
                    words.push(arg.clone());
                }
            }
            words.join(" ")
        };
        for entry in self.files_in("/boot/loader/entries", ".conf") {
            let text = self.text(&entry).unwrap_or_default();
            let out: Vec<String> = text
                .lines()
                .map(|line| match line.strip_prefix("options ") {
                    Some(options) => format!("options {}", edit(options)),
                    None => line.to_owned(),
                })
                .collect();
            fs_err::write(self.real(&entry), out.join("\n") + "\n").map_err(|e| e.to_string())?;
        }
        if let Some(text) = self.text("/etc/default/grub") {
            let out: Vec<String> = text
                .lines()
                .map(|line| match line.strip_prefix("GRUB_CMDLINE_LINUX=\"") {
                    Some(rest) => format!(
                        "GRUB_CMDLINE_LINUX=\"{}\"",
                        edit(rest.trim_end_matches('"'))
                    ),
                    None => line.to_owned(),
                })
                .collect();
            fs_err::write(self.real("/etc/default/grub"), out.join("\n") + "\n")
                .map_err(|e| e.to_string())?;
        }
        Ok(String::new())
    }

    /// kernelstub -a/-d: edits the user options in its JSON and rewrites its entries.
    fn kernelstub(&self, args: &[String]) -> Result<String, String> {
        let path = "/etc/kernelstub/configuration";
        let mut config: serde_json::Value =
            serde_json::from_str(&self.text(path).ok_or("no configuration")?)
                .map_err(|e| e.to_string())?;
        let options = config["user"]["kernel_options"]
            .as_array_mut()
            .ok_or("bad configuration")?;
        let mut i = 0;
        while i < args.len() {
            let words: Vec<String> = args
                .get(i + 1)
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            match args[i].as_str() {
                "-a" => {
                    for word in words {
                        if !options.iter().any(|o| o.as_str() == Some(&word)) {
                            options.push(serde_json::Value::String(word));
                        }
                    }
                }
                "-d" => options.retain(|o| !words.iter().any(|w| o.as_str() == Some(w))),
                other => return Err(format!("unknown option {other}")),
            }
            i += 2;
        }
        let joined: Vec<String> = options
            .iter()
            .filter_map(|o| o.as_str().map(str::to_owned))
            .collect();
        fs_err::write(
            self.real(path),
            serde_json::to_string_pretty(&config).unwrap(),
        )
        .map_err(|e| e.to_string())?;
        for entry in self.files_in("/boot/efi/loader/entries", ".conf") {
            let text = self.text(&entry).unwrap_or_default();
            let out: Vec<String> = text
                .lines()
                .map(|line| match line.strip_prefix("options ") {
                    Some(old) => {
                        let root: Vec<&str> =
                            old.split_whitespace().take_while(|w| *w != "ro").collect();
                        format!("options {} ro {}", root.join(" "), joined.join(" "))
                    }
                    None => line.to_owned(),
                })
                .collect();
            fs_err::write(self.real(&entry), out.join("\n") + "\n").map_err(|e| e.to_string())?;
        }
        Ok(String::new())
    }

    fn dispatch(&self, spec: &CommandSpec) -> Result<String, String> {
        let args = &spec.args;
        match spec.program.as_str() {
            "update-initramfs" => self.update_initramfs(args),
            "dracut" => self.dracut(args),
            "mkinitcpio" => self.mkinitcpio(),
            "booster" if args.first().map(String::as_str) == Some("build") => {
                self.booster_build(args)
            }
            "lsinitramfs" | "lsinitrd" | "lsinitcpio" | "booster" => {
                let image = args.last().ok_or("image missing")?;
                self.text(image)
                    .ok_or_else(|| format!("{image}: No such file"))
            }
            "update-grub" => self.grub_mkconfig("/boot/grub/grub.cfg"),
            "grub-mkconfig" | "grub2-mkconfig" => {
                self.grub_mkconfig(args.get(1).ok_or("-o missing")?)
            }
            "grubby" => self.grubby(args),
            "kernelstub" => self.kernelstub(args),
            other => Err(format!("{other}: command not found")),
        }
    }
}

impl CommandRunner for FakeTools {
    fn run(&mut self, spec: &CommandSpec) -> io::Result<CommandOutput> {
        // Syntax checks use the real shells: they only parse.
        if matches!(spec.program.as_str(), "sh" | "bash") && spec.args == ["-n"] {
            return SystemRunner.run(spec);
        }
        let text = spec.to_string();
        self.log.borrow_mut().push(text.clone());
        let failure = self.fail_on.borrow().clone();
        let result = match failure {
            Some(needle) if text.contains(&needle) => {
                if *self.fail_once.borrow() {
                    *self.fail_on.borrow_mut() = None;
                }
                Err(format!("simulated failure of `{text}`"))
            }
            _ => self.dispatch(spec),
        };
        Ok(match result {
            Ok(stdout) => CommandOutput {
                status: Some(0),
                stdout: stdout.into_bytes(),
                stderr: Vec::new(),
                timed_out: false,
            },
            Err(stderr) => CommandOutput {
                status: Some(1),
                stdout: Vec::new(),
                stderr: stderr.into_bytes(),
                timed_out: false,
            },
        })
    }
}
