//! The `infra` command line: parses flags, runs one command, maps the outcome to an exit code.

mod cli;
mod commands;
mod view;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let style = view::Style::new(args.color);
    match commands::run(&args, &style) {
        Ok(code) => code.into(),
        Err(e) => {
            view::print_error(&style, &e);
            commands::Outcome::Failed.into()
        }
    }
}
