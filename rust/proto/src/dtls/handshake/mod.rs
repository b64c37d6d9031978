//! The two handshakes this core speaks, per role (protocol.md §5.2–§5.4).
//!
//! Theory of operation: `connection.rs` delivers handshake messages (and the DTLS 0.9
//! three-byte CCS) in `message_seq` order to `client_accept` / `server_accept`, which
//! advance an explicit state (`HsState`) and return whether the message was taken.
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

use super::config::Resolved;
use super::connection::{DtlsConnection, HsItem, HsState};
use super::flight::{Flight, FlightMsg};
use super::keys::{derive_session_keys, verify_data, FinishedBy};
use super::messages::{encode_ccs, encode_handshake, parse_finished, HT_FINISHED};
use super::suites::{DtlsVersion, Suite};
use crate::cstp::Role;

impl DtlsConnection {
    /// Take the next in-order handshake item: the steps both roles take alike (the
    /// DTLS 0.9 CCS, the peer's Finished) here, the others in `client_accept` /
    /// `server_accept`. Returns whether the item was taken.
    pub(crate) fn handshake_accept(&mut self, now: u64, item: HsItem) -> bool {
        match (self.state, item) {
            (HsState::WaitCcs, HsItem::Ccs09 { .. }) => {
                self.install_read_keys(now);
                true
            }
            (
                HsState::WaitFinished,
                HsItem::Msg {
                    msg_type: HT_FINISHED,
                    msg_seq,
                    epoch: 1,
                    body,
                },
            ) => self.on_peer_finished(now, msg_seq, &body),
            (_, item) => match self.role {
                Role::Client => self.client_accept(now, item),
                Role::Server => self.server_accept(now, item),
            },
        }
    }

    /// Whose Finished we send, and whose we check.
    fn finished_sides(&self) -> (FinishedBy, FinishedBy) {
        match self.role {
            Role::Client => (FinishedBy::Client, FinishedBy::Server),
            Role::Server => (FinishedBy::Server, FinishedBy::Client),
        }
    }

    /// The peer's Finished. Once it verifies, the side that has not sent its own yet
    /// (the client of a resumption, the server of a PSK handshake) hashes it and
    /// answers with CCS + Finished; either way the handshake is over.
    fn on_peer_finished(&mut self, now: u64, msg_seq: u16, body: &[u8]) -> bool {
        let Ok(vd) = parse_finished(body) else {
            self.stats.dropped_malformed += 1;
            return false;
        };
        if !self.peer_verify_ok(&vd) {
            let peer = match self.role {
                Role::Client => "server",
                Role::Server => "client",
            };
            self.fail(format!("bad {peer} Finished"));
            return true;
        }
        if matches!(
            (self.role, self.resolved),
            (Role::Client, Resolved::Resume(_)) | (Role::Server, Resolved::Psk)
        ) {
            self.transcript_push(HT_FINISHED, msg_seq, body);
            if !self.send_finished_flight(Vec::new(), false) {
                return true;
            }
        }
        self.establish(now);
        true
    }

    /// Adopt `ms` as the session's master secret: keylog line and session keys.
    /// Fails the handshake (and returns false) if the keys cannot be derived.
    pub(crate) fn adopt_master(&mut self, suite: &'static Suite, ms: [u8; 48]) -> bool {
        self.master = Some(ms);
        self.log_master();
        self.keys = derive_session_keys(
            suite,
            self.version,
            &ms,
            &self.client_random,
            &self.server_random,
        );
        if self.keys.is_none() {
            self.fail("key derivation failed".to_string());
        }
        self.keys.is_some()
    }

    /// Send `first` (messages already in the transcript) followed by our CCS and our
    /// Finished over the transcript so far, grouped by the flight layout (always one
    /// datagram for a client); our epoch-1 keys go live. With `expect_peer` our
    /// Finished joins the transcript and the peer's expected `verify_data` is set.
    /// Fails the handshake (and returns false) without keys.
    pub(crate) fn send_finished_flight(
        &mut self,
        first: Vec<FlightMsg>,
        expect_peer: bool,
    ) -> bool {
        let (Some(suite), Some(ms)) = (self.suite, self.master) else {
            self.fail("handshake without keys".to_string());
            return false;
        };
        let prf = suite.prf(self.version);
        let (ours, theirs) = self.finished_sides();
        let vd = verify_data(prf, &ms, ours, &self.transcript);
        // DTLS 0.9's CCS carries a message_seq (`01 ‖ BE16`), DTLS 1.2's is `01`
        let ccs_body = match self.version {
            DtlsVersion::Dtls09 => encode_ccs(Some(self.take_send_seq())),
            DtlsVersion::Dtls12 => encode_ccs(None),
        };
        let fin_seq = self.take_send_seq();
        if !self.install_write_keys() {
            self.fail("key derivation failed".to_string());
            return false;
        }
        if expect_peer {
            self.transcript_push(HT_FINISHED, fin_seq, &vd);
            self.expected_peer_verify = Some(verify_data(prf, &ms, theirs, &self.transcript));
        }
        let mut msgs = first;
        msgs.push(FlightMsg::ccs(ccs_body));
        msgs.push(FlightMsg::handshake(
            1,
            encode_handshake(HT_FINISHED, fin_seq, &vd),
        ));
        self.flight = Some(Flight::with_layout(msgs, self.params.flight_layout));
        self.transmit_flight();
        true
    }
}
