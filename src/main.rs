//! The `orderflow` binary: parse the command line, hand it to the library.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = orderflow::cli::Cli::parse();
    match orderflow::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
