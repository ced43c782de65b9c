//! IPv4 + UDP datagrams built by hand for the raw sender (IPPROTO_RAW implies
//! IP_HDRINCL): the harness chooses every source address itself. Offsets live
//! in [`field`]; nothing else indexes a header.

use std::net::Ipv4Addr;

/// Header field offsets (IPv4 without options, then UDP).
pub mod field {
    use std::ops::Range;
    /// Version (4) and IHL (5).
    pub const VERSION_IHL: usize = 0;
    /// Total length.
    pub const TOTAL_LEN: Range<usize> = 2..4;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol (17 = UDP).
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Range<usize> = 10..12;
    /// Source address.
    pub const SRC: Range<usize> = 12..16;
    /// Destination address.
    pub const DST: Range<usize> = 16..20;
    /// UDP source port.
    pub const UDP_SRC_PORT: Range<usize> = 20..22;
    /// UDP destination port.
    pub const UDP_DST_PORT: Range<usize> = 22..24;
    /// UDP length.
    pub const UDP_LEN: Range<usize> = 24..26;
    /// UDP checksum (0: none, legal for IPv4).
    pub const UDP_CHECKSUM: Range<usize> = 26..28;
    /// First payload byte.
    pub const PAYLOAD: usize = 28;
}

/// One UDP datagram from `src:src_port` to `dst:dst_port` carrying `payload`,
/// as the bytes of an IPv4 packet (header checksum filled; UDP checksum 0).
pub fn udp_datagram(
    src: Ipv4Addr,
    src_port: u16,
    dst: Ipv4Addr,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let total = field::PAYLOAD + payload.len();
    let mut p = vec![0u8; total];
    p[field::VERSION_IHL] = 0x45;
    p[field::TOTAL_LEN].copy_from_slice(&(total as u16).to_be_bytes());
    p[field::TTL] = 64;
    p[field::PROTOCOL] = 17;
    p[field::SRC].copy_from_slice(&src.octets());
    p[field::DST].copy_from_slice(&dst.octets());
    let sum = ipv4_checksum(&p[..field::UDP_SRC_PORT.start]);
    p[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    p[field::UDP_SRC_PORT].copy_from_slice(&src_port.to_be_bytes());
    p[field::UDP_DST_PORT].copy_from_slice(&dst_port.to_be_bytes());
    let udp_len = (total - field::UDP_SRC_PORT.start) as u16;
    p[field::UDP_LEN].copy_from_slice(&udp_len.to_be_bytes());
    p[field::PAYLOAD..].copy_from_slice(payload);
    p
}

/// The Internet checksum of a header (RFC 1071).
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_has_a_valid_ipv4_header_and_udp_lengths() {
        let p = udp_datagram(
            Ipv4Addr::new(198, 18, 0, 7),
            40000,
            Ipv4Addr::new(10, 211, 0, 1),
            62210,
            &[0xAB; 100],
        );
        assert_eq!(p.len(), 128);
        assert_eq!(&p[field::TOTAL_LEN], &128u16.to_be_bytes());
        assert_eq!(&p[field::UDP_LEN], &108u16.to_be_bytes());
        assert_eq!(&p[field::SRC], &[198, 18, 0, 7]);
        assert_eq!(&p[field::UDP_DST_PORT], &62210u16.to_be_bytes());
        // A header with its checksum in place sums to 0xffff, i.e. checks to 0.
        assert_eq!(ipv4_checksum(&p[..20]), 0);
        assert_eq!(p[field::PAYLOAD], 0xAB);
    }

    #[test]
    fn checksum_matches_the_rfc_1071_example() {
        // The classic example header from RFC 1071 discussions (checksum 0xb861).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&h), 0xb861);
    }
}
