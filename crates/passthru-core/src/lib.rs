//! The platform-neutral heart of passthru.
//!
//! passthru reads a host into plain data (an *inventory*), judges it with pure functions
//! (*checks* that carry reasons a person can act on), turns every change into a *plan* of
//! typed steps, and runs plans through an *executor* that journals each step before it acts
//! so that `passthru undo` can always finish or roll back. This crate holds the parts of that
//! pipeline that do not depend on the operating system:
//!
//! - [`pci`]: addresses, ids, class codes, BARs, config-space capabilities;
//! - [`hostfs`]: the read-only view of a host's files that inventory readers use, so that a
//!   real root, a test tree and a replayed snapshot all look the same;
//! - [`plan`]: steps, plans, the journal and the executor;
//! - [`runner`]: the port through which external commands are run (and faked in tests);
//! - [`select`]: device selectors (address, `vendor:device`, name) shared by every platform.

pub mod hostfs;
pub mod pci;
pub mod plan;
pub mod runner;
pub mod select;
