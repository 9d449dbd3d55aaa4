//! The fake kernel for tests: an in-memory sysfs tree plus a model of what the kernel does on
//! each write, behind the same [`KernelPort`](crate::bind::KernelPort) as the real kernel.
//!
//! Available to this crate's unit tests and, with the `testing` feature, to other crates'
//! tests (`passthru-linux = { workspace = true, features = ["testing"] }` under
//! `[dev-dependencies]`). A feature rather than a separate crate keeps the model next to the
//! code whose kernel semantics it mirrors, and it is compiled out of release builds.
//!
//! What is modelled (from `Documentation/ABI/testing/sysfs-bus-pci`, `drivers/base/bus.c`,
//! `drivers/pci/pci-driver.c`, `drivers/vfio/group.c`; see `docs/assign.md`):
//!
//! - `driver_override`: a write sets it (one trailing newline stripped); an empty line clears
//!   it to `(null)`. It does not unbind and does not load modules.
//! - `drivers/<drv>/unbind`: removes the `driver` link and the driver's device link; `ENODEV`
//!   when the device is not bound to that driver.
//! - `drivers/<drv>/bind`: `EBUSY` when already bound, `ENODEV` when the driver does not match
//!   (an override naming another driver, or an id the driver does not know), else the probe's
//!   error.
//! - `drivers_probe`: binds an unbound device to the override driver when set and loaded, else
//!   to its natural driver; reports success even when nothing binds.
//! - vfio-pci's probe fails (`EINVAL`) for a device without an IOMMU group; `/dev/vfio/<N>`
//!   exists while at least one device of group N is bound to vfio-pci (the group's character
//!   device is created when the first device registers, whatever the group's viability), and
//!   `/dev/vfio/vfio` while `vfio` is loaded.
//! - `modprobe`: loads dependencies first, then the module, then `post:` soft dependencies;
//!   a module that registers a driver binds every matching unbound device. `rmmod`: refuses a
//!   module in use (refcount = users + dependent modules), unbinds its devices otherwise.
//! - Faults to inject: the n-th mutating call fails, writes to a path fail or hang, a driver's
//!   probe fails for a device, `modprobe` of a module fails.

mod builder;
mod kernel;
mod render;
mod scenarios;
mod tree;

pub use builder::{FakeDevice, FakeKernelBuilder, FakeModule};
pub use kernel::{FakeKernel, WriteFault};
pub use scenarios::lab;
pub use tree::{MemTree, Node};
