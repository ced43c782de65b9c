//! What the gateway tells its executor: effects to carry out (each reports
//! back when it can fail) and audit events (every decision, for logs).

use std::net::IpAddr;

use crate::journal::Record;
use crate::knock::{KnockStep, Transport};
use crate::names::DoorName;
use crate::replay::ReplayRecord;

/// The time as the executor read it, once per wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Now {
    /// Wall clock, ms since the Unix epoch (timestamps, the journal).
    pub wall_ms: u64,
    /// A monotonic clock, ms (door timers: a wall clock stepped back or
    /// forward neither lengthens nor shortens an open door).
    pub mono_ms: u64,
}

/// Names one effect that reports back through `effect_done` / `effect_failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EffectId(pub u64);

/// Why a door closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseWhy {
    /// Its time is up.
    TimeUp,
    /// Its time ran out while spad was not running.
    Overdue,
    /// The config no longer has the door.
    Removed,
    /// An operator closed it.
    Operator,
    /// spad is stopping.
    Stopping,
    /// The firewall refused to open it (the open is taken back).
    OpenFailed,
}

impl CloseWhy {
    /// Words for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseWhy::TimeUp => "time is up",
            CloseWhy::Overdue => "overdue after restart",
            CloseWhy::Removed => "removed from the config",
            CloseWhy::Operator => "closed by an operator",
            CloseWhy::Stopping => "spad stopping",
            CloseWhy::OpenFailed => "the firewall refused to open it",
        }
    }
}

/// Why an opening was refused (after the packet or sequence was valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its durable records could not be written: nothing opens (§3 step 9).
    Storage(String),
    /// The firewall refused the open.
    Firewall(String),
    /// The key is expired, disabled or gone at the moment the sequence completed.
    KeyUnusable,
    /// A rotating sequence already used in that step.
    StepUsed {
        /// The rotation step.
        step: u64,
    },
    /// The door is open for `max` addresses already.
    DoorFull {
        /// The cap.
        max: usize,
    },
    /// The config has no such door (any more).
    UnknownDoor,
    /// The packet was accepted before (known by its digest).
    Replay,
    /// The digest set is full: no new packet is accepted until entries expire.
    ReplayFull,
    /// No door opens this port for such grants.
    NoDoorForPort {
        /// Its transport.
        transport: Transport,
        /// The port.
        port: u16,
    },
}

impl Refusal {
    /// A short name, as counters and log fields use it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::Storage(_) => "storage",
            Refusal::Firewall(_) => "firewall",
            Refusal::KeyUnusable => "key-unusable",
            Refusal::StepUsed { .. } => "step-used",
            Refusal::DoorFull { .. } => "door-full",
            Refusal::UnknownDoor => "unknown-door",
            Refusal::Replay => "replay",
            Refusal::ReplayFull => "cap",
            Refusal::NoDoorForPort { .. } => "door",
        }
    }
}

/// How an open came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenKind {
    /// It was closed for that address.
    New,
    /// It was open; its time moved later.
    Extended,
    /// Re-armed after a restart or a backend change, for its remaining time.
    Restored,
    /// A command door run again on a new completion (knockd's `command`).
    Again,
}

/// What a knock did (progress events are rate-limited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnockNote {
    /// `stage` of `of` ports knocked.
    Stage {
        /// Ports knocked so far.
        stage: usize,
        /// Ports in the sequence.
        of: usize,
    },
    /// A wrong port: the attempt starts over.
    Reset,
    /// The sequence was not finished in time.
    TimedOut,
    /// The sequence is complete.
    Complete,
}

/// A decision, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A door opened (or was extended / restored) in the firewall.
    Opened {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
        /// Who asked (`-` for classic sequences).
        user: String,
        /// For how long from now.
        seconds: u32,
        /// New, extended, restored.
        kind: OpenKind,
    },
    /// Asked again while open long enough already: nothing to do.
    AlreadyOpen {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
        /// Who asked.
        user: String,
        /// Seconds it stays open.
        seconds_left: u64,
    },
    /// A valid request that does not open (and why).
    Refused {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
        /// Who asked (`-` when unknown).
        user: String,
        /// Why.
        why: Refusal,
    },
    /// A valid request for ports (fwknop) that opens nothing, and why.
    PortsRefused {
        /// The ports asked for, e.g. `tcp/22,udp/53`.
        ports: String,
        /// For whom.
        addr: IpAddr,
        /// Who asked.
        user: String,
        /// Why.
        why: Refusal,
    },
    /// A door closed in the firewall.
    Closed {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
        /// Why.
        why: CloseWhy,
    },
    /// The firewall refused a close; it is tried again.
    CloseFailed {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
        /// The firewall's words.
        error: String,
        /// Tried again in this many ms.
        retry_in_ms: u64,
    },
    /// Knock progress of a source on a door.
    Knock {
        /// The door.
        door: DoorName,
        /// The knocking source.
        addr: IpAddr,
        /// What happened.
        note: KnockNote,
    },
    /// Knock events and cap refusals not logged in the last minute.
    Suppressed {
        /// How many.
        count: u64,
    },
    /// Every one-time sequence of a door is used: it is disabled.
    OneTimeExhausted {
        /// The door.
        door: DoorName,
    },
    /// A write to the journal failed (what was refused is said separately).
    StorageFailed {
        /// The error.
        error: String,
    },
}

/// Something the executor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Append these records to the journal and flush them (one `fdatasync`);
    /// report back. Nothing that depends on them happens before `effect_done`.
    Persist {
        /// Reports back under this id.
        id: EffectId,
        /// The records.
        records: Vec<Record>,
    },
    /// Open `door` for `addr` for `seconds` (extending it if open); report back.
    Open {
        /// Reports back under this id.
        id: EffectId,
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
        /// For how long from now.
        seconds: u32,
    },
    /// A command door an earlier spad opened: its effect is in place, run
    /// nothing now, but let the close command run when it closes.
    Adopt {
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
    },
    /// Close `door` for `addr`; report back (a failed close is tried again).
    Close {
        /// Reports back under this id.
        id: EffectId,
        /// The door.
        door: DoorName,
        /// For whom.
        addr: IpAddr,
    },
    /// The verifier's replay entry for a grant that opened nothing because
    /// its record could not be made durable: take it back, so the user's
    /// retry of the same packet is not refused as a replay.
    ForgetReplay(ReplayRecord),
    /// A port grant's digest the gateway took back (its records were not
    /// durable): spad's capture-side copy of the digest set forgets it too,
    /// so a retry of the same packet is judged again.
    ForgetDigest([u8; 32]),
    /// Comment out a used one-time sequence in its file, as knockd does
    /// (best effort: the journal already holds the mark).
    MarkOneTimeFile {
        /// The door.
        door: DoorName,
        /// The sequence used.
        steps: Vec<KnockStep>,
    },
    /// Capture exactly these knock ports (TCP, UDP), besides the SPA port.
    SetCapturePorts {
        /// TCP ports.
        tcp: Vec<u16>,
        /// UDP ports.
        udp: Vec<u16>,
    },
    /// Rewrite the journal as these records plus the verifier's live replay
    /// entries (compaction); failure is only logged.
    Compact {
        /// The gateway's durable state.
        records: Vec<Record>,
    },
    /// Log this decision.
    Audit(Event),
}
