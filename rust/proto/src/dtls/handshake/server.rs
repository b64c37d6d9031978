//! Server (headend) role of the DTLS handshakes (protocol.md §5.1, §5.2.3, §5.2.5,
//! §5.3, §5.4, §10.9, §10.10).
//!
//! Theory of operation: a server connection is bound to one session registered at
//! CONNECT time (its key is the `X-DTLS-Session-ID` bytes, or the App-ID for
//! PSK-NEGOTIATE) and waits for that session's ClientHello. `server_accept` takes the
//! client's messages in order:
//!
//! * ClientHello → refused silently (counted, no answer — like ocserv, §5.2.5) when the
//!   random is all zeros or the hello belongs to another session (session_id, or for
//!   PSK also ocserv's extension 0xBB92). Version: `01 00` for DTLS 0.9; DTLS 1.2
//!   modes accept a client_version of `fe fd` (or a newer DTLS). With `hello_verify`
//!   a cookie-less hello gets a HelloVerifyRequest (body version `01 00` / `fe ff`,
//!   20-byte cookie, `message_seq` of the hello) — ocserv never sends one, and the
//!   cookie here is per connection, not stateless (mock fidelity, not DoS defence).
//!   Resumption: the client must offer the session's suite; the answer is ServerHello
//!   (echoing the session id, no extensions — §10.9) + CCS (`01 ‖ seq` for 0.9) +
//!   Finished, grouped by `flight_layout`. PSK: the first suite of the server's
//!   preference list [00A9, 00A8, CCAB, 008D, 008C] that the client offers; the
//!   ServerHello carries a fresh random 32-byte session id and, if the client offered
//!   `00 FF` or renegotiation_info, an empty renegotiation_info (ocserv, §10.9); then
//!   ServerHelloDone (no ServerKeyExchange: no identity hint).
//! * PSK ClientKeyExchange → identity must be `psk`; master secret derived.
//! * client CCS → client keys active; client Finished → verified; PSK: the server's CCS
//!   + Finished go out. Up.
//!
//! The server never arms a retransmission timer; it resends its last flight when the
//! client's previous flight arrives again, or (resumption) when the client's
//! application data shows that the client's final flight was lost (connection.rs).

use super::super::config::{DtlsError, Resolved, ServerSessionParams};
use super::super::connection::{DtlsConnection, HsItem, HsState, Params};
use super::super::flight::{Flight, FlightMsg};
use super::super::keys::{psk_master_secret, verify_data, FinishedBy};
use super::super::messages::{
    encode_handshake, parse_psk_client_key_exchange, ClientHello, Extension, HelloVerifyRequest,
    ServerHello, EXT_RENEGOTIATION_INFO, HT_CLIENT_HELLO, HT_CLIENT_KEY_EXCHANGE,
    HT_HELLO_VERIFY_REQUEST, HT_SERVER_HELLO, HT_SERVER_HELLO_DONE,
};
use super::super::record::{VERSION_DTLS09, VERSION_DTLS10, VERSION_DTLS12};
use super::super::rng::{Drbg, RandomSource};
use super::super::suites::{suite_by_id, DtlsVersion, KeyExchange, SCSV_RENEGOTIATION};
use super::client::PSK_IDENTITY;
use crate::cstp::Role;

const COOKIE_LEN: usize = 20;

/// Does this ClientHello belong to the session registered under `key`? (§5.1)
pub fn hello_matches_session(ch: &ClientHello, key: &[u8], psk: bool) -> bool {
    ch.session_id == key || (psk && ch.app_id_extension() == Some(key))
}

impl DtlsConnection {
    /// A server connection for the session registered under `session_key`.
    pub fn server(
        session_key: Vec<u8>,
        params: ServerSessionParams,
        seed: [u8; 32],
    ) -> Result<Self, DtlsError> {
        Self::server_with_rng(session_key, params, Box::new(Drbg::new(seed)))
    }

    /// As [`DtlsConnection::server`] with an explicit randomness source.
    pub fn server_with_rng(
        session_key: Vec<u8>,
        params: ServerSessionParams,
        rng: Box<dyn RandomSource>,
    ) -> Result<Self, DtlsError> {
        let resolved = params.mode.resolve()?;
        if session_key.is_empty() || session_key.len() > 32 {
            return Err(DtlsError::InvalidConfig(format!(
                "session key must be 1..=32 bytes, not {}",
                session_key.len()
            )));
        }
        if resolved == Resolved::Psk {
            if params.psk.is_none() {
                return Err(DtlsError::InvalidConfig(
                    "PSK-NEGOTIATE needs the exported PSK".to_string(),
                ));
            }
            if !params
                .psk_suites
                .iter()
                .any(|id| suite_by_id(*id).is_some_and(|s| s.kx == KeyExchange::Psk))
            {
                return Err(DtlsError::InvalidConfig(
                    "no usable PSK suite configured".to_string(),
                ));
            }
        }
        let p = Params {
            session_id: session_key,
            master_secret: params.master_secret,
            psk: params.psk,
            handshake_timeout_us: params.handshake_timeout_us,
            dpd_s: params.dpd_s,
            keepalive_s: params.keepalive_s,
            echo_dpd_payload: params.echo_dpd_payload,
            keylog: params.keylog,
            hello_style: Default::default(),
            hello_verify: params.hello_verify,
            flight_layout: params.flight_layout,
            psk_suites: params.psk_suites,
        };
        let mut c =
            DtlsConnection::new_common(Role::Server, resolved, p, rng, HsState::ServerWaitHello);
        if let Resolved::Resume(sel) = resolved {
            c.suite = Some(sel.suite);
        }
        Ok(c)
    }

    pub(crate) fn server_accept(&mut self, now: u64, item: HsItem) -> bool {
        match (self.state, item) {
            (
                HsState::ServerWaitHello,
                HsItem::Msg {
                    msg_type: HT_CLIENT_HELLO,
                    msg_seq,
                    epoch: 0,
                    body,
                },
            ) => self.server_on_client_hello(now, msg_seq, &body),
            (
                HsState::ServerWaitKeyExchange,
                HsItem::Msg {
                    msg_type: HT_CLIENT_KEY_EXCHANGE,
                    msg_seq,
                    epoch: 0,
                    body,
                },
            ) => self.server_on_client_key_exchange(msg_seq, &body),
            _ => false,
        }
    }

    fn server_on_client_hello(&mut self, now: u64, msg_seq: u16, body: &[u8]) -> bool {
        let Ok(ch) = ClientHello::parse(body) else {
            self.stats.dropped_malformed += 1;
            return false;
        };
        let psk = self.resolved == Resolved::Psk;
        if ch.random == [0u8; 32] || !hello_matches_session(&ch, &self.params.session_id, psk) {
            return false;
        }
        let version_ok = match self.version {
            DtlsVersion::Dtls09 => ch.version == VERSION_DTLS09,
            DtlsVersion::Dtls12 => (0xfe00..=VERSION_DTLS12).contains(&ch.version),
        };
        if self.deadline.is_none() {
            self.deadline = Some(now.saturating_add(self.params.handshake_timeout_us));
        }
        if !version_ok {
            self.fail(format!("client offered version {:04x}", ch.version));
            return true;
        }
        if !ch.compression.contains(&0) {
            self.fail("client offered no null compression".to_string());
            return true;
        }
        if self.params.hello_verify && (self.cookie.is_empty() || ch.cookie != self.cookie) {
            if self.cookie.is_empty() {
                let mut c = vec![0u8; COOKIE_LEN];
                self.rng.fill(&mut c);
                self.cookie = c;
            }
            let hvr = HelloVerifyRequest {
                version: match self.version {
                    DtlsVersion::Dtls09 => VERSION_DTLS09,
                    DtlsVersion::Dtls12 => VERSION_DTLS10,
                },
                cookie: self.cookie.clone(),
            };
            self.flight = Some(Flight::single(vec![FlightMsg::handshake(
                0,
                encode_handshake(HT_HELLO_VERIFY_REQUEST, msg_seq, &hvr.encode()),
            )]));
            self.transmit_flight();
            return true;
        }
        let suite = match self.resolved {
            Resolved::Resume(sel) => {
                if !ch.suites.contains(&sel.suite.id) {
                    self.fail(format!("client did not offer {}", sel.suite.iana));
                    return true;
                }
                sel.suite
            }
            Resolved::Psk => {
                let pick = self.params.psk_suites.iter().find_map(|id| {
                    suite_by_id(*id).filter(|s| s.kx == KeyExchange::Psk && ch.suites.contains(id))
                });
                let Some(s) = pick else {
                    self.fail("no shared PSK cipher suite".to_string());
                    return true;
                };
                s
            }
        };
        self.suite = Some(suite);
        self.client_random = ch.random;
        self.next_send_seq = msg_seq;
        self.transcript.clear();
        self.transcript_push(HT_CLIENT_HELLO, msg_seq, body);
        let mut sr = [0u8; 32];
        self.rng.fill(&mut sr);
        self.server_random = sr;
        let (session_id, extensions) = match self.resolved {
            Resolved::Resume(_) => (ch.session_id.clone(), None),
            Resolved::Psk => {
                let mut sid = vec![0u8; 32];
                self.rng.fill(&mut sid);
                let reneg = ch.suites.contains(&SCSV_RENEGOTIATION)
                    || ch.extension(EXT_RENEGOTIATION_INFO).is_some();
                let ext = reneg.then(|| {
                    vec![Extension {
                        ext_type: EXT_RENEGOTIATION_INFO,
                        data: vec![0],
                    }]
                });
                (sid, ext)
            }
        };
        self.session_id = session_id.clone();
        let sh = ServerHello {
            version: self.version.wire(),
            random: sr,
            session_id,
            suite: suite.id,
            compression: 0,
            extensions,
        };
        let sh_body = sh.encode();
        let sh_seq = self.take_send_seq();
        self.transcript_push(HT_SERVER_HELLO, sh_seq, &sh_body);
        let sh_msg = encode_handshake(HT_SERVER_HELLO, sh_seq, &sh_body);
        self.hello = Some(ch);
        match self.resolved {
            Resolved::Resume(_) => {
                if !self.adopt_master(suite, self.params.master_secret)
                    || !self.send_finished_flight(vec![FlightMsg::handshake(0, sh_msg)], true)
                {
                    return true;
                }
                self.state = HsState::WaitCcs;
            }
            Resolved::Psk => {
                let shd_seq = self.take_send_seq();
                self.transcript_push(HT_SERVER_HELLO_DONE, shd_seq, &[]);
                self.flight = Some(Flight::with_layout(
                    vec![
                        FlightMsg::handshake(0, sh_msg),
                        FlightMsg::handshake(
                            0,
                            encode_handshake(HT_SERVER_HELLO_DONE, shd_seq, &[]),
                        ),
                    ],
                    self.params.flight_layout,
                ));
                self.transmit_flight();
                self.state = HsState::ServerWaitKeyExchange;
            }
        }
        true
    }

    fn server_on_client_key_exchange(&mut self, msg_seq: u16, body: &[u8]) -> bool {
        let Ok(identity) = parse_psk_client_key_exchange(body) else {
            self.stats.dropped_malformed += 1;
            return false;
        };
        if identity != PSK_IDENTITY {
            self.fail(format!(
                "unknown PSK identity {:?}",
                String::from_utf8_lossy(identity)
            ));
            return true;
        }
        let (Some(suite), Some(psk)) = (self.suite, self.params.psk) else {
            self.fail("PSK handshake without suite or key".to_string());
            return true;
        };
        self.transcript_push(HT_CLIENT_KEY_EXCHANGE, msg_seq, body);
        let prf = suite.prf(DtlsVersion::Dtls12);
        let ms = psk_master_secret(prf, &psk, &self.client_random, &self.server_random);
        if !self.adopt_master(suite, ms) {
            return true;
        }
        self.expected_peer_verify =
            Some(verify_data(prf, &ms, FinishedBy::Client, &self.transcript));
        self.state = HsState::WaitCcs;
        true
    }
}
