//! Checks of a plan before anything changes: the new files parse, every module the images
//! must carry exists for every kernel, the tools are installed, and `/boot` has room.

use std::io;
use std::path::{Path, PathBuf};

use passthru_core::hostfs::RealFs;
use passthru_core::runner::{CommandRunner, CommandSpec};

use super::cmdline;
use super::detect::find_tool;
use super::facts::HostFacts;
use super::kernels::ModuleStatus;
use super::planner::BootPlan;
use super::state;
use super::step::{BootStep, FileFormat, TOOL_TIMEOUT};

/// How much space is free on the file system holding a host path.
pub trait SpaceProbe {
    /// Free bytes for unprivileged writers... or for root, as the platform reports it.
    fn available(&self, path: &Path) -> io::Result<u64>;
}

/// Asks the real file system (statvfs) under a root.
#[derive(Debug, Clone)]
pub struct RealSpace(pub RealFs);

impl SpaceProbe for RealSpace {
    fn available(&self, path: &Path) -> io::Result<u64> {
        fs4::available_space(self.0.real_path(path))
    }
}

/// A fixed answer, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedSpace(pub u64);

impl SpaceProbe for FixedSpace {
    fn available(&self, _path: &Path) -> io::Result<u64> {
        Ok(self.0)
    }
}

/// What the checks found: problems stop the plan; the plan is safe to apply without any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Reasons not to apply.
    pub problems: Vec<String>,
}

impl Findings {
    /// Whether nothing stops the plan.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs every check.
pub fn check(
    plan: &BootPlan,
    facts: &HostFacts,
    root: &RealFs,
    runner: &mut dyn CommandRunner,
    space: &dyn SpaceProbe,
) -> Findings {
    let mut findings = Findings::default();
    for step in &plan.plan.steps {
        if let BootStep::File(change) = step
            && let Some(bytes) = plan.new_contents(change)
        {
            let text = String::from_utf8_lossy(bytes);
            if let Err(problem) = parse(&change.path, change.format, &text) {
                findings.problems.push(format!(
                    "the new {} would be broken: {problem}",
                    change.path.display()
                ));
            } else if let Some(shell) = match change.format {
                FileFormat::Shell => Some("sh"),
                FileFormat::Bash => Some("bash"),
                _ => None,
            } && let Err(problem) = shell_syntax(runner, shell, &text)
            {
                findings.problems.push(format!(
                    "the new {} does not pass `{shell} -n`: {problem}",
                    change.path.display()
                ));
            }
        }
    }
    check_modules(plan, facts, &mut findings);
    check_tools(plan, root, &mut findings);
    check_space(plan, root, space, &mut findings);
    findings
}

fn check_modules(plan: &BootPlan, facts: &HostFacts, findings: &mut Findings) {
    for image in &plan.images {
        let Some(kernel) = facts.kernels.iter().find(|k| k.release == image.kernel) else {
            continue;
        };
        if !kernel.modules.indexed {
            findings.problems.push(format!(
                "kernel {}: {} has no modules.dep, so passthru cannot check its modules; run \
                 `depmod {}` first",
                kernel.release,
                kernel.modules_dir.display(),
                kernel.release
            ));
            continue;
        }
        for module in &plan.required_modules {
            if kernel.modules.status(module) == ModuleStatus::Missing {
                findings.problems.push(format!(
                    "kernel {} has no module {module} (neither in modules.dep nor built in); \
                     install the package with this kernel's modules, or remove the kernel",
                    kernel.release
                ));
            }
        }
    }
}

fn check_tools(plan: &BootPlan, root: &RealFs, findings: &mut Findings) {
    let mut programs: Vec<&CommandSpec> = Vec::new();
    for step in &plan.plan.steps {
        match step {
            BootStep::Run(run) => programs.push(&run.command),
            BootStep::CheckImage(check) => programs.push(&check.list),
            _ => {}
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for command in programs {
        let found = if command.program.starts_with('/') {
            root.real_path(Path::new(&command.program)).exists()
        } else {
            find_tool(root, &command.program).is_some()
        };
        if !found && !missing.contains(&command.program) {
            missing.push(command.program.clone());
        }
    }
    for program in missing {
        findings.problems.push(format!(
            "`{program}` is not installed in the system being configured (looked in /usr/sbin, \
             /usr/bin, /sbin, /bin)"
        ));
    }
}

fn check_space(plan: &BootPlan, root: &RealFs, space: &dyn SpaceProbe, findings: &mut Findings) {
    let largest = plan
        .images
        .iter()
        .filter_map(|image| fs_err::metadata(root.real_path(&image.image)).ok())
        .map(|metadata| metadata.len())
        .max();
    let Some(largest) = largest else { return };
    // Generators write the new image next to the old one before replacing it; leave room for
    // one image plus a quarter for growth, and a little for the boot menu.
    let needed = largest + largest / 4 + 8 * 1024 * 1024;
    let dir = plan
        .images
        .first()
        .and_then(|image| image.image.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/boot"));
    match space.available(&dir) {
        Ok(free) if free < needed => findings.problems.push(format!(
            "{} has {} MiB free, but rebuilding needs about {} MiB (the largest image is {} MiB); \
             remove old kernels or make room first",
            dir.display(),
            free / (1024 * 1024),
            needed / (1024 * 1024),
            largest / (1024 * 1024)
        )),
        Ok(_) => {}
        Err(error) => findings.problems.push(format!(
            "could not tell how much space {} has: {error}",
            dir.display()
        )),
    }
}

/// `sh -n` or `bash -n` on `text`: the shell only parses it, nothing runs.
fn shell_syntax(runner: &mut dyn CommandRunner, shell: &str, text: &str) -> Result<(), String> {
    let command = CommandSpec::new(shell, ["-n"])
        .with_stdin(text.as_bytes().to_vec())
        .with_timeout(TOOL_TIMEOUT);
    match runner.run(&command) {
        Ok(output) if output.success() => Ok(()),
        Ok(output) => Err(output.stderr_text().trim().to_owned()),
        Err(error) => Err(format!("could not run sh: {error}")),
    }
}

/// Parses new contents with passthru's own reader for the format.
pub fn parse(path: &Path, format: FileFormat, text: &str) -> Result<(), String> {
    let lines = || {
        text.lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
    };
    match format {
        FileFormat::Shell | FileFormat::Bash => {
            if path.starts_with("/etc/dracut.conf.d")
                && path.extension().and_then(|e| e.to_str()) != Some("conf")
            {
                return Err("dracut reads only files ending in .conf".into());
            }
            if path.starts_with("/etc/dracut.conf.d") {
                for (number, line) in lines() {
                    if let Some((_, value)) = line.split_once("+=\"") {
                        let value = value.trim_end_matches('"');
                        if !value.starts_with(' ') || !value.ends_with(' ') {
                            return Err(format!(
                                "line {number}: dracut needs a space after the opening and \
                                 before the closing quote of a += value"
                            ));
                        }
                    }
                }
            }
            Ok(())
        }
        FileFormat::Modprobe => {
            for (number, line) in lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.first().copied() {
                    Some("softdep") => {
                        if words.len() < 4
                            || !words[2..].iter().any(|w| *w == "pre:" || *w == "post:")
                        {
                            return Err(format!(
                                "line {number}: `softdep MODULE pre: MODULES…` expected"
                            ));
                        }
                    }
                    Some("options" | "alias" | "blacklist" | "install" | "remove") => {}
                    other => return Err(format!("line {number}: unknown command {other:?}")),
                }
            }
            Ok(())
        }
        FileFormat::Udev => {
            for (number, line) in lines() {
                udev_line(line).map_err(|what| format!("line {number}: {what}"))?;
            }
            Ok(())
        }
        FileFormat::ModuleList => {
            for (number, line) in lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!("line {number}: `{name}` is not a module name"));
                }
            }
            Ok(())
        }
        FileFormat::Cmdline => {
            let body = text.strip_suffix('\n').unwrap_or(text);
            if body.contains('\n') {
                return Err("a kernel command line file must be one line".into());
            }
            if !cmdline::quotes_balanced(body) {
                return Err("a double quote is never closed".into());
            }
            Ok(())
        }
        FileFormat::BootEntry => {
            for (number, line) in lines() {
                let key = line.split_whitespace().next().unwrap_or("");
                if !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!("line {number}: `{key}` is not an entry key"));
                }
                if key == "options" && !cmdline::quotes_balanced(line) {
                    return Err(format!("line {number}: a double quote is never closed"));
                }
            }
            Ok(())
        }
        FileFormat::Yaml => {
            let mut keys = Vec::new();
            for (number, line) in text.lines().enumerate() {
                if line.trim().is_empty()
                    || line.trim_start().starts_with('#')
                    || line.starts_with(' ')
                {
                    continue;
                }
                let Some((key, _)) = line.split_once(':') else {
                    return Err(format!("line {}: `key: value` expected", number + 1));
                };
                if keys.contains(&key) {
                    return Err(format!("line {}: `{key}` appears twice", number + 1));
                }
                keys.push(key);
            }
            Ok(())
        }
        FileFormat::State => state::parse(text.as_bytes()).map(drop),
    }
}

/// Checks one udev rule line: comma-separated `KEY[{attr}]OP"value"` items.
fn udev_line(line: &str) -> Result<(), String> {
    let mut rest = line.trim();
    while !rest.is_empty() {
        let op_at = rest
            .find(['=', '!', '+', '-', ':'])
            .ok_or_else(|| format!("no operator in `{rest}`"))?;
        let key = &rest[..op_at];
        let key_ok = {
            let name = key.split('{').next().unwrap_or("");
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && (key.contains('{') == key.ends_with('}'))
        };
        if !key_ok {
            return Err(format!("`{key}` is not a udev key"));
        }
        let after = &rest[op_at..];
        let op = ["==", "!=", "+=", "-=", ":=", "="]
            .into_iter()
            .find(|op| after.starts_with(op))
            .ok_or_else(|| format!("bad operator after `{key}`"))?;
        let value = &after[op.len()..];
        let value = value
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of `{key}` must be in double quotes"))?;
        let close = value
            .find('"')
            .ok_or_else(|| format!("the value of `{key}` is not closed"))?;
        rest = value[close + 1..].trim_start();
        if let Some(next) = rest.strip_prefix(',') {
            rest = next.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("expected `,` after the value of `{key}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::render;

    #[test]
    fn passthrus_own_files_parse() {
        let address = "0000:01:00.0".parse().unwrap();
        parse(
            Path::new(render::UDEV_RULE),
            FileFormat::Udev,
            &render::udev_rule(&[address]),
        )
        .unwrap();
        parse(
            Path::new(render::MODPROBE_CONF),
            FileFormat::Modprobe,
            &render::modprobe_conf(&["amdgpu".into()]),
        )
        .unwrap();
        parse(
            Path::new(render::DRACUT_CONF),
            FileFormat::Bash,
            &render::dracut_conf(&["vfio_pci".into()], true),
        )
        .unwrap();
    }

    #[test]
    fn known_mistakes_are_caught() {
        let error = parse(
            Path::new("/etc/dracut.conf.d/vfio"),
            FileFormat::Shell,
            "force_drivers+=\" vfio \"\n",
        )
        .unwrap_err();
        assert!(error.contains(".conf"));
        let error = parse(
            Path::new("/etc/dracut.conf.d/vfio.conf"),
            FileFormat::Shell,
            "force_drivers+=\"vfio_pci vfio\"\n",
        )
        .unwrap_err();
        assert!(error.contains("space"));
        assert!(parse(Path::new("/x"), FileFormat::Modprobe, "softdep amdgpu\n").is_err());
        assert!(
            parse(
                Path::new("/x"),
                FileFormat::Udev,
                "KERNEL==\"x\", ATTR{a}=\"b"
            )
            .is_err()
        );
        assert!(parse(Path::new("/x"), FileFormat::Cmdline, "a\nb\n").is_err());
        assert!(parse(Path::new("/x"), FileFormat::Yaml, "a: 1\na: 2\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,80}") {
            for format in [
                FileFormat::Shell, FileFormat::Bash, FileFormat::Modprobe, FileFormat::Udev, FileFormat::ModuleList,
                FileFormat::Cmdline, FileFormat::BootEntry, FileFormat::Yaml, FileFormat::State,
            ] {
                let _ = parse(Path::new("/etc/dracut.conf.d/x.conf"), format, &text);
            }
        }
    }
}
