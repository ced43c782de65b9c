//! spa-client: sends one SPA packet to open a door, or knocks a port sequence.
//! Parses the command line, runs it, and turns errors into messages and exit codes.

use std::io;
use std::process::ExitCode;

use clap::Parser;
use spa_client::app::{run, EXIT_WAIT_TIMEOUT};
use spa_client::cli::{Cli, Command};
use spa_client::clock_sync::{self, KernelClock, WarnWhen};

/// The kernel's NTP state: adjtimex(2) with `modes = 0` only reads it.
/// `None` when the call fails (or off Linux).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // The one call std and nix do not wrap; spa_client itself forbids unsafe.
fn kernel_clock() -> Option<KernelClock> {
    // SAFETY: `timex` is a plain C struct of integers, for which all-zero is a
    // valid value; modes = 0 asks adjtimex to change nothing.
    let mut tx: nix::libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a live, exclusively borrowed `timex` for the whole call,
    // which only writes the kernel's state into it.
    let state = unsafe { nix::libc::adjtimex(&mut tx) };
    (state >= 0).then_some(KernelClock {
        state,
        status: tx.status,
    })
}

#[cfg(not(target_os = "linux"))]
fn kernel_clock() -> Option<KernelClock> {
    None
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let when = clock_sync::warn_when(&cli.command);
    let clock_warning = match when {
        WarnWhen::Never => None,
        _ => clock_sync::warning(kernel_clock()),
    };
    if let (WarnWhen::Before, Some(warning)) = (when, &clock_warning) {
        eprintln!("{warning}");
    }
    let warn_on_no_answer = |code: u8| {
        if let (WarnWhen::OnNoAnswer, Some(warning), EXIT_WAIT_TIMEOUT) =
            (when, &clock_warning, code)
        {
            eprintln!("{warning}");
        }
    };
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    match run(&cli, &mut out, &mut err) {
        Ok(code) => {
            warn_on_no_answer(code);
            ExitCode::from(code)
        }
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
            warn_on_no_answer(code);
            ExitCode::from(code)
        }
    }
}
