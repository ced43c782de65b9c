//! spad's configuration file: parsing (TOML, unknown keys refused), checking
//! every value, and errors that name the file, line and column with a caret.
//! Produces the settings the other modules take; runs nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use spa_proto::knock::{
    parse_one_time_file, ClassicDoor, KnockStep, RotatingSpec, TcpFlagsRule, Transport,
};
use spa_proto::{DoorName, DoorPolicy, ServerId};
use toml::Spanned;

use crate::firewall::{BackendKind, CommandTemplates, DoorSpec, PortSpec};

/// The default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/spad.toml";

/// A config that cannot be used, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column, when the error has a place.
    pub place: Option<(usize, usize)>,
    /// What is wrong and what to do.
    pub message: String,
    /// The offending line with a caret (spa-keys' renderer, shared with key files).
    pub snippet: Option<String>,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)?;
                if let Some(snippet) = &self.snippet {
                    write!(f, "\n{snippet}")?;
                }
                Ok(())
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Which firewall backend a door uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// nftables sets with element timeouts (the default).
    Nftables,
    /// iptables rules added and removed by spad.
    Iptables,
    /// open/close command templates.
    Command,
}

fn default_keys_dir() -> PathBuf {
    PathBuf::from(spa_keys::DEFAULT_KEYS_DIR)
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/spad")
}
fn default_port() -> u16 {
    spa_proto::packet::DEFAULT_PORT
}
fn default_skew() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_cap() -> usize {
    spa_proto::replay::DEFAULT_CAP
}
fn default_true() -> bool {
    true
}
fn default_backend() -> BackendName {
    BackendName::Nftables
}
fn default_table() -> String {
    "spad".to_owned()
}
fn default_secs() -> u32 {
    30
}
fn default_max_secs() -> u32 {
    3600
}
fn default_control_socket() -> PathBuf {
    PathBuf::from(crate::control::DEFAULT_SOCKET)
}

fn default_cmd_timeout() -> u64 {
    10
}

/// How many addresses a classic door may hold open at once by default.
pub const DEFAULT_MAX_OPEN: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server_id: Spanned<String>,
    #[serde(default = "default_keys_dir")]
    keys_dir: PathBuf,
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_skew")]
    skew_secs: Spanned<u64>,
    #[serde(default = "default_cap")]
    replay_cap: usize,
    #[serde(default = "default_true")]
    stealth: bool,
    #[serde(default = "default_backend")]
    backend: BackendName,
    #[serde(default = "default_table")]
    nft_table: String,
    #[serde(default = "default_control_socket")]
    control_socket: PathBuf,
    #[serde(default = "default_true")]
    capture_ring: bool,
    fwknop: Option<Spanned<RawFwknop>>,
    #[serde(default)]
    metrics_listen: Option<Spanned<String>>,
    #[serde(default)]
    doors: BTreeMap<Spanned<String>, RawDoor>,
}

fn default_fwknop_port() -> u16 {
    spa_fwknop::DEFAULT_FWKNOP_PORT
}
fn default_fwknop_max_age() -> u64 {
    spa_fwknop::DEFAULT_MAX_AGE_SECS
}

/// The `[fwknop]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFwknop {
    access_conf: PathBuf,
    #[serde(default = "default_fwknop_port")]
    port: u16,
    #[serde(default = "default_fwknop_max_age")]
    max_age_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoor {
    #[serde(default)]
    open: Vec<Spanned<String>>,
    #[serde(default = "default_secs")]
    default_secs: u32,
    #[serde(default = "default_max_secs")]
    max_secs: u32,
    backend: Option<BackendName>,
    open_command: Option<Spanned<String>>,
    close_command: Option<Spanned<String>>,
    /// knockd's start_command_6: run instead of `open_command` for IPv6.
    open_command_6: Option<Spanned<String>>,
    /// knockd's stop_command_6: run instead of `close_command` for IPv6.
    close_command_6: Option<Spanned<String>>,
    #[serde(default = "default_cmd_timeout")]
    command_timeout_secs: u64,
    /// knockd-style sequence: `["7000", "8000:tcp", "9000:udp"]`.
    sequence: Option<Vec<Spanned<String>>>,
    /// knockd's One_Time_Sequences file.
    one_time_sequences: Option<Spanned<PathBuf>>,
    /// Time from the first knock to the last.
    seq_timeout_secs: Option<u64>,
    /// knockd's tcpflags, e.g. `"syn"` or `"syn,!ack"`.
    tcpflags: Option<Spanned<String>>,
    /// A per-user rotating sequence (PROTOCOL §4).
    rotating: Option<Spanned<RawRotating>>,
    /// knockd's Target: knocks count only when sent to these addresses.
    target: Option<Vec<Spanned<String>>>,
    /// Classic doors: at most this many addresses open at once.
    max_open: Option<Spanned<usize>>,
    /// fwknop packets asking for this door's one port open it.
    fwknop: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotating {
    n: u8,
    lo: u16,
    hi: u16,
    #[serde(default = "default_proto")]
    proto: String,
}

fn default_proto() -> String {
    "tcp".to_owned()
}

/// The longest a door may be open: a year (nftables refuses far larger timeouts).
const MAX_OPEN_SECS: u32 = 365 * 24 * 3600;

/// knockd's default seq_timeout.
const DEFAULT_SEQ_TIMEOUT_SECS: u64 = 25;

/// How a door is opened.
#[derive(Debug, Clone)]
pub enum DoorKind {
    /// By an SPA packet (PROTOCOL §2–3).
    Spa,
    /// By a knockd-style port sequence; `one_time_file` is where used one-time
    /// sequences are marked.
    Classic {
        /// The sequence(s) and their rules (and `target`, knockd's Target).
        door: ClassicDoor,
        /// knockd's One_Time_Sequences file, if used.
        one_time_file: Option<PathBuf>,
        /// At most this many addresses hold the door open at once
        /// (`max_open`, default [`DEFAULT_MAX_OPEN`]); a completed sequence
        /// beyond that is refused, it does not push an open address out.
        max_open: usize,
    },
    /// By each allowed user's rotating sequence (PROTOCOL §4).
    Rotating {
        /// n ports in [lo, hi].
        spec: RotatingSpec,
        /// The transport every port is knocked with.
        transport: Transport,
        /// Time from the first knock to the last, ms.
        seq_timeout_ms: u64,
    },
}

/// One door, checked.
#[derive(Debug, Clone)]
pub struct Door {
    /// Its name.
    pub name: DoorName,
    /// How long it may open.
    pub policy: DoorPolicy,
    /// What the firewall opens.
    pub spec: DoorSpec,
    /// What opens it.
    pub kind: DoorKind,
    /// fwknop packets asking for its one port open it too (an SPA door).
    pub fwknop: bool,
}

impl Door {
    /// A plain knockd `command` door: a classic sequence whose command
    /// backend has no close command (nor an IPv6 one). knockd runs such a
    /// command on every completed sequence, however soon after the last, so
    /// the gateway must run it every time rather than fold completions
    /// into "already open" / "extended".
    pub fn runs_command_every_time(&self) -> bool {
        matches!(self.kind, DoorKind::Classic { .. })
            && matches!(
                &self.spec.backend,
                BackendKind::Command(t) if t.close.is_none() && t.close6.is_none()
            )
    }

    /// The cap on addresses open at once (`max_open`), for classic doors.
    pub fn max_open(&self) -> Option<usize> {
        match self.kind {
            DoorKind::Classic { max_open, .. } => Some(max_open),
            _ => None,
        }
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// This gateway's id (PROTOCOL §1).
    pub server_id: ServerId,
    /// Where spa-keygen writes server entries. Only read when a door needs
    /// keys ([`Config::needs_keys`]).
    pub keys_dir: PathBuf,
    /// Where the replay log and open-door state live.
    pub state_dir: PathBuf,
    /// Interfaces to capture on; empty = all.
    pub interfaces: Vec<String>,
    /// The SPA UDP port.
    pub port: u16,
    /// Allowed clock difference, ms.
    pub skew_ms: u64,
    /// Live replay entries per key.
    pub replay_cap: usize,
    /// Drop rule for the SPA port (no ICMP answer).
    pub stealth: bool,
    /// nftables table name.
    pub nft_table: String,
    /// Where `spad status` and `spad close` reach the daemon.
    pub control_socket: PathBuf,
    /// Read captured packets through a TPACKET_V2 ring (the default: frames
    /// handed over without a syscall each, in batches under a flood) instead
    /// of one `recvfrom` per packet.
    pub capture_ring: bool,
    /// fwknop's clients, if served.
    pub fwknop: Option<FwknopSettings>,
    /// Where the opt-in Prometheus listener serves `/metrics` (loopback only).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The doors.
    pub doors: Vec<Door>,
}

/// The longest `max_age_secs` for fwknop packets (fwknopd allows any; an
/// hour is already generous for a clock).
const MAX_FWKNOP_AGE_SECS: u64 = 3600;

/// The `[fwknop]` table, checked: spad serves fwknop's clients as fwknopd
/// would, from fwknopd's own access.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwknopSettings {
    /// fwknopd's access.conf (read as fwknopd reads it; root's, mode 0600).
    pub access_conf: PathBuf,
    /// The UDP port fwknop clients send to.
    pub port: u16,
    /// fwknopd's MAX_SPA_PACKET_AGE: older or newer packets are refused.
    pub max_age_secs: u64,
}

struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let place = span
            .filter(|s| s.end > 0 || s.start > 0)
            .map(|s| spa_keys::locate(self.text, Some(s)));
        ConfigError {
            path: self.path.to_path_buf(),
            place: place.as_ref().map(|l| (l.line, l.col)),
            message: message.into(),
            snippet: place.map(|l| l.snippet),
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            place: None,
            message: format!("cannot read the config file: {e}"),
            snippet: None,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks config text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let src = Source { path, text };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| src.error_at(e.span(), e.message().trim()))?;
        let server_id: ServerId = raw
            .server_id
            .get_ref()
            .parse()
            .map_err(|e| src.error_at(Some(raw.server_id.span()), format!("server_id: {e}")))?;
        let skew = *raw.skew_secs.get_ref();
        if !(1..=300).contains(&skew) {
            return Err(src.error_at(
                Some(raw.skew_secs.span()),
                format!("skew_secs must be between 1 and 300 (PROTOCOL §3), got {skew}"),
            ));
        }
        if raw.port == 0 {
            return Err(src.error_at(None, "port must be 1-65535"));
        }
        if raw.replay_cap == 0 {
            return Err(src.error_at(None, "replay_cap must be at least 1"));
        }
        let metrics_listen = (raw.metrics_listen.as_ref())
            .map(|m| {
                crate::metrics_http::parse_listen(m.get_ref())
                    .map_err(|e| src.error_at(Some(m.span()), e))
            })
            .transpose()?;
        let mut doors = Vec::new();
        for (name, raw_door) in &raw.doors {
            doors.push(check_door(&src, name, raw_door, raw.backend)?);
        }
        let fwknop = check_fwknop(&src, &raw, &doors)?;
        Ok(Config {
            path: path.to_path_buf(),
            server_id,
            keys_dir: raw.keys_dir,
            state_dir: raw.state_dir,
            interfaces: raw.interfaces,
            port: raw.port,
            skew_ms: skew * 1000,
            replay_cap: raw.replay_cap,
            stealth: raw.stealth,
            nft_table: raw.nft_table,
            control_socket: raw.control_socket,
            capture_ring: raw.capture_ring,
            fwknop,
            metrics_listen,
            doors,
        })
    }

    /// For fwknop grants: the door each port opens (each such door has
    /// exactly one port, checked at load).
    pub fn port_doors(&self) -> BTreeMap<(Transport, u16), DoorName> {
        self.doors
            .iter()
            .filter(|d| d.fwknop)
            .flat_map(|d| {
                d.spec
                    .ports
                    .iter()
                    .map(|p| ((p.proto, p.port), d.name.clone()))
            })
            .collect()
    }

    /// Whether any door is opened by a key (an SPA or a rotating door): only
    /// then must `keys_dir` exist. A config of classic knockd doors runs
    /// without one, as knockd did, and one of fwknop doors (a migration
    /// from fwknopd) reads it only if it exists.
    pub fn needs_keys(&self) -> bool {
        self.doors.iter().any(|d| match d.kind {
            // An fwknop door serves fwknop's clients without any spa/1 key.
            DoorKind::Spa => !d.fwknop,
            DoorKind::Rotating { .. } => true,
            DoorKind::Classic { .. } => false,
        })
    }

    /// Whether spad reads `keys_dir`: when a door needs keys, and when
    /// fwknop doors (which spa/1 keys open too) have a directory to read.
    pub fn reads_keys_dir(&self) -> bool {
        self.needs_keys() || (self.doors.iter().any(|d| d.fwknop) && self.keys_dir.exists())
    }

    /// Whether the capture filter must pass TCP packets to knock ports
    /// whatever their flags: true when a classic door's `tcpflags` rule
    /// accepts a packet that is not a SYN without ACK (knockd's `syn`
    /// accepts a SYN+ACK, `fin` a FIN, …). Doors without `tcpflags` and
    /// rotating doors are served by the SYN-only filter.
    pub fn knock_tcp_any_flags(&self) -> bool {
        self.doors.iter().any(|d| match &d.kind {
            DoorKind::Classic { door, .. } => {
                door.steps
                    .iter()
                    .chain(door.one_time.iter().flatten().flatten())
                    .any(|s| s.transport == Transport::Tcp)
                    && door
                        .tcpflags
                        .is_some_and(|rule| !rule.accepts_only_syn_without_ack())
            }
            _ => false,
        })
    }

    /// The verifier's door policies.
    pub fn policies(&self) -> BTreeMap<DoorName, DoorPolicy> {
        self.doors
            .iter()
            .filter(|d| matches!(d.kind, DoorKind::Spa))
            .map(|d| (d.name.clone(), d.policy))
            .collect()
    }

    /// The door called `name`.
    pub fn door(&self, name: &DoorName) -> Option<&Door> {
        self.doors.iter().find(|d| &d.name == name)
    }

    /// Ports the capture filter must let through for knocks: (tcp, udp).
    /// Rotating doors need their whole range, so the filter never changes
    /// as steps pass.
    pub fn knock_ports(&self) -> (Vec<u16>, Vec<u16>) {
        knock_ports_of(&self.doors)
    }

    /// What the firewall must guard.
    pub fn door_specs(&self) -> Vec<DoorSpec> {
        self.doors.iter().map(|d| d.spec.clone()).collect()
    }
}

/// Ports `doors` need the capture filter to pass for knocks: (tcp, udp),
/// sorted. Rotating doors need their whole range, so the filter never
/// changes as steps pass.
fn knock_ports_of(doors: &[Door]) -> (Vec<u16>, Vec<u16>) {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());

    let mut add = |t: Transport, p: u16| match t {
        Transport::Tcp => tcp.push(p),
        Transport::Udp => udp.push(p),
    };
    for d in doors {
        match &d.kind {
            DoorKind::Spa => {}
            DoorKind::Classic { door, .. } => {
                let lists = door
                    .one_time
                    .iter()
                    .flatten()
                    .chain(std::iter::once(&door.steps));
                for step in lists.flatten() {
                    add(step.transport, step.port);
                }
            }
            DoorKind::Rotating {
                spec, transport, ..
            } => {
                for p in spec.lo..=spec.hi {
                    add(*transport, p);
                }
            }
        }
    }
    for v in [&mut tcp, &mut udp] {
        v.sort_unstable();
        v.dedup();
    }
    (tcp, udp)
}

fn check_door(
    src: &Source<'_>,
    name: &Spanned<String>,
    raw: &RawDoor,
    default_backend: BackendName,
) -> Result<Door, ConfigError> {
    let door: DoorName = name.get_ref().parse().map_err(|e| {
        src.error_at(
            Some(name.span()),
            format!("door [doors.{}]: {e}", name.get_ref()),
        )
    })?;
    let here = Some(name.span());
    if raw.default_secs == 0 || raw.max_secs == 0 {
        return Err(src.error_at(
            here.clone(),
            format!("door {door}: default_secs and max_secs must be at least 1"),
        ));
    }
    if raw.max_secs > MAX_OPEN_SECS {
        return Err(src.error_at(
            here.clone(),
            format!(
                "door {door}: max_secs ({}) is more than a year ({MAX_OPEN_SECS})",
                raw.max_secs
            ),
        ));
    }
    if raw.default_secs > raw.max_secs {
        return Err(src.error_at(
            here.clone(),
            format!(
                "door {door}: default_secs ({}) is more than max_secs ({})",
                raw.default_secs, raw.max_secs
            ),
        ));
    }
    let mut ports = Vec::new();
    for p in &raw.open {
        ports.push(
            p.get_ref()
                .parse::<PortSpec>()
                .map_err(|e| src.error_at(Some(p.span()), format!("door {door}: {e}")))?,
        );
    }
    let backend = match raw.backend.unwrap_or(default_backend) {
        BackendName::Nftables => BackendKind::Nftables,
        BackendName::Iptables => BackendKind::Iptables,
        BackendName::Command => {
            let open = raw.open_command.as_ref().ok_or_else(|| {
                src.error_at(
                    here.clone(),
                    format!("door {door}: backend \"command\" needs open_command = \"...\""),
                )
            })?;
            let timeout = Duration::from_secs(raw.command_timeout_secs.max(1));
            let templates = CommandTemplates::parse(
                open.get_ref(),
                raw.close_command.as_ref().map(|c| c.get_ref().as_str()),
                timeout,
            )
            .map_err(|e| src.error_at(Some(open.span()), format!("door {door}: {e}")))?;
            let first_v6 = raw.open_command_6.as_ref().or(raw.close_command_6.as_ref());
            let templates = templates
                .with_ipv6(
                    raw.open_command_6.as_ref().map(|c| c.get_ref().as_str()),
                    raw.close_command_6.as_ref().map(|c| c.get_ref().as_str()),
                )
                .map_err(|e| {
                    src.error_at(first_v6.map(|c| c.span()), format!("door {door}: {e}"))
                })?;
            BackendKind::Command(templates)
        }
    };
    let kind = door_kind(src, &door, raw)?;
    if ports.is_empty() && !matches!(backend, BackendKind::Command(_)) {
        return Err(src.error_at(
            here,
            format!("door {door}: say what it opens, e.g. open = [\"tcp/22\"]"),
        ));
    }
    for (key, value) in [
        ("open_command", &raw.open_command),
        ("close_command", &raw.close_command),
        ("open_command_6", &raw.open_command_6),
        ("close_command_6", &raw.close_command_6),
    ] {
        if value.is_some() && !matches!(backend, BackendKind::Command(_)) {
            return Err(src.error_at(
                value.as_ref().map(|c| c.span()),
                format!("door {door}: {key} is only used with backend = \"command\""),
            ));
        }
    }
    Ok(Door {
        name: door.clone(),
        policy: DoorPolicy {
            default_secs: raw.default_secs,
            max_secs: raw.max_secs,
        },
        spec: DoorSpec {
            name: door.to_string(),
            ports,
            backend,
        },
        kind,
        fwknop: raw.fwknop.as_ref().is_some_and(|f| *f.get_ref()),
    })
}

/// Checks `[fwknop]` against the doors: fwknop doors are SPA doors with one
/// port each, no two on the same port, and there is a table exactly when
/// there are such doors. (The access.conf itself is read by `fwknop_access`,
/// at start and on reload, like the keys.)
fn check_fwknop(
    src: &Source<'_>,
    raw: &RawConfig,
    doors: &[Door],
) -> Result<Option<FwknopSettings>, ConfigError> {
    let mut by_port: BTreeMap<(Transport, u16), &DoorName> = BTreeMap::new();
    for ((name, raw_door), door) in raw.doors.iter().zip(doors) {
        let Some(flag) = raw_door.fwknop.as_ref().filter(|f| *f.get_ref()) else {
            continue;
        };
        let at = |message: String| src.error_at(Some(flag.span()), message);
        if !matches!(door.kind, DoorKind::Spa) {
            return Err(at(format!(
                "door {}: fwknop packets open SPA doors only, not sequence or rotating doors",
                name.get_ref()
            )));
        }
        let [port] = door.spec.ports.as_slice() else {
            return Err(at(format!(
                "door {}: an fwknop door opens exactly one port (fwknop asks for ports one by one, e.g. open = [\"tcp/22\"]; make one door per port)",
                name.get_ref()
            )));
        };
        if let Some(other) = by_port.insert((port.proto, port.port), &door.name) {
            return Err(at(format!(
                "door {}: {}/{} is already the fwknop door {other}'s port",
                name.get_ref(),
                port.proto.as_str(),
                port.port
            )));
        }
    }
    let Some(table) = &raw.fwknop else {
        if let Some((name, _)) = raw
            .doors
            .iter()
            .find(|(_, d)| d.fwknop.as_ref().is_some_and(|f| *f.get_ref()))
        {
            return Err(src.error_at(
                Some(name.span()),
                format!(
                    "door {}: fwknop = true needs an [fwknop] table naming access_conf",
                    name.get_ref()
                ),
            ));
        }
        return Ok(None);
    };
    let here = Some(table.span());
    let t = table.get_ref();
    if by_port.is_empty() {
        return Err(src.error_at(
            here,
            "[fwknop]: no door is opened by fwknop packets; mark one door per port with fwknop = true",
        ));
    }
    if t.port == 0 {
        return Err(src.error_at(here, "[fwknop]: port must be 1-65535"));
    }
    if t.port == raw.port {
        return Err(src.error_at(
            here,
            format!("[fwknop]: port {} is also the SPA port", t.port),
        ));
    }
    let knock_udp = knock_ports_of(doors).1.contains(&t.port);
    if knock_udp {
        return Err(src.error_at(
            here,
            format!("[fwknop]: port {} is also a UDP knock port", t.port),
        ));
    }
    if !(1..=MAX_FWKNOP_AGE_SECS).contains(&t.max_age_secs) {
        return Err(src.error_at(
            here,
            format!(
                "[fwknop]: max_age_secs must be between 1 and {MAX_FWKNOP_AGE_SECS}, got {}",
                t.max_age_secs
            ),
        ));
    }
    Ok(Some(FwknopSettings {
        access_conf: t.access_conf.clone(),
        port: t.port,
        max_age_secs: t.max_age_secs,
    }))
}

fn door_kind(src: &Source<'_>, door: &DoorName, raw: &RawDoor) -> Result<DoorKind, ConfigError> {
    let seq_timeout_ms = raw
        .seq_timeout_secs
        .unwrap_or(DEFAULT_SEQ_TIMEOUT_SECS)
        .saturating_mul(1000);
    let chosen = [
        raw.sequence.is_some(),
        raw.one_time_sequences.is_some(),
        raw.rotating.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        return Err(src.error_at(
            None,
            format!("door {door}: use only one of sequence, one_time_sequences and rotating"),
        ));
    }
    if chosen.iter().all(|c| !c) {
        if let Some(flags) = &raw.tcpflags {
            return Err(src.error_at(
                Some(flags.span()),
                format!("door {door}: tcpflags needs a sequence"),
            ));
        }
        if raw.seq_timeout_secs.is_some() {
            return Err(src.error_at(
                None,
                format!("door {door}: seq_timeout_secs needs a sequence"),
            ));
        }
        only_classic(src, door, raw, "an SPA door")?;
        return Ok(DoorKind::Spa);
    }
    if seq_timeout_ms == 0 {
        return Err(src.error_at(
            None,
            format!("door {door}: seq_timeout_secs must be at least 1"),
        ));
    }
    if let Some(rot) = &raw.rotating {
        let r = rot.get_ref();
        let spec = RotatingSpec::new(r.n, r.lo, r.hi)
            .map_err(|e| src.error_at(Some(rot.span()), format!("door {door}: {e}")))?;
        let transport: Transport = r.proto.parse().map_err(|_| {
            src.error_at(
                Some(rot.span()),
                format!(
                    "door {door}: rotating proto must be \"tcp\" or \"udp\", got {:?}",
                    r.proto
                ),
            )
        })?;
        if raw.tcpflags.is_some() {
            return Err(src.error_at(
                raw.tcpflags.as_ref().map(|f| f.span()),
                format!(
                    "door {door}: rotating doors take one SYN per port; tcpflags does not apply"
                ),
            ));
        }
        only_classic(src, door, raw, "a rotating door")?;
        return Ok(DoorKind::Rotating {
            spec,
            transport,
            seq_timeout_ms,
        });
    }
    let tcpflags =
        match &raw.tcpflags {
            Some(f) => Some(f.get_ref().parse::<TcpFlagsRule>().map_err(|e| {
                src.error_at(Some(f.span()), format!("door {door}: tcpflags: {e}"))
            })?),
            None => None,
        };
    let mut steps = Vec::new();
    for s in raw.sequence.iter().flatten() {
        steps.push(
            s.get_ref()
                .parse::<KnockStep>()
                .map_err(|e| src.error_at(Some(s.span()), format!("door {door}: sequence: {e}")))?,
        );
    }
    let (one_time, one_time_file) = match &raw.one_time_sequences {
        None => (None, None),
        Some(path) => {
            let file = path.get_ref();
            let text = std::fs::read_to_string(file).map_err(|e| {
                src.error_at(
                    Some(path.span()),
                    format!("door {door}: cannot read {}: {e}", file.display()),
                )
            })?;
            let list = parse_one_time_file(&text).map_err(|e| {
                src.error_at(
                    Some(path.span()),
                    format!(
                        "door {door}: {}:{}:{}: {e}",
                        file.display(),
                        e.line,
                        e.column
                    ),
                )
            })?;
            (Some(list), Some(file.clone()))
        }
    };
    let mut target = Vec::new();
    for t in raw.target.iter().flatten() {
        target.push(t.get_ref().trim().parse::<IpAddr>().map_err(|_| {
            src.error_at(
                Some(t.span()),
                format!(
                    "door {door}: target {:?} is not an IP address (knockd's Target is the \
                     one address knocks must be sent to)",
                    t.get_ref()
                ),
            )
        })?);
    }
    let max_open = match &raw.max_open {
        None => DEFAULT_MAX_OPEN,
        Some(m) if *m.get_ref() == 0 => {
            return Err(src.error_at(
                Some(m.span()),
                format!(
                    "door {door}: max_open must be at least 1 (it caps addresses open at once)"
                ),
            ))
        }
        Some(m) => *m.get_ref(),
    };
    let classic = ClassicDoor {
        name: door.clone(),
        steps,
        seq_timeout_ms,
        tcpflags,
        one_time,
        target,
    };
    classic
        .validate()
        .map_err(|e| src.error_at(None, format!("door {door}: {e}")))?;
    Ok(DoorKind::Classic {
        door: classic,
        one_time_file,
        max_open,
    })
}

/// Refuses `target` and `max_open` on a door that is not a classic one.
fn only_classic(
    src: &Source<'_>,
    door: &DoorName,
    raw: &RawDoor,
    what: &str,
) -> Result<(), ConfigError> {
    if let Some(t) = raw.target.as_ref().and_then(|t| t.first()) {
        return Err(src.error_at(
            Some(t.span()),
            format!("door {door}: target applies to knock sequences, not to {what}"),
        ));
    }
    if let Some(m) = &raw.max_open {
        return Err(src.error_at(
            Some(m.span()),
            format!("door {door}: max_open applies to knock sequences, not to {what}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/spad.toml"), text)
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() -> Result<(), ConfigError> {
        let c = parse("server_id = \"gw1\"\n[doors.ssh]\nopen = [\"tcp/22\"]\n")?;
        assert_eq!(c.port, 62210);
        assert_eq!(c.skew_ms, 30_000);
        assert!(c.stealth);
        assert_eq!(c.doors.len(), 1);
        assert_eq!(
            c.doors[0].policy,
            DoorPolicy {
                default_secs: 30,
                max_secs: 3600
            }
        );
        assert_eq!(c.doors[0].spec.backend, BackendKind::Nftables);
        Ok(())
    }

    #[test]
    fn a_typo_in_a_key_names_file_line_and_column() {
        let err =
            parse("server_id = \"gw1\"\n[doors.ssh]\nopen = [\"tcp/22\"]\ndefualt_secs = 30\n")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(
            err.starts_with("/etc/spad.toml:4:1: unknown field `defualt_secs`"),
            "{err}"
        );
        assert!(err.contains("defualt_secs = 30\n"), "{err}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let err = parse("server_id = \"gw1\"\n[doors.ssh]\nopen = [\"tcp/22\", \"tpc/80\"]\n")
            .err()
            .map(|e| (e.place, e.message))
            .unwrap_or_default();
        assert_eq!(err.0, Some((3, 19)));
        assert!(err.1.contains("tpc"), "{}", err.1);
        let err = parse("server_id = \"GW 1\"\n").err().map(|e| e.place);
        assert_eq!(err, Some(Some((1, 13))));
        let err = parse("server_id = \"gw\"\n[doors.SSH]\nopen=[\"tcp/22\"]\n")
            .err()
            .map(|e| e.place);
        assert_eq!(err, Some(Some((2, 8))));
        let err = parse("server_id = \"gw\"\nskew_secs = 900\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(":2:13: skew_secs must be between 1 and 300"),
            "{err}"
        );
    }

    #[test]
    fn classic_doors_carry_target_max_open_and_ipv6_commands() -> Result<(), ConfigError> {
        let c = parse(
            "server_id = \"gw\"\n[doors.knock]\nsequence = [\"7000\", \"8000\"]\n\
             target = [\"10.0.0.9\", \"2001:db8::9\"]\nmax_open = 5\nbackend = \"command\"\n\
             open_command = \"/bin/echo 4 %IP%\"\nopen_command_6 = \"/bin/echo 6 %IP%\"\n",
        )?;
        let d = &c.doors[0];
        let DoorKind::Classic { door, max_open, .. } = &d.kind else {
            panic!("not a classic door: {d:?}");
        };
        assert_eq!(door.target.len(), 2);
        assert_eq!(*max_open, 5);
        assert_eq!(d.max_open(), Some(5));
        // knockd `command` without a stop command: runs on every completion.
        assert!(d.runs_command_every_time());
        assert!(!c.needs_keys());
        let BackendKind::Command(t) = &d.spec.backend else {
            panic!("not a command door");
        };
        assert_eq!(t.open6.as_ref().map(|a| a[1].as_str()), Some("6"));
        // Defaults: max_open 1000, no target (this host's addresses).
        let c =
            parse("server_id = \"gw\"\n[doors.k]\nsequence = [\"7000\"]\nopen = [\"tcp/22\"]\n")?;
        assert_eq!(c.doors[0].max_open(), Some(DEFAULT_MAX_OPEN));
        assert!(!c.doors[0].runs_command_every_time());
        Ok(())
    }

    #[test]
    fn target_max_open_and_ipv6_commands_are_refused_where_they_mean_nothing() {
        let err = |text: &str| parse(text).err().map(|e| (e.place, e.message));
        let e = err("server_id = \"gw\"\n[doors.k]\nsequence = [\"7000\"]\nopen = [\"tcp/22\"]\ntarget = [\"host\"]\n");
        assert_eq!(e.as_ref().and_then(|e| e.0), Some((5, 11)));
        assert!(e.is_some_and(|e| e.1.contains("is not an IP address")));
        let e =
            err("server_id = \"gw\"\n[doors.s]\nopen = [\"tcp/22\"]\ntarget = [\"10.0.0.1\"]\n");
        assert!(e.is_some_and(|e| e.1.contains("not to an SPA door")));
        let e = err("server_id = \"gw\"\n[doors.k]\nsequence = [\"7000\"]\nopen = [\"tcp/22\"]\nmax_open = 0\n");
        assert!(e.is_some_and(|e| e.1.contains("max_open must be at least 1")));
        let e = err("server_id = \"gw\"\n[doors.k]\nsequence = [\"7000\"]\nopen = [\"tcp/22\"]\nopen_command_6 = \"x\"\n");
        assert!(e.is_some_and(|e| e.1.contains("open_command_6 is only used with backend")));
    }

    #[test]
    fn a_tcpflags_rule_accepting_more_than_syn_without_ack_opens_the_capture_filter() {
        let with = |flags: &str| {
            parse(&format!(
                "server_id = \"gw\"\n[doors.k]\nsequence = [\"7000\"]\nopen = [\"tcp/22\"]\n{flags}"
            ))
            .map(|c| c.knock_tcp_any_flags())
            .ok()
        };
        assert_eq!(with(""), Some(false));
        assert_eq!(with("tcpflags = \"syn,!ack\"\n"), Some(false));
        // knockd's `syn` accepts a SYN+ACK: the filter must let it through.
        assert_eq!(with("tcpflags = \"syn\"\n"), Some(true));
        assert_eq!(with("tcpflags = \"fin\"\n"), Some(true));
    }

    #[test]
    fn command_doors_need_an_open_command() {
        let err = parse("server_id = \"gw\"\n[doors.web]\nbackend = \"command\"\n")
            .err()
            .map(|e| e.message);
        assert!(err.unwrap_or_default().contains("needs open_command"));
        let ok = parse(
            "server_id = \"gw\"\n[doors.web]\nbackend = \"command\"\nopen_command = \"/bin/true %IP%\"\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    const FWKNOP_BASE: &str = "server_id = \"gw1\"\n\
        [fwknop]\naccess_conf = \"/etc/fwknop/access.conf\"\n\
        [doors.ssh]\nopen = [\"tcp/22\"]\nfwknop = true\n";

    fn fwknop_error(extra: &str) -> String {
        parse(&format!("{FWKNOP_BASE}{extra}"))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn fwknop_doors_map_their_one_port_and_defaults_are_fwknopds() -> Result<(), ConfigError> {
        let c = parse(FWKNOP_BASE)?;
        let f = c
            .fwknop
            .clone()
            .unwrap_or_else(|| unreachable!("[fwknop] parsed"));
        assert_eq!((f.port, f.max_age_secs), (62201, 120));
        let ssh: DoorName = "ssh".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            c.port_doors().into_iter().collect::<Vec<_>>(),
            vec![((Transport::Tcp, 22), ssh)]
        );
        // An fwknop-only config needs no spa/1 keys directory.
        assert!(!c.needs_keys());
        Ok(())
    }

    #[test]
    fn fwknop_doors_are_checked_with_file_line_and_col() {
        let two_ports =
            fwknop_error("[doors.mail]\nopen = [\"tcp/993\", \"tcp/587\"]\nfwknop = true\n");
        assert!(
            two_ports.starts_with(
                "/etc/spad.toml:9:10: door mail: an fwknop door opens exactly one port"
            ),
            "{two_ports}"
        );
        let same_port = fwknop_error("[doors.ssh2]\nopen = [\"tcp/22\"]\nfwknop = true\n");
        assert!(
            same_port.contains("door ssh2: tcp/22 is already the fwknop door ssh's port"),
            "{same_port}"
        );
        let sequence = fwknop_error(
            "[doors.knock]\nopen = [\"tcp/80\"]\nsequence = [\"7000\"]\nfwknop = true\n",
        );
        assert!(
            sequence.contains("fwknop packets open SPA doors only"),
            "{sequence}"
        );
        let no_table =
            parse("server_id = \"gw1\"\n[doors.ssh]\nopen = [\"tcp/22\"]\nfwknop = true\n")
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string());
        assert!(
            no_table.contains("fwknop = true needs an [fwknop] table"),
            "{no_table}"
        );
        let no_door = parse("server_id = \"gw1\"\n[fwknop]\naccess_conf = \"/a\"\n[doors.ssh]\nopen = [\"tcp/22\"]\n")
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            no_door.contains("no door is opened by fwknop packets"),
            "{no_door}"
        );
        let clash = parse(&FWKNOP_BASE.replace("access.conf\"", "access.conf\"\nport = 62210"))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(clash.contains("port 62210 is also the SPA port"), "{clash}");
        let age = parse(&FWKNOP_BASE.replace("access.conf\"", "access.conf\"\nmax_age_secs = 0"))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            age.contains("max_age_secs must be between 1 and 3600"),
            "{age}"
        );
        let knock = fwknop_error(
            "[doors.old]\nopen = [\"tcp/80\"]\nsequence = [\"7000\", \"62201:udp\"]\n",
        );
        assert!(
            knock.contains("port 62201 is also a UDP knock port"),
            "{knock}"
        );
    }
}
