//! Where packets go and which local address they leave from: resolves HOST
//! (a name, an IPv4 or an IPv6 literal) to one socket address of the wanted
//! family, and finds the local address of the route towards it. Sends nothing.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

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
/// first address of `family`.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<SocketAddr, RouteError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let found = (bare, port)
        .to_socket_addrs()
        .map_err(|source| RouteError::Resolve {
            host: host.to_owned(),
            source,
        })?;
    let mut any = false;
    for addr in found {
        any = true;
        if family.admits(&addr) {
            return Ok(canonical(addr));
        }
    }
    if any {
        Err(RouteError::NoAddressOfFamily {
            host: host.to_owned(),
            family: family.describe(),
        })
    } else {
        Err(RouteError::Resolve {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
        })
    }
}

/// An IPv4-mapped IPv6 destination as the plain IPv4 one.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(spa_proto::packet::canonical_ip(addr.ip()), addr.port())
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
    fn loopback_routes_from_loopback() -> Result<(), RouteError> {
        let local = local_address_towards(SocketAddr::from(([127, 0, 0, 1], 9)))?;
        assert_eq!(local, IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(())
    }
}
