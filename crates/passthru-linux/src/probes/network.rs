//! Network devices carrying a default route (`/proc/net/route`, `/proc/net/ipv6_route`),
//! followed through `/sys/class/net/<if>` to the PCI device, through `lower_*` links for
//! bridges, bonds and VLANs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use passthru_core::hostfs::HostFs;
use passthru_core::pci::PciAddress;

use super::{Finding, FindingKind, Severity};
use crate::sysfs;

/// `RTF_UP` (include/uapi/linux/route.h).
const RTF_UP: u32 = 0x0001;
/// `RTF_REJECT`: an "unreachable" route, which carries nothing.
const RTF_REJECT: u32 = 0x0200;

/// Interfaces carrying a default route, by the PCI device under them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteUse {
    /// PCI device → interface names.
    pub by_device: BTreeMap<PciAddress, Vec<String>>,
}

/// Interfaces of IPv4 default routes in `/proc/net/route` (destination and mask 0, up).
pub fn parse_ipv4_defaults(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, destination, flags, mask) = (
                fields.first()?,
                fields.get(1)?,
                fields.get(3)?,
                fields.get(7)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            (*destination == "00000000"
                && *mask == "00000000"
                && flags & RTF_UP != 0
                && flags & RTF_REJECT == 0)
                .then(|| (*iface).to_owned())
        })
        .collect()
}

/// Interfaces of IPv6 default routes in `/proc/net/ipv6_route` (`::/0`, up, not reject, not
/// `lo`).
pub fn parse_ipv6_defaults(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                return None;
            }
            let flags = u32::from_str_radix(fields[8], 16).ok()?;
            let default = fields[0].bytes().all(|b| b == b'0') && fields[1] == "00";
            (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && fields[9] != "lo")
                .then(|| fields[9].to_owned())
        })
        .collect()
}

/// Interfaces of every default route, IPv4 and IPv6, without repeats.
pub fn default_route_interfaces(fs: &dyn HostFs) -> Result<BTreeSet<String>, String> {
    let v4 = fs
        .read_text(Path::new("/proc/net/route"))
        .map_err(|error| format!("could not read /proc/net/route: {error}"))?;
    let mut interfaces: BTreeSet<String> = parse_ipv4_defaults(&v4).into_iter().collect();
    if let Ok(v6) = fs.read_text(Path::new("/proc/net/ipv6_route")) {
        interfaces.extend(parse_ipv6_defaults(&v6));
    }
    Ok(interfaces)
}

fn pci_devices_of_interface(fs: &dyn HostFs, dir: &Path, depth: usize) -> BTreeSet<PciAddress> {
    let mut found = BTreeSet::new();
    if depth > 8 {
        return found;
    }
    let Ok(real) = sysfs::canonicalize(fs, dir) else {
        return found;
    };
    if let Some(address) = sysfs::pci_ancestor(&real) {
        found.insert(address);
        return found;
    }
    for entry in fs.read_dir(&real).unwrap_or_default() {
        if entry.name.starts_with("lower_") {
            found.extend(pci_devices_of_interface(
                fs,
                &real.join(&entry.name),
                depth + 1,
            ));
        }
    }
    found
}

pub(super) fn read_route_use(fs: &dyn HostFs) -> Result<RouteUse, String> {
    let mut routes = RouteUse::default();
    for interface in default_route_interfaces(fs)? {
        let dir = Path::new("/sys/class/net").join(&interface);
        for address in pci_devices_of_interface(fs, &dir, 0) {
            routes
                .by_device
                .entry(address)
                .or_default()
                .push(interface.clone());
        }
    }
    Ok(routes)
}

pub(super) fn findings(routes: &Result<RouteUse, String>, device: PciAddress) -> Option<Finding> {
    let interfaces = routes.as_ref().ok()?.by_device.get(&device)?;
    Some(Finding::new(
        device,
        FindingKind::DefaultRoute,
        Severity::NeedsForce,
        format!(
            "{device} carries the host's default route (interface {})",
            interfaces.join(", ")
        ),
        "the host loses its network connection, and with it any remote session, when this \
         card goes to the VM. Move the route to another interface first, or --force if you are \
         at the console",
    ))
}
