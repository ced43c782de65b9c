//! Answers the control socket from the main loop's own state: `status`
//! (open doors, counters, capture, keys, last reload) and operator closes,
//! which go through the gateway like every other close.

use spa_proto::gateway::{Gateway, Now};
use spa_proto::{DoorName, Reason};

use crate::capture::CaptureHandle;
use crate::config::Config;
use crate::control::{
    CaptureStatus, ClosedDoor, ControlReply, OpenDoorStatus, ReloadStatus, Request, Status,
};
use crate::intake::Shared;

/// What a status answer is built from.
#[derive(Debug)]
pub struct StatusSources<'a> {
    /// The running config.
    pub config: &'a Config,
    /// The shared counters and verifier.
    pub shared: &'a Shared,
    /// The capture sockets.
    pub captures: &'a [CaptureHandle],
    /// When spad started (Unix seconds).
    pub started_unix: u64,
    /// The last reload and its result.
    pub last_reload: &'a Option<ReloadStatus>,
}

fn status(gw: &Gateway, s: &StatusSources<'_>) -> Status {
    let mut capture = CaptureStatus::default();
    for c in s.captures {
        if let Ok(stats) = c.stats() {
            capture.received += stats.received;
            capture.dropped += stats.dropped;
        }
    }
    let open_doors = gw
        .open_doors()
        .into_iter()
        .map(|d| OpenDoorStatus {
            backend: s
                .config
                .door(&d.door)
                .map_or("-", |c| c.spec.backend.name())
                .to_owned(),
            door: d.door.to_string(),
            address: d.addr,
            user: d.user,
            seconds_left: d.left_ms.div_ceil(1000),
        })
        .collect();
    let counters = &s.shared.counters;
    Status {
        server_id: s.config.server_id.to_string(),
        started_unix: s.started_unix,
        open_doors,
        granted: counters.granted(),
        refused: Reason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), counters.rejected(*r)))
            .collect(),
        overload: counters.overloaded(),
        capture,
        keys_loaded: s
            .shared
            .verifier
            .lock()
            .map(|v| v.keyring().len() as u64)
            .unwrap_or(0),
        last_reload: s.last_reload.clone(),
    }
}

/// The answer to one control request; closes are handed to the gateway
/// (the executor carries them out right after).
pub fn answer(
    gw: &mut Gateway,
    request: Request,
    sources: &StatusSources<'_>,
    now: Now,
) -> ControlReply {
    match request {
        Request::Status => ControlReply::Status(status(gw, sources)),
        Request::Close { door, addr } => {
            let Ok(name) = door.parse::<DoorName>() else {
                return ControlReply::error(format!("{door:?} is not a door name"));
            };
            if gw.close(&name, addr, now) {
                ControlReply::Closed {
                    closed: vec![ClosedDoor { door, addr }],
                }
            } else {
                ControlReply::error(format!("door {door} is not open for {addr}"))
            }
        }
        Request::CloseAll => {
            let mut closed = Vec::new();
            for d in gw.open_doors() {
                if gw.close(&d.door, d.addr, now) {
                    closed.push(ClosedDoor {
                        door: d.door.to_string(),
                        addr: d.addr,
                    });
                }
            }
            ControlReply::Closed { closed }
        }
    }
}
