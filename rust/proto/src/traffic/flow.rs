//! The client end of the mock ASA's "web server" flow (one TCP transfer), sans-IO.
//!
//! Wire format (the server side is `python/tunnelswarm/asa/inside.py`, whose module
//! docstring is the reference): the client sends one SYN (no ACK) to port 80 carrying
//! an MSS option and the request `GET /<n> HTTP/1.0\r\n\r\n` as SYN payload (TCP Fast
//! Open-shaped, RFC 7413, without the cookie). The server answers SYN|ACK (ack = ISN +
//! 1 + request length, its own MSS option) and then exactly `n` response bytes, byte
//! `i` = `i mod 256`, in ACK|PSH segments from its ISS + 1, the last with FIN. The
//! client acknowledges cumulatively; the transfer is complete once the FIN is
//! acknowledged. The server is go-back-N: it resends from the oldest unacknowledged
//! byte on its RTO or after an ICMP "fragmentation needed" (RFC 1191), so a client
//! that keeps no out-of-order data still completes.
//!
//! Theory of operation: [`FlowReceiver`] follows the sans-IO contract. [`FlowReceiver::syn`]
//! returns the first SYN and arms the SYN timer; [`FlowReceiver::handle_packet`]
//! classifies one inbound IPv4 packet ([`FlowVerdict`]) and queues the cumulative ACK
//! it calls for; [`FlowReceiver::poll_transmit`] drains what is queued (a SYN
//! retransmission, then at most one ACK: ACKs are cumulative, so a newer one replaces
//! an unsent older one); [`FlowReceiver::next_deadline`] / [`FlowReceiver::handle_timeout`]
//! run the SYN retransmission timer (an early call does nothing).
//!
//! States: `idle` → `syn-sent` (SYN out, timer armed: `syn_rto`, doubling up to
//! [`MAX_RTO_US`], at most `syn_retries` retransmissions; the next expiry is
//! `gave-up`) → `established` (an acceptable SYN|ACK: its ack covers our SYN and
//! request) → `complete` (the in-order FIN arrived and its ACK is queued). A server
//! RST — in `syn-sent` one whose ack covers our SYN, later one whose sequence number
//! lies in the server's sequence space for this response — is `reset`.
//!
//! Receiving (no reassembly, RFC 9293 §3.10.7.4 without the out-of-order queue): a
//! segment starting at the next expected byte is accepted; one starting later leaves a
//! gap (`out_of_order`, dropped, the ACK repeated); one that starts earlier carries
//! bytes already received (`duplicates`: retransmitted by the server) and only its new
//! part, if any, is accepted. Every accepted byte is checked against the response
//! pattern (`payload_errors` counts segments with a wrong byte or bytes beyond `n`).
//! A data segment that does not reach the end of the response yet carries fewer bytes
//! than the full segment size — min(our MSS, the MSS of the server's SYN|ACK, 536 when
//! absent) — is `short_segments`: the server lowered its path-MTU estimate.
//!
//! Only packets from `dst:dport` to `src:sport` are ours; anything else, IPv6, other
//! protocols and IPv4 fragments (no reassembly) is [`FlowVerdict::NotOurs`]. A TCP
//! packet between the two addresses that does not parse is
//! [`FlowVerdict::Malformed`] (dropped, counted), never a panic.

use std::fmt;
use std::net::Ipv4Addr;

use crate::ip::tcp::{
    parse_tcp, TcpSegment, TcpSpec, DEFAULT_MSS, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
};
use crate::ip::{self, PROTO_TCP};

/// The flow model's server port.
pub const HTTP_PORT: u16 = 80;
/// Largest response a receiver accepts to track: offsets stay below 2^31.
pub const MAX_FLOW_BYTES: u64 = (1 << 31) - 4;
/// The SYN timer never grows beyond this (RFC 6298 §2.5 allows a 60 s cap).
pub const MAX_RTO_US: u64 = 60_000_000;

/// The request the flow model's server serves: `GET /<n> HTTP/1.0\r\n\r\n`.
pub fn http_request(nbytes: u64) -> Vec<u8> {
    format!("GET /{nbytes} HTTP/1.0\r\n\r\n").into_bytes()
}

/// Byte `offset` of every response.
pub fn response_byte(offset: u64) -> u8 {
    (offset & 0xff) as u8
}

/// What a [`FlowReceiver`] is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// The client's tunnel address.
    pub src: Ipv4Addr,
    /// The server.
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// MSS option of the SYN (the adapter MTU − 40).
    pub mss: u16,
    /// Response bytes to request, at most [`MAX_FLOW_BYTES`].
    pub nbytes: u64,
    /// Our initial sequence number.
    pub isn: u32,
    /// First SYN retransmission timeout, microseconds (> 0).
    pub syn_rto_us: u64,
    /// SYN retransmissions before giving up.
    pub syn_retries: u32,
    /// TTL of our packets (> 0).
    pub ttl: u8,
    /// Receive window we advertise.
    pub window: u16,
}

impl FlowConfig {
    /// A flow with the usual knobs: 1 s SYN RTO, 3 retransmissions, TTL 64, window 65535.
    pub fn new(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        mss: u16,
        nbytes: u64,
    ) -> Self {
        Self {
            src,
            dst,
            sport,
            dport,
            mss,
            nbytes,
            isn: 0,
            syn_rto_us: 1_000_000,
            syn_retries: 3,
            ttl: 64,
            window: 0xffff,
        }
    }
}

/// Invalid [`FlowConfig`] or misuse of a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowError {
    ZeroPort,
    TooManyBytes {
        nbytes: u64,
    },
    ZeroRto,
    ZeroTtl,
    /// [`FlowReceiver::syn`] called twice.
    AlreadyStarted,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroPort => write!(f, "flow ports must be non-zero"),
            Self::TooManyBytes { nbytes } => {
                write!(f, "flow of {nbytes} bytes exceeds {MAX_FLOW_BYTES}")
            }
            Self::ZeroRto => write!(f, "SYN retransmission timeout must be > 0"),
            Self::ZeroTtl => write!(f, "flow TTL must be at least 1"),
            Self::AlreadyStarted => write!(f, "the flow's SYN was already sent"),
        }
    }
}

impl std::error::Error for FlowError {}

/// Where a receiver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowState {
    Idle,
    SynSent,
    Established,
    Complete,
    Reset,
    GaveUp,
}

impl FlowState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::SynSent => "syn-sent",
            Self::Established => "established",
            Self::Complete => "complete",
            Self::Reset => "reset",
            Self::GaveUp => "gave-up",
        }
    }

    /// No more progress is possible.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Reset | Self::GaveUp)
    }
}

/// What one inbound packet meant to the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowVerdict {
    /// Not a segment of this flow.
    NotOurs,
    /// A segment of this flow; `new_bytes` in-order response bytes it added (0 for the
    /// SYN|ACK, a duplicate, a segment after a gap, or one that fits no state).
    Progress { new_bytes: u64 },
    /// The in-order FIN: the transfer is complete (its ACK is queued).
    Complete { new_bytes: u64 },
    /// The server reset the flow.
    Reset,
    /// A TCP packet between the flow's addresses that does not parse; one-line reason.
    Malformed(String),
}

/// Counters and times of one transfer (times in the caller's microseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// SYNs sent, the first included.
    pub syns_sent: u64,
    pub syn_retransmits: u64,
    /// Segments of this flow received (any flags).
    pub segments: u64,
    /// Segments of this flow carrying payload.
    pub data_segments: u64,
    /// In-order response bytes accepted.
    pub bytes: u64,
    pub largest_payload: Option<u64>,
    pub smallest_payload: Option<u64>,
    /// min(our MSS, the server's MSS) once the SYN|ACK arrived.
    pub full_segment: Option<u64>,
    /// Data segments that started beyond the next expected byte (a gap before them).
    pub out_of_order: u64,
    /// Segments carrying sequence space already received (server retransmissions).
    pub duplicates: u64,
    /// Data segments short of the full size that do not reach the end of the response.
    pub short_segments: u64,
    /// Segments with a byte that is not the response pattern, or beyond `n`.
    pub payload_errors: u64,
    /// Segments of this flow that fit no state (e.g. data before the SYN|ACK).
    pub ignored: u64,
    pub malformed: u64,
    pub acks_sent: u64,
    pub syn_at_us: Option<u64>,
    pub established_at_us: Option<u64>,
    pub first_byte_at_us: Option<u64>,
    pub completed_at_us: Option<u64>,
    pub reset_at_us: Option<u64>,
    pub gave_up_at_us: Option<u64>,
}

/// The client end of one flow. See the module docs.
#[derive(Debug, Clone)]
pub struct FlowReceiver {
    cfg: FlowConfig,
    request: Vec<u8>,
    state: FlowState,
    /// Server ISS, once the SYN|ACK arrived.
    iss: u32,
    /// The FIN was received (rcv_nxt = iss + 1 + bytes + 1).
    fin: bool,
    rto_us: u64,
    deadline: Option<u64>,
    pending_syn: bool,
    pending_ack: bool,
    ident: u16,
    stats: FlowStats,
}

fn malformed(reason: impl Into<String>) -> FlowVerdict {
    FlowVerdict::Malformed(reason.into())
}

impl FlowReceiver {
    /// Validate `cfg`; the receiver starts `idle`.
    pub fn new(cfg: FlowConfig) -> Result<Self, FlowError> {
        if cfg.sport == 0 || cfg.dport == 0 {
            return Err(FlowError::ZeroPort);
        }
        if cfg.nbytes > MAX_FLOW_BYTES {
            return Err(FlowError::TooManyBytes { nbytes: cfg.nbytes });
        }
        if cfg.syn_rto_us == 0 {
            return Err(FlowError::ZeroRto);
        }
        if cfg.ttl == 0 {
            return Err(FlowError::ZeroTtl);
        }
        Ok(Self {
            request: http_request(cfg.nbytes),
            rto_us: cfg.syn_rto_us.min(MAX_RTO_US),
            cfg,
            state: FlowState::Idle,
            iss: 0,
            fin: false,
            deadline: None,
            pending_syn: false,
            pending_ack: false,
            ident: 0,
            stats: FlowStats::default(),
        })
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    pub fn state(&self) -> FlowState {
        self.state
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Our sequence number after the SYN and the request.
    fn snd_nxt(&self) -> u32 {
        // the request is at most ~40 bytes
        self.cfg
            .isn
            .wrapping_add(1)
            .wrapping_add(self.request.len() as u32)
    }

    /// The next server sequence number we expect.
    fn rcv_nxt(&self) -> u32 {
        self.iss
            .wrapping_add(1)
            .wrapping_add(self.stats.bytes as u32)
            .wrapping_add(u32::from(self.fin))
    }

    fn packet(
        &mut self,
        seq: u32,
        ack: u32,
        flags: u8,
        mss: Option<u16>,
        payload: &[u8],
    ) -> Vec<u8> {
        self.ident = self.ident.wrapping_add(1);
        TcpSpec {
            src: self.cfg.src,
            dst: self.cfg.dst,
            sport: self.cfg.sport,
            dport: self.cfg.dport,
            seq,
            ack,
            flags,
            window: self.cfg.window,
            mss,
            ttl: self.cfg.ttl,
            ident: self.ident,
            dont_fragment: true,
        }
        .build(payload)
        .unwrap_or_default() // the request is small: cannot exceed 65535 bytes
    }

    fn syn_packet(&mut self) -> Vec<u8> {
        let req = std::mem::take(&mut self.request);
        let p = self.packet(self.cfg.isn, 0, TCP_SYN, Some(self.cfg.mss), &req);
        self.request = req;
        self.stats.syns_sent += 1;
        p
    }

    /// The first SYN (carrying the request); arms the SYN timer.
    pub fn syn(&mut self, now: u64) -> Result<Vec<u8>, FlowError> {
        if self.state != FlowState::Idle {
            return Err(FlowError::AlreadyStarted);
        }
        self.state = FlowState::SynSent;
        self.stats.syn_at_us = Some(now);
        self.deadline = Some(now.saturating_add(self.rto_us));
        Ok(self.syn_packet())
    }

    /// The next packet to send: a SYN retransmission, then the latest ACK.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if std::mem::take(&mut self.pending_syn) && self.state == FlowState::SynSent {
            return Some(self.syn_packet());
        }
        if std::mem::take(&mut self.pending_ack) {
            self.stats.acks_sent += 1;
            let (seq, ack) = (self.snd_nxt(), self.rcv_nxt());
            return Some(self.packet(seq, ack, TCP_ACK, None, &[]));
        }
        None
    }

    /// When [`FlowReceiver::handle_timeout`] has work: the SYN timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Fire the SYN timer if due: retransmit the SYN, or give up after `syn_retries`.
    pub fn handle_timeout(&mut self, now: u64) {
        let Some(at) = self.deadline else { return };
        if now < at || self.state != FlowState::SynSent {
            return;
        }
        if self.stats.syn_retransmits >= u64::from(self.cfg.syn_retries) {
            self.state = FlowState::GaveUp;
            self.stats.gave_up_at_us = Some(now);
            self.deadline = None;
            self.pending_syn = false;
            return;
        }
        self.stats.syn_retransmits += 1;
        self.pending_syn = true;
        self.rto_us = self.rto_us.saturating_mul(2).min(MAX_RTO_US);
        self.deadline = Some(now.saturating_add(self.rto_us));
    }

    /// Classify one inbound IPv4 packet and update the state and statistics.
    pub fn handle_packet(&mut self, now: u64, pkt: &[u8]) -> FlowVerdict {
        let verdict = self.classify(now, pkt);
        if matches!(verdict, FlowVerdict::Malformed(_)) {
            self.stats.malformed += 1;
        }
        verdict
    }

    fn classify(&mut self, now: u64, pkt: &[u8]) -> FlowVerdict {
        if ip::ip_version(pkt) == Some(6) {
            return FlowVerdict::NotOurs;
        }
        let hdr = match ip::parse_ipv4(pkt) {
            Ok((h, _)) => h,
            Err(e) => return malformed(e.to_string()),
        };
        if hdr.protocol != PROTO_TCP
            || hdr.src != self.cfg.dst
            || hdr.dst != self.cfg.src
            || hdr.is_fragment()
        {
            return FlowVerdict::NotOurs;
        }
        let seg = match parse_tcp(pkt) {
            Ok(s) => s,
            Err(e) => return malformed(e.to_string()),
        };
        if seg.sport != self.cfg.dport || seg.dport != self.cfg.sport {
            return FlowVerdict::NotOurs;
        }
        self.stats.segments += 1;
        match self.state {
            FlowState::SynSent => self.in_syn_sent(now, &seg),
            FlowState::Established | FlowState::Complete => self.in_established(now, &seg),
            FlowState::Idle | FlowState::Reset | FlowState::GaveUp => self.ignore(),
        }
    }

    fn ignore(&mut self) -> FlowVerdict {
        self.stats.ignored += 1;
        FlowVerdict::Progress { new_bytes: 0 }
    }

    fn reset(&mut self, now: u64) -> FlowVerdict {
        self.state = FlowState::Reset;
        self.stats.reset_at_us = Some(now);
        self.deadline = None;
        self.pending_syn = false;
        self.pending_ack = false;
        FlowVerdict::Reset
    }

    fn in_syn_sent(&mut self, now: u64, seg: &TcpSegment<'_>) -> FlowVerdict {
        let acceptable = seg.has(TCP_ACK) && seg.ack == self.snd_nxt();
        if seg.has(TCP_RST) {
            return if acceptable {
                self.reset(now)
            } else {
                self.ignore()
            };
        }
        if !(seg.has(TCP_SYN | TCP_ACK) && acceptable) {
            return self.ignore();
        }
        self.iss = seg.seq;
        self.state = FlowState::Established;
        self.stats.established_at_us = Some(now);
        self.deadline = None;
        self.pending_syn = false;
        let server_mss = seg.mss.unwrap_or(DEFAULT_MSS);
        self.stats.full_segment = Some(u64::from(self.cfg.mss.min(server_mss)));
        self.pending_ack = true;
        if seg.payload.is_empty() && !seg.has(TCP_FIN) {
            return FlowVerdict::Progress { new_bytes: 0 };
        }
        // data (or FIN) on the SYN|ACK starts right after the server's SYN
        self.on_data(now, seg.seq.wrapping_add(1), seg)
    }

    fn in_established(&mut self, now: u64, seg: &TcpSegment<'_>) -> FlowVerdict {
        // the server's sequence space for this response: ISS ..= ISS + n + 2
        let rel_any = i64::from(seg.seq.wrapping_sub(self.iss) as i32);
        if seg.has(TCP_RST) {
            let in_space = (0..=self.cfg.nbytes as i64 + 2).contains(&rel_any);
            return if in_space && self.state == FlowState::Established {
                self.reset(now)
            } else {
                self.ignore()
            };
        }
        if seg.has(TCP_SYN) {
            if seg.has(TCP_ACK) && seg.seq == self.iss {
                // the SYN|ACK again (our SYN was retransmitted, or our ACK was lost)
                self.stats.duplicates += 1;
                self.pending_ack = true;
                return FlowVerdict::Progress { new_bytes: 0 };
            }
            return self.ignore();
        }
        self.on_data(now, seg.seq, seg)
    }

    /// A data / FIN segment whose first payload byte has sequence number `seq`.
    fn on_data(&mut self, now: u64, seq: u32, seg: &TcpSegment<'_>) -> FlowVerdict {
        let len = seg.payload.len() as i64;
        let fin = seg.has(TCP_FIN);
        if len == 0 && !fin {
            return FlowVerdict::Progress { new_bytes: 0 }; // a bare ACK: nothing to do
        }
        let n = self.cfg.nbytes as i64;
        let start = i64::from(seq.wrapping_sub(self.iss.wrapping_add(1)) as i32);
        let have = self.stats.bytes as i64; // next expected offset
        if len > 0 {
            let s = &mut self.stats;
            s.data_segments += 1;
            let l = len as u64;
            s.largest_payload = Some(s.largest_payload.map_or(l, |m| m.max(l)));
            s.smallest_payload = Some(s.smallest_payload.map_or(l, |m| m.min(l)));
            if start + len < n && s.full_segment.is_some_and(|full| l < full) {
                s.short_segments += 1;
            }
        }
        self.pending_ack = true;
        if start > have {
            self.stats.out_of_order += 1;
            return FlowVerdict::Progress { new_bytes: 0 };
        }
        let end = start + len + i64::from(fin);
        let had = have + i64::from(self.fin);
        if end <= had {
            self.stats.duplicates += 1;
            return FlowVerdict::Progress { new_bytes: 0 };
        }
        if start < have {
            self.stats.duplicates += 1;
        }
        // start <= have < start + len (+ FIN): accept the new part
        let skip = usize::try_from(have - start).unwrap_or_default();
        let new = seg.payload.get(skip..).unwrap_or_default();
        let pattern_ok = new
            .iter()
            .zip(self.stats.bytes..)
            .all(|(&b, off)| b == response_byte(off));
        let new_len = new.len() as u64;
        if !pattern_ok || have + new_len as i64 > n {
            self.stats.payload_errors += 1;
        }
        if new_len > 0 && self.stats.first_byte_at_us.is_none() {
            self.stats.first_byte_at_us = Some(now);
        }
        self.stats.bytes += new_len;
        if fin && !self.fin {
            self.fin = true;
            if self.stats.bytes != self.cfg.nbytes {
                self.stats.payload_errors += 1;
            }
            self.state = FlowState::Complete;
            self.stats.completed_at_us = Some(now);
            return FlowVerdict::Complete { new_bytes: new_len };
        }
        FlowVerdict::Progress { new_bytes: new_len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::tcp::TCP_PSH;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 10, 10, 10);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 80);
    const ISN: u32 = 1000;
    const ISS: u32 = 0xffff_fff0; // wraps during the transfer

    fn cfg(nbytes: u64) -> FlowConfig {
        FlowConfig {
            isn: ISN,
            ..FlowConfig::new(CLIENT, SERVER, 40000, 80, 1378, nbytes)
        }
    }

    fn req_len(n: u64) -> u32 {
        http_request(n).len() as u32
    }

    /// A tiny model of the server: segments of `seg` bytes from relative offset `from`.
    fn server(flags: u8, seq: u32, ack: u32, mss: Option<u16>, payload: &[u8]) -> Vec<u8> {
        TcpSpec {
            seq,
            ack,
            flags,
            mss,
            ..TcpSpec::new(SERVER, 80, CLIENT, 40000)
        }
        .build(payload)
        .unwrap()
    }

    fn body(from: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| response_byte(from + i)).collect()
    }

    fn synack(n: u64) -> Vec<u8> {
        server(
            TCP_SYN | TCP_ACK,
            ISS,
            ISN + 1 + req_len(n),
            Some(1460),
            &[],
        )
    }

    fn data(n: u64, from: u64, len: usize, fin: bool) -> Vec<u8> {
        let flags = TCP_ACK | TCP_PSH | if fin { TCP_FIN } else { 0 };
        server(
            flags,
            ISS.wrapping_add(1).wrapping_add(from as u32),
            ISN + 1 + req_len(n),
            None,
            &body(from, len),
        )
    }

    fn acks(r: &mut FlowReceiver) -> Vec<u32> {
        let n = r.cfg.nbytes;
        std::iter::from_fn(|| r.poll_transmit())
            .map(|p| {
                let s = parse_tcp(&p).unwrap();
                assert_eq!(s.flags, TCP_ACK);
                assert_eq!(s.seq, ISN + 1 + req_len(n));
                s.ack
            })
            .collect()
    }

    #[test]
    fn request_format() {
        assert_eq!(http_request(0), b"GET /0 HTTP/1.0\r\n\r\n");
        assert_eq!(http_request(123_456), b"GET /123456 HTTP/1.0\r\n\r\n");
        assert_eq!((response_byte(0), response_byte(257)), (0, 1));
    }

    #[test]
    fn syn_carries_mss_and_request() {
        let mut r = FlowReceiver::new(cfg(5000)).unwrap();
        assert_eq!(r.state(), FlowState::Idle);
        assert_eq!(r.next_deadline(), None);
        let p = r.syn(100).unwrap();
        let s = parse_tcp(&p).unwrap();
        assert_eq!(s.flags, TCP_SYN);
        assert_eq!(
            (s.seq, s.ack, s.mss, s.payload),
            (ISN, 0, Some(1378), &b"GET /5000 HTTP/1.0\r\n\r\n"[..])
        );
        assert_eq!(
            (s.ip.src, s.ip.dst, s.sport, s.dport),
            (CLIENT, SERVER, 40000, 80)
        );
        assert!(s.ip.flags_df);
        assert_eq!(r.next_deadline(), Some(1_000_100));
        assert_eq!(r.syn(200), Err(FlowError::AlreadyStarted));
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.stats().syns_sent, 1);
    }

    #[test]
    fn clean_transfer() {
        let n = 3000;
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        assert_eq!(
            r.handle_packet(10, &synack(n)),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        assert_eq!(r.state(), FlowState::Established);
        assert_eq!(r.next_deadline(), None);
        assert_eq!(acks(&mut r), vec![ISS.wrapping_add(1)]);
        assert_eq!(
            r.handle_packet(20, &data(n, 0, 1378, false)),
            FlowVerdict::Progress { new_bytes: 1378 }
        );
        assert_eq!(
            r.handle_packet(21, &data(n, 1378, 1378, false)),
            FlowVerdict::Progress { new_bytes: 1378 }
        );
        // two ACKs coalesce into the newest
        assert_eq!(acks(&mut r), vec![ISS.wrapping_add(1 + 2756)]);
        assert_eq!(
            r.handle_packet(30, &data(n, 2756, 244, true)),
            FlowVerdict::Complete { new_bytes: 244 }
        );
        assert_eq!(acks(&mut r), vec![ISS.wrapping_add(1 + 3000 + 1)]);
        assert_eq!(r.state(), FlowState::Complete);
        let s = r.stats().clone();
        assert_eq!(s.bytes, 3000);
        assert_eq!((s.segments, s.data_segments), (4, 3));
        assert_eq!(
            (s.largest_payload, s.smallest_payload),
            (Some(1378), Some(244))
        );
        assert_eq!(s.full_segment, Some(1378));
        assert_eq!(
            (
                s.out_of_order,
                s.duplicates,
                s.short_segments,
                s.payload_errors
            ),
            (0, 0, 0, 0)
        );
        assert_eq!((s.syn_retransmits, s.acks_sent), (0, 3));
        assert_eq!(
            (
                s.syn_at_us,
                s.established_at_us,
                s.first_byte_at_us,
                s.completed_at_us
            ),
            (Some(0), Some(10), Some(20), Some(30))
        );
        // the FIN again (our ACK was lost): acknowledged again, a duplicate
        assert_eq!(
            r.handle_packet(40, &data(n, 2756, 244, true)),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        assert_eq!(acks(&mut r), vec![ISS.wrapping_add(3002)]);
        assert_eq!(r.stats().duplicates, 1);
    }

    #[test]
    fn empty_response_is_a_bare_fin() {
        let mut r = FlowReceiver::new(cfg(0)).unwrap();
        r.syn(0).unwrap();
        r.handle_packet(1, &synack(0));
        let fin = server(
            TCP_ACK | TCP_FIN,
            ISS.wrapping_add(1),
            ISN + 1 + req_len(0),
            None,
            &[],
        );
        assert_eq!(
            r.handle_packet(2, &fin),
            FlowVerdict::Complete { new_bytes: 0 }
        );
        assert_eq!(r.stats().payload_errors, 0);
        assert_eq!(r.stats().first_byte_at_us, None);
    }

    #[test]
    fn gap_duplicates_and_overlap() {
        let n = 4000;
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        r.handle_packet(1, &synack(n));
        r.handle_packet(2, &data(n, 0, 1000, false));
        // 1000..2000 lost; 2000..3000 arrives: a gap, dropped, ACK repeated
        assert_eq!(
            r.handle_packet(3, &data(n, 2000, 1000, false)),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        assert_eq!(acks(&mut r), vec![ISS.wrapping_add(1001)]);
        // go-back-N from 500 with smaller segments (our first ACK was lost too)
        assert_eq!(
            r.handle_packet(4, &data(n, 500, 700, false)),
            FlowVerdict::Progress { new_bytes: 200 }
        );
        assert_eq!(
            r.handle_packet(5, &data(n, 0, 500, false)),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        assert_eq!(
            r.handle_packet(6, &data(n, 1200, 2800, true)),
            FlowVerdict::Complete { new_bytes: 2800 }
        );
        let s = r.stats();
        assert_eq!(s.bytes, 4000);
        assert_eq!((s.out_of_order, s.duplicates), (1, 2));
        // 700 and 500 are short of the full 1378 and do not reach the end
        assert_eq!(s.short_segments, 4);
        assert_eq!(s.payload_errors, 0);
    }

    #[test]
    fn shrunk_segments_are_short() {
        let n = 5000;
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        r.handle_packet(1, &synack(n));
        let mut off = 0;
        while off < n {
            let len = 1307.min(n - off);
            r.handle_packet(2, &data(n, off, len as usize, off + len == n));
            off += len;
        }
        let s = r.stats();
        assert_eq!(r.state(), FlowState::Complete);
        assert_eq!(s.short_segments, 3);
        assert_eq!(s.largest_payload, Some(1307));
    }

    #[test]
    fn server_mss_limits_the_full_size() {
        let n = 3000;
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        r.handle_packet(
            1,
            &server(TCP_SYN | TCP_ACK, ISS, ISN + 1 + req_len(n), None, &[]),
        );
        assert_eq!(r.stats().full_segment, Some(536));
        r.handle_packet(2, &data(n, 0, 536, false));
        assert_eq!(r.stats().short_segments, 0);
    }

    #[test]
    fn wrong_bytes_are_counted() {
        let n = 100;
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        r.handle_packet(1, &synack(n));
        let bad = server(TCP_ACK | TCP_FIN, ISS.wrapping_add(1), 0, None, &[7; 100]);
        assert_eq!(
            r.handle_packet(2, &bad),
            FlowVerdict::Complete { new_bytes: 100 }
        );
        assert_eq!(r.stats().payload_errors, 1);
        // a FIN too early is an error too
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        r.handle_packet(1, &synack(n));
        r.handle_packet(2, &data(n, 0, 50, true));
        assert_eq!(r.stats().payload_errors, 1);
        assert_eq!(r.state(), FlowState::Complete);
    }

    #[test]
    fn syn_retransmission_and_giving_up() {
        let mut r = FlowReceiver::new(FlowConfig {
            syn_retries: 2,
            ..cfg(10)
        })
        .unwrap();
        let first = r.syn(0).unwrap();
        r.handle_timeout(999_999); // early: nothing
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.next_deadline(), Some(1_000_000));
        r.handle_timeout(1_000_000);
        let again = r.poll_transmit().unwrap();
        assert_eq!(parse_tcp(&again).unwrap().seq, ISN);
        assert_eq!(again[20..], first[20..]); // same segment, new IP ident
        assert_eq!(r.next_deadline(), Some(3_000_000));
        r.handle_timeout(3_000_000);
        assert!(r.poll_transmit().is_some());
        assert_eq!(r.next_deadline(), Some(7_000_000));
        r.handle_timeout(7_000_000);
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.state(), FlowState::GaveUp);
        assert_eq!(r.next_deadline(), None);
        let s = r.stats();
        assert_eq!(
            (s.syns_sent, s.syn_retransmits, s.gave_up_at_us),
            (3, 2, Some(7_000_000))
        );
        // a late SYN|ACK changes nothing
        assert_eq!(
            r.handle_packet(8_000_000, &synack(10)),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        assert_eq!(r.stats().ignored, 1);
    }

    #[test]
    fn rto_is_capped() {
        let mut r = FlowReceiver::new(FlowConfig {
            syn_rto_us: 50_000_000,
            syn_retries: 5,
            ..cfg(1)
        })
        .unwrap();
        r.syn(0).unwrap();
        r.handle_timeout(50_000_000);
        assert_eq!(r.next_deadline(), Some(110_000_000));
    }

    #[test]
    fn resets() {
        let n = 10;
        // refused in syn-sent: RST|ACK acknowledging the SYN
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        let blind = server(TCP_RST, 0, 0, None, &[]);
        assert_eq!(
            r.handle_packet(1, &blind),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        let refused = server(TCP_RST | TCP_ACK, 0, ISN + 1 + req_len(n), None, &[]);
        assert_eq!(r.handle_packet(2, &refused), FlowVerdict::Reset);
        assert_eq!((r.state(), r.next_deadline()), (FlowState::Reset, None));
        assert_eq!(r.stats().reset_at_us, Some(2));
        // aborted later: RST in the server's sequence space
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        r.handle_packet(1, &synack(n));
        let far = server(TCP_RST | TCP_ACK, ISS.wrapping_add(1_000), 0, None, &[]);
        assert_eq!(
            r.handle_packet(2, &far),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        let abort = server(TCP_RST | TCP_ACK, ISS.wrapping_add(1), 0, None, &[]);
        assert_eq!(r.handle_packet(3, &abort), FlowVerdict::Reset);
        assert_eq!(r.poll_transmit(), None);
    }

    #[test]
    fn not_ours_and_malformed() {
        let n = 10;
        let mut r = FlowReceiver::new(cfg(n)).unwrap();
        r.syn(0).unwrap();
        let other_port = TcpSpec {
            flags: TCP_SYN | TCP_ACK,
            ..TcpSpec::new(SERVER, 80, CLIENT, 40001)
        }
        .build(&[])
        .unwrap();
        assert_eq!(r.handle_packet(1, &other_port), FlowVerdict::NotOurs);
        let other_host = TcpSpec::new(Ipv4Addr::new(10, 1, 1, 81), 80, CLIENT, 40000)
            .build(&[])
            .unwrap();
        assert_eq!(r.handle_packet(1, &other_host), FlowVerdict::NotOurs);
        let mut v6 = vec![0x60];
        v6.extend_from_slice(&[0; 39]);
        assert_eq!(r.handle_packet(1, &v6), FlowVerdict::NotOurs);
        let mut bad = synack(n);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            r.handle_packet(1, &bad),
            FlowVerdict::Malformed("TCP checksum mismatch".into())
        );
        assert_eq!(
            r.handle_packet(1, &[]),
            FlowVerdict::Malformed("empty packet".into())
        );
        assert_eq!(r.stats().malformed, 2);
        assert_eq!(r.stats().segments, 0);
        // our own SYN is not ours (wrong direction)
        let mut r2 = FlowReceiver::new(cfg(n)).unwrap();
        let syn = r2.syn(0).unwrap();
        assert_eq!(r2.handle_packet(1, &syn), FlowVerdict::NotOurs);
        // a wrong SYN|ACK acknowledgement is ignored
        let wrong = server(TCP_SYN | TCP_ACK, ISS, ISN + 1, Some(1460), &[]);
        assert_eq!(
            r.handle_packet(2, &wrong),
            FlowVerdict::Progress { new_bytes: 0 }
        );
        assert_eq!(r.state(), FlowState::SynSent);
        assert_eq!(r.stats().ignored, 1);
    }

    #[test]
    fn config_checks() {
        let bad = |c: FlowConfig| FlowReceiver::new(c).unwrap_err();
        assert_eq!(bad(FlowConfig { sport: 0, ..cfg(1) }), FlowError::ZeroPort);
        assert_eq!(
            bad(FlowConfig {
                syn_rto_us: 0,
                ..cfg(1)
            }),
            FlowError::ZeroRto
        );
        assert_eq!(bad(FlowConfig { ttl: 0, ..cfg(1) }), FlowError::ZeroTtl);
        assert_eq!(
            bad(cfg(MAX_FLOW_BYTES + 1)),
            FlowError::TooManyBytes {
                nbytes: MAX_FLOW_BYTES + 1
            }
        );
        assert!(FlowReceiver::new(cfg(MAX_FLOW_BYTES)).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120), est: bool) {
            let mut r = FlowReceiver::new(cfg(1000)).unwrap();
            r.syn(0).unwrap();
            if est {
                r.handle_packet(1, &synack(1000));
            }
            let _ = r.handle_packet(2, &data);
            while r.poll_transmit().is_some() {}
        }

        /// Random TCP segments of this flow (right addresses, ports, checksums) in any state.
        #[test]
        fn arbitrary_segments_never_panic(
            segs in proptest::collection::vec((any::<u32>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..50)), 0..20),
        ) {
            let mut r = FlowReceiver::new(cfg(100)).unwrap();
            r.syn(0).unwrap();
            for (i, (seq, flags, payload)) in segs.iter().enumerate() {
                let p = server(*flags, *seq, ISN + 1 + req_len(100), None, payload);
                let _ = r.handle_packet(i as u64, &p);
                r.handle_timeout(i as u64 * 1_000_000);
                while r.poll_transmit().is_some() {}
            }
            prop_assert!(r.stats().bytes <= 100 + 50 * 20);
        }

        /// Any loss / reordering / duplication of a go-back-N server's segments: the
        /// receiver's bytes are exactly the in-order prefix it was given.
        #[test]
        fn delivered_prefix_is_exact(
            n in 0u64..5000,
            seg in 48usize..1500,
            drops in proptest::collection::vec(any::<bool>(), 0..12),
        ) {
            let mut r = FlowReceiver::new(cfg(n)).unwrap();
            r.syn(0).unwrap();
            r.handle_packet(0, &synack(n));
            let mut t = 1;
            let mut rounds = 0;
            let mut drop = drops.into_iter().cycle();
            while r.state() != FlowState::Complete && rounds < 30 {
                // go-back-N round from what we acknowledged
                let mut off = r.stats().bytes;
                loop {
                    let len = (seg as u64).min(n - off) as usize;
                    let fin = off + len as u64 == n;
                    if !drop.next().unwrap_or(false) {
                        r.handle_packet(t, &data(n, off, len, fin));
                    }
                    t += 1;
                    off += len as u64;
                    if fin { break; }
                }
                rounds += 1;
            }
            let s = r.stats();
            prop_assert_eq!(s.payload_errors, 0);
            if r.state() == FlowState::Complete {
                prop_assert_eq!(s.bytes, n);
            }
        }
    }
}
