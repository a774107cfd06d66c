//! `octavia`: the all-in-one control plane (API + worker in one process) and the
//! operator commands (`octavia config check|sample`, `octavia db migrate`, `octavia bench`).

fn main() -> std::process::ExitCode {
    octavia::cli::main_all_in_one()
}
