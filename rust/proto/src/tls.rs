//! TLS for the CSTP channel, with rustls, in the sans-IO contract.
//!
//! Theory of operation: a `TlsSession` wraps one `rustls::Connection` (client or server
//! role — the mock ASA uses the same type). The caller feeds received TCP bytes with
//! `handle_input`, reads decrypted bytes with `take_plaintext`, queues plaintext with
//! `write` and collects bytes to put on the wire with `poll_transmit`. The session does
//! no IO and reads no clock: certificate validity is checked against the wall-clock
//! time the caller passed at construction (`wall_time_unix_s`). (rustls draws the
//! handshake's randomness from the OS through *ring*; that is the one exception to the
//! project's injected-randomness rule, because TLS keys must be unpredictable.)
//!
//! Server certificate policy, as openconnect: with `pins` (`--servercert
//! pin-sha256:…`) the end-entity certificate's SubjectPublicKeyInfo hash must match
//! one pin, whatever its issuer; otherwise the chain must verify against the roots
//! (`--cafile` or the system bundle the caller read); `insecure` accepts any
//! certificate. In every case the handshake signature itself is verified. A refused
//! server yields `TlsError::Certificate` whose text names the server's pin, so the
//! user can pin it if they trust it.
//!
//! Each `write` call becomes its own TLS record(s): a CSTP frame of at most 16384 bytes
//! written in one call is exactly one record (protocol.md §4.1).

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, Tls12Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::x509;

/// Why TLS failed. Every variant's text is one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsError {
    /// The server certificate was refused.
    Certificate(String),
    /// The peer sent a fatal alert.
    AlertReceived(String),
    /// Corrupt records, bad handshake messages, decrypt failures.
    Protocol(String),
    /// The TCP stream ended without close_notify.
    UnexpectedEof,
    /// Bad configuration given by the caller (certificates, names).
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Certificate(s) => write!(f, "server certificate refused: {s}"),
            TlsError::AlertReceived(s) => write!(f, "TLS alert received from peer: {s}"),
            TlsError::Protocol(s) => write!(f, "TLS error: {s}"),
            TlsError::UnexpectedEof => {
                write!(f, "TLS connection closed by peer without close_notify")
            }
            TlsError::Config(s) => write!(f, "TLS configuration error: {s}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn one_line(s: impl fmt::Display) -> String {
    s.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `TimeProvider` that returns the wall time the caller gave us (no clock reads).
#[derive(Debug)]
struct FixedTime(u64);

impl rustls::time_provider::TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            self.0,
        )))
    }
}

/// Collects NSS key-log lines (`SSLKEYLOGFILE` format) for the caller to write out.
#[derive(Debug, Default)]
struct KeyLogBuffer(Mutex<Vec<String>>);

impl rustls::KeyLog for KeyLogBuffer {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!("{label} {} {}", hex(client_random), hex(secret));
        if let Ok(mut v) = self.0.lock() {
            v.push(line);
        }
    }
    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// The server-certificate policy (see the module doc).
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<String>,
    insecure: bool,
    algs: WebPkiSupportedAlgorithms,
    /// pin of the certificate the server presented, and why it was refused
    report: Mutex<(Option<String>, Option<String>)>,
}

impl Verifier {
    fn refuse(&self, why: String) -> rustls::Error {
        if let Ok(mut r) = self.report.lock() {
            r.1 = Some(why.clone());
        }
        rustls::Error::General(why)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pin = x509::pin_sha256(end_entity);
        if let Ok(mut r) = self.report.lock() {
            r.0.clone_from(&pin);
        }
        let shown = pin
            .clone()
            .unwrap_or_else(|| "(unparseable certificate)".into());
        if !self.pins.is_empty() {
            return match &pin {
                Some(p) if self.pins.iter().any(|want| want == p) => {
                    Ok(ServerCertVerified::assertion())
                }
                _ => Err(self.refuse(format!("its key {shown} matches no --servercert pin"))),
            };
        }
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(webpki) = &self.webpki else {
            return Err(self.refuse(format!(
                "no trusted roots to check it against; pass --cafile, or --servercert {shown} if you trust it"
            )));
        };
        webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| {
                self.refuse(format!(
                    "{}; pass --servercert {shown} if you trust this server",
                    one_line(e)
                ))
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// How to set up a client session.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// host name or IP literal of the headend (SNI and certificate name check)
    pub server_name: String,
    /// PEM bundle of trusted roots (`--cafile` or the system bundle); `None` = no roots
    pub roots_pem: Option<Vec<u8>>,
    /// accepted `pin-sha256:` pins; when non-empty they replace the chain check
    pub pins: Vec<String>,
    /// accept any certificate (`--insecure`)
    pub insecure: bool,
    /// wall-clock time for certificate validity, seconds since 1970
    pub wall_time_unix_s: u64,
    /// collect key-log lines (`SSLKEYLOGFILE`)
    pub keylog: bool,
    /// restrict to TLS 1.2 (an AnyConnect 3.x-era client)
    pub tls12_only: bool,
}

/// The crypto provider, built once and shared by every connection (it is immutable).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

static TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn versions(tls12_only: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if tls12_only {
        TLS12_ONLY
    } else {
        rustls::DEFAULT_VERSIONS
    }
}

/// One TLS connection, client or server role.
pub struct TlsSession {
    conn: rustls::Connection,
    plaintext: Vec<u8>,
    keylog: Option<Arc<KeyLogBuffer>>,
    verifier: Option<Arc<Verifier>>,
    error: Option<TlsError>,
    peer_closed: bool,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("peer_closed", &self.peer_closed)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A client session (the CSTP client).
    pub fn client(opts: &ClientOptions) -> Result<Self, TlsError> {
        let provider = provider();
        let algs = provider.signature_verification_algorithms;
        let time = Arc::new(FixedTime(opts.wall_time_unix_s));
        let webpki = match &opts.roots_pem {
            None => None,
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert =
                        cert.map_err(|e| TlsError::Config(format!("CA bundle: {}", one_line(e))))?;
                    // Skip individual unusable roots, as system bundles contain some.
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(TlsError::Config(
                        "CA bundle holds no usable certificate".into(),
                    ));
                }
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::Config(one_line(e)))?,
                )
            }
        };
        for p in &opts.pins {
            if !p.starts_with("pin-sha256:") {
                return Err(TlsError::Config(format!(
                    "unsupported pin {p:?}: want pin-sha256:<base64>"
                )));
            }
        }
        let verifier = Arc::new(Verifier {
            webpki,
            pins: opts.pins.clone(),
            insecure: opts.insecure,
            algs,
            report: Mutex::new((None, None)),
        });
        let mut config = rustls::ClientConfig::builder_with_details(provider, time)
            .with_protocol_versions(versions(opts.tls12_only))
            .map_err(|e| TlsError::Config(one_line(e)))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        // Each connection has its own config (its verifier reports this connection's
        // pin), so a session cache could never be read again: store no tickets. The
        // default in-memory cache costs ~16 KiB per connection (a 32-server table) plus
        // the tickets the server sends. Keeping TLS 1.2 tickets *requested* leaves the
        // ClientHello byte-for-byte what it was with the (always empty) default cache.
        config.resumption =
            Resumption::disabled().tls12_resumption(Tls12Resumption::SessionIdOrTickets);
        let keylog = opts.keylog.then(|| Arc::new(KeyLogBuffer::default()));
        if let Some(k) = &keylog {
            config.key_log = k.clone();
        }
        let name = ServerName::try_from(opts.server_name.clone())
            .map_err(|_| TlsError::Config(format!("invalid server name {:?}", opts.server_name)))?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| TlsError::Config(one_line(e)))?;
        Ok(TlsSession {
            conn: conn.into(),
            plaintext: Vec::new(),
            keylog,
            verifier: Some(verifier),
            error: None,
            peer_closed: false,
        })
    }

    /// A server session (the mock ASA) from a PEM chain and PEM private key.
    pub fn server(
        chain_pem: &[u8],
        key_pem: &[u8],
        wall_time_unix_s: u64,
        keylog: bool,
    ) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Config(format!("certificate chain: {}", one_line(e))))?;
        if chain.is_empty() {
            return Err(TlsError::Config(
                "certificate chain PEM holds no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Config(format!("private key: {}", one_line(e))))?;
        let mut config = rustls::ServerConfig::builder_with_details(
            provider(),
            Arc::new(FixedTime(wall_time_unix_s)),
        )
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| TlsError::Config(one_line(e)))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(one_line(e)))?;
        let keylog_buf = keylog.then(|| Arc::new(KeyLogBuffer::default()));
        if let Some(k) = &keylog_buf {
            config.key_log = k.clone();
        }
        let conn = rustls::ServerConnection::new(Arc::new(config))
            .map_err(|e| TlsError::Config(one_line(e)))?;
        Ok(TlsSession {
            conn: conn.into(),
            plaintext: Vec::new(),
            keylog: keylog_buf,
            verifier: None,
            error: None,
            peer_closed: false,
        })
    }

    fn map_error(&self, e: rustls::Error) -> TlsError {
        if let Some(v) = &self.verifier {
            if let Ok(r) = v.report.lock() {
                if let Some(why) = &r.1 {
                    return TlsError::Certificate(why.clone());
                }
            }
        }
        match e {
            rustls::Error::AlertReceived(a) => TlsError::AlertReceived(format!("{a:?}")),
            rustls::Error::InvalidCertificate(c) => {
                TlsError::Certificate(one_line(format!("{c:?}")))
            }
            other => TlsError::Protocol(one_line(other)),
        }
    }

    fn fail(&mut self, e: TlsError) -> TlsError {
        self.error = Some(e.clone());
        e
    }

    /// Feed bytes received from TCP. Errors are sticky.
    pub fn handle_input(&mut self, _now: u64, mut data: &[u8]) -> Result<(), TlsError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                // rustls takes nothing once close_notify was read: the peer has finished,
                // and what it sent after that is ignored (looping here would never end)
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(self.fail(TlsError::Protocol(one_line(e)))),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // keep what arrived before the failure (e.g. "401" just before an
                // access_denied alert): the caller still reads it
                let _ = self.drain_plaintext();
                let e = self.map_error(e);
                return Err(self.fail(e));
            }
            self.drain_plaintext()?;
        }
        Ok(())
    }

    fn drain_plaintext(&mut self) -> Result<(), TlsError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(n) => self.plaintext.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(self.fail(TlsError::UnexpectedEof));
                }
                Err(e) => return Err(self.fail(TlsError::Protocol(one_line(e)))),
            }
        }
    }

    /// The TCP stream ended. Ok if the peer sent close_notify first.
    pub fn handle_eof(&mut self, _now: u64) -> Result<(), TlsError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.peer_closed {
            return Ok(());
        }
        let _ = self.conn.read_tls(&mut io::empty());
        if let Err(e) = self.conn.process_new_packets() {
            let e = self.map_error(e);
            return Err(self.fail(e));
        }
        self.drain_plaintext()?;
        if self.peer_closed {
            Ok(())
        } else {
            Err(self.fail(TlsError::UnexpectedEof))
        }
    }

    /// Queue plaintext. One call = one TLS record when `data.len() <= 16384`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), TlsError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.conn
            .writer()
            .write_all(data)
            .map_err(|e| TlsError::Protocol(one_line(e)))
    }

    /// Decrypted bytes received so far (drained).
    pub fn take_plaintext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.plaintext)
    }

    /// Bytes to put on the wire, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Send close_notify.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    /// Still in the handshake?
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Has the peer sent close_notify?
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The sticky error, if any.
    pub fn error(&self) -> Option<&TlsError> {
        self.error.as_ref()
    }

    /// "TLSv1_2" / "TLSv1_3" once negotiated.
    pub fn protocol_version(&self) -> Option<String> {
        self.conn.protocol_version().map(|v| format!("{v:?}"))
    }

    /// IANA name of the negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<String> {
        self.conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
    }

    /// `pin-sha256:` of the server's end-entity certificate (client role, after it was seen).
    pub fn peer_pin(&self) -> Option<String> {
        if let Some(v) = &self.verifier {
            if let Ok(r) = v.report.lock() {
                if r.0.is_some() {
                    return r.0.clone();
                }
            }
        }
        self.conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| x509::pin_sha256(c))
    }

    /// RFC 5705 / RFC 8446 §7.5 exporter (PSK-NEGOTIATE uses `EXPORTER-openconnect-psk`).
    pub fn export_keying_material(
        &self,
        label: &[u8],
        context: Option<&[u8]>,
        len: usize,
    ) -> Result<Vec<u8>, TlsError> {
        self.conn
            .export_keying_material(vec![0u8; len], label, context)
            .map_err(|e| TlsError::Protocol(one_line(e)))
    }

    /// TLS 1.3 KeyUpdate (rekey method "ssl" over TLS 1.3). Fails under TLS 1.2.
    pub fn refresh_traffic_keys(&mut self) -> Result<(), TlsError> {
        self.conn
            .refresh_traffic_keys()
            .map_err(|e| TlsError::Protocol(one_line(e)))
    }

    /// Key-log lines collected since the last call.
    pub fn take_keylog(&mut self) -> Vec<String> {
        self.keylog
            .as_ref()
            .and_then(|k| k.0.lock().ok().map(|mut v| std::mem::take(&mut *v)))
            .unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) struct TestPki {
        pub ca_pem: String,
        pub chain_pem: String,
        pub key_pem: String,
        pub pin: String,
    }

    pub(crate) fn pki() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["vpn.example.com".into()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        TestPki {
            ca_pem: ca.pem(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            pin: x509::pin_sha256(cert.der()).unwrap(),
        }
    }

    pub(crate) const NOW: u64 = 1_800_000_000;

    /// One end of an in-memory connection, for `pump`.
    pub(crate) trait Wire {
        type Error;
        fn wire_out(&mut self) -> Option<Vec<u8>>;
        fn wire_in(&mut self, data: &[u8]) -> Result<(), Self::Error>;
    }

    impl Wire for TlsSession {
        type Error = TlsError;
        fn wire_out(&mut self) -> Option<Vec<u8>> {
            self.poll_transmit()
        }
        fn wire_in(&mut self, data: &[u8]) -> Result<(), TlsError> {
            self.handle_input(0, data)
        }
    }

    /// Move bytes both ways until both ends are quiet; the first error of each end.
    pub(crate) fn pump<A: Wire, B: Wire>(
        a: &mut A,
        b: &mut B,
    ) -> (Result<(), A::Error>, Result<(), B::Error>) {
        let (mut ra, mut rb) = (Ok(()), Ok(()));
        for _ in 0..20 {
            let mut moved = false;
            if let Some(x) = a.wire_out() {
                moved = true;
                if rb.is_ok() {
                    rb = b.wire_in(&x);
                }
            }
            if let Some(x) = b.wire_out() {
                moved = true;
                if ra.is_ok() {
                    ra = a.wire_in(&x);
                }
            }
            if !moved {
                break;
            }
        }
        (ra, rb)
    }

    fn client(opts: ClientOptions) -> TlsSession {
        TlsSession::client(&ClientOptions {
            server_name: "vpn.example.com".into(),
            wall_time_unix_s: NOW,
            ..opts
        })
        .unwrap()
    }

    /// A client made with `opts` (roots from `opts_for(&pki)`) and a server, handshake done.
    fn established(
        opts_for: impl Fn(&TestPki) -> ClientOptions,
    ) -> (TlsSession, TlsSession, TestPki) {
        let p = pki();
        let mut c = client(opts_for(&p));
        let mut s =
            TlsSession::server(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), NOW, false).unwrap();
        let (a, b) = pump(&mut c, &mut s);
        a.unwrap();
        b.unwrap();
        (c, s, p)
    }

    #[test]
    fn handshake_with_ca_and_data_both_ways() {
        let (mut c, mut s, p) = established(|p| ClientOptions {
            roots_pem: Some(p.ca_pem.clone().into_bytes()),
            keylog: true,
            ..Default::default()
        });
        assert!(!c.is_handshaking());
        assert_eq!(c.peer_pin().as_deref(), Some(p.pin.as_str()));
        c.write(b"POST / HTTP/1.1\r\n\r\n").unwrap();
        s.write(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let (a, b) = pump(&mut c, &mut s);
        a.unwrap();
        b.unwrap();
        assert_eq!(s.take_plaintext(), b"POST / HTTP/1.1\r\n\r\n");
        assert_eq!(c.take_plaintext(), b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(!c.take_keylog().is_empty());
        let ek1 = c
            .export_keying_material(b"EXPORTER-openconnect-psk", None, 32)
            .unwrap();
        let ek2 = s
            .export_keying_material(b"EXPORTER-openconnect-psk", None, 32)
            .unwrap();
        assert_eq!(ek1, ek2);
        // clean close
        c.close();
        let _ = pump(&mut c, &mut s);
        assert!(s.peer_closed());
        assert!(s.handle_eof(0).is_ok());
    }

    #[test]
    fn pin_accepts_without_roots_and_refuses_wrong_pin() {
        let p = pki();
        let mut c = client(ClientOptions {
            pins: vec![p.pin.clone()],
            ..Default::default()
        });
        let mut s =
            TlsSession::server(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), NOW, false).unwrap();
        let (a, _) = pump(&mut c, &mut s);
        a.unwrap();
        assert!(!c.is_handshaking());

        let mut c = client(ClientOptions {
            pins: vec!["pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()],
            ..Default::default()
        });
        let mut s =
            TlsSession::server(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), NOW, false).unwrap();
        let (a, b) = pump(&mut c, &mut s);
        let e = a.unwrap_err();
        assert!(matches!(e, TlsError::Certificate(_)), "{e}");
        assert!(e.to_string().contains(&p.pin), "{e}");
        // the server learns why through the alert
        assert!(matches!(b, Err(TlsError::AlertReceived(_))), "{b:?}");
    }

    #[test]
    fn unknown_ca_refused_with_pin_hint_unless_insecure() {
        let p = pki();
        let other = pki();
        let mut c = client(ClientOptions {
            roots_pem: Some(other.ca_pem.into_bytes()),
            ..Default::default()
        });
        let mut s =
            TlsSession::server(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), NOW, false).unwrap();
        let e = pump(&mut c, &mut s).0.unwrap_err();
        assert!(e.to_string().contains("--servercert pin-sha256:"), "{e}");
        assert!(!e.to_string().contains('\n'));

        let mut c = client(ClientOptions {
            insecure: true,
            ..Default::default()
        });
        let mut s =
            TlsSession::server(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), NOW, false).unwrap();
        pump(&mut c, &mut s).0.unwrap();
    }

    #[test]
    fn no_roots_no_pin_is_refused() {
        let p = pki();
        let mut c = client(ClientOptions::default());
        let mut s =
            TlsSession::server(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), NOW, false).unwrap();
        let e = pump(&mut c, &mut s).0.unwrap_err();
        assert!(matches!(e, TlsError::Certificate(_)));
    }

    #[test]
    fn certificate_validity_checked_against_given_wall_time() {
        let p = pki();
        let mut c = TlsSession::client(&ClientOptions {
            server_name: "vpn.example.com".into(),
            roots_pem: Some(p.ca_pem.into_bytes()),
            wall_time_unix_s: 100, // 1970: before rcgen's default notBefore (1975)
            ..Default::default()
        })
        .unwrap();
        let mut s =
            TlsSession::server(p.chain_pem.as_bytes(), p.key_pem.as_bytes(), NOW, false).unwrap();
        let e = pump(&mut c, &mut s).0.unwrap_err();
        assert!(e.to_string().contains("not valid yet"), "{e}");
    }

    #[test]
    fn garbage_is_a_sticky_protocol_error() {
        let mut c = client(ClientOptions {
            insecure: true,
            ..Default::default()
        });
        let _ = c.poll_transmit();
        let e = c
            .handle_input(0, b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .unwrap_err();
        assert!(matches!(e, TlsError::Protocol(_)));
        assert_eq!(c.handle_input(0, b"x"), Err(e));
    }

    #[test]
    fn bytes_after_close_notify_are_ignored_not_spun_on() {
        // rustls' read_tls takes nothing more once close_notify was read: the rest of the
        // same TCP read (here another record) must end handle_input, not loop it forever
        let (mut c, mut s, _) = established(|_| ClientOptions {
            insecure: true,
            ..Default::default()
        });
        c.write(b"BYE").unwrap();
        c.close();
        c.write(b"after").unwrap();
        let mut wire = Vec::new();
        while let Some(x) = c.poll_transmit() {
            wire.extend_from_slice(&x);
        }
        wire.extend_from_slice(b"\x17\x03\x03\x00\x05junk");
        assert_eq!(s.handle_input(0, &wire), Ok(()));
        assert!(s.peer_closed());
        assert_eq!(s.take_plaintext(), b"BYE");
        assert_eq!(s.handle_input(0, b"more"), Ok(()));
        assert_eq!(s.take_plaintext(), b"");
    }

    #[test]
    fn eof_without_close_notify() {
        let mut c = client(ClientOptions {
            insecure: true,
            ..Default::default()
        });
        assert_eq!(c.handle_eof(0), Err(TlsError::UnexpectedEof));
    }

    #[test]
    fn bad_config_is_reported() {
        assert!(matches!(
            TlsSession::client(&ClientOptions {
                server_name: "bad name!".into(),
                insecure: true,
                ..Default::default()
            }),
            Err(TlsError::Config(_))
        ));
        assert!(matches!(
            TlsSession::client(&ClientOptions {
                server_name: "x".into(),
                pins: vec!["sha1:00".into()],
                ..Default::default()
            }),
            Err(TlsError::Config(_))
        ));
        assert!(matches!(
            TlsSession::server(b"", b"", NOW, false),
            Err(TlsError::Config(_))
        ));
    }
}
