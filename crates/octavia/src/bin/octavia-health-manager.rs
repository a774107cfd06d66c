//! `octavia-health-manager`: receives amphora heartbeats and keeps health and statuses current.

fn main() -> std::process::ExitCode {
    octavia::cli::main_role(octavia::runtime::Role::HealthManager)
}
