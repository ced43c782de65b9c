//! Which destination addresses make a packet a knock: knockd counts a knock
//! only when it is sent to one of this host's own addresses, or, for a door
//! with a `Target`, to that target. Traffic that merely passes through a
//! router or bridge spad can see is never a knock. Holds the host's
//! addresses as the daemon last reported them; does no I/O itself.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::packet::canonical_ip;

/// This host's addresses, as last given by the daemon.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalAddresses {
    /// `None` until the daemon reports the host's addresses: then only a
    /// door's `target` restricts destinations.
    known: Option<HashSet<IpAddr>>,
}

impl LocalAddresses {
    /// Replaces the host's addresses (IPv4-mapped IPv6 counts as IPv4).
    pub(crate) fn set(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.known = Some(addrs.into_iter().map(canonical_ip).collect());
    }

    /// Whether a knock sent to `dst` counts for a door with this `target`
    /// (empty: the host's own addresses).
    pub(crate) fn admits(&self, dst: IpAddr, target: &[IpAddr]) -> bool {
        let dst = canonical_ip(dst);
        if !target.is_empty() {
            return target.iter().any(|t| canonical_ip(*t) == dst);
        }
        self.known.as_ref().is_none_or(|own| own.contains(&dst))
    }

    /// How many addresses are known (`None`: never reported).
    pub(crate) fn count(&self) -> Option<usize> {
        self.known.as_ref().map(HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn knocks_to_other_hosts_do_not_count_unless_the_target_names_them() {
        let mut local = LocalAddresses::default();
        local.set([ip("10.0.0.1"), ip("2001:db8::1")]);
        assert!(local.admits(ip("10.0.0.1"), &[]));
        assert!(local.admits(ip("::ffff:10.0.0.1"), &[]));
        assert!(local.admits(ip("2001:db8::1"), &[]));
        assert!(!local.admits(ip("10.0.0.99"), &[]));
        // A target replaces the host's addresses, as in knockd.
        assert!(local.admits(ip("10.0.0.99"), &[ip("10.0.0.99")]));
        assert!(!local.admits(ip("10.0.0.1"), &[ip("10.0.0.99")]));
    }

    #[test]
    fn before_the_host_addresses_are_known_only_targets_restrict() {
        let local = LocalAddresses::default();
        assert_eq!(local.count(), None);
        assert!(local.admits(ip("10.0.0.99"), &[]));
        assert!(!local.admits(ip("10.0.0.1"), &[ip("10.0.0.99")]));
    }
}
