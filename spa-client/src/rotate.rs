//! The rotating knock of PROTOCOL §4 as a client knocks it: the current step
//! from the system clock, and the port sequence spa-proto derives for this
//! key, door and step, as knock steps with the door's transport.

use spa_keys::RotatingKnock;
use spa_proto::knock::{derive_sequence, step_of, KnockStep, RotatingSpec, Transport};
use spa_proto::{DerivedKeys, DoorName};

/// Why no sequence could be knocked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// The knock settings are out of the protocol's bounds.
    #[error("rotating knock for door {door}: {reason}")]
    Spec {
        /// The door.
        door: DoorName,
        /// Why the settings were refused.
        reason: String,
    },
    /// 256 HMAC blocks did not yield enough ports (negligibly rare).
    #[error("door {door} has no knock sequence in step {step}; try again in 30 seconds")]
    NoSequence {
        /// The door.
        door: DoorName,
        /// The 30-second step.
        step: u64,
    },
}

/// The sequence to knock for `door` at `now_ms`, and the step it belongs to.
pub fn current_sequence(
    keys: &DerivedKeys,
    door: &DoorName,
    knock: &RotatingKnock,
    now_ms: u64,
) -> Result<(u64, Vec<KnockStep>), RotateError> {
    let spec = RotatingSpec::new(knock.n, knock.lo, knock.hi).map_err(|e| RotateError::Spec {
        door: door.clone(),
        reason: e.to_string(),
    })?;
    let step = step_of(now_ms);
    let transport = if knock.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let ports =
        derive_sequence(&keys.knock, door, &spec, step).ok_or_else(|| RotateError::NoSequence {
            door: door.clone(),
            step,
        })?;
    Ok((
        step,
        ports
            .into_iter()
            .map(|port| KnockStep { port, transport })
            .collect(),
    ))
}
