//! spad's event loop, the executor around spa-proto's gateway: it starts
//! everything (config, keys, journal, firewall, capture, signals), then per
//! wake-up reads the clock once, feeds the gateway what arrived, and carries
//! out the gateway's actions. It decides nothing about doors.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use spa_proto::gateway::{Event as Decision, Gateway, JournalState, Now};
use spa_proto::journal::Record;
use spa_proto::knock::KnockStep;
use spa_proto::replay::Restored;
use spa_proto::{DoorName, Keyring, ReplayCache, ReplayRecord, Verifier};
use tracing::{error, info, warn};

use crate::audit;
use crate::capture::{Capture, CaptureError, CaptureHandle, FilterSpec};
use crate::clock;
use crate::config::{Config, ConfigError, DoorKind};
use crate::control::{Access, ControlListener, ReloadStatus};
use crate::effects::Surroundings;
use crate::executor;
use crate::firewall::{Firewall, FirewallError, FirewallSettings};
use crate::fwknop_access::{FwknopAccess, FwknopAccessError};
use crate::intake::{capture_loop, Event, Shared};
use crate::journal::{Journal, JournalStart, StateError};
use crate::one_time_file::mark_one_time_used;
use crate::refusals::RefusalLog;
use crate::rules::{gateway_config, verifier_config};
use crate::status::{self, StatusSources};
use crate::trust::check_config_file;

/// Why spad could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The config file is not usable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The keys directory is not usable.
    #[error("{0}")]
    Keys(#[from] spa_keys::KeyFileError),
    /// A state file could not be read or written.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The firewall refused.
    #[error("firewall: {0}")]
    Firewall(#[from] FirewallError),
    /// Capture could not start.
    #[error("capture: {0}")]
    Capture(#[from] CaptureError),
    /// A file spad must trust is writable by others.
    #[error("{0}")]
    Untrusted(#[from] crate::trust::UntrustedFile),
    /// fwknop's access file is not usable.
    #[error("{0}")]
    Fwknop(#[from] FwknopAccessError),
    /// A thread could not be started or signals could not be registered.
    #[error("{0}")]
    Runtime(String),
}

/// Keys for this gateway, from the keys directory; a broken entry is skipped
/// and named, so it never holds back the others (or their revocation).
pub fn load_keyring(config: &Config) -> Result<Keyring, DaemonError> {
    if !config.reads_keys_dir() {
        // Knock sequences or fwknop doors only: no keys directory to read (a
        // knockd or fwknopd migration has none).
        return Ok(Keyring::new(std::iter::empty()));
    }
    let dir = spa_keys::load_keys_dir(&config.keys_dir, &config.server_id)?;
    for (path, why) in &dir.skipped {
        warn!(path = %path.display(), "key entry skipped: {why}");
    }
    for e in &dir.entries {
        for d in &e.doors {
            if config.door(d).is_none() {
                warn!(user = %e.user, door = %d, "key entry names a door the config does not have");
            }
        }
    }
    Ok(Keyring::new(dir.entries.iter().map(|e| e.to_key_entry())))
}

fn filter_spec(config: &Config, ports: (Vec<u16>, Vec<u16>)) -> FilterSpec {
    let mut udp = ports.1;
    // fwknop's port passes the kernel filter like a UDP knock port; the
    // capture threads tell them apart by port.
    udp.extend(config.fwknop.as_ref().map(|f| f.port));
    FilterSpec {
        spa_udp_port: Some(config.port),
        knock_tcp_ports: ports.0,
        knock_udp_ports: udp,
        knock_tcp_any_flags: config.knock_tcp_any_flags(),
    }
}

/// fwknopd's access stanzas, when the config serves fwknop's clients. What
/// the reader did not carry is logged with its line; a port a stanza allows
/// that no fwknop door opens is named (such requests are refused).
pub fn load_fwknop(config: &Config) -> Result<Option<Arc<FwknopAccess>>, DaemonError> {
    let Some(settings) = &config.fwknop else {
        return Ok(None);
    };
    let access = FwknopAccess::load(settings)?;
    let doors = config.port_doors();
    for warning in access.warnings(|t, p| doors.contains_key(&(t, p))) {
        warn!("{warning}");
    }
    info!(
        stanzas = access.stanza_count(),
        port = access.port,
        "serving fwknop clients from {}",
        settings.access_conf.display()
    );
    Ok(Some(Arc::new(access)))
}

fn firewall_settings(config: &Config) -> FirewallSettings {
    FirewallSettings {
        table: config.nft_table.clone(),
        spa_port: config.port,
        stealth: config.stealth,
        other_udp_ports: config.fwknop.iter().map(|f| f.port).collect(),
        netns: None,
    }
}

/// This host's addresses: classic doors ignore knocks sent to any other
/// (traffic passing through a router or bridge), unless a door's target names it.
fn host_addresses() -> Result<Vec<std::net::IpAddr>, DaemonError> {
    crate::local_addrs::local_addresses().map_err(|e| DaemonError::Runtime(e.to_string()))
}

/// The replay cache the journal's records give at `now`, and why.
fn restore_replay(
    config: &Config,
    records: &[Record],
    start: &JournalStart,
    now: Now,
) -> ReplayCache {
    let (cap, skew) = (config.replay_cap, config.skew_ms);
    let unknown = "packets sealed before now + skew are refused";
    match start {
        JournalStart::Missing => {
            info!("no journal yet: {unknown}");
            return ReplayCache::new_without_history(cap, skew, now.wall_ms);
        }
        JournalStart::Unreadable(aside) => {
            warn!(moved_to = %aside.display(), "journal unreadable, moved aside: {unknown}");
            return ReplayCache::new_without_history(cap, skew, now.wall_ms);
        }
        JournalStart::Cut(why) => warn!("journal cut back to its last whole record ({why})"),
        JournalStart::Read => {}
    }
    let (cache, how) = ReplayCache::from_records(records, cap, skew, now.wall_ms);
    if let Restored::ImplausibleClock { newest_ms } = how {
        warn!(
            newest_ms,
            "journal's newest time lies beyond now + skew: not trusted, {unknown}"
        );
    }
    cache
}

/// What actions touch besides the firewall and the journal.
struct Around<'a> {
    shared: &'a Shared,
    captures: &'a [CaptureHandle],
    config: &'a Config,
}

impl Surroundings for Around<'_> {
    fn forget_replay(&mut self, record: &ReplayRecord) {
        let mut v = self
            .shared
            .verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        v.forget(record);
    }

    fn forget_digest(&mut self, digest: &[u8; 32]) {
        self.shared.fwknop_seen_forget(digest);
    }

    fn replay_records(&self) -> Vec<Record> {
        let v = self
            .shared
            .verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        v.replay().to_records(v.replay().high_water_ms())
    }

    fn set_capture_ports(&mut self, tcp: Vec<u16>, udp: Vec<u16>) {
        let spec = filter_spec(self.config, (tcp, udp));
        for c in self.captures {
            if let Err(e) = c.set_filter(&spec) {
                error!("could not update the capture filter: {e}");
            }
        }
    }

    fn mark_one_time_file(&mut self, door: &DoorName, steps: &[KnockStep]) {
        let file = match self.config.door(door).map(|d| &d.kind) {
            Some(DoorKind::Classic {
                one_time_file: Some(file),
                ..
            }) => file,
            _ => return,
        };
        // The journal holds the mark; the file is marked too, as knockd does.
        if let Err(e) = mark_one_time_used(file, steps) {
            warn!(door = %door, "one-time sequence used (kept in the journal) but not marked in its file: {e}");
        }
    }

    fn audit(&mut self, event: &Decision) {
        audit::record(event, &self.shared.counters);
    }
}

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    shared: Arc<Shared>,
    gateway: Gateway,
    firewall: Firewall,
    journal: Journal,
    captures: Vec<CaptureHandle>,
    events: Receiver<Event>,
    sender: Sender<Event>,
    /// When to check the firewall again after a repair failed (monotonic ms).
    repair_retry_at: Option<u64>,
    /// When spad started (Unix seconds), for `spad status`.
    started_unix: u64,
    /// The last reload and its result, for `spad status`.
    last_reload: Option<ReloadStatus>,
}

/// How long spad keeps trying closes the firewall refused before it exits, ms.
const EXIT_CLOSE_MS: u64 = 10_000;

/// A failed firewall repair is tried again after this long, ms.
const REPAIR_RETRY_MS: u64 = 1000;

impl Daemon {
    /// Loads everything, sets up the firewall, restores state and starts capturing.
    pub fn start(config_path: &Path) -> Result<Daemon, DaemonError> {
        check_config_file(config_path)?;
        let config = Config::load(config_path)?;
        let keyring = load_keyring(&config)?;
        let fwknop = load_fwknop(&config)?;
        let now = clock::now();
        let (journal, records, how) = Journal::open(&config.state_dir)?;
        let cache = restore_replay(&config, &records, &how, now);
        let mut gateway = Gateway::new(gateway_config(&config), &keyring, now);
        gateway.set_local_addresses(host_addresses()?);
        gateway.restore(&keyring, JournalState::from_records(&records), now);
        let ports = gateway.capture_ports();
        let verifier = Verifier::new(verifier_config(&config), keyring, cache);
        let firewall = Firewall::setup(firewall_settings(&config), &config.door_specs())?;
        let (sender, events) = mpsc::channel();
        let shared = Arc::new(Shared {
            verifier: Mutex::new(verifier),
            counters: Default::default(),
            spa_port: AtomicU16::new(config.port),
            knocks_queued: AtomicUsize::new(0),
            refusals: Mutex::new(RefusalLog::default()),
            fwknop: RwLock::new(fwknop),
            fwknop_seen: Mutex::new(HashMap::new()),
        });
        let mut daemon = Daemon {
            config,
            shared,
            gateway,
            firewall,
            journal,
            captures: Vec::new(),
            events,
            sender,
            repair_retry_at: None,
            started_unix: now.wall_ms / 1000,
            last_reload: None,
        };
        // Start from a compact journal of what is live (the same path as every
        // later compaction: the executor's `Compact`).
        daemon.gateway.compact();
        daemon.apply(now);
        daemon.start_captures(ports)?;
        daemon.start_signals()?;
        daemon.start_firewall_watch()?;
        daemon.start_control()?;
        daemon.start_metrics()?;
        let keys = daemon
            .shared
            .verifier
            .lock()
            .map(|v| v.keyring().len())
            .unwrap_or(0);
        info!(
            server_id = %daemon.config.server_id,
            port = daemon.config.port,
            doors = daemon.config.doors.len(),
            keys,
            "spad ready"
        );
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        Ok(daemon)
    }

    /// Carries out what the gateway decided.
    fn apply(&mut self, now: Now) {
        let mut around = Around {
            shared: &self.shared,
            captures: &self.captures,
            config: &self.config,
        };
        executor::apply(
            &mut self.gateway,
            &mut self.firewall,
            &mut self.journal,
            &mut around,
            now,
        );
    }

    fn start_captures(&mut self, ports: (Vec<u16>, Vec<u16>)) -> Result<(), DaemonError> {
        let spec = filter_spec(&self.config, ports);
        let interfaces: Vec<Option<String>> = if self.config.interfaces.is_empty() {
            vec![None]
        } else {
            self.config.interfaces.iter().cloned().map(Some).collect()
        };
        for iface in interfaces {
            let capture = if self.config.capture_ring {
                Capture::open(iface.as_deref(), &spec)?
            } else {
                Capture::open_with_recvfrom(iface.as_deref(), &spec)?
            };
            self.captures.push(capture.handle());
            let shared = Arc::clone(&self.shared);
            let tx = self.sender.clone();
            let name = iface.unwrap_or_else(|| "any".to_owned());
            std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || capture_loop(capture, shared, tx, name))
                .map_err(|e| DaemonError::Runtime(format!("cannot start a capture thread: {e}")))?;
        }
        Ok(())
    }

    fn start_signals(&self) -> Result<(), DaemonError> {
        let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1])
            .map_err(|e| {
            DaemonError::Runtime(format!("cannot register signal handlers: {e}"))
        })?;
        let tx = self.sender.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Event::Signal(sig)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| DaemonError::Runtime(format!("cannot start the signal thread: {e}")))?;
        Ok(())
    }

    /// Watches nf_tables for changes by others (a flushed ruleset, a deleted
    /// table or chain, `iptables -F`): blocked in `recv`, nothing runs while idle.
    fn start_firewall_watch(&self) -> Result<(), DaemonError> {
        let mut watch = self.firewall.watch()?;
        let tx = self.sender.clone();
        std::thread::Builder::new()
            .name("firewall-watch".into())
            .spawn(move || loop {
                let what = match watch.wait() {
                    Ok(what) => what,
                    Err(e) => {
                        error!("firewall watch stopped: {e}");
                        return;
                    }
                };
                if tx.send(Event::FirewallChanged(what)).is_err() {
                    return;
                }
            })
            .map_err(|e| DaemonError::Runtime(format!("cannot start the firewall watch: {e}")))?;
        Ok(())
    }

    /// The opt-in Prometheus listener (`metrics_listen`), answered like `spad status`.
    fn start_metrics(&self) -> Result<(), DaemonError> {
        let Some(addr) = self.config.metrics_listen else {
            return Ok(());
        };
        let listener = match crate::metrics_http::MetricsListener::bind(addr) {
            Ok(listener) => listener,
            Err(e) => {
                error!("no metrics listener on {addr}: {e}");
                return Ok(());
            }
        };
        let tx = self.sender.clone();
        listener
            .spawn(move |r| tx.send(Event::Control(r)).is_ok())
            .map_err(|e| DaemonError::Runtime(format!("cannot start the metrics thread: {e}")))?;
        info!("metrics on http://{addr}/metrics");
        Ok(())
    }

    /// The control socket (`spad status`, `spad close`): a thread blocked
    /// in `accept` hands each request to the main loop, which answers it.
    /// Without it spad still guards and opens doors: an operator's window
    /// that cannot open is an error in the log, never a reason to lock out users.
    fn start_control(&self) -> Result<(), DaemonError> {
        let listener =
            match ControlListener::bind(&self.config.control_socket, Access::from_system()) {
                Ok(listener) => listener,
                Err(e) => {
                    error!("no control socket, `spad status` and `spad close` will not work: {e}");
                    return Ok(());
                }
            };
        let tx = self.sender.clone();
        listener
            .spawn(move |r| tx.send(Event::Control(r)).is_ok())
            .map_err(|e| DaemonError::Runtime(format!("cannot start the control thread: {e}")))?;
        Ok(())
    }

    /// After a change by someone else: if spad's setup is not all there,
    /// rebuild it (drop rules first) and reopen the open doors for their
    /// remaining time. A failed repair is tried again every second.
    fn reconcile_firewall(&mut self, what: &str, now: Now) {
        self.repair_retry_at = None;
        match self.firewall.check_intact() {
            Ok(true) => return,
            Ok(false) => {
                error!(
                    change = what,
                    "spad's firewall was changed by someone else: restoring it"
                )
            }
            Err(e) => error!(
                change = what,
                "cannot check spad's firewall ({e}): restoring it"
            ),
        }
        let open = self.gateway.open_doors();
        let entries: Vec<(&str, std::net::IpAddr, u32)> = open
            .iter()
            .map(|d| (d.door.as_str(), d.addr, d.left_ms.div_ceil(1000) as u32))
            .collect();
        match self.firewall.repair(&entries) {
            Ok(results) => {
                for (d, result) in open.iter().zip(results) {
                    if let Err(e) = result {
                        warn!(door = %d.door, addr = %d.addr, "could not reopen the door after the repair: {e}");
                    }
                }
                info!(doors = open.len(), "firewall restored");
            }
            Err(e) => {
                error!("could not restore spad's firewall (trying again in 1 s): {e}");
                self.repair_retry_at = Some(now.mono_ms + REPAIR_RETRY_MS);
            }
        }
    }

    /// Waits for the next events (or the gateway's next timeout).
    fn next_events(&self) -> Vec<Event> {
        let refusals = self.shared.refusals.lock().map_or(None, |r| r.deadline());
        let deadline = [self.gateway.poll_timeout(), self.repair_retry_at, refusals]
            .into_iter()
            .flatten()
            .min();
        let first = match deadline {
            Some(at) => {
                let wait = at.saturating_sub(clock::now().mono_ms);
                self.events.recv_timeout(Duration::from_millis(wait)).ok()
            }
            None => self.events.recv().ok(),
        };
        let mut batch: Vec<Event> = first.into_iter().collect();
        batch.extend(self.events.try_iter().take(4096));
        batch
    }

    /// Runs until SIGTERM/SIGINT or a capture failure; then closes every door it opened.
    pub fn run(mut self) -> Result<(), DaemonError> {
        let mut failure = None;
        let mut stopping = false;
        while !stopping {
            let batch = self.next_events();
            let now = clock::now();
            for ev in batch {
                match ev {
                    Event::Grant(g) => self.gateway.handle_grant(*g, now),
                    Event::PortGrant(g) => self.gateway.handle_port_grant(*g, now),
                    Event::Knock(k) => {
                        self.shared.knock_taken();
                        self.gateway.handle_knock(&k, now);
                    }
                    Event::Signal(SIGHUP) => self.reload(now),
                    Event::Signal(SIGUSR1) => self.log_counters(),
                    Event::Signal(sig) => {
                        info!(signal = sig, "stopping: closing every open door");
                        stopping = true;
                    }
                    Event::FirewallChanged(what) => self.reconcile_firewall(&what, now),
                    // The wait below now includes the refusal window's end.
                    Event::RefusalsPending => {}
                    Event::Control(req) => {
                        let sources = StatusSources {
                            config: &self.config,
                            shared: &self.shared,
                            captures: &self.captures,
                            started_unix: self.started_unix,
                            last_reload: &self.last_reload,
                        };
                        let reply = status::answer(&mut self.gateway, req.kind, &sources, now);
                        // The closes it asked for happen before the answer goes out.
                        self.apply(now);
                        let _ = req.reply.send(reply);
                    }
                    Event::CaptureFailed(iface, e) => {
                        error!(interface = %iface, "capture failed: {e}");
                        failure = Some(e);
                        stopping = true;
                    }
                }
            }
            self.log_due_refusals(now);
            if self.repair_retry_at.is_some_and(|at| at <= now.mono_ms) {
                self.reconcile_firewall("an earlier repair failed", now);
            }
            self.gateway.handle_timeout(now);
            self.apply(now);
        }
        self.close_everything_before_exit();
        info!("counters: {}", self.shared.counters.summary());
        info!("spad stopped");
        failure.map_or(Ok(()), |e| Err(DaemonError::Capture(e)))
    }

    /// Closes every open door; a close the firewall refuses is tried again
    /// (the gateway's backoff) for up to `EXIT_CLOSE_MS` before spad exits,
    /// so a passing firewall hiccup never leaves a timer-closed door open.
    fn close_everything_before_exit(&mut self) {
        let now = clock::now();
        self.gateway.shutdown(now);
        self.apply(now);
        let give_up = now.mono_ms + EXIT_CLOSE_MS;
        while self.gateway.closes_pending() > 0 {
            let now = clock::now();
            let Some(next) = self.gateway.poll_timeout() else {
                break;
            };
            if next > give_up {
                break;
            }
            std::thread::sleep(Duration::from_millis(next.saturating_sub(now.mono_ms)));
            let now = clock::now();
            self.gateway.handle_timeout(now);
            self.apply(now);
        }
        let left = self.gateway.closes_pending();
        if left > 0 {
            error!("stopping with {left} door(s) the firewall would not close: check them by hand (spad's table/chain, or the close commands)");
        }
    }

    /// Per-source refusal lines whose minute has ended.
    fn log_due_refusals(&self, now: Now) {
        let due = self
            .shared
            .refusals
            .lock()
            .map(|mut r| r.take_due(now.mono_ms))
            .unwrap_or_default();
        for line in due {
            info!("{line}");
        }
    }

    fn log_counters(&self) {
        info!("counters: {}", self.shared.counters.summary());
        for c in &self.captures {
            if let Ok(s) = c.stats() {
                info!("capture: {s:?}");
            }
        }
    }

    /// SIGHUP: a bad new config is reported and the old one keeps running.
    fn reload(&mut self, now: Now) {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        let result = self.try_reload(now);
        self.last_reload = Some(ReloadStatus {
            at_unix: now.wall_ms / 1000,
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| e.to_string()),
        });
        match result {
            Ok(()) => info!(doors = self.config.doors.len(), "configuration reloaded"),
            Err(e) => error!("reload failed, still running the previous configuration: {e}"),
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }

    fn try_reload(&mut self, now: Now) -> Result<(), DaemonError> {
        check_config_file(&self.config.path)?;
        let mut config = Config::load(&self.config.path)?;
        for (changed, name) in [
            (config.server_id != self.config.server_id, "server_id"),
            (config.state_dir != self.config.state_dir, "state_dir"),
            (config.interfaces != self.config.interfaces, "interfaces"),
            (config.nft_table != self.config.nft_table, "nft_table"),
            (
                config.control_socket != self.config.control_socket,
                "control_socket",
            ),
            (
                config.capture_ring != self.config.capture_ring,
                "capture_ring",
            ),
            (
                config.metrics_listen != self.config.metrics_listen,
                "metrics_listen",
            ),
        ] {
            if changed {
                warn!("{name} changed: it takes effect after a restart");
            }
        }
        // Those four stay as they are until a restart (keys are loaded for the running server_id).
        config.server_id = self.config.server_id.clone();
        config.state_dir = self.config.state_dir.clone();
        config.interfaces = self.config.interfaces.clone();
        config.nft_table = self.config.nft_table.clone();
        config.control_socket = self.config.control_socket.clone();
        config.capture_ring = self.config.capture_ring;
        config.metrics_listen = self.config.metrics_listen;
        let keyring = load_keyring(&config)?;
        let fwknop = load_fwknop(&config)?;
        self.firewall.reconfigure(&config.door_specs())?;
        self.shared.spa_port.store(config.port, Ordering::Relaxed);
        self.gateway.reload(gateway_config(&config), &keyring, now);
        if let Ok(mut v) = self.shared.verifier.lock() {
            v.reload(verifier_config(&config), keyring, now.wall_ms);
        }
        *self
            .shared
            .fwknop
            .write()
            .unwrap_or_else(|e| e.into_inner()) = fwknop;
        self.config = config;
        // The SPA port or tcpflags may have changed even if the knock ports did not.
        let spec = filter_spec(&self.config, self.gateway.capture_ports());
        for c in &self.captures {
            c.set_filter(&spec)?;
        }
        Ok(())
    }
}
