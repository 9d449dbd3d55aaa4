//! Windows driver packages: parsing INF files, resolving the exact file set a GPU needs in a
//! guest, and syncing it incrementally.

pub mod inf;
pub mod sync;
