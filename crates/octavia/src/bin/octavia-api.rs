//! `octavia-api`: the Octavia v2 REST API server alone.

fn main() -> std::process::ExitCode {
    octavia::cli::main_role(octavia::runtime::Role::Api)
}
