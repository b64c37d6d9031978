//! One DTLS session, either role, in the sans-IO contract (protocol.md §5).
//!
//! Theory of operation: [`DtlsConnection`] is fed whole UDP datagrams with
//! `handle_datagram(now, bytes)` and produces datagrams through `poll_transmit`, events
//! through `poll_event` and a wake-up time through `next_deadline` / `handle_timeout`.
//! It never does IO, never reads a clock, and draws randomness only from its injected
//! [`RandomSource`] (rng.rs). Bad input is never an error: a malformed datagram,
//! a record that fails authentication, a replay, a message that does not fit the state
//! is dropped and counted in [`DtlsStats`]; a handshake that cannot complete ends in
//! one `DtlsEvent::HandshakeFailed`.
//!
//! Receive path, per record of a datagram (record.rs splits them):
//!
//! 1. version check — `01 00` in every record for DTLS 0.9; `fe fd` for DTLS 1.2, with
//!    `fe ff` tolerated at epoch 0 (first ClientHello, HelloVerifyRequest) — §5.3, §10.9;
//! 2. epoch 0: replay window, then plaintext handshake / CCS / alert (application data
//!    at epoch 0 is "wrong epoch"); epoch 1: if the peer's keys are not active yet (its
//!    CCS has not arrived) — or it is application data and the handshake has not
//!    finished — the record is **buffered** (bounded: 32 records / 64 KiB) and replayed
//!    once keys/handshake are there (§5.2.5: the Finished may overtake the CCS);
//!    otherwise replay check, authenticate + decrypt (cipher.rs), mark the window;
//!    epochs ≥ 2 are "wrong epoch" (this core never renegotiates: a rekey is a new
//!    connection, as openconnect does it, §5.5);
//! 3. handshake messages are processed in `message_seq` order; later ones are held
//!    (bounded), earlier ones are retransmissions and only serve as the signal to resend
//!    the last flight (flight.rs) — the DTLS 0.9 three-byte CCS carries a `message_seq`
//!    and takes part in this ordering (§5.2.3); the 1-byte DTLS 1.2 CCS is remembered if
//!    it arrives before the state expects it;
//! 4. after the handshake, epoch-1 application data carries the AnyConnect 1-byte type
//!    (§5.1): `00` DATA → `Data`; `03` DPD-REQ → answered at once (`04`, or `04 ‖
//!    payload` with `echo_dpd_payload`) and reported; `04` → `DpdResponse`; `07` →
//!    `Keepalive`; `08` (compressed — never negotiated here) and unknown types are
//!    counted and dropped like openconnect logs and ignores them (§10.10).
//!
//! Timers: during the handshake the client's flight timer (1 s, doubling) and the
//! handshake deadline; afterwards `KeepaliveTimers` (cstp/timers.rs, held by the
//! `Established` state) with `X-DTLS-DPD`
//! and `X-DTLS-Keepalive`, openconnect semantics (§5.5, §7.1): DPD-REQ after `dpd` of
//! silence, repeated every `dpd/2`, `PeerDead` at the first wake-up with
//! `now > last_rx + 2·dpd` (the connection then closes); KEEPALIVE after `keepalive`
//! without sending. Every authenticated epoch-1 record counts as received.
//!
//! Structure: a connection is its handshake state — one of the typestates of
//! `handshake/` (`HsState`: `handshake/client.rs`, `handshake/server.rs`, the
//! shared CCS/Finished/`Established` states in `handshake/mod.rs`), each holding exactly
//! the data valid in it, including the record protections once they are live (the
//! peer's from `ExpectFinished` on, ours from our CCS on) — plus a `Context` with
//! everything else. This file holds the context (record numbering and replay windows,
//! ordering machinery, last flight and timers, output queues),
//! the driver that moves the state out, lets its transition consume it and enters the
//! result (`step`, `peer_ccs`, `enter`), the post-handshake data path and the public
//! API.

use std::collections::{BTreeMap, VecDeque};

use super::cipher::{write_record, OpenError, RecordMeta, RecordProtection};
use super::config::{DtlsError, DtlsEvent, DtlsStats, FlightLayout, HelloStyle, Resolved};
use super::flight::{Flight, RetransmitTimer};
use super::handshake::{HsState, Outcome};
use super::messages::{parse_ccs, parse_handshake_fragments};
use super::record::{
    RecordHeader, RecordIter, CT_ALERT, CT_APPLICATION_DATA, CT_CHANGE_CIPHER_SPEC, CT_HANDSHAKE,
    MAX_PLAINTEXT_LEN, MAX_SEQ, VERSION_DTLS09, VERSION_DTLS10, VERSION_DTLS12,
};
use super::replay::{ReplayCheck, ReplayWindow};
use super::rng::RandomSource;
use super::suites::{DtlsVersion, Suite};
use crate::cstp::{KeepaliveAction, Role};
use crate::ip::mtu::dtls_data_mtu;

/// AnyConnect DTLS payload types (§5.1, table 4.2).
pub mod payload_type {
    /// DATA
    pub const DATA: u8 = 0x00;
    /// DPD request
    pub const DPD_REQ: u8 = 0x03;
    /// DPD response
    pub const DPD_RESP: u8 = 0x04;
    /// KEEPALIVE
    pub const KEEPALIVE: u8 = 0x07;
    /// COMPRESSED DATA
    pub const COMPRESSED: u8 = 0x08;
}

const MAX_EARLY_RECORDS: usize = 32;
const MAX_EARLY_BYTES: usize = 64 * 1024;
const MAX_FUTURE_MSGS: usize = 8;
const MAX_FUTURE_DISTANCE: u16 = 8;

/// A handshake message (or a DTLS 0.9 CCS) waiting for its turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HsItem {
    Msg {
        msg_type: u8,
        msg_seq: u16,
        epoch: u16,
        body: Vec<u8>,
    },
    Ccs09 {
        msg_seq: u16,
    },
}

impl HsItem {
    fn seq(&self) -> u16 {
        match self {
            HsItem::Msg { msg_seq, .. } | HsItem::Ccs09 { msg_seq } => *msg_seq,
        }
    }
}

#[derive(Clone, Debug)]
struct EarlyRecord {
    header: RecordHeader,
    fragment: Vec<u8>,
}

/// Role parameters after validation.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    /// client: offered session id / app id; server: the session key
    pub(crate) session_id: Vec<u8>,
    pub(crate) master_secret: [u8; 48],
    pub(crate) psk: Option<[u8; 32]>,
    pub(crate) handshake_timeout_us: u64,
    pub(crate) dpd_s: u32,
    pub(crate) keepalive_s: u32,
    pub(crate) echo_dpd_payload: bool,
    pub(crate) keylog: bool,
    pub(crate) hello_style: HelloStyle,
    pub(crate) hello_verify: bool,
    pub(crate) flight_layout: FlightLayout,
    pub(crate) psk_suites: Vec<u16>,
}

/// What the public accessors report (`client_random`, `session_id`, `data_mtu`).
///
/// Written by the handshake transitions at the moment each fact becomes known and kept
/// once the handshake has ended (failed or closed connections still answer); the
/// handshake states never read it back — they carry their own copies.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionInfo {
    /// resumption: from the start; PSK: once the ServerHello is sent / received
    pub(crate) suite: Option<&'static Suite>,
    /// client: from the start; server: once a ClientHello is answered with a ServerHello
    pub(crate) client_random: [u8; 32],
    /// the session id of the ServerHello (empty before)
    pub(crate) session_id: Vec<u8>,
}

/// Everything of a connection except its handshake state (the rustls "common state"):
/// configuration, randomness, the record layer's numbering (record sequence numbers,
/// replay windows — the protections themselves belong to the states), handshake
/// message ordering, the last flight with its retransmission timer, and the output
/// queues. Handshake transitions get
/// `&mut Context`; they never see the state they are replacing.
pub(crate) struct Context {
    pub(crate) role: Role,
    pub(crate) resolved: Resolved,
    pub(crate) version: DtlsVersion,
    pub(crate) params: Params,
    pub(crate) rng: Box<dyn RandomSource>,
    pub(crate) info: SessionInfo,
    write_seq: [u64; 2],
    replay: [ReplayWindow; 2],
    pub(crate) next_send_seq: u16,
    next_recv_seq: u16,
    /// the last flight we sent (resent on timer or on the peer's retransmission)
    pub(crate) flight: Option<Flight>,
    pub(crate) rtx: RetransmitTimer,
    pub(crate) deadline: Option<u64>,
    future: BTreeMap<u16, HsItem>,
    pending_ccs: bool,
    early: VecDeque<EarlyRecord>,
    early_bytes: usize,
    draining: bool,
    drain_again: bool,
    retransmit_requested: bool,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<DtlsEvent>,
    pub(crate) stats: DtlsStats,
    keylog: Vec<String>,
}

impl Context {
    pub(crate) fn new(
        role: Role,
        resolved: Resolved,
        params: Params,
        rng: Box<dyn RandomSource>,
    ) -> Self {
        Context {
            role,
            resolved,
            version: resolved.version(),
            params,
            rng,
            info: SessionInfo::default(),
            write_seq: [0; 2],
            replay: [ReplayWindow::new(), ReplayWindow::new()],
            next_send_seq: 0,
            next_recv_seq: 0,
            flight: None,
            rtx: RetransmitTimer::new(),
            deadline: None,
            future: BTreeMap::new(),
            pending_ccs: false,
            early: VecDeque::new(),
            early_bytes: 0,
            draining: false,
            drain_again: false,
            retransmit_requested: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: DtlsStats::default(),
            keylog: Vec::new(),
        }
    }

    /// Next outgoing message_seq.
    pub(crate) fn take_send_seq(&mut self) -> u16 {
        let s = self.next_send_seq;
        self.next_send_seq = self.next_send_seq.wrapping_add(1);
        s
    }

    /// NSS key-log line for a master secret just adopted (when enabled).
    pub(crate) fn log_master(&mut self, client_random: &[u8; 32], master: &[u8; 48]) {
        if self.params.keylog {
            self.keylog.push(format!(
                "CLIENT_RANDOM {} {}",
                crate::tls::hex(client_random),
                crate::tls::hex(master)
            ));
        }
    }

    /// Make `flight` the current flight and send it; epoch-1 messages are protected
    /// with `write` (our keys once our CCS is out).
    pub(crate) fn send_flight(&mut self, flight: Flight, write: Option<&dyn RecordProtection>) {
        self.flight = Some(flight);
        self.transmit_flight(write);
    }

    /// Send (or resend) the current flight.
    pub(crate) fn transmit_flight(&mut self, write: Option<&dyn RecordProtection>) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        for dg in &flight.datagrams {
            let mut d = Vec::with_capacity(256);
            for m in dg {
                if self
                    .write_record_into(&mut d, m.content_type, m.epoch, &[&m.body], write)
                    .is_err()
                {
                    break;
                }
            }
            if !d.is_empty() {
                self.out.push_back(d);
            }
        }
        self.flight = Some(flight);
    }

    fn write_record_into(
        &mut self,
        d: &mut Vec<u8>,
        content_type: u8,
        epoch: u16,
        parts: &[&[u8]],
        write: Option<&dyn RecordProtection>,
    ) -> Result<(), DtlsError> {
        let idx = usize::from(epoch.min(1));
        let seq = self.write_seq.get(idx).copied().unwrap_or(MAX_SEQ);
        if seq >= MAX_SEQ {
            return Err(DtlsError::SequenceExhausted);
        }
        let prot = if epoch == 0 {
            None
        } else {
            Some(write.ok_or(DtlsError::NotEstablished)?)
        };
        let meta = RecordMeta {
            content_type,
            version: self.version.wire(),
            epoch,
            seq,
        };
        write_record(d, prot, &meta, parts, self.rng.as_mut());
        if let Some(s) = self.write_seq.get_mut(idx) {
            *s += 1;
        }
        self.stats.records_out += 1;
        Ok(())
    }
}

/// One DTLS session (client or server role): the handshake typestate
/// (handshake/mod.rs `HsState`) plus the `Context` it runs in.
pub struct DtlsConnection {
    state: HsState,
    cx: Context,
}

impl std::fmt::Debug for DtlsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsConnection")
            .field("role", &self.cx.role)
            .field("version", &self.cx.version)
            .field("state", &format_args!("{}", self.state.label()))
            .field("suite", &self.cx.info.suite.map(|s| s.iana))
            .finish_non_exhaustive()
    }
}

impl DtlsConnection {
    /// A connection in its first handshake state.
    pub(crate) fn from_parts(state: HsState, cx: Context) -> Self {
        DtlsConnection { state, cx }
    }

    // ------------------------------------------------------------------ public API

    /// Feed one received UDP datagram. Never fails: bad input is dropped and counted.
    pub fn handle_datagram(&mut self, now: u64, datagram: &[u8]) {
        self.cx.stats.datagrams_in += 1;
        if self.is_terminal() {
            self.cx.stats.dropped_closed += 1;
            return;
        }
        self.cx.retransmit_requested = false;
        for rec in RecordIter::new(datagram) {
            match rec {
                Err(_) => {
                    self.cx.stats.dropped_malformed += 1;
                    break;
                }
                Ok((h, frag)) => {
                    self.cx.stats.records_in += 1;
                    self.process_record(now, h, frag, false);
                }
            }
            if self.is_terminal() {
                break;
            }
        }
        if self.cx.retransmit_requested && !self.is_terminal() {
            self.cx.retransmit_requested = false;
            self.cx.stats.retransmissions += 1;
            self.cx.transmit_flight(self.state.write_prot());
        }
    }

    /// Next datagram to send, if any.
    pub fn poll_transmit(&mut self, _now: u64) -> Option<Vec<u8>> {
        let d = self.cx.out.pop_front()?;
        self.cx.stats.datagrams_out += 1;
        Some(d)
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<DtlsEvent> {
        self.cx.events.pop_front()
    }

    /// When `handle_timeout` should be called next.
    pub fn next_deadline(&self) -> Option<u64> {
        match &self.state {
            HsState::Failed | HsState::Closed => None,
            HsState::Established(e) => e.timers.next_deadline(),
            _ => match (self.cx.rtx.due(), self.cx.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// Run whatever timer is due at `now` (an early call does nothing).
    pub fn handle_timeout(&mut self, now: u64) {
        match self.state {
            HsState::Failed | HsState::Closed => {}
            HsState::Established(_) => self.run_keepalive(now),
            _ => {
                if self.cx.deadline.is_some_and(|d| now >= d) {
                    self.fail("timeout".to_string());
                    return;
                }
                if self.cx.rtx.expired(now) {
                    self.cx.stats.retransmissions += 1;
                    self.cx.transmit_flight(self.state.write_prot());
                    self.cx.rtx.backoff(now);
                }
            }
        }
    }

    /// Send an IP packet as DATA (`00 ‖ packet`).
    pub fn send_data(&mut self, now: u64, packet: &[u8]) -> Result<(), DtlsError> {
        self.send_app(now, payload_type::DATA, packet)?;
        self.cx.stats.data_out += 1;
        Ok(())
    }

    /// Send any AnyConnect DTLS payload (`type ‖ payload`), e.g. a DPD-REQ MTU probe.
    pub fn send_control(
        &mut self,
        now: u64,
        type_byte: u8,
        payload: &[u8],
    ) -> Result<(), DtlsError> {
        self.send_app(now, type_byte, payload)?;
        match type_byte {
            payload_type::DATA => self.cx.stats.data_out += 1,
            payload_type::DPD_REQ => self.cx.stats.dpd_requests_out += 1,
            payload_type::DPD_RESP => self.cx.stats.dpd_responses_out += 1,
            payload_type::KEEPALIVE => self.cx.stats.keepalives_out += 1,
            _ => {}
        }
        Ok(())
    }

    /// Stop: nothing more is sent or accepted (no alert is sent, like openconnect).
    pub fn close(&mut self) {
        if !self.is_terminal() {
            // leaving `Established` also drops its keepalive timers
            self.state = HsState::Closed;
        }
        self.cx.flight = None;
        self.cx.rtx.stop();
    }

    /// Has the handshake completed (and the connection not closed)?
    pub fn is_established(&self) -> bool {
        matches!(self.state, HsState::Established(_))
    }

    /// Failed or closed: nothing more will happen.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state, HsState::Failed | HsState::Closed)
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.cx.role
    }

    /// DTLS 0.9 or 1.2.
    pub fn version(&self) -> DtlsVersion {
        self.cx.version
    }

    /// The suite in use, once known (resumption: from the start; PSK: after the hello).
    pub fn negotiated_suite(&self) -> Option<&'static Suite> {
        match &self.state {
            HsState::Established(e) => Some(e.suite),
            _ => None,
        }
    }

    /// The client random (once chosen / received).
    pub fn client_random(&self) -> [u8; 32] {
        self.cx.info.client_random
    }

    /// The session id of the ServerHello (PSK: the server-chosen one).
    pub fn session_id(&self) -> &[u8] {
        &self.cx.info.session_id
    }

    /// Largest DTLS record plaintext for a link MTU (AnyConnect header included), exact
    /// model of §6.1 with the negotiated cipher; 0 before the suite is known.
    pub fn data_mtu(&self, link_mtu: u32, ipv6: bool) -> u32 {
        self.cx
            .info
            .suite
            .map_or(0, |s| dtls_data_mtu(link_mtu, ipv6, s.record_cipher()))
    }

    /// Tunnel (inner packet) MTU over this session: `data_mtu − 1` (§6.1).
    pub fn tunnel_mtu(&self, link_mtu: u32, ipv6: bool) -> u32 {
        self.data_mtu(link_mtu, ipv6).saturating_sub(1)
    }

    /// Counters.
    pub fn stats(&self) -> &DtlsStats {
        &self.cx.stats
    }

    /// NSS key-log lines (`CLIENT_RANDOM <cr> <master>`) collected since the last call.
    pub fn take_keylog(&mut self) -> Vec<String> {
        std::mem::take(&mut self.cx.keylog)
    }

    // ------------------------------------------------------------------ record layer

    fn version_ok(&self, h: &RecordHeader) -> bool {
        match self.cx.version {
            DtlsVersion::Dtls09 => h.version == VERSION_DTLS09,
            DtlsVersion::Dtls12 => {
                h.version == VERSION_DTLS12 || (h.epoch == 0 && h.version == VERSION_DTLS10)
            }
        }
    }

    fn process_record(&mut self, now: u64, h: RecordHeader, frag: &[u8], from_early: bool) {
        if self.is_terminal() {
            self.cx.stats.dropped_closed += 1;
            return;
        }
        if !self.version_ok(&h) {
            self.cx.stats.dropped_malformed += 1;
            return;
        }
        match h.epoch {
            0 => {
                if h.content_type == CT_APPLICATION_DATA {
                    self.cx.stats.dropped_wrong_epoch += 1;
                    return;
                }
                if self.cx.replay[0].check(h.seq) != ReplayCheck::Fresh {
                    self.cx.stats.dropped_replayed += 1;
                    return;
                }
                self.cx.replay[0].mark(h.seq);
                self.dispatch(now, h.content_type, 0, frag);
            }
            1 => {
                let ready = self.state.read_prot().is_some()
                    && (h.content_type != CT_APPLICATION_DATA || self.is_established());
                if !ready {
                    self.buffer_early(h, frag, from_early);
                    return;
                }
                if self.cx.replay[1].check(h.seq) != ReplayCheck::Fresh {
                    self.cx.stats.dropped_replayed += 1;
                    return;
                }
                let mut buf = frag.to_vec();
                let meta = RecordMeta::from(&h);
                let Some(prot) = self.state.read_prot() else {
                    return;
                };
                match prot.open(&meta, &mut buf) {
                    Err(OpenError::BadLength) => self.cx.stats.dropped_malformed += 1,
                    Err(OpenError::BadAuth) => self.cx.stats.dropped_bad_auth += 1,
                    Ok(range) => {
                        self.cx.replay[1].mark(h.seq);
                        if let HsState::Established(e) = &mut self.state {
                            e.timers.on_rx(now);
                        }
                        let pt = buf.get(range).unwrap_or_default();
                        self.dispatch(now, h.content_type, 1, pt);
                    }
                }
            }
            _ => self.cx.stats.dropped_wrong_epoch += 1,
        }
    }

    fn buffer_early(&mut self, h: RecordHeader, frag: &[u8], from_early: bool) {
        if self.cx.early.len() >= MAX_EARLY_RECORDS
            || self.cx.early_bytes + frag.len() > MAX_EARLY_BYTES
        {
            self.cx.stats.dropped_early_overflow += 1;
            return;
        }
        if !from_early {
            self.cx.stats.buffered_early += 1;
            // A server still waiting for the client's CCS+Finished that sees the client's
            // application data knows that final flight was lost: resend ours, which makes
            // the client resend its final flight (see on_old).
            if self.cx.role == Role::Server
                && matches!(self.cx.resolved, Resolved::Resume(_))
                && h.content_type == CT_APPLICATION_DATA
                && matches!(
                    self.state,
                    HsState::ExpectCcs(_) | HsState::ExpectFinished(_)
                )
            {
                self.cx.retransmit_requested = true;
            }
        }
        self.cx.early_bytes += frag.len();
        self.cx.early.push_back(EarlyRecord {
            header: h,
            fragment: frag.to_vec(),
        });
    }

    /// Re-run buffered epoch-1 records after the keys or the state changed.
    fn drain_early(&mut self, now: u64) {
        if self.cx.draining {
            self.cx.drain_again = true;
            return;
        }
        self.cx.draining = true;
        loop {
            self.cx.drain_again = false;
            let batch = std::mem::take(&mut self.cx.early);
            self.cx.early_bytes = 0;
            for r in batch {
                self.process_record(now, r.header, &r.fragment, true);
            }
            if !self.cx.drain_again || self.is_terminal() {
                break;
            }
        }
        self.cx.draining = false;
    }

    fn dispatch(&mut self, now: u64, content_type: u8, epoch: u16, pt: &[u8]) {
        match content_type {
            CT_HANDSHAKE => {
                let Ok(frags) = parse_handshake_fragments(pt) else {
                    self.cx.stats.dropped_malformed += 1;
                    return;
                };
                for f in frags {
                    if !f.header.is_complete() {
                        self.cx.stats.dropped_malformed += 1;
                        continue;
                    }
                    self.on_item(
                        now,
                        HsItem::Msg {
                            msg_type: f.header.msg_type,
                            msg_seq: f.header.msg_seq,
                            epoch,
                            body: f.body.to_vec(),
                        },
                    );
                    if self.is_terminal() {
                        return;
                    }
                }
            }
            CT_CHANGE_CIPHER_SPEC => {
                if epoch != 0 {
                    self.cx.stats.dropped_unexpected += 1;
                    return;
                }
                match parse_ccs(pt, self.cx.version == DtlsVersion::Dtls09) {
                    Err(_) => self.cx.stats.dropped_malformed += 1,
                    Ok(Some(msg_seq)) => self.on_item(now, HsItem::Ccs09 { msg_seq }),
                    Ok(None) => self.on_ccs12(now),
                }
            }
            CT_ALERT => self.on_alert(epoch, pt),
            CT_APPLICATION_DATA => self.on_app_data(now, pt),
            _ => self.cx.stats.dropped_malformed += 1,
        }
    }

    // ------------------------------------------------------------------ ordering

    fn on_item(&mut self, now: u64, item: HsItem) {
        let seq = item.seq();
        if seq < self.cx.next_recv_seq {
            self.on_old(&item);
            return;
        }
        if seq > self.cx.next_recv_seq {
            if self.cx.future.len() < MAX_FUTURE_MSGS
                && seq - self.cx.next_recv_seq <= MAX_FUTURE_DISTANCE
                && !self.is_terminal()
                && !self.is_established()
            {
                self.cx.future.entry(seq).or_insert(item);
            } else {
                self.cx.stats.dropped_unexpected += 1;
            }
            return;
        }
        self.process_in_order(now, item);
        while !self.is_terminal() {
            let Some(next) = self.cx.future.remove(&self.cx.next_recv_seq) else {
                break;
            };
            self.process_in_order(now, next);
        }
    }

    fn process_in_order(&mut self, now: u64, item: HsItem) {
        let before = self.cx.next_recv_seq;
        self.cx.next_recv_seq = self.cx.next_recv_seq.wrapping_add(1);
        let accepted = self.step(now, item);
        if !accepted && !self.is_terminal() {
            self.cx.next_recv_seq = before;
            self.cx.stats.dropped_unexpected += 1;
        }
        if self.cx.pending_ccs && matches!(self.state, HsState::ExpectCcs(_)) {
            self.cx.pending_ccs = false;
            self.peer_ccs(now);
        }
    }

    // ------------------------------------------------------------------ transitions

    /// Offer the next in-order item to the current state: the state is moved out, its
    /// transition consumes it and yields the next one (or a failure), which is moved
    /// back in and entered. Returns whether the item was taken.
    fn step(&mut self, now: u64, item: HsItem) -> bool {
        // `Failed` only stands in while the transition runs: transitions see the
        // `Context`, never `self.state`.
        let state = std::mem::replace(&mut self.state, HsState::Failed);
        match state.handle(&mut self.cx, now, item) {
            Ok(Outcome::Ignored(state)) => {
                self.state = state;
                false
            }
            Ok(Outcome::Taken(next)) => {
                self.enter(now, next);
                true
            }
            Err(failure) => {
                self.enter_failed(failure.reason);
                true
            }
        }
    }

    /// The peer's CCS arrived (the DTLS 1.2 one, or a pending one now due): in
    /// `ExpectCcs` its epoch-1 keys go live.
    fn peer_ccs(&mut self, now: u64) {
        let state = std::mem::replace(&mut self.state, HsState::Failed);
        match state {
            HsState::ExpectCcs(s) => match s.on_ccs() {
                Ok(next) => self.enter(now, HsState::ExpectFinished(next)),
                Err(failure) => self.enter_failed(failure.reason),
            },
            other => self.state = other,
        }
    }

    /// Install `next` and run its entry actions: entering `ExpectFinished` (the peer's
    /// keys are active) or `Established` re-runs buffered epoch-1 records; entering
    /// `Established` (which comes with its DPD/keepalive timers) also stops the
    /// handshake timers and reports `Connected`.
    fn enter(&mut self, now: u64, next: HsState) {
        self.state = next;
        match &self.state {
            HsState::ExpectFinished(_) => self.drain_early(now),
            HsState::Established(e) => {
                let suite = e.suite;
                self.cx.rtx.stop();
                self.cx.deadline = None;
                self.cx.future.clear();
                self.cx.events.push_back(DtlsEvent::Connected {
                    version: self.cx.version.label(),
                    suite: suite.iana,
                    cipher_name: suite.cipher_name(self.cx.version),
                });
                self.drain_early(now);
            }
            _ => {}
        }
    }

    fn on_ccs12(&mut self, now: u64) {
        match self.state {
            HsState::ExpectCcs(_) => self.peer_ccs(now),
            HsState::ClientExpectServerHello(_)
            | HsState::ClientExpectServerHelloDone(_)
            | HsState::ServerExpectClientHello(_)
            | HsState::ServerExpectClientKeyExchange(_) => self.cx.pending_ccs = true,
            HsState::ExpectFinished(_) | HsState::Established(_) => self.on_old_ccs(),
            HsState::Failed | HsState::Closed => self.cx.stats.dropped_closed += 1,
        }
    }

    /// A message of the peer's previous flight arrived again.
    fn on_old(&mut self, item: &HsItem) {
        let resume = matches!(self.cx.resolved, Resolved::Resume(_));
        let resend = match (self.cx.role, item) {
            (Role::Server, HsItem::Msg { msg_type, .. })
                if *msg_type == super::messages::HT_CLIENT_HELLO =>
            {
                matches!(
                    self.state,
                    HsState::ServerExpectClientHello(_) | HsState::ServerExpectClientKeyExchange(_)
                ) || (resume
                    && matches!(
                        self.state,
                        HsState::ExpectCcs(_) | HsState::ExpectFinished(_)
                    ))
            }
            (Role::Server, _) => !resume && self.is_established(),
            (Role::Client, _) => {
                (resume && self.is_established())
                    || (!resume
                        && matches!(
                            self.state,
                            HsState::ExpectCcs(_) | HsState::ExpectFinished(_)
                        ))
            }
        };
        if resend && self.cx.flight.is_some() {
            self.cx.retransmit_requested = true;
        } else {
            self.cx.stats.dropped_unexpected += 1;
        }
    }

    fn on_old_ccs(&mut self) {
        let resume = matches!(self.cx.resolved, Resolved::Resume(_));
        let resend = self.is_established()
            && ((self.cx.role == Role::Client && resume)
                || (self.cx.role == Role::Server && !resume));
        if resend && self.cx.flight.is_some() {
            self.cx.retransmit_requested = true;
        } else {
            self.cx.stats.dropped_unexpected += 1;
        }
    }

    /// End the handshake with a typed failure (no alert is sent).
    fn fail(&mut self, reason: String) {
        if self.is_terminal() {
            return;
        }
        self.enter_failed(reason);
    }

    /// Enter `Failed` (from a live state): timers, flight and buffers go.
    fn enter_failed(&mut self, reason: String) {
        self.state = HsState::Failed;
        self.cx.rtx.stop();
        self.cx.deadline = None;
        self.cx.flight = None;
        self.cx.early.clear();
        self.cx.future.clear();
        self.cx
            .events
            .push_back(DtlsEvent::HandshakeFailed { reason });
    }

    // ------------------------------------------------------------------ data path

    fn send_app(&mut self, now: u64, type_byte: u8, payload: &[u8]) -> Result<(), DtlsError> {
        let e = match &mut self.state {
            HsState::Established(e) => e,
            HsState::Failed | HsState::Closed => return Err(DtlsError::Closed),
            _ => return Err(DtlsError::NotEstablished),
        };
        let len = payload.len() + 1;
        if len > MAX_PLAINTEXT_LEN {
            return Err(DtlsError::TooLarge {
                len,
                max: MAX_PLAINTEXT_LEN,
            });
        }
        let mut d = Vec::with_capacity(len + 64);
        self.cx.write_record_into(
            &mut d,
            CT_APPLICATION_DATA,
            1,
            &[&[type_byte], payload],
            Some(e.write.as_ref()),
        )?;
        self.cx.out.push_back(d);
        e.timers.on_tx(now);
        Ok(())
    }

    fn on_app_data(&mut self, now: u64, pt: &[u8]) {
        let Some((&t, payload)) = pt.split_first() else {
            self.cx.stats.dropped_malformed += 1;
            return;
        };
        match t {
            payload_type::DATA => {
                self.cx.stats.data_in += 1;
                self.cx.events.push_back(DtlsEvent::Data(payload.to_vec()));
            }
            payload_type::DPD_REQ => {
                self.cx.stats.dpd_requests_in += 1;
                let echo: &[u8] = if self.cx.params.echo_dpd_payload {
                    payload
                } else {
                    &[]
                };
                if self.send_app(now, payload_type::DPD_RESP, echo).is_ok() {
                    self.cx.stats.dpd_responses_out += 1;
                }
                self.cx
                    .events
                    .push_back(DtlsEvent::DpdRequest(payload.to_vec()));
            }
            payload_type::DPD_RESP => {
                self.cx.stats.dpd_responses_in += 1;
                self.cx
                    .events
                    .push_back(DtlsEvent::DpdResponse(payload.to_vec()));
            }
            payload_type::KEEPALIVE => {
                self.cx.stats.keepalives_in += 1;
                self.cx.events.push_back(DtlsEvent::Keepalive);
            }
            _ => self.cx.stats.dropped_unknown_type += 1,
        }
    }

    fn on_alert(&mut self, epoch: u16, pt: &[u8]) {
        let &[level, desc] = pt else {
            self.cx.stats.dropped_malformed += 1;
            return;
        };
        let name = alert_name(desc);
        match self.state {
            HsState::Established(_) => {
                if epoch == 1 && (level == 2 || desc == 0) {
                    self.state = HsState::Closed;
                    self.cx.events.push_back(DtlsEvent::Closed {
                        reason: name.to_string(),
                    });
                } else {
                    self.cx.stats.dropped_unexpected += 1;
                }
            }
            HsState::Failed | HsState::Closed => self.cx.stats.dropped_closed += 1,
            _ => {
                if level == 2 || desc == 0 {
                    self.fail(format!("received alert {name}"));
                } else {
                    self.cx.stats.dropped_unexpected += 1;
                }
            }
        }
    }

    fn run_keepalive(&mut self, now: u64) {
        for _ in 0..4 {
            let HsState::Established(e) = &mut self.state else {
                return;
            };
            match e.timers.action(now) {
                KeepaliveAction::None | KeepaliveAction::Rekey => return,
                KeepaliveAction::SendDpd => {
                    if self.send_app(now, payload_type::DPD_REQ, &[]).is_ok() {
                        self.cx.stats.dpd_requests_out += 1;
                    }
                }
                KeepaliveAction::SendKeepalive => {
                    if self.send_app(now, payload_type::KEEPALIVE, &[]).is_ok() {
                        self.cx.stats.keepalives_out += 1;
                    }
                }
                KeepaliveAction::DpdDead => {
                    self.state = HsState::Closed;
                    self.cx.events.push_back(DtlsEvent::PeerDead);
                    return;
                }
            }
        }
    }
}

/// RFC 5246 alert description names.
pub fn alert_name(desc: u8) -> &'static str {
    match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        47 => "illegal_parameter",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        80 => "internal_error",
        100 => "no_renegotiation",
        110 => "unsupported_extension",
        115 => "unknown_psk_identity",
        _ => "unknown alert",
    }
}
