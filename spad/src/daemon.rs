//! spad's event loop: the only place that reads the clock, owns threads, and
//! carries out what spa-proto decides — capture threads verify datagrams,
//! the main thread persists replay records, opens and closes doors in the
//! firewall, keeps the open-doors state file, and handles signals.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::net::IpAddr;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use spa_proto::knock::{KnockOutcome, KnockPacket, Knocker};
use spa_proto::{
    DoorChange, DoorName, Grant, Keyring, OpenDoor, OpenDoors, Verdict, Verifier, VerifierConfig,
};
use tracing::{debug, error, info, warn};

use crate::capture::{Capture, CaptureError, CaptureHandle, FilterSpec, Transport};
use crate::config::{Config, ConfigError, DoorKind};
use crate::counters::Counters;
use crate::durable::{self, DoorStateFile, ReplayLog, ReplayStart, StateError};
use crate::firewall::{Firewall, FirewallError, FirewallSettings};
use crate::knocks::{mark_one_time_used, restore_knocker, UsedStepLog};

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
    /// A thread could not be started or signals could not be registered.
    #[error("{0}")]
    Runtime(String),
}

/// Milliseconds since the Unix epoch, from the wall clock.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Keys for this gateway, from the keys directory, as the verifier wants them.
pub fn load_keyring(config: &Config) -> Result<Keyring, DaemonError> {
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

fn verifier_config(config: &Config) -> VerifierConfig {
    VerifierConfig {
        skew_ms: config.skew_ms,
        cap: config.replay_cap,
        doors: config.policies(),
    }
}

fn filter_spec(config: &Config) -> FilterSpec {
    let (knock_tcp_ports, knock_udp_ports) = config.knock_ports();
    // A plain SYN passes the kernel filter; doors whose tcpflags rule a SYN
    // cannot satisfy (knockd's "fin", "syn,ack", …) need every TCP packet.
    let knock_tcp_any_flags = config.doors.iter().any(|d| match &d.kind {
        DoorKind::Classic { door, .. } => door
            .tcpflags
            .is_some_and(|rule| !rule.matches(spa_proto::knock::TCP_SYN)),
        _ => false,
    });
    FilterSpec {
        spa_udp_port: Some(config.port),
        knock_tcp_ports,
        knock_udp_ports,
        knock_tcp_any_flags,
    }
}

fn firewall_settings(config: &Config) -> FirewallSettings {
    FirewallSettings {
        table: config.nft_table.clone(),
        spa_port: config.port,
        stealth: config.stealth,
        netns: None,
    }
}

/// What the capture threads and signal thread tell the main loop.
#[derive(Debug)]
enum Event {
    Grant(Box<Grant>),
    Knock(KnockPacket),
    Signal(i32),
    CaptureFailed(String, CaptureError),
}

/// State shared with capture threads.
#[derive(Debug)]
struct Shared {
    verifier: Mutex<Verifier>,
    counters: Counters,
    spa_port: AtomicU16,
}

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    shared: Arc<Shared>,
    firewall: Firewall,
    doors: OpenDoors,
    knocker: Knocker,
    used_steps: UsedStepLog,
    door_state: DoorStateFile,
    replay_log: ReplayLog,
    captures: Vec<CaptureHandle>,
    events: Receiver<Event>,
    sender: SyncSender<Event>,
}

/// Capacity of the queue from capture threads to the main loop.
const QUEUE: usize = 1024;

impl Daemon {
    /// Loads everything, sets up the firewall, restores state and starts capturing.
    pub fn start(config_path: &Path) -> Result<Daemon, DaemonError> {
        let config = Config::load(config_path)?;
        let keyring = load_keyring(&config)?;
        let start = wall_ms();
        durable::ensure_state_dir(&config.state_dir)?;
        let (replay_log, cache, how) =
            ReplayLog::open(&config.state_dir, config.replay_cap, config.skew_ms, start)?;
        match how {
            ReplayStart::Restored => {
                info!(path = %replay_log.path().display(), live = cache.live_len(start), "replay cache restored")
            }
            ReplayStart::NoHistory => {
                info!(path = %replay_log.path().display(), "no replay cache yet: packets sealed before now + skew are refused")
            }
            ReplayStart::Unreadable => {
                warn!(path = %replay_log.path().display(), "replay cache unreadable, moved aside: packets sealed before now + skew are refused")
            }
        }
        let (knocker, used_steps) = restore_knocker(&config, &keyring, &config.state_dir, start)?;
        let verifier = Verifier::new(verifier_config(&config), keyring, cache);
        let firewall = Firewall::setup(firewall_settings(&config), &config.door_specs())?;
        let (sender, events) = mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Shared {
            verifier: Mutex::new(verifier),
            counters: Counters::default(),
            spa_port: AtomicU16::new(config.port),
        });
        let mut daemon = Daemon {
            door_state: DoorStateFile::new(&config.state_dir),
            config,
            shared,
            firewall,
            doors: OpenDoors::new(),
            knocker,
            used_steps,
            replay_log,
            captures: Vec::new(),
            events,
            sender,
        };
        daemon.restore_doors()?;
        daemon.start_captures()?;
        daemon.start_signals()?;
        let users = daemon
            .shared
            .verifier
            .lock()
            .map(|v| v.keyring().len())
            .unwrap_or(0);
        info!(
            server_id = %daemon.config.server_id,
            port = daemon.config.port,
            doors = daemon.config.doors.len(),
            keys = users,
            "spad ready"
        );
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        Ok(daemon)
    }

    /// After a restart: closes what is overdue, re-opens what is not for its remaining time.
    fn restore_doors(&mut self) -> Result<(), DaemonError> {
        let saved = self.door_state.read()?;
        let now = wall_ms();
        let overdue = self.doors.restore(saved, now);
        for d in &overdue {
            self.firewall.adopt(d.door.as_str(), d.addr);
        }
        self.close_in_firewall(&overdue, "overdue after restart");
        let rearm: Vec<OpenDoor> = self.doors.iter().collect();
        let mut reopen = Vec::new();
        for d in rearm {
            let secs = (d.until_ms.saturating_sub(now)).div_ceil(1000) as u32;
            if self.firewall.adopt(d.door.as_str(), d.addr) {
                info!(door = %d.door, addr = %d.addr, seconds_left = secs, "door still open after restart");
            } else {
                reopen.push((d, secs));
            }
        }
        let opens: Vec<(&str, IpAddr, u32)> = reopen
            .iter()
            .map(|(d, secs)| (d.door.as_str(), d.addr, *secs))
            .collect();
        let results = self.firewall.open_many(&opens);
        let mut failed = Vec::new();
        for ((d, secs), result) in reopen.iter().zip(results) {
            match result {
                Ok(()) => {
                    info!(door = %d.door, addr = %d.addr, seconds = secs, "door re-armed after restart")
                }
                Err(e) => {
                    warn!(door = %d.door, addr = %d.addr, "could not re-arm door: {e}");
                    failed.push(d.clone());
                }
            }
        }
        for d in failed {
            self.doors.remove(&d.door, d.addr);
        }
        self.door_state.write(&self.doors.to_state())?;
        Ok(())
    }

    fn start_captures(&mut self) -> Result<(), DaemonError> {
        let spec = filter_spec(&self.config);
        let interfaces: Vec<Option<String>> = if self.config.interfaces.is_empty() {
            vec![None]
        } else {
            self.config.interfaces.iter().cloned().map(Some).collect()
        };
        for iface in interfaces {
            let capture = Capture::open(iface.as_deref(), &spec)?;
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

    /// Runs until SIGTERM/SIGINT; then closes every door it opened.
    pub fn run(mut self) -> Result<(), DaemonError> {
        loop {
            let deadline = match (self.doors.poll_timeout(), self.knocker.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match deadline {
                Some(until) => {
                    let wait = until.saturating_sub(wall_ms());
                    match self.events.recv_timeout(Duration::from_millis(wait)) {
                        Ok(ev) => Some(ev),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.events.recv() {
                    Ok(ev) => Some(ev),
                    Err(_) => break,
                },
            };
            let mut batch: Vec<Event> = first.into_iter().collect();
            while let Ok(ev) = self.events.try_recv() {
                batch.push(ev);
                if batch.len() >= QUEUE {
                    break;
                }
            }
            let mut grants = Vec::new();
            let mut knocks = Vec::new();
            for ev in batch {
                match ev {
                    Event::Grant(g) => grants.push(*g),
                    Event::Knock(k) => {
                        let now = wall_ms();
                        knocks.extend(self.knocker.on_packet(&k, now));
                    }
                    Event::Signal(SIGHUP) => self.reload(),
                    Event::Signal(SIGUSR1) => self.log_counters(),
                    Event::Signal(sig) => {
                        info!(signal = sig, "stopping: closing every open door");
                        self.handle_grants(grants)?;
                        self.handle_knocks(knocks)?;
                        return self.shutdown();
                    }
                    Event::CaptureFailed(iface, e) => {
                        error!(interface = %iface, "capture failed: {e}");
                        self.shutdown()?;
                        return Err(DaemonError::Capture(e));
                    }
                }
            }
            self.handle_grants(grants)?;
            if self.knocker.poll_timeout().is_some_and(|t| t <= wall_ms()) {
                knocks.extend(self.knocker.handle_timeout(wall_ms()));
            }
            self.handle_knocks(knocks)?;
            self.expire_doors()?;
        }
        self.shutdown()
    }

    /// Persists the grants' replay records, records the doors, then opens them.
    fn handle_grants(&mut self, grants: Vec<Grant>) -> Result<(), DaemonError> {
        if grants.is_empty() {
            return Ok(());
        }
        let records: Vec<_> = grants.iter().map(|g| g.record).collect();
        if let Err(e) = self.replay_log.append(&records) {
            // PROTOCOL §3 step 9: storage failed, so nothing opens; counted as `cap`.
            error!(
                "replay log write failed, refusing {} grant(s): {e}",
                grants.len()
            );
            for _ in &grants {
                self.shared
                    .counters
                    .reject(spa_proto::Reason::Cap, wall_ms());
            }
            return Ok(());
        }
        let requests: Vec<OpenRequest> = grants
            .iter()
            .map(|g| {
                self.shared.counters.grant();
                OpenRequest {
                    door: g.door.clone(),
                    addr: g.addr,
                    user: g.user.clone(),
                    seconds: g.seconds,
                    now_ms: g.now_ms,
                }
            })
            .collect();
        self.open_doors(&requests)?;
        if let Ok(v) = self.shared.verifier.lock() {
            if let Err(e) = self.replay_log.maybe_compact(v.replay(), wall_ms()) {
                warn!("replay log compaction failed: {e}");
            }
        }
        Ok(())
    }

    /// Records the doors in the state file, then opens them in the firewall.
    fn open_doors(&mut self, requests: &[OpenRequest]) -> Result<(), DaemonError> {
        if requests.is_empty() {
            return Ok(());
        }
        let mut to_open = Vec::new();
        for r in requests {
            match self.doors.open(&r.door, r.addr, r.now_ms, r.seconds) {
                DoorChange::Opened { until_ms } => to_open.push((r, until_ms, "door opened")),
                DoorChange::Extended { until_ms } => to_open.push((r, until_ms, "door extended")),
                DoorChange::Unchanged { until_ms } => {
                    let left = until_ms.saturating_sub(r.now_ms) / 1000;
                    info!(door = %r.door, addr = %r.addr, user = %r.user, seconds_left = left, "door already open");
                }
            }
        }
        self.door_state.write(&self.doors.to_state())?;
        let opens: Vec<(&str, IpAddr, u32)> = to_open
            .iter()
            .map(|(r, until_ms, _)| {
                let secs = until_ms.saturating_sub(r.now_ms).div_ceil(1000) as u32;
                (r.door.as_str(), r.addr, secs)
            })
            .collect();
        let results = self.firewall.open_many(&opens);
        for (((r, _, what), (_, _, secs)), result) in to_open.iter().zip(&opens).zip(results) {
            match result {
                Ok(()) => {
                    info!(door = %r.door, addr = %r.addr, user = %r.user, seconds = secs, "{what}")
                }
                Err(e) => {
                    error!(door = %r.door, addr = %r.addr, user = %r.user, "could not open door: {e}")
                }
            }
        }
        Ok(())
    }

    /// Carries out what the knock state machine decided, in knockd's words.
    fn handle_knocks(&mut self, outcomes: Vec<KnockOutcome>) -> Result<(), DaemonError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let used: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                KnockOutcome::UsedStep { key, door, step } => Some((*key, door.clone(), *step)),
                _ => None,
            })
            .collect();
        if let Err(e) = self.used_steps.append(&used) {
            error!("could not record used rotating steps, refusing to open: {e}");
            return Ok(());
        }
        let now = wall_ms();
        let mut requests = Vec::new();
        for o in outcomes {
            match o {
                KnockOutcome::Stage {
                    door,
                    addr,
                    stage,
                    of,
                } => {
                    info!(door = %door, addr = %addr, "knock: stage {stage} of {of}")
                }
                KnockOutcome::Opened { door, addr, user } => {
                    let Some(d) = self.config.door(&door) else {
                        continue;
                    };
                    info!(door = %door, addr = %addr, "knock: sequence complete");
                    requests.push(OpenRequest {
                        seconds: d.policy.default_secs,
                        door,
                        addr,
                        user: user.unwrap_or_else(|| "-".to_owned()),
                        now_ms: now,
                    });
                }
                KnockOutcome::Replayed {
                    door,
                    addr,
                    user,
                    step,
                } => {
                    warn!(door = %door, addr = %addr, user = %user, step, "knock: rotating sequence already used in this step: not opened")
                }
                KnockOutcome::TimedOut { door, addr } => {
                    info!(door = %door, addr = %addr, "knock: sequence timed out")
                }
                KnockOutcome::Reset { door, addr } => {
                    debug!(door = %door, addr = %addr, "knock: wrong port, sequence reset")
                }
                KnockOutcome::OneTimeUsed { door, index, steps } => {
                    if let Some(DoorKind::Classic {
                        one_time_file: Some(file),
                        ..
                    }) = self.config.door(&door).map(|d| &d.kind)
                    {
                        match mark_one_time_used(file, &steps) {
                            Ok(_) => {
                                info!(door = %door, index, file = %file.display(), "knock: one-time sequence used and marked")
                            }
                            Err(e) => {
                                error!(door = %door, "could not mark the one-time sequence used: {e}")
                            }
                        }
                    }
                }
                KnockOutcome::OneTimeExhausted { door } => {
                    warn!(door = %door, "knock: no one-time sequences left: door disabled")
                }
                _ => {}
            }
        }
        self.open_doors(&requests)
    }

    fn expire_doors(&mut self) -> Result<(), DaemonError> {
        let due = self.doors.expire(wall_ms());
        if due.is_empty() {
            return Ok(());
        }
        self.close_in_firewall(&due, "time is up");
        self.door_state.write(&self.doors.to_state())?;
        Ok(())
    }

    /// Closes doors in the firewall (one transaction for the nftables ones).
    fn close_in_firewall(&mut self, doors: &[OpenDoor], why: &str) {
        let closes: Vec<(&str, IpAddr)> = doors.iter().map(|d| (d.door.as_str(), d.addr)).collect();
        for (d, result) in doors.iter().zip(self.firewall.close_many(&closes)) {
            match result {
                Ok(()) => info!(door = %d.door, addr = %d.addr, "door closed ({why})"),
                Err(e) => error!(door = %d.door, addr = %d.addr, "could not close door: {e}"),
            }
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

    /// SIGHUP: a bad new config or keys dir is reported and the old one keeps running.
    fn reload(&mut self) {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        match self.try_reload() {
            Ok(()) => info!(doors = self.config.doors.len(), "configuration reloaded"),
            Err(e) => error!("reload failed, still running the previous configuration: {e}"),
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }

    fn try_reload(&mut self) -> Result<(), DaemonError> {
        let mut config = Config::load(&self.config.path)?;
        for (changed, name) in [
            (config.server_id != self.config.server_id, "server_id"),
            (config.state_dir != self.config.state_dir, "state_dir"),
            (config.interfaces != self.config.interfaces, "interfaces"),
            (config.nft_table != self.config.nft_table, "nft_table"),
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
        let keyring = load_keyring(&config)?;
        self.firewall.reconfigure(&config.door_specs())?;
        let spec = filter_spec(&config);
        for c in &self.captures {
            c.set_filter(&spec)?;
        }
        self.shared.spa_port.store(config.port, Ordering::Relaxed);
        let now = wall_ms();
        (self.knocker, self.used_steps) =
            restore_knocker(&config, &keyring, &config.state_dir, now)?;
        if let Ok(mut v) = self.shared.verifier.lock() {
            v.reload(verifier_config(&config), keyring, now);
        }
        // Doors that no longer exist are closed.
        let gone: Vec<OpenDoor> = self
            .doors
            .iter()
            .filter(|d| !config.doors.iter().any(|c| c.name == d.door))
            .collect();
        for d in gone {
            self.doors.remove(&d.door, d.addr);
            info!(door = %d.door, addr = %d.addr, "door closed (removed from the config)");
        }
        self.door_state.write(&self.doors.to_state())?;
        self.config = config;
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), DaemonError> {
        let open = self.doors.drain();
        self.close_in_firewall(&open, "spad stopping");
        self.door_state.write(&self.doors.to_state())?;
        info!("counters: {}", self.shared.counters.summary());
        info!("spad stopped");
        Ok(())
    }
}

fn capture_loop(mut capture: Capture, shared: Arc<Shared>, tx: SyncSender<Event>, name: String) {
    loop {
        let packet = match capture.next() {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Event::CaptureFailed(name, e));
                return;
            }
        };
        let spa_port = shared.spa_port.load(Ordering::Relaxed);
        let knock = match packet.transport {
            Transport::Udp { dst_port, .. } if dst_port == spa_port => None,
            Transport::Udp {
                src_port, dst_port, ..
            } => Some(KnockPacket {
                src: packet.src,
                dst: packet.dst,
                transport: spa_proto::knock::Transport::Udp,
                dst_port,
                tcp_flags: 0,
                src_port,
                tcp_seq: 0,
            }),
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
                seq,
            } => Some(KnockPacket {
                src: packet.src,
                dst: packet.dst,
                transport: spa_proto::knock::Transport::Tcp,
                dst_port,
                tcp_flags: flags,
                src_port,
                tcp_seq: seq,
            }),
        };
        if let Some(k) = knock {
            match tx.try_send(Event::Knock(k)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => shared.counters.overload(),
                Err(TrySendError::Disconnected(_)) => return,
            }
            continue;
        }
        let now = wall_ms();
        let verdict = {
            let mut v = shared.verifier.lock().unwrap_or_else(|e| e.into_inner());
            v.verify(packet.payload, packet.src, now)
        };
        match verdict {
            Verdict::Grant(g) => match tx.try_send(Event::Grant(Box::new(g))) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => shared.counters.overload(),
                Err(TrySendError::Disconnected(_)) => return,
            },
            Verdict::Drop(reason) => {
                debug!(src = %packet.src, reason = reason.as_str(), "datagram dropped");
                if shared.counters.reject(reason, now) {
                    info!("rejected datagrams so far: {}", shared.counters.summary());
                }
            }
        }
    }
}

/// A door to open for an address, from an SPA grant or a completed knock.
#[derive(Debug, Clone)]
struct OpenRequest {
    door: DoorName,
    addr: IpAddr,
    user: String,
    seconds: u32,
    now_ms: u64,
}

/// `spad --check`: the config and its keys, or the first error.
pub fn check(config_path: &Path) -> Result<String, DaemonError> {
    let config = Config::load(config_path)?;
    let dir = spa_keys::load_keys_dir(&config.keys_dir, &config.server_id)?;
    let mut lines = vec![format!(
        "{}: OK — server_id {}, port {}, {} door(s), {} key(s) in {}",
        config_path.display(),
        config.server_id,
        config.port,
        config.doors.len(),
        dir.entries.len(),
        config.keys_dir.display()
    )];
    for (path, why) in &dir.skipped {
        lines.push(format!("warning: {} skipped: {why}", path.display()));
    }
    Ok(lines.join("\n"))
}
