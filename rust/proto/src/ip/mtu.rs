//! MTU arithmetic: how much of a link is left for the tunnelled packet once UDP/TCP,
//! DTLS or TLS records and the AnyConnect header have taken their share
//! (protocol.md §6.1–§6.3, vectors in §10.7 and `tests/vectors/record_mtu.json`).
//!
//! Theory of operation: pure integer functions, no state. Three models are kept apart
//! because real implementations disagree and the differences matter to users:
//!
//! * **exact** (OpenSSL `DTLS_get_data_mtu`, openconnect): CBC pads to the block size,
//!   so `data = floor((R − 13 − iv) / b)·b − mac − 1` for a record budget `R`;
//!   AEAD: `R − 13 − explicit nonce − tag`. ASA's `X-DTLS-MTU` (1418 for a 1500-byte
//!   path with AES-CBC-SHA1) matches this model.
//! * **ocserv** (GnuTLS's estimate): a full block of padding is always budgeted, so
//!   AES-CBC-SHA1 gives 1406 where the exact model gives 1418.
//! * **ASA TLS threshold** (`%ASA-6-722036 … threshold 1347`): TCP MSS − TLS record
//!   overhead − 8 (CSTP header). The numbers are confirmed by Cisco documents; the
//!   formula is an UNCONFIRMED model (§6.3).
//!
//! All results saturate at zero instead of underflowing on absurd inputs.

/// openconnect's `DTLS_OVERHEAD`: 1 (AnyConnect header) + 13 (DTLS record header) + 20
/// (SHA-1 MAC) + 32 (IV budget) + 16 (padding) (protocol.md §6.1).
pub const OPENCONNECT_DTLS_OVERHEAD: u32 = 82;
/// DTLS record header.
pub const DTLS_HEADER: u32 = 13;
/// TLS record header.
pub const TLS_HEADER: u32 = 5;
/// CSTP frame header.
pub const CSTP_HEADER: u32 = 8;

/// Record protection, as far as its size overhead goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordCipher {
    /// CBC with an explicit IV of one block and an HMAC (AES: block 16, 3DES: 8; SHA-1: 20).
    Cbc {
        /// cipher block size
        block: u32,
        /// MAC length
        mac: u32,
    },
    /// CBC with the implicit IV of TLS 1.0.
    CbcImplicitIv {
        /// cipher block size
        block: u32,
        /// MAC length
        mac: u32,
    },
    /// AES-GCM: 8-byte explicit nonce + 16-byte tag.
    AesGcm,
    /// ChaCha20-Poly1305: 16-byte tag, no explicit nonce.
    ChaCha20Poly1305,
    /// TLS 1.3 AEAD record: 1 byte of inner content type + 16-byte tag.
    Tls13Aead,
    /// RC4 stream cipher with a MAC (ASA's old default SSL-tunnel cipher).
    Stream {
        /// MAC length
        mac: u32,
    },
}

impl RecordCipher {
    /// Look a cipher up by a short name: `aes-cbc-sha1`, `3des-cbc-sha1`,
    /// `aes-cbc-sha1-tls10`, `aes-gcm`, `chacha20-poly1305`, `tls13-aead`, `rc4-sha1`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "aes-cbc-sha1" => RecordCipher::Cbc { block: 16, mac: 20 },
            "aes-cbc-sha256" => RecordCipher::Cbc { block: 16, mac: 32 },
            "3des-cbc-sha1" => RecordCipher::Cbc { block: 8, mac: 20 },
            "aes-cbc-sha1-tls10" => RecordCipher::CbcImplicitIv { block: 16, mac: 20 },
            "aes-gcm" => RecordCipher::AesGcm,
            "chacha20-poly1305" => RecordCipher::ChaCha20Poly1305,
            "tls13-aead" => RecordCipher::Tls13Aead,
            "rc4-sha1" => RecordCipher::Stream { mac: 20 },
            _ => return None,
        })
    }

    /// Largest plaintext that fits a record *body* of `budget` bytes (exact model).
    pub fn plaintext_in(self, budget: u32) -> u32 {
        match self {
            RecordCipher::Cbc { block, mac } => {
                (budget.saturating_sub(block) / block * block).saturating_sub(mac + 1)
            }
            RecordCipher::CbcImplicitIv { block, mac } => {
                (budget / block * block).saturating_sub(mac + 1)
            }
            RecordCipher::AesGcm => budget.saturating_sub(8 + 16),
            RecordCipher::ChaCha20Poly1305 => budget.saturating_sub(16),
            RecordCipher::Tls13Aead => budget.saturating_sub(1 + 16),
            RecordCipher::Stream { mac } => budget.saturating_sub(mac),
        }
    }

    /// GnuTLS's per-record overhead estimate used by ocserv (a full block of padding).
    pub fn gnutls_overhead(self) -> u32 {
        match self {
            RecordCipher::Cbc { block, mac } | RecordCipher::CbcImplicitIv { block, mac } => {
                DTLS_HEADER + block + mac + block
            }
            RecordCipher::AesGcm => DTLS_HEADER + 8 + 16,
            RecordCipher::ChaCha20Poly1305 => DTLS_HEADER + 16,
            RecordCipher::Tls13Aead => DTLS_HEADER + 1 + 16,
            RecordCipher::Stream { mac } => DTLS_HEADER + mac,
        }
    }
}

/// IP + UDP header bytes: 28 over IPv4, 48 over IPv6.
pub fn ip_udp_overhead(ipv6: bool) -> u32 {
    if ipv6 {
        48
    } else {
        28
    }
}

/// openconnect's requested `X-CSTP-MTU` for a base (link) MTU (§6.1).
pub fn openconnect_request_mtu(base: u32, ipv6: bool) -> u32 {
    base.saturating_sub(OPENCONNECT_DTLS_OVERHEAD + ip_udp_overhead(ipv6))
}

/// Largest DTLS record plaintext for a link MTU, exact model (OpenSSL, ASA `X-DTLS-MTU`).
pub fn dtls_data_mtu(link: u32, ipv6: bool, cipher: RecordCipher) -> u32 {
    let record_budget = link.saturating_sub(ip_udp_overhead(ipv6));
    cipher.plaintext_in(record_budget.saturating_sub(DTLS_HEADER))
}

/// Tunnel MTU over DTLS (data MTU minus the 1-byte AnyConnect header), exact model.
pub fn dtls_tunnel_mtu(link: u32, ipv6: bool, cipher: RecordCipher) -> u32 {
    dtls_data_mtu(link, ipv6, cipher).saturating_sub(1)
}

/// ocserv's `DATA_MTU` (= its `X-CSTP-MTU` / `X-DTLS-MTU`) for a link MTU (§6.2).
pub fn ocserv_data_mtu(link: u32, ipv6: bool, cipher: RecordCipher) -> u32 {
    link.saturating_sub(cipher.gnutls_overhead() + 1 + ip_udp_overhead(ipv6))
}

/// The ASA's TLS (CSTP) packet threshold for a TCP MSS — UNCONFIRMED model (§6.3):
/// MSS − TLS record overhead − CSTP header, CBC padded to whole blocks.
pub fn asa_tls_threshold(mss: u32, cipher: RecordCipher) -> u32 {
    cipher
        .plaintext_in(mss.saturating_sub(TLS_HEADER))
        .saturating_sub(CSTP_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> RecordCipher {
        RecordCipher::from_name(name).unwrap()
    }

    #[test]
    fn section_6_1_table() {
        assert_eq!(dtls_tunnel_mtu(1500, false, c("aes-cbc-sha1")), 1418);
        assert_eq!(dtls_tunnel_mtu(1500, false, c("3des-cbc-sha1")), 1426);
        assert_eq!(dtls_tunnel_mtu(1500, false, c("aes-gcm")), 1434);
        assert_eq!(dtls_tunnel_mtu(1500, false, c("chacha20-poly1305")), 1442);
    }

    #[test]
    fn openconnect_request() {
        assert_eq!(openconnect_request_mtu(1500, false), 1390);
        assert_eq!(openconnect_request_mtu(1500, true), 1370);
        assert_eq!(openconnect_request_mtu(1406, false), 1296);
        assert_eq!(openconnect_request_mtu(0, false), 0);
    }

    #[test]
    fn ocserv_and_asa() {
        assert_eq!(ocserv_data_mtu(1500, false, c("aes-cbc-sha1")), 1406);
        assert_eq!(ocserv_data_mtu(1500, false, c("aes-gcm")), 1434);
        assert_eq!(ocserv_data_mtu(1500, false, c("3des-cbc-sha1")), 1422);
        assert_eq!(ocserv_data_mtu(1406, false, c("aes-gcm")), 1340);
        assert_eq!(asa_tls_threshold(1380, c("rc4-sha1")), 1347);
        assert_eq!(asa_tls_threshold(1460, c("rc4-sha1")), 1427);
        assert_eq!(asa_tls_threshold(1380, c("aes-cbc-sha1-tls10")), 1331);
        assert_eq!(asa_tls_threshold(1380, c("aes-cbc-sha1")), 1315);
        assert_eq!(asa_tls_threshold(1380, c("aes-gcm")), 1343);
    }

    #[test]
    fn absurd_inputs_saturate() {
        for name in [
            "aes-cbc-sha1",
            "3des-cbc-sha1",
            "aes-cbc-sha1-tls10",
            "aes-gcm",
            "chacha20-poly1305",
            "tls13-aead",
            "rc4-sha1",
        ] {
            for link in [0, 1, 20, 48, 64, 100, u32::MAX] {
                let _ = dtls_tunnel_mtu(link, true, c(name));
                let _ = ocserv_data_mtu(link, true, c(name));
                let _ = asa_tls_threshold(link, c(name));
            }
        }
        assert_eq!(RecordCipher::from_name("nope"), None);
    }
}
