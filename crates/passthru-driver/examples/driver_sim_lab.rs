//! Writes a simulated Hyper-V host for `passthru driver sync` into a directory: the state file,
//! the host's driver store (NVIDIA 470.05's INF with stand-in files) and a VM whose three disks
//! are directories (see `passthru_driver::testing::lab`).
//!
//! ```text
//! cargo run -p passthru-driver --features testing --example driver_sim_lab -- DIR [update]
//! PASSTHRU_HYPERV_SIMULATOR=DIR/state.json passthru driver sync --vm exampleName --dry-run
//! ```
//!
//! With `update`, changes the host's driver of an existing lab as a driver update does (a new
//! driver-store folder with about one file in ten changed).

use std::path::PathBuf;
use std::process::ExitCode;

use passthru_driver::testing::lab::SimLab;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: driver_sim_lab DIR [update]");
        return ExitCode::from(2);
    };
    let update = args.next().is_some_and(|arg| arg == "update");
    let result = if update {
        SimLab::open(&dir).update_driver().map(|update| {
            println!(
                "updated the host's driver to {} in {}: {} file(s) changed, 1 removed, 1 added",
                SimLab::UPDATED_VERSION,
                update.package,
                update.changed.len()
            );
        })
    } else {
        SimLab::build(&dir).map(|lab| {
            println!("PASSTHRU_HYPERV_SIMULATOR={}", lab.state_file().display());
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
