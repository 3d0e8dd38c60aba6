//! The `ggcore` executable.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ggcore::cli::Cli::parse();
    ggcore::telemetry::init(cli.log_format);
    match ggcore::cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ggcore: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
