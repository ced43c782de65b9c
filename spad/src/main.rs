//! spad: the SPA daemon. Parses the command line and runs the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;

/// spad keeps doors (ssh, an admin page, …) closed to everyone and opens one,
/// for one address and for a while, when a valid SPA packet asks for it.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  spad --config /etc/spad.toml            run (as a systemd service: see conf/spad.service)\n  spad --check --config /etc/spad.toml    check the config and its keys, then exit\n\nSignals: SIGHUP reloads the config and keys, SIGTERM closes every open door and exits,\nSIGUSR1 logs the counters."
)]
struct Cli {
    /// The configuration file.
    #[arg(long, short = 'c', default_value = spad::config::DEFAULT_PATH)]
    config: PathBuf,
    /// Check the configuration and the keys directory, print a summary, and exit.
    #[arg(long, conflicts_with = "init_state")]
    check: bool,
    /// First install only: create the state directory and an empty replay cache, so
    /// the first start does not refuse packets for `skew_secs`. Never run it after
    /// the state directory was lost: that wait is what stops old packets being replayed.
    #[arg(long)]
    init_state: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a spad config equivalent to a knockd.conf (review it, then use it).
    ///
    /// Example: spad import-knockd /etc/knockd.conf > /etc/spad.toml
    ImportKnockd {
        /// The knockd configuration file.
        file: PathBuf,
    },
}

fn init_logging() {
    // SPAD_LOG=debug|info|warn|error (default info); debug logs every dropped datagram.
    let level = std::env::var("SPAD_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false);
    // Under journald the journal adds its own timestamps.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ImportKnockd { file }) = &cli.command {
        let imported = std::fs::read_to_string(file)
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))
            .and_then(|text| spad::import_knockd::import(file, &text).map_err(|e| e.to_string()));
        return match imported {
            Ok(import) => {
                print!("{}", import.toml);
                for w in &import.warnings {
                    eprintln!("warning: {w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("spad: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check {
        return match spad::check::check(&cli.config) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.init_state {
        let done = spad::config::Config::load(&cli.config)
            .map_err(spad::daemon::DaemonError::from)
            .and_then(|c| Ok((spad::journal::Journal::init(&c.state_dir)?, c.state_dir)));
        return match done {
            Ok((true, dir)) => {
                println!("created an empty replay cache in {}", dir.display());
                ExitCode::SUCCESS
            }
            Ok((false, dir)) => {
                println!(
                    "{} already holds a replay cache: left as it is",
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("spad: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging();
    let result = spad::daemon::Daemon::start(&cli.config).and_then(|d| d.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("spad: {e}");
            ExitCode::FAILURE
        }
    }
}
