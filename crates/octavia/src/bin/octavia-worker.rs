//! `octavia-worker`: claims jobs from the store and runs their flows.

fn main() -> std::process::ExitCode {
    octavia::cli::main_role(octavia::runtime::Role::Worker)
}
