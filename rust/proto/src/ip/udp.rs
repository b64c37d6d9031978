//! IPv4/UDP datagrams: a builder and a strict parser (RFC 768).
//!
//! Theory of operation: pure functions, no state. [`UdpSpec::build`] writes a complete
//! IPv4 packet (20-byte header, DF as asked) around an 8-byte UDP header and the
//! payload, with the IPv4 header checksum and the UDP checksum over the pseudo-header
//! (a computed 0 is sent as 0xFFFF, RFC 768). The mock ASA uses it to push large
//! inside UDP toward a client. [`parse_udp`] refuses what it cannot vouch for: an
//! unsound IPv4 header, another protocol, a fragment, fewer than 8 bytes, a UDP length
//! field that disagrees with the IPv4 payload length, a wrong checksum (0 = none is
//! accepted). It never panics.

use std::fmt;
use std::net::Ipv4Addr;

use super::checksum::{ipv4_transport_checksum, udp_checksum_v4};
use super::{parse_ipv4, IpError, Ipv4Header, Ipv4Spec, IPV4_MIN_HEADER_LEN, PROTO_UDP};

/// UDP header length.
pub const UDP_HEADER_LEN: usize = 8;

/// Why a packet is not a UDP datagram we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpError {
    Ip(IpError),
    NotUdp {
        protocol: u8,
    },
    Fragment,
    TooShort {
        len: usize,
    },
    /// The UDP length field disagrees with the bytes after the IPv4 header.
    BadLength {
        field: u16,
        len: usize,
    },
    BadChecksum,
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(e) => e.fmt(f),
            Self::NotUdp { protocol } => write!(f, "IP protocol {protocol} is not UDP"),
            Self::Fragment => write!(f, "IPv4 fragment (UDP is not reassembled)"),
            Self::TooShort { len } => {
                write!(
                    f,
                    "UDP datagram of {len} bytes is shorter than its 8-byte header"
                )
            }
            Self::BadLength { field, len } => write!(
                f,
                "UDP length {field} disagrees with the {len} bytes after the IPv4 header"
            ),
            Self::BadChecksum => write!(f, "UDP checksum mismatch"),
        }
    }
}

impl std::error::Error for UdpError {}

impl From<IpError> for UdpError {
    fn from(e: IpError) -> Self {
        Self::Ip(e)
    }
}

/// A parsed UDP datagram (zero-copy payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub ip: Ipv4Header,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

/// Strictly parse an IPv4/UDP packet (see the module docs).
pub fn parse_udp(pkt: &[u8]) -> Result<UdpDatagram<'_>, UdpError> {
    let (ip, body) = parse_ipv4(pkt)?;
    if ip.protocol != PROTO_UDP {
        return Err(UdpError::NotUdp {
            protocol: ip.protocol,
        });
    }
    if ip.is_fragment() {
        return Err(UdpError::Fragment);
    }
    let Some(&[sp0, sp1, dp0, dp1, l0, l1, c0, c1]) = body.get(..UDP_HEADER_LEN) else {
        return Err(UdpError::TooShort { len: body.len() });
    };
    let field = u16::from_be_bytes([l0, l1]);
    if usize::from(field) != body.len() {
        return Err(UdpError::BadLength {
            field,
            len: body.len(),
        });
    }
    if [c0, c1] != [0, 0] && ipv4_transport_checksum(ip.src, ip.dst, PROTO_UDP, body) != Some(0) {
        return Err(UdpError::BadChecksum);
    }
    Ok(UdpDatagram {
        ip,
        sport: u16::from_be_bytes([sp0, sp1]),
        dport: u16::from_be_bytes([dp0, dp1]),
        payload: body.get(UDP_HEADER_LEN..).unwrap_or_default(),
    })
}

/// Everything [`UdpSpec::build`] puts in the IPv4 and UDP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSpec {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl UdpSpec {
    /// A complete IPv4/UDP packet around `payload`, checksums right. Fails only when
    /// the packet would exceed 65535 bytes.
    pub fn build(&self, payload: &[u8]) -> Result<Vec<u8>, IpError> {
        let len = UDP_HEADER_LEN + payload.len();
        let too_long = IpError::TooLong {
            len: len + IPV4_MIN_HEADER_LEN,
        };
        if len + IPV4_MIN_HEADER_LEN > usize::from(u16::MAX) {
            return Err(too_long);
        }
        let udp_len = u16::try_from(len).map_err(|_| too_long)?;
        let mut seg = Vec::with_capacity(len);
        seg.extend_from_slice(&self.sport.to_be_bytes());
        seg.extend_from_slice(&self.dport.to_be_bytes());
        seg.extend_from_slice(&udp_len.to_be_bytes());
        seg.extend_from_slice(&[0, 0]);
        seg.extend_from_slice(payload);
        let csum = udp_checksum_v4(self.src, self.dst, &seg).unwrap_or(0);
        if let Some(field) = seg.get_mut(6..8) {
            field.copy_from_slice(&csum.to_be_bytes());
        }
        Ipv4Spec {
            src: self.src,
            dst: self.dst,
            protocol: PROTO_UDP,
            ttl: self.ttl,
            ident: self.ident,
            dont_fragment: self.dont_fragment,
        }
        .build(&seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::checksum::internet_checksum;
    use proptest::prelude::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn spec() -> UdpSpec {
        UdpSpec {
            src: A,
            dst: B,
            sport: 1000,
            dport: 2000,
            ttl: 64,
            ident: 0,
            dont_fragment: true,
        }
    }

    #[test]
    fn hand_computed_datagram() {
        // The checksum module's vector: 10.0.0.1:1000 -> 10.0.0.2:2000 "hi" = 0x77b6.
        let p = spec().build(b"hi").unwrap();
        assert_eq!(
            &p[20..],
            &[0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0a, 0x77, 0xb6, b'h', b'i']
        );
        assert_eq!(internet_checksum(&p[..20]), 0);
        assert_eq!(p[6], 0x40);
        let d = parse_udp(&p).unwrap();
        assert_eq!((d.sport, d.dport, d.payload), (1000, 2000, &b"hi"[..]));
    }

    #[test]
    fn refusals() {
        let p = spec().build(b"payload").unwrap();
        let mut bad = p.clone();
        *bad.last_mut().unwrap() ^= 4;
        assert_eq!(parse_udp(&bad), Err(UdpError::BadChecksum));
        let mut none = bad.clone();
        none[26] = 0;
        none[27] = 0;
        assert!(parse_udp(&none).is_ok(), "checksum 0 means none");
        let mut len = p.clone();
        len[25] += 1;
        assert!(matches!(
            parse_udp(&len),
            Err(UdpError::BadLength { field: 16, len: 15 })
        ));
        let tcp = Ipv4Spec {
            src: A,
            dst: B,
            protocol: 6,
            ttl: 1,
            ident: 0,
            dont_fragment: false,
        };
        assert_eq!(
            parse_udp(&tcp.build(&[0; 8]).unwrap()),
            Err(UdpError::NotUdp { protocol: 6 })
        );
        let short = Ipv4Spec {
            protocol: PROTO_UDP,
            ..tcp
        };
        assert_eq!(
            parse_udp(&short.build(&[0; 7]).unwrap()),
            Err(UdpError::TooShort { len: 7 })
        );
        assert!(matches!(parse_udp(&[0x45]), Err(UdpError::Ip(_))));
        let big = UdpSpec {
            dont_fragment: false,
            ..spec()
        }
        .build(&[1; 1400])
        .unwrap();
        let frags = crate::ip::fragment::fragment_ipv4(&big, 576).unwrap();
        assert_eq!(parse_udp(&frags[0]), Err(UdpError::Fragment));
        assert!(spec().build(&vec![0; 65_507]).is_ok());
        assert_eq!(
            spec().build(&vec![0; 65_508]),
            Err(IpError::TooLong { len: 65_536 })
        );
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_udp(&data);
        }

        #[test]
        fn round_trip(sport: u16, dport: u16, ttl: u8, ident: u16, df: bool,
                      payload in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let s = UdpSpec { src: A, dst: B, sport, dport, ttl, ident, dont_fragment: df };
            let p = s.build(&payload).unwrap();
            prop_assert_eq!(p.len(), 28 + payload.len());
            let d = parse_udp(&p).unwrap();
            prop_assert_eq!((d.sport, d.dport, d.payload), (sport, dport, &payload[..]));
            prop_assert_eq!((d.ip.ttl, d.ip.ident, d.ip.flags_df), (ttl, ident, df));
            // the checksum field is never 0 (0 would mean "none")
            prop_assert!(p[26] != 0 || p[27] != 0);
        }
    }
}
