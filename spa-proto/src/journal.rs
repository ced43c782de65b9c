//! The durable journal's record format (PROTOCOL §3 step 9): one append-only
//! log holds everything that must survive `kill -9` before a door opens —
//! replay entries, used rotating steps, used one-time sequences, doors opened
//! and closed early, and the log's own state. Each record checks itself
//! (CRC-32), so a torn or garbled tail is never read back as a record and
//! nothing after it is misread. Encoding and decoding only: spad writes it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::keys::KeyId;
use crate::names::DoorName;

/// Magic bytes at the start of a journal file.
pub const JOURNAL_MAGIC: &[u8; 8] = b"spaJRN1\n";

/// Bytes around a record's payload: length (2), kind (1), CRC-32 (4).
const FRAME: usize = 2 + 1 + 4;

/// The longest payload a record may carry.
const MAX_PAYLOAD: usize = 1024;

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The log's own state: the clock's high-water mark, the time up to which
    /// history is unknown (§3 step 9's start rule), the largest skew in force.
    State {
        /// Largest `now` used so far (ms).
        high_water_ms: u64,
        /// Timestamps at or below this are refused.
        refuse_until_ms: u64,
    },
    /// An accepted packet: live while `expires_ms >= now`.
    Replay {
        /// The key that sealed it.
        key: KeyId,
        /// Its nonce.
        nonce: [u8; 12],
        /// Its timestamp (ms).
        timestamp_ms: u64,
        /// Timestamp + the largest skew in force since it was accepted.
        expires_ms: u64,
    },
    /// A rotating step whose sequence opened `door` for `key` (§4).
    UsedStep {
        /// The key.
        key: KeyId,
        /// The door.
        door: DoorName,
        /// The rotation step.
        step: u64,
    },
    /// A one-time sequence of `door` is used (its text, as in the file).
    OneTimeUsed {
        /// The door.
        door: DoorName,
        /// The sequence, e.g. `tcp/7000,udp/8000`.
        sequence: String,
    },
    /// `door` is open for `addr` until `until_ms` (wall clock) for `user`.
    DoorOpened {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
        /// Until when (ms since the epoch).
        until_ms: u64,
        /// Who asked (`-` for classic sequences).
        user: String,
    },
    /// `door` was closed for `addr` before its time (operator, reload).
    DoorClosed {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
    },
    /// An accepted packet of another protocol (fwknop), known by a digest
    /// of its bytes: live while `expires_ms >= now` (wall clock).
    DigestSeen {
        /// SHA-256 of the packet.
        digest: [u8; 32],
        /// When a replay of it can no longer pass the age check.
        expires_ms: u64,
    },
}

/// Why decoding stopped before the end of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalCut {
    /// The bytes end inside a record (a short write, a full disk, a crash).
    #[error("the last record is incomplete")]
    Torn,
    /// A record's checksum, length or content is wrong.
    #[error("a record fails its checksum or is malformed")]
    Corrupt,
}

/// Why a journal could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The file does not start with [`JOURNAL_MAGIC`].
    #[error("not a spa journal (bad magic)")]
    Magic,
}

/// What a journal's bytes hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Every whole, self-consistent record, in order.
    pub records: Vec<Record>,
    /// Length of the good prefix (magic included): the file is cut back to
    /// this before the next append.
    pub good_len: usize,
    /// Why decoding stopped early, if it did.
    pub cut: Option<JournalCut>,
}

const KIND_STATE: u8 = 1;
const KIND_REPLAY: u8 = 2;
const KIND_USED_STEP: u8 = 3;
const KIND_ONE_TIME: u8 = 4;
const KIND_OPENED: u8 = 5;
const KIND_CLOSED: u8 = 6;
const KIND_DIGEST: u8 = 7;

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn put_addr(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// A cursor over one record's payload; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(u64::from_be_bytes)
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = usize::from(*self.take(1)?.first()?);
        std::str::from_utf8(self.take(len)?).ok()
    }
    fn door(&mut self) -> Option<DoorName> {
        self.str()?.parse().ok()
    }
    fn addr(&mut self) -> Option<IpAddr> {
        match self.take(1)?.first()? {
            4 => Some(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => None,
        }
    }
    fn end(self) -> Option<()> {
        self.bytes.is_empty().then_some(())
    }
}

impl Record {
    fn kind(&self) -> u8 {
        match self {
            Record::State { .. } => KIND_STATE,
            Record::Replay { .. } => KIND_REPLAY,
            Record::UsedStep { .. } => KIND_USED_STEP,
            Record::OneTimeUsed { .. } => KIND_ONE_TIME,
            Record::DoorOpened { .. } => KIND_OPENED,
            Record::DoorClosed { .. } => KIND_CLOSED,
            Record::DigestSeen { .. } => KIND_DIGEST,
        }
    }

    fn payload(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(48);
        match self {
            Record::State {
                high_water_ms,
                refuse_until_ms,
            } => {
                put_u64(&mut p, *high_water_ms);
                put_u64(&mut p, *refuse_until_ms);
            }
            Record::Replay {
                key,
                nonce,
                timestamp_ms,
                expires_ms,
            } => {
                p.extend_from_slice(&key.0);
                p.extend_from_slice(nonce);
                put_u64(&mut p, *timestamp_ms);
                put_u64(&mut p, *expires_ms);
            }
            Record::UsedStep { key, door, step } => {
                p.extend_from_slice(&key.0);
                put_u64(&mut p, *step);
                put_str(&mut p, door.as_str());
            }
            Record::OneTimeUsed { door, sequence } => {
                put_str(&mut p, door.as_str());
                put_str(&mut p, sequence);
            }
            Record::DoorOpened {
                door,
                addr,
                until_ms,
                user,
            } => {
                put_str(&mut p, door.as_str());
                put_addr(&mut p, *addr);
                put_u64(&mut p, *until_ms);
                put_str(&mut p, user);
            }
            Record::DoorClosed { door, addr } => {
                put_str(&mut p, door.as_str());
                put_addr(&mut p, *addr);
            }
            Record::DigestSeen { digest, expires_ms } => {
                p.extend_from_slice(digest);
                put_u64(&mut p, *expires_ms);
            }
        }
        p
    }

    fn parse(kind: u8, payload: &[u8]) -> Option<Record> {
        let mut r = Reader { bytes: payload };
        let rec = match kind {
            KIND_STATE => Record::State {
                high_water_ms: r.u64()?,
                refuse_until_ms: r.u64()?,
            },
            KIND_REPLAY => Record::Replay {
                key: KeyId(r.array()?),
                nonce: r.array()?,
                timestamp_ms: r.u64()?,
                expires_ms: r.u64()?,
            },
            KIND_USED_STEP => Record::UsedStep {
                key: KeyId(r.array()?),
                step: r.u64()?,
                door: r.door()?,
            },
            KIND_ONE_TIME => Record::OneTimeUsed {
                door: r.door()?,
                sequence: r.str()?.to_owned(),
            },
            KIND_OPENED => Record::DoorOpened {
                door: r.door()?,
                addr: r.addr()?,
                until_ms: r.u64()?,
                user: r.str()?.to_owned(),
            },
            KIND_CLOSED => Record::DoorClosed {
                door: r.door()?,
                addr: r.addr()?,
            },
            KIND_DIGEST => Record::DigestSeen {
                digest: r.array()?,
                expires_ms: r.u64()?,
            },
            _ => return None,
        };
        r.end()?;
        Some(rec)
    }

    /// Appends the record's framed, checksummed bytes to `out`:
    /// `len: u16 BE | kind: u8 | payload | crc32(kind | payload): u32 BE`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let payload = self.payload();
        let kind = self.kind();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(&payload);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&payload);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
}

/// Encodes records one after another (no magic).
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 64);
    for r in records {
        r.encode_into(&mut out);
    }
    out
}

/// A whole journal file: magic, then `records`.
pub fn encode_file(records: &[Record]) -> Vec<u8> {
    let mut out = JOURNAL_MAGIC.to_vec();
    out.extend_from_slice(&encode(records));
    out
}

/// Reads a journal file: every whole record up to the first one that is torn
/// or fails its check. Never panics, whatever the bytes.
pub fn decode_file(bytes: &[u8]) -> Result<Decoded, JournalError> {
    let mut rest = bytes
        .strip_prefix(JOURNAL_MAGIC.as_slice())
        .ok_or(JournalError::Magic)?;
    let mut decoded = Decoded {
        records: Vec::new(),
        good_len: JOURNAL_MAGIC.len(),
        cut: None,
    };
    while !rest.is_empty() {
        if rest.len() < FRAME {
            decoded.cut = Some(JournalCut::Torn);
            break;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len > MAX_PAYLOAD {
            decoded.cut = Some(JournalCut::Corrupt);
            break;
        }
        if rest.len() < FRAME + len {
            decoded.cut = Some(JournalCut::Torn);
            break;
        }
        let kind = rest[2];
        let payload = &rest[3..3 + len];
        let stored =
            u32::from_be_bytes([rest[3 + len], rest[4 + len], rest[5 + len], rest[6 + len]]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(payload);
        let record = (crc.finalize() == stored)
            .then(|| Record::parse(kind, payload))
            .flatten();
        let Some(record) = record else {
            decoded.cut = Some(JournalCut::Corrupt);
            break;
        };
        decoded.records.push(record);
        decoded.good_len += FRAME + len;
        rest = &rest[FRAME + len..];
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(s: &str) -> DoorName {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::State {
                high_water_ms: 5,
                refuse_until_ms: 6,
            },
            Record::Replay {
                key: KeyId([7; 16]),
                nonce: [8; 12],
                timestamp_ms: 1_764_000_000_000,
                expires_ms: 1_764_000_030_000,
            },
            Record::UsedStep {
                key: KeyId([9; 16]),
                door: door("legacy"),
                step: 58_800_000,
            },
            Record::OneTimeUsed {
                door: door("otp"),
                sequence: "tcp/1000,udp/2000".into(),
            },
            Record::DoorOpened {
                door: door("ssh"),
                addr: "2001:db8::7"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                until_ms: 42,
                user: "alice".into(),
            },
            Record::DoorClosed {
                door: door("ssh"),
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            },
            Record::DigestSeen {
                digest: [3; 32],
                expires_ms: 1_764_000_240_000,
            },
        ]
    }

    #[test]
    fn every_record_kind_round_trips() -> Result<(), JournalError> {
        let bytes = encode_file(&sample());
        let d = decode_file(&bytes)?;
        assert_eq!(d.records, sample());
        assert_eq!(d.good_len, bytes.len());
        assert_eq!(d.cut, None);
        Ok(())
    }

    #[test]
    fn a_torn_tail_at_every_length_is_cut_back_to_the_last_whole_record() -> Result<(), JournalError>
    {
        let whole = encode_file(&sample());
        let first_two = encode_file(&sample()[..2]).len();
        for len in JOURNAL_MAGIC.len()..whole.len() {
            let d = decode_file(&whole[..len])?;
            assert!(d.good_len <= len);
            assert_eq!(d.records[..], sample()[..d.records.len()], "at {len}");
            assert_eq!(encode_file(&d.records).len(), d.good_len);
            if len >= first_two {
                assert!(d.records.len() >= 2);
            }
            if d.good_len < len {
                assert_eq!(d.cut, Some(JournalCut::Torn), "at {len}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_flipped_bit_anywhere_is_never_read_as_a_record() -> Result<(), JournalError> {
        let whole = encode_file(&sample());
        for i in JOURNAL_MAGIC.len()..whole.len() {
            for bit in 0..8 {
                let mut bad = whole.clone();
                bad[i] ^= 1 << bit;
                let d = decode_file(&bad)?;
                // What is read is a prefix of what was written: never a changed record.
                assert_eq!(
                    d.records[..],
                    sample()[..d.records.len()],
                    "byte {i} bit {bit}"
                );
                assert!(d.records.len() < sample().len());
            }
        }
        Ok(())
    }

    #[test]
    fn garbage_is_refused_or_read_as_nothing() {
        assert_eq!(decode_file(b"garbage!"), Err(JournalError::Magic));
        let mut bytes = JOURNAL_MAGIC.to_vec();
        bytes.extend_from_slice(&[0xff; 100]);
        let d = decode_file(&bytes)
            .map_err(|_| ())
            .unwrap_or_else(|()| unreachable!());
        assert!(d.records.is_empty());
        assert_eq!(d.good_len, JOURNAL_MAGIC.len());
    }
}
