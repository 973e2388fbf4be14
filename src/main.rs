//! The `patchwarden` binary: reads the configuration, sets up logging and hands the
//! command to `cli`.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

use patchwarden::config::RawSettings;
use patchwarden::telemetry;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match RawSettings::load(cli.config.as_deref()).and_then(|raw| raw.validate()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("patchwarden: {err}");
            return ExitCode::from(2);
        }
    };
    // The demo writes its log to a file in its own directory, once it has made it.
    if !cli.command.logs_to_file() {
        telemetry::init(config.log_format, &config.log_level);
    }
    match cli::run(cli.command, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("patchwarden: {err:#}");
            ExitCode::FAILURE
        }
    }
}
