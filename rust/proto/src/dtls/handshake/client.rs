//! Client role of the DTLS handshakes (protocol.md §5.2.3, §5.2.5, §5.3, §5.4, §10.10).
//!
//! Theory of operation: `DtlsConnection::client` validates the configuration, draws the
//! client random, sends the ClientHello (layout per `HelloStyle`) and arms the flight
//! timer (1 s, doubling: hellos at 0, 1, 3, 7 s) and the handshake deadline (12 s by
//! default → `HandshakeFailed { reason: "timeout" }`). `client_accept` then takes the
//! server's messages in order:
//!
//! * HelloVerifyRequest → the same hello (same random) again with the cookie and the
//!   next `message_seq`; the transcript restarts (§5.2.3).
//! * ServerHello → checks: version (`01 00` / `fe fd`), compression 0, extensions at
//!   most an empty renegotiation_info (openconnect 9.01 aborts on anything else, e.g.
//!   an unsolicited extended_master_secret, §10.10); resumption: same session id
//!   (else "not resumed (possible MITM)", §5.2.3) and the configured suite; PSK: one
//!   of the offered PSK suites. Keys are derived here.
//! * resumption: server CCS → server keys active; server Finished → verified, then the
//!   client CCS + Finished go out in ONE datagram and the session is up.
//! * PSK: [ServerKeyExchange with identity hint — ignored] ServerHelloDone → the client
//!   sends ClientKeyExchange(`psk`) + CCS + Finished in one datagram (timer re-armed);
//!   server CCS + Finished → verified, up.
//!
//! The client's final resumption flight is resent whenever the server's flight shows up
//! again (connection.rs `on_old`).

use super::super::config::{DtlsClientConfig, DtlsError, HelloStyle, Resolved};
use super::super::connection::{DtlsConnection, HsItem, HsState, Params};
use super::super::flight::{Flight, FlightMsg};
use super::super::keys::{psk_master_secret, verify_data, FinishedBy};
use super::super::messages::{
    encode_handshake, encode_psk_client_key_exchange, gnutls_extensions,
    parse_psk_server_key_exchange, signature_algorithms_extension, ClientHello, HelloVerifyRequest,
    ServerHello, EXT_RENEGOTIATION_INFO, HT_CLIENT_HELLO, HT_CLIENT_KEY_EXCHANGE,
    HT_HELLO_VERIFY_REQUEST, HT_SERVER_HELLO, HT_SERVER_HELLO_DONE, HT_SERVER_KEY_EXCHANGE,
};
use super::super::rng::{Drbg, RandomSource};
use super::super::suites::{suite_by_id, DtlsVersion, KeyExchange, PSK_SUITES, SCSV_RENEGOTIATION};
use crate::cstp::Role;

/// The PSK identity openconnect sends (§5.4).
pub const PSK_IDENTITY: &[u8] = b"psk";

/// More HelloVerifyRequests than this end the handshake.
const MAX_HVR: u8 = 4;

impl DtlsConnection {
    /// A client that sends its ClientHello at `now` (poll it with `poll_transmit`).
    pub fn client(now: u64, config: DtlsClientConfig) -> Result<Self, DtlsError> {
        let rng = Box::new(Drbg::new(config.seed));
        Self::client_with_rng(now, config, rng)
    }

    /// As [`DtlsConnection::client`] with an explicit randomness source (tests, vectors).
    pub fn client_with_rng(
        now: u64,
        config: DtlsClientConfig,
        rng: Box<dyn RandomSource>,
    ) -> Result<Self, DtlsError> {
        let resolved = config.mode.resolve()?;
        if config.session_id.is_empty() || config.session_id.len() > 32 {
            return Err(DtlsError::InvalidConfig(format!(
                "session id / app id must be 1..=32 bytes, not {}",
                config.session_id.len()
            )));
        }
        if resolved == Resolved::Psk && config.psk.is_none() {
            return Err(DtlsError::InvalidConfig(
                "PSK-NEGOTIATE needs the exported PSK".to_string(),
            ));
        }
        let params = Params {
            session_id: config.session_id.clone(),
            master_secret: config.master_secret,
            psk: config.psk,
            handshake_timeout_us: config.handshake_timeout_us,
            dpd_s: config.dpd_s,
            keepalive_s: config.keepalive_s,
            echo_dpd_payload: config.echo_dpd_payload,
            keylog: config.keylog,
            hello_style: config.hello_style,
            hello_verify: false,
            flight_layout: Default::default(),
            psk_suites: PSK_SUITES.to_vec(),
        };
        let mut c = DtlsConnection::new_common(
            Role::Client,
            resolved,
            params,
            rng,
            HsState::ClientWaitHello,
        );
        let mut cr = [0u8; 32];
        c.rng.fill(&mut cr);
        c.client_random = cr;
        if let Resolved::Resume(sel) = resolved {
            c.suite = Some(sel.suite);
        }
        c.deadline = Some(now.saturating_add(config.handshake_timeout_us));
        c.send_client_hello(now);
        Ok(c)
    }

    fn build_client_hello(&self) -> ClientHello {
        let style = self.params.hello_style;
        let v12 = self.version == DtlsVersion::Dtls12;
        let (mut suites, extensions) = match self.resolved {
            Resolved::Resume(sel) => {
                let ext = match style {
                    HelloStyle::Minimal | HelloStyle::Bare => None,
                    HelloStyle::OpenSsl => v12.then(|| vec![signature_algorithms_extension()]),
                    HelloStyle::GnuTls => Some(gnutls_extensions(v12)),
                };
                (vec![sel.suite.id], ext)
            }
            Resolved::Psk => (PSK_SUITES.to_vec(), None),
        };
        if matches!(style, HelloStyle::Minimal | HelloStyle::OpenSsl) {
            suites.push(SCSV_RENEGOTIATION);
        }
        ClientHello {
            version: self.version.wire(),
            random: self.client_random,
            session_id: self.params.session_id.clone(),
            cookie: self.cookie.clone(),
            suites,
            compression: vec![0],
            extensions,
        }
    }

    fn send_client_hello(&mut self, now: u64) {
        let ch = self.build_client_hello();
        let body = ch.encode();
        let seq = self.take_send_seq();
        self.transcript.clear();
        self.transcript_push(HT_CLIENT_HELLO, seq, &body);
        self.hello = Some(ch);
        self.flight = Some(Flight::single(vec![FlightMsg::handshake(
            0,
            encode_handshake(HT_CLIENT_HELLO, seq, &body),
        )]));
        self.transmit_flight();
        self.rtx.arm(now);
    }

    pub(crate) fn client_accept(&mut self, now: u64, item: HsItem) -> bool {
        match (self.state, item) {
            (
                HsState::ClientWaitHello,
                HsItem::Msg {
                    msg_type: HT_HELLO_VERIFY_REQUEST,
                    epoch: 0,
                    body,
                    ..
                },
            ) => {
                let Ok(hvr) = HelloVerifyRequest::parse(&body) else {
                    self.stats.dropped_malformed += 1;
                    return false;
                };
                self.hvr_count += 1;
                if self.hvr_count > MAX_HVR {
                    self.fail("too many HelloVerifyRequests".to_string());
                    return true;
                }
                self.cookie = hvr.cookie;
                self.send_client_hello(now);
                true
            }
            (
                HsState::ClientWaitHello,
                HsItem::Msg {
                    msg_type: HT_SERVER_HELLO,
                    msg_seq,
                    epoch: 0,
                    body,
                },
            ) => self.client_on_server_hello(msg_seq, &body),
            (
                HsState::ClientWaitHelloDone,
                HsItem::Msg {
                    msg_type: HT_SERVER_KEY_EXCHANGE,
                    msg_seq,
                    epoch: 0,
                    body,
                },
            ) => {
                if parse_psk_server_key_exchange(&body).is_err() {
                    self.stats.dropped_malformed += 1;
                    return false;
                }
                self.transcript_push(HT_SERVER_KEY_EXCHANGE, msg_seq, &body);
                true
            }
            (
                HsState::ClientWaitHelloDone,
                HsItem::Msg {
                    msg_type: HT_SERVER_HELLO_DONE,
                    msg_seq,
                    epoch: 0,
                    body,
                },
            ) => {
                if !body.is_empty() {
                    self.stats.dropped_malformed += 1;
                    return false;
                }
                self.transcript_push(HT_SERVER_HELLO_DONE, msg_seq, &body);
                self.client_send_psk_flight(now);
                true
            }
            _ => false,
        }
    }

    fn client_on_server_hello(&mut self, msg_seq: u16, body: &[u8]) -> bool {
        let Ok(sh) = ServerHello::parse(body) else {
            self.stats.dropped_malformed += 1;
            return false;
        };
        if sh.version != self.version.wire() {
            self.fail(format!(
                "server chose version {:04x}, expected {:04x}",
                sh.version,
                self.version.wire()
            ));
            return true;
        }
        if sh.compression != 0 {
            self.fail("server chose compression".to_string());
            return true;
        }
        for e in sh.extensions.iter().flatten() {
            if !(e.ext_type == EXT_RENEGOTIATION_INFO && e.data == [0]) {
                self.fail(format!(
                    "unsolicited ServerHello extension {:#06x}",
                    e.ext_type
                ));
                return true;
            }
        }
        match self.resolved {
            Resolved::Resume(sel) => {
                if sh.session_id != self.params.session_id {
                    self.fail("not resumed (possible MITM)".to_string());
                    return true;
                }
                if sh.suite != sel.suite.id {
                    self.fail(format!(
                        "server chose cipher suite {:04x}, expected {:04x}",
                        sh.suite, sel.suite.id
                    ));
                    return true;
                }
                self.server_random = sh.random;
                self.session_id = sh.session_id;
                self.transcript_push(HT_SERVER_HELLO, msg_seq, body);
                if !self.adopt_master(sel.suite, self.params.master_secret) {
                    return true;
                }
                self.expected_peer_verify = Some(verify_data(
                    sel.prf,
                    &self.params.master_secret,
                    FinishedBy::Server,
                    &self.transcript,
                ));
                self.state = HsState::WaitCcs;
            }
            Resolved::Psk => {
                let offered = self
                    .hello
                    .as_ref()
                    .is_some_and(|h| h.suites.contains(&sh.suite));
                let suite = suite_by_id(sh.suite).filter(|s| s.kx == KeyExchange::Psk);
                let (true, Some(suite)) = (offered, suite) else {
                    self.fail(format!(
                        "server chose cipher suite {:04x}, not offered",
                        sh.suite
                    ));
                    return true;
                };
                self.suite = Some(suite);
                self.server_random = sh.random;
                self.session_id = sh.session_id;
                self.transcript_push(HT_SERVER_HELLO, msg_seq, body);
                self.state = HsState::ClientWaitHelloDone;
            }
        }
        true
    }

    fn client_send_psk_flight(&mut self, now: u64) {
        let (Some(suite), Some(psk)) = (self.suite, self.params.psk) else {
            self.fail("PSK handshake without suite or key".to_string());
            return;
        };
        let prf = suite.prf(DtlsVersion::Dtls12);
        let ms = psk_master_secret(prf, &psk, &self.client_random, &self.server_random);
        if !self.adopt_master(suite, ms) {
            return;
        }
        let cke_body = encode_psk_client_key_exchange(PSK_IDENTITY);
        let cke_seq = self.take_send_seq();
        self.transcript_push(HT_CLIENT_KEY_EXCHANGE, cke_seq, &cke_body);
        let cke = FlightMsg::handshake(
            0,
            encode_handshake(HT_CLIENT_KEY_EXCHANGE, cke_seq, &cke_body),
        );
        if !self.send_finished_flight(vec![cke], true) {
            return;
        }
        self.rtx.arm(now);
        self.state = HsState::WaitCcs;
    }
}
