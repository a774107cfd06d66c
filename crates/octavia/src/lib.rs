//! octavia-rs binaries as a library: configuration, process wiring, the operator CLI.
//!
//! The binaries in `src/bin/` are thin: they parse arguments and call [`cli`].

pub mod bench;
pub mod certs_rotate;
pub mod cli;
pub mod config;
pub mod heartbeat_key;
pub mod ops;
pub mod rotate;
pub mod runtime;
pub mod settings;

/// The control plane allocates many small objects per request (rows, JSON); mimalloc
/// serves them markedly faster than glibc's allocator under concurrency (measured with
/// `octavia bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
