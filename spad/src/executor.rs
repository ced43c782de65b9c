//! Carries out the gateway's actions, in order, and reports every effect
//! back (boringtun's "call again until Done"). Consecutive opens and closes
//! go to the backend as one batch (one nftables transaction). No decision
//! here: what a failure means is the gateway's.

use std::net::IpAddr;

use spa_proto::gateway::{Action, EffectId, Gateway, Now};
use spa_proto::DoorName;

use crate::effects::{DoorBackend, Store, Surroundings};

/// Opens or closes waiting to go to the backend together.
#[derive(Default)]
struct Pending {
    opens: Vec<(EffectId, DoorName, IpAddr, u32)>,
    closes: Vec<(EffectId, DoorName, IpAddr)>,
}

fn report(gw: &mut Gateway, id: EffectId, result: Result<(), String>, now: Now) {
    match result {
        Ok(()) => gw.effect_done(id, now),
        Err(e) => gw.effect_failed(id, e, now),
    }
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.opens.is_empty() && self.closes.is_empty()
    }

    fn flush(&mut self, gw: &mut Gateway, backend: &mut dyn DoorBackend, now: Now) {
        if !self.opens.is_empty() {
            let opens = std::mem::take(&mut self.opens);
            let args: Vec<_> = opens
                .iter()
                .map(|(_, d, a, s)| (d.as_str(), *a, *s))
                .collect();
            let results = backend.open_many(&args);
            for ((id, ..), r) in opens.iter().zip(results) {
                report(gw, *id, r, now);
            }
        }
        if !self.closes.is_empty() {
            let closes = std::mem::take(&mut self.closes);
            let args: Vec<_> = closes.iter().map(|(_, d, a)| (d.as_str(), *a)).collect();
            let results = backend.close_many(&args);
            for ((id, ..), r) in closes.iter().zip(results) {
                report(gw, *id, r, now);
            }
        }
    }
}

/// Runs every action the gateway has, until it has none.
pub fn apply(
    gw: &mut Gateway,
    backend: &mut dyn DoorBackend,
    store: &mut dyn Store,
    around: &mut dyn Surroundings,
    now: Now,
) {
    let mut pending = Pending::default();
    loop {
        match gw.poll_action() {
            Some(action) => run_one(gw, backend, store, around, &mut pending, action, now),
            // Reports of a flushed batch may bring more actions.
            None if pending.is_empty() => return,
            None => pending.flush(gw, backend, now),
        }
    }
}

fn run_one(
    gw: &mut Gateway,
    backend: &mut dyn DoorBackend,
    store: &mut dyn Store,
    around: &mut dyn Surroundings,
    pending: &mut Pending,
    action: Action,
    now: Now,
) {
    match action {
        Action::Open {
            id,
            door,
            addr,
            seconds,
        } => {
            if !pending.closes.is_empty() {
                pending.flush(gw, backend, now);
            }
            pending.opens.push((id, door, addr, seconds));
        }
        Action::Close { id, door, addr } => {
            if !pending.opens.is_empty() {
                pending.flush(gw, backend, now);
            }
            pending.closes.push((id, door, addr));
        }
        other => {
            pending.flush(gw, backend, now);
            match other {
                Action::Persist { id, records } => report(gw, id, store.append(&records), now),
                Action::Adopt { door, addr } => backend.adopt(door.as_str(), addr),
                Action::ForgetReplay(record) => around.forget_replay(&record),
                Action::ForgetDigest(digest) => around.forget_digest(&digest),
                Action::MarkOneTimeFile { door, steps } => around.mark_one_time_file(&door, &steps),
                Action::SetCapturePorts { tcp, udp } => around.set_capture_ports(tcp, udp),
                Action::Compact { records } => {
                    let mut all = around.replay_records();
                    all.extend(records);
                    if let Err(e) = store.rewrite(&all) {
                        around.audit(&spa_proto::gateway::Event::StorageFailed { error: e });
                    }
                }
                Action::Audit(event) => around.audit(&event),
                Action::Open { .. } | Action::Close { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use spa_proto::gateway::{
        Closing, DoorRules, Event, GatewayConfig, JournalState, Opener, Refusal,
    };
    use spa_proto::journal::Record;
    use spa_proto::knock::KnockStep;
    use spa_proto::{Grant, KeyId, Keyring, ReplayCache, ReplayRecord};

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    /// An in-memory firewall that can refuse.
    #[derive(Default)]
    struct FakeFirewall {
        open: BTreeSet<(String, IpAddr)>,
        refuse: bool,
        batches: usize,
    }

    impl DoorBackend for FakeFirewall {
        fn open_many(&mut self, opens: &[(&str, IpAddr, u32)]) -> Vec<Result<(), String>> {
            self.batches += 1;
            opens
                .iter()
                .map(|(d, a, _)| {
                    if self.refuse {
                        return Err("refused".into());
                    }
                    self.open.insert((d.to_string(), *a));
                    Ok(())
                })
                .collect()
        }
        fn close_many(&mut self, closes: &[(&str, IpAddr)]) -> Vec<Result<(), String>> {
            closes
                .iter()
                .map(|(d, a)| {
                    self.open.remove(&(d.to_string(), *a));
                    Ok(())
                })
                .collect()
        }
        fn adopt(&mut self, _door: &str, _addr: IpAddr) {}
    }

    /// A journal in memory whose disk can be full.
    #[derive(Default)]
    struct FakeStore {
        records: Vec<Record>,
        full: bool,
    }

    impl Store for FakeStore {
        fn append(&mut self, records: &[Record]) -> Result<(), String> {
            if self.full {
                return Err("No space left on device".into());
            }
            self.records.extend_from_slice(records);
            Ok(())
        }
        fn rewrite(&mut self, records: &[Record]) -> Result<(), String> {
            self.append(&[])?;
            self.records = records.to_vec();
            Ok(())
        }
    }

    #[derive(Default)]
    struct FakeAround {
        forgotten: Vec<ReplayRecord>,
        events: Vec<Event>,
    }

    impl Surroundings for FakeAround {
        fn forget_replay(&mut self, record: &ReplayRecord) {
            self.forgotten.push(*record);
        }
        fn forget_digest(&mut self, _digest: &[u8; 32]) {}
        fn replay_records(&self) -> Vec<Record> {
            Vec::new()
        }
        fn set_capture_ports(&mut self, _tcp: Vec<u16>, _udp: Vec<u16>) {}
        fn mark_one_time_file(&mut self, _door: &DoorName, _steps: &[KnockStep]) {}
        fn audit(&mut self, event: &Event) {
            self.events.push(event.clone());
        }
    }

    fn now(ms: u64) -> Now {
        Now {
            wall_ms: 1_764_000_000_000 + ms,
            mono_ms: 5_000 + ms,
        }
    }

    fn ssh() -> DoorName {
        "ssh".parse().unwrap_or_else(|_| unreachable!())
    }

    fn gateway() -> Gateway {
        let config = GatewayConfig {
            doors: vec![DoorRules {
                name: ssh(),
                opener: Opener::Spa,
                default_secs: 30,
                max_secs: 60,
                closing: Closing::Timer,
                max_open: 10,
            }],
            knock_events_per_minute: 10,
            ..GatewayConfig::default()
        };
        let keys = Keyring::new(vec![]);
        let mut gw = Gateway::new(config, &keys, now(0));
        gw.restore(&keys, JournalState::default(), now(0));
        gw
    }

    fn grant(addr: IpAddr, nonce: u8) -> Grant {
        let mut cache = ReplayCache::new(8, 30_000);
        let t = now(0).wall_ms;
        let record = cache
            .insert(KeyId([1; 16]), [nonce; 12], t, t)
            .unwrap_or_else(|_| unreachable!());
        Grant {
            user: "alice".into(),
            key: 0,
            door: ssh(),
            addr,
            seconds: 30,
            now_ms: t,
            record,
        }
    }

    #[test]
    fn a_full_disk_refuses_the_grant_and_opens_nothing_in_the_firewall() {
        let mut gw = gateway();
        let (mut fw, mut store, mut around) = (
            FakeFirewall::default(),
            FakeStore {
                full: true,
                ..FakeStore::default()
            },
            FakeAround::default(),
        );
        gw.handle_grant(grant(A, 1), now(0));
        apply(&mut gw, &mut fw, &mut store, &mut around, now(0));
        assert!(fw.open.is_empty());
        assert_eq!(around.forgotten.len(), 1, "the nonce is given back");
        assert!(around
            .events
            .iter()
            .any(|e| matches!(e, Event::Refused { why: Refusal::Storage(m), .. } if m.contains("No space"))));
        // Space is freed: the next packet opens, and the door still closes on time.
        store.full = false;
        gw.handle_grant(grant(A, 2), now(100));
        apply(&mut gw, &mut fw, &mut store, &mut around, now(100));
        assert_eq!(fw.open.len(), 1);
        gw.handle_timeout(now(30_100));
        apply(&mut gw, &mut fw, &mut store, &mut around, now(30_100));
        assert!(fw.open.is_empty());
    }

    #[test]
    fn a_full_disk_never_stops_a_door_from_closing() {
        let mut gw = gateway();
        let (mut fw, mut store, mut around) = (
            FakeFirewall::default(),
            FakeStore::default(),
            FakeAround::default(),
        );
        gw.handle_grant(grant(A, 1), now(0));
        apply(&mut gw, &mut fw, &mut store, &mut around, now(0));
        store.full = true;
        gw.shutdown(now(10));
        apply(&mut gw, &mut fw, &mut store, &mut around, now(10));
        assert!(
            fw.open.is_empty(),
            "closed although the journal could not say so"
        );
    }

    #[test]
    fn grants_of_one_turn_go_to_the_firewall_as_one_batch() {
        let mut gw = gateway();
        let (mut fw, mut store, mut around) = (
            FakeFirewall::default(),
            FakeStore::default(),
            FakeAround::default(),
        );
        for i in 0..5u8 {
            gw.handle_grant(
                grant(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, i)), i),
                now(0),
            );
        }
        apply(&mut gw, &mut fw, &mut store, &mut around, now(0));
        assert_eq!(fw.open.len(), 5);
        assert_eq!(fw.batches, 1);
        assert_eq!(
            store.records.len(),
            10,
            "5 replay + 5 door records, one append"
        );
    }

    #[test]
    fn a_refused_open_leaves_no_door_and_no_timer() {
        let mut gw = gateway();
        let (mut fw, mut store, mut around) = (
            FakeFirewall {
                refuse: true,
                ..FakeFirewall::default()
            },
            FakeStore::default(),
            FakeAround::default(),
        );
        gw.handle_grant(grant(A, 1), now(0));
        apply(&mut gw, &mut fw, &mut store, &mut around, now(0));
        assert!(gw.open_doors().is_empty());
        assert_eq!(gw.poll_timeout(), None);
        assert!(JournalState::from_records(&store.records).open.is_empty());
    }
}
