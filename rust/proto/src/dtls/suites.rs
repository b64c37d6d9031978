//! Cipher suites and the AnyConnect cipher-name table: which `X-DTLS-CipherSuite` /
//! `X-DTLS12-CipherSuite` name means which suite id, DTLS version, PRF and record
//! protection (protocol.md §3.2, §3.3.2, §5.1, §5.2.1, §5.3, §5.4).
//!
//! Theory of operation: two static tables. [`SUITES`] describes each TLS suite by IANA
//! id (bulk cipher, MAC, key exchange, TLS 1.2 PRF hash). [`CIPHER_NAMES`] maps the names
//! the headend puts into the CONNECT response to a suite id and DTLS version — one row
//! per (header, name), so both headers share the same suite descriptions:
//!
//! * `X-DTLS-CipherSuite` classic names (`AES128-SHA`, `AES256-SHA`, `DES-CBC3-SHA`,
//!   `DHE-RSA-AES128-SHA`, `DHE-RSA-AES256-SHA`, `DES-CBC-SHA`) select **DTLS 0.9**
//!   (`01 00`, TLS 1.0 PRF), §5.2.1; the key-exchange part is nominal (no key exchange
//!   happens in a resumption).
//! * `OC-DTLS1_2-AES128-GCM` = `00 9C` and `OC-DTLS1_2-AES256-GCM` = `00 9D` (SHA-384
//!   PRF — the IETF draft's "…_SHA256" is wrong, §9) select **DTLS 1.2** resumption.
//!   `OC2-DTLS1_2-CHACHA20-POLY1305` is PSK-only and `PSK-NEGOTIATE` selects the PSK
//!   mode: both are refused here with a clear error (use `DtlsMode::Psk`).
//! * `X-DTLS12-CipherSuite` names are the usual OpenSSL names; all select DTLS 1.2; an
//!   ECDHE/DHE name resumes exactly like its RSA twin but keeps its own suite id
//!   (`ECDHE-RSA-AES256-GCM-SHA384` = `C0 30`, §5.3).
//!
//! Name comparison is ASCII case-insensitive (ocserv compares case-insensitively, §3.3.4).
//! `cipher_name` renders the GnuTLS-style description openconnect logs, e.g.
//! `(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)` or `(DTLS1.2)-(ECDHE-RSA)-(AES-256-GCM)`
//! (§10.9, §10.10; a DHE name under DTLS 0.9 shows `DHE-CUSTOM` as openconnect 9.01 did).
//!
//! Not every row has been seen on the wire: the CBC-SHA256/384 and ChaCha20 ECDHE rows
//! come from the name lists that Cisco Secure Client 5 and OpenSSL builds of
//! openconnect *offer* (§3.2); which of them an ASA actually selects is UNCONFIRMED.

use std::fmt;

use crate::ip::mtu::RecordCipher;

/// Which DTLS flavour a session speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtlsVersion {
    /// Cisco's pre-RFC DTLS (`DTLS1_BAD_VER`, version bytes `01 00`), §5.2
    Dtls09,
    /// RFC 6347 DTLS 1.2 (`fe fd`), §5.3/§5.4
    Dtls12,
}

impl DtlsVersion {
    /// `"DTLS0.9"` or `"DTLS1.2"`.
    pub fn label(self) -> &'static str {
        match self {
            DtlsVersion::Dtls09 => "DTLS0.9",
            DtlsVersion::Dtls12 => "DTLS1.2",
        }
    }

    /// Record-layer version bytes.
    pub fn wire(self) -> u16 {
        match self {
            DtlsVersion::Dtls09 => crate::dtls::record::VERSION_DTLS09,
            DtlsVersion::Dtls12 => crate::dtls::record::VERSION_DTLS12,
        }
    }
}

/// The PRF (and handshake hash) in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrfHash {
    /// TLS 1.0 PRF: P_MD5 ⊕ P_SHA1; handshake hash MD5 ‖ SHA1 (DTLS 0.9)
    Tls10,
    /// TLS 1.2 PRF with SHA-256
    Sha256,
    /// TLS 1.2 PRF with SHA-384
    Sha384,
}

/// Bulk cipher of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BulkCipher {
    /// AES-128 in CBC mode
    Aes128Cbc,
    /// AES-256 in CBC mode
    Aes256Cbc,
    /// 3DES-EDE in CBC mode
    TdesCbc,
    /// single DES in CBC mode (old OpenSSL builds only)
    DesCbc,
    /// AES-128-GCM
    Aes128Gcm,
    /// AES-256-GCM
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 7905)
    ChaCha20Poly1305,
}

impl BulkCipher {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            BulkCipher::Aes128Cbc | BulkCipher::Aes128Gcm => 16,
            BulkCipher::Aes256Cbc | BulkCipher::Aes256Gcm | BulkCipher::ChaCha20Poly1305 => 32,
            BulkCipher::TdesCbc => 24,
            BulkCipher::DesCbc => 8,
        }
    }

    /// Block size for CBC ciphers, `None` for AEADs.
    pub fn block_len(self) -> Option<usize> {
        match self {
            BulkCipher::Aes128Cbc | BulkCipher::Aes256Cbc => Some(16),
            BulkCipher::TdesCbc | BulkCipher::DesCbc => Some(8),
            _ => None,
        }
    }

    /// Fixed IV bytes taken from the key block: GCM salt 4, ChaCha20 IV 12, CBC 0
    /// (CBC IVs are explicit, so the key-block IVs are unused).
    pub fn fixed_iv_len(self) -> usize {
        match self {
            BulkCipher::Aes128Gcm | BulkCipher::Aes256Gcm => 4,
            BulkCipher::ChaCha20Poly1305 => 12,
            _ => 0,
        }
    }

    /// GnuTLS name as openconnect prints it.
    pub fn gnutls_name(self) -> &'static str {
        match self {
            BulkCipher::Aes128Cbc => "AES-128-CBC",
            BulkCipher::Aes256Cbc => "AES-256-CBC",
            BulkCipher::TdesCbc => "3DES-CBC",
            BulkCipher::DesCbc => "DES-CBC",
            BulkCipher::Aes128Gcm => "AES-128-GCM",
            BulkCipher::Aes256Gcm => "AES-256-GCM",
            BulkCipher::ChaCha20Poly1305 => "CHACHA20-POLY1305",
        }
    }
}

/// Record MAC of a CBC suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlg {
    /// HMAC-SHA1 (20 bytes)
    Sha1,
    /// HMAC-SHA256 (32 bytes)
    Sha256,
    /// HMAC-SHA384 (48 bytes)
    Sha384,
    /// no separate MAC (AEAD)
    Aead,
}

impl MacAlg {
    /// MAC (and MAC key) length.
    pub fn len(self) -> usize {
        match self {
            MacAlg::Sha1 => 20,
            MacAlg::Sha256 => 32,
            MacAlg::Sha384 => 48,
            MacAlg::Aead => 0,
        }
    }

    /// True for AEAD suites.
    pub fn is_empty(self) -> bool {
        self == MacAlg::Aead
    }
}

/// Nominal key exchange (never performed in resumption; real for PSK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyExchange {
    /// RSA
    Rsa,
    /// DHE-RSA
    DheRsa,
    /// ECDHE-RSA
    EcdheRsa,
    /// ECDHE-ECDSA
    EcdheEcdsa,
    /// plain PSK (RFC 4279)
    Psk,
}

/// One TLS cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suite {
    /// IANA id
    pub id: u16,
    /// IANA name, e.g. `TLS_RSA_WITH_AES_128_CBC_SHA`
    pub iana: &'static str,
    /// key exchange
    pub kx: KeyExchange,
    /// bulk cipher
    pub cipher: BulkCipher,
    /// record MAC
    pub mac: MacAlg,
    /// PRF hash when used with DTLS 1.2
    pub prf12: PrfHash,
}

impl Suite {
    /// PRF for `version` (TLS 1.0 PRF under DTLS 0.9).
    pub fn prf(&self, version: DtlsVersion) -> PrfHash {
        match version {
            DtlsVersion::Dtls09 => PrfHash::Tls10,
            DtlsVersion::Dtls12 => self.prf12,
        }
    }

    /// Record overhead model for the MTU arithmetic of `ip::mtu` (§6.1).
    pub fn record_cipher(&self) -> RecordCipher {
        match (self.cipher, self.cipher.block_len()) {
            (BulkCipher::Aes128Gcm | BulkCipher::Aes256Gcm, _) => RecordCipher::AesGcm,
            (BulkCipher::ChaCha20Poly1305, _) => RecordCipher::ChaCha20Poly1305,
            (_, block) => RecordCipher::Cbc {
                block: block.map_or(16, |b| b as u32),
                mac: self.mac.len() as u32,
            },
        }
    }

    /// GnuTLS-style description, e.g. `(DTLS1.2)-(RSA)-(AES-128-GCM)`.
    pub fn cipher_name(&self, version: DtlsVersion) -> String {
        let kx = match (self.kx, version) {
            (KeyExchange::Rsa, _) => "RSA",
            (KeyExchange::DheRsa, DtlsVersion::Dtls09) => "DHE-CUSTOM",
            (KeyExchange::DheRsa, DtlsVersion::Dtls12) => "DHE-RSA",
            (KeyExchange::EcdheRsa, _) => "ECDHE-RSA",
            (KeyExchange::EcdheEcdsa, _) => "ECDHE-ECDSA",
            (KeyExchange::Psk, _) => "PSK",
        };
        let mac = match self.mac {
            MacAlg::Sha1 => "-(SHA1)",
            MacAlg::Sha256 => "-(SHA256)",
            MacAlg::Sha384 => "-(SHA384)",
            MacAlg::Aead => "",
        };
        format!(
            "({})-({})-({}){}",
            version.label(),
            kx,
            self.cipher.gnutls_name(),
            mac
        )
    }

    /// Bytes of key block a session needs: 2 MAC keys, 2 keys, 2 fixed IVs.
    pub fn key_block_len(&self) -> usize {
        2 * (self.mac.len() + self.cipher.key_len() + self.cipher.fixed_iv_len())
    }
}

macro_rules! suite {
    ($id:expr, $iana:expr, $kx:ident, $c:ident, $m:ident, $p:ident) => {
        Suite {
            id: $id,
            iana: $iana,
            kx: KeyExchange::$kx,
            cipher: BulkCipher::$c,
            mac: MacAlg::$m,
            prf12: PrfHash::$p,
        }
    };
}

/// Every suite this core can protect records with.
pub static SUITES: &[Suite] = &[
    suite!(
        0x0009,
        "TLS_RSA_WITH_DES_CBC_SHA",
        Rsa,
        DesCbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x000A,
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        Rsa,
        TdesCbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x002F,
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        Rsa,
        Aes128Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x0033,
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        DheRsa,
        Aes128Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x0035,
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        Rsa,
        Aes256Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x0039,
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        DheRsa,
        Aes256Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x003C,
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        Rsa,
        Aes128Cbc,
        Sha256,
        Sha256
    ),
    suite!(
        0x003D,
        "TLS_RSA_WITH_AES_256_CBC_SHA256",
        Rsa,
        Aes256Cbc,
        Sha256,
        Sha256
    ),
    suite!(
        0x0067,
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        DheRsa,
        Aes128Cbc,
        Sha256,
        Sha256
    ),
    suite!(
        0x006B,
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        DheRsa,
        Aes256Cbc,
        Sha256,
        Sha256
    ),
    suite!(
        0x008C,
        "TLS_PSK_WITH_AES_128_CBC_SHA",
        Psk,
        Aes128Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x008D,
        "TLS_PSK_WITH_AES_256_CBC_SHA",
        Psk,
        Aes256Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0x009C,
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        Rsa,
        Aes128Gcm,
        Aead,
        Sha256
    ),
    suite!(
        0x009D,
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        Rsa,
        Aes256Gcm,
        Aead,
        Sha384
    ),
    suite!(
        0x009E,
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        DheRsa,
        Aes128Gcm,
        Aead,
        Sha256
    ),
    suite!(
        0x009F,
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        DheRsa,
        Aes256Gcm,
        Aead,
        Sha384
    ),
    suite!(
        0x00A8,
        "TLS_PSK_WITH_AES_128_GCM_SHA256",
        Psk,
        Aes128Gcm,
        Aead,
        Sha256
    ),
    suite!(
        0x00A9,
        "TLS_PSK_WITH_AES_256_GCM_SHA384",
        Psk,
        Aes256Gcm,
        Aead,
        Sha384
    ),
    suite!(
        0xC009,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        EcdheEcdsa,
        Aes128Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0xC00A,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        EcdheEcdsa,
        Aes256Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0xC013,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        EcdheRsa,
        Aes128Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0xC014,
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        EcdheRsa,
        Aes256Cbc,
        Sha1,
        Sha256
    ),
    suite!(
        0xC023,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        EcdheEcdsa,
        Aes128Cbc,
        Sha256,
        Sha256
    ),
    suite!(
        0xC024,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        EcdheEcdsa,
        Aes256Cbc,
        Sha384,
        Sha384
    ),
    suite!(
        0xC027,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        EcdheRsa,
        Aes128Cbc,
        Sha256,
        Sha256
    ),
    suite!(
        0xC028,
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        EcdheRsa,
        Aes256Cbc,
        Sha384,
        Sha384
    ),
    suite!(
        0xC02B,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        EcdheEcdsa,
        Aes128Gcm,
        Aead,
        Sha256
    ),
    suite!(
        0xC02C,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        EcdheEcdsa,
        Aes256Gcm,
        Aead,
        Sha384
    ),
    suite!(
        0xC02F,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        EcdheRsa,
        Aes128Gcm,
        Aead,
        Sha256
    ),
    suite!(
        0xC030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        EcdheRsa,
        Aes256Gcm,
        Aead,
        Sha384
    ),
    suite!(
        0xCCA8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        EcdheRsa,
        ChaCha20Poly1305,
        Aead,
        Sha256
    ),
    suite!(
        0xCCA9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        EcdheEcdsa,
        ChaCha20Poly1305,
        Aead,
        Sha256
    ),
    suite!(
        0xCCAB,
        "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
        Psk,
        ChaCha20Poly1305,
        Aead,
        Sha256
    ),
];

/// TLS_EMPTY_RENEGOTIATION_INFO_SCSV.
pub const SCSV_RENEGOTIATION: u16 = 0x00FF;

/// PSK-NEGOTIATE suites in openconnect/ocserv order (§5.4): the client offers them in
/// this order and the server role prefers them in this order.
pub const PSK_SUITES: [u16; 5] = [0x00A9, 0x00A8, 0xCCAB, 0x008D, 0x008C];

/// Look a suite up by IANA id.
pub fn suite_by_id(id: u16) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.id == id)
}

/// Which CONNECT header a cipher name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherHeader {
    /// `X-DTLS-CipherSuite` (classic names, `OC-DTLS1_2-*`, `PSK-NEGOTIATE`)
    DtlsCipherSuite,
    /// `X-DTLS12-CipherSuite` (OpenSSL names, always DTLS 1.2)
    Dtls12CipherSuite,
}

impl CipherHeader {
    /// The header's spelling.
    pub fn header_name(self) -> &'static str {
        match self {
            CipherHeader::DtlsCipherSuite => "X-DTLS-CipherSuite",
            CipherHeader::Dtls12CipherSuite => "X-DTLS12-CipherSuite",
        }
    }
}

/// What a name row resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameTarget {
    /// a resumable suite at a DTLS version
    Suite(u16, DtlsVersion),
    /// `PSK-NEGOTIATE`: use the PSK mode
    PskNegotiate,
    /// an OpenConnect name that is only valid with PSK-NEGOTIATE
    PskOnly,
}

/// One row of the cipher-name table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherName {
    /// header the name is valid in
    pub header: CipherHeader,
    /// the name as sent
    pub name: &'static str,
    /// what it selects
    pub target: NameTarget,
}

macro_rules! name {
    (X, $n:expr, $id:expr, $v:ident) => {
        CipherName {
            header: CipherHeader::DtlsCipherSuite,
            name: $n,
            target: NameTarget::Suite($id, DtlsVersion::$v),
        }
    };
    (X12, $n:expr, $id:expr) => {
        CipherName {
            header: CipherHeader::Dtls12CipherSuite,
            name: $n,
            target: NameTarget::Suite($id, DtlsVersion::Dtls12),
        }
    };
}

/// The one cipher-name table (§3.2 name lists, §3.3.4 ocserv tables, §5.2.1, §5.3).
pub static CIPHER_NAMES: &[CipherName] = &[
    // X-DTLS-CipherSuite: DTLS 0.9 (§5.2.1)
    name!(X, "AES128-SHA", 0x002F, Dtls09),
    name!(X, "AES256-SHA", 0x0035, Dtls09),
    name!(X, "DES-CBC3-SHA", 0x000A, Dtls09),
    name!(X, "DHE-RSA-AES128-SHA", 0x0033, Dtls09),
    name!(X, "DHE-RSA-AES256-SHA", 0x0039, Dtls09),
    name!(X, "DES-CBC-SHA", 0x0009, Dtls09),
    // X-DTLS-CipherSuite: OpenConnect DTLS 1.2 names (§5.3)
    name!(X, "OC-DTLS1_2-AES128-GCM", 0x009C, Dtls12),
    name!(X, "OC-DTLS1_2-AES256-GCM", 0x009D, Dtls12),
    CipherName {
        header: CipherHeader::DtlsCipherSuite,
        name: "OC2-DTLS1_2-CHACHA20-POLY1305",
        target: NameTarget::PskOnly,
    },
    CipherName {
        header: CipherHeader::DtlsCipherSuite,
        name: "PSK-NEGOTIATE",
        target: NameTarget::PskNegotiate,
    },
    // X-DTLS12-CipherSuite (§3.2 lists, §5.3)
    name!(X12, "AES128-GCM-SHA256", 0x009C),
    name!(X12, "AES256-GCM-SHA384", 0x009D),
    name!(X12, "DHE-RSA-AES128-GCM-SHA256", 0x009E),
    name!(X12, "DHE-RSA-AES256-GCM-SHA384", 0x009F),
    name!(X12, "ECDHE-RSA-AES128-GCM-SHA256", 0xC02F),
    name!(X12, "ECDHE-RSA-AES256-GCM-SHA384", 0xC030),
    name!(X12, "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B),
    name!(X12, "ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C),
    name!(X12, "AES128-SHA", 0x002F),
    name!(X12, "AES256-SHA", 0x0035),
    name!(X12, "DHE-RSA-AES128-SHA", 0x0033),
    name!(X12, "DHE-RSA-AES256-SHA", 0x0039),
    name!(X12, "DES-CBC3-SHA", 0x000A),
    name!(X12, "AES128-SHA256", 0x003C),
    name!(X12, "AES256-SHA256", 0x003D),
    name!(X12, "DHE-RSA-AES128-SHA256", 0x0067),
    name!(X12, "DHE-RSA-AES256-SHA256", 0x006B),
    name!(X12, "ECDHE-RSA-AES128-SHA", 0xC013),
    name!(X12, "ECDHE-RSA-AES256-SHA", 0xC014),
    name!(X12, "ECDHE-ECDSA-AES128-SHA", 0xC009),
    name!(X12, "ECDHE-ECDSA-AES256-SHA", 0xC00A),
    name!(X12, "ECDHE-RSA-AES128-SHA256", 0xC027),
    name!(X12, "ECDHE-RSA-AES256-SHA384", 0xC028),
    name!(X12, "ECDHE-ECDSA-AES128-SHA256", 0xC023),
    name!(X12, "ECDHE-ECDSA-AES256-SHA384", 0xC024),
    name!(X12, "ECDHE-RSA-CHACHA20-POLY1305", 0xCCA8),
    name!(X12, "ECDHE-ECDSA-CHACHA20-POLY1305", 0xCCA9),
];

/// A resolved cipher name: what the handshake and record layer need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherSelection {
    /// the suite (id, cipher, MAC)
    pub suite: &'static Suite,
    /// DTLS version the name implies
    pub version: DtlsVersion,
    /// PRF for this version and suite
    pub prf: PrfHash,
}

/// A cipher name that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedCipher {
    /// header
    pub header: CipherHeader,
    /// the name as given
    pub name: String,
    /// why
    pub reason: &'static str,
}

impl fmt::Display for UnsupportedCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported {} name {:?}: {}",
            self.header.header_name(),
            self.name,
            self.reason
        )
    }
}

impl std::error::Error for UnsupportedCipher {}

/// Map a cipher name from `header` to (suite, version, PRF).
pub fn resolve_cipher_name(
    header: CipherHeader,
    name: &str,
) -> Result<CipherSelection, UnsupportedCipher> {
    let err = |reason| UnsupportedCipher {
        header,
        name: name.to_string(),
        reason,
    };
    let name_trimmed = name.trim();
    let row = CIPHER_NAMES
        .iter()
        .find(|r| r.header == header && r.name.eq_ignore_ascii_case(name_trimmed));
    let Some(row) = row else {
        let other = CIPHER_NAMES
            .iter()
            .any(|r| r.header != header && r.name.eq_ignore_ascii_case(name_trimmed));
        return Err(err(if other {
            "the name belongs to the other DTLS cipher header"
        } else {
            "unknown cipher name"
        }));
    };
    match row.target {
        NameTarget::PskNegotiate => Err(err("PSK-NEGOTIATE selects the PSK mode (DtlsMode::Psk)")),
        NameTarget::PskOnly => Err(err(
            "this OpenConnect suite is only used with PSK-NEGOTIATE",
        )),
        NameTarget::Suite(id, version) => {
            let suite = suite_by_id(id).ok_or_else(|| err("suite not implemented"))?;
            Ok(CipherSelection {
                suite,
                version,
                prf: suite.prf(version),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_suite_exists_and_names_are_unique_per_header() {
        for (i, r) in CIPHER_NAMES.iter().enumerate() {
            if let NameTarget::Suite(id, _) = r.target {
                assert!(suite_by_id(id).is_some(), "{}", r.name);
            }
            for q in &CIPHER_NAMES[i + 1..] {
                assert!(!(q.header == r.header && q.name == r.name), "{}", r.name);
            }
        }
        for s in SUITES {
            assert_eq!(SUITES.iter().filter(|t| t.id == s.id).count(), 1);
        }
        for id in PSK_SUITES {
            assert_eq!(suite_by_id(id).unwrap().kx, KeyExchange::Psk);
        }
    }

    #[test]
    fn resolves_section_5_names() {
        let x = CipherHeader::DtlsCipherSuite;
        let x12 = CipherHeader::Dtls12CipherSuite;
        use DtlsVersion::{Dtls09, Dtls12};
        use PrfHash::{Sha256, Sha384, Tls10};
        // (header, name, suite id, version, PRF, openconnect's description if checked)
        let cases = [
            (
                x,
                "AES128-SHA",
                0x002F,
                Dtls09,
                Tls10,
                "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)",
            ),
            (
                x,
                "dhe-rsa-aes256-sha",
                0x0039,
                Dtls09,
                Tls10,
                "(DTLS0.9)-(DHE-CUSTOM)-(AES-256-CBC)-(SHA1)",
            ),
            (x, "OC-DTLS1_2-AES256-GCM", 0x009D, Dtls12, Sha384, ""),
            (x, "OC-DTLS1_2-AES128-GCM", 0x009C, Dtls12, Sha256, ""),
            (
                x12,
                "ECDHE-RSA-AES256-GCM-SHA384",
                0xC030,
                Dtls12,
                Sha384,
                "(DTLS1.2)-(ECDHE-RSA)-(AES-256-GCM)",
            ),
            (x12, "AES256-SHA", 0x0035, Dtls12, Sha256, ""),
            (
                x12,
                "AES128-GCM-SHA256",
                0x009C,
                Dtls12,
                Sha256,
                "(DTLS1.2)-(RSA)-(AES-128-GCM)",
            ),
        ];
        for (header, name, id, version, prf, description) in cases {
            let r = resolve_cipher_name(header, name).unwrap();
            assert_eq!((r.suite.id, r.version, r.prf), (id, version, prf), "{name}");
            if !description.is_empty() {
                assert_eq!(r.suite.cipher_name(r.version), description, "{name}");
            }
        }
        let e = resolve_cipher_name(x, "PSK-NEGOTIATE").unwrap_err();
        assert!(e.to_string().contains("PSK mode"), "{e}");
        assert!(resolve_cipher_name(x, "OC2-DTLS1_2-CHACHA20-POLY1305").is_err());
        let e = resolve_cipher_name(x, "AES128-GCM-SHA256").unwrap_err();
        assert!(e.to_string().contains("other DTLS cipher header"), "{e}");
        let e = resolve_cipher_name(x, "RC4-MD5").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported X-DTLS-CipherSuite name \"RC4-MD5\": unknown cipher name"
        );
    }

    #[test]
    fn record_ciphers_match_mtu_table() {
        use crate::ip::mtu::dtls_tunnel_mtu;
        let t = |id| dtls_tunnel_mtu(1500, false, suite_by_id(id).unwrap().record_cipher());
        assert_eq!(t(0x002F), 1418);
        assert_eq!(t(0x0035), 1418);
        assert_eq!(t(0x000A), 1426);
        assert_eq!(t(0x009C), 1434);
        assert_eq!(t(0xCCAB), 1442);
    }

    #[test]
    fn key_block_lengths() {
        assert_eq!(suite_by_id(0x002F).unwrap().key_block_len(), 72);
        assert_eq!(suite_by_id(0x009D).unwrap().key_block_len(), 72);
        assert_eq!(suite_by_id(0x000A).unwrap().key_block_len(), 88);
        assert_eq!(suite_by_id(0xCCAB).unwrap().key_block_len(), 88);
    }
}
