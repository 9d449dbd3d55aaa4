//! Writes a big fake sysfs tree for benchmarks: Intel 82576 PFs with 63 SR-IOV VFs each,
//! every function in its own IOMMU group, with the files `passthru survey` and
//! `lspci -A linux-sysfs` read.
//!
//! ```sh
//! cargo run --release -p passthru-linux --example gen-sysfs -- /tmp/tree-2000 2000
//! passthru --root /tmp/tree-2000 survey --json >/dev/null
//! lspci -nnk -A linux-sysfs -O sysfs.path=/tmp/tree-2000/sys/bus/pci
//! ```

use std::process::ExitCode;

#[cfg(unix)]
fn main() -> ExitCode {
    generate::run()
}

#[cfg(not(unix))]
fn main() -> ExitCode {
    eprintln!("gen-sysfs writes symbolic links and runs on Unix only");
    ExitCode::FAILURE
}

#[cfg(unix)]
mod generate {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use passthru_linux::fake_sysfs::scenarios::{Dumps, sriov_farm};

    const VFS_PER_PF: usize = 63;

    pub(crate) fn run() -> ExitCode {
        let mut args = std::env::args().skip(1);
        let (Some(dir), Some(devices)) = (
            args.next(),
            args.next().and_then(|count| count.parse::<usize>().ok()),
        ) else {
            eprintln!("usage: gen-sysfs DIR DEVICE-COUNT");
            return ExitCode::from(2);
        };
        let dir = PathBuf::from(dir);
        if dir.exists() {
            eprintln!("{} exists; give a new directory", dir.display());
            return ExitCode::from(2);
        }
        let pfs = devices.saturating_sub(2).div_ceil(VFS_PER_PF + 1).max(1);
        let host = match sriov_farm(&Dumps::repository(), pfs, VFS_PER_PF) {
            Ok(host) => host,
            Err(error) => {
                eprintln!("could not build the host: {error}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(error) = host.write_tree(&dir) {
            eprintln!("could not write {}: {error}", dir.display());
            return ExitCode::FAILURE;
        }
        println!(
            "{} PCI functions under {}",
            pfs * (VFS_PER_PF + 1) + 2,
            dir.display()
        );
        ExitCode::SUCCESS
    }
}
