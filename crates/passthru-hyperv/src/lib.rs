//! Hyper-V support: the models of what PowerShell reports, the parsers for it, script
//! generation, and the GPU partitioning and DDA planners. Everything but the PowerShell runner
//! itself is platform-neutral and tested on Linux.
