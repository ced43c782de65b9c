//! Parsing a captured frame: Ethernet II (plus at most one 802.1Q tag) -> IPv4/IPv6 ->
//! UDP/TCP, through pnet_packet's header views. Pure and total: any byte string gives
//! `Some` parsed view or `None`, never a panic. Lengths are taken from the headers, so
//! Ethernet padding never leaks into a payload; IPv4 fragments, IPv6 extension headers
//! and inconsistent lengths give `None`.

use std::net::IpAddr;
use std::ops::Range;

use pnet::packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet::packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet::packet::ipv4::{Ipv4Flags, Ipv4Packet};
use pnet::packet::ipv6::Ipv6Packet;
use pnet::packet::tcp::TcpPacket;
use pnet::packet::udp::UdpPacket;
use pnet::packet::vlan::VlanPacket;
use spa_proto::knock::{self, KnockPacket};
use spa_proto::packet::canonical_ip;

/// The transport header of a captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UDP datagram; `payload_len` is the payload length the UDP header declares
    /// (always equal to `Captured::payload.len()`).
    Udp {
        src_port: u16,
        dst_port: u16,
        payload_len: usize,
    },
    /// A TCP segment; `flags` is the flags byte (`pnet::packet::tcp::TcpFlags`).
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
        seq: u32,
    },
}

impl Transport {
    pub fn src_port(&self) -> u16 {
        match *self {
            Transport::Udp { src_port, .. } | Transport::Tcp { src_port, .. } => src_port,
        }
    }

    pub fn dst_port(&self) -> u16 {
        match *self {
            Transport::Udp { dst_port, .. } | Transport::Tcp { dst_port, .. } => dst_port,
        }
    }
}

/// One parsed packet, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured<'a> {
    /// Source address; an IPv4-mapped IPv6 source (`::ffff:a.b.c.d`) is given as IPv4.
    pub src: IpAddr,
    /// Destination address, mapped the same way.
    pub dst: IpAddr,
    pub transport: Transport,
    /// The UDP payload or TCP segment data (no padding, no headers).
    pub payload: &'a [u8],
}

impl Captured<'_> {
    /// The packet as the knock state machine takes it (source and
    /// destination address, ports, TCP flags and sequence number), or `None`
    /// for a datagram to the SPA port `spa_port`, which is the verifier's.
    pub fn knock_packet(&self, spa_port: u16) -> Option<KnockPacket> {
        let (transport, tcp_flags, tcp_seq) = match self.transport {
            Transport::Udp { dst_port, .. } if dst_port == spa_port => return None,
            Transport::Udp { .. } => (knock::Transport::Udp, 0, 0),
            Transport::Tcp { flags, seq, .. } => (knock::Transport::Tcp, flags, seq),
        };
        Some(KnockPacket {
            src: self.src,
            dst: self.dst,
            transport,
            dst_port: self.transport.dst_port(),
            tcp_flags,
            src_port: self.transport.src_port(),
            tcp_seq,
        })
    }
}

/// Parses an Ethernet II frame (as AF_PACKET SOCK_RAW delivers it, also on `lo`).
pub fn parse_frame(frame: &[u8]) -> Option<Captured<'_>> {
    locate(frame).map(|layout| layout.view(frame))
}

/// A parsed packet with its payload as a range of the frame: no borrow, so the socket
/// can parse, decide and then hand out a view of its own buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameLayout {
    src: IpAddr,
    dst: IpAddr,
    transport: Transport,
    payload: Range<usize>,
}

impl FrameLayout {
    /// The view of `frame`, which must be the frame `locate` was given.
    pub(crate) fn view<'a>(&self, frame: &'a [u8]) -> Captured<'a> {
        let payload = frame.get(self.payload.clone());
        debug_assert!(payload.is_some(), "layout used on another frame");
        Captured {
            src: self.src,
            dst: self.dst,
            transport: self.transport,
            payload: payload.unwrap_or_default(),
        }
    }
}

/// Finds the addresses, transport header and payload range of `frame`.
pub(crate) fn locate(frame: &[u8]) -> Option<FrameLayout> {
    let ethernet = EthernetPacket::new(frame)?;
    let mut l3 = EthernetPacket::minimum_packet_size();
    let mut ethertype = ethernet.get_ethertype();
    if ethertype == EtherTypes::Vlan {
        let tag = VlanPacket::new(frame.get(l3..)?)?;
        ethertype = tag.get_ethertype();
        l3 += VlanPacket::minimum_packet_size();
    }
    locate_ip(frame, l3, ethertype)
}

fn locate_ip(frame: &[u8], l3: usize, ethertype: EtherType) -> Option<FrameLayout> {
    let packet = frame.get(l3..)?;
    let (src, dst, protocol, l4) = match ethertype {
        EtherTypes::Ipv4 => {
            let ip = Ipv4Packet::new(packet)?;
            let header_len = usize::from(ip.get_header_length()) * 4;
            let total_len = usize::from(ip.get_total_length());
            let fragment =
                ip.get_flags() & Ipv4Flags::MoreFragments != 0 || ip.get_fragment_offset() != 0;
            if ip.get_version() != 4
                || header_len < Ipv4Packet::minimum_packet_size()
                || total_len < header_len
                || fragment
            {
                return None;
            }
            let l4 = l3 + header_len..l3 + total_len;
            let (src, dst) = (ip.get_source().into(), ip.get_destination().into());
            (src, dst, ip.get_next_level_protocol(), l4)
        }
        EtherTypes::Ipv6 => {
            let ip = Ipv6Packet::new(packet)?;
            if ip.get_version() != 6 {
                return None;
            }
            let start = l3 + Ipv6Packet::minimum_packet_size();
            let l4 = start..start + usize::from(ip.get_payload_length());
            let (src, dst) = (ip.get_source().into(), ip.get_destination().into());
            (src, dst, ip.get_next_header(), l4)
        }
        _ => return None,
    };
    let segment = frame.get(l4.clone())?;
    let (transport, payload) = locate_transport(segment, protocol)?;
    Some(FrameLayout {
        src: canonical_ip(src),
        dst: canonical_ip(dst),
        transport,
        payload: l4.start + payload.start..l4.start + payload.end,
    })
}

/// The transport header of `segment` and its payload range within `segment`.
fn locate_transport(
    segment: &[u8],
    protocol: IpNextHeaderProtocol,
) -> Option<(Transport, Range<usize>)> {
    match protocol {
        IpNextHeaderProtocols::Udp => {
            let udp = UdpPacket::new(segment)?;
            let header_len = UdpPacket::minimum_packet_size();
            let udp_len = usize::from(udp.get_length());
            if udp_len < header_len || udp_len > segment.len() {
                return None;
            }
            let transport = Transport::Udp {
                src_port: udp.get_source(),
                dst_port: udp.get_destination(),
                payload_len: udp_len - header_len,
            };
            Some((transport, header_len..udp_len))
        }
        IpNextHeaderProtocols::Tcp => {
            let tcp = TcpPacket::new(segment)?;
            let header_len = usize::from(tcp.get_data_offset()) * 4;
            if header_len < TcpPacket::minimum_packet_size() || header_len > segment.len() {
                return None;
            }
            let transport = Transport::Tcp {
                src_port: tcp.get_source(),
                dst_port: tcp.get_destination(),
                flags: tcp.get_flags(),
                seq: tcp.get_sequence(),
            };
            Some((transport, header_len..segment.len()))
        }
        _ => None,
    }
}

/// Handcrafted frames, shared by the unit tests here and the kernel-filter tests in
/// `socket.rs`.
#[cfg(test)]
pub(crate) mod craft {
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub const PLAIN_MAC: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

    fn ethernet(ethertype: u16, vlan: Option<u16>, l3: &[u8]) -> Vec<u8> {
        let mut frame = PLAIN_MAC.to_vec();
        if let Some(id) = vlan {
            frame.extend_from_slice(&0x8100u16.to_be_bytes());
            frame.extend_from_slice(&id.to_be_bytes());
        }
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(l3);
        frame
    }

    pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut segment = Vec::new();
        segment.extend_from_slice(&src_port.to_be_bytes());
        segment.extend_from_slice(&dst_port.to_be_bytes());
        let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
        segment.extend_from_slice(&len.to_be_bytes());
        segment.extend_from_slice(&[0, 0]); // checksum: none
        segment.extend_from_slice(payload);
        segment
    }

    pub fn tcp(src_port: u16, dst_port: u16, flags: u8, seq: u32, data: &[u8]) -> Vec<u8> {
        let mut segment = Vec::new();
        segment.extend_from_slice(&src_port.to_be_bytes());
        segment.extend_from_slice(&dst_port.to_be_bytes());
        segment.extend_from_slice(&seq.to_be_bytes());
        segment.extend_from_slice(&0u32.to_be_bytes()); // ack
        segment.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        segment.extend_from_slice(data);
        segment
    }

    /// IPv4 in Ethernet; `options` are 4-byte words after the fixed header.
    pub fn ipv4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        flags_fragment: u16,
        options: &[u8],
        segment: &[u8],
        vlan: Option<u16>,
    ) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0, "options are whole words");
        let header_len = 20 + options.len();
        let total = u16::try_from(header_len + segment.len()).unwrap_or(u16::MAX);
        let mut ip = vec![0x40 | (header_len / 4) as u8, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34]);
        ip.extend_from_slice(&flags_fragment.to_be_bytes());
        ip.extend_from_slice(&[64, protocol, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(options);
        ip.extend_from_slice(segment);
        ethernet(0x0800, vlan, &ip)
    }

    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, segment: &[u8]) -> Vec<u8> {
        let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&len.to_be_bytes());
        ip.extend_from_slice(&[next_header, 64]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(segment);
        ethernet(0x86dd, None, &ip)
    }

    pub const UDP: u8 = 17;
    pub const TCP: u8 = 6;
    pub const MORE_FRAGMENTS: u16 = 0x2000;
    pub const DONT_FRAGMENT: u16 = 0x4000;
    pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    pub const SERVER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
    pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
}

#[cfg(test)]
mod tests {
    use super::craft::*;
    use super::*;
    use std::net::Ipv6Addr;

    const SPA: u16 = 62210;

    #[test]
    fn knock_packets_carry_both_addresses_and_spa_datagrams_are_not_knocks() {
        let frame = ipv6(CLIENT6, SERVER6, TCP, &tcp(5555, 7000, 0x12, 99, b""));
        let knock = parse_frame(&frame).and_then(|c| c.knock_packet(SPA));
        assert_eq!(
            knock,
            Some(KnockPacket {
                src: CLIENT6.into(),
                dst: SERVER6.into(),
                transport: knock::Transport::Tcp,
                dst_port: 7000,
                tcp_flags: 0x12,
                src_port: 5555,
                tcp_seq: 99,
            })
        );
        let udp_knock = ipv4(
            CLIENT4,
            SERVER4,
            UDP,
            DONT_FRAGMENT,
            &[],
            &udp(1, 9000, b""),
            None,
        );
        let knock = parse_frame(&udp_knock).and_then(|c| c.knock_packet(SPA));
        assert_eq!(
            knock.map(|k| (k.dst, k.transport)),
            Some((SERVER4.into(), knock::Transport::Udp))
        );
        let spa = ipv4(
            CLIENT4,
            SERVER4,
            UDP,
            DONT_FRAGMENT,
            &[],
            &udp(1, SPA, b"x"),
            None,
        );
        assert_eq!(parse_frame(&spa).and_then(|c| c.knock_packet(SPA)), None);
    }

    #[test]
    fn udp_over_ipv4() {
        let frame = ipv4(
            CLIENT4,
            SERVER4,
            UDP,
            DONT_FRAGMENT,
            &[],
            &udp(40000, SPA, b"hello"),
            None,
        );
        let captured = parse_frame(&frame);
        assert_eq!(
            captured,
            Some(Captured {
                src: CLIENT4.into(),
                dst: SERVER4.into(),
                transport: Transport::Udp {
                    src_port: 40000,
                    dst_port: SPA,
                    payload_len: 5
                },
                payload: b"hello",
            })
        );
    }

    #[test]
    fn ipv4_options_move_the_udp_header() {
        let options = [0x94, 0x04, 0, 0]; // router alert: IHL 6
        let frame = ipv4(CLIENT4, SERVER4, UDP, 0, &options, &udp(1, SPA, b"x"), None);
        let captured = parse_frame(&frame).map(|c| (c.transport.dst_port(), c.payload));
        assert_eq!(captured, Some((SPA, &b"x"[..])));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut frame = ipv4(CLIENT4, SERVER4, UDP, 0, &[], &udp(1, SPA, b"ab"), None);
        frame.resize(60, 0xee); // minimum Ethernet frame
        assert_eq!(parse_frame(&frame).map(|c| c.payload), Some(&b"ab"[..]));
    }

    #[test]
    fn tcp_syn_over_ipv6() {
        let frame = ipv6(CLIENT6, SERVER6, TCP, &tcp(5555, 7000, 0x02, 99, b""));
        let captured = parse_frame(&frame);
        assert_eq!(
            captured,
            Some(Captured {
                src: CLIENT6.into(),
                dst: SERVER6.into(),
                transport: Transport::Tcp {
                    src_port: 5555,
                    dst_port: 7000,
                    flags: 0x02,
                    seq: 99
                },
                payload: b"",
            })
        );
    }

    #[test]
    fn ipv4_mapped_source_is_reported_as_ipv4() {
        let mapped = CLIENT4.to_ipv6_mapped();
        let frame = ipv6(mapped, SERVER6, UDP, &udp(1, SPA, b"p"));
        assert_eq!(parse_frame(&frame).map(|c| c.src), Some(CLIENT4.into()));
    }

    #[test]
    fn one_vlan_tag_is_skipped() {
        let frame = ipv4(CLIENT4, SERVER4, UDP, 0, &[], &udp(1, SPA, b"v"), Some(42));
        assert_eq!(parse_frame(&frame).map(|c| c.payload), Some(&b"v"[..]));
    }

    #[test]
    fn fragments_and_other_protocols_are_not_parsed() {
        let segment = udp(1, SPA, b"f");
        let first = ipv4(CLIENT4, SERVER4, UDP, MORE_FRAGMENTS, &[], &segment, None);
        let later = ipv4(CLIENT4, SERVER4, UDP, 3, &[], &segment, None);
        let icmp = ipv4(CLIENT4, SERVER4, 1, 0, &[], &segment, None);
        let hop_by_hop = ipv6(CLIENT6, SERVER6, 0, &segment);
        for frame in [first, later, icmp, hop_by_hop] {
            assert_eq!(parse_frame(&frame), None);
        }
    }

    #[test]
    fn inconsistent_lengths_are_not_parsed() {
        let good = ipv4(CLIENT4, SERVER4, UDP, 0, &[], &udp(1, SPA, b"abc"), None);
        // Frame cut short of the IP total length.
        assert_eq!(parse_frame(&good[..good.len() - 1]), None);
        // UDP length larger than the IP payload.
        let mut long_udp = good.clone();
        long_udp[14 + 20 + 5] += 1;
        assert_eq!(parse_frame(&long_udp), None);
        // IHL 4 (shorter than the fixed header).
        let mut short_ihl = good.clone();
        short_ihl[14] = 0x44;
        assert_eq!(parse_frame(&short_ihl), None);
        // Wrong IP version inside an IPv4 ethertype.
        let mut wrong_version = good;
        wrong_version[14] = 0x65;
        assert_eq!(parse_frame(&wrong_version), None);
        // TCP data offset past the segment end.
        let mut tcp_frame = ipv6(
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
            TCP,
            &tcp(1, 2, 2, 0, b""),
        );
        tcp_frame[14 + 40 + 12] = 0xf0;
        assert_eq!(parse_frame(&tcp_frame), None);
    }

    #[test]
    fn no_byte_string_panics() {
        let frame = ipv4(
            CLIENT4,
            SERVER4,
            UDP,
            0,
            &[4; 8],
            &udp(1, SPA, b"abcd"),
            Some(1),
        );
        for len in 0..=frame.len() {
            let _ = parse_frame(&frame[..len]);
        }
        for index in 0..frame.len() {
            for value in [0u8, 0x0f, 0x45, 0xff] {
                let mut mutated = frame.clone();
                mutated[index] = value;
                let _ = parse_frame(&mutated);
            }
        }
    }
}
