//! Reading `/sys/kernel/iommu_groups`: members (PCI or not), reserved regions, domain type.
//!
//! Group numbers can have gaps and members can be non-PCI devices (ls-iommu got both wrong),
//! so nothing here assumes either.

use std::path::Path;

use passthru_core::hostfs::{EntryKind, HostDir, HostFs, child};
use passthru_core::pci::PciAddress;

use super::model::{GroupMember, IommuGroup, ReservedRegion};
use super::sysfs_text::{file_name, io_reason, quote, read_optional_text_in};
use super::workers::Scratch;

/// Where the kernel lists IOMMU groups.
pub(crate) const IOMMU_GROUPS: &str = "/sys/kernel/iommu_groups";

/// Lists the group directories: `(number, directory name)`, skipping (with a warning) names
/// that are not numbers.
pub(crate) fn list_groups(fs: &dyn HostFs, warnings: &mut Vec<String>) -> Vec<(u32, String)> {
    let entries = match fs.read_dir(Path::new(IOMMU_GROUPS)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            warnings.push(format!(
                "could not list {IOMMU_GROUPS}: {}",
                io_reason(&error)
            ));
            return Vec::new();
        }
    };
    let mut groups = Vec::new();
    for entry in entries {
        match entry.name.parse::<u32>() {
            Ok(number) => groups.push((number, entry.name)),
            Err(_) => warnings.push(format!(
                "{IOMMU_GROUPS}/{}: not a group number; ignored",
                quote(&entry.name)
            )),
        }
    }
    groups
}

/// Reads one group directory, `name` in `groups` (the opened [`IOMMU_GROUPS`]).
pub(crate) fn read_group(
    fs: &dyn HostFs,
    groups: &dyn HostDir,
    scratch: &mut Scratch<'_>,
    name: &str,
    number: u32,
) -> IommuGroup {
    let Scratch {
        bytes, name: entry, ..
    } = scratch;
    let mut group = IommuGroup {
        number,
        members: Vec::new(),
        reserved_regions: Vec::new(),
        default_domain: None,
        warnings: Vec::new(),
    };
    match groups.read_dir(in_group(entry, name, "devices")) {
        Ok(entries) => {
            for entry in entries {
                let member = match entry.name.parse::<PciAddress>() {
                    Ok(address) => GroupMember::Pci { address },
                    Err(_) => read_other_member(
                        fs,
                        &child(groups.path(), &format!("{name}/devices")),
                        &entry.name,
                        entry.kind,
                        &mut group.warnings,
                    ),
                };
                group.members.push(member);
            }
        }
        Err(error) => group.warnings.push(format!(
            "devices: could not be listed: {}",
            io_reason(&error)
        )),
    }
    match read_optional_text_in(groups, in_group(entry, name, "reserved_regions"), bytes) {
        Ok(Some(text)) => {
            group.reserved_regions = parse_reserved_regions(&text, &mut group.warnings)
        }
        Ok(None) => {}
        Err(error) => group.warnings.push(format!(
            "reserved_regions: could not be read: {}",
            io_reason(&error)
        )),
    }
    match read_optional_text_in(groups, in_group(entry, name, "type"), bytes) {
        Ok(value) => group.default_domain = value.filter(|value| !value.is_empty()),
        Err(error) => group
            .warnings
            .push(format!("type: could not be read: {}", io_reason(&error))),
    }
    group
}

/// `group/file` in `buffer`, which is reused: a big host has thousands of groups.
fn in_group<'a>(buffer: &'a mut String, group: &str, file: &str) -> &'a str {
    buffer.clear();
    buffer.push_str(group);
    buffer.push('/');
    buffer.push_str(file);
    buffer
}

/// A member that is not a PCI function (its name is no PCI address).
fn read_other_member(
    fs: &dyn HostFs,
    devices: &Path,
    name: &str,
    kind: EntryKind,
    warnings: &mut Vec<String>,
) -> GroupMember {
    let link = devices.join(name);
    let sysfs_path = if kind == EntryKind::Symlink {
        match fs.resolve_link(&link) {
            Ok(target) => {
                if !fs.exists(&target) {
                    warnings.push(format!(
                        "devices/{name}: the link points to {}, which does not exist",
                        target.display()
                    ));
                }
                Some(target)
            }
            Err(error) => {
                warnings.push(format!(
                    "devices/{name}: could not read the link: {}",
                    io_reason(&error)
                ));
                None
            }
        }
    } else {
        Some(link)
    };
    let driver = sysfs_path.as_ref().and_then(|path| {
        let driver_link = path.join("driver");
        fs.kind(&driver_link)?;
        let target = fs.resolve_link(&driver_link).ok()?;
        file_name(&target).map(str::to_owned)
    });
    GroupMember::Other {
        name: name.to_owned(),
        sysfs_path: sysfs_path.map(|path| path.display().to_string()),
        driver,
    }
}

/// Parses `reserved_regions`: `"0x%016llx 0x%016llx %s\n"` per line (start, end, type).
pub(crate) fn parse_reserved_regions(
    text: &str,
    warnings: &mut Vec<String>,
) -> Vec<ReservedRegion> {
    let mut regions = Vec::new();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
    {
        let mut fields = line.split_whitespace();
        let parsed = (|| {
            let start = u64::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
            let end = u64::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
            let kind = fields.next()?.to_owned();
            fields
                .next()
                .is_none()
                .then_some(ReservedRegion { start, end, kind })
        })();
        match parsed {
            Some(region) => regions.push(region),
            None => warnings.push(format!(
                "reserved_regions line {}: `{}` is malformed",
                index + 1,
                quote(line)
            )),
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_regions_parse_and_report_bad_lines() {
        let mut warnings = Vec::new();
        let regions = parse_reserved_regions(
            "0x00000000fee00000 0x00000000feefffff msi\n0x00000000000a0000 0x00000000000fffff direct-relaxable\ngarbage\n",
            &mut warnings,
        );
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].start, 0xfee0_0000);
        assert_eq!(regions[1].kind, "direct-relaxable");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("line 3"));
    }
}
