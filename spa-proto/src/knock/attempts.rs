//! The knock attempts in progress, per source address: how far each source
//! got on each expected sequence and when that attempt expires. Owns the
//! memory bound (at most `cap` attempts; the oldest goes first) and the
//! memory of recent TCP segments that recognises a retransmitted SYN.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use super::tracks::TrackKey;

/// How many recent TCP segments per source are remembered to spot retransmits.
const RECENT_TCP: usize = 8;

/// Identifies an attempt; increases with creation, so the smallest is oldest.
pub(crate) type AttemptId = u64;

/// One source's progress on one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub(crate) addr: IpAddr,
    pub(crate) track: TrackKey,
    /// Knocks matched so far.
    pub(crate) stage: usize,
    /// From this instant on, the attempt is stale.
    pub(crate) deadline_ms: u64,
}

/// What makes a TCP segment a retransmission of an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpSignature {
    pub(crate) dst: IpAddr,
    pub(crate) dst_port: u16,
    pub(crate) src_port: u16,
    pub(crate) seq: u32,
    pub(crate) flags: u8,
}

#[derive(Default)]
struct Source {
    attempts: Vec<AttemptId>,
    recent_tcp: [Option<TcpSignature>; RECENT_TCP],
    next_slot: usize,
}

/// All attempts in progress, bounded.
pub(crate) struct AttemptTable {
    attempts: BTreeMap<AttemptId, Attempt>,
    sources: HashMap<IpAddr, Source>,
    deadlines: BTreeSet<(u64, AttemptId)>,
    next_id: AttemptId,
    cap: usize,
    evicted: u64,
}

impl AttemptTable {
    /// A table holding at most `cap` attempts (at least 1).
    pub(crate) fn new(cap: usize) -> Self {
        AttemptTable {
            attempts: BTreeMap::new(),
            sources: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_id: 0,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    /// Adds an attempt, first dropping the oldest ones if the table is full.
    pub(crate) fn insert(&mut self, attempt: Attempt) -> AttemptId {
        while self.attempts.len() >= self.cap {
            let Some((&oldest, _)) = self.attempts.first_key_value() else {
                break;
            };
            self.remove(oldest);
            self.evicted += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.attempts.insert(id, attempt);
        self.deadlines.insert((attempt.deadline_ms, id));
        self.sources
            .entry(attempt.addr)
            .or_default()
            .attempts
            .push(id);
        id
    }

    pub(crate) fn get(&self, id: AttemptId) -> Option<&Attempt> {
        self.attempts.get(&id)
    }

    pub(crate) fn set_stage(&mut self, id: AttemptId, stage: usize) {
        if let Some(a) = self.attempts.get_mut(&id) {
            a.stage = stage;
        }
    }

    /// Removes an attempt; a source left without attempts is forgotten.
    pub(crate) fn remove(&mut self, id: AttemptId) -> Option<Attempt> {
        let attempt = self.attempts.remove(&id)?;
        self.deadlines.remove(&(attempt.deadline_ms, id));
        if let Some(source) = self.sources.get_mut(&attempt.addr) {
            source.attempts.retain(|&a| a != id);
            if source.attempts.is_empty() {
                self.sources.remove(&attempt.addr);
            }
        }
        Some(attempt)
    }

    /// The attempts of one source, oldest first.
    pub(crate) fn ids_of(&self, addr: &IpAddr) -> Vec<AttemptId> {
        self.sources
            .get(addr)
            .map(|s| s.attempts.clone())
            .unwrap_or_default()
    }

    /// Removes and returns every attempt whose deadline is at or before `now_ms`.
    pub(crate) fn expire(&mut self, now_ms: u64) -> Vec<Attempt> {
        let mut stale = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now_ms {
                break;
            }
            match self.remove(id) {
                Some(a) => stale.push(a),
                None => {
                    self.deadlines.remove(&(deadline, id));
                }
            }
        }
        stale
    }

    /// Removes and returns every attempt for which `drop` holds.
    pub(crate) fn remove_where(&mut self, drop: impl Fn(&Attempt) -> bool) -> Vec<Attempt> {
        let ids: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|(_, a)| drop(a))
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    pub(crate) fn earliest_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// Whether `addr` already sent this very TCP segment (a retransmit).
    pub(crate) fn is_repeat(&self, addr: &IpAddr, sig: TcpSignature) -> bool {
        self.sources
            .get(addr)
            .is_some_and(|s| s.recent_tcp.contains(&Some(sig)))
    }

    /// Remembers a TCP segment of a source that has attempts in progress.
    pub(crate) fn remember(&mut self, addr: &IpAddr, sig: TcpSignature) {
        if let Some(source) = self.sources.get_mut(addr) {
            source.recent_tcp[source.next_slot] = Some(sig);
            source.next_slot = (source.next_slot + 1) % RECENT_TCP;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.attempts.len()
    }

    pub(crate) fn sources(&self) -> usize {
        self.sources.len()
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

impl fmt::Debug for AttemptTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptTable")
            .field("attempts", &self.attempts.len())
            .field("sources", &self.sources.len())
            .field("cap", &self.cap)
            .field("evicted", &self.evicted)
            .finish()
    }
}
