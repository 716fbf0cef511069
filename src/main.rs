//! The `vecport` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(vecport::cli::main())
}
