//! octavia-rs binaries as a library: configuration, process wiring, the operator CLI.
//!
//! The binaries in `src/bin/` are thin: they parse arguments and call [`cli`].

pub mod bench;
pub mod cli;
pub mod config;
pub mod runtime;
pub mod settings;
