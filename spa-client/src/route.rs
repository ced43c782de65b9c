//! Where packets go and which local address they leave from: resolves HOST
//! (a name, an IPv4 or an IPv6 literal) to one socket address of the wanted
//! family, and finds the local address of the route towards it. Sends nothing.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs, UdpSocket};

use crate::target::HostSpec;

/// Which address family to use when a name resolves to both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// The first address the resolver gives.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Family::Any => "any",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Why a destination or a local address could not be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The resolver failed for this host.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host as the user typed it.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// The host resolved, but to no address of the requested family.
    #[error("cannot resolve {host}: it has no {family} address")]
    NoAddressOfFamily {
        /// The host as the user typed it.
        host: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The kernel has no route towards the destination.
    #[error("no route to {dest}: {source}")]
    NoRoute {
        /// The destination.
        dest: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
}

/// Resolves `host` (a name, `1.2.3.4`, `::1` or `[::1]`) with `port` to the
/// first address of `family`: the one the resolver lists first, which is also
/// the one ssh and most programs try first.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<SocketAddr, RouteError> {
    resolve_spec(&HostSpec::named(strip_brackets(host)), port, family)
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves a parsed HOST (its `port` is ignored: `port` is used) to the first
/// address of `family`; a link-local address keeps its zone.
pub fn resolve_spec(spec: &HostSpec, port: u16, family: Family) -> Result<SocketAddr, RouteError> {
    let found = resolve_all(spec, port)?;
    found
        .iter()
        .find(|a| family.admits(a))
        .copied()
        .ok_or_else(|| RouteError::NoAddressOfFamily {
            host: spec.host_and_zone(),
            family: family.describe(),
        })
}

/// The first IPv4 and the first IPv6 address of HOST (for `--both`); at least one is found.
pub fn resolve_each_family(
    spec: &HostSpec,
    port: u16,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), RouteError> {
    let found = resolve_all(spec, port)?;
    Ok((
        found.iter().find(|a| a.is_ipv4()).copied(),
        found.iter().find(|a| a.is_ipv6()).copied(),
    ))
}

/// Every address of HOST in the resolver's order, IPv4-mapped ones as IPv4.
fn resolve_all(spec: &HostSpec, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
    let shown = spec.host_and_zone();
    if let Some(zone) = &spec.zone {
        let ip: Ipv6Addr = spec.host.parse().map_err(|_| RouteError::Resolve {
            host: shown.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "a zone needs an IPv6 address"),
        })?;
        let scope = zone_index(zone).map_err(|source| RouteError::Resolve {
            host: shown.clone(),
            source,
        })?;
        return Ok(vec![SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))]);
    }
    let found: Vec<SocketAddr> = (spec.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|source| RouteError::Resolve {
            host: shown.clone(),
            source,
        })?
        .map(canonical)
        .collect();
    if found.is_empty() {
        return Err(RouteError::Resolve {
            host: shown,
            source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
        });
    }
    Ok(found)
}

/// An interface index (`3`) or name (`eth0`) as the kernel's index.
fn zone_index(zone: &str) -> io::Result<u32> {
    if let Ok(n) = zone.parse::<u32>() {
        return Ok(n);
    }
    nix::net::if_::if_nametoindex(zone).map_err(|_| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("there is no network interface named {zone:?} (see: ip link)"),
        )
    })
}

/// An IPv4-mapped IPv6 destination as the plain IPv4 one; others unchanged
/// (a link-local address keeps its zone).
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            SocketAddr::new(spa_proto::packet::canonical_ip(addr.ip()), addr.port())
        }
        other => other,
    }
}

/// The local address the kernel would send from towards `dest`: connects a UDP
/// socket (which sends nothing) and reads its local address.
pub fn local_address_towards(dest: SocketAddr) -> Result<IpAddr, RouteError> {
    let no_route = |source| RouteError::NoRoute { dest, source };
    let socket = UdpSocket::bind(unspecified_for(dest)).map_err(no_route)?;
    socket.connect(dest).map_err(no_route)?;
    Ok(socket.local_addr().map_err(no_route)?.ip())
}

/// `0.0.0.0:0` or `[::]:0`, matching the family of `dest`.
pub fn unspecified_for(dest: SocketAddr) -> SocketAddr {
    match dest {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn literals_resolve_to_themselves() -> Result<(), RouteError> {
        assert_eq!(
            resolve("127.0.0.1", 9, Family::Any)?,
            SocketAddr::from(([127, 0, 0, 1], 9))
        );
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 9));
        assert_eq!(resolve("::1", 9, Family::Any)?, v6);
        assert_eq!(resolve("[::1]", 9, Family::V6)?, v6);
        Ok(())
    }

    #[test]
    fn a_family_the_host_lacks_is_named() {
        let err = resolve("127.0.0.1", 9, Family::V6)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("cannot resolve 127.0.0.1: it has no IPv6 address".to_owned())
        );
    }

    #[test]
    fn unknown_names_say_cannot_resolve() {
        let err = resolve("no-such-host.invalid", 9, Family::Any).map_err(|e| e.to_string());
        assert!(
            matches!(&err, Err(m) if m.starts_with("cannot resolve no-such-host.invalid")),
            "{err:?}"
        );
    }

    #[test]
    fn mapped_addresses_become_ipv4() -> Result<(), RouteError> {
        let got = resolve("::ffff:127.0.0.1", 9, Family::Any)?;
        assert_eq!(got, SocketAddr::from((Ipv4Addr::LOCALHOST, 9)));
        Ok(())
    }

    #[test]
    fn a_zone_is_kept_as_the_interface_index() -> Result<(), RouteError> {
        let spec: HostSpec = "fe80::1%lo"
            .parse()
            .map_err(|_| RouteError::NoAddressOfFamily {
                host: "parse".into(),
                family: "any",
            })?;
        let got = resolve_spec(&spec, 22, Family::Any)?;
        let lo = nix::net::if_::if_nametoindex("lo").map_err(|e| RouteError::Resolve {
            host: "lo".into(),
            source: e.into(),
        })?;
        assert_eq!(
            got,
            SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
                22,
                0,
                lo
            ))
        );
        let numeric = resolve_spec(
            &HostSpec {
                zone: Some(lo.to_string()),
                ..spec.clone()
            },
            22,
            Family::Any,
        )?;
        assert_eq!(numeric, got);
        let err = resolve_spec(
            &HostSpec {
                zone: Some("nosuch0".into()),
                ..spec
            },
            22,
            Family::Any,
        )
        .map_err(|e| e.to_string());
        assert!(
            matches!(&err, Err(m) if m.contains("cannot resolve fe80::1%nosuch0: there is no network interface named \"nosuch0\"")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn each_family_is_found_for_both() -> Result<(), RouteError> {
        let (v4, v6) = resolve_each_family(&HostSpec::named("127.0.0.1"), 9)?;
        assert_eq!(
            (v4, v6),
            (Some(SocketAddr::from(([127, 0, 0, 1], 9))), None)
        );
        let (v4, v6) = resolve_each_family(&HostSpec::named("::1"), 9)?;
        assert_eq!(
            (v4, v6),
            (None, Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 9))))
        );
        Ok(())
    }

    #[test]
    fn loopback_routes_from_loopback() -> Result<(), RouteError> {
        let local = local_address_towards(SocketAddr::from(([127, 0, 0, 1], 9)))?;
        assert_eq!(local, IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(())
    }
}
