//! The benchmark network: two namespaces joined by one veth pair.
//!
//! ```text
//!   client  bc0 10.211.1.1/16          ──veth──  server  bs0 10.211.0.1/16
//!           + knock pool 10.211.2.1 … 10.211.3.254     TCP listener :2222 (the door)
//!           (raw sender: any source in 198.18.0.0/15 for grants)
//! ```
//!
//! Every knock comes from a pool address not used before by the same daemon
//! instance, so each one opens a new element or rule. The server answers
//! TCP on 2222; whether a client gets through is up to the firewall.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

use crate::error::{io, Result};
use crate::netns::{bench_netns, Netns, NetnsExt, VethPair};
use crate::probe::Listener;

/// The server's address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 211, 0, 1);
/// The client's main address (the flood's source).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 211, 1, 1);
/// The server-side interface every daemon sniffs.
pub const SERVER_IF: &str = "bs0";
/// The client-side interface.
pub const CLIENT_IF: &str = "bc0";
/// The TCP port behind the door.
pub const SERVICE_PORT: u16 = 2222;
/// spad's SPA port.
pub const SPA_PORT: u16 = spa_proto::packet::DEFAULT_PORT;
/// fwknopd's SPA port (its default).
pub const FWKNOP_PORT: u16 = 62201;
/// Knock-pool size (10.211.2.1 onwards).
pub const POOL_SIZE: usize = 500;

/// The two namespaces, the listener, and a scratch directory.
#[derive(Debug)]
pub struct Lab {
    /// The server (daemon, firewall, listener).
    pub server: Netns,
    /// The client (knocks, floods, connects).
    pub client: Netns,
    /// Scratch space: configs, keys, logs, state.
    pub dir: TempDir,
    pool: Vec<Ipv4Addr>,
    next: AtomicUsize,
    _listener: Listener,
}

impl Lab {
    /// Builds the network.
    pub fn new() -> Result<Lab> {
        // SPA_BENCH_KEEP=1 keeps the scratch dir (daemon logs, configs) for a post-mortem.
        let dir = tempfile::Builder::new()
            .prefix("spa-bench-")
            .disable_cleanup(std::env::var_os("SPA_BENCH_KEEP").is_some())
            .tempdir()
            .map_err(io("creating a temp dir"))?;
        let server = bench_netns("server")?;
        let client = bench_netns("client")?;
        VethPair::new(
            &server,
            SERVER_IF,
            &["10.211.0.1/16"],
            &client,
            CLIENT_IF,
            &["10.211.1.1/16"],
        )?;
        let pool: Vec<Ipv4Addr> = (0..POOL_SIZE).map(pool_addr).collect();
        let batch: String = pool
            .iter()
            .map(|a| format!("addr add {a}/16 dev {CLIENT_IF}\n"))
            .collect();
        client.ip_batch(&batch)?;
        // No neighbour discovery in the timed path: one datagram from every pool
        // address makes the server resolve each of them (its ICMP answer) up front.
        let warm = pool.clone();
        client.run_inside(move || {
            for a in warm {
                let s = std::net::UdpSocket::bind(SocketAddrV4::new(a, 0))
                    .map_err(io(format!("binding {a}")))?;
                s.send_to(&[0], SocketAddrV4::new(SERVER_IP, 9))
                    .map_err(io(format!("sending from {a}")))?;
            }
            Ok(())
        })?;
        let listener = Listener::start(&server, SocketAddrV4::new(SERVER_IP, SERVICE_PORT))?;
        Ok(Lab {
            server,
            client,
            dir,
            pool,
            next: AtomicUsize::new(0),
            _listener: listener,
        })
    }

    /// The next knock-pool address (the pool wraps after [`POOL_SIZE`]).
    pub fn fresh_addr(&self) -> Ipv4Addr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.pool[i % self.pool.len()]
    }

    /// Starts the pool again (for a new daemon instance, whose firewall state is fresh).
    pub fn reset_pool(&self) {
        self.next.store(0, Ordering::Relaxed);
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The scratch directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// The i-th knock-pool address: 10.211.2.1, 10.211.2.2, …, skipping .0 and .255.
pub fn pool_addr(i: usize) -> Ipv4Addr {
    let third = 2 + (i / 254) as u8;
    let fourth = 1 + (i % 254) as u8;
    Ipv4Addr::new(10, 211, third, fourth)
}

/// The i-th grant source: 198.18.0.1 onwards (198.18.0.0/15, benchmarking space).
pub fn grant_source(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_grant_addresses_stay_in_their_ranges() {
        assert_eq!(pool_addr(0), Ipv4Addr::new(10, 211, 2, 1));
        assert_eq!(pool_addr(253), Ipv4Addr::new(10, 211, 2, 254));
        assert_eq!(pool_addr(254), Ipv4Addr::new(10, 211, 3, 1));
        assert_eq!(grant_source(0), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(grant_source(9_999), Ipv4Addr::new(198, 18, 39, 16));
    }
}
