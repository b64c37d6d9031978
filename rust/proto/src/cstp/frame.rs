//! CSTP frames: the 8-byte header and the packet types (protocol.md §4.1–§4.3).
//!
//! Theory of operation: a CSTP frame is `53 54 46 01 | len BE16 | type | 00 | payload`,
//! where `len` counts the payload only. This module encodes frames (one frame = one
//! `Vec<u8>`, which the TLS layer writes with a single call so that it becomes a single
//! TLS record, §4.1 "record-boundary requirement") and interprets the payload of
//! DISCONNECT. Parsing of a byte stream into frames lives in `deframer.rs`.

use std::fmt;

/// `S T F 0x01` (protocol.md §4.1).
pub const MAGIC: [u8; 4] = [0x53, 0x54, 0x46, 0x01];
/// Length of the CSTP header.
pub const HEADER_LEN: usize = 8;
/// Largest payload we send: header + payload must fit one TLS record (16384 bytes of
/// plaintext, RFC 8446 §5.1), so that every frame is exactly one record (§4.1).
pub const MAX_SEND_PAYLOAD: usize = 16384 - HEADER_LEN;
/// Default limit for received payloads. A peer obeying the one-frame-per-record rule
/// never exceeds [`MAX_SEND_PAYLOAD`]; we allow up to a full record of payload.
pub const DEFAULT_MAX_RECV_PAYLOAD: usize = 16384;

/// CSTP packet types (protocol.md §4.2). Codes 1, 2 and 6 are unused by every source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 0x00: one IPv4/IPv6 packet.
    Data,
    /// 0x03: dead-peer-detection request; the peer answers with DPD-RESP.
    DpdReq,
    /// 0x04: dead-peer-detection response.
    DpdResp,
    /// 0x05: orderly close; optional reason byte + text (§4.3).
    Disconnect,
    /// 0x07: keepalive; never answered.
    Keepalive,
    /// 0x08: a compressed IP packet (§4.4).
    Compressed,
    /// 0x09: the server ends the session.
    Terminate,
    /// Any other code. Receiving one ends an openconnect session (§4.2).
    Other(u8),
}

impl PacketType {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            PacketType::Data => 0x00,
            PacketType::DpdReq => 0x03,
            PacketType::DpdResp => 0x04,
            PacketType::Disconnect => 0x05,
            PacketType::Keepalive => 0x07,
            PacketType::Compressed => 0x08,
            PacketType::Terminate => 0x09,
            PacketType::Other(c) => c,
        }
    }

    /// The type for a wire code.
    pub fn from_code(code: u8) -> Self {
        match code {
            0x00 => PacketType::Data,
            0x03 => PacketType::DpdReq,
            0x04 => PacketType::DpdResp,
            0x05 => PacketType::Disconnect,
            0x07 => PacketType::Keepalive,
            0x08 => PacketType::Compressed,
            0x09 => PacketType::Terminate,
            c => PacketType::Other(c),
        }
    }

    /// Short lower-case name used in logs and events.
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Data => "data",
            PacketType::DpdReq => "dpd-request",
            PacketType::DpdResp => "dpd-response",
            PacketType::Disconnect => "disconnect",
            PacketType::Keepalive => "keepalive",
            PacketType::Compressed => "compressed",
            PacketType::Terminate => "terminate",
            PacketType::Other(_) => "unknown",
        }
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The packet type.
    pub ptype: PacketType,
    /// The payload (without the header).
    pub payload: Vec<u8>,
}

/// Everything that can be wrong with CSTP bytes or a frame to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes 0–3 were not `53 54 46 01`; holds the bytes seen so far (1–4 of them).
    BadMagic(Vec<u8>),
    /// Byte 7 was not zero.
    BadByte7(u8),
    /// The length field exceeds the receive limit.
    Oversized {
        /// announced payload length
        len: usize,
        /// limit in force
        max: usize,
    },
    /// The stream ended inside a frame.
    EofMidFrame {
        /// bytes of the unfinished frame received
        have: usize,
        /// bytes that frame needs (header only, when the header is incomplete)
        need: usize,
    },
    /// A payload too large to send as one frame in one TLS record.
    PayloadTooLarge(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic(seen) => {
                write!(f, "CSTP frame does not start with 53 54 46 01 (got")?;
                for b in seen {
                    write!(f, " {b:02x}")?;
                }
                write!(f, ")")
            }
            FrameError::BadByte7(b) => write!(f, "CSTP header byte 7 is {b:#04x}, must be 0x00"),
            FrameError::Oversized { len, max } => {
                write!(
                    f,
                    "CSTP frame announces a {len}-byte payload, limit is {max}"
                )
            }
            FrameError::EofMidFrame { have, need } => write!(
                f,
                "connection ended inside a CSTP frame ({have} of {need} bytes received)"
            ),
            FrameError::PayloadTooLarge(n) => write!(
                f,
                "CSTP payload of {n} bytes does not fit one TLS record (max {MAX_SEND_PAYLOAD})"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encode one frame. Fails only for payloads over [`MAX_SEND_PAYLOAD`].
pub fn encode(ptype: PacketType, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() > MAX_SEND_PAYLOAD {
        return Err(FrameError::PayloadTooLarge(payload.len()));
    }
    let len =
        u16::try_from(payload.len()).map_err(|_| FrameError::PayloadTooLarge(payload.len()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(ptype.code());
    out.push(0);
    out.extend_from_slice(payload);
    Ok(out)
}

/// DISCONNECT reason bytes known to ocserv (protocol.md §4.3, Appendix A).
pub mod reason {
    /// user requested disconnect ("BYE"); ocserv invalidates the cookie
    pub const USER_REQUESTED: u8 = 0xb0;
    /// local error
    pub const LOCAL_ERROR: u8 = 0x70;
    /// the client intends to reconnect; the cookie stays valid
    pub const RECONNECTING: u8 = 0x91;
    /// tunnel paused
    pub const PAUSED: u8 = 0xd1;
}

/// The payload of a DISCONNECT frame (protocol.md §4.3): empty, or a reason byte
/// followed by ASCII text without a terminating NUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// The reason byte, absent for an empty payload.
    pub reason: Option<u8>,
    /// The text after the reason byte (lossy UTF-8, NULs and control bytes dropped).
    pub text: String,
}

impl Disconnect {
    /// Interpret a DISCONNECT payload. Never fails: any bytes are a valid payload.
    pub fn parse(payload: &[u8]) -> Self {
        match payload.split_first() {
            None => Disconnect {
                reason: None,
                text: String::new(),
            },
            Some((&r, rest)) => {
                let text: String = String::from_utf8_lossy(rest)
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                Disconnect {
                    reason: Some(r),
                    text,
                }
            }
        }
    }

    /// The payload bytes: reason byte + text (length = 1 + len(text)).
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.text.len());
        if let Some(r) = self.reason {
            out.push(r);
            out.extend_from_slice(self.text.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn control_frames_match_protocol_md_10_1() {
        assert_eq!(
            encode(PacketType::DpdReq, &[]).unwrap(),
            unhex("53 54 46 01 00 00 03 00")
        );
        assert_eq!(
            encode(PacketType::DpdResp, &[]).unwrap(),
            unhex("53 54 46 01 00 00 04 00")
        );
        assert_eq!(
            encode(PacketType::Keepalive, &[]).unwrap(),
            unhex("53 54 46 01 00 00 07 00")
        );
        assert_eq!(
            encode(PacketType::Terminate, &[]).unwrap(),
            unhex("53 54 46 01 00 00 09 00")
        );
    }

    #[test]
    fn bye_matches_openconnect() {
        let bye = Disconnect {
            reason: Some(reason::USER_REQUESTED),
            text: "Aborted by caller".into(),
        };
        let frame = encode(PacketType::Disconnect, &bye.to_payload()).unwrap();
        assert_eq!(
            frame,
            unhex("53 54 46 01 00 12 05 00 b0 41 62 6f 72 74 65 64 20 62 79 20 63 61 6c 6c 65 72")
        );
        assert_eq!(Disconnect::parse(&frame[8..]), bye);
    }

    #[test]
    fn empty_disconnect_has_no_reason() {
        assert_eq!(
            Disconnect::parse(&[]),
            Disconnect {
                reason: None,
                text: String::new()
            }
        );
        assert!(Disconnect {
            reason: None,
            text: String::new()
        }
        .to_payload()
        .is_empty());
    }

    #[test]
    fn disconnect_text_is_sanitised() {
        let d = Disconnect::parse(b"\xb0bad\x00\nname\xff");
        assert_eq!(d.reason, Some(0xb0));
        assert_eq!(d.text, "badname\u{fffd}");
    }

    #[test]
    fn oversized_payload_refused() {
        assert!(encode(PacketType::Data, &vec![0; MAX_SEND_PAYLOAD]).is_ok());
        assert_eq!(
            encode(PacketType::Data, &vec![0; MAX_SEND_PAYLOAD + 1]),
            Err(FrameError::PayloadTooLarge(MAX_SEND_PAYLOAD + 1))
        );
    }

    #[test]
    fn type_codes_round_trip() {
        for c in 0..=255u8 {
            assert_eq!(PacketType::from_code(c).code(), c);
        }
    }

    #[test]
    fn errors_are_one_line() {
        let errs = [
            FrameError::BadMagic(vec![0x48, 0x54]),
            FrameError::BadByte7(1),
            FrameError::Oversized {
                len: 65535,
                max: 16384,
            },
            FrameError::EofMidFrame { have: 3, need: 8 },
            FrameError::PayloadTooLarge(20000),
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
        }
    }
}
