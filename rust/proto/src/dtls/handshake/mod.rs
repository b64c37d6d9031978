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
