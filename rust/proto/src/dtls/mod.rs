//! DTLS for the AnyConnect "DTLS-Tunnel": both roles, all three keying modes, sans-IO
//! (protocol.md §5, §6.1, vectors §10.4–§10.6, real-peer behaviour §10.9–§10.10).
//!
//! Theory of operation. The CONNECT exchange (cstp) agrees everything up front; this
//! module turns that into an encrypted datagram channel:
//!
//! | mode ([`DtlsMode`]) | wire | handshake |
//! |---|---|---|
//! | `Legacy { "AES128-SHA" … }` | DTLS 0.9 (`01 00`, Cisco `DTLS1_BAD_VER`) | abbreviated resumption of `X-DTLS-Master-Secret` (§5.2) |
//! | `Legacy { "OC-DTLS1_2-AES…-GCM" }`, `Dtls12 { … }` | DTLS 1.2 (`fe fd`) | abbreviated resumption (§5.3) |
//! | `Psk` | DTLS 1.2 | full plain-PSK handshake with the `EXPORTER-openconnect-psk` key (§5.4) |
//!
//! Layers, bottom up:
//!
//! * [`record`] — 13-byte record header, strict datagram splitting;
//! * [`replay`] — 64-entry anti-replay window per epoch;
//! * [`suites`] — suite table and the one cipher-name table for both CONNECT headers;
//! * [`keys`] — TLS 1.0 / 1.2 PRFs, key blocks, Finished `verify_data`, PSK master;
//! * [`cipher`] — record protection behind the [`cipher::RecordProtection`] trait:
//!   CBC MAC-then-encrypt (RustCrypto `aes`/`des`/`cbc`/`hmac`), AES-GCM and
//!   ChaCha20-Poly1305 (`ring`);
//! * [`messages`] — handshake header and message bodies;
//! * [`flight`] — flights and the 1 s doubling retransmission timer;
//! * [`handshake`] — client and server handshakes as typestate machines (one type per
//!   state, holding exactly that state's data; transitions consume it);
//! * [`connection`] — [`DtlsConnection`]: one session, either role, with the sans-IO
//!   contract (`handle_datagram` / `poll_transmit` / `poll_event` / `next_deadline` /
//!   `handle_timeout`), the AnyConnect 1-byte payload types and DPD/keepalive timers
//!   (`cstp::KeepaliveTimers`, openconnect semantics);
//! * [`endpoint`] — [`DtlsEndpoint`]: the headend's one-socket demultiplexer routing
//!   ClientHellos by session id / app id like ocserv;
//! * [`rng`] — the injected ChaCha20 DRBG (no OS randomness in the core);
//! * [`fuzz`] — fuzz entry points.
//!
//! House rules: no IO, no clock (every input carries `now` in microseconds), no OS
//! randomness, no panics on untrusted bytes (bad input is dropped and counted in
//! [`DtlsStats`]; a handshake that cannot complete ends in one
//! [`DtlsEvent::HandshakeFailed`]).
//!
//! UNCONFIRMED facts this module relies on (as labelled in protocol.md): what an ASA
//! does with HelloVerifyRequests, unknown session ids and DPD payload echoes (§9 items
//! 2); which of the CBC-SHA256/384 and ChaCha20 ECDHE names an ASA selects (§3.2);
//! OpenSSL's exact `signature_algorithms` list (`HelloStyle::OpenSsl` uses GnuTLS's);
//! openconnect's GnuTLS PSK ClientHello layout. Limitations: handshake messages must be
//! unfragmented (every peer's are, they are < 200 bytes); no renegotiation (epoch ≥ 2
//! is dropped — a DTLS rekey is a new connection, as openconnect does it); no alerts
//! are sent (ocserv and openconnect fail silently in the cases modelled here); the
//! CBC receive path is padding-oracle-resistant but not Lucky-13-constant-time.

pub mod cipher;
pub mod config;
pub mod connection;
pub mod endpoint;
pub mod flight;
pub mod fuzz;
pub mod handshake;
pub mod keys;
pub mod messages;
pub mod record;
pub mod replay;
pub mod rng;
pub mod suites;

pub use config::{
    DtlsClientConfig, DtlsError, DtlsEvent, DtlsMode, DtlsStats, FlightLayout, HelloStyle,
    ServerSessionParams, DEFAULT_HANDSHAKE_TIMEOUT_US,
};
pub use connection::{alert_name, payload_type, DtlsConnection};
pub use endpoint::{DatagramDrop, DtlsEndpoint, EndpointStats, PeerId};
pub use rng::{Drbg, RandomSource, ScriptedRandom};
pub use suites::{
    resolve_cipher_name, CipherHeader, CipherSelection, DtlsVersion, Suite, UnsupportedCipher,
};

#[cfg(test)]
mod tests;
