//! Open doors and their closing times (PROTOCOL §3 step 10): keyed by
//! (door, address), extended never doubled, never shortened. Tells the
//! daemon when to wake and what to close; has a text form for the state file
//! that lets a restarted spad close what is overdue and re-arm the rest.

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

/// A state-file line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct StateLineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
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

    /// The state file: one `door address until_ms` line per open door.
    pub fn to_state(&self) -> String {
        let mut out = String::from("# spad open doors: door address until_ms\n");
        for d in self.iter() {
            out.push_str(&format!("{} {} {}\n", d.door, d.addr, d.until_ms));
        }
        out
    }

    /// Reads a state file.
    pub fn parse_state(text: &str) -> Result<Vec<OpenDoor>, StateLineError> {
        let mut doors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: &str| StateLineError {
                line: i + 1,
                what: what.to_string(),
            };
            let mut parts = line.split_whitespace();
            let door = parts.next().ok_or_else(|| err("no door"))?;
            let door: DoorName = door.parse().map_err(|_| err("bad door name"))?;
            let addr = parts.next().ok_or_else(|| err("no address"))?;
            let addr: IpAddr = addr.parse().map_err(|_| err("bad address"))?;
            let until = parts.next().ok_or_else(|| err("no closing time"))?;
            let until_ms: u64 = until.parse().map_err(|_| err("bad closing time"))?;
            if parts.next().is_some() {
                return Err(err("extra fields"));
            }
            doors.push(OpenDoor {
                door,
                addr,
                until_ms,
            });
        }
        Ok(doors)
    }

    /// After a restart: re-arms doors whose time has not come, returns the overdue ones to close now.
    pub fn restore(&mut self, doors: Vec<OpenDoor>, now_ms: u64) -> Vec<OpenDoor> {
        let mut overdue = Vec::new();
        for d in doors {
            if d.until_ms <= now_ms {
                overdue.push(d);
            } else {
                let key = (d.door.clone(), d.addr);
                if let Some(old) = self.until.insert(key, d.until_ms) {
                    self.by_time.remove(&(old, d.door.clone(), d.addr));
                }
                self.by_time.insert((d.until_ms, d.door, d.addr));
            }
        }
        overdue
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
    fn state_round_trip_closes_overdue_and_rearms_the_rest() -> Result<(), StateLineError> {
        let mut t = OpenDoors::new();
        t.open(&ssh(), A, 0, 10);
        t.open(&ssh(), "2001:db8::1".parse().unwrap_or(B), 0, 60);
        let saved = OpenDoors::parse_state(&t.to_state())?;
        assert_eq!(saved.len(), 2);
        let mut after = OpenDoors::new();
        let overdue = after.restore(saved, 30_000);
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].addr, A);
        assert_eq!(after.poll_timeout(), Some(60_000));
        assert_eq!(
            OpenDoors::parse_state("ssh 10.0.0.1 notanumber")
                .err()
                .map(|e| e.line),
            Some(1)
        );
        Ok(())
    }
}
