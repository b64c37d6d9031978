//! The two handshakes this core speaks, per role (protocol.md §5.2–§5.4).
//!
//! Theory of operation: the handshake is a set of typestates. Each state is its own type
//! holding exactly the data valid in it, and `HsState` wraps the current one:
//!
//! | role | states, in order |
//! |---|---|
//! | client | `ClientExpectServerHello` → (PSK) `ClientExpectServerHelloDone` → `ExpectCcs` → `ExpectFinished` → `Established` |
//! | server | `ServerExpectClientHello` → (PSK) `ServerExpectClientKeyExchange` → `ExpectCcs` → `ExpectFinished` → `Established` |
//!
//! plus the terminal `Failed` and `Closed`. The CCS/Finished states are shared by both
//! roles; what differs is whether our own CCS + Finished still has to go out once the
//! peer's Finished verifies (`Reply::Owed`: the client of a resumption, the server of
//! a PSK handshake — with the master secret, the transcript and our write keys) or
//! went out already (`Reply::Sent`: the PSK client, the resumption server — with our
//! epoch-1 protection). The peer's protection is built from its keys on its CCS
//! (`ExpectCcs` → `ExpectFinished`) and both end up in `Established`, which adds the
//! DPD/keepalive timers; `HsState::read_prot` / `write_prot` give the record layer
//! whatever the current state holds.
//!
//! `connection.rs` delivers handshake messages (and the DTLS 0.9 three-byte CCS) in
//! `message_seq` order to `HsState::handle`. A transition consumes the state and
//! returns `Ok(Outcome::Taken(next))`, `Ok(Outcome::Ignored(same))` (the message does
//! not fit the state or is malformed: nothing changed, the connection counts it) or
//! `Err(Failure)` (the handshake is over: `HandshakeFailed { reason }`). Transitions get
//! the connection's `Context` (record layer, flight, timers, randomness, counters) and
//! nothing else; the connection installs the next state and runs its entry actions
//! (buffered epoch-1 records are re-run on entering `ExpectFinished` / `Established`;
//! entering `Established` also stops the handshake timers and reports `Connected`).
//!
//! **Resumption** (DTLS 0.9 and DTLS 1.2, §5.2.3, §5.3), abbreviated handshake on the
//! CONNECT-time master secret:
//!
//! ```text
//! C: ClientHello(session_id = X-DTLS-Session-ID)            msg_seq m
//! [S: HelloVerifyRequest(cookie)  C: ClientHello(cookie)     m, m+1; transcript restarts]
//! S: ServerHello(same session id, same suite)                msg_seq m
//! S: ChangeCipherSpec   0.9: 01 ‖ BE16(m+1)  1.2: 01
//! S: Finished (epoch 1)                                      0.9: m+2  1.2: m+1
//! C: ChangeCipherSpec + Finished, one datagram               same numbering
//! ```
//!
//! The transcript is the ClientHello answered by the ServerHello, the ServerHello and
//! (for the client's Finished) the server Finished — bodies only for DTLS 0.9, with the
//! 12-byte headers for DTLS 1.2; the HelloVerifyRequest and the first ClientHello are
//! not hashed (OpenSSL/openconnect behaviour, §5.2.4 DISAGREEMENT resolved as §9
//! recommends). A ServerHello with another session id means the server did a full
//! handshake: the client fails with "not resumed (possible MITM)" like openconnect.
//!
//! **PSK-NEGOTIATE** (§5.4), full DTLS 1.2 handshake with plain PSK key exchange:
//!
//! ```text
//! C: ClientHello(session_id = App-ID, suites 00A9 00A8 CCAB 008D 008C [00FF])  m
//! S: ServerHello(new 32-byte session id) m; [ServerKeyExchange(hint)]; ServerHelloDone m+1
//! C: ClientKeyExchange("psk") m+1, CCS 01, Finished m+2 (epoch 1)
//! S: CCS 01, Finished m+2 (epoch 1)
//! ```
//!
//! with `master = PRF(BE16(32) ‖ 0^32 ‖ BE16(32) ‖ psk, "master secret", cr ‖ sr)`.
//!
//! The server's message counter starts at the `message_seq` of the ClientHello it
//! answers (0, or 1 after a HelloVerifyRequest, §5.2.3). Records always use the next
//! sequence number of their epoch, so after a HelloVerifyRequest the server's
//! ServerHello is record seq 1 and its CCS seq 2, as in OpenSSL's bad_dtls_test (§5.2.3).

pub mod client;
pub mod server;

use subtle::ConstantTimeEq;

use super::cipher::{new_protection, RecordProtection};
use super::connection::{Context, HsItem};
use super::flight::{Flight, FlightMsg};
use super::keys::VERIFY_DATA_LEN;
use super::keys::{derive_session_keys, verify_data, DirectionKeys, FinishedBy, SessionKeys};
use super::messages::{encode_ccs, encode_handshake, parse_finished, HT_FINISHED};
use super::suites::{DtlsVersion, Suite};
use crate::cstp::{KeepaliveTimers, Role};

pub(crate) use client::{ClientExpectServerHello, ClientExpectServerHelloDone};
pub(crate) use server::{ServerExpectClientHello, ServerExpectClientKeyExchange};

/// The handshake state of a connection: exactly one typestate.
pub(crate) enum HsState {
    /// client: ClientHello sent, HelloVerifyRequest or ServerHello expected
    ClientExpectServerHello(ClientExpectServerHello),
    /// client (PSK): ServerHello received, [ServerKeyExchange] ServerHelloDone expected
    ClientExpectServerHelloDone(ClientExpectServerHelloDone),
    /// server: waiting for a (cookie-carrying) ClientHello
    ServerExpectClientHello(ServerExpectClientHello),
    /// server (PSK): ServerHello + ServerHelloDone sent, ClientKeyExchange expected
    ServerExpectClientKeyExchange(ServerExpectClientKeyExchange),
    /// the peer's ChangeCipherSpec is expected
    ExpectCcs(ExpectCcs),
    /// the peer's Finished is expected (its keys are active)
    ExpectFinished(ExpectFinished),
    /// handshake complete
    Established(Established),
    /// handshake failed (terminal)
    Failed,
    /// closed by the caller, by a peer alert, or dead peer (terminal)
    Closed,
}

/// What a transition made of a state and an in-order handshake item.
pub(crate) enum Outcome {
    /// the item was taken; the handshake continues in (or has completed into) this state
    Taken(HsState),
    /// the item does not fit the state or is malformed: the state, unchanged
    Ignored(HsState),
}

/// The handshake cannot complete (the item was taken; `reason` becomes
/// `DtlsEvent::HandshakeFailed { reason }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) reason: String,
}

impl Failure {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
        }
    }
}

impl HsState {
    /// Take the next in-order handshake item: consumes the state, returns the next one.
    pub(crate) fn handle(
        self,
        cx: &mut Context,
        now: u64,
        item: HsItem,
    ) -> Result<Outcome, Failure> {
        match self {
            HsState::ClientExpectServerHello(s) => s.handle(cx, now, item),
            HsState::ClientExpectServerHelloDone(s) => s.handle(cx, now, item),
            HsState::ServerExpectClientHello(s) => s.handle(cx, now, item),
            HsState::ServerExpectClientKeyExchange(s) => s.handle(cx, item),
            HsState::ExpectCcs(s) => s.handle(item),
            HsState::ExpectFinished(s) => s.handle(cx, now, item),
            other @ (HsState::Established(_) | HsState::Failed | HsState::Closed) => {
                Ok(Outcome::Ignored(other))
            }
        }
    }

    /// The peer's epoch-1 protection: active from its CCS on.
    pub(crate) fn read_prot(&self) -> Option<&dyn RecordProtection> {
        match self {
            HsState::ExpectFinished(s) => Some(s.read.as_ref()),
            HsState::Established(s) => Some(s.read.as_ref()),
            _ => None,
        }
    }

    /// Our epoch-1 protection: active from our CCS on (for flight retransmissions).
    pub(crate) fn write_prot(&self) -> Option<&dyn RecordProtection> {
        match self {
            HsState::ExpectCcs(ExpectCcs { finished, .. })
            | HsState::ExpectFinished(ExpectFinished { finished, .. }) => match &finished.reply {
                Reply::Sent { write } => Some(write.as_ref()),
                Reply::Owed(_) => None,
            },
            HsState::Established(s) => Some(s.write.as_ref()),
            _ => None,
        }
    }

    /// Name of the state for `Debug` (no secrets).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            HsState::ClientExpectServerHello(_) => "ClientExpectServerHello",
            HsState::ClientExpectServerHelloDone(_) => "ClientExpectServerHelloDone",
            HsState::ServerExpectClientHello(_) => "ServerExpectClientHello",
            HsState::ServerExpectClientKeyExchange(_) => "ServerExpectClientKeyExchange",
            HsState::ExpectCcs(_) => "ExpectCcs",
            HsState::ExpectFinished(_) => "ExpectFinished",
            HsState::Established(_) => "Established",
            HsState::Failed => "Failed",
            HsState::Closed => "Closed",
        }
    }
}

/// A handshake transcript: bodies only for DTLS 0.9 (§5.2.4), with the 12-byte header
/// for DTLS 1.2 (§5.3).
#[derive(Clone)]
pub(crate) struct Transcript {
    version: DtlsVersion,
    bytes: Vec<u8>,
}

impl Transcript {
    /// An empty transcript.
    pub(crate) fn new(version: DtlsVersion) -> Self {
        Transcript {
            version,
            bytes: Vec::new(),
        }
    }

    /// Add a handshake message.
    pub(crate) fn push(&mut self, msg_type: u8, msg_seq: u16, body: &[u8]) {
        match self.version {
            DtlsVersion::Dtls09 => self.bytes.extend_from_slice(body),
            DtlsVersion::Dtls12 => self
                .bytes
                .extend_from_slice(&encode_handshake(msg_type, msg_seq, body)),
        }
    }

    /// The bytes hashed by the Finished PRF.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The peer's ChangeCipherSpec is expected; its keys are ready but not active.
pub(crate) struct ExpectCcs {
    /// the keys the peer writes with (client keys for a server, server keys for a client)
    pub(crate) peer_keys: DirectionKeys,
    /// what its Finished will be checked against
    pub(crate) finished: PeerFinished,
}

/// The peer's Finished is expected; its epoch-1 records can be read.
pub(crate) struct ExpectFinished {
    /// the peer's epoch-1 protection
    read: Box<dyn RecordProtection>,
    finished: PeerFinished,
}

/// What checking the peer's Finished, and completing the handshake, takes.
pub(crate) struct PeerFinished {
    pub(crate) suite: &'static Suite,
    /// the peer's `verify_data` over the transcript
    pub(crate) expected: [u8; VERIFY_DATA_LEN],
    /// what is left to do once it verifies
    pub(crate) reply: Reply,
}

/// Whether our CCS + Finished still has to follow the peer's Finished.
pub(crate) enum Reply {
    /// ours went out already (PSK client, resumption server): the handshake is done
    Sent {
        /// our epoch-1 protection, active since our CCS
        write: Box<dyn RecordProtection>,
    },
    /// we answer with ours (resumption client, PSK server)
    Owed(OwedFinished),
}

/// What it takes to answer the peer's Finished with our CCS + Finished.
pub(crate) struct OwedFinished {
    pub(crate) master: [u8; 48],
    /// the transcript so far; the peer's Finished joins it before ours is computed
    pub(crate) transcript: Transcript,
    /// the keys we write with from our CCS on
    pub(crate) own_keys: DirectionKeys,
}

/// Handshake complete: application data flows with DPD / keepalive (§5.5).
pub(crate) struct Established {
    pub(crate) suite: &'static Suite,
    /// the peer's epoch-1 protection
    read: Box<dyn RecordProtection>,
    /// ours
    pub(crate) write: Box<dyn RecordProtection>,
    /// DPD / keepalive (cstp/timers.rs)
    pub(crate) timers: KeepaliveTimers,
}

impl ExpectCcs {
    fn handle(self, item: HsItem) -> Result<Outcome, Failure> {
        match item {
            HsItem::Ccs09 { .. } => self
                .on_ccs()
                .map(|next| Outcome::Taken(HsState::ExpectFinished(next))),
            HsItem::Msg { .. } => Ok(Outcome::Ignored(HsState::ExpectCcs(self))),
        }
    }

    /// The peer's CCS (DTLS 0.9 in order, or DTLS 1.2's whenever it arrives): its
    /// epoch-1 keys go live.
    pub(crate) fn on_ccs(self) -> Result<ExpectFinished, Failure> {
        let read = new_protection(self.finished.suite, &self.peer_keys)
            .ok_or_else(|| Failure::new("cannot set up record protection"))?;
        Ok(ExpectFinished {
            read,
            finished: self.finished,
        })
    }
}

impl ExpectFinished {
    /// The peer's Finished. Once it verifies, the side that has not sent its own yet
    /// (the client of a resumption, the server of a PSK handshake) hashes it and
    /// answers with CCS + Finished; either way the handshake is over.
    fn handle(self, cx: &mut Context, now: u64, item: HsItem) -> Result<Outcome, Failure> {
        let HsItem::Msg {
            msg_type: HT_FINISHED,
            msg_seq,
            epoch: 1,
            body,
        } = item
        else {
            return Ok(Outcome::Ignored(HsState::ExpectFinished(self)));
        };
        let Ok(vd) = parse_finished(&body) else {
            cx.stats.dropped_malformed += 1;
            return Ok(Outcome::Ignored(HsState::ExpectFinished(self)));
        };
        let ExpectFinished { read, finished } = self;
        if !bool::from(finished.expected.ct_eq(&vd)) {
            let peer = match cx.role {
                Role::Client => "server",
                Role::Server => "client",
            };
            return Err(Failure::new(format!("bad {peer} Finished")));
        }
        let write = match finished.reply {
            Reply::Sent { write } => write,
            Reply::Owed(mut owed) => {
                owed.transcript.push(HT_FINISHED, msg_seq, &body);
                let (_, write) = send_ccs_finished(
                    cx,
                    finished.suite,
                    &owed.master,
                    &owed.transcript,
                    &owed.own_keys,
                    Vec::new(),
                )?;
                write
            }
        };
        Ok(Outcome::Taken(HsState::Established(Established {
            suite: finished.suite,
            read,
            write,
            timers: KeepaliveTimers::new(now, cx.params.dpd_s, cx.params.keepalive_s, 0),
        })))
    }
}

/// Whose Finished we send, and whose we check.
fn finished_sides(role: Role) -> (FinishedBy, FinishedBy) {
    match role {
        Role::Client => (FinishedBy::Client, FinishedBy::Server),
        Role::Server => (FinishedBy::Server, FinishedBy::Client),
    }
}

/// Adopt `master` as the session's master secret: keylog line, then the session keys.
pub(crate) fn derive_keys(
    cx: &mut Context,
    suite: &'static Suite,
    master: &[u8; 48],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Result<SessionKeys, Failure> {
    cx.log_master(client_random, master);
    derive_session_keys(suite, cx.version, master, client_random, server_random)
        .ok_or_else(|| Failure::new("key derivation failed"))
}

/// Our Finished as sent.
pub(crate) struct SentFinished {
    msg_seq: u16,
    verify_data: [u8; VERIFY_DATA_LEN],
}

/// Send `first` (messages already in the transcript) followed by our CCS and our
/// Finished over `transcript`, grouped by the flight layout (always one datagram for a
/// client); our epoch-1 keys (`own_keys`) go live: their protection is returned.
pub(crate) fn send_ccs_finished(
    cx: &mut Context,
    suite: &'static Suite,
    master: &[u8; 48],
    transcript: &Transcript,
    own_keys: &DirectionKeys,
    first: Vec<FlightMsg>,
) -> Result<(SentFinished, Box<dyn RecordProtection>), Failure> {
    let prf = suite.prf(cx.version);
    let (ours, _) = finished_sides(cx.role);
    let vd = verify_data(prf, master, ours, transcript.bytes());
    // DTLS 0.9's CCS carries a message_seq (`01 ‖ BE16`), DTLS 1.2's is `01`
    let ccs_body = match cx.version {
        DtlsVersion::Dtls09 => encode_ccs(Some(cx.take_send_seq())),
        DtlsVersion::Dtls12 => encode_ccs(None),
    };
    let fin_seq = cx.take_send_seq();
    let write =
        new_protection(suite, own_keys).ok_or_else(|| Failure::new("key derivation failed"))?;
    let mut msgs = first;
    msgs.push(FlightMsg::ccs(ccs_body));
    msgs.push(FlightMsg::handshake(
        1,
        encode_handshake(HT_FINISHED, fin_seq, &vd),
    ));
    cx.send_flight(
        Flight::with_layout(msgs, cx.params.flight_layout),
        Some(write.as_ref()),
    );
    let sent = SentFinished {
        msg_seq: fin_seq,
        verify_data: vd,
    };
    Ok((sent, write))
}

/// After `send_ccs_finished` by the side that speaks first: our Finished joins the
/// transcript and the peer's expected `verify_data` is computed over it.
pub(crate) fn expect_peer_finished(
    cx: &Context,
    suite: &'static Suite,
    master: &[u8; 48],
    mut transcript: Transcript,
    sent: SentFinished,
) -> [u8; VERIFY_DATA_LEN] {
    let (_, theirs) = finished_sides(cx.role);
    transcript.push(HT_FINISHED, sent.msg_seq, &sent.verify_data);
    verify_data(suite.prf(cx.version), master, theirs, transcript.bytes())
}
