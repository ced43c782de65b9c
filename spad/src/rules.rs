//! Turns spad's config into what the gateway enforces: each door's opener,
//! time limits, how its backend closes, and its cap on open addresses.

use spa_proto::gateway::{Closing, DoorRules, GatewayConfig, Opener, KNOCK_EVENTS_PER_MINUTE};
use spa_proto::VerifierConfig;

use crate::config::{Config, DoorKind};
use crate::firewall::BackendKind;

/// Addresses a rotating door may be open for at once (every knock comes
/// from a key holder; classic doors take `max_open` from the config).
pub const ROTATING_DOOR_MAX_OPEN: usize = 10_000;

/// Addresses an SPA door may be open for at once (every one authenticated).
pub const SPA_DOOR_MAX_OPEN: usize = 100_000;

/// The gateway's view of `config`.
pub fn gateway_config(config: &Config) -> GatewayConfig {
    let doors = config
        .doors
        .iter()
        .map(|d| {
            let (opener, max_open) = match &d.kind {
                DoorKind::Spa => (Opener::Spa, SPA_DOOR_MAX_OPEN),
                DoorKind::Classic { door, max_open, .. } => {
                    (Opener::Classic(door.clone()), *max_open)
                }
                DoorKind::Rotating {
                    spec,
                    transport,
                    seq_timeout_ms,
                } => (
                    Opener::Rotating {
                        spec: *spec,
                        transport: *transport,
                        seq_timeout_ms: *seq_timeout_ms,
                    },
                    ROTATING_DOOR_MAX_OPEN,
                ),
            };
            let closing = match &d.spec.backend {
                BackendKind::Nftables => Closing::Kernel,
                BackendKind::Iptables => Closing::Timer,
                BackendKind::Command(_) => Closing::Command {
                    every_time: d.runs_command_every_time(),
                },
            };
            DoorRules {
                name: d.name.clone(),
                opener,
                default_secs: d.policy.default_secs,
                max_secs: d.policy.max_secs,
                closing,
                max_open,
            }
        })
        .collect();
    GatewayConfig {
        doors,
        knock_events_per_minute: KNOCK_EVENTS_PER_MINUTE,
        port_doors: config.port_doors(),
    }
}

/// The verifier's view of `config`.
pub fn verifier_config(config: &Config) -> VerifierConfig {
    VerifierConfig {
        skew_ms: config.skew_ms,
        cap: config.replay_cap,
        doors: config.policies(),
    }
}
