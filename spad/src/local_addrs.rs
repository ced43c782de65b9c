//! This host's own IP addresses (getifaddrs), which the knock state machine
//! needs to tell a knock addressed to this host from traffic that only
//! passes through it (`Knocker::set_local_addresses`). Read at start and at
//! every reload; decides nothing.

use std::collections::BTreeSet;
use std::net::IpAddr;

use nix::ifaddrs::getifaddrs;

/// The host's addresses could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot list this host's addresses (getifaddrs): {0}")]
pub struct LocalAddrsError(#[from] nix::Error);

/// Every IPv4 and IPv6 address of every interface of this host (up or
/// not: an address is this host's as long as it is configured), sorted,
/// without duplicates.
pub fn local_addresses() -> Result<Vec<IpAddr>, LocalAddrsError> {
    let mut addrs = BTreeSet::new();
    for ifaddr in getifaddrs()? {
        let Some(address) = ifaddr.address else {
            continue;
        };
        if let Some(v4) = address.as_sockaddr_in() {
            addrs.insert(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            addrs.insert(IpAddr::V6(v6.ip()));
        }
    }
    Ok(addrs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_address_is_one_of_this_hosts() -> Result<(), LocalAddrsError> {
        let addrs = local_addresses()?;
        assert!(addrs.contains(&IpAddr::from([127, 0, 0, 1])), "{addrs:?}");
        let mut sorted = addrs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, addrs);
        Ok(())
    }
}
