//! Repository tooling for octavia-rs; nothing here ships.
//!
//! `tidy` is a test suite, run by `cargo nextest run --workspace` (`scripts/test.sh`), that
//! checks the crate rules of ARCHITECTURE.md against `cargo metadata` and the sources: the pure
//! crates stay pure, SQL stays in `octavia-db`, the agent shares only `amphora-proto`, the
//! API, health and driver crates never run flows, and the environment is read only where
//! allowed. Run it alone with `cargo nextest run -p xtask`.

#[cfg(test)]
mod tidy;

#[cfg(test)]
mod dashboard;
