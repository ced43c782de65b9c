//! Rotating knock sequences of PROTOCOL §4: the bounds a rotating door must
//! respect and the derivation of one user's port sequence for one door and
//! one 30-s step from `K_knock`. Pure functions: no clock, no state.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::KnockConfigError;
use crate::keys::SecretBytes;
use crate::names::DoorName;

/// The length of one rotation step in milliseconds (30 s).
pub const STEP_MS: u64 = 30_000;

/// The most ports a rotating sequence may have.
pub const MAX_PORTS: u8 = 16;

/// How many HMAC blocks the derivation may consume before giving up.
const MAX_BLOCKS: u16 = 256;

/// A rotating door's sequence shape: `n` distinct ports in `lo..=hi`.
/// Build it with [`RotatingSpec::new`], which enforces the bounds of §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RotatingSpec {
    /// Ports per sequence, 1..=16.
    pub n: u8,
    /// Lowest port, at least 1.
    pub lo: u16,
    /// Highest port, at least `lo`.
    pub hi: u16,
}

impl RotatingSpec {
    /// Checks the bounds of PROTOCOL §4: 1 ≤ lo ≤ hi ≤ 65535, 1 ≤ n ≤ 16,
    /// range ≥ n and range!/(range-n)! ≥ 2^32.
    pub fn new(n: u8, lo: u16, hi: u16) -> Result<Self, KnockConfigError> {
        let spec = RotatingSpec { n, lo, hi };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks a spec built field by field against the bounds of §4.
    pub fn validate(&self) -> Result<(), KnockConfigError> {
        let RotatingSpec { n, lo, hi } = *self;
        if lo == 0 {
            return Err(KnockConfigError::LoIsZero(lo));
        }
        if lo > hi {
            return Err(KnockConfigError::LoAboveHi { lo, hi });
        }
        if n == 0 || n > MAX_PORTS {
            return Err(KnockConfigError::PortCount(n));
        }
        let range = self.range();
        if range < u32::from(n) {
            return Err(KnockConfigError::RangeTooSmall { n, range });
        }
        let sequences = falling_factorial_capped(range, n, 1 << 32);
        if sequences < 1 << 32 {
            return Err(KnockConfigError::TooGuessable {
                n,
                range,
                sequences,
            });
        }
        Ok(())
    }

    /// The number of ports in `lo..=hi` (0 when the spec is upside down).
    pub fn range(&self) -> u32 {
        (u32::from(self.hi) + 1).saturating_sub(u32::from(self.lo))
    }
}

/// range · (range-1) · … · (range-n+1), or any value ≥ `cap` once it reaches `cap`.
fn falling_factorial_capped(range: u32, n: u8, cap: u64) -> u64 {
    let mut product: u64 = 1;
    for i in 0..u32::from(n) {
        let factor = u64::from(range.saturating_sub(i));
        product = product.saturating_mul(factor);
        if product >= cap || product == 0 {
            break;
        }
    }
    product
}

/// The rotation step of an instant: floor(unix_seconds / 30).
pub fn step_of(unix_ms: u64) -> u64 {
    unix_ms / STEP_MS
}

/// The first instant (ms since the epoch) of `step`, saturating at `u64::MAX`.
pub fn step_start_ms(step: u64) -> u64 {
    step.saturating_mul(STEP_MS)
}

/// The ports a key must knock on `door` during `step` (PROTOCOL §4), or
/// `None` if the spec is outside its bounds or 256 HMAC blocks did not yield
/// `n` distinct ports (then that step has no sequence).
pub fn derive_sequence(
    k_knock: &SecretBytes,
    door: &DoorName,
    spec: &RotatingSpec,
    step: u64,
) -> Option<Vec<u16>> {
    spec.validate().ok()?;
    let range = spec.range();
    let limit = 65_536 - (65_536 % range);
    let n = usize::from(spec.n);
    let keyed = Hmac::<Sha256>::new_from_slice(k_knock.expose()).ok()?;
    let mut ports = Vec::with_capacity(n);
    for i in 0..MAX_BLOCKS {
        let mut mac = keyed.clone();
        mac.update(&step.to_be_bytes());
        mac.update(&[i as u8]);
        mac.update(door.as_str().as_bytes());
        let block = mac.finalize().into_bytes();
        for chunk in block.chunks_exact(2) {
            let c = u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
            if c >= limit {
                continue;
            }
            // c % range < range ≤ 65535 - lo + 1, so lo + c % range ≤ 65535.
            let port = u16::try_from(u32::from(spec.lo) + c % range).ok()?;
            if ports.contains(&port) {
                continue;
            }
            ports.push(port);
            if ports.len() == n {
                return Some(ports);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_of_section_4() {
        assert!(RotatingSpec::new(3, 1024, 65535).is_ok());
        assert!(RotatingSpec::new(16, 1, 65535).is_ok());
        // n = 3 needs a range of at least 1627: 1627·1626·1625 ≥ 2^32 > 1626·1625·1624.
        assert!(RotatingSpec::new(3, 1000, 1000 + 1626).is_ok());
        assert!(matches!(
            RotatingSpec::new(3, 1000, 1000 + 1625),
            Err(KnockConfigError::TooGuessable {
                n: 3,
                range: 1626,
                ..
            })
        ));
        assert_eq!(
            RotatingSpec::new(3, 0, 100),
            Err(KnockConfigError::LoIsZero(0))
        );
        assert_eq!(
            RotatingSpec::new(3, 200, 100),
            Err(KnockConfigError::LoAboveHi { lo: 200, hi: 100 })
        );
        assert_eq!(
            RotatingSpec::new(0, 1, 65535),
            Err(KnockConfigError::PortCount(0))
        );
        assert_eq!(
            RotatingSpec::new(17, 1, 65535),
            Err(KnockConfigError::PortCount(17))
        );
        assert_eq!(
            RotatingSpec::new(5, 40000, 40003),
            Err(KnockConfigError::RangeTooSmall { n: 5, range: 4 })
        );
        // n = 1 or 2 can never reach 2^32 in 65535 ports.
        assert!(matches!(
            RotatingSpec::new(2, 1, 65535),
            Err(KnockConfigError::TooGuessable { .. })
        ));
    }

    #[test]
    fn steps_are_30_seconds() {
        assert_eq!(step_of(0), 0);
        assert_eq!(step_of(29_999), 0);
        assert_eq!(step_of(30_000), 1);
        assert_eq!(step_of(1_764_000_000_000), 58_800_000);
        assert_eq!(step_start_ms(58_800_000), 1_764_000_000_000);
    }

    #[test]
    fn sequences_are_distinct_ports_in_range() {
        let key = SecretBytes::new([7; 32]);
        let door: DoorName = "ssh".parse().unwrap_or_else(|_| unreachable!());
        let spec = RotatingSpec {
            n: 16,
            lo: 40000,
            hi: 42047,
        };
        for step in 0..50 {
            let seq = derive_sequence(&key, &door, &spec, step).unwrap_or_default();
            assert_eq!(seq.len(), 16);
            assert!(seq.iter().all(|p| (40000..=42047).contains(p)));
            let mut sorted = seq.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 16);
        }
        let bad = RotatingSpec {
            n: 3,
            lo: 0,
            hi: 100,
        };
        assert_eq!(derive_sequence(&key, &door, &bad, 1), None);
    }
}
