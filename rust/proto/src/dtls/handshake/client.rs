//! Client role of the DTLS handshakes (protocol.md §5.2.3, §5.2.5, §5.3, §5.4, §10.10).
//!
//! Theory of operation: `DtlsConnection::client` validates the configuration, draws the
//! client random, sends the ClientHello (layout per `HelloStyle`) and arms the flight
//! timer (1 s, doubling: hellos at 0, 1, 3, 7 s) and the handshake deadline (12 s by
//! default → `HandshakeFailed { reason: "timeout" }`) and starts in
//! `ClientExpectServerHello`; the states then take the server's messages in order:
//!
//! * `ClientExpectServerHello { hello, transcript, hvr_count }`: HelloVerifyRequest →
//!   the same hello (same random) again with the cookie and the next `message_seq`;
//!   the transcript restarts (§5.2.3); the state stays.
//! * ServerHello → checks: version (`01 00` / `fe fd`), compression 0, extensions at
//!   most an empty renegotiation_info (openconnect 9.01 aborts on anything else, e.g.
//!   an unsolicited extended_master_secret, §10.10); resumption: same session id
//!   (else "not resumed (possible MITM)", §5.2.3) and the configured suite; PSK: one
//!   of the offered PSK suites. Resumption: keys are derived here → `ExpectCcs`
//!   with the reply owed; PSK → `ClientExpectServerHelloDone`.
//! * resumption: server CCS → server keys active (`ExpectFinished`); server Finished →
//!   verified, then the client CCS + Finished go out in ONE datagram and the session is
//!   up (`Established`).
//! * PSK, `ClientExpectServerHelloDone { suite, client_random, server_random,
//!   transcript }`: [ServerKeyExchange with identity hint — ignored] ServerHelloDone →
//!   keys derived, the client sends ClientKeyExchange(`psk`) + CCS + Finished in one
//!   datagram (timer re-armed) → `ExpectCcs` with the reply sent; server CCS + Finished
//!   → verified, up.
//!
//! The client's final resumption flight is resent whenever the server's flight shows up
//! again (connection.rs `on_old`).

use super::super::config::{DtlsClientConfig, DtlsError, HelloStyle, Resolved};
use super::super::connection::{Context, DtlsConnection, HsItem, Params};
use super::super::flight::{Flight, FlightMsg};
use super::super::keys::{psk_master_secret, verify_data, FinishedBy, SessionKeys};
use super::super::messages::{
    encode_handshake, encode_psk_client_key_exchange, gnutls_extensions,
    parse_psk_server_key_exchange, signature_algorithms_extension, ClientHello, HelloVerifyRequest,
    ServerHello, EXT_RENEGOTIATION_INFO, HT_CLIENT_HELLO, HT_CLIENT_KEY_EXCHANGE,
    HT_HELLO_VERIFY_REQUEST, HT_SERVER_HELLO, HT_SERVER_HELLO_DONE, HT_SERVER_KEY_EXCHANGE,
};
use super::super::rng::{Drbg, RandomSource};
use super::super::suites::{
    suite_by_id, DtlsVersion, KeyExchange, Suite, PSK_SUITES, SCSV_RENEGOTIATION,
};
use super::{
    derive_keys, expect_peer_finished, send_ccs_finished, ExpectCcs, Failure, HsState, Outcome,
    OwedFinished, PeerFinished, Reply, Transcript,
};
use crate::cstp::Role;

/// The PSK identity openconnect sends (§5.4).
pub const PSK_IDENTITY: &[u8] = b"psk";

/// More HelloVerifyRequests than this end the handshake.
const MAX_HVR: u8 = 4;

/// ClientHello sent; a HelloVerifyRequest or the ServerHello is expected.
pub(crate) struct ClientExpectServerHello {
    /// the hello as last sent (its random is the client random; cookie once asked for)
    hello: ClientHello,
    /// the last hello, the one a ServerHello answers
    transcript: Transcript,
    /// HelloVerifyRequests answered so far
    hvr_count: u8,
}

/// PSK: the ServerHello is in; [ServerKeyExchange] ServerHelloDone is expected.
pub(crate) struct ClientExpectServerHelloDone {
    suite: &'static Suite,
    client_random: [u8; 32],
    server_random: [u8; 32],
    transcript: Transcript,
}

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
        let mut cx = Context::new(Role::Client, resolved, params, rng);
        let mut cr = [0u8; 32];
        cx.rng.fill(&mut cr);
        cx.info.client_random = cr;
        if let Resolved::Resume(sel) = resolved {
            cx.info.suite = Some(sel.suite);
        }
        cx.deadline = Some(now.saturating_add(config.handshake_timeout_us));
        let state = ClientExpectServerHello::start(&mut cx, now, cr);
        Ok(DtlsConnection::from_parts(
            HsState::ClientExpectServerHello(state),
            cx,
        ))
    }
}

fn build_client_hello(cx: &Context, random: [u8; 32]) -> ClientHello {
    let style = cx.params.hello_style;
    let v12 = cx.version == DtlsVersion::Dtls12;
    let (mut suites, extensions) = match cx.resolved {
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
        version: cx.version.wire(),
        random,
        session_id: cx.params.session_id.clone(),
        cookie: Vec::new(),
        suites,
        compression: vec![0],
        extensions,
    }
}

/// Send `hello` with the next `message_seq` as a one-message flight (timer armed);
/// returns the transcript it starts.
fn send_hello(cx: &mut Context, now: u64, hello: &ClientHello) -> Transcript {
    let body = hello.encode();
    let seq = cx.take_send_seq();
    let mut transcript = Transcript::new(cx.version);
    transcript.push(HT_CLIENT_HELLO, seq, &body);
    cx.send_flight(
        Flight::single(vec![FlightMsg::handshake(
            0,
            encode_handshake(HT_CLIENT_HELLO, seq, &body),
        )]),
        None,
    );
    cx.rtx.arm(now);
    transcript
}

impl ClientExpectServerHello {
    /// Send the first ClientHello.
    fn start(cx: &mut Context, now: u64, random: [u8; 32]) -> Self {
        let hello = build_client_hello(cx, random);
        let transcript = send_hello(cx, now, &hello);
        ClientExpectServerHello {
            hello,
            transcript,
            hvr_count: 0,
        }
    }

    pub(crate) fn handle(
        mut self,
        cx: &mut Context,
        now: u64,
        item: HsItem,
    ) -> Result<Outcome, Failure> {
        match item {
            HsItem::Msg {
                msg_type: HT_HELLO_VERIFY_REQUEST,
                epoch: 0,
                body,
                ..
            } => {
                let Ok(hvr) = HelloVerifyRequest::parse(&body) else {
                    cx.stats.dropped_malformed += 1;
                    return Ok(Outcome::Ignored(HsState::ClientExpectServerHello(self)));
                };
                self.hvr_count += 1;
                if self.hvr_count > MAX_HVR {
                    return Err(Failure::new("too many HelloVerifyRequests"));
                }
                self.hello.cookie = hvr.cookie;
                self.transcript = send_hello(cx, now, &self.hello);
                Ok(Outcome::Taken(HsState::ClientExpectServerHello(self)))
            }
            HsItem::Msg {
                msg_type: HT_SERVER_HELLO,
                msg_seq,
                epoch: 0,
                body,
            } => self.on_server_hello(cx, msg_seq, &body),
            _ => Ok(Outcome::Ignored(HsState::ClientExpectServerHello(self))),
        }
    }

    fn on_server_hello(
        self,
        cx: &mut Context,
        msg_seq: u16,
        body: &[u8],
    ) -> Result<Outcome, Failure> {
        let Ok(sh) = ServerHello::parse(body) else {
            cx.stats.dropped_malformed += 1;
            return Ok(Outcome::Ignored(HsState::ClientExpectServerHello(self)));
        };
        if sh.version != cx.version.wire() {
            return Err(Failure::new(format!(
                "server chose version {:04x}, expected {:04x}",
                sh.version,
                cx.version.wire()
            )));
        }
        if sh.compression != 0 {
            return Err(Failure::new("server chose compression"));
        }
        for e in sh.extensions.iter().flatten() {
            if !(e.ext_type == EXT_RENEGOTIATION_INFO && e.data == [0]) {
                return Err(Failure::new(format!(
                    "unsolicited ServerHello extension {:#06x}",
                    e.ext_type
                )));
            }
        }
        let ClientExpectServerHello {
            hello,
            mut transcript,
            ..
        } = self;
        match cx.resolved {
            Resolved::Resume(sel) => {
                if sh.session_id != cx.params.session_id {
                    return Err(Failure::new("not resumed (possible MITM)"));
                }
                if sh.suite != sel.suite.id {
                    return Err(Failure::new(format!(
                        "server chose cipher suite {:04x}, expected {:04x}",
                        sh.suite, sel.suite.id
                    )));
                }
                cx.info.session_id = sh.session_id;
                transcript.push(HT_SERVER_HELLO, msg_seq, body);
                let master = cx.params.master_secret;
                let SessionKeys { client, server } =
                    derive_keys(cx, sel.suite, &master, &hello.random, &sh.random)?;
                let expected =
                    verify_data(sel.prf, &master, FinishedBy::Server, transcript.bytes());
                Ok(Outcome::Taken(HsState::ExpectCcs(ExpectCcs {
                    peer_keys: server,
                    finished: PeerFinished {
                        suite: sel.suite,
                        expected,
                        reply: Reply::Owed(OwedFinished {
                            master,
                            transcript,
                            own_keys: client,
                        }),
                    },
                })))
            }
            Resolved::Psk => {
                let offered = hello.suites.contains(&sh.suite);
                let suite = suite_by_id(sh.suite).filter(|s| s.kx == KeyExchange::Psk);
                let (true, Some(suite)) = (offered, suite) else {
                    return Err(Failure::new(format!(
                        "server chose cipher suite {:04x}, not offered",
                        sh.suite
                    )));
                };
                cx.info.suite = Some(suite);
                cx.info.session_id = sh.session_id;
                transcript.push(HT_SERVER_HELLO, msg_seq, body);
                Ok(Outcome::Taken(HsState::ClientExpectServerHelloDone(
                    ClientExpectServerHelloDone {
                        suite,
                        client_random: hello.random,
                        server_random: sh.random,
                        transcript,
                    },
                )))
            }
        }
    }
}

impl ClientExpectServerHelloDone {
    pub(crate) fn handle(
        mut self,
        cx: &mut Context,
        now: u64,
        item: HsItem,
    ) -> Result<Outcome, Failure> {
        match item {
            HsItem::Msg {
                msg_type: HT_SERVER_KEY_EXCHANGE,
                msg_seq,
                epoch: 0,
                body,
            } => {
                if parse_psk_server_key_exchange(&body).is_err() {
                    cx.stats.dropped_malformed += 1;
                    return Ok(Outcome::Ignored(HsState::ClientExpectServerHelloDone(self)));
                }
                self.transcript.push(HT_SERVER_KEY_EXCHANGE, msg_seq, &body);
                Ok(Outcome::Taken(HsState::ClientExpectServerHelloDone(self)))
            }
            HsItem::Msg {
                msg_type: HT_SERVER_HELLO_DONE,
                msg_seq,
                epoch: 0,
                body,
            } => {
                if !body.is_empty() {
                    cx.stats.dropped_malformed += 1;
                    return Ok(Outcome::Ignored(HsState::ClientExpectServerHelloDone(self)));
                }
                self.transcript.push(HT_SERVER_HELLO_DONE, msg_seq, &body);
                self.send_psk_flight(cx, now)
            }
            _ => Ok(Outcome::Ignored(HsState::ClientExpectServerHelloDone(self))),
        }
    }

    /// ClientKeyExchange(`psk`) + CCS + Finished, one datagram; the timer re-armed.
    fn send_psk_flight(self, cx: &mut Context, now: u64) -> Result<Outcome, Failure> {
        let ClientExpectServerHelloDone {
            suite,
            client_random,
            server_random,
            mut transcript,
        } = self;
        let Some(psk) = cx.params.psk else {
            return Err(Failure::new("PSK handshake without suite or key"));
        };
        let prf = suite.prf(DtlsVersion::Dtls12);
        let master = psk_master_secret(prf, &psk, &client_random, &server_random);
        let SessionKeys { client, server } =
            derive_keys(cx, suite, &master, &client_random, &server_random)?;
        let cke_body = encode_psk_client_key_exchange(PSK_IDENTITY);
        let cke_seq = cx.take_send_seq();
        transcript.push(HT_CLIENT_KEY_EXCHANGE, cke_seq, &cke_body);
        let cke = FlightMsg::handshake(
            0,
            encode_handshake(HT_CLIENT_KEY_EXCHANGE, cke_seq, &cke_body),
        );
        let (sent, write) = send_ccs_finished(cx, suite, &master, &transcript, &client, vec![cke])?;
        let expected = expect_peer_finished(cx, suite, &master, transcript, sent);
        cx.rtx.arm(now);
        Ok(Outcome::Taken(HsState::ExpectCcs(ExpectCcs {
            peer_keys: server,
            finished: PeerFinished {
                suite,
                expected,
                reply: Reply::Sent { write },
            },
        })))
    }
}
