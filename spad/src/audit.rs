//! The audit trail: every decision the gateway reports becomes one log line
//! with `key=value` fields and, where it counts, a counter. (Refused
//! datagrams are logged per source by `refusals`, in fail2ban's format.)

use spa_proto::gateway::{Event, KnockNote, OpenKind, Refusal};
use spa_proto::Reason;
use tracing::{error, info, warn};

use crate::counters::Counters;

fn open_kind(kind: OpenKind) -> &'static str {
    match kind {
        OpenKind::New => "door opened",
        OpenKind::Extended => "door extended",
        OpenKind::Restored => "door re-armed",
        OpenKind::Again => "door opened again",
    }
}

fn detail(why: &Refusal) -> String {
    match why {
        Refusal::Storage(e) => format!("records not durable: {e}"),
        Refusal::Firewall(e) => format!("firewall refused: {e}"),
        Refusal::KeyUnusable => "key expired, disabled or removed".into(),
        Refusal::StepUsed { step } => format!("rotating sequence of step {step} already used"),
        Refusal::DoorFull { max } => format!("door already open for {max} addresses"),
        Refusal::UnknownDoor => "no such door in the config".into(),
        Refusal::Replay => "the same packet was accepted before".into(),
        Refusal::ReplayFull => format!(
            "{} packets accepted within their age limit already; new ones wait until some expire",
            spa_proto::gateway::DIGEST_CAP
        ),
        Refusal::NoDoorForPort { transport, port } => format!(
            "no door with fwknop = true opens {}/{port}",
            transport.as_str()
        ),
    }
}

/// Logs one decision and counts it.
pub fn record(event: &Event, counters: &Counters) {
    match event {
        Event::Opened {
            door,
            addr,
            user,
            seconds,
            kind,
        } => {
            counters.grant();
            info!(
                "{} door={door} addr={addr} user={user} seconds={seconds}",
                open_kind(*kind)
            )
        }
        Event::AlreadyOpen {
            door,
            addr,
            user,
            seconds_left,
        } => info!(
            "door already open door={door} addr={addr} user={user} seconds_left={seconds_left}"
        ),
        Event::Refused {
            door,
            addr,
            user,
            why,
        } => {
            match why {
                Refusal::Storage(_) => counters.count(Reason::Storage),
                Refusal::DoorFull { .. } => counters.door_full(),
                _ => {}
            }
            warn!(
                "not opened door={door} addr={addr} user={user} reason={}: {}",
                why.as_str(),
                detail(why)
            )
        }
        Event::PortsRefused {
            ports,
            addr,
            user,
            why,
        } => {
            counters.count(match why {
                Refusal::Replay => Reason::Replay,
                Refusal::ReplayFull => Reason::Cap,
                _ => Reason::Door,
            });
            warn!(
                "not opened ports={ports} addr={addr} user={user} reason={}: {}",
                why.as_str(),
                detail(why)
            )
        }
        Event::Closed { door, addr, why } => {
            info!("door closed door={door} addr={addr} ({})", why.as_str())
        }
        Event::CloseFailed {
            door,
            addr,
            error,
            retry_in_ms,
        } => error!(
            "could not close door={door} addr={addr}: {error}; trying again in {} ms",
            retry_in_ms
        ),
        Event::Knock { door, addr, note } => match note {
            KnockNote::Stage { stage, of } => {
                info!("knock door={door} addr={addr} stage {stage} of {of}")
            }
            KnockNote::Reset => info!("knock door={door} addr={addr} wrong port: starts over"),
            KnockNote::TimedOut => info!("knock door={door} addr={addr} timed out"),
            KnockNote::Complete => info!("knock door={door} addr={addr} sequence complete"),
        },
        Event::Suppressed { count } => {
            info!("{count} knock events and refusals not logged in the last minute (rate limit)")
        }
        Event::OneTimeExhausted { door } => {
            warn!("door={door}: no one-time sequences left, the door is disabled")
        }
        Event::StorageFailed { error: e } => error!("journal write failed: {e}"),
    }
}
