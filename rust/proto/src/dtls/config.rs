//! Configuration of a DTLS session, client and server role, and the public event /
//! error / statistics types (protocol.md §3.3.2, §5.1–§5.5).
//!
//! Theory of operation: everything a DTLS session needs is known after the CONNECT
//! exchange — the mode and cipher name from `X-DTLS-CipherSuite` /
//! `X-DTLS12-CipherSuite`, the master secret the client sent in `X-DTLS-Master-Secret`,
//! the server's `X-DTLS-Session-ID` (or `X-DTLS-App-ID` for PSK-NEGOTIATE), the PSK the
//! caller exported from the CSTP TLS session (`EXPORTER-openconnect-psk`, 32 bytes,
//! §5.4), `X-DTLS-DPD` / `X-DTLS-Keepalive`. The configs are plain data; validation
//! (cipher names through the one table in `suites.rs`, lengths) happens when a
//! connection is built and fails with a [`DtlsError`].

use std::fmt;

use super::suites::{
    resolve_cipher_name, CipherHeader, CipherSelection, DtlsVersion, UnsupportedCipher, PSK_SUITES,
};

/// One second in the microsecond timeline.
pub const SECOND_US: u64 = 1_000_000;
/// openconnect's DTLS handshake limit (§5.1: hellos at 0, 1, 3, 7 s, failure at 12 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT_US: u64 = 12 * SECOND_US;

/// How the DTLS keys are agreed (§5.1 table).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DtlsMode {
    /// Cisco resumption with an `X-DTLS-CipherSuite` name: classic names are DTLS 0.9
    /// (`AES128-SHA`, `AES256-SHA`, `DES-CBC3-SHA`, `DHE-RSA-AES256-SHA`, …),
    /// `OC-DTLS1_2-AES128-GCM` / `OC-DTLS1_2-AES256-GCM` are DTLS 1.2 (§5.2, §5.3).
    Legacy {
        /// the header value
        cipher: String,
    },
    /// Cisco resumption with an `X-DTLS12-CipherSuite` name (always DTLS 1.2, §5.3).
    Dtls12 {
        /// the header value
        cipher: String,
    },
    /// ocserv/openconnect PSK-NEGOTIATE: full DTLS 1.2 PSK handshake (§5.4).
    Psk,
}

/// A mode after name resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// abbreviated handshake resuming the CONNECT-time master secret
    Resume(CipherSelection),
    /// PSK-NEGOTIATE
    Psk,
}

impl DtlsMode {
    pub(crate) fn resolve(&self) -> Result<Resolved, DtlsError> {
        match self {
            DtlsMode::Legacy { cipher } => Ok(Resolved::Resume(resolve_cipher_name(
                CipherHeader::DtlsCipherSuite,
                cipher,
            )?)),
            DtlsMode::Dtls12 { cipher } => Ok(Resolved::Resume(resolve_cipher_name(
                CipherHeader::Dtls12CipherSuite,
                cipher,
            )?)),
            DtlsMode::Psk => Ok(Resolved::Psk),
        }
    }
}

impl Resolved {
    pub(crate) fn version(&self) -> DtlsVersion {
        match self {
            Resolved::Resume(sel) => sel.version,
            Resolved::Psk => DtlsVersion::Dtls12,
        }
    }
}

/// Which ClientHello layout the client role sends (the server role accepts all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HelloStyle {
    /// suites `[selected, 00 FF]` (PSK: the five PSK suites + `00 FF`), no extensions
    /// block at all — OpenSSL as driven by openconnect for DTLS 0.9; accepted by
    /// ocserv 1.1.6 in every mode (§5.2.3, §5.3, §5.4).
    #[default]
    Minimal,
    /// as `Minimal`, plus only `signature_algorithms` under DTLS 1.2 (OpenSSL via
    /// openconnect, §5.3; the scheme list used is GnuTLS 3.7.9's — OpenSSL's exact
    /// list is UNCONFIRMED).
    OpenSsl,
    /// openconnect 9.01 (GnuTLS) resumption layout (§10.10): suites `[selected]`,
    /// extensions [signature_algorithms (1.2)], session_ticket, renegotiation_info,
    /// record_size_limit. PSK: the five suites, no extensions (openconnect's GnuTLS PSK
    /// hello layout is UNCONFIRMED).
    GnuTls,
    /// suites `[selected]` only, no extensions (the §10.5 transcript vector).
    Bare,
}

/// How the server groups the records of a flight into datagrams. openconnect 9.01
/// accepts all three for SH/CCS/Finished (§5.2.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FlightLayout {
    /// all records of a flight in one datagram
    #[default]
    OneDatagram,
    /// one record per datagram (what ocserv 1.1.6 does, §5.2.3, §10.9)
    Separate,
    /// the first record alone, the rest together (SH, then CCS + Finished)
    FirstAlone,
}

/// Client role configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtlsClientConfig {
    /// mode and cipher name
    pub mode: DtlsMode,
    /// `X-DTLS-Master-Secret` (resumption modes; ignored for PSK)
    pub master_secret: [u8; 48],
    /// `X-DTLS-Session-ID` bytes (32), or the `X-DTLS-App-ID` bytes for PSK (1..=32)
    pub session_id: Vec<u8>,
    /// PSK-NEGOTIATE key from `EXPORTER-openconnect-psk` (required for `Psk`)
    pub psk: Option<[u8; 32]>,
    /// DRBG seed for randoms and IVs (rng.rs)
    pub seed: [u8; 32],
    /// handshake limit (default 12 s → `HandshakeFailed { reason: "timeout" }`)
    pub handshake_timeout_us: u64,
    /// `X-DTLS-DPD` seconds (0 = off)
    pub dpd_s: u32,
    /// `X-DTLS-Keepalive` seconds (0 = off)
    pub keepalive_s: u32,
    /// answer DPD-REQ with `04 ‖ payload` (ocserv) instead of the single byte `04`
    /// (openconnect 9.01, the client default) — §5.5
    pub echo_dpd_payload: bool,
    /// collect NSS key-log lines (`take_keylog`)
    pub keylog: bool,
    /// ClientHello layout
    pub hello_style: HelloStyle,
}

impl DtlsClientConfig {
    /// A resumption client (Legacy or Dtls12 mode) with openconnect defaults.
    pub fn resumption(
        mode: DtlsMode,
        master_secret: [u8; 48],
        session_id: Vec<u8>,
        seed: [u8; 32],
    ) -> Self {
        DtlsClientConfig {
            mode,
            master_secret,
            session_id,
            psk: None,
            seed,
            handshake_timeout_us: DEFAULT_HANDSHAKE_TIMEOUT_US,
            dpd_s: 0,
            keepalive_s: 0,
            echo_dpd_payload: false,
            keylog: false,
            hello_style: HelloStyle::Minimal,
        }
    }

    /// A PSK-NEGOTIATE client.
    pub fn psk(app_id: Vec<u8>, psk: [u8; 32], seed: [u8; 32]) -> Self {
        DtlsClientConfig {
            psk: Some(psk),
            ..Self::resumption(DtlsMode::Psk, [0; 48], app_id, seed)
        }
    }
}

/// Server role: what was agreed for one session at CONNECT time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSessionParams {
    /// mode and the cipher name the server answered
    pub mode: DtlsMode,
    /// the client's `X-DTLS-Master-Secret` (resumption modes)
    pub master_secret: [u8; 48],
    /// the PSK (PSK mode)
    pub psk: Option<[u8; 32]>,
    /// `X-DTLS-DPD` seconds (0 = off)
    pub dpd_s: u32,
    /// `X-DTLS-Keepalive` seconds (0 = off)
    pub keepalive_s: u32,
    /// give up a started handshake after this long
    pub handshake_timeout_us: u64,
    /// echo DPD payloads (ocserv does, openconnect's MTU probe needs it — §5.5)
    pub echo_dpd_payload: bool,
    /// answer the first ClientHello with a HelloVerifyRequest (ocserv never does)
    pub hello_verify: bool,
    /// datagram grouping of server flights
    pub flight_layout: FlightLayout,
    /// PSK suites the server accepts, in its preference order
    pub psk_suites: Vec<u16>,
    /// collect NSS key-log lines
    pub keylog: bool,
}

impl ServerSessionParams {
    /// A resumption session (Legacy/Dtls12 mode) with ocserv-like defaults.
    pub fn resumption(mode: DtlsMode, master_secret: [u8; 48]) -> Self {
        ServerSessionParams {
            mode,
            master_secret,
            psk: None,
            dpd_s: 0,
            keepalive_s: 0,
            handshake_timeout_us: DEFAULT_HANDSHAKE_TIMEOUT_US,
            echo_dpd_payload: true,
            hello_verify: false,
            flight_layout: FlightLayout::OneDatagram,
            psk_suites: PSK_SUITES.to_vec(),
            keylog: false,
        }
    }

    /// A PSK-NEGOTIATE session.
    pub fn psk(psk: [u8; 32]) -> Self {
        ServerSessionParams {
            psk: Some(psk),
            ..Self::resumption(DtlsMode::Psk, [0; 48])
        }
    }
}

/// What happened on a DTLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtlsEvent {
    /// the handshake completed
    Connected {
        /// `"DTLS0.9"` or `"DTLS1.2"`
        version: &'static str,
        /// IANA suite name
        suite: &'static str,
        /// GnuTLS-style description, e.g. `(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)`
        cipher_name: String,
    },
    /// the handshake cannot complete (`"timeout"`, `"not resumed (possible MITM)"`, …)
    HandshakeFailed {
        /// one line
        reason: String,
    },
    /// DATA (`00`): an IP packet
    Data(Vec<u8>),
    /// DPD-REQ (`03`) payload; already answered
    DpdRequest(Vec<u8>),
    /// DPD-RESP (`04`) payload
    DpdResponse(Vec<u8>),
    /// KEEPALIVE (`07`)
    Keepalive,
    /// nothing received for more than 2·DPD (§5.5, §7.1); the connection is closed
    PeerDead,
    /// the peer closed the established session with an authenticated alert
    Closed {
        /// e.g. `"close_notify"` or `"fatal alert 20"`
        reason: String,
    },
}

/// Errors of the command API (bad *input* never errors: it is dropped and counted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtlsError {
    /// the cipher name cannot be used
    UnsupportedCipher(UnsupportedCipher),
    /// inconsistent configuration
    InvalidConfig(String),
    /// the handshake has not completed
    NotEstablished,
    /// the connection failed or was closed
    Closed,
    /// the plaintext does not fit one record
    TooLarge {
        /// requested plaintext bytes (AnyConnect header included)
        len: usize,
        /// limit
        max: usize,
    },
    /// 2^48 records were sent in this epoch
    SequenceExhausted,
    /// no session registered under this key
    UnknownSession,
}

impl fmt::Display for DtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtlsError::UnsupportedCipher(e) => e.fmt(f),
            DtlsError::InvalidConfig(s) => write!(f, "invalid DTLS configuration: {s}"),
            DtlsError::NotEstablished => write!(f, "DTLS handshake not complete"),
            DtlsError::Closed => write!(f, "DTLS connection closed"),
            DtlsError::TooLarge { len, max } => {
                write!(f, "DTLS plaintext of {len} bytes exceeds {max}")
            }
            DtlsError::SequenceExhausted => write!(f, "DTLS sequence numbers exhausted"),
            DtlsError::UnknownSession => write!(f, "no DTLS session under that key"),
        }
    }
}

impl std::error::Error for DtlsError {}

impl From<UnsupportedCipher> for DtlsError {
    fn from(e: UnsupportedCipher) -> Self {
        DtlsError::UnsupportedCipher(e)
    }
}

/// Counters of one connection. Every dropped datagram/record is counted under exactly
/// one `dropped_*` reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DtlsStats {
    /// datagrams handed to `handle_datagram`
    pub datagrams_in: u64,
    /// datagrams returned by `poll_transmit`
    pub datagrams_out: u64,
    /// records parsed from received datagrams
    pub records_in: u64,
    /// records sent
    pub records_out: u64,
    /// bad framing, bad version, bad handshake/CCS/alert bodies, fragmented messages
    pub dropped_malformed: u64,
    /// MAC, padding or AEAD tag failure
    pub dropped_bad_auth: u64,
    /// duplicate or too-old sequence number
    pub dropped_replayed: u64,
    /// epoch ≥ 2, or plaintext application data at epoch 0
    pub dropped_wrong_epoch: u64,
    /// early epoch-1 records that did not fit the bounded buffer
    pub dropped_early_overflow: u64,
    /// valid messages that do not fit the handshake state
    pub dropped_unexpected: u64,
    /// AnyConnect payload types this core does not take (COMPRESSED `08`, unknown)
    pub dropped_unknown_type: u64,
    /// anything received after failure/close
    pub dropped_closed: u64,
    /// epoch-1 records buffered because they arrived before the keys/handshake end
    pub buffered_early: u64,
    /// flight retransmissions (timer or peer-triggered)
    pub retransmissions: u64,
    /// DATA records received / sent
    pub data_in: u64,
    /// DATA records sent
    pub data_out: u64,
    /// DPD-REQ received
    pub dpd_requests_in: u64,
    /// DPD-REQ sent (timer or `send_control`)
    pub dpd_requests_out: u64,
    /// DPD-RESP received
    pub dpd_responses_in: u64,
    /// DPD-RESP sent
    pub dpd_responses_out: u64,
    /// KEEPALIVE received
    pub keepalives_in: u64,
    /// KEEPALIVE sent
    pub keepalives_out: u64,
}
