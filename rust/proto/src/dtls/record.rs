//! DTLS record layer framing: the 13-byte record header, strict parsing of a datagram
//! into records, and encoding (protocol.md §5.2.2, §5.3; RFC 6347 §4.1).
//!
//! Theory of operation: a UDP datagram carries one or more records back to back:
//!
//! ```text
//! type(1) || version(2) || epoch(BE16) || sequence_number(BE48) || length(BE16) || fragment
//! ```
//!
//! [`RecordIter`] walks a datagram and yields `(header, fragment)` pairs. Parsing is
//! strict and never panics: a header that does not fit, a length that runs past the end
//! of the datagram, a length above the RFC limit (2^14 + 2048) or an unknown content
//! type ends the walk with an error — the rest of that datagram is unusable because
//! record boundaries are lost (RFC 6347 §4.1.2.7: invalid records are silently
//! discarded). Version bytes are *not* judged here: which versions are acceptable
//! depends on the mode and the handshake state (`01 00` for DTLS 0.9 in every record,
//! `fe fd` for DTLS 1.2 with `fe ff` tolerated on epoch-0 records such as the first
//! ClientHello and a HelloVerifyRequest — §5.3, §10.9), so the connection checks them.
//!
//! Epochs and 48-bit sequence numbers are carried as `u16`/`u64`; [`encode_header`]
//! masks the sequence number to 48 bits and the sender never lets it wrap (a
//! connection refuses to send once 2^48 − 1 is reached).

use std::fmt;

/// ChangeCipherSpec content type.
pub const CT_CHANGE_CIPHER_SPEC: u8 = 20;
/// Alert content type.
pub const CT_ALERT: u8 = 21;
/// Handshake content type.
pub const CT_HANDSHAKE: u8 = 22;
/// Application data content type.
pub const CT_APPLICATION_DATA: u8 = 23;

/// Cisco's pre-standard DTLS ("DTLS 0.9", OpenSSL `DTLS1_BAD_VER`), §5.2.
pub const VERSION_DTLS09: u16 = 0x0100;
/// DTLS 1.0 (`fe ff`).
pub const VERSION_DTLS10: u16 = 0xfeff;
/// DTLS 1.2 (`fe fd`).
pub const VERSION_DTLS12: u16 = 0xfefd;

/// Record header length.
pub const HEADER_LEN: usize = 13;
/// Largest fragment accepted (2^14 plaintext + 2048 expansion, RFC 6347 §4.1 / RFC 5246).
pub const MAX_FRAGMENT_LEN: usize = 16384 + 2048;
/// Largest plaintext a record may carry (2^14).
pub const MAX_PLAINTEXT_LEN: usize = 16384;
/// Largest 48-bit sequence number.
pub const MAX_SEQ: u64 = (1 << 48) - 1;

/// A parsed record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// content type (20..=23)
    pub content_type: u8,
    /// protocol version bytes as a big-endian integer
    pub version: u16,
    /// epoch
    pub epoch: u16,
    /// 48-bit sequence number
    pub seq: u64,
    /// fragment length
    pub length: u16,
}

/// Why a datagram could not be split into records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// fewer than 13 bytes left for a header
    ShortHeader,
    /// the length field runs past the end of the datagram
    Truncated,
    /// the length field exceeds 2^14 + 2048
    TooLong,
    /// content type is not 20, 21, 22 or 23
    BadContentType(u8),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::ShortHeader => write!(f, "DTLS record header truncated"),
            RecordError::Truncated => write!(f, "DTLS record length exceeds the datagram"),
            RecordError::TooLong => write!(f, "DTLS record length above 2^14 + 2048"),
            RecordError::BadContentType(t) => write!(f, "unknown DTLS content type {t}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Parse one record header from the start of `data` (does not check the fragment).
pub fn parse_header(data: &[u8]) -> Result<RecordHeader, RecordError> {
    let Some(&[t, v0, v1, e0, e1, s0, s1, s2, s3, s4, s5, l0, l1]) = data
        .get(..HEADER_LEN)
        .and_then(|h| <&[u8; 13]>::try_from(h).ok())
    else {
        return Err(RecordError::ShortHeader);
    };
    if !(CT_CHANGE_CIPHER_SPEC..=CT_APPLICATION_DATA).contains(&t) {
        return Err(RecordError::BadContentType(t));
    }
    let length = u16::from_be_bytes([l0, l1]);
    if usize::from(length) > MAX_FRAGMENT_LEN {
        return Err(RecordError::TooLong);
    }
    Ok(RecordHeader {
        content_type: t,
        version: u16::from_be_bytes([v0, v1]),
        epoch: u16::from_be_bytes([e0, e1]),
        seq: u64::from_be_bytes([0, 0, s0, s1, s2, s3, s4, s5]),
        length,
    })
}

/// Append a record header to `out`.
pub fn encode_header(out: &mut Vec<u8>, h: &RecordHeader) {
    out.push(h.content_type);
    out.extend_from_slice(&h.version.to_be_bytes());
    out.extend_from_slice(&h.epoch.to_be_bytes());
    let seq = (h.seq & MAX_SEQ).to_be_bytes();
    out.extend_from_slice(seq.get(2..).unwrap_or_default());
    out.extend_from_slice(&h.length.to_be_bytes());
}

/// `epoch || seq(6)` as the 8 bytes used in MACs, AADs and GCM explicit nonces.
pub fn epoch_seq_bytes(epoch: u16, seq: u64) -> [u8; 8] {
    ((u64::from(epoch) << 48) | (seq & MAX_SEQ)).to_be_bytes()
}

/// Append a whole plaintext record (header + fragment) to `out`.
pub fn encode_plain_record(
    out: &mut Vec<u8>,
    content_type: u8,
    version: u16,
    epoch: u16,
    seq: u64,
    fragment: &[u8],
) {
    let length = u16::try_from(fragment.len()).unwrap_or(u16::MAX);
    encode_header(
        out,
        &RecordHeader {
            content_type,
            version,
            epoch,
            seq,
            length,
        },
    );
    out.extend_from_slice(fragment.get(..usize::from(length)).unwrap_or(fragment));
}

/// Iterator over the records of one datagram. Yields `Err` once and then stops when the
/// remaining bytes cannot be a record.
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> RecordIter<'a> {
    /// Walk `datagram`.
    pub fn new(datagram: &'a [u8]) -> Self {
        RecordIter {
            rest: datagram,
            done: false,
        }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<(RecordHeader, &'a [u8]), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        let h = match parse_header(self.rest) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let end = HEADER_LEN + usize::from(h.length);
        let Some(fragment) = self.rest.get(HEADER_LEN..end) else {
            self.done = true;
            return Some(Err(RecordError::Truncated));
        };
        self.rest = self.rest.get(end..).unwrap_or_default();
        Some(Ok((h, fragment)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtls::tests::unhex;
    use proptest::prelude::*;

    #[test]
    fn parses_ocserv_ccs_record() {
        // protocol.md §5.2.3: ocserv's CCS record
        let r = unhex("14 0100 0000 000000000001 0003 01 0001");
        let recs: Vec<_> = RecordIter::new(&r).collect();
        assert_eq!(recs.len(), 1);
        let (h, frag) = recs[0].unwrap();
        assert_eq!(
            h,
            RecordHeader {
                content_type: 20,
                version: VERSION_DTLS09,
                epoch: 0,
                seq: 1,
                length: 3
            }
        );
        assert_eq!(frag, &[1, 0, 1]);
        let mut out = Vec::new();
        encode_plain_record(&mut out, 20, VERSION_DTLS09, 0, 1, &[1, 0, 1]);
        assert_eq!(out, r);
    }

    #[test]
    fn several_records_and_errors() {
        let mut d = Vec::new();
        encode_plain_record(&mut d, 20, VERSION_DTLS12, 0, 1, &[1]);
        encode_plain_record(&mut d, 23, VERSION_DTLS12, 1, 0xabcdef012345, &[9; 5]);
        let recs: Vec<_> = RecordIter::new(&d).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].0.seq, 0xabcdef012345);
        assert_eq!(recs[1].0.epoch, 1);
        let mut bad = d.clone();
        bad.truncate(d.len() - 1);
        let got: Vec<_> = RecordIter::new(&bad).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Err(RecordError::Truncated));
        assert_eq!(
            RecordIter::new(&[22, 1, 0]).next(),
            Some(Err(RecordError::ShortHeader))
        );
        let mut ct = d.clone();
        ct[0] = 24;
        assert_eq!(
            RecordIter::new(&ct).next(),
            Some(Err(RecordError::BadContentType(24)))
        );
        let mut long = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0x48, 0x01];
        long.extend(vec![0; 0x4801]);
        assert_eq!(
            RecordIter::new(&long).next(),
            Some(Err(RecordError::TooLong))
        );
        assert_eq!(epoch_seq_bytes(1, 2), [0, 1, 0, 0, 0, 0, 0, 2]);
    }

    proptest! {
        #[test]
        fn header_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_header(&data);
            for r in RecordIter::new(&data) {
                let _ = r;
            }
        }

        #[test]
        fn header_round_trips(t in 20u8..=23, v: u16, e: u16, s in 0u64..=MAX_SEQ, body in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut out = Vec::new();
            encode_plain_record(&mut out, t, v, e, s, &body);
            let (h, f) = RecordIter::new(&out).next().unwrap().unwrap();
            prop_assert_eq!((h.content_type, h.version, h.epoch, h.seq), (t, v, e, s));
            prop_assert_eq!(f, &body[..]);
        }
    }
}
