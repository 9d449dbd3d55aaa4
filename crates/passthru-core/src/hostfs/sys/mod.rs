//! How [`RealFs`](super::RealFs) opens a directory, one module per platform (crosvm's `sys/`
//! rule): Linux keeps a directory file descriptor and looks names up relative to it;
//! elsewhere entries are read by path.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod other;

#[cfg(target_os = "linux")]
pub(super) use linux::open_dir;
#[cfg(not(target_os = "linux"))]
pub(super) use other::open_dir;
