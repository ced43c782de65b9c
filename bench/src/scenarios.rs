//! The five scenarios, run against one daemon at a time on the same network:
//! knock → open latency, a legitimate knock during a junk flood and during a
//! replay flood at each rate, many grants from distinct addresses, and idle
//! cost. Each scenario starts its daemon fresh and stops it afterwards; a
//! scenario that fails is recorded as an error and the run goes on.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{BenchError, Result};
use crate::flood::{self, FloodReport, FloodSpec, JunkAlphabet, Payloads};
use crate::lab::{grant_source, Lab, CLIENT_IP, FWKNOP_PORT, SERVER_IP, SERVICE_PORT, SPA_PORT};
use crate::monitor::{Change, FirewallMonitor};
use crate::netns::NetnsExt;
use crate::packets::{FwknopKeys, FwknopPacketMaker, SpaSealer, KNOCKD_SEQUENCE};
use crate::probe::{knock_and_connect, Knock};
use crate::procstat::{self, ProcSample};
use crate::targets::{self, spad::SpadInstall, CaptureCounters, Kind, Running};

/// What a run measures, and how much.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Knocks for the latency scenario (p50/p99).
    pub knocks: usize,
    /// Flood rates in datagrams/s; `None` = the sender's maximum.
    pub flood_rates: Vec<Option<u64>>,
    /// Legitimate knocks per flood rate.
    pub flood_tries: usize,
    /// How long a knock may take to open before it counts as lost.
    pub try_timeout: Duration,
    /// Upper bound on each flood's length.
    pub flood_max: Duration,
    /// Grants scenario: distinct addresses for spad.
    pub grants: usize,
    /// Grants scenario: distinct addresses for fwknopd and spad-fwknop (their packets come from the `fwknop` client, ~10 ms each).
    pub fwknop_grants: usize,
    /// Grants scenario: datagrams/s the grant packets are sent at.
    pub grant_rate: u64,
    /// Grants scenario: seconds each door is asked to stay open.
    pub grant_secs: u16,
    /// Idle scenario: how long to watch.
    pub idle: Duration,
    /// Door time for the knock scenarios.
    pub door_secs: u32,
    /// Which daemons to run.
    pub targets: Vec<Kind>,
    /// spad's `capture_ring` setting; `None`: spad's default (the line is left out).
    pub spad_capture_ring: Option<bool>,
}

impl Settings {
    /// The documented full run.
    pub fn full() -> Settings {
        Settings {
            knocks: 60,
            flood_rates: vec![Some(1_000), Some(10_000), Some(100_000), None],
            flood_tries: 20,
            try_timeout: Duration::from_secs(3),
            flood_max: Duration::from_secs(90),
            grants: 10_000,
            fwknop_grants: 300,
            grant_rate: 2_500,
            grant_secs: 60,
            idle: Duration::from_secs(10),
            door_secs: 3,
            targets: Kind::ALL.to_vec(),
            spad_capture_ring: None,
        }
    }

    /// A few seconds per daemon, small rates: the CI smoke run.
    pub fn smoke() -> Settings {
        Settings {
            knocks: 5,
            flood_rates: vec![Some(1_000)],
            flood_tries: 2,
            try_timeout: Duration::from_secs(3),
            flood_max: Duration::from_secs(15),
            grants: 50,
            fwknop_grants: 10,
            grant_rate: 500,
            grant_secs: 2,
            idle: Duration::from_secs(1),
            door_secs: 2,
            targets: Kind::ALL.to_vec(),
            spad_capture_ring: None,
        }
    }
}

/// One legitimate knock's outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct KnockSample {
    /// Knock sent → the firewall reported the element/rule for its address.
    pub to_rule: Option<Duration>,
    /// Knock sent → the first TCP connect from its address was answered.
    pub to_connect: Option<Duration>,
}

/// Several knocks.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Each knock, in order.
    pub samples: Vec<KnockSample>,
}

impl Latency {
    /// Times to the firewall change, of the knocks that got one.
    pub fn to_rule(&self) -> Vec<Duration> {
        self.samples.iter().filter_map(|s| s.to_rule).collect()
    }
    /// Times to a successful connect, of the knocks that got one.
    pub fn to_connect(&self) -> Vec<Duration> {
        self.samples.iter().filter_map(|s| s.to_connect).collect()
    }
    /// Knocks that let the client connect.
    pub fn opened(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| s.to_connect.is_some())
            .count()
    }
}

/// What flood a legitimate knock has to get through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodKind {
    /// Random datagrams of the right length.
    Junk,
    /// Copies of one valid packet that was already used.
    Replay,
}

/// One flood rate against one daemon.
#[derive(Debug, Clone)]
pub struct FloodRun {
    /// Junk or replay.
    pub kind: FloodKind,
    /// Asked rate (`None` = the sender's max).
    pub rate: Option<u64>,
    /// What the sender did.
    pub sender: FloodReport,
    /// The legitimate knocks during the flood.
    pub latency: Latency,
    /// Knocks planned (fewer were tried if three in a row were lost).
    pub planned: usize,
    /// Capture counters during the flood (spad only).
    pub capture: Option<CaptureCounters>,
    /// The daemon's CPU (incl. children) during the flood, % of one core.
    pub cpu_percent: f64,
}

/// Many doors opened from distinct addresses.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Valid packets sent (one per address).
    pub sent: usize,
    /// Addresses whose element/rule appeared.
    pub granted: usize,
    /// Grants per second from first to last.
    pub per_sec: f64,
    /// Mean time per grant over the first tenth of the grants.
    pub first_tenth_per_grant: Duration,
    /// Mean time per grant over the last tenth.
    pub last_tenth_per_grant: Duration,
    /// Doors the daemon deleted itself (delete events seen).
    pub deletes_seen: usize,
    /// Of those, the latest close relative to (appeared + door time), ms (negative: early).
    pub latest_delete_ms: Option<i64>,
    /// Of those, the earliest close relative to (appeared + door time), ms.
    pub earliest_delete_ms: Option<i64>,
    /// Elements/rules still present 1 s after the last door's time ran out.
    pub still_open_after_1s: usize,
    /// The daemon's CPU (incl. children) while granting, % of one core.
    pub cpu_percent: f64,
}

/// A daemon doing nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Idle {
    /// Resident memory 1 s after start, KiB.
    pub rss_kib: u64,
    /// Threads.
    pub threads: usize,
    /// Context switches per second (all threads): wake-ups.
    pub wakeups_per_sec: f64,
    /// CPU, % of one core.
    pub cpu_percent: f64,
    /// How long it was watched.
    pub watched: Duration,
}

/// Everything measured for one daemon.
#[derive(Debug, Clone)]
pub struct TargetReport {
    /// Which daemon.
    pub kind: Kind,
    /// Scenario 1.
    pub latency: Option<Latency>,
    /// Scenario 2.
    pub junk: Vec<FloodRun>,
    /// Scenario 3.
    pub replay: Vec<FloodRun>,
    /// Scenario 4.
    pub grants: Option<Grants>,
    /// Scenario 5.
    pub idle: Option<Idle>,
    /// Scenarios that could not run, and why.
    pub errors: Vec<String>,
}

/// The harness: the network, the firewall monitor and the clients' keys.
#[derive(Debug)]
pub struct Bench {
    /// The network.
    pub lab: Lab,
    monitor: FirewallMonitor,
    spad: SpadInstall,
    sealer: SpaSealer,
    fwknop_keys: FwknopKeys,
    fwknop: FwknopPacketMaker,
    /// What to measure.
    pub settings: Settings,
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Bench {
    /// Builds the network and installs the clients' keys; spad's binaries come from `bin_dir`.
    pub fn new(settings: Settings, bin_dir: &Path) -> Result<Bench> {
        let lab = Lab::new()?;
        let monitor = FirewallMonitor::start(&lab.server)?;
        let mut spad = SpadInstall::new(&lab, bin_dir)?;
        spad.capture_ring = settings.spad_capture_ring;
        let sealer = SpaSealer::from_key_file(
            &spad.key_file,
            targets::spad::SERVER_ID,
            targets::spad::DOOR,
        )?;
        let fwknop_keys = FwknopKeys::generate()?;
        let fwknop = FwknopPacketMaker {
            keys: fwknop_keys.clone(),
            server: SERVER_IP,
            access: format!("tcp/{SERVICE_PORT}"),
            dir: lab.root().to_path_buf(),
        };
        Ok(Bench {
            lab,
            monitor,
            spad,
            sealer,
            fwknop_keys,
            fwknop,
            settings,
        })
    }

    /// Runs every scenario against every daemon in the settings.
    pub fn run_all(&self, progress: &dyn Fn(&str)) -> Vec<TargetReport> {
        self.settings
            .targets
            .iter()
            .map(|k| self.run_target(*k, progress))
            .collect()
    }

    /// Runs every scenario that applies to `kind`.
    pub fn run_target(&self, kind: Kind, progress: &dyn Fn(&str)) -> TargetReport {
        let mut r = TargetReport {
            kind,
            latency: None,
            junk: Vec::new(),
            replay: Vec::new(),
            grants: None,
            idle: None,
            errors: Vec::new(),
        };
        let name = kind.name();
        progress(&format!("{name}: knock → open latency"));
        match self.latency(kind) {
            Ok(l) => r.latency = Some(l),
            Err(e) => r.errors.push(format!("latency: {e}")),
        }
        if kind != Kind::Knockd {
            for (flood_kind, out) in [
                (FloodKind::Junk, &mut r.junk),
                (FloodKind::Replay, &mut r.replay),
            ] {
                for rate in self.settings.flood_rates.clone() {
                    progress(&format!(
                        "{name}: {flood_kind:?} flood at {}",
                        rate_label(rate)
                    ));
                    match self.flood(kind, flood_kind, rate) {
                        Ok(f) => out.push(f),
                        Err(e) => r
                            .errors
                            .push(format!("{flood_kind:?} flood at {}: {e}", rate_label(rate))),
                    }
                }
            }
            progress(&format!("{name}: grants"));
            match self.grants(kind) {
                Ok(g) => r.grants = Some(g),
                Err(e) => r.errors.push(format!("grants: {e}")),
            }
        }
        progress(&format!("{name}: idle"));
        match self.idle(kind) {
            Ok(i) => r.idle = Some(i),
            Err(e) => r.errors.push(format!("idle: {e}")),
        }
        r
    }

    /// Starts `kind`. The bench sends every knock with one key, far more often
    /// than a person would, so spad's per-key replay cap (PROTOCOL §3 step 9,
    /// default 32 live entries) is raised above the knocks of one scenario.
    fn start(&self, kind: Kind, door_secs: u32) -> Result<Running> {
        let per_scenario = self.settings.knocks.max(self.settings.flood_tries + 1);
        self.start_with_cap(
            kind,
            door_secs,
            per_scenario + spa_proto::replay::DEFAULT_CAP,
        )
    }

    fn start_with_cap(&self, kind: Kind, door_secs: u32, replay_cap: usize) -> Result<Running> {
        self.lab.reset_pool();
        match kind {
            Kind::Spad => {
                targets::spad::start(&self.lab, &self.spad, door_secs, door_secs, replay_cap)
            }
            Kind::Fwknopd => targets::fwknopd::start(&self.lab, &self.fwknop_keys, door_secs),
            Kind::SpadFwknop => {
                targets::spad_fwknop::start(&self.lab, &self.spad, &self.fwknop_keys, door_secs)
            }
            Kind::Knockd => targets::knockd::start(&self.lab, door_secs),
        }
    }

    /// `n` legitimate knocks from fresh pool addresses, made ahead of time.
    fn knocks(&self, kind: Kind, n: usize) -> Result<Vec<Knock>> {
        let addrs: Vec<Ipv4Addr> = (0..n).map(|_| self.lab.fresh_addr()).collect();
        self.knocks_from(kind, &addrs)
    }

    fn knocks_from(&self, kind: Kind, addrs: &[Ipv4Addr]) -> Result<Vec<Knock>> {
        let payloads: Vec<Vec<(u16, Vec<u8>)>> = match kind {
            Kind::Spad => addrs
                .iter()
                .map(|a| {
                    Ok(vec![(
                        SPA_PORT,
                        self.sealer.packet(*a, wall_ms(), 0)?.to_vec(),
                    )])
                })
                .collect::<Result<_>>()?,
            Kind::Fwknopd | Kind::SpadFwknop => self
                .fwknop
                .packets(addrs, 2)?
                .into_iter()
                .map(|p| vec![(FWKNOP_PORT, p)])
                .collect(),
            Kind::Knockd => addrs
                .iter()
                .map(|_| KNOCKD_SEQUENCE.iter().map(|p| (*p, vec![0u8])).collect())
                .collect(),
        };
        Ok(addrs
            .iter()
            .zip(payloads)
            .map(|(from, datagrams)| Knock {
                from: *from,
                to: SERVER_IP,
                datagrams,
            })
            .collect())
    }

    /// Sends one knock and measures it.
    fn measure(&self, knock: &Knock) -> Result<KnockSample> {
        let since = Instant::now();
        let k = knock.clone();
        let timeout = self.settings.try_timeout;
        let timing = self
            .lab
            .client
            .run_inside(move || knock_and_connect(&k, SERVICE_PORT, timeout))?;
        let rule = self.monitor.wait_for(
            knock.from,
            Change::Added,
            since,
            Instant::now() + Duration::from_millis(100),
        );
        Ok(KnockSample {
            to_rule: rule.map(|r| r.saturating_duration_since(timing.sent)),
            to_connect: timing
                .connected
                .map(|c| c.saturating_duration_since(timing.sent)),
        })
    }

    /// Scenario 1.
    pub fn latency(&self, kind: Kind) -> Result<Latency> {
        let _daemon = self.start(kind, self.settings.door_secs)?;
        let knocks = self.knocks(kind, self.settings.knocks)?;
        let mut latency = Latency::default();
        for k in &knocks {
            latency.samples.push(self.measure(k)?);
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(latency)
    }

    /// Scenarios 2 and 3 at one rate.
    pub fn flood(&self, kind: Kind, flood_kind: FloodKind, rate: Option<u64>) -> Result<FloodRun> {
        let mut daemon = self.start(kind, self.settings.door_secs)?;
        let (port, alphabet) = if kind.takes_fwknop_packets() {
            (FWKNOP_PORT, JunkAlphabet::Base64)
        } else {
            (SPA_PORT, JunkAlphabet::Bytes)
        };
        let knocks = self.knocks(kind, self.settings.flood_tries)?;
        let payloads = match flood_kind {
            FloodKind::Junk => Payloads::Junk {
                len: knocks
                    .first()
                    .and_then(|k| k.datagrams.first())
                    .map_or(100, |d| d.1.len()),
                alphabet,
                src: CLIENT_IP,
            },
            FloodKind::Replay => {
                // Capture one valid packet by using it once, then replay it.
                let first = self
                    .knocks_from(kind, &[CLIENT_IP])?
                    .pop()
                    .ok_or_else(|| BenchError::Invalid("no packet to replay".into()))?;
                let used = self.measure(&first)?;
                if used.to_connect.is_none() {
                    return Err(BenchError::Invalid(format!(
                        "the packet to replay did not open the door for {CLIENT_IP}"
                    )));
                }
                let payload = first
                    .datagrams
                    .first()
                    .map(|d| d.1.clone())
                    .ok_or_else(|| BenchError::Invalid("no packet to replay".into()))?;
                Payloads::Replay {
                    payload,
                    src: CLIENT_IP,
                }
            }
        };
        let max_secs = self.settings.flood_max.as_secs().max(1);
        let spec = FloodSpec {
            dst: SocketAddrV4::new(SERVER_IP, port),
            payloads,
            rate_pps: rate,
            duration: self.settings.flood_max,
            max_packets: rate.map_or(flood::MAX_PACKETS, |r| r * (max_secs + 1)),
        };
        let before = daemon.capture_counters()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let sender = self
            .lab
            .client
            .spawn_inside(move || flood::run(&spec, &stop_flag))?;
        std::thread::sleep(Duration::from_millis(500));
        let cpu0 = ProcSample::read(daemon.pid());
        let mut latency = Latency::default();
        let mut lost_in_a_row = 0;
        for k in &knocks {
            let s = self.measure(k);
            let s = match s {
                Ok(s) => s,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    let _ = sender.join();
                    return Err(e);
                }
            };
            lost_in_a_row = if s.to_connect.is_some() {
                0
            } else {
                lost_in_a_row + 1
            };
            latency.samples.push(s);
            if lost_in_a_row >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let cpu1 = ProcSample::read(daemon.pid());
        stop.store(true, Ordering::Relaxed);
        let sent = sender
            .join()
            .map_err(|_| BenchError::Invalid("the flood thread panicked".into()))??;
        std::thread::sleep(Duration::from_millis(300));
        let after = daemon.capture_counters()?;
        let capture = match (before, after) {
            (Some(b), Some(a)) => Some(CaptureCounters {
                received: a.received.saturating_sub(b.received),
                dropped: a.dropped.saturating_sub(b.dropped),
            }),
            _ => None,
        };
        let cpu_percent = match (cpu0, cpu1) {
            (Ok(a), Ok(b)) => a.cpu_percent_until(&b),
            _ => f64::NAN,
        };
        Ok(FloodRun {
            kind: flood_kind,
            rate,
            sender: sent,
            latency,
            planned: self.settings.flood_tries,
            capture,
            cpu_percent,
        })
    }

    /// Scenario 4.
    pub fn grants(&self, kind: Kind) -> Result<Grants> {
        let n = match kind {
            Kind::Spad => self.settings.grants,
            _ => self.settings.fwknop_grants,
        };
        let secs = self.settings.grant_secs;
        // One key sends every grant: spad's per-key replay cap must hold them all.
        let daemon = self.start_with_cap(kind, u32::from(secs), n + 64)?;
        let sources: Vec<Ipv4Addr> = (0..n).map(grant_source).collect();
        let payloads: Vec<(Ipv4Addr, Vec<u8>)> = match kind {
            Kind::Spad => sources
                .iter()
                .map(|a| Ok((*a, self.sealer.packet(*a, wall_ms(), secs)?.to_vec())))
                .collect::<Result<_>>()?,
            _ => sources
                .iter()
                .copied()
                .zip(self.fwknop.packets(&sources, 2)?)
                .collect(),
        };
        let port = if kind.takes_fwknop_packets() {
            FWKNOP_PORT
        } else {
            SPA_PORT
        };
        let rate = self.settings.grant_rate.max(1);
        let spec = FloodSpec {
            dst: SocketAddrV4::new(SERVER_IP, port),
            payloads: Payloads::PerSource(payloads),
            rate_pps: Some(rate),
            duration: Duration::from_secs(n as u64 / rate + 10),
            max_packets: n as u64,
        };
        let cpu0 = ProcSample::read(daemon.pid())?;
        let since = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = self
            .lab
            .client
            .run_inside(move || flood::run(&spec, &stop))?;
        let wanted: HashSet<Ipv4Addr> = sources.iter().copied().collect();
        // Wait for the grants: all of them, or no progress for 10 s (bounded at 10 min).
        let cap = Instant::now() + Duration::from_secs(600);
        let mut last = (0, Instant::now());
        loop {
            let seen = self.first_events(Change::Added, since, &wanted).len();
            if seen >= n || Instant::now() > cap {
                break;
            }
            if seen != last.0 {
                last = (seen, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let cpu1 = ProcSample::read(daemon.pid())?;
        let adds = self.first_events(Change::Added, since, &wanted);
        let mut times: Vec<Instant> = adds.values().copied().collect();
        times.sort_unstable();
        let mut g = Grants {
            sent: sent.sent as usize,
            granted: times.len(),
            cpu_percent: cpu0.cpu_percent_until(&cpu1),
            ..Grants::default()
        };
        if let (Some(first), Some(last)) = (times.first(), times.last()) {
            let span = last.duration_since(*first).as_secs_f64();
            g.per_sec = if span > 0.0 {
                (times.len() - 1) as f64 / span
            } else {
                f64::NAN
            };
            let tenth = (times.len() / 10).max(2).min(times.len());
            let per = |w: &[Instant]| {
                w.last()
                    .zip(w.first())
                    .map(|(l, f)| l.duration_since(*f) / (w.len().max(2) as u32 - 1))
                    .unwrap_or_default()
            };
            g.first_tenth_per_grant = per(&times[..tenth]);
            g.last_tenth_per_grant = per(&times[times.len() - tenth..]);
        }
        // Closing: every door is due at (appeared + secs); look 1 s after the last is due.
        let door = Duration::from_secs(u64::from(secs));
        if let Some(last_due) = times.last().map(|t| *t + door) {
            let check_at = last_due + Duration::from_secs(1);
            std::thread::sleep(check_at.saturating_duration_since(Instant::now()));
            g.still_open_after_1s = self.open_count(kind)?;
            // Give the daemon's own deletes a little longer to show up, then read them.
            std::thread::sleep(Duration::from_secs(2));
            let dels = self.first_events(Change::Deleted, since, &wanted);
            let lateness: Vec<i64> = dels
                .iter()
                .filter_map(|(a, d)| {
                    let due = *adds.get(a)? + door;
                    Some(if *d >= due {
                        d.duration_since(due).as_millis() as i64
                    } else {
                        -(due.duration_since(*d).as_millis() as i64)
                    })
                })
                .collect();
            g.deletes_seen = lateness.len();
            g.latest_delete_ms = lateness.iter().copied().max();
            g.earliest_delete_ms = lateness.iter().copied().min();
        }
        drop(daemon);
        Ok(g)
    }

    /// The first event of `change` per wanted address since `since`.
    fn first_events(
        &self,
        change: Change,
        since: Instant,
        wanted: &HashSet<Ipv4Addr>,
    ) -> HashMap<Ipv4Addr, Instant> {
        let mut out = HashMap::new();
        for e in self.monitor.events_since(since) {
            if e.change == change && wanted.contains(&e.addr) {
                out.entry(e.addr).or_insert(e.at);
            }
        }
        out
    }

    /// Addresses the daemon's firewall still lets in.
    fn open_count(&self, kind: Kind) -> Result<usize> {
        let text = match kind {
            Kind::Spad => self.lab.server.run(
                "nft",
                ["list", "set", "inet", targets::spad::TABLE, "ssh_v4"],
            )?,
            Kind::SpadFwknop => {
                let set = format!("{}_v4", targets::spad_fwknop::door());
                self.lab
                    .server
                    .run("nft", ["list", "set", "inet", targets::spad::TABLE, &set])?
            }
            Kind::Fwknopd => self.lab.server.run("iptables", ["-S", "FWKNOP_INPUT"])?,
            Kind::Knockd => self.lab.server.run(
                "nft",
                ["list", "set", "inet", targets::knockd::TABLE, "ssh_v4"],
            )?,
        };
        Ok(match kind {
            Kind::Fwknopd => text
                .lines()
                .filter(|l| l.starts_with("-A FWKNOP_INPUT"))
                .count(),
            _ => text
                .split(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | ','))
                .filter(|t| t.parse::<Ipv4Addr>().is_ok())
                .count(),
        })
    }

    /// Scenario 5.
    pub fn idle(&self, kind: Kind) -> Result<Idle> {
        let daemon = self.start(kind, self.settings.door_secs)?;
        std::thread::sleep(Duration::from_secs(1));
        let pid = daemon.pid();
        let rss_kib = procstat::rss_kib(pid)?;
        let threads = procstat::threads(pid)?;
        let a = ProcSample::read(pid)?;
        std::thread::sleep(self.settings.idle);
        let b = ProcSample::read(pid)?;
        Ok(Idle {
            rss_kib,
            threads,
            wakeups_per_sec: a.switches_per_sec_until(&b),
            cpu_percent: a.cpu_percent_until(&b),
            watched: a.span_until(&b),
        })
    }
}

/// `1k/s`, `100k/s`, `max`.
pub fn rate_label(rate: Option<u64>) -> String {
    match rate {
        None => "max".to_owned(),
        Some(r) if r >= 1000 && r % 1000 == 0 => format!("{}k/s", r / 1000),
        Some(r) => format!("{r}/s"),
    }
}
