//! What reaches the main loop: capture threads verify SPA datagrams where
//! they arrive (junk never leaves them) and pass on grants and knock
//! packets; a signal thread passes on signals. Grants are never dropped (the
//! replay cache's per-key cap bounds them, and a dropped grant would have
//! spent its nonce); knocks are dropped, and counted, past a bound. Refused
//! datagrams are counted and logged per source (see `refusals`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};

use spa_proto::gateway::{PortGrant, DIGEST_CAP};
use spa_proto::knock::KnockPacket;
use spa_proto::{Grant, Reason, Verdict, Verifier};
use tracing::{info, warn};

use crate::capture::{Capture, CaptureError, Captured, Transport};
use crate::clock;
use crate::counters::Counters;
use crate::fwknop_access::FwknopAccess;
use crate::refusals::{self, RefusalLog};

/// Knock packets waiting for the main loop, at most.
pub const KNOCK_QUEUE: usize = 1024;

/// What the threads tell the main loop.
#[derive(Debug)]
pub enum Event {
    /// A datagram the verifier granted.
    Grant(Box<Grant>),
    /// An fwknop packet its access stanza admits (not yet checked for replay).
    PortGrant(Box<PortGrant>),
    /// A packet on a knock port.
    Knock(KnockPacket),
    /// A signal arrived.
    Signal(i32),
    /// A capture thread stopped.
    CaptureFailed(String, CaptureError),
    /// Someone else changed nf_tables where spad's firewall lives.
    FirewallChanged(String),
    /// A refused datagram started a minute of per-source refusal lines.
    RefusalsPending,
    /// A request on the control socket (`spad status`, `spad close`).
    Control(crate::control::ControlRequest),
}

/// State the capture threads share with the main loop.
#[derive(Debug)]
pub struct Shared {
    /// The verifier (its replay cache is the only thing locked per datagram).
    pub verifier: Mutex<Verifier>,
    /// Counters.
    pub counters: Counters,
    /// The SPA port (changes on reload).
    pub spa_port: AtomicU16,
    /// Knock events queued and not yet taken by the main loop.
    pub knocks_queued: AtomicUsize,
    /// Refused datagrams per source, for the audit trail.
    pub refusals: Mutex<RefusalLog>,
    /// fwknop's access stanzas and port, when served (replaced on reload).
    pub fwknop: RwLock<Option<Arc<FwknopAccess>>>,
    /// Digests of the fwknop packets passed to the main loop, until when
    /// (wall ms): a copy is refused here, before its HMAC and decryption.
    /// Only a shortcut: the gateway's durable digest set decides.
    pub fwknop_seen: Mutex<HashMap<[u8; 32], u64>>,
}

impl Shared {
    /// The main loop took one knock event.
    pub fn knock_taken(&self) {
        self.knocks_queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// The gateway took a digest back: a copy of its packet is judged again.
    pub fn fwknop_seen_forget(&self, digest: &[u8; 32]) {
        let mut seen = self.fwknop_seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(digest);
    }

    /// Whether a copy of `payload` was passed on and is still live.
    fn fwknop_seen(&self, payload: &[u8], wall_ms: u64) -> bool {
        let seen = self.fwknop_seen.lock().unwrap_or_else(|e| e.into_inner());
        !seen.is_empty()
            && seen
                .get(&spa_fwknop::replay_key(payload))
                .is_some_and(|until| *until >= wall_ms)
    }

    /// Remembers a packet passed on (bounded like the gateway's set; when
    /// full, the gateway alone refuses copies).
    fn fwknop_passed_on(&self, grant: &PortGrant, wall_ms: u64) {
        let mut seen = self.fwknop_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= DIGEST_CAP {
            seen.retain(|_, until| *until >= wall_ms);
        }
        if seen.len() < DIGEST_CAP {
            seen.insert(grant.digest, grant.replay_until_ms);
        }
    }
}

/// One capture thread's life: read, verify or pass on, until capture fails
/// or the main loop is gone.
pub fn capture_loop(mut capture: Capture, shared: Arc<Shared>, tx: Sender<Event>, name: String) {
    loop {
        let packet = match capture.next() {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Event::CaptureFailed(name, e));
                return;
            }
        };
        if let Some(fwknop) = fwknop_for(&shared, &packet) {
            let now = clock::now();
            if shared.fwknop_seen(packet.payload, now.wall_ms) {
                if !refused(&shared, &tx, packet.src, Reason::Replay, None, now) {
                    return;
                }
                continue;
            }
            match fwknop.decide(packet.payload, packet.src, now.wall_ms) {
                Ok(grant) if made_before_history(&shared, &fwknop, grant.timestamp_ms) => {
                    let detail = "fwknop: packet made before spad's replay history begins (its journal was lost)";
                    if !refused(&shared, &tx, packet.src, Reason::Replay, Some(detail), now) {
                        return;
                    }
                }
                Ok(grant) => {
                    shared.fwknop_passed_on(&grant, now.wall_ms);
                    if tx.send(Event::PortGrant(Box::new(grant))).is_err() {
                        return;
                    }
                }
                Err(refusal) => {
                    let detail = refusal.detail.as_deref();
                    if !refused(&shared, &tx, packet.src, refusal.reason, detail, now) {
                        return;
                    }
                }
            }
            continue;
        }
        let spa_port = shared.spa_port.load(Ordering::Relaxed);
        if let Some(k) = packet.knock_packet(spa_port) {
            if shared.knocks_queued.fetch_add(1, Ordering::Relaxed) >= KNOCK_QUEUE {
                shared.knocks_queued.fetch_sub(1, Ordering::Relaxed);
                shared.counters.overload();
                continue;
            }
            if tx.send(Event::Knock(k)).is_err() {
                return;
            }
            continue;
        }
        let now = clock::now();
        let (verdict, skewed) = {
            let mut v = shared.verifier.lock().unwrap_or_else(|e| e.into_inner());
            let verdict = v.verify(packet.payload, packet.src, now.wall_ms);
            let hint = verdict == Verdict::Drop(Reason::Hint);
            let skewed = hint.then(|| v.diagnose_clock(packet.payload, now.wall_ms));
            (verdict, skewed.flatten())
        };
        match verdict {
            Verdict::Grant(g) => {
                if tx.send(Event::Grant(Box::new(g))).is_err() {
                    return;
                }
            }
            Verdict::Drop(reason) => {
                if let Some(skew) = skewed {
                    refusals::clock_refused(
                        &shared.refusals,
                        &shared.counters,
                        packet.src,
                        &skew,
                        now,
                    );
                    continue;
                }
                if !refused(&shared, &tx, packet.src, reason, None, now) {
                    return;
                }
            }
        }
    }
}

/// fwknop's stanzas, if `packet` is a UDP datagram to fwknop's port.
fn fwknop_for(shared: &Shared, packet: &Captured<'_>) -> Option<Arc<FwknopAccess>> {
    let Transport::Udp { dst_port, .. } = packet.transport else {
        return None;
    };
    let fwknop = shared.fwknop.read().unwrap_or_else(|e| e.into_inner());
    fwknop.as_ref().filter(|f| f.port == dst_port).cloned()
}

/// §3 step 9's start rule for fwknop packets: when spad's replay history is
/// unknown (its journal was lost), a packet made before it restarted may be
/// a replay, whatever protocol sealed it. fwknop's clocks may be `max_age`
/// off rather than `skew`, so its packets wait that much longer.
fn made_before_history(shared: &Shared, fwknop: &FwknopAccess, timestamp_ms: u64) -> bool {
    let v = shared.verifier.lock().unwrap_or_else(|e| e.into_inner());
    let refuse_until = v.replay().refuse_until_ms();
    refuse_until > 0
        && timestamp_ms <= refuse_until.saturating_add(fwknop.max_age_secs.saturating_mul(1000))
}

/// Counts a refused datagram and logs it per source (an authentic one with
/// `detail`); false when the main loop is gone.
fn refused(
    shared: &Shared,
    tx: &Sender<Event>,
    src: std::net::IpAddr,
    reason: Reason,
    detail: Option<&str>,
    now: spa_proto::gateway::Now,
) -> bool {
    if shared.counters.reject(reason, now.wall_ms) {
        info!("rejected datagrams so far: {}", shared.counters.summary());
    }
    let recorded = shared
        .refusals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(src, reason, now.mono_ms);
    match (recorded.line, detail) {
        (Some(line), Some(detail)) => warn!("{line} ({detail})"),
        (Some(line), None) => info!("{line}"),
        (None, _) => {}
    }
    !(recorded.window_started && tx.send(Event::RefusalsPending).is_err())
}
