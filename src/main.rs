//! `rolekd-run`: runs a pipeline YAML, and the tools around it (plugin listing, ...).
//! Every failure ends as one clear message and a non-zero exit, never a panic trace.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// Training frees and reallocates the same activation buffers every step. glibc's defaults
/// hand freed memory back to the kernel (trimming the heap top, unmapping large blocks), so
/// the next step faults every page in again, zero-filled: about 5% of a ResNet-20 epoch on
/// CPU went to page faults. Keeping it in the heap (up to 1 GiB of free memory, blocks up
/// to 32 MiB) removes that; memory is still reused, only returned to the kernel later.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    cli::quiet_panics();
    // Past a file-size limit (`ulimit -f`) the kernel would kill us with SIGXFSZ mid-write;
    // ignored, the write fails with EFBIG and is reported like a full disk.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    keep_freed_memory();
    rolekd::link_builtins();
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = cli::exit_code(&e);
            eprintln!("error: {}", cli::describe(&e));
            ExitCode::from(code)
        }
    }
}
