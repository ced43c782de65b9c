//! The capture socket: an AF_PACKET `SOCK_RAW` socket that only ever queues what the
//! BPF filter accepts, read through its TPACKET_V2 receive ring ([`super::ring`]: no
//! system call per frame, a lone frame handed over at once, frames read in batches
//! under a flood), plus its kernel statistics. A frame longer than a ring slot arrives
//! whole on the socket's queue and is read with one `recvfrom`, in order. If the ring
//! cannot be set up (an old or restricted kernel), the socket is opened again without
//! one and read with one blocking `recvfrom` per frame (said once, at info level). The only `unsafe` code of the project lives here and in the ring (raw
//! socket calls, the mapping); every block says why it is sound.
//!
//! Why `recvfrom` and not pnet's datalink channel: pnet's receiver discards the
//! `sockaddr_ll` of each frame, so `PACKET_OUTGOING` could not be told apart; it also
//! re-binds the socket, turns on promiscuous mode by default and polls a non-blocking
//! socket. We read the fd ourselves (blocking, no polling loop) and use pnet_packet
//! only to parse (`frame.rs`). Outgoing frames are dropped twice: by the filter
//! (`SKF_AD_PKTTYPE`) and by a `sll_pkttype` check here.
//!
//! Opening order, so no unfiltered frame is ever queued: `socket(AF_PACKET, SOCK_RAW,
//! 0)` (protocol 0 receives nothing), attach the filter, drain, set up the ring (or
//! the receive buffer size), then `bind` with `ETH_P_ALL` to the interface (ifindex 0
//! = all interfaces).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};

use libc::{c_int, c_void, sock_filter, socklen_t};

use super::filter::{compile_filter, link_type_guard, FilterSpec, MAX_PROGRAM_LEN, SNAP_LEN};
use super::frame::{locate, Captured, FrameLayout};
use super::ring::{Ring, RingFrame};

/// Kernel receive buffer we ask for: without a ring, room for thousands of small
/// frames while spad is busy; with one, for the frames longer than a ring slot. `SO_RCVBUFFORCE` (root) bypasses
/// `net.core.rmem_max`.
pub const RECEIVE_BUFFER_BYTES: c_int = 8 << 20;

/// The interface name meaning "all interfaces".
pub const ANY_INTERFACE: &str = "any";

/// Everything that can go wrong with the capture socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// `socket(AF_PACKET)` failed, usually for lack of root / `CAP_NET_RAW`.
    #[error("cannot open an AF_PACKET capture socket (spad needs root or CAP_NET_RAW)")]
    Socket(#[source] io::Error),
    /// The interface name contains a NUL byte.
    #[error("interface name {0:?} is not valid")]
    BadInterfaceName(String),
    /// No interface has this name.
    #[error("no network interface named {0:?}")]
    NoSuchInterface(String),
    /// Too many separate ports for one BPF program (consecutive ports cost nothing).
    #[error(
        "the capture filter needs {len} BPF instructions, the kernel allows {max}: \
         use fewer separate knock ports (consecutive ports form one range)"
    )]
    FilterTooLarge { len: usize, max: usize },
    /// The kernel refused the filter program.
    #[error("the kernel refused the capture filter")]
    AttachFilter(#[source] io::Error),
    /// Setting a socket option failed.
    #[error("cannot set {option} on the capture socket")]
    SocketOption {
        option: &'static str,
        #[source]
        source: io::Error,
    },
    /// Binding to the interface failed (e.g. it went away).
    #[error("cannot bind the capture socket to interface {interface:?}")]
    Bind {
        interface: String,
        #[source]
        source: io::Error,
    },
    /// `recvfrom` or waiting for the ring failed (e.g. the interface went down).
    #[error("reading from the capture socket failed")]
    Receive(#[source] io::Error),
    /// `getsockopt(PACKET_STATISTICS)` failed.
    #[error("reading the capture socket's statistics failed")]
    Stats(#[source] io::Error),
}

/// Packet counters since the socket was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Frames that passed the filter (kernel count, including `dropped`).
    pub received: u64,
    /// Frames that passed the filter but found the ring (or receive buffer) full
    /// (kernel count).
    pub dropped: u64,
    /// Frames returned by [`Capture::next`] / [`Capture::try_next`].
    pub delivered: u64,
    /// Frames read but not delivered: outgoing copies, truncated or unparsable frames.
    pub skipped: u64,
}

/// Where a frame that was read lies.
#[derive(Debug, Clone)]
enum Place {
    /// In the ring's slot lent out.
    Ring(Range<usize>),
    /// In `recvfrom`'s buffer.
    Buffer(Range<usize>),
}

/// What one read (from the ring or `recvfrom`) gave.
enum Received {
    /// A frame is here.
    Frame(Place),
    /// A frame we never deliver: an outgoing copy, or longer than the buffer.
    Skipped,
    /// Nothing queued (non-blocking reads only).
    Nothing,
}

/// State shared between the [`Capture`] and its [`CaptureHandle`]s.
#[derive(Debug)]
struct Shared {
    socket: OwnedFd,
    /// Kernel counters reset on every read; these are the running totals.
    kernel_totals: Mutex<(u64, u64)>,
    delivered: AtomicU64,
    skipped: AtomicU64,
}

/// An open capture socket. Reading needs `&mut`; reloading the filter and reading
/// statistics from other threads goes through [`Capture::handle`].
pub struct Capture {
    shared: Arc<Shared>,
    interface: String,
    /// The receive ring; `None` when it could not be set up (then `buffer` is used).
    ring: Option<Ring>,
    /// `recvfrom`'s buffer: allocated on first use (with the ring, only for a frame
    /// longer than a slot), its pages resident only as far as a frame was written.
    buffer: Vec<u8>,
}

/// A cloneable, `Send + Sync` handle to a [`Capture`]'s socket: reload its filter
/// (SIGHUP) or read its statistics while another thread blocks in `next`.
#[derive(Debug, Clone)]
pub struct CaptureHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("interface", &self.interface)
            .field("fd", &self.shared.socket.as_raw_fd())
            .field("ring", &self.ring.is_some())
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens a capture on `interface` (`None` or `"any"`: all interfaces) with the
    /// filter for `spec`, read through the receive ring (one `recvfrom` per frame if
    /// the ring cannot be set up). Needs root or `CAP_NET_RAW`.
    pub fn open(interface: Option<&str>, spec: &FilterSpec) -> Result<Capture, CaptureError> {
        Capture::open_with(interface, spec, Reader::Ring)
    }

    /// Like [`Capture::open`], but without the receive ring: one `recvfrom` per frame,
    /// as when the ring cannot be set up. As quick for a lone knock as the ring, but
    /// one system call and one wake-up per frame under a flood (several times the
    /// CPU); kept as the fallback and for comparison.
    pub fn open_with_recvfrom(
        interface: Option<&str>,
        spec: &FilterSpec,
    ) -> Result<Capture, CaptureError> {
        Capture::open_with(interface, spec, Reader::Recvfrom)
    }

    fn open_with(
        interface: Option<&str>,
        spec: &FilterSpec,
        reader: Reader,
    ) -> Result<Capture, CaptureError> {
        let interface = interface.unwrap_or(ANY_INTERFACE);
        let ifindex = interface_index(interface)?;
        let program = capture_program(spec);

        let (socket, ring) = match open_socket(&program, reader)? {
            (socket, Some(ring)) => (socket, Some(ring)),
            (socket, None) if reader == Reader::Recvfrom => (socket, None),
            // The ring failed: a fresh socket, without a half-set-up ring.
            (_, None) => (open_socket(&program, Reader::Recvfrom)?.0, None),
        };
        bind(socket.as_fd(), ifindex).map_err(|source| CaptureError::Bind {
            interface: interface.to_owned(),
            source,
        })?;

        Ok(Capture {
            shared: Arc::new(Shared {
                socket,
                kernel_totals: Mutex::new((0, 0)),
                delivered: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
            }),
            interface: interface.to_owned(),
            ring,
            buffer: Vec::new(),
        })
    }

    /// Whether frames come through the receive ring (`false`: one `recvfrom` each,
    /// because the ring could not be set up).
    pub fn uses_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// The interface this capture is bound to (`"any"` for all).
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// A handle for reloading the filter and reading statistics from another thread.
    pub fn handle(&self) -> CaptureHandle {
        CaptureHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Blocks (in `poll` when the ring has nothing ready, after a 1-ms nap if the
    /// last wake-up brought a flood; or in `recvfrom`; never a polling loop) until the next packet the filter accepts and the parser
    /// understands; frames that fail to parse are skipped and counted.
    /// Not an `Iterator`: the packet borrows the capture's ring (or buffer) until the
    /// next call.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Captured<'_>, CaptureError> {
        loop {
            if let Some((at, layout)) = self.next_layout(0)? {
                return Ok(layout.view(self.frame(&at)));
            }
        }
    }

    /// Like [`Capture::next`] but never blocks: `Ok(None)` when nothing is queued.
    /// For event loops that poll the socket themselves (see the `AsFd` impl: it turns
    /// readable when a frame is handed over).
    pub fn try_next(&mut self) -> Result<Option<Captured<'_>>, CaptureError> {
        let next = self.next_layout(libc::MSG_DONTWAIT)?;
        Ok(next.map(|(at, layout)| layout.view(self.frame(&at))))
    }

    /// The bytes of a frame `receive` found.
    fn frame(&self, at: &Place) -> &[u8] {
        match (at, &self.ring) {
            (Place::Ring(at), Some(ring)) => ring.bytes(at.clone()),
            (Place::Buffer(at), _) => self.buffer.get(at.clone()).unwrap_or_default(),
            (Place::Ring(_), None) => &[],
        }
    }

    /// Reads until a frame parses (`Some`: where it is and its layout) or, with
    /// `MSG_DONTWAIT`, until nothing is queued (`None`).
    fn next_layout(&mut self, flags: c_int) -> Result<Option<(Place, FrameLayout)>, CaptureError> {
        loop {
            match self.receive(flags)? {
                Received::Nothing => return Ok(None),
                Received::Skipped => {}
                Received::Frame(at) => match locate(self.frame(&at)) {
                    Some(layout) => {
                        self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                        return Ok(Some((at, layout)));
                    }
                    None => {
                        self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                },
            }
        }
    }

    /// Finds the next frame: from the ring (waiting only when the next slot is not
    /// ready, unless `MSG_DONTWAIT`; a frame longer than a slot with one `recvfrom`),
    /// else with `recvfrom`.
    fn receive(&mut self, flags: c_int) -> Result<Received, CaptureError> {
        let Some(ring) = &mut self.ring else {
            return self.receive_one(flags);
        };
        let outgoing = loop {
            match ring.next_frame() {
                RingFrame::Frame(at) => return Ok(Received::Frame(Place::Ring(at))),
                RingFrame::Skipped => {
                    self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(Received::Skipped);
                }
                RingFrame::Queued { outgoing } => break outgoing,
                RingFrame::Nothing if flags & libc::MSG_DONTWAIT != 0 => {
                    return Ok(Received::Nothing)
                }
                RingFrame::Nothing => {
                    ring.wait(self.shared.socket.as_fd())
                        .map_err(CaptureError::Receive)?;
                }
            }
        };
        // The kernel queued the whole frame before it handed the slot over: it is
        // there, so this never waits.
        match self.receive_one(libc::MSG_DONTWAIT)? {
            Received::Frame(at) if !outgoing => Ok(Received::Frame(at)),
            // Read and thrown away: an outgoing copy (the filter drops those, so it
            // never comes), or no copy queued (cannot happen: a slot marked
            // TP_STATUS_COPY has one), counted like any other cut frame.
            Received::Frame(_) | Received::Nothing => {
                self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(Received::Skipped)
            }
            Received::Skipped => Ok(Received::Skipped),
        }
    }

    /// Reads one frame into the buffer with `recvfrom`. Retries on EINTR.
    fn receive_one(&mut self, flags: c_int) -> Result<Received, CaptureError> {
        let fd = self.shared.socket.as_raw_fd();
        if self.buffer.is_empty() {
            // Zeroed and large: the allocator maps fresh pages that become resident
            // only where a frame is written.
            self.buffer = vec![0; SNAP_LEN as usize];
        }
        loop {
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut address_len = socklen_of::<libc::sockaddr_ll>();
            // SAFETY: `buffer` is valid for writes of `buffer.len()` bytes and
            // `address` for `address_len` bytes; both outlive the call. MSG_TRUNC makes
            // the kernel return the real frame length, never write past the buffer.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    self.buffer.as_mut_ptr().cast::<c_void>(),
                    self.buffer.len(),
                    flags | libc::MSG_TRUNC,
                    (&mut address as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
                    &mut address_len,
                )
            };
            let Ok(len) = usize::try_from(n) else {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock if flags & libc::MSG_DONTWAIT != 0 => {
                        return Ok(Received::Nothing)
                    }
                    _ => return Err(CaptureError::Receive(error)),
                }
            };
            if address.sll_pkttype == libc::PACKET_OUTGOING || len > self.buffer.len() {
                self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(Received::Skipped);
            }
            return Ok(Received::Frame(Place::Buffer(0..len)));
        }
    }

    /// See [`CaptureHandle::stats`].
    pub fn stats(&self) -> Result<PacketStats, CaptureError> {
        self.handle().stats()
    }

    /// See [`CaptureHandle::set_filter`].
    pub fn set_filter(&self, spec: &FilterSpec) -> Result<(), CaptureError> {
        self.handle().set_filter(spec)
    }
}

impl AsFd for Capture {
    /// The socket, for `poll`/`epoll` readiness (then read with [`Capture::try_next`]).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.socket.as_fd()
    }
}

impl CaptureHandle {
    /// Packet counters since open. The kernel's `PACKET_STATISTICS` reset on every
    /// read; the totals are kept here, so any number of callers may ask.
    pub fn stats(&self) -> Result<PacketStats, CaptureError> {
        let mut totals = self
            .shared
            .kernel_totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // SAFETY: tpacket_stats_v3 is plain data; all-zero is a valid value.
        let mut kernel: libc::tpacket_stats_v3 = unsafe { mem::zeroed() };
        // The kernel fills the first two fields (`tpacket_stats`: TPACKET_V1/V2 and
        // no ring); only a TPACKET_V3 ring would fill the rest.
        let mut len = socklen_of::<libc::tpacket_stats_v3>();
        // SAFETY: `kernel` is valid for writes of `len` bytes for the whole call.
        let rc = unsafe {
            libc::getsockopt(
                self.shared.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut kernel as *mut libc::tpacket_stats_v3).cast::<c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(CaptureError::Stats(io::Error::last_os_error()));
        }
        totals.0 += u64::from(kernel.tp_packets);
        totals.1 += u64::from(kernel.tp_drops);
        Ok(PacketStats {
            received: totals.0,
            dropped: totals.1,
            delivered: self.shared.delivered.load(Ordering::Relaxed),
            skipped: self.shared.skipped.load(Ordering::Relaxed),
        })
    }

    /// Replaces the filter (SIGHUP reload). The kernel swaps programs atomically:
    /// every frame is judged by either the old or the new one. Frames the old filter
    /// already queued are still delivered.
    pub fn set_filter(&self, spec: &FilterSpec) -> Result<(), CaptureError> {
        let program = capture_program(spec);
        attach_program(self.shared.socket.as_fd(), &program)
    }
}

/// Attaches a classic BPF `program` to any socket (`SO_ATTACH_FILTER`), replacing the
/// one it has. Public so tests can run [`compile_filter`]'s output in the kernel on
/// an ordinary socket pair.
pub fn attach_filter(socket: &impl AsFd, program: &[sock_filter]) -> Result<(), CaptureError> {
    attach_program(socket.as_fd(), program)
}

/// The full program for the capture socket: link-type guard, then the spec's filter.
fn capture_program(spec: &FilterSpec) -> Vec<sock_filter> {
    let mut program = link_type_guard();
    program.extend(compile_filter(spec));
    program
}

fn attach_program(socket: BorrowedFd<'_>, program: &[sock_filter]) -> Result<(), CaptureError> {
    let too_large = CaptureError::FilterTooLarge {
        len: program.len(),
        max: MAX_PROGRAM_LEN,
    };
    if program.len() > MAX_PROGRAM_LEN {
        return Err(too_large);
    }
    let len = u16::try_from(program.len()).map_err(|_| too_large)?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (it copies the program).
        filter: program.as_ptr().cast_mut(),
    };
    set_option(socket, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
        .map_err(CaptureError::AttachFilter)
}

/// How frames will be read from a socket being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Ring,
    Recvfrom,
}

/// A filtered, drained, not yet bound capture socket with its ring (`None` if `reader`
/// is `Recvfrom`, or if the ring could not be set up: then open another socket, this
/// one may hold a ring nobody reads).
fn open_socket(
    program: &[sock_filter],
    reader: Reader,
) -> Result<(OwnedFd, Option<Ring>), CaptureError> {
    // SAFETY: a plain syscall with integer arguments; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(CaptureError::Socket(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a freshly created, valid fd that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    attach_program(socket.as_fd(), program)?;
    drain(socket.as_fd()).map_err(CaptureError::Receive)?;
    // A limit, not an allocation: with the ring only frames longer than a slot are
    // queued there.
    set_receive_buffer(socket.as_fd())?;
    if reader == Reader::Recvfrom {
        return Ok((socket, None));
    }
    match Ring::set_up(socket.as_fd()) {
        Ok(ring) => Ok((socket, Some(ring))),
        Err(error) => {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                tracing::info!(
                    "no TPACKET_V2 capture ring ({error}): reading the capture socket \
                     with one recvfrom per packet"
                );
            });
            Ok((socket, None))
        }
    }
}

/// Discards anything queued before the filter was attached (with protocol 0 there
/// should be nothing; this keeps the guarantee even if that ever changes).
fn drain(socket: BorrowedFd<'_>) -> io::Result<()> {
    let mut scratch = [0u8; 1];
    loop {
        // SAFETY: `scratch` is valid for writes of its length; no address requested.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                scratch.as_mut_ptr().cast::<c_void>(),
                scratch.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock => Ok(()),
                io::ErrorKind::Interrupted => continue,
                _ => Err(error),
            };
        }
    }
}

fn set_receive_buffer(socket: BorrowedFd<'_>) -> Result<(), CaptureError> {
    let size = RECEIVE_BUFFER_BYTES;
    if set_option(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size).is_ok() {
        return Ok(());
    }
    set_option(socket, libc::SOL_SOCKET, libc::SO_RCVBUF, &size).map_err(|source| {
        CaptureError::SocketOption {
            option: "SO_RCVBUF",
            source,
        }
    })
}

fn bind(socket: BorrowedFd<'_>, ifindex: c_int) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
    address.sll_family = libc::AF_PACKET as libc::sa_family_t;
    address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    address.sll_ifindex = ifindex;
    // SAFETY: `address` is a valid sockaddr_ll of the length passed, alive for the call.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            socklen_of::<libc::sockaddr_ll>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The ifindex of `name`; 0 (all interfaces) for `"any"`.
fn interface_index(name: &str) -> Result<c_int, CaptureError> {
    if name == ANY_INTERFACE {
        return Ok(0);
    }
    let c_name = CString::new(name).map_err(|_| CaptureError::BadInterfaceName(name.to_owned()))?;
    // SAFETY: `c_name` is a valid NUL-terminated string alive for the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    match c_int::try_from(index) {
        Ok(index) if index > 0 => Ok(index),
        _ => Err(CaptureError::NoSuchInterface(name.to_owned())),
    }
}

fn set_option<T>(socket: BorrowedFd<'_>, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid, initialised T of the length passed, alive for the
    // call; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<c_void>(),
            socklen_of::<T>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `size_of::<T>()` as a `socklen_t` (all our structures are a few dozen bytes).
fn socklen_of<T>() -> socklen_t {
    socklen_t::try_from(mem::size_of::<T>()).unwrap_or(socklen_t::MAX)
}

/// The filter run by the real kernel on handcrafted frames: a Unix datagram socket
/// pair with the program attached to the receiving end (the kernel runs socket
/// filters on every socket type). No root needed.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod kernel_filter_tests {
    use super::*;
    use crate::capture::frame::craft::*;
    use std::os::unix::net::UnixDatagram;

    const SPA: u16 = 62210;
    const KNOCK_TCP: u16 = 7000;
    const KNOCK_UDP: u16 = 7100;

    struct Kernel {
        sender: UnixDatagram,
        receiver: UnixDatagram,
    }

    impl Kernel {
        fn with(spec: &FilterSpec) -> Kernel {
            let (sender, receiver) = UnixDatagram::pair().expect("socketpair");
            receiver.set_nonblocking(true).expect("nonblocking");
            attach_filter(&receiver, &compile_filter(spec)).expect("kernel accepts filter");
            Kernel { sender, receiver }
        }

        /// Whether the kernel's filter lets `frame` through (whole).
        fn accepts(&self, frame: &[u8]) -> bool {
            self.sender.send(frame).expect("send to socket pair");
            let mut buffer = vec![0u8; 70_000];
            match self.receiver.recv(&mut buffer) {
                Ok(len) => {
                    assert_eq!(&buffer[..len], frame, "accepted frames are kept whole");
                    true
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
                Err(error) => panic!("recv: {error}"),
            }
        }
    }

    fn spec() -> FilterSpec {
        FilterSpec {
            spa_udp_port: Some(SPA),
            knock_tcp_ports: vec![KNOCK_TCP, 20000, 20001, 20002],
            knock_udp_ports: vec![KNOCK_UDP],
            knock_tcp_any_flags: false,
        }
    }

    fn v4_udp(dst_port: u16, flags_fragment: u16, options: &[u8], vlan: Option<u16>) -> Vec<u8> {
        let segment = udp(40000, dst_port, &[7; 100]);
        ipv4(
            CLIENT4,
            SERVER4,
            UDP,
            flags_fragment,
            options,
            &segment,
            vlan,
        )
    }

    #[test]
    fn udp_to_the_spa_port_is_accepted_on_v4_and_v6() {
        let kernel = Kernel::with(&spec());
        assert!(kernel.accepts(&v4_udp(SPA, DONT_FRAGMENT, &[], None)));
        let v6 = ipv6(CLIENT6, SERVER6, UDP, &udp(40000, SPA, &[7; 100]));
        assert!(kernel.accepts(&v6));
    }

    #[test]
    fn udp_to_other_ports_is_rejected() {
        let kernel = Kernel::with(&spec());
        for port in [SPA - 1, SPA + 1, KNOCK_TCP, 53, 0] {
            assert!(!kernel.accepts(&v4_udp(port, 0, &[], None)), "port {port}");
            let v6 = ipv6(CLIENT6, SERVER6, UDP, &udp(1, port, b""));
            assert!(!kernel.accepts(&v6), "v6 port {port}");
        }
        assert!(kernel.accepts(&v4_udp(KNOCK_UDP, 0, &[], None)));
    }

    #[test]
    fn tcp_syn_to_a_knock_port_is_accepted_and_nothing_else_tcp() {
        let kernel = Kernel::with(&spec());
        let syn = |port| {
            ipv4(
                CLIENT4,
                SERVER4,
                TCP,
                0,
                &[],
                &tcp(5555, port, 0x02, 1, b""),
                None,
            )
        };
        assert!(kernel.accepts(&syn(KNOCK_TCP)));
        assert!(kernel.accepts(&syn(20001)), "inside a port run");
        assert!(!kernel.accepts(&syn(20003)), "just past a port run");
        assert!(!kernel.accepts(&syn(19999)), "just before a port run");
        assert!(!kernel.accepts(&syn(SPA)), "the SPA port is UDP only");
        let ack = ipv4(
            CLIENT4,
            SERVER4,
            TCP,
            0,
            &[],
            &tcp(5555, KNOCK_TCP, 0x10, 1, b""),
            None,
        );
        let syn_ack = ipv4(
            CLIENT4,
            SERVER4,
            TCP,
            0,
            &[],
            &tcp(5555, KNOCK_TCP, 0x12, 1, b""),
            None,
        );
        assert!(!kernel.accepts(&ack));
        assert!(!kernel.accepts(&syn_ack));
        let v6_syn = ipv6(CLIENT6, SERVER6, TCP, &tcp(5555, KNOCK_TCP, 0x02, 1, b""));
        assert!(kernel.accepts(&v6_syn));
    }

    #[test]
    fn doors_with_other_tcpflags_see_every_tcp_packet_to_their_ports() {
        let kernel = Kernel::with(&FilterSpec {
            knock_tcp_any_flags: true,
            ..spec()
        });
        let segment = |flags, port| {
            ipv4(
                CLIENT4,
                SERVER4,
                TCP,
                0,
                &[],
                &tcp(5555, port, flags, 1, b""),
                None,
            )
        };
        assert!(kernel.accepts(&segment(0x01, KNOCK_TCP)), "FIN");
        assert!(kernel.accepts(&segment(0x12, KNOCK_TCP)), "SYN+ACK");
        assert!(kernel.accepts(&segment(0x02, KNOCK_TCP)), "SYN");
        assert!(!kernel.accepts(&segment(0x01, 20003)), "not a knock port");
    }

    #[test]
    fn fragments_are_rejected() {
        let kernel = Kernel::with(&spec());
        assert!(
            !kernel.accepts(&v4_udp(SPA, MORE_FRAGMENTS, &[], None)),
            "first fragment"
        );
        assert!(
            !kernel.accepts(&v4_udp(SPA, 185, &[], None)),
            "later fragment"
        );
        assert!(!kernel.accepts(&v4_udp(SPA, DONT_FRAGMENT | 1, &[], None)));
        assert!(
            kernel.accepts(&v4_udp(SPA, DONT_FRAGMENT, &[], None)),
            "DF alone is fine"
        );
    }

    #[test]
    fn ipv4_options_are_skipped_using_ihl() {
        let kernel = Kernel::with(&spec());
        let router_alert = [0x94, 0x04, 0, 0];
        let frame = v4_udp(SPA, 0, &router_alert, None);
        assert!(kernel.accepts(&frame), "IHL 6");
        let parsed = parse(&frame);
        assert_eq!(parsed, Some((SPA, 100)));
        // Forty bytes of options (IHL 15) with a decoy "port" where IHL 5 would look.
        let mut options = [1u8; 40]; // NOPs
        options[2..4].copy_from_slice(&SPA.to_be_bytes());
        let other = v4_udp(SPA + 5, 0, &options, None);
        assert!(!kernel.accepts(&other), "IHL 15, real port elsewhere");
        assert!(kernel.accepts(&v4_udp(SPA, 0, &options, None)), "IHL 15");
    }

    #[test]
    fn one_vlan_tag_is_understood() {
        let kernel = Kernel::with(&spec());
        assert!(kernel.accepts(&v4_udp(SPA, 0, &[], Some(7))));
        assert!(!kernel.accepts(&v4_udp(SPA + 1, 0, &[], Some(7))));
    }

    #[test]
    fn other_protocols_and_extension_headers_are_rejected() {
        let kernel = Kernel::with(&spec());
        let segment = udp(40000, SPA, b"");
        assert!(
            !kernel.accepts(&ipv4(CLIENT4, SERVER4, 1, 0, &[], &segment, None)),
            "ICMP"
        );
        assert!(
            !kernel.accepts(&ipv6(CLIENT6, SERVER6, 0, &segment)),
            "hop-by-hop"
        );
        let mut arp = v4_udp(SPA, 0, &[], None);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(!kernel.accepts(&arp), "ARP ethertype");
        let mut short_ihl = v4_udp(SPA, 0, &[], None);
        short_ihl[14] = 0x44;
        assert!(!kernel.accepts(&short_ihl), "IHL 4");
    }

    #[test]
    fn an_empty_spec_accepts_nothing_and_reload_replaces_the_filter() {
        let kernel = Kernel::with(&FilterSpec::default());
        assert!(!kernel.accepts(&v4_udp(SPA, 0, &[], None)));
        attach_filter(
            &kernel.receiver,
            &compile_filter(&FilterSpec::spa_only(SPA)),
        )
        .expect("reload");
        assert!(kernel.accepts(&v4_udp(SPA, 0, &[], None)));
    }

    #[test]
    fn large_port_lists_compile_to_a_program_the_kernel_accepts() {
        let spec = FilterSpec {
            spa_udp_port: Some(SPA),
            knock_tcp_ports: (1000..4000).step_by(2).collect(), // 1500 separate ports
            knock_udp_ports: (10_000..60_000).collect(),        // one run
            knock_tcp_any_flags: false,
        };
        let kernel = Kernel::with(&spec);
        let syn = |port| {
            ipv4(
                CLIENT4,
                SERVER4,
                TCP,
                0,
                &[],
                &tcp(1, port, 0x02, 1, b""),
                None,
            )
        };
        assert!(kernel.accepts(&syn(1000)));
        assert!(kernel.accepts(&syn(3998)));
        assert!(!kernel.accepts(&syn(3999)));
        assert!(kernel.accepts(&v4_udp(59_999, 0, &[], None)));
        assert!(!kernel.accepts(&v4_udp(60_000, 0, &[], None)));
    }

    #[test]
    fn too_many_separate_ports_is_a_clear_error() {
        let spec = FilterSpec {
            spa_udp_port: None,
            knock_tcp_ports: (0..20_000).map(|p| p * 3).collect(),
            knock_udp_ports: vec![],
            knock_tcp_any_flags: false,
        };
        let (socket, _) = UnixDatagram::pair().unwrap();
        let error = attach_filter(&socket, &capture_program(&spec));
        assert!(
            matches!(error, Err(CaptureError::FilterTooLarge { .. })),
            "{error:?}"
        );
    }

    fn parse(frame: &[u8]) -> Option<(u16, usize)> {
        crate::capture::parse_frame(frame).map(|c| (c.transport.dst_port(), c.payload.len()))
    }
}
