//! spad: the SPA daemon. Parses the command line and runs the daemon.

use std::process::ExitCode;

use clap::Parser;
use spad::cli::{Cli, Command};
use tracing_subscriber::filter::LevelFilter;

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
    // Under journald: priorities as `<N>` prefixes, no time or level word.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.event_format(spad::log_format::JournalFormat).init();
    } else {
        builder.init();
    }
}

/// `spad status` and `spad close`: one request to the running daemon.
fn control(command: &Command) -> ExitCode {
    use spad::control::{request, ControlReply, Request};
    let (socket, req) = match command {
        Command::Status { socket, .. } => (socket, Request::Status),
        Command::Close {
            all: true, socket, ..
        } => (socket, Request::CloseAll),
        Command::Close {
            door: Some(door),
            addr: Some(addr),
            socket,
            ..
        } => (
            socket,
            Request::Close {
                door: door.clone(),
                addr: *addr,
            },
        ),
        _ => {
            eprintln!("spad: say which door and address to close, or --all");
            return ExitCode::from(2);
        }
    };
    match request(socket, &req) {
        Ok(ControlReply::Status(status)) => {
            let text = match command {
                Command::Status { json: true, .. } => match serde_json::to_string_pretty(&status) {
                    Ok(text) => text + "\n",
                    Err(e) => {
                        eprintln!("spad: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                Command::Status {
                    prometheus: true, ..
                } => status.to_prometheus(),
                _ => status.to_table(),
            };
            print_out(&text)
        }
        Ok(ControlReply::Closed { closed }) => {
            let mut text = String::new();
            if closed.is_empty() {
                text.push_str("no doors were open\n");
            }
            for d in closed {
                text.push_str(&format!("closed {} for {}\n", d.door, d.addr));
            }
            print_out(&text)
        }
        Ok(ControlReply::Error { message }) => {
            eprintln!("spad: {message}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("spad: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a reader that went away (`spad status | head`) is not an error.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spad: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The capabilities spad needs (bits of CapEff): CAP_NET_ADMIN (12), CAP_NET_RAW (13).
fn has_needed_capabilities() -> bool {
    const NEEDED: u64 = (1 << 12) | (1 << 13);
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        // Without /proc, let the daemon try and report what fails.
        .is_none_or(|eff| eff & NEEDED == NEEDED)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command @ (Command::Status { .. } | Command::Close { .. })) = &cli.command {
        return control(command);
    }
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
    if let Some(Command::ImportFwknop { file, fwknopd_conf }) = &cli.command {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))
        };
        let texts = read(file).and_then(|access| {
            let daemon = fwknopd_conf.as_deref().map(read).transpose()?;
            Ok((access, daemon))
        });
        return match texts {
            Ok((access, daemon)) => {
                let fwknopd = fwknopd_conf.as_deref().zip(daemon.as_deref());
                let import = spad::import_fwknop::import(file, &access, fwknopd);
                print!("{}", import.config);
                for w in &import.warnings {
                    eprintln!("warning: {w}");
                }
                if import.carried == 0 {
                    eprintln!(
                        "spad: no stanza of {} carries over (see the warnings above)",
                        file.display()
                    );
                    return ExitCode::FAILURE;
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
        return match spad::check::check(&cli.config, spad::clock::now().wall_ms) {
            Ok(report) if report.ok() => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Ok(report) => {
                eprintln!("{report}");
                ExitCode::FAILURE
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
    if !has_needed_capabilities() {
        eprintln!(
            "spad: needs CAP_NET_RAW and CAP_NET_ADMIN (run as root or via conf/spad.service)"
        );
        return ExitCode::FAILURE;
    }
    init_logging();
    let result = spad::daemon::Daemon::start(&cli.config).and_then(|d| d.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logged once: the log goes to stderr already.
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
