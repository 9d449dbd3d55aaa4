//! Refusal probes.
