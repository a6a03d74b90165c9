//! The `lastgood` binary: parse, call the library, render, exit.

mod args;
mod commands;
mod error;
mod output;

use clap::Parser;

fn main() {
    output::ignore_sigpipe();
    let cli = args::Cli::parse();
    let result = commands::run(&cli);
    output::library_notes(&cli.global);
    let code = match result {
        Ok(code) => code,
        Err(e) => error::report(&e, &cli),
    };
    std::process::exit(code);
}
