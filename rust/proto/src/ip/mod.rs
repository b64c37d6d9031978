//! Minimal, strict IPv4 handling for the in-process virtual adapter.
//!
//! [`parse_ipv4`] is a zero-copy view of an IPv4 packet received from the
//! tunnel.  It never panics and refuses anything it cannot vouch for: wrong
//! version, IHL below 5, a header or total length that does not fit the bytes
//! received, or a bad header checksum.  The returned payload is exactly
//! `total_len - header_len` bytes; link-layer padding beyond `total_len` is
//! ignored.  Options are skipped, not interpreted.
//!
//! [`parse_ipv4_quote`] is the lenient variant for the truncated copy of an
//! original datagram quoted inside an ICMP error: the quote may end before
//! `total_len`, and its checksum is not checked (NATs often rewrite quoted
//! addresses without fixing it).
//!
//! [`Ipv4Spec::build`] emits a 20-byte header (no options) with a correct
//! checksum in front of a payload.  Fragments parse fine and
//! [`Ipv4Header::is_fragment`] reports them; [`reassembly`] puts them back together.
//!
//! Submodules: [`checksum`] (RFC 1071), [`fragment`] (RFC 791 fragmenting),
//! [`icmp`] (strict ICMP parser, RFC 1191 "fragmentation needed" builder),
//! [`reassembly`] (RFC 791 / RFC 815 sans-IO reassembler), [`tcp`] and [`udp`]
//! (segment / datagram builders and strict parsers), [`mtu`] (tunnel MTU arithmetic).

pub mod checksum;
pub mod fragment;
pub mod icmp;
pub mod mtu;
pub mod reassembly;
pub mod tcp;
pub mod udp;

use std::fmt;
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// The interesting fields of an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    /// Total length field (header + payload), in bytes.
    pub total_len: u16,
    /// Header length in bytes (IHL * 4), 20..=60.
    pub header_len: usize,
    pub ident: u16,
    pub flags_df: bool,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units, as on the wire.
    pub frag_offset: u16,
}

impl Ipv4Header {
    /// True for any fragment of a fragmented datagram (first, middle or last).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }
}

/// Why an IPv4 packet was rejected (or could not be built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpError {
    /// Zero bytes.
    Empty,
    /// Version nibble is not 4.
    NotIpv4 { version: u8 },
    /// Fewer bytes than the 20-byte minimum header.
    TooShort { len: usize },
    /// IHL below 5.
    BadHeaderLen { ihl: u8 },
    /// IHL says the header is longer than what was received.
    HeaderTruncated { header_len: usize, len: usize },
    /// Total length smaller than the header itself.
    TotalLenTooSmall { total_len: u16, header_len: usize },
    /// Total length larger than what was received.
    TotalLenExceeds { total_len: u16, len: usize },
    /// Header checksum does not verify.
    BadHeaderChecksum,
    /// Builder: header + payload do not fit the 16-bit total length.
    TooLong { len: usize },
}

impl fmt::Display for IpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty packet"),
            Self::NotIpv4 { version } => write!(f, "IP version {version} is not 4"),
            Self::TooShort { len } => write!(
                f,
                "{len} bytes is shorter than the {IPV4_MIN_HEADER_LEN}-byte IPv4 header"
            ),
            Self::BadHeaderLen { ihl } => {
                write!(
                    f,
                    "IPv4 header length field {ihl} is below the minimum of 5"
                )
            }
            Self::HeaderTruncated { header_len, len } => write!(
                f,
                "IPv4 header length {header_len} exceeds the {len} bytes received"
            ),
            Self::TotalLenTooSmall {
                total_len,
                header_len,
            } => write!(
                f,
                "IPv4 total length {total_len} is smaller than the {header_len}-byte header"
            ),
            Self::TotalLenExceeds { total_len, len } => write!(
                f,
                "IPv4 total length {total_len} exceeds the {len} bytes received"
            ),
            Self::BadHeaderChecksum => write!(f, "IPv4 header checksum mismatch"),
            Self::TooLong { len } => write!(
                f,
                "IPv4 packet of {len} bytes exceeds the 65535-byte maximum"
            ),
        }
    }
}

impl std::error::Error for IpError {}

/// The IP version nibble of a packet, if it has at least one byte.
pub fn ip_version(pkt: &[u8]) -> Option<u8> {
    pkt.first().map(|b| b >> 4)
}

/// Fixed 20-byte part of the header, with the header length validated
/// against the buffer.  Shared by the strict and lenient parsers.
fn parse_common(pkt: &[u8]) -> Result<Ipv4Header, IpError> {
    let Some(&vihl) = pkt.first() else {
        return Err(IpError::Empty);
    };
    let version = vihl >> 4;
    if version != 4 {
        return Err(IpError::NotIpv4 { version });
    }
    let Some(fixed) = pkt.get(..IPV4_MIN_HEADER_LEN) else {
        return Err(IpError::TooShort { len: pkt.len() });
    };
    let ihl = vihl & 0x0f;
    if ihl < 5 {
        return Err(IpError::BadHeaderLen { ihl });
    }
    let header_len = usize::from(ihl) * 4;
    if header_len > pkt.len() {
        return Err(IpError::HeaderTruncated {
            header_len,
            len: pkt.len(),
        });
    }
    let &[_, _, tl0, tl1, id0, id1, ff0, ff1, ttl, protocol, _, _, s0, s1, s2, s3, d0, d1, d2, d3] =
        fixed
    else {
        return Err(IpError::TooShort { len: pkt.len() });
    };
    let total_len = u16::from_be_bytes([tl0, tl1]);
    if usize::from(total_len) < header_len {
        return Err(IpError::TotalLenTooSmall {
            total_len,
            header_len,
        });
    }
    let flags_frag = u16::from_be_bytes([ff0, ff1]);
    Ok(Ipv4Header {
        src: Ipv4Addr::new(s0, s1, s2, s3),
        dst: Ipv4Addr::new(d0, d1, d2, d3),
        protocol,
        ttl,
        total_len,
        header_len,
        ident: u16::from_be_bytes([id0, id1]),
        flags_df: flags_frag & 0x4000 != 0,
        more_fragments: flags_frag & 0x2000 != 0,
        frag_offset: flags_frag & 0x1fff,
    })
}

/// Strictly parse an IPv4 packet; returns the header and the payload
/// (`header_len..total_len`).
pub fn parse_ipv4(pkt: &[u8]) -> Result<(Ipv4Header, &[u8]), IpError> {
    let hdr = parse_common(pkt)?;
    let total = usize::from(hdr.total_len);
    let payload = pkt
        .get(hdr.header_len..total)
        .ok_or(IpError::TotalLenExceeds {
            total_len: hdr.total_len,
            len: pkt.len(),
        })?;
    let header = pkt.get(..hdr.header_len).unwrap_or_default();
    if checksum::internet_checksum(header) != 0 {
        return Err(IpError::BadHeaderChecksum);
    }
    Ok((hdr, payload))
}

/// Leniently parse the IPv4 datagram quoted in an ICMP error: the quote may
/// be shorter than `total_len` and the header checksum is not verified.  The
/// returned payload is whatever follows the header, up to `total_len`.
pub fn parse_ipv4_quote(pkt: &[u8]) -> Result<(Ipv4Header, &[u8]), IpError> {
    let hdr = parse_common(pkt)?;
    let end = usize::from(hdr.total_len).min(pkt.len());
    let payload = pkt.get(hdr.header_len..end).unwrap_or_default();
    Ok((hdr, payload))
}

/// What to put in an option-less IPv4 header built by [`Ipv4Spec::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Spec {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl Ipv4Spec {
    /// A complete IPv4 packet: 20-byte header with a correct checksum,
    /// followed by `payload`.  Fails only if the result exceeds 65535 bytes.
    pub fn build(&self, payload: &[u8]) -> Result<Vec<u8>, IpError> {
        let len = IPV4_MIN_HEADER_LEN + payload.len();
        let total_len = u16::try_from(len).map_err(|_| IpError::TooLong { len })?;
        let mut pkt = Vec::with_capacity(len);
        pkt.push(0x45);
        pkt.push(0);
        pkt.extend_from_slice(&total_len.to_be_bytes());
        pkt.extend_from_slice(&self.ident.to_be_bytes());
        let flags: u16 = if self.dont_fragment { 0x4000 } else { 0 };
        pkt.extend_from_slice(&flags.to_be_bytes());
        pkt.push(self.ttl);
        pkt.push(self.protocol);
        pkt.extend_from_slice(&[0, 0]);
        pkt.extend_from_slice(&self.src.octets());
        pkt.extend_from_slice(&self.dst.octets());
        let csum = checksum::internet_checksum(&pkt);
        if let Some(field) = pkt.get_mut(10..12) {
            field.copy_from_slice(&csum.to_be_bytes());
        }
        pkt.extend_from_slice(payload);
        Ok(pkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 192.168.0.1 -> 192.168.0.199, UDP, TTL 64, DF, total length 115.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet() -> Vec<u8> {
        let mut p = HDR.to_vec();
        p.extend((0..95).map(|i| i as u8));
        p
    }

    #[test]
    fn parses_real_header() {
        let p = packet();
        let (h, payload) = parse_ipv4(&p).unwrap();
        assert_eq!(h.src, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(h.dst, Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(h.protocol, PROTO_UDP);
        assert_eq!(h.ttl, 64);
        assert_eq!(h.total_len, 115);
        assert_eq!(h.header_len, 20);
        assert_eq!(h.ident, 0);
        assert!(h.flags_df && !h.more_fragments && h.frag_offset == 0);
        assert!(!h.is_fragment());
        assert_eq!(payload.len(), 95);
        assert_eq!(payload.first(), Some(&0));
    }

    #[test]
    fn trailing_padding_ignored() {
        let mut p = packet();
        p.extend_from_slice(&[0xee; 7]);
        let (_, payload) = parse_ipv4(&p).unwrap();
        assert_eq!(payload.len(), 95);
    }

    #[test]
    fn rejections_with_reasons() {
        assert_eq!(parse_ipv4(&[]).unwrap_err(), IpError::Empty);
        let mut v6 = packet();
        v6[0] = 0x60;
        assert_eq!(
            parse_ipv4(&v6).unwrap_err(),
            IpError::NotIpv4 { version: 6 }
        );
        assert_eq!(
            parse_ipv4(&HDR[..10]).unwrap_err().to_string(),
            "10 bytes is shorter than the 20-byte IPv4 header"
        );
        let mut ihl = packet();
        ihl[0] = 0x44;
        assert_eq!(
            parse_ipv4(&ihl).unwrap_err(),
            IpError::BadHeaderLen { ihl: 4 }
        );
        let mut long_hdr = HDR.to_vec();
        long_hdr[0] = 0x4f;
        assert_eq!(
            parse_ipv4(&long_hdr).unwrap_err().to_string(),
            "IPv4 header length 60 exceeds the 20 bytes received"
        );
        let truncated = &packet()[..60];
        assert_eq!(
            parse_ipv4(truncated).unwrap_err().to_string(),
            "IPv4 total length 115 exceeds the 60 bytes received"
        );
        let mut small = packet();
        small[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            parse_ipv4(&small).unwrap_err(),
            IpError::TotalLenTooSmall {
                total_len: 10,
                header_len: 20
            }
        );
        let mut bad = packet();
        bad[8] = 63;
        assert_eq!(parse_ipv4(&bad).unwrap_err(), IpError::BadHeaderChecksum);
        assert_eq!(
            IpError::BadHeaderChecksum.to_string(),
            "IPv4 header checksum mismatch"
        );
    }

    #[test]
    fn quote_is_lenient() {
        let p = packet();
        let quote = &p[..28];
        assert!(parse_ipv4(quote).is_err());
        let (h, payload) = parse_ipv4_quote(quote).unwrap();
        assert_eq!(h.total_len, 115);
        assert_eq!(payload.len(), 8);
        let mut bad = quote.to_vec();
        bad[8] = 1; // TTL rewritten without checksum fix
        assert!(parse_ipv4_quote(&bad).is_ok());
    }

    #[test]
    fn build_round_trips_and_matches_reference() {
        let spec = Ipv4Spec {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            protocol: PROTO_UDP,
            ttl: 64,
            ident: 0,
            dont_fragment: true,
        };
        let p = spec.build(&[0u8; 95]).unwrap();
        assert_eq!(&p[..20], &HDR);
        let (h, payload) = parse_ipv4(&p).unwrap();
        assert_eq!(h.ident, 0);
        assert_eq!(payload.len(), 95);
        assert_eq!(
            spec.build(&vec![0; 65_516]).unwrap_err(),
            IpError::TooLong { len: 65_536 }
        );
    }

    #[test]
    fn fragment_fields() {
        let spec = Ipv4Spec {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: PROTO_ICMP,
            ttl: 5,
            ident: 0xbeef,
            dont_fragment: false,
        };
        let mut p = spec.build(&[1, 2, 3]).unwrap();
        p[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let (h, _) = parse_ipv4(&p).unwrap();
        assert!(!h.flags_df && h.more_fragments);
        assert_eq!(h.frag_offset, 185);
        assert_eq!(h.ident, 0xbeef);
        assert!(h.is_fragment());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse_ipv4(&data);
            let _ = parse_ipv4_quote(&data);
        }

        #[test]
        fn built_packets_parse(payload in proptest::collection::vec(any::<u8>(), 0..200), ttl: u8, ident: u16, df: bool) {
            let spec = Ipv4Spec {
                src: Ipv4Addr::new(10, 1, 2, 3),
                dst: Ipv4Addr::new(10, 3, 2, 1),
                protocol: PROTO_TCP,
                ttl,
                ident,
                dont_fragment: df,
            };
            let p = spec.build(&payload).unwrap();
            let (h, body) = parse_ipv4(&p).unwrap();
            prop_assert_eq!(body, &payload[..]);
            prop_assert_eq!((h.ttl, h.ident, h.flags_df, h.protocol), (ttl, ident, df, PROTO_TCP));
        }
    }
}
