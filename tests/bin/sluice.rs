//! The `sluice` binary, built inside this package so end-to-end tests can
//! run it as a child process (`CARGO_BIN_EXE_sluice-e2e`): the same entry
//! point as `host/src/main.rs`, nothing else.

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
