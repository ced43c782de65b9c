//! What the user typed as HOST: `name`, `1.2.3.4`, `::1`, `HOST:PORT`,
//! `[v6]:PORT`, `fe80::1%eth0`, `[fe80::1%eth0]:PORT`. Parses that text into
//! its host, IPv6 zone and port, and refuses anything else with the form to
//! use. Resolving the name is `route`'s job.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// A HOST argument taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The name or address, without brackets or zone.
    pub host: String,
    /// The IPv6 zone (interface name or index) of a link-local address.
    pub zone: Option<String>,
    /// The port given with `:PORT`, if any.
    pub port: Option<u16>,
}

/// A HOST argument that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HOST {given:?} {why}")]
pub struct HostSpecError {
    /// The argument as given.
    pub given: String,
    /// What is wrong and what to write instead.
    pub why: String,
}

impl HostSpec {
    /// A bare host without zone or port.
    pub fn named(host: &str) -> HostSpec {
        HostSpec {
            host: host.to_owned(),
            zone: None,
            port: None,
        }
    }

    /// Whether the host is an IPv6 literal.
    pub fn is_ipv6_literal(&self) -> bool {
        self.host.parse::<Ipv6Addr>().is_ok()
    }

    /// The host as it is shown with a port: `[v6%zone]:port` or `name:port`.
    pub fn with_port(&self, port: u16) -> String {
        format!("{}:{port}", self.bracketed())
    }

    /// The host alone, bracketed when it is an IPv6 literal with a port to follow.
    fn bracketed(&self) -> String {
        if self.is_ipv6_literal() {
            format!("[{}]", self.host_and_zone())
        } else {
            self.host.clone()
        }
    }

    /// `fe80::1%eth0`, or just the host.
    pub fn host_and_zone(&self) -> String {
        match &self.zone {
            Some(z) => format!("{}%{z}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => f.write_str(&self.with_port(p)),
            None => f.write_str(&self.host_and_zone()),
        }
    }
}

impl FromStr for HostSpec {
    type Err = HostSpecError;

    fn from_str(given: &str) -> Result<HostSpec, HostSpecError> {
        let fail = |why: &str| HostSpecError {
            given: given.to_owned(),
            why: why.to_owned(),
        };
        if given.is_empty() {
            return Err(fail("is empty: give a host name or an address"));
        }
        if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("contains a space: give a host name or an address"));
        }
        if let Some(rest) = given.strip_prefix('[') {
            let Some((inside, after)) = rest.split_once(']') else {
                return Err(fail("has '[' without ']': write [IPv6]:PORT"));
            };
            let (host, zone) = split_zone(inside);
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(fail(
                    "has brackets around something that is not an IPv6 address: write [IPv6]:PORT",
                ));
            }
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(parse_port(p).map_err(|why| fail(&why))?),
                    None => return Err(fail("has text after ']': write [IPv6]:PORT")),
                },
            };
            return zoned(given, host, zone, port);
        }
        match given.matches(':').count() {
            0 => {
                if given.contains('%') {
                    return Err(fail(
                        "has a zone (%...), which only a link-local IPv6 address takes",
                    ));
                }
                Ok(HostSpec::named(given))
            }
            1 => {
                let (host, port) = given.split_once(':').unwrap_or((given, ""));
                if host.is_empty() {
                    return Err(fail("has a port but no host: write HOST:PORT"));
                }
                if host.contains('%') {
                    return Err(fail(
                        "has a zone (%...), which only a link-local IPv6 address takes",
                    ));
                }
                let port = parse_port(port).map_err(|why| fail(&why))?;
                Ok(HostSpec {
                    host: host.to_owned(),
                    zone: None,
                    port: Some(port),
                })
            }
            _ => {
                let (host, zone) = split_zone(given);
                if host.parse::<Ipv6Addr>().is_err() {
                    return Err(fail(
                        "is not an IPv6 address; to give a port with one, write [IPv6]:PORT",
                    ));
                }
                zoned(given, host, zone, None)
            }
        }
    }
}

/// `fe80::1%eth0` into the address and the zone.
fn split_zone(text: &str) -> (&str, Option<&str>) {
    match text.split_once('%') {
        Some((host, zone)) => (host, Some(zone)),
        None => (text, None),
    }
}

fn zoned(
    given: &str,
    host: &str,
    zone: Option<&str>,
    port: Option<u16>,
) -> Result<HostSpec, HostSpecError> {
    let fail = |why: &str| HostSpecError {
        given: given.to_owned(),
        why: why.to_owned(),
    };
    if let Some(z) = zone {
        if z.is_empty() {
            return Err(fail("has an empty zone: write fe80::1%IFACE"));
        }
        if !is_link_local(host) {
            return Err(fail(
                "has a zone (%...), which only a link-local (fe80::/10) address takes",
            ));
        }
    }
    Ok(HostSpec {
        host: host.to_owned(),
        zone: zone.map(str::to_owned),
        port,
    })
}

fn is_link_local(host: &str) -> bool {
    host.parse::<Ipv6Addr>()
        .is_ok_and(|a| a.segments()[0] & 0xffc0 == 0xfe80)
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p != 0 && !text.starts_with('+') => Ok(p),
        _ => Err(format!(
            "has port {text:?}, which is not a port number from 1 to 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, zone: Option<&str>, port: Option<u16>) -> HostSpec {
        HostSpec {
            host: host.into(),
            zone: zone.map(Into::into),
            port,
        }
    }

    #[test]
    fn every_accepted_form_parses() -> Result<(), HostSpecError> {
        for (given, want) in [
            ("gw.example.net", spec("gw.example.net", None, None)),
            (
                "gw.example.net:62211",
                spec("gw.example.net", None, Some(62211)),
            ),
            ("10.0.0.1", spec("10.0.0.1", None, None)),
            ("10.0.0.1:9", spec("10.0.0.1", None, Some(9))),
            ("::1", spec("::1", None, None)),
            ("[::1]", spec("::1", None, None)),
            (
                "[2001:db8::1]:62211",
                spec("2001:db8::1", None, Some(62211)),
            ),
            ("fe80::1%eth0", spec("fe80::1", Some("eth0"), None)),
            ("[fe80::1%eth0]:22", spec("fe80::1", Some("eth0"), Some(22))),
            ("fe80::1%3", spec("fe80::1", Some("3"), None)),
        ] {
            assert_eq!(given.parse::<HostSpec>()?, want, "{given}");
        }
        Ok(())
    }

    #[test]
    fn parsed_forms_print_back_as_typed() -> Result<(), HostSpecError> {
        for given in [
            "gw:22",
            "[2001:db8::1]:22",
            "[fe80::1%eth0]:22",
            "fe80::1%eth0",
            "::1",
        ] {
            assert_eq!(given.parse::<HostSpec>()?.to_string(), given);
        }
        assert_eq!("[::1]".parse::<HostSpec>()?.with_port(62210), "[::1]:62210");
        Ok(())
    }

    #[test]
    fn bad_forms_say_what_to_write() {
        for (given, needle) in [
            ("", "is empty"),
            (
                "gw:0",
                "port \"0\", which is not a port number from 1 to 65535",
            ),
            ("gw:65536", "not a port number"),
            ("gw:ssh", "not a port number"),
            (":22", "has a port but no host"),
            ("[::1", "'[' without ']'"),
            ("[gw]:22", "not an IPv6 address"),
            ("[::1]22", "text after ']'"),
            ("2001:db8::1:x:22", "write [IPv6]:PORT"),
            ("2001:db8::1%eth0", "only a link-local"),
            ("gw%eth0", "only a link-local IPv6 address"),
            ("fe80::1%", "empty zone"),
            ("gw example", "contains a space"),
        ] {
            let err = given.parse::<HostSpec>().map_err(|e| e.to_string());
            assert!(
                matches!(&err, Err(m) if m.starts_with(&format!("HOST {given:?} ")) && m.contains(needle)),
                "{given:?}: {err:?}"
            );
        }
    }
}
