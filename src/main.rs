//! The `infra` command line: parses flags, runs one command, maps the outcome to an exit code.

mod cli;
mod commands;
mod engine;
mod environ;
mod error;
mod events;
mod git;
mod load;
mod lock;
mod provider;
mod rollback;
mod rollout;
mod run;
mod transport;
mod view;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // First, while the process has one thread: secret variables leave the environment.
    environ::capture_and_scrub();
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // Usage errors exit 1, so `plan --detailed-exitcode`'s 2 always means "changes".
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    let style = view::Style::new(args.color);
    match commands::run(&args, &style) {
        Ok(code) => code.into(),
        // A reader that stopped (`infra roles list | head -1`): end quietly, as ls and git do.
        Err(error::CliError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            view::print_error(&style, &e);
            error::Outcome::Failed.into()
        }
    }
}
