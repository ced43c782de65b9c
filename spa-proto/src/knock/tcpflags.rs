//! knockd's `tcpflags` rule: TCP flags a knock must carry (`syn`) and flags
//! it must not carry (`!ack`). A TCP packet that fails a door's rule is not a
//! knock for that door at all: it neither advances nor resets it.

use std::fmt;
use std::str::FromStr;

use super::error::{FlagName, KnockSyntaxError, KnockSyntaxErrorKind};

/// TCP FIN flag bit.
pub const TCP_FIN: u8 = 0x01;
/// TCP SYN flag bit.
pub const TCP_SYN: u8 = 0x02;
/// TCP RST flag bit.
pub const TCP_RST: u8 = 0x04;
/// TCP PSH flag bit.
pub const TCP_PSH: u8 = 0x08;
/// TCP ACK flag bit.
pub const TCP_ACK: u8 = 0x10;
/// TCP URG flag bit.
pub const TCP_URG: u8 = 0x20;

/// The flags a rule may name, in the order they print.
const FLAGS: [(&str, u8); 6] = [
    ("fin", TCP_FIN),
    ("syn", TCP_SYN),
    ("rst", TCP_RST),
    ("psh", TCP_PSH),
    ("ack", TCP_ACK),
    ("urg", TCP_URG),
];

/// Which TCP flags a knock must have and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlagsRule {
    required: u8,
    excluded: u8,
}

impl TcpFlagsRule {
    /// SYN set, ACK clear: a connection attempt and nothing else. Rotating
    /// TCP doors use this rule (PROTOCOL §4: "one TCP SYN" per port).
    pub const SYN_NOT_ACK: TcpFlagsRule = TcpFlagsRule {
        required: TCP_SYN,
        excluded: TCP_ACK,
    };

    /// A rule from flag bits; `None` if a flag is both required and excluded.
    pub fn new(required: u8, excluded: u8) -> Option<Self> {
        (required & excluded == 0).then_some(TcpFlagsRule { required, excluded })
    }

    /// Whether a TCP packet with these flags counts as a knock. knockd's
    /// rule: every listed flag set, `!flag` clear, flags not listed free
    /// (so `syn` accepts a SYN+ACK).
    pub fn matches(&self, tcp_flags: u8) -> bool {
        tcp_flags & self.required == self.required && tcp_flags & self.excluded == 0
    }

    /// The flags that must be set.
    pub fn required(&self) -> u8 {
        self.required
    }

    /// The flags that must be clear.
    pub fn excluded(&self) -> u8 {
        self.excluded
    }

    /// Whether every packet this rule accepts is a SYN without ACK, so a
    /// capture filter that passes only those loses no knock for it.
    pub fn accepts_only_syn_without_ack(&self) -> bool {
        self.required & TCP_SYN != 0 && self.excluded & TCP_ACK != 0
    }
}

impl FromStr for TcpFlagsRule {
    type Err = KnockSyntaxError;
    /// Parses `syn`, `syn,!ack`, `fin,!syn,!ack` … (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(KnockSyntaxError::at(s, 0, KnockSyntaxErrorKind::EmptyFlags));
        }
        let mut rule = TcpFlagsRule {
            required: 0,
            excluded: 0,
        };
        let mut offset = 0;
        for raw in s.split(',') {
            let at = offset + (raw.len() - raw.trim_start().len());
            offset += raw.len() + 1;
            let item = raw.trim();
            let (negated, name) = match item.strip_prefix('!') {
                Some(rest) => (true, rest.trim_start()),
                None => (false, item),
            };
            let Some(&(canonical, bit)) = FLAGS
                .iter()
                .find(|(flag, _)| flag.eq_ignore_ascii_case(name))
            else {
                let kind = KnockSyntaxErrorKind::UnknownFlag(item.to_owned());
                return Err(KnockSyntaxError::at(s, at, kind));
            };
            let (same, other) = if negated {
                (&mut rule.excluded, rule.required)
            } else {
                (&mut rule.required, rule.excluded)
            };
            if other & bit != 0 {
                let kind = KnockSyntaxErrorKind::ContradictoryFlag(FlagName(canonical));
                return Err(KnockSyntaxError::at(s, at, kind));
            }
            *same |= bit;
        }
        Ok(rule)
    }
}

impl fmt::Display for TcpFlagsRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (negated, mask) in [(false, self.required), (true, self.excluded)] {
            for (name, bit) in FLAGS {
                if mask & bit != 0 {
                    let sep = if first { "" } else { "," };
                    let bang = if negated { "!" } else { "" };
                    write!(f, "{sep}{bang}{name}")?;
                    first = false;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print() {
        let syn: TcpFlagsRule = "syn".parse().unwrap_or(TcpFlagsRule::SYN_NOT_ACK);
        assert_eq!(syn.to_string(), "syn");
        assert_eq!("syn,!ack".parse(), Ok(TcpFlagsRule::SYN_NOT_ACK));
        assert_eq!(" SYN , ! ack ".parse(), Ok(TcpFlagsRule::SYN_NOT_ACK));
        let r: Result<TcpFlagsRule, _> = "fin,!syn,!ack,urg".parse();
        assert_eq!(r.map(|r| r.to_string()).as_deref(), Ok("fin,urg,!syn,!ack"));
    }

    #[test]
    fn tcpflags_listed_flags_must_be_set_unlisted_are_free_negated_must_be_clear() {
        let rule = |s: &str| {
            s.parse::<TcpFlagsRule>()
                .unwrap_or(TcpFlagsRule::SYN_NOT_ACK)
        };
        // `syn`: SYN set; ACK, PSH … free.
        let syn = rule("syn");
        assert!(syn.matches(TCP_SYN | TCP_ACK));
        assert!(syn.matches(TCP_SYN | TCP_PSH | TCP_URG));
        assert!(!syn.matches(TCP_ACK | TCP_FIN));
        // `fin,!ack`: FIN set, ACK clear, the rest free.
        let fin = rule("fin,!ack");
        assert!(fin.matches(TCP_FIN));
        assert!(fin.matches(TCP_FIN | TCP_SYN | TCP_URG));
        assert!(!fin.matches(TCP_FIN | TCP_ACK));
        assert!(!fin.matches(TCP_SYN));
        // Which rules a SYN-only capture filter serves without losing knocks.
        assert!(!syn.accepts_only_syn_without_ack());
        assert!(!fin.accepts_only_syn_without_ack());
        assert!(rule("syn,!ack").accepts_only_syn_without_ack());
        assert!(rule("syn,!ack,!rst").accepts_only_syn_without_ack());
        assert_eq!((syn.required(), syn.excluded()), (TCP_SYN, 0));
    }

    #[test]
    fn rules_match_like_knockd() {
        let syn = TcpFlagsRule::new(TCP_SYN, 0).unwrap_or(TcpFlagsRule::SYN_NOT_ACK);
        assert!(syn.matches(TCP_SYN));
        assert!(syn.matches(TCP_SYN | TCP_ACK));
        assert!(!syn.matches(TCP_ACK));
        let syn_not_ack = TcpFlagsRule::SYN_NOT_ACK;
        assert!(syn_not_ack.matches(TCP_SYN));
        assert!(syn_not_ack.matches(TCP_SYN | TCP_PSH));
        assert!(!syn_not_ack.matches(TCP_SYN | TCP_ACK));
        assert!(!syn_not_ack.matches(TCP_ACK));
        assert!(!syn_not_ack.matches(TCP_RST));
        assert_eq!(TcpFlagsRule::new(TCP_SYN, TCP_SYN), None);
    }

    #[test]
    fn bad_rules_say_where_and_why() {
        let e = "syn,!ak".parse::<TcpFlagsRule>().err();
        assert_eq!(
            e.map(|e| (e.column, e.kind)),
            Some((5, KnockSyntaxErrorKind::UnknownFlag("!ak".into())))
        );
        let e = "syn,!syn".parse::<TcpFlagsRule>().err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("line 1, column 5: TCP flag syn is both required and excluded")
        );
        let e = "".parse::<TcpFlagsRule>().err();
        assert_eq!(e.map(|e| e.kind), Some(KnockSyntaxErrorKind::EmptyFlags));
        let e = "syn,,ack".parse::<TcpFlagsRule>().err();
        assert_eq!(
            e.map(|e| (e.column, e.kind)),
            Some((5, KnockSyntaxErrorKind::UnknownFlag(String::new())))
        );
    }
}
