//! Open doors and their closing times (PROTOCOL §3 step 10): keyed by
//! (door, address), extended never doubled, never shortened by a request.
//! Tells the gateway when to wake and what to close. The clock is the
//! caller's (the gateway uses a monotonic one).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::names::DoorName;

/// What opening a door changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorChange {
    /// It was closed for that address: open it until `until_ms`.
    Opened {
        /// When it closes.
        until_ms: u64,
    },
    /// It was open; its closing time moved later to `until_ms`.
    Extended {
        /// When it closes now.
        until_ms: u64,
    },
    /// It was open long enough already; nothing to do.
    Unchanged {
        /// When it closes.
        until_ms: u64,
    },
}

/// A door open for one address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpenDoor {
    /// The door.
    pub door: DoorName,
    /// For whom.
    pub addr: IpAddr,
    /// Until when (ms since the epoch).
    pub until_ms: u64,
}

/// All open doors.
#[derive(Debug, Clone, Default)]
pub struct OpenDoors {
    until: BTreeMap<(DoorName, IpAddr), u64>,
    by_time: BTreeSet<(u64, DoorName, IpAddr)>,
}

impl OpenDoors {
    /// No door open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens `door` for `addr` for `seconds` from `now_ms`, or extends it.
    pub fn open(&mut self, door: &DoorName, addr: IpAddr, now_ms: u64, seconds: u32) -> DoorChange {
        let wanted = now_ms.saturating_add(u64::from(seconds) * 1000);
        let key = (door.clone(), addr);
        match self.until.get(&key).copied() {
            Some(current) if current >= wanted => DoorChange::Unchanged { until_ms: current },
            Some(current) => {
                self.by_time.remove(&(current, door.clone(), addr));
                self.by_time.insert((wanted, door.clone(), addr));
                self.until.insert(key, wanted);
                DoorChange::Extended { until_ms: wanted }
            }
            None => {
                self.by_time.insert((wanted, door.clone(), addr));
                self.until.insert(key, wanted);
                DoorChange::Opened { until_ms: wanted }
            }
        }
    }

    /// When the next door must close, if any is open.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.by_time.first().map(|(t, _, _)| *t)
    }

    /// Removes and returns every door whose time has come at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<OpenDoor> {
        let mut closed = Vec::new();
        while let Some((t, door, addr)) = self.by_time.first().cloned() {
            if t > now_ms {
                break;
            }
            self.by_time.pop_first();
            self.until.remove(&(door.clone(), addr));
            closed.push(OpenDoor {
                door,
                addr,
                until_ms: t,
            });
        }
        closed
    }

    /// Removes and returns every open door (spad closes them all on SIGTERM).
    pub fn drain(&mut self) -> Vec<OpenDoor> {
        self.until.clear();
        std::mem::take(&mut self.by_time)
            .into_iter()
            .map(|(until_ms, door, addr)| OpenDoor {
                door,
                addr,
                until_ms,
            })
            .collect()
    }

    /// Removes one door if open.
    pub fn remove(&mut self, door: &DoorName, addr: IpAddr) -> Option<OpenDoor> {
        let until_ms = self.until.remove(&(door.clone(), addr))?;
        self.by_time.remove(&(until_ms, door.clone(), addr));
        Some(OpenDoor {
            door: door.clone(),
            addr,
            until_ms,
        })
    }

    /// Every open door, soonest to close first.
    pub fn iter(&self) -> impl Iterator<Item = OpenDoor> + '_ {
        self.by_time.iter().map(|(t, d, a)| OpenDoor {
            door: d.clone(),
            addr: *a,
            until_ms: *t,
        })
    }

    /// Number of open (door, address) pairs.
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether no door is open.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Sets a door's closing time exactly (a restore, or an extension taken back).
    pub fn set(&mut self, door: &DoorName, addr: IpAddr, until_ms: u64) {
        self.remove(door, addr);
        self.by_time.insert((until_ms, door.clone(), addr));
        self.until.insert((door.clone(), addr), until_ms);
    }

    /// When `door` closes for `addr`, if open.
    pub fn until(&self, door: &DoorName, addr: IpAddr) -> Option<u64> {
        self.until.get(&(door.clone(), addr)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh() -> DoorName {
        "ssh".parse().unwrap_or_else(|_| unreachable!())
    }
    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));

    #[test]
    fn reopening_extends_and_never_shortens_or_doubles() {
        let mut t = OpenDoors::new();
        assert_eq!(
            t.open(&ssh(), A, 1000, 30),
            DoorChange::Opened { until_ms: 31_000 }
        );
        assert_eq!(
            t.open(&ssh(), A, 2000, 5),
            DoorChange::Unchanged { until_ms: 31_000 }
        );
        assert_eq!(
            t.open(&ssh(), A, 11_000, 30),
            DoorChange::Extended { until_ms: 41_000 }
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.poll_timeout(), Some(41_000));
    }

    #[test]
    fn expire_closes_exactly_what_is_due() {
        let mut t = OpenDoors::new();
        t.open(&ssh(), A, 0, 10);
        t.open(&ssh(), B, 0, 20);
        assert!(t.expire(9_999).is_empty());
        let closed = t.expire(10_000);
        assert_eq!(closed.iter().map(|d| d.addr).collect::<Vec<_>>(), vec![A]);
        assert_eq!(t.poll_timeout(), Some(20_000));
        assert_eq!(t.expire(30_000).len(), 1);
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn set_replaces_the_closing_time_either_way() {
        let mut t = OpenDoors::new();
        t.open(&ssh(), A, 0, 30);
        t.set(&ssh(), A, 5_000);
        assert_eq!(t.until(&ssh(), A), Some(5_000));
        assert_eq!(t.poll_timeout(), Some(5_000));
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(5_000).len(), 1);
        assert_eq!(t.until(&ssh(), A), None);
    }
}
