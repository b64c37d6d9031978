//! RFC 1071 Internet checksum.
//!
//! The checksum is the 16-bit one's complement of the one's complement sum of
//! the data taken as big-endian 16-bit words (an odd trailing byte is padded
//! with a zero byte).  [`Checksum`] accumulates that sum incrementally: bytes
//! may be fed in pieces of any length, including odd ones, and the result is
//! the same as summing the concatenation in one go.  The running sum lives in
//! a `u64` and is folded back to 32 bits after every call, so it cannot
//! overflow.
//!
//! Verification uses the usual property: summing a header or segment that
//! *includes* a correct checksum field yields a checksum of zero.
//!
//! UDP and TCP over IPv4 additionally cover a pseudo-header (source,
//! destination, zero, protocol, length); see
//! [`Checksum::add_ipv4_pseudo_header`] and [`ipv4_transport_checksum`].

use std::net::Ipv4Addr;

/// Incremental RFC 1071 checksum accumulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    sum: u64,
    /// High byte of a 16-bit word whose low byte has not arrived yet.
    pending: Option<u8>,
}

impl Checksum {
    /// An empty accumulator.
    pub const fn new() -> Self {
        Self {
            sum: 0,
            pending: None,
        }
    }

    /// Add bytes to the sum.  Pieces may have any length; word alignment is
    /// tracked across calls.
    pub fn add(&mut self, data: &[u8]) -> &mut Self {
        let mut data = data;
        if let Some(hi) = self.pending {
            match data.split_first() {
                Some((&lo, rest)) => {
                    self.sum += u64::from(u16::from_be_bytes([hi, lo]));
                    self.pending = None;
                    data = rest;
                }
                None => return self,
            }
        }
        let mut words = data.chunks_exact(2);
        for w in &mut words {
            if let [hi, lo] = *w {
                self.sum += u64::from(u16::from_be_bytes([hi, lo]));
            }
        }
        if let [last] = *words.remainder() {
            self.pending = Some(last);
        }
        self.sum = (self.sum & 0xffff_ffff) + (self.sum >> 32);
        self
    }

    /// Add a 16-bit value as two big-endian bytes.
    pub fn add_u16(&mut self, v: u16) -> &mut Self {
        self.add(&v.to_be_bytes())
    }

    /// Add a 32-bit value as four big-endian bytes.
    pub fn add_u32(&mut self, v: u32) -> &mut Self {
        self.add(&v.to_be_bytes())
    }

    /// Add the IPv4 pseudo-header used by UDP and TCP: source, destination,
    /// a zero byte, the protocol number and the transport segment length.
    pub fn add_ipv4_pseudo_header(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        len: u16,
    ) -> &mut Self {
        self.add(&src.octets())
            .add(&dst.octets())
            .add(&[0, protocol])
            .add_u16(len)
    }

    /// The checksum: one's complement of the folded sum.
    pub fn finish(&self) -> u16 {
        let mut sum = self.sum;
        if let Some(hi) = self.pending {
            sum += u64::from(u16::from_be_bytes([hi, 0]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // `sum` now fits in 16 bits.
        !(sum as u16)
    }
}

/// RFC 1071 checksum of `data` in one go.  Over data that includes a correct
/// checksum field the result is 0.
pub fn internet_checksum(data: &[u8]) -> u16 {
    Checksum::new().add(data).finish()
}

/// Checksum of a UDP/TCP `segment` (with its checksum field as present in
/// `segment`) over the IPv4 pseudo-header.  Over a segment carrying a correct
/// checksum the result is 0.  `None` if the segment is longer than the 16-bit
/// pseudo-header length field allows.
pub fn ipv4_transport_checksum(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    segment: &[u8],
) -> Option<u16> {
    let len = u16::try_from(segment.len()).ok()?;
    Some(
        Checksum::new()
            .add_ipv4_pseudo_header(src, dst, protocol, len)
            .add(segment)
            .finish(),
    )
}

/// The value to put in a UDP header's checksum field for `segment` (whose
/// checksum field must be zero): like [`ipv4_transport_checksum`] but a
/// computed 0 is transmitted as 0xFFFF, since 0 means "no checksum".
pub fn udp_checksum_v4(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> Option<u16> {
    ipv4_transport_checksum(src, dst, super::PROTO_UDP, segment).map(|c| {
        if c == 0 {
            0xffff
        } else {
            c
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
        assert_eq!(internet_checksum(&data), 0x220d);
    }

    #[test]
    fn real_ipv4_header() {
        // 192.168.0.1 -> 192.168.0.199, UDP, TTL 64, DF, total length 115.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&hdr), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet_checksum(&hdr), 0);
    }

    #[test]
    fn odd_length_and_empty() {
        assert_eq!(internet_checksum(&[]), 0xffff);
        // A trailing odd byte is padded with zero on the right.
        assert_eq!(internet_checksum(&[0x12]), !0x1200);
        assert_eq!(internet_checksum(&[0x12, 0x34, 0x56]), !(0x1234 + 0x5600));
    }

    #[test]
    fn carries_fold() {
        // 0xffff + 0xffff + 0x0002 = 0x20000 -> fold -> 0x0002.
        assert_eq!(internet_checksum(&[0xff, 0xff, 0xff, 0xff, 0x00, 0x02]), !2);
    }

    #[test]
    fn incremental_helpers() {
        let mut c = Checksum::new();
        c.add(&[0x00])
            .add_u16(0x01f2)
            .add(&[0x03])
            .add_u32(0xf4f5_f6f7);
        assert_eq!(c.finish(), 0x220d);
        // An empty add in the middle of a pending byte changes nothing.
        let mut d = Checksum::new();
        d.add(&[0x00])
            .add(&[])
            .add(&[0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(d.finish(), 0x220d);
    }

    #[test]
    fn udp_pseudo_header() {
        // Hand-built UDP datagram 10.0.0.1:1000 -> 10.0.0.2:2000, payload "hi".
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut seg = vec![0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        // Sum by hand: 0a00+0001 + 0a00+0002 + 0011 + 000a (pseudo, 0x141e) +
        // 03e8 + 07d0 + 000a + 6869 (0x742b) = 0x8849 -> checksum 0x77b6.
        let c = udp_checksum_v4(src, dst, &seg).unwrap();
        assert_eq!(c, 0x77b6);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(ipv4_transport_checksum(src, dst, 17, &seg), Some(0));
        assert_eq!(ipv4_transport_checksum(src, dst, 17, &[0; 70_000]), None);
    }

    proptest! {
        #[test]
        fn split_anywhere_matches_one_shot(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut c = Checksum::new();
            let mut start = 0;
            for cut in cuts {
                c.add(&data[start..cut]);
                start = cut;
            }
            c.add(&data[start..]);
            prop_assert_eq!(c.finish(), internet_checksum(&data));
        }

        #[test]
        fn inserting_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 2..300)) {
            if data.len() % 2 == 1 {
                data.push(0);
            }
            data[0] = 0;
            data[1] = 0;
            let c = internet_checksum(&data);
            data[0..2].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(internet_checksum(&data), 0);
        }
    }
}
