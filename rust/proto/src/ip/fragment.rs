//! IPv4 fragmentation (RFC 791 §2.3 "Fragmentation and Reassembly", §3.2).
//!
//! Theory of operation: [`fragment_ipv4`] is a pure function from one sound IPv4
//! packet and a link MTU to the fragments a router would send:
//!
//! * a packet whose total length fits the MTU comes back unchanged (one piece, any
//!   link-layer padding beyond the total length trimmed);
//! * otherwise the payload is cut so that every fragment but the last carries a
//!   multiple of 8 bytes, as many as fit `mtu − header`; the fragment offset field
//!   (8-byte units) is the original offset plus the piece's position, so fragmenting a
//!   fragment again works; MF is set on every piece but the last, which keeps the
//!   original MF;
//! * the first fragment keeps the whole header including options; later ones keep
//!   only the options whose "copied" flag (bit 0x80 of the type) is set, padded with
//!   End-of-Option-List bytes to a 4-byte boundary (RFC 791 §3.1). A malformed option
//!   list is copied up to the first malformed option;
//! * identification, TTL, protocol, addresses, DF and the reserved bit are copied;
//!   total length, IHL and the header checksum are recomputed. Whether a DF packet
//!   may be fragmented at all is the caller's decision (ASA `df-bit-ignore`).
//!
//! Refused with a typed [`FragmentError`], never a panic: a packet
//! [`super::parse_ipv4`] refuses, an MTU that leaves fewer than 8 data bytes after a
//! header, and pieces whose offset would not fit the 13-bit field.

use std::fmt;

use super::checksum::internet_checksum;
use super::{parse_ipv4, IpError, IPV4_MIN_HEADER_LEN};

const MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Why a packet cannot be fragmented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentError {
    /// Not a sound IPv4 packet.
    Ip(IpError),
    /// The MTU leaves fewer than 8 data bytes after a `needed − 8`-byte header.
    MtuTooSmall { mtu: usize, needed: usize },
    /// A fragment offset would exceed the 13-bit field.
    OffsetOverflow,
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(e) => e.fmt(f),
            Self::MtuTooSmall { mtu, needed } => write!(
                f,
                "MTU {mtu} is below the {needed} bytes a fragment needs (header + 8)"
            ),
            Self::OffsetOverflow => write!(f, "fragment offset would exceed 8191 (x 8 bytes)"),
        }
    }
}

impl std::error::Error for FragmentError {}

impl From<IpError> for FragmentError {
    fn from(e: IpError) -> Self {
        Self::Ip(e)
    }
}

/// The options of `opts` whose copied flag is set, padded to a 4-byte boundary.
fn copied_options(opts: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = opts;
    while let Some((&kind, tail)) = rest.split_first() {
        match kind {
            0 => break,
            1 => rest = tail,
            _ => {
                let Some(&len) = tail.first() else { break };
                let len = usize::from(len);
                let Some(opt) = rest.get(..len).filter(|_| len >= 2) else {
                    break;
                };
                if kind & 0x80 != 0 {
                    out.extend_from_slice(opt);
                }
                rest = rest.get(len..).unwrap_or_default();
            }
        }
    }
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// One fragment: `header` (20 bytes + options, fields below rewritten) + `data`.
fn piece(header: &[u8], data: &[u8], flags_offset: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(header.len() + data.len());
    p.extend_from_slice(header);
    // header.len() <= 60 and data.len() <= 65515: the sum fits (checked by the caller).
    let total = (header.len() + data.len()) as u16;
    if let Some(b) = p.first_mut() {
        *b = 0x40 | (header.len() / 4) as u8;
    }
    if let Some(f) = p.get_mut(2..4) {
        f.copy_from_slice(&total.to_be_bytes());
    }
    if let Some(f) = p.get_mut(6..8) {
        f.copy_from_slice(&flags_offset.to_be_bytes());
    }
    if let Some(f) = p.get_mut(10..12) {
        f.copy_from_slice(&[0, 0]);
    }
    let csum = internet_checksum(p.get(..header.len()).unwrap_or_default());
    if let Some(f) = p.get_mut(10..12) {
        f.copy_from_slice(&csum.to_be_bytes());
    }
    p.extend_from_slice(data);
    p
}

/// Split `pkt` into fragments of at most `mtu` bytes (see the module docs).
pub fn fragment_ipv4(pkt: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, FragmentError> {
    let (hdr, payload) = parse_ipv4(pkt)?;
    let total = usize::from(hdr.total_len);
    let whole = pkt.get(..total).unwrap_or_default();
    if total <= mtu {
        return Ok(vec![whole.to_vec()]);
    }
    let first_header = pkt.get(..hdr.header_len).unwrap_or_default();
    let mut later_header = first_header
        .get(..IPV4_MIN_HEADER_LEN)
        .unwrap_or_default()
        .to_vec();
    later_header.extend(copied_options(
        first_header.get(IPV4_MIN_HEADER_LEN..).unwrap_or_default(),
    ));
    let flags = first_header
        .get(6..8)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let keep = flags & !(MF | OFFSET_MASK); // DF and the reserved bit
    let base = hdr.frag_offset;

    let mut out = Vec::new();
    let mut start = 0usize;
    loop {
        let header = if start == 0 {
            first_header
        } else {
            &later_header[..]
        };
        let room = mtu.saturating_sub(header.len()) / 8 * 8;
        if room < 8 {
            return Err(FragmentError::MtuTooSmall {
                mtu,
                needed: header.len() + 8,
            });
        }
        let end = payload.len().min(start + room);
        let last = end == payload.len();
        let offset = usize::from(base) + start / 8;
        let offset = u16::try_from(offset)
            .ok()
            .filter(|&o| o <= OFFSET_MASK)
            .ok_or(FragmentError::OffsetOverflow)?;
        let mf = if last { flags & MF } else { MF };
        let data = payload.get(start..end).unwrap_or_default();
        out.push(piece(header, data, keep | mf | offset));
        if last {
            return Ok(out);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{Ipv4Spec, PROTO_UDP};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn packet(len: usize, df: bool) -> Vec<u8> {
        Ipv4Spec {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: PROTO_UDP,
            ttl: 64,
            ident: 0x1234,
            dont_fragment: df,
        }
        .build(&(0..len).map(|i| i as u8).collect::<Vec<_>>())
        .unwrap()
    }

    /// Reassemble by offset; checks that pieces are sound and consistent.
    fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
        let mut data = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let (h, body) = parse_ipv4(f).unwrap();
            assert_eq!(usize::from(h.frag_offset) * 8, data.len(), "piece {i}");
            assert_eq!(h.more_fragments, i + 1 < frags.len(), "piece {i}");
            if i + 1 < frags.len() {
                assert_eq!(body.len() % 8, 0);
            }
            data.extend_from_slice(body);
        }
        data
    }

    #[test]
    fn rfc791_example_shape() {
        // 1400 bytes of payload over a 576-byte link: 552 + 552 + 296.
        let p = packet(1400, false);
        let frags = fragment_ipv4(&p, 576).unwrap();
        let sizes: Vec<usize> = frags.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![572, 572, 316]);
        let offs: Vec<u16> = frags
            .iter()
            .map(|f| u16::from_be_bytes([f[6], f[7]]))
            .collect();
        assert_eq!(offs, vec![0x2000, 0x2000 | 69, 138]);
        assert_eq!(reassemble(&frags), p[20..].to_vec());
        for f in &frags {
            assert_eq!(internet_checksum(&f[..20]), 0);
            assert_eq!(&f[4..6], &[0x12, 0x34]);
        }
    }

    #[test]
    fn fits_is_unchanged_and_df_is_copied() {
        let p = packet(100, true);
        let mut padded = p.clone();
        padded.extend_from_slice(&[0xee; 3]);
        assert_eq!(fragment_ipv4(&padded, 120).unwrap(), vec![p.clone()]);
        let frags = fragment_ipv4(&packet(100, true), 60).unwrap();
        assert_eq!(frags.len(), 3);
        assert!(frags.iter().all(|f| f[6] & 0x40 != 0));
    }

    #[test]
    fn refragmenting_a_fragment() {
        let p = packet(1400, false);
        let first = fragment_ipv4(&p, 1000).unwrap();
        assert_eq!(first.len(), 2);
        let mut all = Vec::new();
        for f in &first {
            all.extend(fragment_ipv4(f, 300).unwrap());
        }
        assert_eq!(reassemble(&all), p[20..].to_vec());
    }

    #[test]
    fn options_copied_flag() {
        // IHL 8: a copied option (0x83, loose source route, len 7), a NOP, a non-copied
        // option (0x07 record route, len 3) and an EOL.
        let mut p = packet(64, false);
        let opts = [0x83, 7, 4, 1, 2, 3, 4, 1, 7, 3, 4, 0];
        p.splice(20..20, opts);
        p[0] = 0x48;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&p[..32]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let frags = fragment_ipv4(&p, 64).unwrap();
        assert_eq!(frags[0][0], 0x48);
        assert_eq!(&frags[0][20..32], &opts);
        for f in &frags[1..] {
            assert_eq!(f[0], 0x47); // 20 + the 7-byte copied option + 1 byte of padding
            assert_eq!(&f[20..28], &[0x83, 7, 4, 1, 2, 3, 4, 0]);
        }
        let data: Vec<u8> = frags
            .iter()
            .flat_map(|f| parse_ipv4(f).unwrap().1.to_vec())
            .collect();
        assert_eq!(data, p[32..].to_vec());
        // a malformed list copies what came before the break
        assert_eq!(copied_options(&[0x83, 3, 9, 0x88, 9]), vec![0x83, 3, 9, 0]);
        assert_eq!(copied_options(&[0x88]), Vec::<u8>::new());
        assert_eq!(copied_options(&[0x88, 1, 0, 0]), Vec::<u8>::new());
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            fragment_ipv4(&[0x45, 0, 0], 576),
            Err(FragmentError::Ip(_))
        ));
        assert_eq!(
            fragment_ipv4(&packet(100, false), 27),
            Err(FragmentError::MtuTooSmall {
                mtu: 27,
                needed: 28
            })
        );
        assert_eq!(fragment_ipv4(&packet(100, false), 28).unwrap().len(), 13);
        // a last fragment at offset 8190 with 100 bytes cannot be split further
        let mut p = packet(100, false);
        p[6..8].copy_from_slice(&8190u16.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(fragment_ipv4(&p, 60), Err(FragmentError::OffsetOverflow));
        assert_eq!(
            FragmentError::OffsetOverflow.to_string(),
            "fragment offset would exceed 8191 (x 8 bytes)"
        );
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), mtu in 0usize..2000) {
            let _ = fragment_ipv4(&data, mtu);
        }

        #[test]
        fn pieces_fit_and_reassemble(len in 0usize..5000, mtu in 28usize..3000, df: bool) {
            let p = packet(len, df);
            let frags = fragment_ipv4(&p, mtu).unwrap();
            prop_assert!(frags.iter().all(|f| f.len() <= mtu));
            prop_assert_eq!(reassemble(&frags), p[20..].to_vec());
            if p.len() > mtu {
                // as few pieces as the 8-byte rule allows
                let per = (mtu - 20) / 8 * 8;
                prop_assert_eq!(frags.len(), len.div_ceil(per));
            }
        }
    }
}
