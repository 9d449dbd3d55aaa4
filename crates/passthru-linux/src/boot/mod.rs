//! Making a vfio-pci assignment survive reboots: kernel command line, modprobe.d, early
//! binding by address, initramfs and boot loader, as one transactional, verified, undoable plan.
//!
//! The pipeline, all over an injected root directory and a [`CommandRunner`]:
//!
//! 1. [`facts`]: the devices and host facts planning needs (read from sysfs for now);
//! 2. [`detect`]: which boot loader and initramfs generator are *in use*, with the evidence;
//! 3. [`policy`]: pure decisions: kernel parameters, binding by id or by address, modules,
//!    `softdep`s; [`render`] turns them into file contents;
//! 4. [`planner`]: a [`Plan`] of [`step::BootStep`]s: atomic file replacements (originals kept
//!    in the journal), regeneration commands for every installed kernel, checks of the rebuilt
//!    images; [`preflight`] checks it before anything changes;
//! 5. [`execute`]: runs it through the shared executor (journal first, rollback on failure);
//! 6. [`postboot`]: after the next boot, says whether it took effect and why not.
//!
//! [`CommandRunner`]: passthru_core::runner::CommandRunner
//! [`Plan`]: passthru_core::plan::Plan

pub mod atomic;
pub mod chroot;
pub mod cmdline;
pub mod detect;
pub mod diff;
pub mod execute;
pub mod facts;
pub mod kernels;
pub mod planner;
pub mod policy;
pub mod postboot;
pub mod preflight;
pub mod render;
pub mod state;
pub mod step;
pub mod textedit;

use std::io;
use std::path::{Path, PathBuf};

use passthru_core::pci::PciAddress;

/// Why boot planning or execution stopped.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A file could not be read.
    #[error("could not read `{}`: {source}", path.display())]
    Read {
        /// Host-absolute path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file has content passthru cannot understand.
    #[error("`{}` is malformed: {what}", path.display())]
    Malformed {
        /// Host-absolute path.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// No such PCI device under the root.
    #[error("there is no PCI device {0} on this host (looked in /sys/bus/pci/devices)")]
    NoSuchDevice(PciAddress),
    /// Nothing of a kind was found.
    #[error("found no {what} that passthru supports: {detail}")]
    NotFound {
        /// `boot loader` or `initramfs generator`.
        what: &'static str,
        /// What was looked for.
        detail: String,
    },
    /// More than one candidate looks in use.
    #[error("cannot tell which {what} this host uses:\n{candidates}")]
    Ambiguous {
        /// `boot loader` or `initramfs generator`.
        what: &'static str,
        /// One line per candidate with its evidence.
        candidates: String,
    },
    /// The plan cannot be made safely; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// A check before applying failed.
    #[error("the plan failed its checks, so nothing was changed:\n{0}")]
    Preflight(String),
}

impl BootError {
    /// A read error for `path`.
    pub fn read(path: &Path, source: io::Error) -> Self {
        Self::Read {
            path: path.to_owned(),
            source,
        }
    }

    /// What the person can do next, when there is something to say.
    pub fn help(&self) -> Option<String> {
        match self {
            Self::Ambiguous { what, .. } => Some(format!(
                "pick the {what} with --{} NAME; `passthru assign --help` lists the names",
                if *what == "boot loader" {
                    "bootloader"
                } else {
                    "initramfs"
                }
            )),
            Self::NotFound { .. } => Some(
                "see docs/persistent.md for what each distribution needs, or bind at run time \
                 without --persistent"
                    .to_owned(),
            ),
            Self::NoSuchDevice(_) => {
                Some("run `passthru survey` to list the devices and their addresses".to_owned())
            }
            _ => None,
        }
    }
}
