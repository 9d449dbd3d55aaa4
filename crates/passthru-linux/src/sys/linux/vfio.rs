//! The VFIO ioctls, in the order QEMU makes them, recorded into a [`ProbeTrace`].
//!
//! Numbers and layouts are those of `include/uapi/linux/vfio.h` (Debian 12 `linux-libc-dev`
//! 6.1.187). Every request is `_IO(';', 100 + n)`: VFIO passes sizes in `argsz` rather than in
//! the request number, so the numbers never change when structures grow.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use passthru_core::pci::PciAddress;

use crate::errno::Errno;
use crate::vfio::{
    Outcome, ProbeTrace, RawDependentDevice, RawDeviceInfo, RawIrqInfo, RawRegionInfo, uapi,
};

const VFIO_TYPE: u32 = b';' as u32;
const VFIO_BASE: u32 = 100;

/// `_IO(VFIO_TYPE, VFIO_BASE + nr)`: direction 0, size 0.
const fn vfio_io(nr: u32) -> libc::Ioctl {
    ((VFIO_TYPE << 8) | (VFIO_BASE + nr)) as libc::Ioctl
}

const VFIO_GET_API_VERSION: libc::Ioctl = vfio_io(0);
const VFIO_CHECK_EXTENSION: libc::Ioctl = vfio_io(1);
const VFIO_SET_IOMMU: libc::Ioctl = vfio_io(2);
const VFIO_GROUP_GET_STATUS: libc::Ioctl = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: libc::Ioctl = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: libc::Ioctl = vfio_io(6);
const VFIO_DEVICE_GET_INFO: libc::Ioctl = vfio_io(7);
const VFIO_DEVICE_GET_REGION_INFO: libc::Ioctl = vfio_io(8);
const VFIO_DEVICE_GET_IRQ_INFO: libc::Ioctl = vfio_io(9);
const VFIO_DEVICE_RESET: libc::Ioctl = vfio_io(11);
const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: libc::Ioctl = vfio_io(12);
const VFIO_DEVICE_PCI_HOT_RESET: libc::Ioctl = vfio_io(13);

/// Most devices one bus reset may concern that passthru asks about (a bus has at most 256
/// functions).
const MAX_DEPENDENT_DEVICES: u32 = 256;

/// Upper bound on region and interrupt indexes read (vfio-pci has 9 and 5).
const MAX_INDEXES: u32 = 64;

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Default)]
struct VfioGroupStatus {
    argsz: u32,
    flags: u32,
}

/// `struct vfio_device_info` (6.1 layout; later kernels append a `pad` field, and accept the
/// shorter `argsz`).
#[repr(C)]
#[derive(Debug, Default)]
struct VfioDeviceInfo {
    argsz: u32,
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
    cap_offset: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Debug, Default)]
struct VfioRegionInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    cap_offset: u32,
    size: u64,
    offset: u64,
}

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Debug, Default)]
struct VfioIrqInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    count: u32,
}

const _: () = assert!(std::mem::size_of::<VfioGroupStatus>() == 8);
const _: () = assert!(std::mem::size_of::<VfioDeviceInfo>() == 20);
const _: () = assert!(std::mem::size_of::<VfioRegionInfo>() == 32);
const _: () = assert!(std::mem::align_of::<VfioRegionInfo>() == 8);
const _: () = assert!(std::mem::size_of::<VfioIrqInfo>() == 16);

fn argsz<T>() -> u32 {
    // The structures are a few dozen bytes.
    std::mem::size_of::<T>() as u32
}

fn last_errno() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

fn open_rw(path: &Path) -> Result<OwnedFd, Errno> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: `open` returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An ioctl whose argument is a plain integer; returns the ioctl's non-negative result.
fn ioctl_value(fd: &OwnedFd, request: libc::Ioctl, value: libc::c_ulong) -> Outcome<i32> {
    // SAFETY: these requests take an integer argument and touch no user memory.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), request, value) };
    if result < 0 {
        Outcome::Failed(last_errno())
    } else {
        Outcome::Ok(result)
    }
}

/// An ioctl that reads and fills `*argument`.
fn ioctl_struct<T>(fd: &OwnedFd, request: libc::Ioctl, argument: &mut T) -> Outcome<i32> {
    // SAFETY: `argument` is a valid, exclusively borrowed `#[repr(C)]` structure whose `argsz`
    // the caller set to its size, so the kernel reads and writes only within it.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_mut(argument)) };
    if result < 0 {
        Outcome::Failed(last_errno())
    } else {
        Outcome::Ok(result)
    }
}

fn unit(outcome: &Outcome<i32>) -> Outcome<()> {
    match outcome {
        Outcome::Ok(_) => Outcome::Ok(()),
        Outcome::Failed(errno) => Outcome::Failed(*errno),
    }
}

/// Probes `device` of IOMMU `group` under `root` the way QEMU opens it, and resets it when
/// `reset` is set and the device supports reset. Stops at the first step that fails. Every
/// descriptor is closed on return, which detaches the group from the container again.
pub fn probe(root: &Path, device: PciAddress, group: u32, reset: bool) -> ProbeTrace {
    let mut trace = ProbeTrace::default();
    let container = match open_rw(&root.join("dev/vfio/vfio")) {
        Ok(fd) => {
            trace.open_container = Some(Outcome::Ok(()));
            fd
        }
        Err(errno) => {
            trace.open_container = Some(Outcome::Failed(errno));
            return trace;
        }
    };
    let version = ioctl_value(&container, VFIO_GET_API_VERSION, 0);
    let version_ok = version.ok() == Some(&uapi::API_VERSION);
    trace.api_version = Some(version);
    if !version_ok {
        return trace;
    }
    let type1v2 = ioctl_value(&container, VFIO_CHECK_EXTENSION, uapi::TYPE1V2_IOMMU.into());
    let type1 = ioctl_value(&container, VFIO_CHECK_EXTENSION, uapi::TYPE1_IOMMU.into());
    let model = if type1v2.ok().is_some_and(|n| *n > 0) {
        Some(uapi::TYPE1V2_IOMMU)
    } else if type1.ok().is_some_and(|n| *n > 0) {
        Some(uapi::TYPE1_IOMMU)
    } else {
        None
    };
    trace.type1v2 = Some(type1v2);
    trace.type1 = Some(type1);
    let Some(model) = model else {
        return trace;
    };

    let group_fd = match open_rw(&root.join(format!("dev/vfio/{group}"))) {
        Ok(fd) => {
            trace.open_group = Some(Outcome::Ok(()));
            fd
        }
        Err(errno) => {
            trace.open_group = Some(Outcome::Failed(errno));
            return trace;
        }
    };
    let mut status = VfioGroupStatus {
        argsz: argsz::<VfioGroupStatus>(),
        flags: 0,
    };
    let status_outcome = ioctl_struct(&group_fd, VFIO_GROUP_GET_STATUS, &mut status);
    let viable = status_outcome.ok().is_some() && status.flags & uapi::GROUP_FLAGS_VIABLE != 0;
    trace.group_flags = Some(match status_outcome {
        Outcome::Ok(_) => Outcome::Ok(status.flags),
        Outcome::Failed(errno) => Outcome::Failed(errno),
    });
    if !viable {
        return trace;
    }
    let mut container_fd: libc::c_int = container.as_raw_fd();
    let attached = unit(&ioctl_struct(
        &group_fd,
        VFIO_GROUP_SET_CONTAINER,
        &mut container_fd,
    ));
    let attached_ok = attached.ok().is_some();
    trace.set_container = Some(attached);
    if !attached_ok {
        return trace;
    }
    let iommu = ioctl_value(&container, VFIO_SET_IOMMU, model.into());
    let iommu_ok = iommu.ok().is_some();
    trace.set_iommu = Some(match iommu {
        Outcome::Ok(_) => Outcome::Ok(model),
        Outcome::Failed(errno) => Outcome::Failed(errno),
    });
    if !iommu_ok {
        return trace;
    }

    let Ok(name) = CString::new(device.to_string()) else {
        return trace;
    };
    // SAFETY: the request reads a NUL-terminated string, which `name` is for the whole call.
    let device_raw = unsafe {
        libc::ioctl(
            group_fd.as_raw_fd(),
            VFIO_GROUP_GET_DEVICE_FD,
            name.as_ptr(),
        )
    };
    if device_raw < 0 {
        trace.device_fd = Some(Outcome::Failed(last_errno()));
        return trace;
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    let device_fd = unsafe { OwnedFd::from_raw_fd(device_raw) };
    trace.device_fd = Some(Outcome::Ok(()));

    let mut info = VfioDeviceInfo {
        argsz: argsz::<VfioDeviceInfo>(),
        ..VfioDeviceInfo::default()
    };
    if let Outcome::Failed(errno) = ioctl_struct(&device_fd, VFIO_DEVICE_GET_INFO, &mut info) {
        trace.device_info = Some(Outcome::Failed(errno));
        return trace;
    }
    trace.device_info = Some(Outcome::Ok(RawDeviceInfo {
        flags: info.flags,
        num_regions: info.num_regions,
        num_irqs: info.num_irqs,
    }));
    for index in 0..info.num_regions.min(MAX_INDEXES) {
        let mut region = VfioRegionInfo {
            argsz: argsz::<VfioRegionInfo>(),
            index,
            ..VfioRegionInfo::default()
        };
        trace.regions.push(
            match ioctl_struct(&device_fd, VFIO_DEVICE_GET_REGION_INFO, &mut region) {
                Outcome::Ok(_) => Outcome::Ok(RawRegionInfo {
                    index,
                    flags: region.flags,
                    size: region.size,
                    offset: region.offset,
                }),
                Outcome::Failed(errno) => Outcome::Failed(errno),
            },
        );
    }
    for index in 0..info.num_irqs.min(MAX_INDEXES) {
        let mut irq = VfioIrqInfo {
            argsz: argsz::<VfioIrqInfo>(),
            index,
            ..VfioIrqInfo::default()
        };
        trace.irqs.push(
            match ioctl_struct(&device_fd, VFIO_DEVICE_GET_IRQ_INFO, &mut irq) {
                Outcome::Ok(_) => Outcome::Ok(RawIrqInfo {
                    index,
                    flags: irq.flags,
                    count: irq.count,
                }),
                Outcome::Failed(errno) => Outcome::Failed(errno),
            },
        );
    }
    if reset && info.flags & uapi::DEVICE_FLAGS_RESET != 0 {
        trace.reset = Some(unit(&ioctl_value(&device_fd, VFIO_DEVICE_RESET, 0)));
    } else if reset {
        hot_reset(&device_fd, &group_fd, group, &mut trace);
    }
    drop(device_fd);
    drop(group_fd);
    drop(container);
    trace
}

/// QEMU's reset for a device without one of its own (`vfio_pci_hot_reset_one`): ask which
/// devices a bus or slot reset concerns, and reset them together when they all belong to the
/// probed group (the only group this process holds).
fn hot_reset(device_fd: &OwnedFd, group_fd: &OwnedFd, group: u32, trace: &mut ProbeTrace) {
    // `struct vfio_pci_hot_reset_info`: argsz, flags, count, then `count` entries of two words
    // (`struct vfio_pci_dependent_device`). The first call with the header alone answers
    // ENOSPC and the count.
    let mut header = [3 * 4_u32, 0, 0];
    let count = match ioctl_struct(device_fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &mut header) {
        Outcome::Ok(_) => header[2],
        Outcome::Failed(errno) if errno == Errno::ENOSPC => header[2],
        Outcome::Failed(errno) => {
            trace.hot_reset_info = Some(Outcome::Failed(errno));
            return;
        }
    };
    let count = count.min(MAX_DEPENDENT_DEVICES);
    let mut buffer = vec![0_u32; 3 + 2 * count as usize];
    buffer[0] = 4 * (3 + 2 * count);
    // SAFETY: the buffer holds `argsz` bytes (the header and room for `count` entries), all
    // exclusively borrowed for the call; the kernel writes at most `argsz` bytes.
    let result = unsafe {
        libc::ioctl(
            device_fd.as_raw_fd(),
            VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
            buffer.as_mut_ptr(),
        )
    };
    if result < 0 {
        trace.hot_reset_info = Some(Outcome::Failed(last_errno()));
        return;
    }
    let answered = buffer[2].min(count) as usize;
    let devices: Vec<RawDependentDevice> = buffer[3..3 + 2 * answered]
        .chunks_exact(2)
        .map(|words| {
            let [segment_low, segment_high, bus, devfn] = words[1].to_ne_bytes();
            RawDependentDevice {
                group_id: words[0],
                segment: u16::from_ne_bytes([segment_low, segment_high]),
                bus,
                devfn,
            }
        })
        .collect();
    let only_ours = devices.iter().all(|device| device.group_id == group);
    trace.hot_reset_info = Some(Outcome::Ok(devices));
    if !only_ours {
        return;
    }
    // `struct vfio_pci_hot_reset`: argsz, flags, count, then the group descriptors.
    let mut request = [4 * 4_i32, 0, 1, group_fd.as_raw_fd()];
    trace.hot_reset = Some(unit(&ioctl_struct(
        device_fd,
        VFIO_DEVICE_PCI_HOT_RESET,
        &mut request,
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_uapi_header() {
        // _IO(';', 100) = 0x3b64 (linux/vfio.h; linux/ioctl.h with direction and size 0).
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64 as libc::Ioctl);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3b65 as libc::Ioctl);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a as libc::Ioctl);
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f as libc::Ioctl);
        assert_eq!(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x3b70 as libc::Ioctl);
        assert_eq!(VFIO_DEVICE_PCI_HOT_RESET, 0x3b71 as libc::Ioctl);
    }

    #[test]
    fn a_tree_without_vfio_stops_at_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let trace = probe(dir.path(), "0000:01:00.0".parse().unwrap(), 3, false);
        assert_eq!(trace.open_container, Some(Outcome::Failed(Errno::ENOENT)));
        assert_eq!(trace.api_version, None);
    }

    #[test]
    fn a_regular_file_is_not_a_vfio_container() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("dev/vfio")).unwrap();
        fs_err::write(dir.path().join("dev/vfio/vfio"), b"").unwrap();
        let trace = probe(dir.path(), "0000:01:00.0".parse().unwrap(), 3, false);
        assert_eq!(trace.open_container, Some(Outcome::Ok(())));
        assert_eq!(trace.api_version, Some(Outcome::Failed(Errno::ENOTTY)));
    }

    /// This machine's `/dev/vfio/vfio`, when it has one: opening it and asking the API
    /// version changes nothing.
    #[test]
    fn the_real_container_speaks_version_zero_when_present() {
        if !Path::new("/dev/vfio/vfio").exists() {
            return;
        }
        let trace = probe(
            Path::new("/"),
            "0000:ff:1f.7".parse().unwrap(),
            u32::MAX,
            false,
        );
        if let Some(Outcome::Ok(version)) = trace.api_version {
            assert_eq!(version, uapi::API_VERSION);
        }
    }
}
