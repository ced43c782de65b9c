//! spa-client: sends one SPA packet to open a door, or knocks a port sequence.
//! Parses the command line, runs it, and turns errors into messages and exit codes.

use std::io;
use std::process::ExitCode;

use clap::Parser;
use spa_client::app::run;
use spa_client::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    match run(&cli, &mut out, &mut err) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code();
            // Each error's message already carries its cause; don't repeat the chain.
            let report = anyhow::anyhow!("{e}").context(match cli.command {
                Command::Open(_) | Command::Alias(_) => "cannot open the door",
                Command::Knock(_) => "cannot knock",
                Command::Config(_) => "cannot show the settings",
                Command::SshProxy(_) => "ssh-proxy",
                Command::Enroll(_) => "cannot enrol",
                Command::ExportKey(_) => "cannot export the key",
                Command::ImportKey(_) => "cannot import the key",
            });
            eprintln!("spa-client: error: {report:#}");
            ExitCode::from(code)
        }
    }
}
