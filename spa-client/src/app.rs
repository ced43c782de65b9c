//! What each subcommand does, from parsed arguments to the lines the user
//! reads: loads the key, resolves the host, sends, knocks, waits. The only
//! module that prints; it never prints key material.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use spa_keys::{Gateway, KeyFileError};
use spa_proto::packet::{Address, DEFAULT_PORT};
use spa_proto::{DoorName, ServerId};

use crate::cli::{Cli, Command, KnockArgs, OpenArgs};
use crate::keyfile::{choose_gateway, load_key, KeyChoiceError};
use crate::knock::{KnockError, Knocker, TcpMethod};
use crate::packet_file::save_packet;
use crate::rotate::{current_sequence, RotateError};
use crate::route::{local_address_towards, resolve_each_family, resolve_spec, Family, RouteError};
use crate::send::{now_ms, send_open, OpenRequest, SendError};
use crate::target::{HostSpec, HostSpecError};
use crate::wait::{human_seconds, wait_for_tcp, WaitOutcome};

/// Exit code: `--wait` saw no answer.
pub const EXIT_WAIT_TIMEOUT: u8 = 3;
/// Exit code: usage or key-file error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: anything else failed (sending, knocking, writing).
pub const EXIT_FAILURE: u8 = 1;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The key file cannot be used.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The key file is missing (the message says what to do).
    #[error(transparent)]
    KeyChoice(#[from] KeyChoiceError),
    /// HOST (typed or from the key file) is not a host.
    #[error(transparent)]
    Host(#[from] HostSpecError),
    /// HOST:PORT and --port disagree.
    #[error("HOST {host} gives a port and --port gives {flag}: give the port once")]
    TwoPorts {
        /// HOST as typed.
        host: String,
        /// The --port value.
        flag: u16,
    },
    /// A knock HOST with :PORT.
    #[error("knock HOST {0} has a port: give the ports to knock as separate arguments")]
    KnockHostPort(String),
    /// No --key and no $HOME to find ~/.spa/key.
    #[error("no key file given and $HOME is not set: pass --key FILE")]
    NoHome,
    /// No HOST on the command line and none in the key file.
    #[error("no HOST given and the key file's gateway {0} names no host: give HOST")]
    NoHost(ServerId),
    /// Classic knock without a host or ports.
    #[error("knock needs HOST and at least one PORT (or --door DOOR [HOST])")]
    KnockUsage,
    /// The door has no rotating knock in the key file.
    #[error(
        "{path}: gateway {server_id} has no rotating knock for door {door} (it has: {available})"
    )]
    NoRotatingKnock {
        /// The key file.
        path: PathBuf,
        /// The gateway.
        server_id: ServerId,
        /// The door asked for.
        door: DoorName,
        /// The doors that have one, comma separated.
        available: String,
    },
    /// The knock settings or the derivation failed.
    #[error(transparent)]
    Rotate(#[from] RotateError),
    /// HOST could not be resolved, or no route.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The packet could not be built or sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A knock could not be sent.
    #[error(transparent)]
    Knock(#[from] KnockError),
    /// --save-packet could not be written.
    #[error("writing the packet to {}: {source}", path.display())]
    SavePacket {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Key(_)
            | AppError::KeyChoice(_)
            | AppError::Host(_)
            | AppError::TwoPorts { .. }
            | AppError::KnockHostPort(_)
            | AppError::NoHome
            | AppError::NoHost(_)
            | AppError::KnockUsage
            | AppError::NoRotatingKnock { .. }
            | AppError::Rotate(RotateError::Spec { .. })
            | AppError::Route(RouteError::Resolve { .. } | RouteError::NoAddressOfFamily { .. }) => {
                EXIT_USAGE
            }
            _ => EXIT_FAILURE,
        }
    }
}

/// Runs the parsed command line; returns the exit code. Normal output goes to
/// `out`, the --wait failure and -v notes to `err`.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, AppError> {
    match &cli.command {
        Command::Open(args) => open(cli, args, out, err),
        Command::Knock(args) if args.door.is_some() => rotating_knock(cli, args, out, err),
        Command::Knock(args) => classic_knock(cli, args, out, err),
    }
}

/// The key file to use: --key, else ~/.spa/key.
pub fn key_path(cli: &Cli) -> Result<PathBuf, AppError> {
    match &cli.key {
        Some(p) => Ok(p.clone()),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or(AppError::NoHome)?;
            Ok(Path::new(&home).join(".spa").join("key"))
        }
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn host_port(host: &str, port: u16) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The port to send to: `--port`, else HOST:PORT, else the key file's, else 62210.
fn spa_port(flag: Option<u16>, host: &HostSpec, key_file: Option<u16>) -> Result<u16, AppError> {
    match (flag, host.port) {
        (Some(f), Some(h)) if f != h => Err(AppError::TwoPorts {
            host: host.to_string(),
            flag: f,
        }),
        (Some(p), _) | (None, Some(p)) => Ok(p),
        (None, None) => Ok(key_file.unwrap_or(DEFAULT_PORT)),
    }
}

/// HOST as typed, else the key file's `host`.
fn host_spec(given: Option<&HostSpec>, gateway: &Gateway) -> Result<HostSpec, AppError> {
    if let Some(h) = given {
        return Ok(h.clone());
    }
    let text = gateway
        .host
        .as_deref()
        .ok_or_else(|| AppError::NoHost(gateway.server_id.clone()))?;
    text.parse().map_err(AppError::Host)
}

fn open(
    cli: &Cli,
    args: &OpenArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, AppError> {
    let key = load_key(&key_path(cli)?)?;
    let gateway = choose_gateway(&key, args.server_id.as_ref(), args.host.as_ref())?;
    let host = host_spec(args.host.as_ref(), gateway)?;
    let port = spa_port(args.port, &host, gateway.port)?;
    let dests: Vec<SocketAddr> = if args.both {
        let (v4, v6) = resolve_each_family(&host, port)?;
        v4.into_iter().chain(v6).collect()
    } else {
        vec![resolve_spec(&host, port, cli.family())?]
    };
    let keys = key.secret.server_key(&gateway.server_id).derive();
    let time = match args.seconds {
        Some(s) => format!("{s} s"),
        None => "the door's default time".to_owned(),
    };
    let shown = host.with_port(port);
    for dest in &dests {
        let address = if args.observed {
            Address::Observed
        } else if let Some(ip) = args.source {
            Address::from(ip)
        } else {
            Address::from(local_address_towards(*dest)?)
        };
        let request = OpenRequest {
            door: args.door.clone(),
            address,
            seconds: args.seconds.unwrap_or(0),
        };
        let packet = send_open(&keys, &request, *dest)?;
        if let Some(path) = &args.save_packet {
            save_packet(path, &packet).map_err(|source| AppError::SavePacket {
                path: path.clone(),
                source,
            })?;
        }
        let named = match address {
            Address::V4(a) => a.to_string(),
            Address::V6(a) => a.to_string(),
            Address::Observed => "the address the gateway sees".to_owned(),
        };
        let resolved = if shown == dest.to_string() {
            String::new()
        } else {
            format!(" ({dest})")
        };
        let _ = writeln!(
            out,
            "sent door {} for {named} ({time}) to {shown}{resolved}, gateway {}",
            request.door, gateway.server_id
        );
    }
    drop(keys);
    let (Some(wait_port), Some(first)) = (args.wait, dests.first()) else {
        return Ok(0);
    };
    let mut target = *first;
    target.set_port(wait_port);
    let shown = host.with_port(wait_port);
    match wait_for_tcp(target, Duration::from_secs(args.wait_timeout)) {
        WaitOutcome::Open { after } => {
            let _ = writeln!(
                out,
                "port {wait_port} answered: connected to {shown} after {}",
                human_seconds(after)
            );
            Ok(0)
        }
        WaitOutcome::TimedOut { after } => {
            let _ = writeln!(
                err,
                "no answer from {shown} after {}: port {wait_port} did not answer (if the door did \
                 not open: check the key, the door name, and that your clock is within the \
                 server's skew)",
                human_seconds(after)
            );
            Ok(EXIT_WAIT_TIMEOUT)
        }
    }
}

fn knock_target(host: &HostSpec, family: Family) -> Result<IpAddr, AppError> {
    if host.port.is_some() {
        return Err(AppError::KnockHostPort(host.to_string()));
    }
    Ok(resolve_spec(host, 9, family)?.ip())
}

fn make_knocker(target: IpAddr, verbose: bool, err: &mut dyn Write) -> Result<Knocker, AppError> {
    let (knocker, fallback) = Knocker::new(target, true)?;
    if verbose {
        match (knocker.tcp_method(), fallback) {
            (TcpMethod::RawSyn, _) => {
                let _ = writeln!(
                    err,
                    "knocking {target} from {}: TCP ports with one raw SYN each",
                    knocker.source()
                );
            }
            (TcpMethod::Connect, why) => {
                let _ = writeln!(
                    err,
                    "{}; knocking TCP ports with a non-blocking connect() closed at once",
                    why.unwrap_or_default()
                );
            }
        }
    }
    Ok(knocker)
}

fn classic_knock(
    cli: &Cli,
    args: &KnockArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, AppError> {
    let host = args.host.as_ref().ok_or(AppError::KnockUsage)?;
    if args.ports.is_empty() {
        return Err(AppError::KnockUsage);
    }
    let target = knock_target(host, cli.family())?;
    let knocker = make_knocker(target, cli.verbose, err)?;
    knocker.knock_all(&args.ports, Duration::from_millis(args.delay_ms), |step| {
        if cli.verbose {
            let _ = writeln!(err, "hitting {} {target}:{}", step.transport, step.port);
        }
    })?;
    let list: Vec<String> = args.ports.iter().map(|p| p.to_string()).collect();
    let _ = writeln!(out, "knocked {host} ({target}): {}", list.join(" "));
    Ok(0)
}

fn rotating_knock(
    cli: &Cli,
    args: &KnockArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, AppError> {
    let Some(door) = &args.door else {
        return Err(AppError::KnockUsage);
    };
    let key = load_key(&key_path(cli)?)?;
    let gateway = choose_gateway(&key, args.server_id.as_ref(), args.host.as_ref())?;
    let knock = gateway
        .knock
        .get(door)
        .ok_or_else(|| AppError::NoRotatingKnock {
            path: key.path.clone(),
            server_id: gateway.server_id.clone(),
            door: door.clone(),
            available: if gateway.knock.is_empty() {
                "none".to_owned()
            } else {
                gateway
                    .knock
                    .keys()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    let host = host_spec(args.host.as_ref(), gateway)?;
    let target = knock_target(&host, cli.family())?;
    let keys = key.secret.server_key(&gateway.server_id).derive();
    let (step, steps) = current_sequence(&keys, door, knock, now_ms()?)?;
    drop(keys);
    let knocker = make_knocker(target, cli.verbose, err)?;
    knocker.knock_all(&steps, Duration::from_millis(args.delay_ms), |step| {
        if cli.verbose {
            let _ = writeln!(err, "hitting {} {target}:{}", step.transport, step.port);
        }
    })?;
    let _ = writeln!(
        out,
        "knocked door {door}'s rotating sequence for step {step} at {host} ({target}): {} {} ports",
        steps.len(),
        knock.proto()
    );
    Ok(0)
}
