//! `server`: the one binary. Parses the command line and configuration, then runs a subcommand.

use std::process::ExitCode;

use bootstrap::cli::Cli;
use bootstrap::config::Config;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = bootstrap::telemetry::init(config.log_format()) {
        eprintln!("cannot set up logging: {error}");
        return ExitCode::from(2);
    }
    match bootstrap::run(cli.command_or_default(), config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the cause chain; no backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
