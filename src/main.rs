//! The `vecport` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    return_large_buffers();
    std::process::ExitCode::from(vecport::cli::main())
}

/// Makes glibc's malloc serve every allocation of 1 MiB or more (request
/// bodies, row group buffers) with its own mapping, returned to the system
/// when freed. By default the threshold rises to the largest block freed so
/// far, after which such buffers are carved from the heaps of whichever
/// threads freed them and stay resident: peak RSS then creeps up with the
/// length of an export or import instead of staying at what is in flight.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: a plain libc call that only changes malloc's tuning; it runs
    // first thing in `main`, before any other thread exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers() {}
