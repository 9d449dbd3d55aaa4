//! Hyper-V support: the models of what PowerShell reports, the parsers for it, script
//! generation, the simulated Hyper-V, and the GPU partitioning and DDA planners. Everything but
//! the choice of the real `powershell.exe` ([`sys`]) is platform-neutral and tested on Linux.
//!
//! How the pieces fit:
//!
//! - [`ps`]: the port. A [`ps::Script`] is PowerShell text plus a machine-readable list of
//!   what it does; a [`ps::PowerShell`] runs scripts (real process or [`sim::Simulator`]) and
//!   every answer comes back in one JSON envelope;
//! - [`client::HyperVHost`]: typed reads and changes over any port, errors classified by
//!   [`error`];
//! - [`model`]: the answers as data; [`text`]: parsers of text people paste;
//! - [`survey`]: the conclusions (host readiness, GPU-P, a SurveyDDA-equivalent verdict per
//!   device, VM problems) and [`snapshot`], the portable record of a host's answers;
//! - [`plan`]: GPU-P and DDA planners producing journaled, undoable [`plan::HyperVStep`]s.

pub mod client;
pub mod cpu;
pub mod error;
pub mod mmio;
pub mod model;
pub mod ops;
pub mod plan;
pub mod ps;
pub mod query;
pub mod sim;
pub mod snapshot;
pub mod survey;
pub mod sys;
pub mod text;
