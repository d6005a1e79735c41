//! The `weir` binary: parse the command line, start logging, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = weir::cli::Cli::parse();
    weir::telemetry::init();
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
