//! Windows driver packages: parsing INF files, resolving the exact file set a GPU needs in a
//! guest, and syncing it incrementally.

pub mod dirid;
pub mod guest;
pub mod guest_path;
pub mod inf;
pub mod package;
pub mod sync;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
