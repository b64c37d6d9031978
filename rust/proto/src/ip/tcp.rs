//! IPv4/TCP segments: a builder and a strict parser (RFC 793 §3.1, RFC 9293 §3.1).
//!
//! Theory of operation: pure functions, no state. [`TcpSpec::build`] writes a complete
//! IPv4 packet — 20-byte IPv4 header (no options) and a TCP header carrying at most
//! one option, the MSS (kind 2, length 4; RFC 9293 §3.2) — with both checksums right:
//! the IPv4 header checksum and the TCP checksum over the pseudo-header (RFC 9293
//! §3.1). [`parse_tcp`] is its inverse for anything on the wire: it refuses, with a
//! typed [`TcpError`], every packet it cannot vouch for — an unsound IPv4 header
//! (see [`super::parse_ipv4`]), another protocol, a fragment (no reassembly here), a
//! segment shorter than 20 bytes or with a data offset outside `5..=len/4`, a wrong
//! TCP checksum, or a malformed option list. It never panics.
//!
//! Options are walked by the rules of RFC 9293 §3.1: kind 0 ends the list, kind 1 is
//! a one-byte no-op, every other kind has a length byte ≥ 2 that must fit; an MSS
//! option must have length 4. Unknown options are skipped. Only the MSS is reported.
//!
//! The flags byte (byte 13) is reported whole: FIN 0x01, SYN 0x02, RST 0x04,
//! PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80 (RFC 3168).

use std::fmt;
use std::net::Ipv4Addr;

use super::checksum::{ipv4_transport_checksum, Checksum};
use super::{parse_ipv4, IpError, Ipv4Header, Ipv4Spec, PROTO_TCP};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
/// TCP header without options.
pub const TCP_MIN_HEADER_LEN: usize = 20;
/// IPv4 + TCP headers without options: MSS = MTU − this (RFC 879, RFC 9293 §3.7.1).
pub const TCP_IP_OVERHEAD: usize = 40;
/// The MSS a sender must assume without an MSS option (RFC 9293 §3.7.1, RFC 1122).
pub const DEFAULT_MSS: u16 = 536;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// Why a packet is not a TCP segment we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpError {
    /// The IPv4 layer refused it.
    Ip(IpError),
    /// IPv4 protocol is not 6.
    NotTcp { protocol: u8 },
    /// A fragment: TCP is not parsed without reassembly.
    Fragment,
    /// Fewer than 20 bytes after the IPv4 header.
    TooShort { len: usize },
    /// Data offset below 5 words or beyond the segment.
    BadDataOffset { offset: usize, len: usize },
    /// The TCP checksum does not verify.
    BadChecksum,
    /// The option list is malformed (a length byte missing, < 2 or overrunning; an MSS
    /// option whose length is not 4).
    BadOptions,
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(e) => e.fmt(f),
            Self::NotTcp { protocol } => write!(f, "IP protocol {protocol} is not TCP"),
            Self::Fragment => write!(f, "IPv4 fragment (TCP is not reassembled)"),
            Self::TooShort { len } => {
                write!(
                    f,
                    "TCP segment of {len} bytes is shorter than its 20-byte header"
                )
            }
            Self::BadDataOffset { offset, len } => write!(
                f,
                "TCP data offset {offset} bytes is outside 20..={len} (the segment length)"
            ),
            Self::BadChecksum => write!(f, "TCP checksum mismatch"),
            Self::BadOptions => write!(f, "malformed TCP options"),
        }
    }
}

impl std::error::Error for TcpError {}

impl From<IpError> for TcpError {
    fn from(e: IpError) -> Self {
        Self::Ip(e)
    }
}

/// A parsed TCP segment (zero-copy payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub ip: Ipv4Header,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// Byte 13 of the header, all eight flags.
    pub flags: u8,
    pub window: u16,
    /// The MSS option, if present.
    pub mss: Option<u16>,
    pub payload: &'a [u8],
}

impl TcpSegment<'_> {
    /// Whether every flag of `mask` is set.
    pub fn has(&self, mask: u8) -> bool {
        self.flags & mask == mask
    }

    /// Sequence space the segment occupies: payload + 1 for SYN + 1 for FIN.
    pub fn seq_len(&self) -> u64 {
        self.payload.len() as u64
            + u64::from(self.flags & TCP_SYN != 0)
            + u64::from(self.flags & TCP_FIN != 0)
    }
}

/// Walk a TCP option list; `Ok(Some(mss))` if it has an MSS option.
pub fn parse_tcp_options(opts: &[u8]) -> Result<Option<u16>, TcpError> {
    let mut mss = None;
    let mut rest = opts;
    while let Some((&kind, tail)) = rest.split_first() {
        match kind {
            OPT_END => break,
            OPT_NOP => rest = tail,
            _ => {
                let len = usize::from(*tail.first().ok_or(TcpError::BadOptions)?);
                if len < 2 {
                    return Err(TcpError::BadOptions);
                }
                let opt = rest.get(..len).ok_or(TcpError::BadOptions)?;
                if kind == OPT_MSS {
                    let &[_, 4, hi, lo] = opt else {
                        return Err(TcpError::BadOptions);
                    };
                    mss = Some(u16::from_be_bytes([hi, lo]));
                }
                rest = rest.get(len..).unwrap_or_default();
            }
        }
    }
    Ok(mss)
}

/// Strictly parse an IPv4/TCP packet (see the module docs for what is refused).
pub fn parse_tcp(pkt: &[u8]) -> Result<TcpSegment<'_>, TcpError> {
    let (ip, body) = parse_ipv4(pkt)?;
    if ip.protocol != PROTO_TCP {
        return Err(TcpError::NotTcp {
            protocol: ip.protocol,
        });
    }
    if ip.is_fragment() {
        return Err(TcpError::Fragment);
    }
    let Some(fixed) = body.get(..TCP_MIN_HEADER_LEN) else {
        return Err(TcpError::TooShort { len: body.len() });
    };
    let &[sp0, sp1, dp0, dp1, s0, s1, s2, s3, a0, a1, a2, a3, off, flags, w0, w1, _, _, _, _] =
        fixed
    else {
        return Err(TcpError::TooShort { len: body.len() });
    };
    let offset = usize::from(off >> 4) * 4;
    if offset < TCP_MIN_HEADER_LEN || offset > body.len() {
        return Err(TcpError::BadDataOffset {
            offset,
            len: body.len(),
        });
    }
    if ipv4_transport_checksum(ip.src, ip.dst, PROTO_TCP, body) != Some(0) {
        return Err(TcpError::BadChecksum);
    }
    let mss = parse_tcp_options(body.get(TCP_MIN_HEADER_LEN..offset).unwrap_or_default())?;
    Ok(TcpSegment {
        ip,
        sport: u16::from_be_bytes([sp0, sp1]),
        dport: u16::from_be_bytes([dp0, dp1]),
        seq: u32::from_be_bytes([s0, s1, s2, s3]),
        ack: u32::from_be_bytes([a0, a1, a2, a3]),
        flags,
        window: u16::from_be_bytes([w0, w1]),
        mss,
        payload: body.get(offset..).unwrap_or_default(),
    })
}

/// Everything [`TcpSpec::build`] puts in the IPv4 and TCP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSpec {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Add an MSS option with this value.
    pub mss: Option<u16>,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl TcpSpec {
    /// A segment from `src:sport` to `dst:dport` with everything else at the usual
    /// values: seq/ack 0, no flags, window 65535, no MSS, TTL 64, ident 0, DF set.
    pub fn new(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        Self {
            src,
            dst,
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 0xffff,
            mss: None,
            ttl: 64,
            ident: 0,
            dont_fragment: true,
        }
    }

    /// A complete IPv4 packet carrying this segment and `payload`, checksums right.
    /// Fails only when the packet would exceed 65535 bytes.
    pub fn build(&self, payload: &[u8]) -> Result<Vec<u8>, IpError> {
        let header_len = if self.mss.is_some() {
            TCP_MIN_HEADER_LEN + 4
        } else {
            TCP_MIN_HEADER_LEN
        };
        let len = header_len + payload.len();
        let seg_len = u16::try_from(len).map_err(|_| IpError::TooLong {
            len: len + super::IPV4_MIN_HEADER_LEN,
        })?;
        let mut seg = Vec::with_capacity(len);
        seg.extend_from_slice(&self.sport.to_be_bytes());
        seg.extend_from_slice(&self.dport.to_be_bytes());
        seg.extend_from_slice(&self.seq.to_be_bytes());
        seg.extend_from_slice(&self.ack.to_be_bytes());
        // header_len is 20 or 24: 5 or 6 words in the high nibble.
        seg.push(((header_len / 4) as u8) << 4);
        seg.push(self.flags);
        seg.extend_from_slice(&self.window.to_be_bytes());
        seg.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        if let Some(mss) = self.mss {
            seg.extend_from_slice(&[OPT_MSS, 4]);
            seg.extend_from_slice(&mss.to_be_bytes());
        }
        seg.extend_from_slice(payload);
        let csum = Checksum::new()
            .add_ipv4_pseudo_header(self.src, self.dst, PROTO_TCP, seg_len)
            .add(&seg)
            .finish();
        if let Some(field) = seg.get_mut(16..18) {
            field.copy_from_slice(&csum.to_be_bytes());
        }
        Ipv4Spec {
            src: self.src,
            dst: self.dst,
            protocol: PROTO_TCP,
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

    const A: Ipv4Addr = Ipv4Addr::new(10, 10, 10, 10);
    const B: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 80);

    /// A SYN computed by hand: 10.10.10.10:40000 -> 10.1.1.80:80, seq 1000, MSS 1378,
    /// window 65535, TTL 64, ident 0, DF, no payload.
    ///
    /// IPv4 words 4500+002c+0000+4000+4006+0a0a+0a0a+0a01+0150 = 0xe497, so the header
    /// checksum is !0xe497 = 0x1b68. TCP: pseudo-header 0a0a+0a0a+0a01+0150+0006+0018
    /// = 0x1f83; segment 9c40+0050+0000+03e8+0000+0000+6002+ffff+0000+0000+0204+0562
    /// = 0x107e0 -> 0x07e1 after the end-around carry; 0x1f83+0x07e1 = 0x2764, so the
    /// TCP checksum is !0x2764 = 0xd89b.
    const HAND_SYN: [u8; 44] = [
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x1b, 0x68, 0x0a, 0x0a, 0x0a,
        0x0a, 0x0a, 0x01, 0x01, 0x50, // IPv4
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xff,
        0xff, 0xd8, 0x9b, 0x00, 0x00, 0x02, 0x04, 0x05, 0x62, // TCP + MSS
    ];

    fn spec() -> TcpSpec {
        TcpSpec {
            seq: 1000,
            flags: TCP_SYN,
            mss: Some(1378),
            ..TcpSpec::new(A, 40000, B, 80)
        }
    }

    /// Independent one's-complement sum (end-around carry after each word).
    fn naive_sum(bytes: &[u8]) -> u32 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let w = (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
            sum += w;
            if sum > 0xffff {
                sum -= 0xffff;
            }
        }
        sum
    }

    #[test]
    fn hand_computed_syn() {
        assert_eq!(naive_sum(&HAND_SYN[..20]), 0xffff);
        let mut tcp = vec![10, 10, 10, 10, 10, 1, 1, 0x50, 0, 6, 0, 24];
        tcp.extend_from_slice(&HAND_SYN[20..]);
        assert_eq!(naive_sum(&tcp), 0xffff);
        assert_eq!(spec().build(&[]).unwrap(), HAND_SYN.to_vec());
        let s = parse_tcp(&HAND_SYN).unwrap();
        assert_eq!((s.sport, s.dport, s.seq, s.ack), (40000, 80, 1000, 0));
        assert_eq!((s.flags, s.window, s.mss), (TCP_SYN, 0xffff, Some(1378)));
        assert!(s.payload.is_empty());
        assert!(s.ip.flags_df);
        assert_eq!(s.seq_len(), 1);
        assert!(s.has(TCP_SYN) && !s.has(TCP_SYN | TCP_ACK));
    }

    #[test]
    fn payload_and_no_options() {
        let p = TcpSpec {
            seq: u32::MAX,
            ack: 7,
            flags: TCP_ACK | TCP_PSH | TCP_FIN,
            window: 512,
            ttl: 9,
            ident: 0xabcd,
            dont_fragment: false,
            ..TcpSpec::new(B, 80, A, 40000)
        }
        .build(b"hello")
        .unwrap();
        assert_eq!(p.len(), 45);
        assert_eq!(internet_checksum(&p[..20]), 0);
        assert_eq!(p[32], 0x50);
        let s = parse_tcp(&p).unwrap();
        assert_eq!(s.payload, b"hello");
        assert_eq!((s.seq, s.ack, s.window, s.mss), (u32::MAX, 7, 512, None));
        assert_eq!((s.ip.ttl, s.ip.ident, s.ip.flags_df), (9, 0xabcd, false));
        assert_eq!(s.seq_len(), 6);
    }

    #[test]
    fn refusals() {
        let good = spec().build(b"GET /10").unwrap();
        assert!(matches!(parse_tcp(&good[..10]), Err(TcpError::Ip(_))));
        let udp = Ipv4Spec {
            src: A,
            dst: B,
            protocol: 17,
            ttl: 1,
            ident: 0,
            dont_fragment: false,
        }
        .build(&[0; 30])
        .unwrap();
        assert_eq!(parse_tcp(&udp), Err(TcpError::NotTcp { protocol: 17 }));
        let short = Ipv4Spec {
            protocol: PROTO_TCP,
            ..Ipv4Spec {
                src: A,
                dst: B,
                protocol: 0,
                ttl: 1,
                ident: 0,
                dont_fragment: false,
            }
        }
        .build(&[0; 19])
        .unwrap();
        assert_eq!(parse_tcp(&short), Err(TcpError::TooShort { len: 19 }));
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_tcp(&bad), Err(TcpError::BadChecksum));
        assert_eq!(TcpError::BadChecksum.to_string(), "TCP checksum mismatch");
        // fragment: set MF and fix the header checksum
        let mut frag = good.clone();
        frag[6] |= 0x20;
        refix_ip(&mut frag);
        assert_eq!(parse_tcp(&frag), Err(TcpError::Fragment));
        // data offset 15 words > segment
        let mut off = good.clone();
        off[32] = 0xf0;
        refix_tcp(&mut off);
        assert!(matches!(
            parse_tcp(&off),
            Err(TcpError::BadDataOffset { offset: 60, .. })
        ));
        let mut off4 = good.clone();
        off4[32] = 0x40;
        refix_tcp(&mut off4);
        assert!(matches!(
            parse_tcp(&off4),
            Err(TcpError::BadDataOffset { offset: 16, .. })
        ));
        // MSS option with length 9
        let mut opt = good.clone();
        opt[41] = 9;
        refix_tcp(&mut opt);
        assert_eq!(parse_tcp(&opt), Err(TcpError::BadOptions));
    }

    fn refix_ip(p: &mut [u8]) {
        p[10] = 0;
        p[11] = 0;
        let c = internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    fn refix_tcp(p: &mut [u8]) {
        p[36] = 0;
        p[37] = 0;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let c = ipv4_transport_checksum(src, dst, PROTO_TCP, &p[20..]).unwrap();
        p[36..38].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn option_walk() {
        assert_eq!(parse_tcp_options(&[]), Ok(None));
        assert_eq!(parse_tcp_options(&[1, 1, 2, 4, 5, 0xb4]), Ok(Some(1460)));
        assert_eq!(parse_tcp_options(&[0, 2, 99]), Ok(None)); // after END: ignored
        assert_eq!(
            parse_tcp_options(&[4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 2, 0x18]),
            Ok(Some(536))
        );
        assert_eq!(parse_tcp_options(&[2]), Err(TcpError::BadOptions));
        assert_eq!(parse_tcp_options(&[2, 4, 5]), Err(TcpError::BadOptions));
        assert_eq!(parse_tcp_options(&[8, 1]), Err(TcpError::BadOptions));
        assert_eq!(parse_tcp_options(&[2, 3, 5]), Err(TcpError::BadOptions));
        assert_eq!(parse_tcp_options(&[9, 0]), Err(TcpError::BadOptions));
    }

    #[test]
    fn too_long() {
        assert!(matches!(
            spec().build(&vec![0; 65_535 - 44 + 1]),
            Err(IpError::TooLong { len: 65_536 })
        ));
        assert!(spec().build(&vec![0; 65_535 - 44]).is_ok());
        assert!(matches!(
            spec().build(&vec![0; 70_000]),
            Err(IpError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_tcp(&data);
            let _ = parse_tcp_options(&data);
        }

        /// Random bytes behind a valid IPv4 header and a valid TCP checksum reach the
        /// header and option parsers.
        #[test]
        fn arbitrary_segment_never_panics(mut body in proptest::collection::vec(any::<u8>(), 0..80)) {
            if body.len() >= 18 {
                body[16] = 0;
                body[17] = 0;
                let c = ipv4_transport_checksum(A, B, PROTO_TCP, &body).unwrap();
                body[16..18].copy_from_slice(&c.to_be_bytes());
            }
            let p = Ipv4Spec { src: A, dst: B, protocol: PROTO_TCP, ttl: 1, ident: 0, dont_fragment: true }
                .build(&body)
                .unwrap();
            if let Ok(s) = parse_tcp(&p) {
                prop_assert!(s.payload.len() + TCP_MIN_HEADER_LEN <= body.len());
            }
        }

        #[test]
        fn build_parse_round_trip(
            sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, window: u16,
            mss in proptest::option::of(any::<u16>()), ttl: u8, ident: u16, df: bool,
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let spec = TcpSpec { src: A, dst: B, sport, dport, seq, ack, flags, window, mss, ttl, ident, dont_fragment: df };
            let p = spec.build(&payload).unwrap();
            prop_assert_eq!(naive_sum(&p[..20]), 0xffff);
            let s = parse_tcp(&p).unwrap();
            prop_assert_eq!((s.sport, s.dport, s.seq, s.ack, s.flags, s.window, s.mss), (sport, dport, seq, ack, flags, window, mss));
            prop_assert_eq!((s.ip.src, s.ip.dst, s.ip.ttl, s.ip.ident, s.ip.flags_df), (A, B, ttl, ident, df));
            prop_assert_eq!(s.payload, &payload[..]);
        }

        #[test]
        fn any_single_bit_flip_is_refused_or_still_consistent(
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            pos in any::<usize>(), bit in 0u8..8,
        ) {
            let p = spec().build(&payload).unwrap();
            let mut q = p.clone();
            let i = pos % q.len();
            q[i] ^= 1 << bit;
            // One flipped bit always breaks a checksum (IPv4 header or TCP) unless it
            // lands in a field neither covers... every byte is covered by one of them.
            prop_assert!(parse_tcp(&q).is_err());
        }
    }
}
