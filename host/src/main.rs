//! The `weir` binary: parse the command line, start logging, run the command.

use clap::Parser;

/// jemalloc for every allocation of the process, librdkafka's included:
/// under steady load glibc's malloc kept several times the live heap.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = weir::cli::Cli::parse();
    weir::telemetry::init();
    if let Err(e) = weir::memory::purge_in_background() {
        tracing::warn!(
            error = format!("{e:#}"),
            "freed memory is returned to the system only as the host allocates"
        );
    }
    if let Ok(spec) = std::env::var("WEIR_FAILPOINT") {
        weir::failpoint::arm(&spec);
    }
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
