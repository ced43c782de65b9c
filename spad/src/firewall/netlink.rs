//! A NETLINK_NETFILTER socket and the netlink framing spad needs for
//! nf_tables: message headers (`nlmsghdr` + `nfgenmsg`), attributes
//! (type-length-value, 4-byte aligned, nested ones flagged), batches
//! (`NFNL_MSG_BATCH_BEGIN` … `END`, one transaction), their acks, dumps,
//! and multicast events. The nf_tables message contents live in
//! `nft_wire`; this file knows nothing of tables or rules.
//!
//! A socket can be opened in another network namespace: a short-lived
//! thread enters the namespace (`setns`), opens the socket and hands it
//! back; the socket stays bound to that namespace for its whole life.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockname, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags,
    NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

/// `nlmsghdr` length.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `nfgenmsg` length: family (u8), version (u8), res_id (be16).
pub(crate) const NFGENMSG_LEN: usize = 4;

/// Netlink message types and flags (linux/netlink.h).
pub(crate) mod nlmsg {
    pub const ERROR: u16 = 2;
    pub const DONE: u16 = 3;
    pub const OVERRUN: u16 = 4;
    pub const F_REQUEST: u16 = 0x1;
    pub const F_ACK: u16 = 0x4;
    pub const F_DUMP: u16 = 0x300;
    pub const F_CREATE: u16 = 0x400;
    pub const F_APPEND: u16 = 0x800;
}

/// nfnetlink (linux/netfilter/nfnetlink.h).
pub(crate) mod nfnl {
    /// Opens a batch (a transaction for the subsystem in `res_id`).
    pub const MSG_BATCH_BEGIN: u16 = 16;
    /// Closes and commits a batch.
    pub const MSG_BATCH_END: u16 = 17;
    /// The nf_tables subsystem id (high byte of the message type).
    pub const SUBSYS_NFTABLES: u16 = 10;
    /// The multicast group of nf_tables change events.
    pub const GROUP_NFTABLES: u32 = 7;
}

/// `NLA_F_NESTED`: the attribute holds attributes.
const NLA_F_NESTED: u16 = 0x8000;
/// The attribute type without its flag bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Bytes a receive buffer holds: a dump part is at most one page-ish
/// (the kernel uses up to 32 KiB skbs), events are small.
const RECV_BUFFER: usize = 64 * 1024;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds netlink messages back to back into one buffer (a batch).
#[derive(Debug, Default)]
pub(crate) struct MsgWriter {
    buf: Vec<u8>,
    /// Where the message being written starts.
    msg_start: usize,
}

impl MsgWriter {
    pub fn new() -> MsgWriter {
        MsgWriter::default()
    }

    /// Starts a message: `nlmsghdr` (length filled by [`MsgWriter::end_msg`])
    /// and `nfgenmsg`.
    pub fn begin_msg(&mut self, msg_type: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        self.msg_start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    /// Ends the message begun last: writes its length.
    pub fn end_msg(&mut self) {
        let len = self.buf.len() - self.msg_start;
        self.write_u32_at(self.msg_start, len);
    }

    fn write_u32_at(&mut self, at: usize, value: usize) {
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        self.buf[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    }

    /// One attribute with raw bytes, padded to 4.
    pub fn attr(&mut self, ty: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, value: &str) {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(ty, &bytes);
    }

    /// A big-endian u32 attribute (nf_tables' NLA_U32 are network order).
    pub fn attr_be32(&mut self, ty: u16, value: u32) {
        self.attr(ty, &value.to_be_bytes());
    }

    /// A big-endian u64 attribute.
    pub fn attr_be64(&mut self, ty: u16, value: u64) {
        self.attr(ty, &value.to_be_bytes());
    }

    /// Opens a nested attribute; close it with [`MsgWriter::nest_end`].
    pub fn nest_begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Closes the nested attribute opened at `at`.
    pub fn nest_end(&mut self, at: usize) {
        let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Adds `flags` to the header of the message begun last.
    pub fn add_flags_to_last(&mut self, flags: u16) {
        let at = self.msg_start + 6;
        let old = u16::from_ne_bytes([self.buf[at], self.buf[at + 1]]);
        self.buf[at..at + 2].copy_from_slice(&(old | flags).to_ne_bytes());
    }

    /// Everything written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// One received netlink message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    pub msg_type: u16,
    /// `NLM_F_*` (read by the encoding tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub flags: u16,
    pub seq: u32,
    pub portid: u32,
    /// Everything after `nlmsghdr`.
    pub payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// For `NLMSG_ERROR`: the error number (0 is an ack) and the sequence
    /// number of the request it answers.
    pub fn error(&self) -> Option<(i32, u32)> {
        if self.msg_type != nlmsg::ERROR || self.payload.len() < 4 + NLMSG_HDRLEN {
            return None;
        }
        let code = i32::from_ne_bytes(self.payload[0..4].try_into().ok()?);
        let seq = u32::from_ne_bytes(self.payload[12..16].try_into().ok()?);
        Some((-code, seq))
    }

    /// The `nfgenmsg` family byte of an nfnetlink message.
    pub fn family(&self) -> Option<u8> {
        self.payload.first().copied()
    }

    /// The attributes after `nfgenmsg`.
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs(self.payload.get(NFGENMSG_LEN..).unwrap_or_default())
    }
}

/// Splits a receive buffer into messages; stops at a malformed length.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let word = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let len = word(0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let msg = Msg {
            msg_type: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: word(8),
            portid: word(12),
            payload: &buf[NLMSG_HDRLEN..len],
        };
        buf = buf.get(align4(len)..).unwrap_or_default();
        Some(msg)
    })
}

/// The attributes of a message or a nested attribute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs<'a>(&'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    /// (type without flags, value)
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.0;
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        if len < 4 || len > buf.len() {
            self.0 = &[];
            return None;
        }
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        self.0 = buf.get(align4(len)..).unwrap_or_default();
        Some((ty, &buf[4..len]))
    }
}

impl<'a> Attrs<'a> {
    /// The attributes of an nfnetlink message payload (after `nfgenmsg`).
    pub fn of_payload(payload: &'a [u8]) -> Attrs<'a> {
        Attrs(payload.get(NFGENMSG_LEN..).unwrap_or_default())
    }

    /// The value of attribute `ty`, if present.
    pub fn get(self, ty: u16) -> Option<&'a [u8]> {
        self.into_iter()
            .find(|(t, _): &(u16, &[u8])| *t == ty)
            .map(|(_, v)| v)
    }

    /// Attribute `ty` as a string (up to its NUL).
    pub fn string(self, ty: u16) -> Option<&'a str> {
        let value = self.get(ty)?;
        let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
        std::str::from_utf8(&value[..end]).ok()
    }
}

/// A NETLINK_NETFILTER socket.
pub(crate) struct NetlinkSocket {
    fd: OwnedFd,
    /// The port id the kernel gave this socket: events caused by its
    /// requests carry it.
    portid: u32,
    buf: Vec<u8>,
    /// The largest datagram the send buffer was sized for.
    send_capacity: usize,
}

impl std::fmt::Debug for NetlinkSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkSocket")
            .field("fd", &self.fd)
            .field("portid", &self.portid)
            .finish_non_exhaustive()
    }
}

impl NetlinkSocket {
    /// Opens a socket in spad's own namespace, or in the named one
    /// (`/run/netns/<netns>`, as `ip netns` makes them), subscribed to
    /// the multicast `groups` bitmask (0 for none).
    pub fn open(netns: Option<&str>, groups: u32) -> std::io::Result<NetlinkSocket> {
        let fd = match netns {
            None => open_fd(groups)?,
            Some(name) => {
                let path = format!("/run/netns/{name}");
                let file = File::open(&path).map_err(|err| {
                    std::io::Error::new(err.kind(), format!("cannot open {path}: {err}"))
                })?;
                open_fd_in_netns(&file, name, groups)?
            }
        };
        let addr: NetlinkAddr = getsockname(fd.as_raw_fd()).map_err(std::io::Error::from)?;
        Ok(NetlinkSocket {
            fd,
            portid: addr.pid(),
            buf: Vec::new(),
            send_capacity: 0,
        })
    }

    /// The port id the kernel gave this socket.
    pub fn portid(&self) -> u32 {
        self.portid
    }

    /// Sends `bytes` (one or more messages) in one datagram: a batch must
    /// reach the kernel whole, so the send buffer grows to fit it (the
    /// kernel refuses a datagram larger than the buffer with EMSGSIZE).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() > self.send_capacity {
            // The kernel doubles the value for its bookkeeping; ask for the
            // datagram size plus room. As root (CAP_NET_ADMIN) past
            // net.core.wmem_max, else up to it.
            let wanted = (bytes.len() + 64 * 1024).max(256 * 1024);
            if setsockopt(&self.fd, sockopt::SndBufForce, &wanted).is_err() {
                setsockopt(&self.fd, sockopt::SndBuf, &wanted)?;
            }
            self.send_capacity = wanted;
        }
        let sent = send(self.fd.as_raw_fd(), bytes, MsgFlags::empty())?;
        if sent != bytes.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("netlink sent {sent} of {} bytes", bytes.len()),
            ));
        }
        Ok(())
    }

    /// Receives one datagram (blocking, or not with `dont_wait`); `None`
    /// when nothing is waiting (`dont_wait`) or the receive timeout ran out.
    pub fn recv(&mut self, dont_wait: bool) -> std::io::Result<Option<&[u8]>> {
        if self.buf.is_empty() {
            // Allocated zeroed on first use: untouched pages cost no memory.
            self.buf = vec![0; RECV_BUFFER];
        }
        let flags = if dont_wait {
            MsgFlags::MSG_DONTWAIT
        } else {
            MsgFlags::empty()
        };
        loop {
            match recv(self.fd.as_raw_fd(), &mut self.buf, flags) {
                Ok(n) => return Ok(Some(&self.buf[..n])),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(None),
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Opens the socket on a short-lived thread that entered the namespace
/// `netns` (open as `file`); the socket stays in that namespace.
fn open_fd_in_netns(file: &File, netns: &str, groups: u32) -> std::io::Result<OwnedFd> {
    let in_netns = || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|err| {
            std::io::Error::other(format!("cannot enter network namespace {netns:?}: {err}"))
        })?;
        open_fd(groups)
    };
    std::thread::scope(|scope| {
        scope
            .spawn(in_netns)
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
    })
}

fn open_fd(groups: u32) -> std::io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    // A batch's acks and a dump's parts are queued before recv: room for
    // thousands of acks.
    setsockopt(&fd, sockopt::RcvBuf, &(1 << 20))?;
    // No request waits forever on a kernel that does not answer.
    if groups == 0 {
        let limit = TimeVal::from(libc::timeval {
            tv_sec: Duration::from_secs(5).as_secs() as libc::time_t,
            tv_usec: 0,
        });
        setsockopt(&fd, sockopt::ReceiveTimeout, &limit)?;
    }
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
    Ok(fd)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_nested_and_read_back() {
        let mut w = MsgWriter::new();
        w.begin_msg(0x0a00, nlmsg::F_REQUEST, 7, 1, 0);
        w.attr_str(1, "spad");
        let nest = w.nest_begin(4);
        w.attr_be32(1, 1);
        w.nest_end(nest);
        w.end_msg();
        let bytes = w.bytes();
        // 16 header + 4 nfgenmsg + 12 ("spad\0" padded) + 12 (nest of one u32)
        assert_eq!(bytes.len(), 44);
        assert_eq!(&bytes[0..4], &44u32.to_ne_bytes());
        assert_eq!(&bytes[20..32], b"\x09\x00\x01\x00spad\0\0\0\0");
        assert_eq!(&bytes[32..36], &[12, 0, 4, 0x80]);
        let msg = messages(bytes).next().unwrap();
        assert_eq!((msg.msg_type, msg.seq, msg.family()), (0x0a00, 7, Some(1)));
        assert_eq!(msg.attrs().string(1), Some("spad"));
        let nested = Attrs(msg.attrs().get(4).unwrap());
        assert_eq!(nested.get(1), Some(&[0, 0, 0, 1][..]));
        assert_eq!(messages(bytes).count(), 1);
    }

    #[test]
    fn truncated_input_ends_the_iterators_without_panicking() {
        assert_eq!(messages(&[1, 2, 3]).count(), 0);
        assert_eq!(
            messages(&[200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).count(),
            0
        );
        assert_eq!(Attrs(&[8, 0, 1, 0, 1]).count(), 0);
        assert_eq!(Attrs(&[2, 0, 1, 0]).count(), 0);
    }
}
