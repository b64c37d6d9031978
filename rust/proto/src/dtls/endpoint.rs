//! The headend's DTLS endpoint: one shared UDP socket, many sessions (protocol.md
//! §5.1, §5.2.5, §10.9).
//!
//! Theory of operation: the caller owns the socket and maps each remote address to an
//! opaque [`PeerId`]. At CONNECT time it `register`s the session under the bytes the
//! client will put into its ClientHello — the `X-DTLS-Session-ID` for resumption, the
//! `X-DTLS-App-ID` for PSK-NEGOTIATE — with the agreed parameters. Datagrams then go
//! through `handle_datagram(now, peer, bytes)`:
//!
//! * a datagram from a known peer goes to that peer's connection — unless it starts
//!   with a ClientHello carrying a *different* client random than the one that created
//!   the connection: that is a new handshake and is routed like one from a new peer;
//! * a datagram from an unknown peer must start with a ClientHello (epoch 0,
//!   unfragmented); it is routed by `session_id`, and for PSK sessions also by ocserv's
//!   extension 48018 (0xBB92, body `len ‖ id`) — how ocserv finds the session (§5.1).
//!   Unknown ids and all-zero randoms get **no answer at all** (ocserv drops them
//!   silently, also retransmissions — §5.2.5, §10.9) and are counted;
//! * a new handshake for a session that already has a connection (the client
//!   re-handshakes from a new port, §5.2.5) replaces the old connection, which is
//!   dropped without an event.
//!
//! `handle_datagram` says whether (part of) the datagram was dropped and why
//! ([`DatagramDrop`]), so that the caller can count and log junk without looking at the
//! bytes itself; the same drops are summed in [`EndpointStats`]. Records a known peer's
//! connection drops for being malformed or failing authentication count as junk;
//! replayed or wrong-epoch records do not (UDP duplicates and rekeys produce them).
//!
//! Each connection gets its own seed from the endpoint's DRBG, so one 32-byte seed
//! from the caller keys everything. `poll_transmit` yields `(peer, datagram)`,
//! `poll_event` yields `(session_key, event)`. `next_deadline`/`handle_timeout` scan all
//! connections (O(sessions) — fine for a mock headend's scale). Maps are `BTreeMap`s
//! so that iteration order, and therefore output order, is deterministic (std's
//! `HashMap` seeds itself from the OS).

use std::collections::{BTreeMap, VecDeque};

use super::config::{DtlsError, DtlsEvent, Resolved, ServerSessionParams};
use super::connection::DtlsConnection;
use super::messages::{parse_handshake_fragments, ClientHello, HT_CLIENT_HELLO};
use super::record::{RecordIter, CT_HANDSHAKE};
use super::rng::Drbg;

/// Opaque handle of a remote UDP address, chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// Endpoint counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// datagrams handed in
    pub datagrams_in: u64,
    /// datagrams handed out
    pub datagrams_out: u64,
    /// datagrams from unknown peers that do not start with a ClientHello
    pub dropped_unknown_peer: u64,
    /// ClientHellos whose session id / app id is not registered (no answer)
    pub dropped_unknown_session: u64,
    /// ClientHellos with an all-zero random (no answer)
    pub dropped_zero_random: u64,
    /// records of known peers that their connection dropped as malformed
    pub dropped_malformed: u64,
    /// records of known peers that failed authentication (MAC / AEAD tag)
    pub dropped_bad_auth: u64,
    /// connections created
    pub connections_created: u64,
    /// connections replaced by a new handshake of the same session or peer
    pub connections_replaced: u64,
}

/// Why `handle_datagram` dropped a datagram (or some of its records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramDrop {
    /// from an unknown peer and not starting with a ClientHello
    UnknownPeer,
    /// a ClientHello with an all-zero random
    ZeroRandom,
    /// a ClientHello whose session id / app id is not registered
    UnknownSession,
    /// a known peer's record that does not parse
    Malformed,
    /// a known peer's record that fails authentication
    BadAuth,
}

impl DatagramDrop {
    /// A stable name: `unknown-peer`, `zero-random`, `unknown-session`, `malformed`,
    /// `bad-auth`.
    pub fn name(self) -> &'static str {
        match self {
            DatagramDrop::UnknownPeer => "unknown-peer",
            DatagramDrop::ZeroRandom => "zero-random",
            DatagramDrop::UnknownSession => "unknown-session",
            DatagramDrop::Malformed => "malformed",
            DatagramDrop::BadAuth => "bad-auth",
        }
    }
}

struct SessionEntry {
    params: ServerSessionParams,
    psk: bool,
    peer: Option<PeerId>,
}

struct PeerEntry {
    session_key: Vec<u8>,
    hello_random: [u8; 32],
    conn: DtlsConnection,
}

/// Server-side DTLS for many sessions over one socket.
pub struct DtlsEndpoint {
    rng: Drbg,
    sessions: BTreeMap<Vec<u8>, SessionEntry>,
    peers: BTreeMap<PeerId, PeerEntry>,
    out: VecDeque<(PeerId, Vec<u8>)>,
    events: VecDeque<(Vec<u8>, DtlsEvent)>,
    stats: EndpointStats,
}

impl std::fmt::Debug for DtlsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsEndpoint")
            .field("sessions", &self.sessions.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

/// The ClientHello at the start of a datagram, if it starts with one.
pub fn peek_client_hello(datagram: &[u8]) -> Option<ClientHello> {
    let (h, frag) = RecordIter::new(datagram).next()?.ok()?;
    if h.content_type != CT_HANDSHAKE || h.epoch != 0 {
        return None;
    }
    let frags = parse_handshake_fragments(frag).ok()?;
    let f = frags.first()?;
    if f.header.msg_type != HT_CLIENT_HELLO || !f.header.is_complete() {
        return None;
    }
    ClientHello::parse(f.body).ok()
}

impl DtlsEndpoint {
    /// An endpoint whose randomness all derives from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        DtlsEndpoint {
            rng: Drbg::new(seed),
            sessions: BTreeMap::new(),
            peers: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// Register (or re-register) a session under the bytes its ClientHello will carry.
    pub fn register(
        &mut self,
        session_key: Vec<u8>,
        params: ServerSessionParams,
    ) -> Result<(), DtlsError> {
        // validate by building a throw-away connection
        DtlsConnection::server(session_key.clone(), params.clone(), [0; 32])?;
        let psk = params.mode.resolve()? == Resolved::Psk;
        let peer = self.sessions.get(&session_key).and_then(|s| s.peer);
        self.sessions
            .insert(session_key, SessionEntry { params, psk, peer });
        Ok(())
    }

    /// Forget a session and drop its connection.
    pub fn unregister(&mut self, session_key: &[u8]) {
        if let Some(s) = self.sessions.remove(session_key) {
            if let Some(p) = s.peer {
                self.peers.remove(&p);
            }
        }
    }

    /// Number of registered sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The connection of a session, if a client has started one.
    pub fn connection(&self, session_key: &[u8]) -> Option<&DtlsConnection> {
        let p = self.sessions.get(session_key)?.peer?;
        self.peers.get(&p).map(|e| &e.conn)
    }

    /// The peer a session's connection talks to.
    pub fn peer_of(&self, session_key: &[u8]) -> Option<PeerId> {
        self.sessions.get(session_key)?.peer
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Feed a datagram received from `peer`. Never fails; says whether (some of) it was
    /// dropped as junk, and why.
    pub fn handle_datagram(
        &mut self,
        now: u64,
        peer: PeerId,
        datagram: &[u8],
    ) -> Option<DatagramDrop> {
        self.stats.datagrams_in += 1;
        let hello = peek_client_hello(datagram);
        if let Some(entry) = self.peers.get_mut(&peer) {
            let new_handshake = hello
                .as_ref()
                .is_some_and(|ch| ch.random != entry.hello_random);
            if !new_handshake {
                let before = entry.conn.stats();
                let (malformed, bad_auth) = (before.dropped_malformed, before.dropped_bad_auth);
                entry.conn.handle_datagram(now, datagram);
                let after = entry.conn.stats();
                let malformed = after.dropped_malformed.saturating_sub(malformed);
                let bad_auth = after.dropped_bad_auth.saturating_sub(bad_auth);
                self.stats.dropped_malformed += malformed;
                self.stats.dropped_bad_auth += bad_auth;
                self.collect(peer);
                return if malformed > 0 {
                    Some(DatagramDrop::Malformed)
                } else if bad_auth > 0 {
                    Some(DatagramDrop::BadAuth)
                } else {
                    None
                };
            }
        }
        let Some(ch) = hello else {
            self.stats.dropped_unknown_peer += 1;
            return Some(DatagramDrop::UnknownPeer);
        };
        if ch.random == [0u8; 32] {
            self.stats.dropped_zero_random += 1;
            return Some(DatagramDrop::ZeroRandom);
        }
        let key = if self.sessions.contains_key(&ch.session_id) {
            Some(ch.session_id.clone())
        } else {
            ch.app_id_extension()
                .filter(|id| self.sessions.get(*id).is_some_and(|s| s.psk))
                .map(<[u8]>::to_vec)
        };
        let Some(key) = key else {
            self.stats.dropped_unknown_session += 1;
            return Some(DatagramDrop::UnknownSession);
        };
        let seed = self.rng.child_seed();
        let Some(session) = self.sessions.get_mut(&key) else {
            return Some(DatagramDrop::UnknownSession);
        };
        let Ok(mut conn) = DtlsConnection::server(key.clone(), session.params.clone(), seed) else {
            self.stats.dropped_unknown_session += 1;
            return Some(DatagramDrop::UnknownSession);
        };
        if let Some(old_peer) = session.peer.take() {
            if self.peers.remove(&old_peer).is_some() {
                self.stats.connections_replaced += 1;
            }
        }
        session.peer = Some(peer);
        if let Some(old) = self.peers.remove(&peer) {
            self.stats.connections_replaced += 1;
            if let Some(s) = self.sessions.get_mut(&old.session_key) {
                if s.peer == Some(peer) && old.session_key != key {
                    s.peer = None;
                }
            }
        }
        self.stats.connections_created += 1;
        conn.handle_datagram(now, datagram);
        self.peers.insert(
            peer,
            PeerEntry {
                session_key: key,
                hello_random: ch.random,
                conn,
            },
        );
        self.collect(peer);
        None
    }

    fn collect(&mut self, peer: PeerId) {
        let Some(e) = self.peers.get_mut(&peer) else {
            return;
        };
        while let Some(d) = e.conn.poll_transmit(0) {
            self.out.push_back((peer, d));
        }
        while let Some(ev) = e.conn.poll_event() {
            self.events.push_back((e.session_key.clone(), ev));
        }
    }

    fn with_conn<T>(
        &mut self,
        session_key: &[u8],
        f: impl FnOnce(&mut DtlsConnection) -> Result<T, DtlsError>,
    ) -> Result<T, DtlsError> {
        let s = self
            .sessions
            .get(session_key)
            .ok_or(DtlsError::UnknownSession)?;
        let peer = s.peer.ok_or(DtlsError::NotEstablished)?;
        let e = self.peers.get_mut(&peer).ok_or(DtlsError::NotEstablished)?;
        let r = f(&mut e.conn);
        self.collect(peer);
        r
    }

    /// Send an IP packet to a session's client.
    pub fn send_data(
        &mut self,
        now: u64,
        session_key: &[u8],
        packet: &[u8],
    ) -> Result<(), DtlsError> {
        self.with_conn(session_key, |c| c.send_data(now, packet))
    }

    /// Send an AnyConnect DTLS payload to a session's client.
    pub fn send_control(
        &mut self,
        now: u64,
        session_key: &[u8],
        type_byte: u8,
        payload: &[u8],
    ) -> Result<(), DtlsError> {
        self.with_conn(session_key, |c| c.send_control(now, type_byte, payload))
    }

    /// Close a session's connection (the session stays registered).
    pub fn close(&mut self, session_key: &[u8]) {
        let _ = self.with_conn(session_key, |c| {
            c.close();
            Ok(())
        });
    }

    /// Next datagram to send, with its destination.
    pub fn poll_transmit(&mut self, _now: u64) -> Option<(PeerId, Vec<u8>)> {
        let d = self.out.pop_front()?;
        self.stats.datagrams_out += 1;
        Some(d)
    }

    /// Next event, with the session it belongs to.
    pub fn poll_event(&mut self) -> Option<(Vec<u8>, DtlsEvent)> {
        self.events.pop_front()
    }

    /// Earliest timer of any connection.
    pub fn next_deadline(&self) -> Option<u64> {
        self.peers
            .values()
            .filter_map(|e| e.conn.next_deadline())
            .min()
    }

    /// Run every connection timer due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.conn.next_deadline().is_some_and(|d| d <= now))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            if let Some(e) = self.peers.get_mut(&p) {
                e.conn.handle_timeout(now);
            }
            self.collect(p);
        }
    }
}
