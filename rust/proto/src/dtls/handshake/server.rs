//! Server (headend) role of the DTLS handshakes (protocol.md §5.1, §5.2.3, §5.2.5,
//! §5.3, §5.4, §10.9, §10.10).
//!
//! Theory of operation: a server connection is bound to one session registered at
//! CONNECT time (its key is the `X-DTLS-Session-ID` bytes, or the App-ID for
//! PSK-NEGOTIATE) and waits for that session's ClientHello in
//! `ServerExpectClientHello`; the states take the client's messages in order:
//!
//! * `ServerExpectClientHello { cookie }`: ClientHello → refused silently (counted, no answer — like ocserv, §5.2.5) when the
//!   random is all zeros or the hello belongs to another session (session_id, or for
//!   PSK also ocserv's extension 0xBB92). Version: `01 00` for DTLS 0.9; DTLS 1.2
//!   modes accept a client_version of `fe fd` (or a newer DTLS). With `hello_verify`
//!   a cookie-less hello gets a HelloVerifyRequest (body version `01 00` / `fe ff`,
//!   20-byte cookie, `message_seq` of the hello) — ocserv never sends one, and the
//!   cookie here is per connection, not stateless (mock fidelity, not DoS defence).
//!   Resumption: the client must offer the session's suite; the answer is ServerHello
//!   (echoing the session id, no extensions — §10.9) + CCS (`01 ‖ seq` for 0.9) +
//!   Finished, grouped by `flight_layout` → `ExpectCcs` with the reply sent (a
//!   HelloVerifyRequest keeps the state, now with its cookie). PSK: the first suite of
//!   the server's
//!   preference list [00A9, 00A8, CCAB, 008D, 008C] that the client offers; the
//!   ServerHello carries a fresh random 32-byte session id and, if the client offered
//!   `00 FF` or renegotiation_info, an empty renegotiation_info (ocserv, §10.9); then
//!   ServerHelloDone (no ServerKeyExchange: no identity hint) →
//!   `ServerExpectClientKeyExchange`.
//! * PSK, `ServerExpectClientKeyExchange { suite, client_random, server_random,
//!   transcript }`: ClientKeyExchange → identity must be `psk`; master secret and keys
//!   derived → `ExpectCcs` with the reply owed.
//! * client CCS → client keys active (`ExpectFinished`); client Finished → verified;
//!   PSK: the server's CCS + Finished go out. Up (`Established`).
//!
//! The server never arms a retransmission timer; it resends its last flight when the
//! client's previous flight arrives again, or (resumption) when the client's
//! application data shows that the client's final flight was lost (connection.rs).

use super::super::config::{DtlsError, Resolved, ServerSessionParams};
use super::super::connection::{Context, DtlsConnection, HsItem, Params};
use super::super::flight::{Flight, FlightMsg};
use super::super::keys::{psk_master_secret, verify_data, FinishedBy, SessionKeys};
use super::super::messages::{
    encode_handshake, parse_psk_client_key_exchange, ClientHello, Extension, HelloVerifyRequest,
    ServerHello, EXT_RENEGOTIATION_INFO, HT_CLIENT_HELLO, HT_CLIENT_KEY_EXCHANGE,
    HT_HELLO_VERIFY_REQUEST, HT_SERVER_HELLO, HT_SERVER_HELLO_DONE,
};
use super::super::record::{VERSION_DTLS09, VERSION_DTLS10, VERSION_DTLS12};
use super::super::rng::{Drbg, RandomSource};
use super::super::suites::{suite_by_id, DtlsVersion, KeyExchange, Suite, SCSV_RENEGOTIATION};
use super::client::PSK_IDENTITY;
use super::{
    derive_keys, expect_peer_finished, send_ccs_finished, ExpectCcs, Failure, HsState, Outcome,
    OwedFinished, PeerFinished, Reply, Transcript,
};
use crate::cstp::Role;

const COOKIE_LEN: usize = 20;

/// Does this ClientHello belong to the session registered under `key`? (§5.1)
pub fn hello_matches_session(ch: &ClientHello, key: &[u8], psk: bool) -> bool {
    ch.session_id == key || (psk && ch.app_id_extension() == Some(key))
}

/// Waiting for the session's ClientHello.
pub(crate) struct ServerExpectClientHello {
    /// the cookie of our HelloVerifyRequest, once one went out (`hello_verify` only)
    cookie: Option<Vec<u8>>,
}

/// PSK: ServerHello + ServerHelloDone sent; the ClientKeyExchange is expected.
pub(crate) struct ServerExpectClientKeyExchange {
    suite: &'static Suite,
    client_random: [u8; 32],
    server_random: [u8; 32],
    transcript: Transcript,
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
        let mut cx = Context::new(Role::Server, resolved, p, rng);
        if let Resolved::Resume(sel) = resolved {
            cx.info.suite = Some(sel.suite);
        }
        Ok(DtlsConnection::from_parts(
            HsState::ServerExpectClientHello(ServerExpectClientHello { cookie: None }),
            cx,
        ))
    }
}

impl ServerExpectClientHello {
    pub(crate) fn handle(
        self,
        cx: &mut Context,
        now: u64,
        item: HsItem,
    ) -> Result<Outcome, Failure> {
        match item {
            HsItem::Msg {
                msg_type: HT_CLIENT_HELLO,
                msg_seq,
                epoch: 0,
                body,
            } => self.on_client_hello(cx, now, msg_seq, &body),
            _ => Ok(Outcome::Ignored(HsState::ServerExpectClientHello(self))),
        }
    }

    fn on_client_hello(
        self,
        cx: &mut Context,
        now: u64,
        msg_seq: u16,
        body: &[u8],
    ) -> Result<Outcome, Failure> {
        let Ok(ch) = ClientHello::parse(body) else {
            cx.stats.dropped_malformed += 1;
            return Ok(Outcome::Ignored(HsState::ServerExpectClientHello(self)));
        };
        let psk = cx.resolved == Resolved::Psk;
        if ch.random == [0u8; 32] || !hello_matches_session(&ch, &cx.params.session_id, psk) {
            return Ok(Outcome::Ignored(HsState::ServerExpectClientHello(self)));
        }
        let version_ok = match cx.version {
            DtlsVersion::Dtls09 => ch.version == VERSION_DTLS09,
            DtlsVersion::Dtls12 => (0xfe00..=VERSION_DTLS12).contains(&ch.version),
        };
        if cx.deadline.is_none() {
            cx.deadline = Some(now.saturating_add(cx.params.handshake_timeout_us));
        }
        if !version_ok {
            return Err(Failure::new(format!(
                "client offered version {:04x}",
                ch.version
            )));
        }
        if !ch.compression.contains(&0) {
            return Err(Failure::new("client offered no null compression"));
        }
        if cx.params.hello_verify && self.cookie.as_ref() != Some(&ch.cookie) {
            let cookie = self.cookie.unwrap_or_else(|| {
                let mut c = vec![0u8; COOKIE_LEN];
                cx.rng.fill(&mut c);
                c
            });
            let hvr = HelloVerifyRequest {
                version: match cx.version {
                    DtlsVersion::Dtls09 => VERSION_DTLS09,
                    DtlsVersion::Dtls12 => VERSION_DTLS10,
                },
                cookie: cookie.clone(),
            };
            cx.send_flight(
                Flight::single(vec![FlightMsg::handshake(
                    0,
                    encode_handshake(HT_HELLO_VERIFY_REQUEST, msg_seq, &hvr.encode()),
                )]),
                None,
            );
            return Ok(Outcome::Taken(HsState::ServerExpectClientHello(
                ServerExpectClientHello {
                    cookie: Some(cookie),
                },
            )));
        }
        let suite = match cx.resolved {
            Resolved::Resume(sel) => {
                if !ch.suites.contains(&sel.suite.id) {
                    return Err(Failure::new(format!(
                        "client did not offer {}",
                        sel.suite.iana
                    )));
                }
                sel.suite
            }
            Resolved::Psk => {
                let pick = cx.params.psk_suites.iter().find_map(|id| {
                    suite_by_id(*id).filter(|s| s.kx == KeyExchange::Psk && ch.suites.contains(id))
                });
                let Some(s) = pick else {
                    return Err(Failure::new("no shared PSK cipher suite"));
                };
                s
            }
        };
        cx.info.suite = Some(suite);
        cx.info.client_random = ch.random;
        cx.next_send_seq = msg_seq;
        let mut transcript = Transcript::new(cx.version);
        transcript.push(HT_CLIENT_HELLO, msg_seq, body);
        let mut sr = [0u8; 32];
        cx.rng.fill(&mut sr);
        let (session_id, extensions) = match cx.resolved {
            Resolved::Resume(_) => (ch.session_id.clone(), None),
            Resolved::Psk => {
                let mut sid = vec![0u8; 32];
                cx.rng.fill(&mut sid);
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
        cx.info.session_id = session_id.clone();
        let sh = ServerHello {
            version: cx.version.wire(),
            random: sr,
            session_id,
            suite: suite.id,
            compression: 0,
            extensions,
        };
        let sh_body = sh.encode();
        let sh_seq = cx.take_send_seq();
        transcript.push(HT_SERVER_HELLO, sh_seq, &sh_body);
        let sh_msg = encode_handshake(HT_SERVER_HELLO, sh_seq, &sh_body);
        match cx.resolved {
            Resolved::Resume(_) => {
                let master = cx.params.master_secret;
                let SessionKeys { client, server } =
                    derive_keys(cx, suite, &master, &ch.random, &sr)?;
                let (sent, write) = send_ccs_finished(
                    cx,
                    suite,
                    &master,
                    &transcript,
                    &server,
                    vec![FlightMsg::handshake(0, sh_msg)],
                )?;
                let expected = expect_peer_finished(cx, suite, &master, transcript, sent);
                Ok(Outcome::Taken(HsState::ExpectCcs(ExpectCcs {
                    peer_keys: client,
                    finished: PeerFinished {
                        suite,
                        expected,
                        reply: Reply::Sent { write },
                    },
                })))
            }
            Resolved::Psk => {
                let shd_seq = cx.take_send_seq();
                transcript.push(HT_SERVER_HELLO_DONE, shd_seq, &[]);
                cx.send_flight(
                    Flight::with_layout(
                        vec![
                            FlightMsg::handshake(0, sh_msg),
                            FlightMsg::handshake(
                                0,
                                encode_handshake(HT_SERVER_HELLO_DONE, shd_seq, &[]),
                            ),
                        ],
                        cx.params.flight_layout,
                    ),
                    None,
                );
                Ok(Outcome::Taken(HsState::ServerExpectClientKeyExchange(
                    ServerExpectClientKeyExchange {
                        suite,
                        client_random: ch.random,
                        server_random: sr,
                        transcript,
                    },
                )))
            }
        }
    }
}

impl ServerExpectClientKeyExchange {
    pub(crate) fn handle(self, cx: &mut Context, item: HsItem) -> Result<Outcome, Failure> {
        let HsItem::Msg {
            msg_type: HT_CLIENT_KEY_EXCHANGE,
            msg_seq,
            epoch: 0,
            body,
        } = item
        else {
            return Ok(Outcome::Ignored(HsState::ServerExpectClientKeyExchange(
                self,
            )));
        };
        let Ok(identity) = parse_psk_client_key_exchange(&body) else {
            cx.stats.dropped_malformed += 1;
            return Ok(Outcome::Ignored(HsState::ServerExpectClientKeyExchange(
                self,
            )));
        };
        if identity != PSK_IDENTITY {
            return Err(Failure::new(format!(
                "unknown PSK identity {:?}",
                String::from_utf8_lossy(identity)
            )));
        }
        let Some(psk) = cx.params.psk else {
            return Err(Failure::new("PSK handshake without suite or key"));
        };
        let ServerExpectClientKeyExchange {
            suite,
            client_random,
            server_random,
            mut transcript,
        } = self;
        transcript.push(HT_CLIENT_KEY_EXCHANGE, msg_seq, &body);
        let prf = suite.prf(DtlsVersion::Dtls12);
        let master = psk_master_secret(prf, &psk, &client_random, &server_random);
        let SessionKeys { client, server } =
            derive_keys(cx, suite, &master, &client_random, &server_random)?;
        let expected = verify_data(prf, &master, FinishedBy::Client, transcript.bytes());
        Ok(Outcome::Taken(HsState::ExpectCcs(ExpectCcs {
            peer_keys: client,
            finished: PeerFinished {
                suite,
                expected,
                reply: Reply::Owed(OwedFinished {
                    master,
                    transcript,
                    own_keys: server,
                }),
            },
        })))
    }
}
