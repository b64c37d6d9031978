//! DTLS handshake messages: the 12-byte handshake header and the bodies this core
//! sends and accepts (protocol.md §5.2.3, §5.3, §5.4, §10.9, §10.10; RFC 6347 §4.2,
//! RFC 5246 §7.4, RFC 4279).
//!
//! Theory of operation: a handshake record's fragment holds one or more messages, each
//! `msg_type(1) ‖ length(BE24) ‖ message_seq(BE16) ‖ fragment_offset(BE24) ‖
//! fragment_length(BE24) ‖ fragment`. [`parse_handshake_fragments`] splits a record
//! strictly (a message that runs past the record ends the walk with an error). The
//! handshake layer only processes *unfragmented* messages (offset 0, fragment length =
//! length): every message of these handshakes is < 200 bytes and neither openconnect,
//! ocserv nor OpenSSL fragments them; a fragmented one is dropped and counted
//! (documented limitation).
//!
//! Bodies: ClientHello, ServerHello, HelloVerifyRequest, ServerKeyExchange (PSK hint
//! only), ServerHelloDone, ClientKeyExchange (PSK identity), Finished. Encoders produce
//! exactly the layouts of §10.4/§10.5/§10.10; parsers accept what real peers send
//! (e.g. openconnect 9.01's ClientHello extensions, §10.10) and never panic.

use std::fmt;

/// HelloRequest (never sent here).
pub const HT_HELLO_REQUEST: u8 = 0;
/// ClientHello.
pub const HT_CLIENT_HELLO: u8 = 1;
/// ServerHello.
pub const HT_SERVER_HELLO: u8 = 2;
/// HelloVerifyRequest.
pub const HT_HELLO_VERIFY_REQUEST: u8 = 3;
/// ServerKeyExchange.
pub const HT_SERVER_KEY_EXCHANGE: u8 = 12;
/// ServerHelloDone.
pub const HT_SERVER_HELLO_DONE: u8 = 14;
/// ClientKeyExchange.
pub const HT_CLIENT_KEY_EXCHANGE: u8 = 16;
/// Finished.
pub const HT_FINISHED: u8 = 20;

/// Handshake header length.
pub const HS_HEADER_LEN: usize = 12;

/// renegotiation_info extension.
pub const EXT_RENEGOTIATION_INFO: u16 = 0xff01;
/// signature_algorithms extension.
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
/// session_ticket extension.
pub const EXT_SESSION_TICKET: u16 = 0x0023;
/// record_size_limit extension.
pub const EXT_RECORD_SIZE_LIMIT: u16 = 0x001c;
/// extended_master_secret extension (never offered).
pub const EXT_EXTENDED_MASTER_SECRET: u16 = 0x0017;
/// ocserv's "application ID" extension 48018 (§5.1).
pub const EXT_APP_ID: u16 = 0xBB92;

/// The 16 signature schemes of GnuTLS 3.7.9 as openconnect 9.01 sends them (§10.10).
pub const GNUTLS_SIGNATURE_SCHEMES: [u16; 16] = [
    0x0401, 0x0809, 0x0804, 0x0403, 0x0807, 0x0501, 0x080a, 0x0805, 0x0503, 0x0808, 0x0601, 0x080b,
    0x0806, 0x0603, 0x0201, 0x0203,
];

/// A malformed handshake message or body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// fewer bytes than the structure needs
    Truncated,
    /// bytes left over after the structure
    Trailing,
    /// a length field that is out of range (session id > 32, empty suites, …)
    BadLength,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Truncated => write!(f, "handshake message truncated"),
            MessageError::Trailing => write!(f, "trailing bytes after handshake message"),
            MessageError::BadLength => write!(f, "handshake length field out of range"),
        }
    }
}

impl std::error::Error for MessageError {}

/// A bounds-checked reader.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    /// Take `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if n > self.data.len() {
            return Err(MessageError::Truncated);
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    /// BE16.
    pub fn u16(&mut self) -> Result<u16, MessageError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    /// BE24.
    pub fn u24(&mut self) -> Result<u32, MessageError> {
        let b = self.take(3)?;
        let g = |i: usize| u32::from(b.get(i).copied().unwrap_or(0));
        Ok((g(0) << 16) | (g(1) << 8) | g(2))
    }

    /// `u8` length + bytes.
    pub fn vec8(&mut self) -> Result<&'a [u8], MessageError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// `u16` length + bytes.
    pub fn vec16(&mut self) -> Result<&'a [u8], MessageError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Fail unless everything was consumed.
    pub fn finish(&self) -> Result<(), MessageError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(MessageError::Trailing)
        }
    }
}

/// A handshake header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HsHeader {
    /// message type
    pub msg_type: u8,
    /// total body length
    pub length: u32,
    /// message_seq
    pub msg_seq: u16,
    /// fragment_offset
    pub frag_offset: u32,
    /// fragment_length
    pub frag_length: u32,
}

impl HsHeader {
    /// Is this the whole message in one piece?
    pub fn is_complete(&self) -> bool {
        self.frag_offset == 0 && self.frag_length == self.length
    }
}

/// One message (or fragment) from a handshake record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HsFragment<'a> {
    /// header
    pub header: HsHeader,
    /// fragment bytes (`frag_length` of them)
    pub body: &'a [u8],
}

/// Split a handshake record's plaintext into messages.
pub fn parse_handshake_fragments(data: &[u8]) -> Result<Vec<HsFragment<'_>>, MessageError> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let msg_type = r.u8()?;
        let length = r.u24()?;
        let msg_seq = r.u16()?;
        let frag_offset = r.u24()?;
        let frag_length = r.u24()?;
        if u64::from(frag_offset) + u64::from(frag_length) > u64::from(length) {
            return Err(MessageError::BadLength);
        }
        let body = r.take(frag_length as usize)?;
        out.push(HsFragment {
            header: HsHeader {
                msg_type,
                length,
                msg_seq,
                frag_offset,
                frag_length,
            },
            body,
        });
    }
    Ok(out)
}

/// Encode an unfragmented handshake message: header + body.
pub fn encode_handshake(msg_type: u8, msg_seq: u16, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(0) & 0x00ff_ffff;
    let l = len.to_be_bytes();
    let mut out = Vec::with_capacity(HS_HEADER_LEN + body.len());
    out.push(msg_type);
    out.extend_from_slice(l.get(1..).unwrap_or_default());
    out.extend_from_slice(&msg_seq.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(l.get(1..).unwrap_or_default());
    out.extend_from_slice(body);
    out
}

/// One extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// type
    pub ext_type: u16,
    /// body
    pub data: Vec<u8>,
}

fn parse_extensions(r: &mut Reader<'_>) -> Result<Option<Vec<Extension>>, MessageError> {
    if r.remaining() == 0 {
        return Ok(None);
    }
    let block = r.vec16()?;
    let mut e = Reader::new(block);
    let mut out = Vec::new();
    while e.remaining() > 0 {
        let ext_type = e.u16()?;
        let data = e.vec16()?.to_vec();
        out.push(Extension { ext_type, data });
    }
    Ok(Some(out))
}

fn encode_extensions(out: &mut Vec<u8>, exts: &Option<Vec<Extension>>) {
    if let Some(exts) = exts {
        let mut block = Vec::new();
        for x in exts {
            block.extend_from_slice(&x.ext_type.to_be_bytes());
            block.extend_from_slice(&(x.data.len() as u16).to_be_bytes());
            block.extend_from_slice(&x.data);
        }
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(&block);
    }
}

/// `version ‖ random(32) ‖ session_id<0..32>`: how both hellos begin.
fn encode_hello_start(out: &mut Vec<u8>, version: u16, random: &[u8; 32], session_id: &[u8]) {
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(random);
    out.push(session_id.len() as u8);
    out.extend_from_slice(session_id);
}

/// Parse what [`encode_hello_start`] writes; a session id over 32 bytes is refused.
fn parse_hello_start(r: &mut Reader<'_>) -> Result<(u16, [u8; 32], Vec<u8>), MessageError> {
    let version = r.u16()?;
    let random: [u8; 32] = r
        .take(32)?
        .try_into()
        .map_err(|_| MessageError::Truncated)?;
    let session_id = r.vec8()?;
    if session_id.len() > 32 {
        return Err(MessageError::BadLength);
    }
    Ok((version, random, session_id.to_vec()))
}

/// ClientHello body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// client_version
    pub version: u16,
    /// random
    pub random: [u8; 32],
    /// session_id (≤ 32 bytes)
    pub session_id: Vec<u8>,
    /// cookie (≤ 255 bytes)
    pub cookie: Vec<u8>,
    /// cipher suites
    pub suites: Vec<u16>,
    /// compression methods
    pub compression: Vec<u8>,
    /// extensions; `None` = no extensions block at all
    pub extensions: Option<Vec<Extension>>,
}

impl ClientHello {
    /// Wire body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        encode_hello_start(&mut out, self.version, &self.random, &self.session_id);
        out.push(self.cookie.len() as u8);
        out.extend_from_slice(&self.cookie);
        out.extend_from_slice(&((self.suites.len() * 2) as u16).to_be_bytes());
        for s in &self.suites {
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.push(self.compression.len() as u8);
        out.extend_from_slice(&self.compression);
        encode_extensions(&mut out, &self.extensions);
        out
    }

    /// Parse a body.
    pub fn parse(body: &[u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let (version, random, session_id) = parse_hello_start(&mut r)?;
        let cookie = r.vec8()?.to_vec();
        let suites_raw = r.vec16()?;
        if suites_raw.is_empty() || suites_raw.len() % 2 != 0 {
            return Err(MessageError::BadLength);
        }
        let suites = suites_raw
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        let compression = r.vec8()?.to_vec();
        if compression.is_empty() {
            return Err(MessageError::BadLength);
        }
        let extensions = parse_extensions(&mut r)?;
        r.finish()?;
        Ok(ClientHello {
            version,
            random,
            session_id,
            cookie,
            suites,
            compression,
            extensions,
        })
    }

    /// The body of extension `t`, if present.
    pub fn extension(&self, t: u16) -> Option<&[u8]> {
        self.extensions
            .as_ref()?
            .iter()
            .find(|e| e.ext_type == t)
            .map(|e| e.data.as_slice())
    }

    /// The app id of ocserv's extension 48018 (`len(1) ‖ id`), if present (§5.1).
    pub fn app_id_extension(&self) -> Option<&[u8]> {
        let d = self.extension(EXT_APP_ID)?;
        let mut r = Reader::new(d);
        let id = r.vec8().ok()?;
        r.finish().ok()?;
        Some(id)
    }
}

/// ServerHello body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHello {
    /// server_version
    pub version: u16,
    /// random
    pub random: [u8; 32],
    /// session_id
    pub session_id: Vec<u8>,
    /// selected suite
    pub suite: u16,
    /// selected compression
    pub compression: u8,
    /// extensions; `None` = no block
    pub extensions: Option<Vec<Extension>>,
}

impl ServerHello {
    /// Wire body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        encode_hello_start(&mut out, self.version, &self.random, &self.session_id);
        out.extend_from_slice(&self.suite.to_be_bytes());
        out.push(self.compression);
        encode_extensions(&mut out, &self.extensions);
        out
    }

    /// Parse a body.
    pub fn parse(body: &[u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let (version, random, session_id) = parse_hello_start(&mut r)?;
        let suite = r.u16()?;
        let compression = r.u8()?;
        let extensions = parse_extensions(&mut r)?;
        r.finish()?;
        Ok(ServerHello {
            version,
            random,
            session_id,
            suite,
            compression,
            extensions,
        })
    }
}

/// HelloVerifyRequest body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloVerifyRequest {
    /// server_version
    pub version: u16,
    /// cookie
    pub cookie: Vec<u8>,
}

impl HelloVerifyRequest {
    /// Wire body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.version.to_be_bytes().to_vec();
        out.push(self.cookie.len() as u8);
        out.extend_from_slice(&self.cookie);
        out
    }

    /// Parse a body.
    pub fn parse(body: &[u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(body);
        let version = r.u16()?;
        let cookie = r.vec8()?.to_vec();
        r.finish()?;
        Ok(HelloVerifyRequest { version, cookie })
    }
}

/// PSK ClientKeyExchange: the identity (`"psk"` for openconnect, §5.4).
pub fn encode_psk_client_key_exchange(identity: &[u8]) -> Vec<u8> {
    let mut out = (identity.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(identity);
    out
}

/// Parse a PSK ClientKeyExchange, returning the identity.
pub fn parse_psk_client_key_exchange(body: &[u8]) -> Result<&[u8], MessageError> {
    let mut r = Reader::new(body);
    let id = r.vec16()?;
    r.finish()?;
    Ok(id)
}

/// Parse a PSK ServerKeyExchange (identity hint), returning the hint.
pub fn parse_psk_server_key_exchange(body: &[u8]) -> Result<&[u8], MessageError> {
    parse_psk_client_key_exchange(body)
}

/// Parse a Finished body (exactly 12 bytes of verify_data).
pub fn parse_finished(body: &[u8]) -> Result<[u8; 12], MessageError> {
    body.try_into().map_err(|_| MessageError::BadLength)
}

/// Parse the body of a ChangeCipherSpec record: `01` (DTLS 1.2) or `01 ‖ msg_seq`
/// (DTLS 0.9, §5.2.3). Returns the DTLS 0.9 msg_seq when `bad_ver`.
pub fn parse_ccs(body: &[u8], bad_ver: bool) -> Result<Option<u16>, MessageError> {
    match (bad_ver, body) {
        (false, [1]) => Ok(None),
        (true, [1, a, b]) => Ok(Some(u16::from_be_bytes([*a, *b]))),
        _ => Err(MessageError::BadLength),
    }
}

/// ChangeCipherSpec body: `01`, or `01 ‖ msg_seq` for DTLS 0.9.
pub fn encode_ccs(bad_ver_seq: Option<u16>) -> Vec<u8> {
    let mut v = vec![1u8];
    if let Some(s) = bad_ver_seq {
        v.extend_from_slice(&s.to_be_bytes());
    }
    v
}

/// Extensions of openconnect 9.01's (GnuTLS) ClientHello (§10.10): optionally
/// signature_algorithms (DTLS 1.2), then session_ticket, renegotiation_info and
/// record_size_limit 16384.
pub fn gnutls_extensions(with_sig_algs: bool) -> Vec<Extension> {
    let mut v = Vec::new();
    if with_sig_algs {
        v.push(signature_algorithms_extension());
    }
    v.push(Extension {
        ext_type: EXT_SESSION_TICKET,
        data: vec![],
    });
    v.push(Extension {
        ext_type: EXT_RENEGOTIATION_INFO,
        data: vec![0],
    });
    v.push(Extension {
        ext_type: EXT_RECORD_SIZE_LIMIT,
        data: vec![0x40, 0x00],
    });
    v
}

/// signature_algorithms with the GnuTLS 3.7.9 scheme list.
pub fn signature_algorithms_extension() -> Extension {
    let mut data = ((GNUTLS_SIGNATURE_SCHEMES.len() * 2) as u16)
        .to_be_bytes()
        .to_vec();
    for s in GNUTLS_SIGNATURE_SCHEMES {
        data.extend_from_slice(&s.to_be_bytes());
    }
    Extension {
        ext_type: EXT_SIGNATURE_ALGORITHMS,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gnutls_09_hello_is_91_bytes() {
        // §10.10: DTLS 0.9 AES128-SHA ClientHello body of openconnect 9.01: 91 bytes
        let ch = ClientHello {
            version: 0x0100,
            random: [0x20; 32],
            session_id: vec![0xaa; 32],
            cookie: vec![],
            suites: vec![0x002f],
            compression: vec![0],
            extensions: Some(gnutls_extensions(false)),
        };
        let b = ch.encode();
        assert_eq!(b.len(), 0x5b);
        assert_eq!(
            crate::tls::hex(&b[b.len() - 17..]),
            "000f00230000ff01000100001c00024000"
        );
        assert_eq!(ClientHello::parse(&b).unwrap(), ch);
        let ch12 = ClientHello {
            version: 0xfefd,
            suites: vec![0x009d],
            extensions: Some(gnutls_extensions(true)),
            ..ch
        };
        assert_eq!(ch12.encode().len(), 0x81);
    }

    #[test]
    fn handshake_header_round_trip() {
        let m = encode_handshake(HT_FINISHED, 2, &[9; 12]);
        assert_eq!(crate::tls::hex(&m[..12]), "1400000c000200000000000c");
        let f = parse_handshake_fragments(&m).unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].header.is_complete());
        assert_eq!(f[0].body, &[9; 12]);
        let mut two = m.clone();
        two.extend(encode_handshake(HT_SERVER_HELLO_DONE, 1, &[]));
        assert_eq!(parse_handshake_fragments(&two).unwrap().len(), 2);
        assert!(parse_handshake_fragments(&m[..20]).is_err());
    }

    #[test]
    fn app_id_extension() {
        let ch = ClientHello {
            version: 0xfefd,
            random: [1; 32],
            session_id: vec![],
            cookie: vec![],
            suites: vec![0x00a9],
            compression: vec![0],
            extensions: Some(vec![Extension {
                ext_type: EXT_APP_ID,
                data: vec![3, 1, 2, 3],
            }]),
        };
        let p = ClientHello::parse(&ch.encode()).unwrap();
        assert_eq!(p.app_id_extension(), Some(&[1u8, 2, 3][..]));
    }

    #[test]
    fn ccs_bodies() {
        assert_eq!(parse_ccs(&[1, 0, 1], true), Ok(Some(1)));
        assert_eq!(parse_ccs(&[1], false), Ok(None));
        assert!(parse_ccs(&[1], true).is_err());
        assert!(parse_ccs(&[1, 0, 1], false).is_err());
        assert_eq!(encode_ccs(Some(2)), vec![1, 0, 2]);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(frags) = parse_handshake_fragments(&data) {
                for f in frags {
                    let _ = ClientHello::parse(f.body);
                }
            }
            let _ = ClientHello::parse(&data);
            let _ = ServerHello::parse(&data);
            let _ = HelloVerifyRequest::parse(&data);
            let _ = parse_psk_client_key_exchange(&data);
            let _ = parse_finished(&data);
            let _ = parse_ccs(&data, true);
        }

        #[test]
        fn client_hello_round_trips(random: [u8; 32], sid in proptest::collection::vec(any::<u8>(), 0..=32), cookie in proptest::collection::vec(any::<u8>(), 0..40), suites in proptest::collection::vec(any::<u16>(), 1..10), ext: bool) {
            let ch = ClientHello { version: 0xfefd, random, session_id: sid, cookie, suites, compression: vec![0], extensions: if ext { Some(gnutls_extensions(true)) } else { None } };
            prop_assert_eq!(ClientHello::parse(&ch.encode()).unwrap(), ch);
        }
    }
}
