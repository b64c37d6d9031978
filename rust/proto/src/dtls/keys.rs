//! Key schedule: the TLS 1.0 and TLS 1.2 PRFs, key-block slicing, Finished
//! `verify_data`, the PSK premaster/master secret and the no-context exporter
//! (protocol.md §5.2.4, §5.3, §5.4, vectors §10.4–§10.6).
//!
//! Theory of operation:
//!
//! * `PRF(secret, label, seed)`: for DTLS 0.9 the TLS 1.0 PRF — secret split into two
//!   halves sharing the middle byte when odd, `P_MD5(S1, label‖seed) ⊕ P_SHA1(S2,
//!   label‖seed)`; for DTLS 1.2 `P_SHA256` or `P_SHA384` by suite (§5.2.4, §5.3).
//! * `key_block = PRF(master, "key expansion", server_random ‖ client_random)`, sliced
//!   `client_MAC ‖ server_MAC ‖ client_key ‖ server_key ‖ client_IV ‖ server_IV`
//!   (MAC keys empty for AEADs, IVs = GCM salts (4) or ChaCha20 IVs (12); CBC IVs are
//!   explicit so none are sliced) — §5.2.4, §5.3.
//! * `verify_data = PRF(master, "client finished" | "server finished", H)[..12]` with
//!   `H = MD5(t) ‖ SHA1(t)` for DTLS 0.9 and `H = Hash_suite(t)` for DTLS 1.2. Which
//!   bytes go into the transcript `t` (bodies only for 0.9, 12-byte headers included for
//!   1.2; HelloVerifyRequest and the first ClientHello excluded) is the handshake's
//!   business (`handshake/mod.rs`); here `t` is just bytes.
//! * PSK (RFC 4279 §2): `premaster = BE16(32) ‖ 0×32 ‖ BE16(32) ‖ psk`,
//!   `master = PRF(premaster, "master secret", client_random ‖ server_random)[..48]`
//!   (no extended master secret: the emulator never offers it, §5.4).
//! * `export(master, label, client_random ‖ server_random)` is the TLS ≤ 1.2 no-context
//!   RFC 5705 exporter, used only to check the §10.6 PSK vectors: the real PSK comes
//!   from the CSTP TLS session (`TlsSession::export_keying_material`).

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384};

use super::suites::{DtlsVersion, PrfHash, Suite};

/// Length of `verify_data`.
pub const VERIFY_DATA_LEN: usize = 12;
/// Length of a master secret.
pub const MASTER_SECRET_LEN: usize = 48;

/// `P_hash(secret, seed)` truncated to `out.len()`, XORed into `out` when `xor`.
fn p_hash<M: Mac + hmac::digest::KeyInit + Clone>(
    secret: &[u8],
    seed: &[&[u8]],
    out: &mut [u8],
    xor: bool,
) {
    let Ok(base) = <M as hmac::digest::KeyInit>::new_from_slice(secret) else {
        return; // HMAC accepts keys of any length; unreachable
    };
    // A(1) = HMAC(secret, seed)
    let mut a_mac = base.clone();
    for s in seed {
        a_mac.update(s);
    }
    let mut a = a_mac.finalize().into_bytes();
    let mut filled = 0;
    while filled < out.len() {
        let mut m = base.clone();
        m.update(&a);
        for s in seed {
            m.update(s);
        }
        let block = m.finalize().into_bytes();
        for (o, b) in out.iter_mut().skip(filled).zip(block.iter()) {
            if xor {
                *o ^= *b;
            } else {
                *o = *b;
            }
        }
        filled += block.len();
        let mut next = base.clone();
        next.update(&a);
        a = next.finalize().into_bytes();
    }
}

/// The PRF selected by `hash`, writing `out.len()` bytes.
pub fn prf_into(hash: PrfHash, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    let parts: [&[u8]; 2] = [label, seed];
    match hash {
        PrfHash::Tls10 => {
            let half = secret.len().div_ceil(2);
            let s1 = secret.get(..half).unwrap_or_default();
            let s2 = secret.get(secret.len() - half..).unwrap_or_default();
            p_hash::<Hmac<Md5>>(s1, &parts, out, false);
            p_hash::<Hmac<Sha1>>(s2, &parts, out, true);
        }
        PrfHash::Sha256 => p_hash::<Hmac<Sha256>>(secret, &parts, out, false),
        PrfHash::Sha384 => p_hash::<Hmac<Sha384>>(secret, &parts, out, false),
    }
}

/// The PRF as a `Vec`.
pub fn prf(hash: PrfHash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    prf_into(hash, secret, label, seed, &mut out);
    out
}

/// `first ‖ second`: the PRF seed made of two randoms.
fn two_randoms(first: &[u8; 32], second: &[u8; 32]) -> [u8; 64] {
    let mut seed = [0u8; 64];
    let (a, b) = seed.split_at_mut(32);
    a.copy_from_slice(first);
    b.copy_from_slice(second);
    seed
}

/// `key_block = PRF(master, "key expansion", server_random ‖ client_random)`.
pub fn key_block(
    hash: PrfHash,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
    len: usize,
) -> Vec<u8> {
    let seed = two_randoms(server_random, client_random);
    prf(hash, master, b"key expansion", &seed, len)
}

/// One direction's keys.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectionKeys {
    /// HMAC key (empty for AEADs)
    pub mac_key: Vec<u8>,
    /// cipher key
    pub key: Vec<u8>,
    /// fixed IV: GCM salt (4), ChaCha20 IV (12), empty for CBC
    pub iv: Vec<u8>,
}

impl std::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectionKeys(..)")
    }
}

/// Both directions' keys of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionKeys {
    /// what the client writes (server reads)
    pub client: DirectionKeys,
    /// what the server writes (client reads)
    pub server: DirectionKeys,
}

/// Slice a key block for `suite` (§5.2.4: MACs, keys, IVs in that order).
pub fn slice_key_block(suite: &Suite, block: &[u8]) -> Option<SessionKeys> {
    let m = suite.mac.len();
    let k = suite.cipher.key_len();
    let v = suite.cipher.fixed_iv_len();
    let mut pos = 0usize;
    let mut take = |n: usize| {
        let s = block.get(pos..pos + n).map(<[u8]>::to_vec);
        pos += n;
        s
    };
    let cm = take(m)?;
    let sm = take(m)?;
    let ck = take(k)?;
    let sk = take(k)?;
    let civ = take(v)?;
    let siv = take(v)?;
    Some(SessionKeys {
        client: DirectionKeys {
            mac_key: cm,
            key: ck,
            iv: civ,
        },
        server: DirectionKeys {
            mac_key: sm,
            key: sk,
            iv: siv,
        },
    })
}

/// Derive and slice the session keys.
pub fn derive_session_keys(
    suite: &Suite,
    version: DtlsVersion,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Option<SessionKeys> {
    let block = key_block(
        suite.prf(version),
        master,
        client_random,
        server_random,
        suite.key_block_len(),
    );
    slice_key_block(suite, &block)
}

/// The handshake hash fed to the Finished PRF: MD5‖SHA1 for TLS 1.0 PRF, else the
/// PRF hash.
pub fn handshake_hash(hash: PrfHash, transcript: &[u8]) -> Vec<u8> {
    match hash {
        PrfHash::Tls10 => {
            let mut h = Md5::digest(transcript).to_vec();
            h.extend_from_slice(&Sha1::digest(transcript));
            h
        }
        PrfHash::Sha256 => Sha256::digest(transcript).to_vec(),
        PrfHash::Sha384 => Sha384::digest(transcript).to_vec(),
    }
}

/// Who sent a Finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishedBy {
    /// "client finished"
    Client,
    /// "server finished"
    Server,
}

/// `verify_data` over `transcript`.
pub fn verify_data(
    hash: PrfHash,
    master: &[u8],
    by: FinishedBy,
    transcript: &[u8],
) -> [u8; VERIFY_DATA_LEN] {
    let label: &[u8] = match by {
        FinishedBy::Client => b"client finished",
        FinishedBy::Server => b"server finished",
    };
    let mut out = [0u8; VERIFY_DATA_LEN];
    prf_into(
        hash,
        master,
        label,
        &handshake_hash(hash, transcript),
        &mut out,
    );
    out
}

/// RFC 4279 plain-PSK premaster secret.
pub fn psk_premaster(psk: &[u8]) -> Vec<u8> {
    let n = u16::try_from(psk.len()).unwrap_or(u16::MAX);
    let mut pms = Vec::with_capacity(4 + 2 * psk.len());
    pms.extend_from_slice(&n.to_be_bytes());
    pms.resize(2 + psk.len(), 0);
    pms.extend_from_slice(&n.to_be_bytes());
    pms.extend_from_slice(psk);
    pms
}

/// Master secret of a plain-PSK full handshake (no extended master secret).
pub fn psk_master_secret(
    hash: PrfHash,
    psk: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> [u8; MASTER_SECRET_LEN] {
    let seed = two_randoms(client_random, server_random);
    let mut out = [0u8; MASTER_SECRET_LEN];
    prf_into(hash, &psk_premaster(psk), b"master secret", &seed, &mut out);
    out
}

/// TLS ≤ 1.2 RFC 5705 exporter without context:
/// `PRF(master, label, client_random ‖ server_random)[..len]` (§5.4, §10.6).
pub fn export_no_context(
    hash: PrfHash,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
    label: &[u8],
    len: usize,
) -> Vec<u8> {
    let seed = two_randoms(client_random, server_random);
    prf(hash, master, label, &seed, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtls::suites::suite_by_id;
    use crate::dtls::tests::seq;
    use crate::tls::hex;

    fn r32(start: u8) -> [u8; 32] {
        seq(start, 32).try_into().unwrap()
    }

    #[test]
    fn section_10_4_key_block() {
        let kb = key_block(PrfHash::Tls10, &seq(0, 48), &r32(0x20), &r32(0x40), 104);
        assert_eq!(
            hex(&kb),
            "9c89c8e30df27bcd60c66e7cf38d21b2b25861a77b19ef35f6803e745bb2d480e49862442ca37f1e\
             7ee97443f5d302ce701491951fa8db5b45ab0ba39e22c81236ff3c103f8726da\
             32dec8d3f387ffe870aa40ca2f2b431c09e299ebda253e66acae886418e33f0d"
        );
        let keys = slice_key_block(suite_by_id(0x002F).unwrap(), &kb).unwrap();
        assert_eq!(hex(&keys.server.key), "45ab0ba39e22c81236ff3c103f8726da");
    }

    #[test]
    fn section_10_5_keys() {
        let keys = derive_session_keys(
            suite_by_id(0x009D).unwrap(),
            DtlsVersion::Dtls12,
            &seq(0, 48),
            &r32(0x20),
            &r32(0x40),
        )
        .unwrap();
        assert_eq!(
            hex(&keys.client.key),
            "6423c1a4d6f2da33474cf077bc99e890bdceb9e5b94c54cd6d6d3f3b10905dc6"
        );
        assert_eq!(hex(&keys.server.iv), "9e7af7e8");
        assert!(keys.client.mac_key.is_empty());
    }

    #[test]
    fn section_10_6_exporter() {
        let ms = seq(0, 48);
        let e = export_no_context(
            PrfHash::Sha256,
            &ms,
            &r32(0x20),
            &r32(0x40),
            b"EXPORTER-openconnect-psk",
            32,
        );
        assert_eq!(
            hex(&e),
            "ce94b17e3824667e42913829eee90f42fac8730ac94149d50eb3dce2e0ec7615"
        );
    }

    #[test]
    fn psk_premaster_layout() {
        let pms = psk_premaster(&[7u8; 32]);
        assert_eq!(pms.len(), 68);
        assert_eq!(&pms[..2], &[0, 32]);
        assert!(pms[2..34].iter().all(|b| *b == 0));
        assert_eq!(&pms[34..36], &[0, 32]);
        assert_eq!(&pms[36..], &[7u8; 32]);
    }

    #[test]
    fn tls12_prf_rfc_style_vector() {
        // Widely used TLS 1.2 PRF (SHA-256) test vector (IETF TLS WG mailing list,
        // "test vectors for TLS 1.2 PRF"): secret/seed/label below, 100 bytes out.
        let secret = [
            0x9b, 0xbe, 0x43, 0x6b, 0xa9, 0x40, 0xf0, 0x17, 0xb1, 0x76, 0x52, 0x84, 0x9a, 0x71,
            0xdb, 0x35,
        ];
        let seed = [
            0xa0, 0xba, 0x9f, 0x93, 0x6c, 0xda, 0x31, 0x18, 0x27, 0xa6, 0xf7, 0x96, 0xff, 0xd5,
            0x19, 0x8c,
        ];
        let out = prf(PrfHash::Sha256, &secret, b"test label", &seed, 100);
        assert_eq!(hex(&out[..16]), "e3f229ba727be17b8d122620557cd453");
    }
}
