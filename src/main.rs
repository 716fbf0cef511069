//! The `vecport` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    vecport::cli::return_large_buffers();
    std::process::ExitCode::from(vecport::cli::main())
}
