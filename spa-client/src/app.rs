//! What each subcommand does, from parsed arguments to the lines the user
//! reads: loads the key, resolves the host, sends, knocks, waits. The only
//! module that prints; it never prints key material.

use std::io::{self, Write};
use std::os::fd::AsFd;

use clap::Parser as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use spa_keys::{write_secret_file, ClientKey, KeyFileError};
use spa_proto::packet::{Address, PACKET_LEN};
use spa_proto::{DoorName, ServerId};
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, KnockArgs, OpenArgs, SshProxyArgs};
use crate::enroll::{enroll, make_private_dir, report, EnrollError, EnrollRequest};
use crate::keyfile::{load_key, KeyChoiceError};
use crate::knock::{KnockError, KnockSender, TcpMethod};
use crate::packet_file::save_packet;
use crate::profile::{FamilyChoice, Layer, Origin, ProfileError, Setting};
use crate::provision::{from_uri, qr_text as to_qr, to_uri, QrError, UriError};
use crate::rotate::{current_sequence, RotateError};
use crate::route::{local_address_towards, resolve_each_family, resolve_spec, Family, RouteError};
use crate::send::{now_ms, send_open, OpenRequest, SendError};
use crate::settings::{key_path, merged, resolve, Profiles, Resolved, SettingsError};
use crate::ssh_proxy::{pass_fd, relay};
use crate::target::{HostSpec, HostSpecError};
use crate::wait::{connect_when_open, human_seconds, wait_for_tcp, WaitOutcome};

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
    /// A knock HOST with :PORT.
    #[error("knock HOST {0} has a port: give the ports to knock as separate arguments")]
    KnockHostPort(String),
    /// The profiles and the key file do not add up.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A profile file cannot be used.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// --save-packet with one packet per family.
    #[error(
        "--save-packet saves one packet; it cannot be used with family \"both\" (pass -4 or -6)"
    )]
    SaveBoth,
    /// `spa-client NAME` where NAME is neither a command nor a profile with a door.
    #[error("{0:?} is not a spa-client command, and no [[host]] block for it in the profiles gives a door: \
             run spa-client open DOOR {0} (or add door = \"...\" to its [[host]] block; see spa-client config {0})")]
    NotAnAlias(String),
    /// ssh-proxy HOST with :PORT.
    #[error(
        "ssh-proxy HOST {0} has a port: give the ssh port as PORT and the SPA port with --spa-port"
    )]
    ProxyHostPort(String),
    /// No door for ssh-proxy.
    #[error(
        "no door to open for {0}: pass --door DOOR, or set door = \"...\" in its [[host]] block"
    )]
    NoDoor(String),
    /// HOST resolved to nothing usable.
    #[error("{0} has no address to connect to")]
    ProxyNoAddress(String),
    /// The ssh port never answered.
    #[error("no answer from {target} after {after} (if the door did not open: check the key, the door name, and that your clock is within the server's skew)")]
    ProxyNoAnswer {
        /// HOST:PORT.
        target: String,
        /// How long it tried.
        after: String,
    },
    /// Relaying or passing the connection failed.
    #[error("relaying to {target}: {source}")]
    Proxy {
        /// HOST:PORT.
        target: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A provisioning URI that is not one.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The QR code could not be drawn.
    #[error(transparent)]
    Qr(#[from] QrError),
    /// Reading the URI from stdin failed.
    #[error("reading the URI from stdin: {source}")]
    ReadUri {
        /// What the OS said.
        source: std::io::Error,
    },
    /// Self-enrolment failed.
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    /// An alias's trailing arguments do not parse as `open` options.
    #[error("{0}")]
    AliasArgs(String),
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
            | AppError::KnockHostPort(_)
            | AppError::Settings(_)
            | AppError::Profile(_)
            | AppError::SaveBoth
            | AppError::NotAnAlias(_)
            | AppError::ProxyHostPort(_)
            | AppError::NoDoor(_)
            | AppError::Uri(_)
            | AppError::Enroll(
                EnrollError::NeedUser { .. }
                | EnrollError::BadUser(_)
                | EnrollError::OtherUser { .. }
                | EnrollError::Key(_)
                | EnrollError::KeyChoice(_),
            )
            | AppError::AliasArgs(_)
            | AppError::KnockUsage
            | AppError::NoRotatingKnock { .. }
            | AppError::Rotate(RotateError::Spec { .. })
            | AppError::Route(RouteError::Resolve { .. } | RouteError::NoAddressOfFamily { .. }) => {
                EXIT_USAGE
            }
            AppError::ProxyNoAnswer { .. } => EXIT_WAIT_TIMEOUT,
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
        Command::Config(args) => show_config(cli, args.host.as_ref(), out),
        Command::SshProxy(args) => ssh_proxy(cli, args, out, err),
        Command::ExportKey(args) => {
            let key = load_key(&default_key_path(cli)?)?;
            let uri = to_uri(&key);
            let _ = writeln!(
                err,
                "spa-client: WARNING: this carries your secret: whoever sees it (or a photo of this \
                 screen) can open your doors as {} until the key is revoked. Show it only to your \
                 own device, then clear the screen.",
                key.user
            );
            if args.qr {
                let qr = to_qr(&uri, args.light_background)?;
                let _ = writeln!(out, "{}", *qr);
            }
            let _ = writeln!(out, "{}", *uri);
            Ok(0)
        }
        Command::ImportKey(args) => {
            let text = if args.uri == "-" {
                let mut line = Zeroizing::new(String::new());
                io::stdin()
                    .read_line(&mut line)
                    .map_err(|source| AppError::ReadUri { source })?;
                line
            } else {
                Zeroizing::new(args.uri.clone())
            };
            let path = default_key_path(cli)?;
            let key = from_uri(&text, path.clone())?;
            make_private_dir(&path)?;
            write_secret_file(&path, &key.to_toml(), args.force)?;
            let ids: Vec<&str> = key.gateways.iter().map(|g| g.server_id.as_str()).collect();
            let _ = writeln!(
                out,
                "wrote key file {} (mode 0600) for user {} with gateways: {}",
                path.display(),
                key.user,
                if ids.is_empty() {
                    "none".to_owned()
                } else {
                    ids.join(", ")
                }
            );
            Ok(0)
        }
        Command::Enroll(args) => {
            if let Some(h) = &args.host {
                h.parse::<HostSpec>()?;
            }
            let req = EnrollRequest {
                gateway_key: args.gateway_key.clone(),
                user: args.user.clone(),
                host: args.host.clone(),
                port: args.port,
                key_path: default_key_path(cli)?,
                request_path: args.request.clone(),
            };
            let done = enroll(&req)?;
            report(&req, &done, out);
            Ok(0)
        }
        Command::Alias(args) => alias(cli, args, out, err),
    }
}

/// `spa-client HOST [open options]`: `open` with the door of HOST's profile.
fn alias(
    cli: &Cli,
    args: &[std::ffi::OsString],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, AppError> {
    let Some(first) = args.first() else {
        return Err(AppError::NotAnAlias(String::new()));
    };
    let name = first.to_string_lossy().into_owned();
    let typed: HostSpec = name.parse()?;
    let home = home_dir();
    let profiles = Profiles::load(cli.config.as_deref(), home.as_deref())?;
    let door = profiles
        .layer_for(Some(&typed.host))
        .door
        .ok_or_else(|| AppError::NotAnAlias(name.clone()))?;
    let argv = [
        std::ffi::OsString::from("spa-client"),
        "open".into(),
        door.value.as_str().into(),
        first.clone(),
    ]
    .into_iter()
    .chain(args[1..].iter().cloned());
    let mut again = Cli::try_parse_from(argv).map_err(|e| AppError::AliasArgs(e.to_string()))?;
    again.key = again.key.or_else(|| cli.key.clone());
    again.config = again.config.or_else(|| cli.config.clone());
    again.ipv4 |= cli.ipv4;
    again.ipv6 |= cli.ipv6;
    again.verbose |= cli.verbose;
    let Command::Open(open_args) = &again.command else {
        return Err(AppError::NotAnAlias(name));
    };
    open(&again, open_args, out, err)
}

/// `spa-client config [HOST]`: every setting and where it came from.
fn show_config(cli: &Cli, typed: Option<&HostSpec>, out: &mut dyn Write) -> Result<u8, AppError> {
    let home = home_dir();
    let profiles = Profiles::load(cli.config.as_deref(), home.as_deref())?;
    let mut flags = Layer::default();
    if let Some(k) = &cli.key {
        flags.key = Some(Setting::flag(k.clone()));
    }
    flags.family = match cli.family() {
        Family::V4 => Some(Setting::flag(FamilyChoice::Ipv4)),
        Family::V6 => Some(Setting::flag(FamilyChoice::Ipv6)),
        Family::Any => None,
    };
    let layer = merged(flags, &profiles, typed);
    let read: Vec<String> = profiles
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    let _ = writeln!(
        out,
        "settings for {} (profiles read: {}):",
        typed.map_or_else(|| "no HOST".to_owned(), |t| t.to_string()),
        read.join(", ")
    );
    let key_file = key_path(&layer, home.as_deref())?;
    let row = |out: &mut dyn Write, name: &str, value: String, origin: String| {
        let _ = writeln!(out, "  {name:<13} {value:<32} {origin}");
    };
    row(
        out,
        "key",
        key_file.value.display().to_string(),
        key_file.origin.to_string(),
    );
    let key = load_key(&key_file.value)?;
    let r = resolve(layer, typed.and_then(|t| t.port), typed, &key)?;
    row(
        out,
        "host",
        r.host.value.host_and_zone(),
        r.host.origin.to_string(),
    );
    row(
        out,
        "port",
        r.port.value.to_string(),
        r.port.origin.to_string(),
    );
    row(
        out,
        "server_id",
        r.gateway.server_id.to_string(),
        r.gateway_origin.to_string(),
    );
    let (door, door_from) = match &r.door {
        Some(d) => (d.value.to_string(), d.origin.to_string()),
        None => ("(none: give DOOR)".to_owned(), String::new()),
    };
    row(out, "door", door, door_from);
    let (secs, secs_from) = match &r.seconds {
        Some(s) => (format!("{} s", s.value), s.origin.to_string()),
        None => ("the door's default".to_owned(), Origin::BuiltIn.to_string()),
    };
    row(out, "seconds", secs, secs_from);
    row(
        out,
        "family",
        r.family.value.to_string(),
        r.family.origin.to_string(),
    );
    row(
        out,
        "observed",
        if r.observed.value { "yes" } else { "no" }.to_owned(),
        r.observed.origin.to_string(),
    );
    let (wait, wait_from) = match &r.wait {
        Some(w) => (format!("port {}", w.value), w.origin.to_string()),
        None => ("no".to_owned(), Origin::BuiltIn.to_string()),
    };
    row(out, "wait", wait, wait_from);
    row(
        out,
        "wait_timeout",
        format!("{} s", r.wait_timeout.value),
        r.wait_timeout.origin.to_string(),
    );
    Ok(0)
}

/// --key, else ~/.spa/key.
fn default_key_path(cli: &Cli) -> Result<PathBuf, AppError> {
    match &cli.key {
        Some(k) => Ok(k.clone()),
        None => Ok(home_dir()
            .map(|h| h.join(".spa").join("key"))
            .ok_or(SettingsError::NoHome)?),
    }
}

/// $HOME, if set and not empty.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `--port` against a typed HOST:PORT: one of them, or an error if they differ.
fn port_flag(flag: Option<u16>, typed: Option<&HostSpec>) -> Result<Option<u16>, AppError> {
    match (flag, typed.and_then(|t| t.port)) {
        (Some(f), Some(h)) if f != h => Err(SettingsError::TwoPorts {
            host: typed.map(|t| t.to_string()).unwrap_or_default(),
            flag: f,
        }
        .into()),
        (f, h) => Ok(f.or(h)),
    }
}

/// Loads the profiles, merges `flags` over them, loads the key file and
/// resolves every setting.
pub fn plan(
    cli: &Cli,
    mut flags: Layer,
    typed: Option<&HostSpec>,
    port: Option<u16>,
) -> Result<(ClientKey, Resolved), AppError> {
    let home = home_dir();
    let profiles = Profiles::load(cli.config.as_deref(), home.as_deref())?;
    if let Some(k) = &cli.key {
        flags.key = Some(Setting::flag(k.clone()));
    }
    if flags.family.is_none() {
        flags.family = match cli.family() {
            Family::V4 => Some(Setting::flag(FamilyChoice::Ipv4)),
            Family::V6 => Some(Setting::flag(FamilyChoice::Ipv6)),
            Family::Any => None,
        };
    }
    let layer = merged(flags, &profiles, typed);
    let key_file = key_path(&layer, home.as_deref())?;
    let key = load_key(&key_file.value)?;
    let port = port_flag(port, typed)?;
    let resolved = resolve(layer, port, typed, &key)?;
    Ok((key, resolved))
}

/// Every address to send to: the first of the chosen family, or one per family.
fn destinations(r: &Resolved) -> Result<Vec<SocketAddr>, AppError> {
    let (host, port) = (&r.host.value, r.port.value);
    let one = |f| resolve_spec(host, port, f).map(|a| vec![a]);
    Ok(match r.family.value {
        FamilyChoice::Any => one(Family::Any)?,
        FamilyChoice::Ipv4 => one(Family::V4)?,
        FamilyChoice::Ipv6 => one(Family::V6)?,
        FamilyChoice::Both => {
            let (v4, v6) = resolve_each_family(host, port)?;
            v4.into_iter().chain(v6).collect()
        }
    })
}

/// Sends one packet for `door` to each of `dests`, each naming the observed
/// address, `source`, or this machine's address towards that destination.
fn send_to_all(
    key: &ClientKey,
    r: &Resolved,
    door: &DoorName,
    source: Option<IpAddr>,
    dests: &[SocketAddr],
) -> Result<Vec<(SocketAddr, Address, [u8; PACKET_LEN])>, AppError> {
    let keys = key.secret.server_key(&r.gateway.server_id).derive();
    let mut sent = Vec::with_capacity(dests.len());
    for dest in dests {
        let address = if r.observed.value {
            Address::Observed
        } else if let Some(ip) = source {
            Address::from(ip)
        } else {
            Address::from(local_address_towards(*dest)?)
        };
        let request = OpenRequest {
            door: door.clone(),
            address,
            seconds: r.seconds.as_ref().map_or(0, |s| s.value),
        };
        sent.push((*dest, address, send_open(&keys, &request, *dest)?));
    }
    Ok(sent)
}

/// "sent door ssh for 192.0.2.7 (90 s) to gw:62210 (198.51.100.1:62210), gateway gw".
fn sent_line(
    r: &Resolved,
    door: &DoorName,
    address: Address,
    dest: SocketAddr,
    shown: &str,
) -> String {
    let named = match address {
        Address::V4(a) => a.to_string(),
        Address::V6(a) => a.to_string(),
        Address::Observed => "the address the gateway sees".to_owned(),
    };
    let time = match &r.seconds {
        Some(s) => format!("{} s", s.value),
        None => "the door's default time".to_owned(),
    };
    let resolved = if shown == dest.to_string() {
        String::new()
    } else {
        format!(" ({dest})")
    };
    format!(
        "sent door {door} for {named} ({time}) to {shown}{resolved}, gateway {}",
        r.gateway.server_id
    )
}

/// `spa-client ssh-proxy HOST PORT`: knock, wait for PORT, then relay or pass the socket.
fn ssh_proxy(
    cli: &Cli,
    args: &SshProxyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, AppError> {
    if args.host.port.is_some() {
        return Err(AppError::ProxyHostPort(args.host.to_string()));
    }
    let flags = Layer {
        server_id: args.server_id.clone().map(Setting::flag),
        door: args.door.clone().map(Setting::flag),
        seconds: args.seconds.map(Setting::flag),
        family: args.both.then(|| Setting::flag(FamilyChoice::Both)),
        observed: args.observed.then(|| Setting::flag(true)),
        wait_timeout: args.wait_timeout.map(Setting::flag),
        ..Layer::default()
    };
    let (key, r) = plan(cli, flags, Some(&args.host), args.spa_port)?;
    let door = r
        .door
        .as_ref()
        .map(|d| d.value.clone())
        .ok_or_else(|| AppError::NoDoor(args.host.to_string()))?;
    let dests = destinations(&r)?;
    let sent = send_to_all(&key, &r, &door, None, &dests)?;
    drop(key);
    let shown = r.host.value.with_port(r.port.value);
    if cli.verbose {
        for (dest, address, _) in &sent {
            let _ = writeln!(
                err,
                "spa-client: {}",
                sent_line(&r, &door, *address, *dest, &shown)
            );
        }
    }
    let Some(first) = dests.first() else {
        return Err(AppError::ProxyNoAddress(args.host.to_string()));
    };
    let mut target = *first;
    target.set_port(args.port);
    let shown = r.host.value.with_port(args.port);
    let (stream, after) = connect_when_open(target, Duration::from_secs(r.wait_timeout.value))
        .map_err(|after| AppError::ProxyNoAnswer {
            target: shown.clone(),
            after: human_seconds(after),
        })?;
    if cli.verbose {
        let _ = writeln!(
            err,
            "spa-client: port {} answered: connected to {shown} after {}",
            args.port,
            human_seconds(after)
        );
    }
    let relayed = if args.fdpass {
        pass_fd(io::stdout().as_fd(), &stream)
    } else {
        relay(stream, io::stdin(), out)
    };
    relayed.map_err(|source| AppError::Proxy {
        target: shown,
        source,
    })?;
    Ok(0)
}

/// The command line of `open` as the first layer of settings.
fn open_flags(args: &OpenArgs) -> Layer {
    Layer {
        server_id: args.server_id.clone().map(Setting::flag),
        door: Some(Setting::flag(args.door.clone())),
        seconds: args.seconds.map(Setting::flag),
        family: args.both.then(|| Setting::flag(FamilyChoice::Both)),
        observed: if args.observed {
            Some(Setting::flag(true))
        } else {
            args.source.map(|_| Setting::flag(false))
        },
        wait: args.wait.map(Setting::flag),
        wait_timeout: args.wait_timeout.map(Setting::flag),
        ..Layer::default()
    }
}

fn open(
    cli: &Cli,
    args: &OpenArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, AppError> {
    let (key, r) = plan(cli, open_flags(args), args.host.as_ref(), args.port)?;
    let door = args.door.clone();
    let dests = destinations(&r)?;
    if args.save_packet.is_some() && dests.len() > 1 {
        return Err(AppError::SaveBoth);
    }
    let sent = send_to_all(&key, &r, &door, args.source, &dests)?;
    let shown = r.host.value.with_port(r.port.value);
    for (dest, address, packet) in &sent {
        if let Some(path) = &args.save_packet {
            save_packet(path, packet).map_err(|source| AppError::SavePacket {
                path: path.clone(),
                source,
            })?;
        }
        let _ = writeln!(out, "{}", sent_line(&r, &door, *address, *dest, &shown));
    }
    let (Some(wait_port), Some(first)) = (r.wait.as_ref().map(|w| w.value), dests.first()) else {
        return Ok(0);
    };
    let mut target = *first;
    target.set_port(wait_port);
    let shown = r.host.value.with_port(wait_port);
    match wait_for_tcp(target, Duration::from_secs(r.wait_timeout.value)) {
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
    Ok(resolve_spec(host, 9, family)?.ip())
}

fn refuse_port(typed: Option<&HostSpec>) -> Result<(), AppError> {
    match typed {
        Some(h) if h.port.is_some() => Err(AppError::KnockHostPort(h.to_string())),
        _ => Ok(()),
    }
}

fn make_knocker(
    target: IpAddr,
    verbose: bool,
    err: &mut dyn Write,
) -> Result<KnockSender, AppError> {
    let (knocker, fallback) = KnockSender::new(target, true)?;
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
    refuse_port(Some(host))?;
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
    refuse_port(args.host.as_ref())?;
    let flags = Layer {
        server_id: args.server_id.clone().map(Setting::flag),
        ..Layer::default()
    };
    let (key, r) = plan(cli, flags, args.host.as_ref(), None)?;
    let gateway = &r.gateway;
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
    let host = &r.host.value;
    let family = match r.family.value {
        FamilyChoice::Ipv4 => Family::V4,
        FamilyChoice::Ipv6 => Family::V6,
        FamilyChoice::Any | FamilyChoice::Both => Family::Any,
    };
    let target = knock_target(host, family)?;
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
