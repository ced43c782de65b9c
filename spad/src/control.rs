//! spad's control socket: a unix socket only root (or the `spad` group) may
//! use, speaking one JSON object per line — `status`, `close`, `close_all` —
//! and the [`Status`] the daemon reports, rendered as JSON, a table or the
//! Prometheus text format. The listener thread blocks in `accept` (an idle
//! spad never wakes) and hands each request to the main loop with a reply
//! channel, so the answer always comes from the main loop's own state.
//!
//! Wire format (documented in docs/operating.md):
//! request  `{"cmd":"status"}` | `{"cmd":"close","door":"ssh","addr":"203.0.113.7"}` | `{"cmd":"close_all"}`
//! reply    `{"reply":"status",...Status fields}` | `{"reply":"closed","closed":[{"door":..,"addr":..}]}`
//!          | `{"reply":"error","message":"..."}`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where spad listens unless the config says otherwise (`control_socket`).
pub const DEFAULT_SOCKET: &str = "/run/spad/control.sock";
/// The group whose members may use the socket, when it exists.
pub const CONTROL_GROUP: &str = "spad";
/// Longest request line accepted, bytes (a request is a few dozen bytes).
pub const MAX_REQUEST_LEN: usize = 4096;
/// Longest reply line a client accepts, bytes.
pub const MAX_REPLY_LEN: usize = 4 << 20;
/// How long a connection may take to send its request, and the main loop to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The daemon's [`Status`].
    Status,
    /// Close one open door for one address now.
    Close {
        /// The door's name.
        door: String,
        /// The address it is open for.
        addr: IpAddr,
    },
    /// Close every open door now.
    CloseAll,
}

/// One door closed by a `close` or `close_all` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedDoor {
    /// The door's name.
    pub door: String,
    /// The address it was open for.
    pub addr: IpAddr,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ControlReply {
    /// The answer to `status`.
    Status(Status),
    /// The doors a `close`/`close_all` closed (empty for `close_all` with none open).
    Closed {
        /// What was closed.
        closed: Vec<ClosedDoor>,
    },
    /// The request was refused or failed; says why.
    Error {
        /// A sentence for the operator.
        message: String,
    },
}

impl ControlReply {
    /// An error reply.
    pub fn error(message: impl Into<String>) -> Self {
        ControlReply::Error {
            message: message.into(),
        }
    }
}

/// A request handed to the main loop, with the channel its answer goes back on.
#[derive(Debug)]
pub struct ControlRequest {
    /// What the client asked.
    pub kind: Request,
    /// Where the main loop sends its answer (exactly one).
    pub reply: mpsc::Sender<ControlReply>,
}

/// A door open now, as `spad status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenDoorStatus {
    /// The door's name.
    pub door: String,
    /// The address it is open for.
    pub address: IpAddr,
    /// Who opened it (`-` for a classic knock).
    pub user: String,
    /// The firewall backend holding the rule: nftables, iptables or command.
    pub backend: String,
    /// Seconds until it closes.
    pub seconds_left: u64,
}

/// The outcome of the last reload (SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// When it happened, seconds since the Unix epoch.
    pub at_unix: u64,
    /// Whether the new config and keys are running.
    pub ok: bool,
    /// Why it failed (the previous config keeps running), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Packets the kernel dropped before spad read them, and what it delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStatus {
    /// Packets the capture sockets received (all interfaces).
    pub received: u64,
    /// Packets the kernel dropped because spad did not read fast enough.
    pub dropped: u64,
}

/// What `spad status` reports: the main loop builds it from its own state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The gateway's server_id.
    pub server_id: String,
    /// When spad started, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Doors open now, soonest to close first.
    pub open_doors: Vec<OpenDoorStatus>,
    /// Grants since start.
    pub granted: u64,
    /// Refused datagrams since start, by reason (length, hint, aead, replay, window, door, …).
    pub refused: BTreeMap<String, u64>,
    /// Events dropped because the main loop's queue was full.
    pub overload: u64,
    /// The kernel's capture counters.
    pub capture: CaptureStatus,
    /// User keys loaded for this gateway.
    pub keys_loaded: u64,
    /// The last reload, if there was one since start.
    #[serde(default)]
    pub last_reload: Option<ReloadStatus>,
}

/// Why the control socket could not be served or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// An operation on the socket or its directory failed.
    #[error("control socket {}: {action}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Another process already answers on the socket.
    #[error("control socket {} is in use: is another spad running?", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The path exists and is not a socket: spad will not remove it.
    #[error("{} exists and is not a socket; remove it or set control_socket elsewhere", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// spad is not running (nothing listens on the socket).
    #[error("cannot reach spad at {}: {source} (is spad running? as root, or in group spad?)", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The answer was not a reply spad sends.
    #[error("spad sent an answer this client does not understand: {0}")]
    BadReply(String),
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> ControlError + 'a {
    move |source| ControlError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Who may use the socket besides root.
#[derive(Debug, Clone)]
pub struct Access {
    /// The socket's owner (the daemon's effective uid).
    pub owner_uid: u32,
    /// The `spad` group, if it exists: its gid and member names.
    pub group: Option<(u32, Vec<String>)>,
}

impl Access {
    /// Root, the daemon's own user, and the `spad` group if the system has
    /// one. The group is a local system group (the package makes it with
    /// `addgroup --system`), read from /etc/group rather than through NSS:
    /// an NSS lookup at start loads modules (libnss_systemd and its
    /// libraries, 0.7 MB resident) into a daemon that otherwise never needs
    /// them. A group only NSS knows leaves the socket to root (0600).
    pub fn from_system() -> Access {
        let group = std::fs::read_to_string("/etc/group")
            .ok()
            .and_then(|text| local_group(&text, CONTROL_GROUP));
        Access {
            owner_uid: nix::unistd::geteuid().as_raw(),
            group,
        }
    }

    /// Whether a peer with this uid and primary gid may use the socket.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.owner_uid {
            return true;
        }
        let Some((group_gid, members)) = &self.group else {
            return false;
        };
        if gid == *group_gid {
            return true;
        }
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .is_some_and(|u| u.gid.as_raw() == *group_gid || members.contains(&u.name))
    }
}

/// The gid and members of group `name` in /etc/group's text
/// (`name:password:gid:member,member`); `None` if absent or malformed.
fn local_group(etc_group: &str, name: &str) -> Option<(u32, Vec<String>)> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let gid = fields.nth(1)?.trim().parse().ok()?;
        let members = fields
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        Some((gid, members))
    })
}

/// The bound control socket; [`ControlListener::spawn`] serves it on its own thread.
#[derive(Debug)]
pub struct ControlListener {
    listener: UnixListener,
    path: PathBuf,
    access: Access,
}

impl ControlListener {
    /// Creates the socket at `path`: its directory if missing (mode 0750), a stale
    /// socket replaced, mode 0660 group `spad` when that group exists, else 0600.
    /// The socket gets its mode under a temporary name and is then renamed into
    /// place, so it is never reachable with looser permissions.
    pub fn bind(path: &Path, access: Access) -> Result<ControlListener, ControlError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(io_err(path, "creating its directory"))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
                    .map_err(io_err(path, "setting its directory's mode"))?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(ControlError::InUse {
                        path: path.to_path_buf(),
                    });
                }
                std::fs::remove_file(path).map_err(io_err(path, "removing the stale socket"))?;
            }
            Ok(_) => {
                return Err(ControlError::NotASocket {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, "inspecting")(e)),
        }
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".{}.new", std::process::id()));
        let temp = PathBuf::from(temp);
        let _ = std::fs::remove_file(&temp);
        let listener = UnixListener::bind(&temp).map_err(io_err(path, "binding"))?;
        let prepared = (|| {
            let mode = match &access.group {
                Some((gid, _)) => {
                    std::os::unix::fs::chown(&temp, Some(access.owner_uid), Some(*gid))?;
                    0o660
                }
                None => 0o600,
            };
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))?;
            std::fs::rename(&temp, path)
        })();
        if let Err(e) = prepared {
            let _ = std::fs::remove_file(&temp);
            return Err(io_err(path, "setting owner and mode")(e));
        }
        Ok(ControlListener {
            listener,
            path: path.to_path_buf(),
            access,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections on a thread named `control`, one at a time; each
    /// request goes to `handoff` (which returns false once the main loop is
    /// gone, ending the thread). Returns once the thread runs.
    pub fn spawn<F>(self, handoff: F) -> io::Result<std::thread::JoinHandle<()>>
    where
        F: Fn(ControlRequest) -> bool + Send + 'static,
    {
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || self.serve(handoff))
    }

    fn serve<F: Fn(ControlRequest) -> bool>(self, handoff: F) {
        for conn in self.listener.incoming() {
            let Ok(stream) = conn else { continue };
            if !serve_connection(stream, &self.access, &handoff) {
                return;
            }
        }
    }
}

/// Answers every request on one connection; false once the main loop is gone.
fn serve_connection<F: Fn(ControlRequest) -> bool>(
    stream: UnixStream,
    access: &Access,
    handoff: &F,
) -> bool {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return true;
    };
    let allowed = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map(|c| (c.uid(), access.allows(c.uid(), c.gid())));
    match allowed {
        Ok((_, true)) => {}
        Ok((uid, false)) => {
            let reply = ControlReply::error(format!(
                "permission denied: uid {uid} is neither root nor in group {CONTROL_GROUP}"
            ));
            let _ = write_reply(&mut writer, &reply);
            return true;
        }
        Err(_) => return true,
    }
    let mut reader = BufReader::new(stream);
    loop {
        let line = match read_request_line(&mut reader) {
            Ok(Some(line)) => line,
            Ok(None) => return true,
            Err(message) => {
                let _ = write_reply(&mut writer, &ControlReply::error(message));
                return true;
            }
        };
        let reply = match serde_json::from_str::<Request>(line.trim()) {
            Ok(kind) => {
                let (tx, rx) = mpsc::channel();
                if !handoff(ControlRequest { kind, reply: tx }) {
                    let _ = write_reply(&mut writer, &ControlReply::error("spad is stopping"));
                    return false;
                }
                rx.recv_timeout(IO_TIMEOUT)
                    .unwrap_or_else(|_| ControlReply::error("spad did not answer in time"))
            }
            Err(e) => ControlReply::error(format!(
                "bad request ({e}); send one JSON object per line, e.g. {{\"cmd\":\"status\"}}"
            )),
        };
        if write_reply(&mut writer, &reply).is_err() {
            return true;
        }
    }
}

/// One request line, or None at end of stream; an error text when too long or not UTF-8.
fn read_request_line(reader: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    let n = reader
        .take(MAX_REQUEST_LEN as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|e| format!("reading the request: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_REQUEST_LEN {
        return Err(format!(
            "request longer than {MAX_REQUEST_LEN} bytes: refused"
        ));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| "request is not UTF-8: refused".to_owned())
}

fn write_reply(w: &mut impl Write, reply: &ControlReply) -> io::Result<()> {
    let mut line = serde_json::to_string(reply).map_err(io::Error::other)?;
    line.push('\n');
    w.write_all(line.as_bytes())
}

/// Client side: sends one request to the spad listening at `path` and returns its reply.
pub fn request(path: &Path, req: &Request) -> Result<ControlReply, ControlError> {
    let mut stream = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT * 2))
        .map_err(io_err(path, "setting a timeout"))?;
    let mut line = serde_json::to_string(req).map_err(|e| ControlError::BadReply(e.to_string()))?;
    line.push('\n');
    // A refused peer may get its answer before the request is written:
    // read the reply even when the write fails.
    let sent = stream.write_all(line.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let read = BufReader::new(stream)
        .take(MAX_REPLY_LEN as u64)
        .read_until(b'\n', &mut buf);
    if buf.is_empty() {
        sent.map_err(io_err(path, "sending the request"))?;
        read.map_err(io_err(path, "reading the reply"))?;
        return Err(ControlError::BadReply(
            "spad closed the connection without answering".into(),
        ));
    }
    serde_json::from_slice(&buf).map_err(|e| ControlError::BadReply(e.to_string()))
}

impl Status {
    /// A table like `fwknopd --fw-list`: the open doors, then the counters.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        if self.open_doors.is_empty() {
            out.push_str("no doors open\n");
        } else {
            let mut rows = vec![[
                "DOOR".to_owned(),
                "ADDRESS".into(),
                "USER".into(),
                "BACKEND".into(),
                "SECONDS LEFT".into(),
            ]];
            for d in &self.open_doors {
                rows.push([
                    d.door.clone(),
                    d.address.to_string(),
                    d.user.clone(),
                    d.backend.clone(),
                    d.seconds_left.to_string(),
                ]);
            }
            let mut widths = [0usize; 5];
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in &rows {
                let cells: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                out.push_str(cells.join("  ").trim_end());
                out.push('\n');
            }
        }
        out.push('\n');
        let _ = writeln!(out, "server_id:    {}", self.server_id);
        let _ = writeln!(out, "started:      {}", utc(self.started_unix));
        let _ = writeln!(out, "keys loaded:  {}", self.keys_loaded);
        let reload = match &self.last_reload {
            None => "none since start".to_owned(),
            Some(r) if r.ok => format!("{} ok", utc(r.at_unix)),
            Some(r) => format!(
                "{} FAILED: {} (the previous configuration keeps running)",
                utc(r.at_unix),
                r.error.as_deref().unwrap_or("unknown error")
            ),
        };
        let _ = writeln!(out, "last reload:  {reload}");
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(reason, n)| format!("{reason}={n}"))
            .collect();
        let _ = writeln!(
            out,
            "granted:      {}   refused: {}",
            self.granted,
            if refused.is_empty() {
                "none".to_owned()
            } else {
                refused.join(" ")
            }
        );
        let _ = writeln!(
            out,
            "capture:      received={} dropped={}   overload={}",
            self.capture.received, self.capture.dropped, self.overload
        );
        out
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        metric(
            "spad_start_time_seconds",
            "gauge",
            "When spad started, seconds since the Unix epoch.",
            &one(self.started_unix),
        );
        metric(
            "spad_open_doors",
            "gauge",
            "Doors open now (door and address pairs).",
            &one(self.open_doors.len() as u64),
        );
        let left: Vec<(String, u64)> = self
            .open_doors
            .iter()
            .map(|d| {
                (
                    labels(&[
                        ("door", &d.door),
                        ("address", &d.address.to_string()),
                        ("user", &d.user),
                        ("backend", &d.backend),
                    ]),
                    d.seconds_left,
                )
            })
            .collect();
        metric(
            "spad_door_seconds_left",
            "gauge",
            "Seconds until an open door closes.",
            &left,
        );
        metric(
            "spad_granted_total",
            "counter",
            "SPA packets that opened or extended a door.",
            &one(self.granted),
        );
        let refused: Vec<(String, u64)> = self
            .refused
            .iter()
            .map(|(r, n)| (labels(&[("reason", r)]), *n))
            .collect();
        metric(
            "spad_refused_total",
            "counter",
            "Datagrams refused, by reason.",
            &refused,
        );
        metric(
            "spad_overload_total",
            "counter",
            "Events dropped because the main loop's queue was full.",
            &one(self.overload),
        );
        metric(
            "spad_capture_received_total",
            "counter",
            "Packets the capture sockets received.",
            &one(self.capture.received),
        );
        metric(
            "spad_capture_dropped_total",
            "counter",
            "Packets the kernel dropped before spad read them.",
            &one(self.capture.dropped),
        );
        metric(
            "spad_keys_loaded",
            "gauge",
            "User keys loaded for this gateway.",
            &one(self.keys_loaded),
        );
        if let Some(r) = &self.last_reload {
            metric(
                "spad_last_reload_time_seconds",
                "gauge",
                "When the last reload happened, seconds since the Unix epoch.",
                &one(r.at_unix),
            );
            metric(
                "spad_last_reload_success",
                "gauge",
                "1 if the last reload succeeded, 0 if the previous config kept running.",
                &one(u64::from(r.ok)),
            );
        }
        out
    }
}

/// `{a="x",b="y"}` with Prometheus label escaping.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let escaped = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// `2026-12-01 11:18:19 UTC` from seconds since the epoch.
fn utc(secs: u64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{secs} (seconds since the epoch)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            server_id: "gw1.example.net".into(),
            started_unix: 1_764_587_899,
            open_doors: vec![OpenDoorStatus {
                door: "ssh".into(),
                address: "198.51.100.7".parse().expect("address"),
                user: "alice".into(),
                backend: "nftables".into(),
                seconds_left: 27,
            }],
            granted: 3,
            refused: BTreeMap::from([("hint".to_owned(), 12), ("replay".to_owned(), 1)]),
            overload: 0,
            capture: CaptureStatus {
                received: 40,
                dropped: 2,
            },
            keys_loaded: 4,
            last_reload: Some(ReloadStatus {
                at_unix: 1_764_588_000,
                ok: false,
                error: Some("/etc/spad.toml:3:1: unknown field".into()),
            }),
        }
    }

    #[test]
    fn requests_have_the_documented_wire_form() {
        let close = Request::Close {
            door: "ssh".into(),
            addr: "198.51.100.7".parse().expect("address"),
        };
        assert_eq!(
            serde_json::to_string(&close).expect("json"),
            r#"{"cmd":"close","door":"ssh","addr":"198.51.100.7"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"status"}"#).expect("status"),
            Request::Status
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"close_all"}"#).expect("close_all"),
            Request::CloseAll
        );
        assert!(serde_json::from_str::<Request>(
            r#"{"cmd":"close","door":"ssh","addr":"198.51.100.7","all":true}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"close","door":"ssh"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

    #[test]
    fn table_lists_doors_then_counters_and_a_failed_reload() {
        let t = sample().to_table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "DOOR  ADDRESS       USER   BACKEND   SECONDS LEFT"
        );
        assert_eq!(lines[1], "ssh   198.51.100.7  alice  nftables  27");
        assert!(t.contains("keys loaded:  4\n"), "{t}");
        assert!(
            t.contains(
                "last reload:  2025-12-01 11:20:00 UTC FAILED: /etc/spad.toml:3:1: unknown field"
            ),
            "{t}"
        );
        assert!(t.contains("refused: hint=12 replay=1"), "{t}");
        assert!(t.contains("dropped=2"), "{t}");
        let mut idle = sample();
        idle.open_doors.clear();
        assert!(idle.to_table().starts_with("no doors open\n"));
    }

    #[test]
    fn prometheus_text_has_types_labels_and_escaping() {
        let mut s = sample();
        s.open_doors[0].user = "a\"b".into();
        let p = s.to_prometheus();
        assert!(p.contains("# TYPE spad_refused_total counter\n"), "{p}");
        assert!(
            p.contains("spad_refused_total{reason=\"hint\"} 12\n"),
            "{p}"
        );
        assert!(p.contains("spad_open_doors 1\n"), "{p}");
        assert!(
            p.contains("spad_door_seconds_left{door=\"ssh\",address=\"198.51.100.7\",user=\"a\\\"b\",backend=\"nftables\"} 27\n"),
            "{p}"
        );
        assert!(p.contains("spad_capture_dropped_total 2\n"), "{p}");
        assert!(p.contains("spad_last_reload_success 0\n"), "{p}");
        for line in p.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<u64>().is_ok(), "sample line {line:?}");
        }
    }

    /// A fake main loop: answers from a canned Status, closes what it is asked.
    fn fake_main_loop(rx: mpsc::Receiver<ControlRequest>, status: Status) {
        for req in rx {
            let reply = match req.kind {
                Request::Status => ControlReply::Status(status.clone()),
                Request::Close { door, addr } => {
                    if status
                        .open_doors
                        .iter()
                        .any(|d| d.door == door && d.address == addr)
                    {
                        ControlReply::Closed {
                            closed: vec![ClosedDoor { door, addr }],
                        }
                    } else {
                        ControlReply::error(format!("door {door} is not open for {addr}"))
                    }
                }
                Request::CloseAll => ControlReply::Closed { closed: vec![] },
            };
            let _ = req.reply.send(reply);
        }
    }

    fn serve(dir: &Path) -> PathBuf {
        let path = dir.join("run/control.sock");
        let access = Access {
            owner_uid: nix::unistd::geteuid().as_raw(),
            group: None,
        };
        let listener = ControlListener::bind(&path, access).expect("bind");
        let (tx, rx) = mpsc::channel::<ControlRequest>();
        std::thread::spawn(move || fake_main_loop(rx, sample()));
        listener.spawn(move |r| tx.send(r).is_ok()).expect("spawn");
        path
    }

    #[test]
    fn status_and_close_round_trip_over_a_real_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = serve(dir.path());
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "no spad group here: owner only");
        match request(&path, &Request::Status).expect("status") {
            ControlReply::Status(s) => assert_eq!(s, sample()),
            other => panic!("unexpected {other:?}"),
        }
        let addr: IpAddr = "198.51.100.7".parse().expect("address");
        assert_eq!(
            request(
                &path,
                &Request::Close {
                    door: "ssh".into(),
                    addr
                }
            )
            .expect("close"),
            ControlReply::Closed {
                closed: vec![ClosedDoor {
                    door: "ssh".into(),
                    addr
                }]
            }
        );
        let not_open = request(
            &path,
            &Request::Close {
                door: "web".into(),
                addr,
            },
        )
        .expect("close web");
        assert_eq!(
            not_open,
            ControlReply::error("door web is not open for 198.51.100.7")
        );
        // The raw JSON a script sees.
        let mut s = UnixStream::connect(&path).expect("connect");
        s.write_all(b"{\"cmd\":\"status\"}\n").expect("write");
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["reply"], "status");
        assert_eq!(v["open_doors"][0]["door"], "ssh");
        assert_eq!(v["open_doors"][0]["seconds_left"], 27);
        assert_eq!(v["refused"]["hint"], 12);
        assert_eq!(v["last_reload"]["ok"], false);
    }

    #[test]
    fn malformed_and_oversized_requests_get_an_error_not_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = serve(dir.path());
        let ask = |bytes: &[u8]| {
            let mut s = UnixStream::connect(&path).expect("connect");
            let _ = s.write_all(bytes);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).expect("read");
            serde_json::from_str::<ControlReply>(&line).expect("a reply")
        };
        let bad = ask(b"status\n");
        assert!(
            matches!(&bad, ControlReply::Error { message } if message.starts_with("bad request")),
            "{bad:?}"
        );
        let big = ask(&vec![b'x'; MAX_REQUEST_LEN + 10]);
        assert_eq!(
            big,
            ControlReply::error("request longer than 4096 bytes: refused")
        );
        // Still serving afterwards.
        assert!(matches!(
            request(&path, &Request::Status),
            Ok(ControlReply::Status(_))
        ));
    }

    #[test]
    fn a_live_socket_is_not_stolen_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = serve(dir.path());
        let access = Access {
            owner_uid: 0,
            group: None,
        };
        assert!(matches!(
            ControlListener::bind(&path, access.clone()),
            Err(ControlError::InUse { .. })
        ));
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).expect("bind"));
        assert!(ControlListener::bind(&stale, access.clone()).is_ok());
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(
            ControlListener::bind(&file, access),
            Err(ControlError::NotASocket { .. })
        ));
    }

    #[test]
    fn access_is_root_owner_or_group() {
        let a = Access {
            owner_uid: 0,
            group: Some((4242, vec!["carol".into()])),
        };
        assert!(a.allows(0, 0));
        assert!(a.allows(1000, 4242), "primary group spad");
        assert!(!a.allows(65534, 65534), "nobody");
        let no_group = Access {
            owner_uid: 0,
            group: None,
        };
        assert!(!no_group.allows(1000, 4242));
    }

    #[test]
    fn the_spad_group_is_read_from_etc_group() {
        let text = "root:x:0:\nspad:x:998:alice,bob\nspadx:x:5:\nbroken:x\n";
        assert_eq!(
            local_group(text, "spad"),
            Some((998, vec!["alice".to_owned(), "bob".to_owned()]))
        );
        assert_eq!(
            local_group("spad:x:997:\n", "spad"),
            Some((997, Vec::new()))
        );
        assert_eq!(local_group(text, "nobody"), None);
        assert_eq!(local_group("spad:x:notanumber:\n", "spad"), None);
    }
}
