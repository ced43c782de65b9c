//! What the firewall is asked to guard: ports (`tcp/22`), doors and the
//! settings shared by every backend. Plain data, parsed and checked here;
//! this module never runs a command.

use std::fmt;
use std::str::FromStr;

use super::command::CommandTemplates;

/// A transport protocol a door can open: the one tcp/udp type of spa
/// (spa-proto's, which also owns its parser).
pub use spa_proto::knock::Transport as Proto;

/// Why a port spec such as `tcp/22` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortSpecError {
    /// The text has no `/` between protocol and port.
    #[error("port {0:?} must be written proto/port, e.g. \"tcp/22\" or \"udp/53\"")]
    MissingSlash(String),
    /// The protocol is neither `tcp` nor `udp`.
    #[error("port {spec:?}: protocol {proto:?} is not \"tcp\" or \"udp\"")]
    UnknownProto {
        /// The whole spec as written.
        spec: String,
        /// The protocol part.
        proto: String,
    },
    /// The port is not a number in 1..=65535.
    #[error("port {spec:?}: {port:?} is not a port number 1-65535")]
    BadPort {
        /// The whole spec as written.
        spec: String,
        /// The port part.
        port: String,
    },
}

/// One port of a door: protocol and number, written `tcp/22`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    /// TCP or UDP.
    pub proto: Proto,
    /// The port number, 1..=65535.
    pub port: u16,
}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (proto_text, port_text) = s
            .split_once('/')
            .ok_or_else(|| PortSpecError::MissingSlash(s.to_owned()))?;
        let proto: Proto = proto_text
            .trim()
            .parse()
            .map_err(|_| PortSpecError::UnknownProto {
                spec: s.to_owned(),
                proto: proto_text.to_owned(),
            })?;
        let bad_port = || PortSpecError::BadPort {
            spec: s.to_owned(),
            port: port_text.to_owned(),
        };
        let port: u16 = port_text.trim().parse().map_err(|_| bad_port())?;
        if port == 0 {
            return Err(bad_port());
        }
        Ok(PortSpec { proto, port })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

/// Which backend opens and closes a door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// A pair of nftables sets with per-element timeouts (the default):
    /// the kernel closes the door even if spad is gone.
    Nftables,
    /// Rules in an iptables/ip6tables chain of spad's own; spad's timers close.
    Iptables,
    /// The operator's own commands (knockd style); spad adds no drop rule.
    Command(CommandTemplates),
}

impl BackendKind {
    /// A short name for messages: `nftables`, `iptables` or `command`.
    pub fn name(&self) -> &'static str {
        match self {
            BackendKind::Nftables => "nftables",
            BackendKind::Iptables => "iptables",
            BackendKind::Command(_) => "command",
        }
    }
}

/// A door as the firewall sees it: a name, the ports it opens, its backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorSpec {
    /// The door name (PROTOCOL §2 rule: `[a-z0-9][a-z0-9_-]{0,31}`).
    pub name: String,
    /// The ports an open door lets through for the opening address.
    pub ports: Vec<PortSpec>,
    /// Who opens and closes it.
    pub backend: BackendKind,
}

/// Settings shared by all backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSettings {
    /// Name of spad's nftables table (`table inet <table>`); its uppercase
    /// form names the iptables chain. Default `spad`.
    pub table: String,
    /// The UDP port spad listens on for SPA packets (for the stealth rule).
    pub spa_port: u16,
    /// Drop everything sent to `spa_port`, so the kernel answers no ICMP
    /// port-unreachable; the capture socket still sees the packets.
    pub stealth: bool,
    /// More UDP ports spad sniffs (fwknop's): dropped like `spa_port`.
    pub other_udp_ports: Vec<u16>,
    /// Run every firewall command inside this network namespace
    /// (`ip netns exec NS ...`); `None` for the namespace spad runs in.
    pub netns: Option<String>,
}

impl Default for FirewallSettings {
    fn default() -> Self {
        FirewallSettings {
            table: "spad".to_owned(),
            spa_port: spa_proto::packet::DEFAULT_PORT,
            stealth: false,
            other_udp_ports: Vec::new(),
            netns: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_and_print_the_same() {
        for text in ["tcp/22", "udp/53", "tcp/65535"] {
            let spec: PortSpec = text.parse().expect("valid port spec");
            assert_eq!(spec.to_string(), text);
        }
        let spec: PortSpec = "TCP/ 443".parse().expect("valid port spec");
        assert_eq!(
            spec,
            PortSpec {
                proto: Proto::Tcp,
                port: 443
            }
        );
    }

    #[test]
    fn bad_port_specs_say_what_is_wrong() {
        let err = "22".parse::<PortSpec>().unwrap_err();
        assert_eq!(err, PortSpecError::MissingSlash("22".into()));
        assert!(err.to_string().contains("tcp/22"));
        assert!(matches!(
            "sctp/22".parse::<PortSpec>(),
            Err(PortSpecError::UnknownProto { .. })
        ));
        for bad in ["tcp/0", "tcp/65536", "tcp/ssh", "udp/"] {
            assert!(
                matches!(bad.parse::<PortSpec>(), Err(PortSpecError::BadPort { .. })),
                "{bad} should be refused"
            );
        }
    }
}
