//! `octavia-housekeeping`: purges old DELETED rows and finished jobs, queues the renewal of
//! amphora certificates before they expire.

fn main() -> std::process::ExitCode {
    octavia::cli::main_role(octavia::runtime::Role::Housekeeping)
}
