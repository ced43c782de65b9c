//! Packet capture for spad: one AF_PACKET socket per interface (or one for all), an
//! in-kernel classic BPF filter so only candidate SPA/knock packets are ever queued, and
//! a parser that turns a captured frame into addresses, ports and payload.
//!
//! Owns: the filter program ([`filter`]), frame parsing ([`frame`]), the socket
//! ([`socket`]) and its receive ring (`ring`). Must never: send a single byte on the wire, decide whether a packet is
//! valid (that is spa-proto's job), or busy-wait.
//!
//! What the kernel filter accepts (everything else is dropped before it reaches us):
//! - frames on links with an Ethernet header (`ARPHRD_ETHER`, and `ARPHRD_LOOPBACK`
//!   whose header has zero MACs); links without one (tun, WireGuard, PPP) are not seen;
//! - not `PACKET_OUTGOING` (on `lo` each packet passes twice, once outgoing: it is
//!   delivered once);
//! - ethertype IPv4 or IPv6, optionally behind one 802.1Q tag still in the frame (the
//!   kernel normally strips the outer tag before packet sockets see it, so tagged
//!   traffic on a parent interface arrives untagged and is accepted as well);
//! - IPv4: protocol UDP or TCP, not a fragment (MF set or offset != 0: dropped
//!   entirely), header length from IHL (options allowed, IHL < 5 dropped);
//! - IPv6: next header UDP or TCP directly; packets with extension headers are dropped
//!   (no SPA client sends them);
//! - UDP: destination port is the SPA port or one of the UDP knock ports;
//! - TCP: SYN set and ACK clear, destination port one of the TCP knock ports.

pub mod filter;
pub mod frame;
mod ring;
pub mod socket;

pub use filter::{compile_filter, FilterSpec, MAX_PROGRAM_LEN, SNAP_LEN};
pub use frame::{parse_frame, Captured, Transport};
pub use socket::{attach_filter, Capture, CaptureError, CaptureHandle, PacketStats};
