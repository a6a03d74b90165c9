//! The `lastgood` binary: parse, call the library, render, exit.

mod args;
mod commands;
mod error;
mod output;

use clap::Parser;

fn main() {
    output::ignore_sigpipe();
    let cli = args::Cli::parse();
    let code = match commands::run(&cli) {
        Ok(code) => code,
        Err(e) => error::report(&e, &cli),
    };
    std::process::exit(code);
}
