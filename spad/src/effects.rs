//! The seams between the gateway's actions and the world: a door backend
//! (the firewall), a store (the journal) and the rest (verifier, capture,
//! one-time files, the audit trail) as small traits, so every failure path
//! of the executor can be driven by a fake in a unit test.

use std::net::IpAddr;

use spa_proto::gateway::Event;
use spa_proto::journal::Record;
use spa_proto::knock::KnockStep;
use spa_proto::{DoorName, ReplayRecord};

use crate::firewall::Firewall;
use crate::journal::Journal;

/// Opens and closes doors (nftables / iptables / command, or a fake).
pub trait DoorBackend {
    /// Opens each (door, address, seconds); one result each, in order.
    fn open_many(&mut self, opens: &[(&str, IpAddr, u32)]) -> Vec<Result<(), String>>;
    /// Closes each (door, address); one result each, in order.
    fn close_many(&mut self, closes: &[(&str, IpAddr)]) -> Vec<Result<(), String>>;
    /// Takes over a command door an earlier spad opened.
    fn adopt(&mut self, door: &str, addr: IpAddr);
}

/// Where durable records go.
pub trait Store {
    /// Appends records durably (one flush).
    fn append(&mut self, records: &[Record]) -> Result<(), String>;
    /// Replaces everything with `records` (compaction).
    fn rewrite(&mut self, records: &[Record]) -> Result<(), String>;
}

/// Everything else an action may touch.
pub trait Surroundings {
    /// Takes a replay entry back from the verifier.
    fn forget_replay(&mut self, record: &ReplayRecord);
    /// Takes an fwknop packet's digest back from the capture side's set.
    fn forget_digest(&mut self, digest: &[u8; 32]);
    /// The verifier's live replay entries as journal records, state first.
    fn replay_records(&self) -> Vec<Record>;
    /// Capture exactly these knock ports.
    fn set_capture_ports(&mut self, tcp: Vec<u16>, udp: Vec<u16>);
    /// Comments out a used one-time sequence in its file (best effort).
    fn mark_one_time_file(&mut self, door: &DoorName, steps: &[KnockStep]);
    /// Records a decision in the audit trail.
    fn audit(&mut self, event: &Event);
}

impl DoorBackend for Firewall {
    fn open_many(&mut self, opens: &[(&str, IpAddr, u32)]) -> Vec<Result<(), String>> {
        Firewall::open_many(self, opens)
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    fn close_many(&mut self, closes: &[(&str, IpAddr)]) -> Vec<Result<(), String>> {
        Firewall::close_many(self, closes)
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    fn adopt(&mut self, door: &str, addr: IpAddr) {
        Firewall::adopt(self, door, addr);
    }
}

impl Store for Journal {
    fn append(&mut self, records: &[Record]) -> Result<(), String> {
        Journal::append(self, records).map_err(|e| e.to_string())
    }

    fn rewrite(&mut self, records: &[Record]) -> Result<(), String> {
        Journal::rewrite(self, records).map_err(|e| e.to_string())
    }
}
