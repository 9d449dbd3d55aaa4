//! `passthru`: hand host devices (above all GPUs) to virtual machines and take them back,
//! safely, on Hyper-V and Linux KVM.

mod cli;
mod commands;
mod hyperv;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    output::init_color(cli.global.color);
    match commands::run(cli) {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}
