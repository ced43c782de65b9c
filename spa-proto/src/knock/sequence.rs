//! Classic knock sequences as knockd writes them: a step is `7000`,
//! `7000:tcp` or `9000:udp`; a sequence is steps separated by commas
//! (blanks around a step are fine; ports separated only by blanks are
//! refused, because knockd would read the first one alone); a one-time sequence file holds one sequence per line, with used
//! lines and comments starting with '#'. Owns parsing and the textual edit
//! that marks a one-time sequence used; never touches a file itself.

use std::fmt;
use std::str::FromStr;

use super::error::{KnockSyntaxError, KnockSyntaxErrorKind};

/// How a knock reaches its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// One TCP segment (usually a SYN).
    Tcp,
    /// One UDP datagram.
    Udp,
}

impl Transport {
    /// The lowercase name nft, iptables, configs and templates use: `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

impl FromStr for Transport {
    type Err = KnockSyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("tcp") {
            Ok(Transport::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Ok(Transport::Udp)
        } else {
            Err(KnockSyntaxError::at(
                s,
                0,
                KnockSyntaxErrorKind::BadTransport(s.to_owned()),
            ))
        }
    }
}

/// One knock: a port and the transport to reach it with (TCP by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KnockStep {
    /// Destination port, 1..=65535.
    pub port: u16,
    /// TCP or UDP.
    pub transport: Transport,
}

impl KnockStep {
    /// A TCP knock on `port`.
    pub fn tcp(port: u16) -> Self {
        KnockStep {
            port,
            transport: Transport::Tcp,
        }
    }

    /// A UDP knock on `port`.
    pub fn udp(port: u16) -> Self {
        KnockStep {
            port,
            transport: Transport::Udp,
        }
    }
}

impl fmt::Display for KnockStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.port, self.transport)
    }
}

impl FromStr for KnockStep {
    type Err = KnockSyntaxError;
    /// Parses `PORT`, `PORT:tcp` or `PORT:udp` (surrounding blanks allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let start = s.len() - s.trim_start().len();
        let item = s.trim();
        parse_step(item).map_err(|(offset, kind)| KnockSyntaxError::at(s, start + offset, kind))
    }
}

/// Parses one trimmed step; on error, the byte offset within `item` and why.
fn parse_step(item: &str) -> Result<KnockStep, (usize, KnockSyntaxErrorKind)> {
    let (port_text, transport) = match item.split_once(':') {
        None => (item, Transport::Tcp),
        Some((port_text, proto)) => {
            let offset = port_text.len() + 1;
            let transport = proto.trim().parse::<Transport>().map_err(|_| {
                (
                    offset,
                    KnockSyntaxErrorKind::BadTransport(proto.trim().to_owned()),
                )
            })?;
            (port_text.trim_end(), transport)
        }
    };
    if port_text.contains(|c: char| c.is_ascii_whitespace()) {
        let first = port_text.split_whitespace().next().unwrap_or_default();
        return Err((0, KnockSyntaxErrorKind::BlankSeparated(first.to_owned())));
    }
    let port = port_text
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0 && port_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| (0, KnockSyntaxErrorKind::BadPort(port_text.to_owned())))?;
    Ok(KnockStep { port, transport })
}

/// Parses a sequence such as `7000,8000:udp,9000`, reading it as knockd
/// does (commas separate steps, blanks around a step are ignored) or
/// refusing what knockd would misread: an empty step between commas (port 0
/// to knockd) and ports separated only by blanks (knockd keeps the first).
/// An empty sequence is an error.
pub fn parse_sequence(text: &str) -> Result<Vec<KnockStep>, KnockSyntaxError> {
    if text.trim().is_empty() {
        return Err(KnockSyntaxError::at(
            text,
            0,
            KnockSyntaxErrorKind::EmptySequence,
        ));
    }
    let mut steps = Vec::new();
    let mut offset = 0;
    for raw in text.split(',') {
        let start = offset + (raw.len() - raw.trim_start().len());
        offset += raw.len() + 1;
        let item = raw.trim();
        if item.is_empty() {
            return Err(KnockSyntaxError::at(
                text,
                start,
                KnockSyntaxErrorKind::EmptyStep,
            ));
        }
        let step =
            parse_step(item).map_err(|(at, kind)| KnockSyntaxError::at(text, start + at, kind))?;
        steps.push(step);
    }
    Ok(steps)
}

/// Whether a line of a one-time sequence file is a sequence (not blank, not
/// used or commented out with a leading '#').
fn is_sequence_line(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// Parses a knockd one-time sequence file: one sequence per line, in the
/// order they are to be used; blank lines and lines starting with '#' (used
/// sequences and comments) are skipped. Errors name the line and column.
pub fn parse_one_time_file(text: &str) -> Result<Vec<Vec<KnockStep>>, KnockSyntaxError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| is_sequence_line(line))
        .map(|(i, line)| parse_sequence(line).map_err(|e| e.on_line(i + 1)))
        .collect()
}

/// The file text with the first unused line holding `used` marked used by a
/// leading '#' (knockd overwrites the first character; this inserts it, so
/// no digit is lost). `None` if no unused line holds that sequence.
pub fn comment_out_one_time(text: &str, used: &[KnockStep]) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 1);
    let mut done = false;
    for line in text.split_inclusive('\n') {
        if !done && is_sequence_line(line) && parse_sequence(line).is_ok_and(|s| s == used) {
            out.push('#');
            done = true;
        }
        out.push_str(line);
    }
    done.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_like_knockd() {
        assert_eq!("7000".parse(), Ok(KnockStep::tcp(7000)));
        assert_eq!("7000:tcp".parse(), Ok(KnockStep::tcp(7000)));
        assert_eq!(" 9000:UDP ".parse(), Ok(KnockStep::udp(9000)));
        assert_eq!("65535:udp".parse(), Ok(KnockStep::udp(65535)));
        assert_eq!(KnockStep::udp(9000).to_string(), "9000:udp");
    }

    #[test]
    fn bad_steps_say_where_and_why() {
        let e = "0".parse::<KnockStep>().err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("line 1, column 1: \"0\" is not a port number from 1 to 65535")
        );
        let e = "7000:sctp".parse::<KnockStep>().err();
        assert_eq!(
            e.map(|e| (e.column, e.kind)),
            Some((6, KnockSyntaxErrorKind::BadTransport("sctp".into())))
        );
        for bad in ["65536", "-1", "+7", "70a", "", ":tcp"] {
            assert!(
                matches!(
                    bad.parse::<KnockStep>(),
                    Err(KnockSyntaxError {
                        kind: KnockSyntaxErrorKind::BadPort(_),
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sequences_split_on_commas_as_knockd_reads_them() {
        let want = vec![
            KnockStep::tcp(7000),
            KnockStep::udp(8000),
            KnockStep::tcp(9000),
        ];
        assert_eq!(parse_sequence("7000,8000:udp,9000"), Ok(want.clone()));
        assert_eq!(parse_sequence(" 7000, 8000 : udp ,\t9000 "), Ok(want));
        let e = parse_sequence("7000,80x0,9000").err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((1, 6)));
        let e = parse_sequence("  ").err();
        assert_eq!(e.map(|e| e.kind), Some(KnockSyntaxErrorKind::EmptySequence));
    }

    #[test]
    fn what_knockd_would_misread_is_refused_with_the_reason() {
        // knockd's atoi reads "7000 8000" as port 7000 alone.
        let e = parse_sequence("7000 8000:udp,9000").err();
        assert_eq!(
            e.map(|e| (e.column, e.kind)),
            Some((1, KnockSyntaxErrorKind::BlankSeparated("7000".into())))
        );
        // An empty step is port 0 to knockd.
        for (text, column) in [("7000,,8000", 6), ("7000,8000,", 11), (" , ", 2)] {
            let e = parse_sequence(text).err();
            assert_eq!(
                e.map(|e| (e.column, e.kind)),
                Some((column, KnockSyntaxErrorKind::EmptyStep)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn one_time_files_skip_used_lines_and_mark_them() {
        let text = "# smtp sequences\n 1000,2000,3000\n#1001,2001,3001\n\n 1002, 2002:udp ,3002\n";
        let seqs = parse_one_time_file(text);
        let first = vec![
            KnockStep::tcp(1000),
            KnockStep::tcp(2000),
            KnockStep::tcp(3000),
        ];
        let second = vec![
            KnockStep::tcp(1002),
            KnockStep::udp(2002),
            KnockStep::tcp(3002),
        ];
        assert_eq!(seqs, Ok(vec![first.clone(), second.clone()]));

        let after = comment_out_one_time(text, &first);
        assert_eq!(
            after.as_deref(),
            Some("# smtp sequences\n# 1000,2000,3000\n#1001,2001,3001\n\n 1002, 2002:udp ,3002\n")
        );
        assert_eq!(
            after.as_deref().map(parse_one_time_file),
            Some(Ok(vec![second.clone()]))
        );
        assert_eq!(comment_out_one_time(text, &[KnockStep::tcp(1)]), None);

        let e = parse_one_time_file("1,2,3\n# x\n4,5,99999\n").err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((3, 5)));
    }
}
