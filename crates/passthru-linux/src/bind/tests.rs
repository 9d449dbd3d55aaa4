//! The sysfs steps against the fake kernel: the recipe's exact writes, failure and crash at
//! every point, and undo restoring the kernel's complete visible state.

mod fault_injection;
mod steps;
