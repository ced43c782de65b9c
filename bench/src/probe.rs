//! What a user sees: a TCP listener in the server namespace, and from the
//! client side a legitimate knock (one or more UDP datagrams from a chosen
//! local address) followed by connect attempts from that same address every
//! few milliseconds until one is answered. Run these on threads inside the
//! right namespace ([`crate::netns::NetnsExt::spawn_inside`]).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

use crate::error::{io, BenchError, Result};
use crate::netns::{Netns, NetnsExt};

/// How often a new connect attempt starts while the door is still shut.
pub const CONNECT_EVERY: Duration = Duration::from_millis(3);

/// A TCP listener accepting and closing connections until dropped.
#[derive(Debug)]
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Listener {
    /// Listens on `addr` inside `ns`.
    pub fn start(ns: &Netns, addr: SocketAddrV4) -> Result<Listener> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = ns.spawn_inside(move || {
            let listener = TcpListener::bind(addr).map_err(io(format!("listening on {addr}")));
            let listener = match listener {
                Ok(l) => {
                    let _ = ready_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            listener
                .set_nonblocking(true)
                .map_err(io("making the listener non-blocking"))?;
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            Ok(())
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Listener {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(BenchError::Invalid(e)),
            Err(_) => Err(BenchError::Timeout {
                what: format!("the listener on {addr}"),
                after: Duration::from_secs(5),
            }),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One knock: datagrams sent in order from one address.
#[derive(Debug, Clone)]
pub struct Knock {
    /// The address the knock comes from (and the door should open for).
    pub from: Ipv4Addr,
    /// The server address.
    pub to: Ipv4Addr,
    /// (destination port, payload) in order.
    pub datagrams: Vec<(u16, Vec<u8>)>,
}

/// When the knock's last datagram left, and when a connect from the same address first succeeded.
#[derive(Debug, Clone, Copy)]
pub struct KnockTiming {
    /// The last datagram was handed to the kernel.
    pub sent: Instant,
    /// The first connect that was answered (`None`: not before the deadline).
    pub connected: Option<Instant>,
}

/// Sends `knock`, then tries `target` from the knock's address until answered or `timeout` passes.
/// Call inside the client namespace.
pub fn knock_and_connect(knock: &Knock, target: u16, timeout: Duration) -> Result<KnockTiming> {
    let socket = UdpSocket::bind(SocketAddrV4::new(knock.from, 0))
        .map_err(io(format!("binding a UDP socket to {}", knock.from)))?;
    for (port, payload) in &knock.datagrams {
        socket
            .send_to(payload, SocketAddrV4::new(knock.to, *port))
            .map_err(io(format!("sending a knock to {}:{port}", knock.to)))?;
    }
    let sent = Instant::now();
    let deadline = sent + timeout;
    let connected = connect_until(knock.from, SocketAddrV4::new(knock.to, target), deadline)?;
    Ok(KnockTiming { sent, connected })
}

/// Starts a connect attempt from `from` every [`CONNECT_EVERY`]; the time the first one is answered.
pub fn connect_until(
    from: Ipv4Addr,
    to: SocketAddrV4,
    deadline: Instant,
) -> Result<Option<Instant>> {
    let what = || format!("connecting {from} -> {to}");
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(crate::error::sys(what()))?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::from(SocketAddrV4::new(from, 0)),
        )
        .map_err(crate::error::sys(what()))?;
        match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)) {
            Ok(()) => return Ok(Some(Instant::now())),
            Err(nix::errno::Errno::EINPROGRESS) => {}
            Err(e) => return Err(crate::error::sys(what())(e)),
        }
        let wait = CONNECT_EVERY.min(deadline.saturating_duration_since(Instant::now()));
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let ready = poll(&mut fds, PollTimeout::from(ms)).map_err(crate::error::sys(what()))?;
        if ready > 0 {
            let at = Instant::now();
            if getsockopt(&fd, sockopt::SocketError).map_err(crate::error::sys(what()))? == 0 {
                return Ok(Some(at));
            }
            // Refused or reset: the door is shut in a way that answers; wait before the next try.
            std::thread::sleep(wait);
        }
    }
}
