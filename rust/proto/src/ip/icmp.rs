//! ICMPv4 messages: a strict parser and the "fragmentation needed" builder.
//!
//! Theory of operation: pure functions, no state.
//!
//! * [`parse_icmp`] accepts an unfragmented IPv4 packet with protocol 1, at least the
//!   8-byte ICMP header and a correct ICMP checksum (RFC 792), and refuses anything else
//!   with a typed [`IcmpError`]. For the error types (destination unreachable, source
//!   quench, redirect, time exceeded, parameter problem) [`IcmpMessage::quote`] parses
//!   the quoted original datagram leniently ([`super::parse_ipv4_quote`]: the quote is
//!   cut short by design and NATs rewrite it without fixing its checksum) and exposes
//!   the first 8 transport bytes: ports for TCP/UDP, and the TCP sequence number that
//!   RFC 5927 §4.1 says a TCP must check against its send window.
//! * [`build_frag_needed`] writes the type 3 code 4 message a router sends when it must
//!   drop a DF packet that does not fit the next hop (RFC 792; RFC 1191 §4 puts the
//!   next-hop MTU in bytes 6–7): its data is the original IPv4 header plus the first 8
//!   bytes of the original data (RFC 792), it goes from `source` to the original
//!   sender, with DF clear and identification 0. It refuses what RFC 1122 §3.2.2 forbids:
//!   an original that is not a sound IPv4 packet, a non-initial fragment, an ICMP error
//!   (or an ICMP packet too short to tell), a source that is not one host (0.0.0.0,
//!   multicast, 255.255.255.255, class E) or a multicast / limited-broadcast destination.
//!
//! Nothing here panics on any input.

use std::fmt;
use std::net::Ipv4Addr;

use super::checksum::internet_checksum;
use super::{parse_ipv4, parse_ipv4_quote, IpError, Ipv4Header, Ipv4Spec, PROTO_ICMP};
use super::{PROTO_TCP, PROTO_UDP};

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
pub const ICMP_SOURCE_QUENCH: u8 = 4;
pub const ICMP_REDIRECT: u8 = 5;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// Destination unreachable code 4: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;
/// ICMP header length.
pub const ICMP_HEADER_LEN: usize = 8;
/// Transport bytes of the original datagram an ICMP error quotes (RFC 792).
pub const QUOTED_DATA_LEN: usize = 8;
/// TTL of the errors the ASA originates (model: Cisco devices use 255).
pub const DEFAULT_ERROR_TTL: u8 = 255;

/// Whether `icmp_type` is an ICMP error message type (RFC 1122 §3.2.2).
pub fn is_error_type(icmp_type: u8) -> bool {
    matches!(
        icmp_type,
        ICMP_DEST_UNREACHABLE
            | ICMP_SOURCE_QUENCH
            | ICMP_REDIRECT
            | ICMP_TIME_EXCEEDED
            | ICMP_PARAMETER_PROBLEM
    )
}

/// Why a packet is not an ICMP message we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcmpError {
    Ip(IpError),
    NotIcmp { protocol: u8 },
    Fragment,
    TooShort { len: usize },
    BadChecksum,
}

impl fmt::Display for IcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(e) => e.fmt(f),
            Self::NotIcmp { protocol } => write!(f, "IP protocol {protocol} is not ICMP"),
            Self::Fragment => write!(f, "IPv4 fragment (ICMP is not reassembled)"),
            Self::TooShort { len } => write!(
                f,
                "ICMP message of {len} bytes is shorter than its 8-byte header"
            ),
            Self::BadChecksum => write!(f, "ICMP checksum mismatch"),
        }
    }
}

impl std::error::Error for IcmpError {}

impl From<IpError> for IcmpError {
    fn from(e: IpError) -> Self {
        Self::Ip(e)
    }
}

/// A parsed ICMP message (zero-copy body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpMessage<'a> {
    pub ip: Ipv4Header,
    pub icmp_type: u8,
    pub code: u8,
    /// Bytes 4–7 of the header ("rest of header": ident/seq, next-hop MTU, ...).
    pub rest: [u8; 4],
    /// Everything after the 8-byte header.
    pub body: &'a [u8],
}

/// The original datagram quoted in an ICMP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpQuote<'a> {
    pub ip: Ipv4Header,
    /// The quoted transport bytes (at most up to the quoted total length).
    pub transport: &'a [u8],
}

impl IcmpQuote<'_> {
    /// Source and destination port of a quoted TCP or UDP header (first fragment only).
    pub fn ports(&self) -> Option<(u16, u16)> {
        if !matches!(self.ip.protocol, PROTO_TCP | PROTO_UDP) || self.ip.frag_offset != 0 {
            return None;
        }
        match self.transport.get(..4)? {
            &[a, b, c, d] => Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
            _ => None,
        }
    }

    /// The sequence number of a quoted TCP header (first fragment only).
    pub fn tcp_seq(&self) -> Option<u32> {
        if self.ip.protocol != PROTO_TCP || self.ip.frag_offset != 0 {
            return None;
        }
        match self.transport.get(4..8)? {
            &[a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }
}

impl<'a> IcmpMessage<'a> {
    /// Whether this is an error message (see [`is_error_type`]).
    pub fn is_error(&self) -> bool {
        is_error_type(self.icmp_type)
    }

    /// The next-hop MTU of a type 3 code 4 message, as sent (0 from a pre-RFC 1191
    /// router); `None` for any other message.
    pub fn next_hop_mtu(&self) -> Option<u16> {
        (self.icmp_type == ICMP_DEST_UNREACHABLE && self.code == CODE_FRAG_NEEDED).then(|| {
            let [_, _, hi, lo] = self.rest;
            u16::from_be_bytes([hi, lo])
        })
    }

    /// The quoted original datagram of an error message, if it parses leniently.
    pub fn quote(&self) -> Option<IcmpQuote<'a>> {
        if !self.is_error() {
            return None;
        }
        let (ip, transport) = parse_ipv4_quote(self.body).ok()?;
        Some(IcmpQuote { ip, transport })
    }
}

/// Strictly parse an IPv4/ICMP packet (see the module docs).
pub fn parse_icmp(pkt: &[u8]) -> Result<IcmpMessage<'_>, IcmpError> {
    let (ip, icmp) = parse_ipv4(pkt)?;
    if ip.protocol != PROTO_ICMP {
        return Err(IcmpError::NotIcmp {
            protocol: ip.protocol,
        });
    }
    if ip.is_fragment() {
        return Err(IcmpError::Fragment);
    }
    let &[icmp_type, code, _, _, r0, r1, r2, r3, ref body @ ..] = icmp else {
        return Err(IcmpError::TooShort { len: icmp.len() });
    };
    if internet_checksum(icmp) != 0 {
        return Err(IcmpError::BadChecksum);
    }
    Ok(IcmpMessage {
        ip,
        icmp_type,
        code,
        rest: [r0, r1, r2, r3],
        body,
    })
}

/// Why no ICMP error may be sent about a packet (RFC 1122 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoIcmpError {
    /// The original is not a sound IPv4 packet.
    Ip(IpError),
    /// The original is a fragment other than the first.
    NonInitialFragment,
    /// The original is an ICMP error message (or an ICMP packet without a type byte).
    AboutIcmpError,
    /// The original's source is not a single host, or its destination is multicast or
    /// the limited broadcast address.
    NotUnicast,
}

impl fmt::Display for NoIcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(e) => e.fmt(f),
            Self::NonInitialFragment => write!(f, "no ICMP error about a non-initial fragment"),
            Self::AboutIcmpError => write!(f, "no ICMP error about an ICMP error"),
            Self::NotUnicast => write!(
                f,
                "no ICMP error about a datagram from a non-host source or to a multicast/broadcast address"
            ),
        }
    }
}

impl std::error::Error for NoIcmpError {}

fn one_host(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.octets()[0] >= 240)
}

/// ICMP type 3 code 4 about `original` with next-hop MTU `mtu`, from `source` (see the
/// module docs for what is refused).
pub fn build_frag_needed(
    original: &[u8],
    mtu: u16,
    source: Ipv4Addr,
    ttl: u8,
) -> Result<Vec<u8>, NoIcmpError> {
    let (hdr, data) = parse_ipv4(original).map_err(NoIcmpError::Ip)?;
    if hdr.frag_offset != 0 {
        return Err(NoIcmpError::NonInitialFragment);
    }
    if hdr.protocol == PROTO_ICMP && data.first().map_or(true, |&t| is_error_type(t)) {
        return Err(NoIcmpError::AboutIcmpError);
    }
    if !one_host(hdr.src) || hdr.dst.is_multicast() || hdr.dst.is_broadcast() {
        return Err(NoIcmpError::NotUnicast);
    }
    let quote_len = hdr.header_len + data.len().min(QUOTED_DATA_LEN);
    let quote = original.get(..quote_len).unwrap_or_default();
    let mut msg = Vec::with_capacity(ICMP_HEADER_LEN + quote.len());
    msg.extend_from_slice(&[ICMP_DEST_UNREACHABLE, CODE_FRAG_NEEDED, 0, 0, 0, 0]);
    msg.extend_from_slice(&mtu.to_be_bytes());
    msg.extend_from_slice(quote);
    let csum = internet_checksum(&msg);
    if let Some(f) = msg.get_mut(2..4) {
        f.copy_from_slice(&csum.to_be_bytes());
    }
    Ipv4Spec {
        src: source,
        dst: hdr.src,
        protocol: PROTO_ICMP,
        ttl,
        ident: 0,
        dont_fragment: false,
    }
    .build(&msg)
    .map_err(NoIcmpError::Ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::tcp::{TcpSpec, TCP_ACK};
    use crate::ip::udp::UdpSpec;
    use proptest::prelude::*;

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 80);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 10, 10, 10);
    const ASA: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);

    fn big_segment(payload: usize) -> Vec<u8> {
        TcpSpec {
            seq: 0xdead_beef,
            ack: 9,
            flags: TCP_ACK,
            ident: 77,
            ..TcpSpec::new(SERVER, 80, CLIENT, 40000)
        }
        .build(&vec![b'y'; payload])
        .unwrap()
    }

    #[test]
    fn frag_needed_layout() {
        let original = big_segment(1378);
        let msg = build_frag_needed(&original, 1347, ASA, 255).unwrap();
        assert_eq!(msg.len(), 20 + 8 + 28);
        assert_eq!(internet_checksum(&msg[..20]), 0);
        assert_eq!((msg[8], msg[9], msg[6] & 0x40), (255, 1, 0));
        assert_eq!(&msg[4..6], &[0, 0]);
        assert_eq!(&msg[12..16], &ASA.octets());
        assert_eq!(&msg[16..20], &SERVER.octets());
        let icmp = &msg[20..];
        assert_eq!(&icmp[..2], &[3, 4]);
        assert_eq!(&icmp[4..8], &[0, 0, 0x05, 0x43]);
        assert_eq!(&icmp[8..], &original[..28]);
        assert_eq!(internet_checksum(icmp), 0);

        let m = parse_icmp(&msg).unwrap();
        assert_eq!((m.icmp_type, m.code, m.next_hop_mtu()), (3, 4, Some(1347)));
        assert_eq!(m.ip.src, ASA);
        let q = m.quote().unwrap();
        assert_eq!((q.ip.src, q.ip.dst, q.ip.protocol), (SERVER, CLIENT, 6));
        assert_eq!(q.ports(), Some((80, 40000)));
        assert_eq!(q.tcp_seq(), Some(0xdead_beef));
        assert_eq!(q.transport.len(), 8);
    }

    #[test]
    fn hand_computed_checksum() {
        // A 21-byte original: header + 1 byte, so the quote is the whole packet.
        let original = Ipv4Spec {
            src: Ipv4Addr::new(1, 2, 3, 4),
            dst: Ipv4Addr::new(5, 6, 7, 8),
            protocol: 17,
            ttl: 1,
            ident: 0,
            dont_fragment: true,
        }
        .build(&[0xab])
        .unwrap();
        // original header words: 4500+0015+0000+4000+0111+0102+0304+0506+0708 = 0x963a
        // -> checksum 0x69c5.
        assert_eq!(&original[10..12], &[0x69, 0xc5]);
        let msg = build_frag_needed(&original, 0x0100, ASA, 64).unwrap();
        // ICMP words: 0304 0000 0000 0100 + the 21 quoted bytes
        // (the header sums to 0xffff with its checksum, + ab00 = 0x1aaff -> 0xab00) = 0x0304+0x0100+0xab00 = 0xaf04 -> checksum 0x50fb.
        assert_eq!(&msg[22..24], &[0x50, 0xfb]);
        assert_eq!(msg.len(), 20 + 8 + 21);
    }

    #[test]
    fn refusals() {
        let original = big_segment(100);
        let mut later = original.clone();
        later[6] = 0x00;
        later[7] = 0x10;
        later[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&later[..20]);
        later[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            build_frag_needed(&later, 1000, ASA, 255),
            Err(NoIcmpError::NonInitialFragment)
        );
        let err = build_frag_needed(&original, 1000, ASA, 255).unwrap();
        assert_eq!(
            build_frag_needed(&err, 1000, ASA, 255),
            Err(NoIcmpError::AboutIcmpError)
        );
        assert!(matches!(
            build_frag_needed(b"junk", 1000, ASA, 255),
            Err(NoIcmpError::Ip(_))
        ));
        let empty_icmp = Ipv4Spec {
            src: SERVER,
            dst: CLIENT,
            protocol: PROTO_ICMP,
            ttl: 1,
            ident: 0,
            dont_fragment: true,
        }
        .build(&[])
        .unwrap();
        assert_eq!(
            build_frag_needed(&empty_icmp, 1000, ASA, 255),
            Err(NoIcmpError::AboutIcmpError)
        );
        for (src, dst) in [
            (Ipv4Addr::UNSPECIFIED, CLIENT),
            (Ipv4Addr::new(224, 0, 0, 1), CLIENT),
            (Ipv4Addr::new(250, 0, 0, 1), CLIENT),
            (SERVER, Ipv4Addr::BROADCAST),
            (SERVER, Ipv4Addr::new(239, 1, 1, 1)),
        ] {
            let p = UdpSpec {
                src,
                dst,
                sport: 1,
                dport: 2,
                ttl: 1,
                ident: 0,
                dont_fragment: true,
            }
            .build(&[0; 40])
            .unwrap();
            assert_eq!(
                build_frag_needed(&p, 1000, ASA, 255),
                Err(NoIcmpError::NotUnicast)
            );
        }
        // an echo request is not an error: allowed
        let echo = crate::traffic::probe::Prober::new(crate::traffic::probe::ProbeConfig {
            src: SERVER,
            dst: CLIENT,
            kind: crate::traffic::probe::ProbeKind::IcmpEcho { ident: 1 },
            payload_len: 1400,
            ttl: 64,
            dont_fragment: true,
        })
        .unwrap()
        .build(0)
        .1;
        let m = build_frag_needed(&echo, 1300, ASA, 255).unwrap();
        let q = parse_icmp(&m).unwrap().quote().unwrap();
        assert_eq!((q.ports(), q.tcp_seq()), (None, None));
    }

    #[test]
    fn parse_refusals() {
        let msg = build_frag_needed(&big_segment(10), 576, ASA, 255).unwrap();
        let mut bad = msg.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_icmp(&bad), Err(IcmpError::BadChecksum));
        assert_eq!(
            parse_icmp(&big_segment(10)),
            Err(IcmpError::NotIcmp { protocol: 6 })
        );
        let short = Ipv4Spec {
            src: SERVER,
            dst: CLIENT,
            protocol: PROTO_ICMP,
            ttl: 1,
            ident: 0,
            dont_fragment: true,
        }
        .build(&[8, 0, 0, 0])
        .unwrap();
        assert_eq!(parse_icmp(&short), Err(IcmpError::TooShort { len: 4 }));
        assert!(matches!(
            parse_icmp(&[]),
            Err(IcmpError::Ip(IpError::Empty))
        ));
        // an echo request parses but has no quote or MTU
        let mut echo = vec![8, 0, 0, 0, 0, 1, 0, 2];
        let c = internet_checksum(&echo);
        echo[2..4].copy_from_slice(&c.to_be_bytes());
        let p = Ipv4Spec {
            src: SERVER,
            dst: CLIENT,
            protocol: PROTO_ICMP,
            ttl: 1,
            ident: 0,
            dont_fragment: true,
        }
        .build(&echo)
        .unwrap();
        let m = parse_icmp(&p).unwrap();
        assert_eq!((m.icmp_type, m.next_hop_mtu(), m.quote()), (8, None, None));
        assert!(!m.is_error());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..120), mtu: u16) {
            if let Ok(m) = parse_icmp(&data) {
                let _ = m.next_hop_mtu();
                if let Some(q) = m.quote() {
                    let _ = (q.ports(), q.tcp_seq());
                }
            }
            let _ = build_frag_needed(&data, mtu, ASA, 255);
        }

        /// Random ICMP bodies with a right checksum reach the quote parser.
        #[test]
        fn arbitrary_error_body_never_panics(
            icmp_type in prop_oneof![Just(3u8), Just(11u8), any::<u8>()],
            body in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut icmp = vec![icmp_type, 4, 0, 0, 0, 0, 5, 0];
            icmp.extend_from_slice(&body);
            let c = internet_checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let p = Ipv4Spec { src: ASA, dst: SERVER, protocol: PROTO_ICMP, ttl: 1, ident: 0, dont_fragment: false }
                .build(&icmp)
                .unwrap();
            let m = parse_icmp(&p).unwrap();
            if let Some(q) = m.quote() {
                let _ = (q.ports(), q.tcp_seq());
            }
        }

        #[test]
        fn frag_needed_round_trip(payload in 0usize..3000, mtu: u16, seq: u32, sport: u16) {
            let original = TcpSpec { seq, ..TcpSpec::new(SERVER, sport, CLIENT, 80) }
                .build(&vec![1; payload])
                .unwrap();
            let msg = build_frag_needed(&original, mtu, ASA, 255).unwrap();
            let m = parse_icmp(&msg).unwrap();
            prop_assert_eq!(m.next_hop_mtu(), Some(mtu));
            prop_assert_eq!(m.ip.dst, SERVER);
            let q = m.quote().unwrap();
            prop_assert_eq!(q.ports(), Some((sport, 80)));
            prop_assert_eq!(q.tcp_seq(), Some(seq));
            prop_assert_eq!(m.body, &original[..28.min(original.len())]);
        }
    }
}
