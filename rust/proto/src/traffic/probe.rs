//! Probe traffic (ICMP echo or UDP echo) for the in-process virtual adapter.
//!
//! A [`Prober`] builds complete IPv4 probe packets from the client's tunnel
//! address to a target and classifies whatever raw IPv4 packets come back.
//!
//! Sequence numbers: internally every probe gets a 64-bit serial (0, 1, 2,
//! ...); the wire seq is its low 32 bits (carried in the payload) and the ICMP
//! sequence field / IPv4 identification carry its low 16 bits.  A wire seq is
//! mapped back to the most recent serial with the same low bits, so wrapping
//! is harmless.
//!
//! Payload (after the ICMP/UDP header), big-endian:
//! `b"TSWP"` | seq u32 | send time u64 | echo (4) | 0x5a fill to `payload_len`.
//! The echo field is `ident, 0u16` for ICMP and `src_port, dst_port` for UDP;
//! a reply only counts if magic and echo field match.  The payload send time
//! is for humans reading captures: RTTs come from the Prober's own table.
//!
//! State: `outstanding` (serial -> send time, at most [`MAX_OUTSTANDING`];
//! the oldest is declared lost when a new probe would exceed that) and a
//! bounded history of settled serials (answered / lost / answered-late) used
//! to tell [`ProbeVerdict::Duplicate`] and [`ProbeVerdict::Late`] apart.  A
//! reply for a serial older than the history is [`ProbeVerdict::NotOurs`].
//! Send times are clamped to be non-decreasing, so the table is also in time
//! order and expiry only ever looks at its front.
//!
//! A probe is lost once `now >= sent + timeout_us` at an [`Prober::expire`]
//! call.  ICMP errors quoting a probe are counted in `errors` but leave the
//! probe outstanding (it will expire).  IPv4 fragments are not reassembled:
//! they are reported as `NotOurs`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use crate::ip::checksum::{internet_checksum, ipv4_transport_checksum, udp_checksum_v4};
use crate::ip::{self, Ipv4Header, Ipv4Spec, PROTO_ICMP, PROTO_UDP};

/// First four payload bytes of every probe.
pub const MAGIC: [u8; 4] = *b"TSWP";
/// Smallest accepted `payload_len`.
pub const MIN_PAYLOAD_LEN: usize = 24;
/// Largest accepted `payload_len`.
pub const MAX_PAYLOAD_LEN: usize = 65_000;
/// Most probes awaiting a reply at once.
pub const MAX_OUTSTANDING: usize = 65_536;
/// Settled serials remembered for duplicate / late classification.
const HISTORY: usize = 65_536;
/// Byte used to pad the payload.
const FILL: u8 = 0x5a;
/// magic + seq + time + echo.
const PROBE_HEADER_LEN: usize = 20;
const _: () = assert!(MIN_PAYLOAD_LEN >= PROBE_HEADER_LEN);
/// ICMP echo and UDP headers are both 8 bytes.
const L4_HEADER_LEN: usize = 8;
/// TTL of packets made by the echo-reply builders.
const REPLY_TTL: u8 = 64;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_FRAG_NEEDED_CODE: u8 = 4;

/// What kind of probe to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    IcmpEcho { ident: u16 },
    Udp { src_port: u16, dst_port: u16 },
}

/// Probe configuration; validated by [`Prober::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// The client's tunnel address.
    pub src: Ipv4Addr,
    /// The probed target.
    pub dst: Ipv4Addr,
    pub kind: ProbeKind,
    /// Bytes after the ICMP/UDP header, [`MIN_PAYLOAD_LEN`]..=[`MAX_PAYLOAD_LEN`].
    pub payload_len: usize,
    /// IPv4 TTL of probes, non-zero.
    pub ttl: u8,
    /// Set the IPv4 DF bit on probes.
    pub dont_fragment: bool,
}

/// Invalid [`ProbeConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    PayloadLen { len: usize },
    ZeroTtl,
    ZeroPort,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadLen { len } => write!(
                f,
                "probe payload length {len} is outside {MIN_PAYLOAD_LEN}..={MAX_PAYLOAD_LEN}"
            ),
            Self::ZeroTtl => write!(f, "probe TTL must be at least 1"),
            Self::ZeroPort => write!(f, "UDP probe ports must be non-zero"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Classification of one inbound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// First reply for an outstanding probe.  `bytes` is the IPv4 total
    /// length of the reply; `ttl` its IPv4 TTL.
    Reply {
        seq: u32,
        rtt_us: u64,
        ttl: u8,
        bytes: usize,
    },
    /// Another reply for a probe already answered (on time or late).
    Duplicate { seq: u32 },
    /// First reply for a probe already declared lost.
    Late { seq: u32 },
    /// Destination unreachable or time exceeded quoting one of our probes.
    /// `mtu` is the next-hop MTU of a fragmentation-needed error (type 3
    /// code 4) when the router filled it in; `seq` is best-effort.
    IcmpError {
        icmp_type: u8,
        code: u8,
        seq: Option<u32>,
        mtu: Option<u16>,
        from: Ipv4Addr,
    },
    /// Valid but not a reply to us (other traffic, IPv6, fragments, ...).
    NotOurs,
    /// Unparseable; one-line reason.
    Malformed(String),
}

/// Counters and RTT statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStats {
    pub sent: u64,
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub lost: u64,
    pub outstanding: u64,
    pub errors: u64,
    pub malformed: u64,
    pub rtt_min_us: Option<u64>,
    pub rtt_max_us: Option<u64>,
    pub rtt_avg_us: Option<f64>,
    /// Like ping's mdev: `sqrt(mean(x^2) - mean(x)^2)`.
    pub rtt_mdev_us: Option<f64>,
}

impl ProbeStats {
    /// `lost / (received + lost)`; 0 when nothing has settled.
    pub fn loss_ratio(&self) -> f64 {
        let settled = self.received.saturating_add(self.lost);
        if settled == 0 {
            0.0
        } else {
            self.lost as f64 / settled as f64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Answered,
    Lost,
    AnsweredLate,
}

/// Exact RTT accumulator (integer sums, so avg / mdev have no drift).
#[derive(Debug, Clone, Default)]
struct Rtt {
    n: u128,
    sum: u128,
    sum_sq: u128,
    min: Option<u64>,
    max: Option<u64>,
}

impl Rtt {
    fn record(&mut self, rtt: u64) {
        let r = u128::from(rtt);
        self.n += 1;
        self.sum = self.sum.saturating_add(r);
        self.sum_sq = self.sum_sq.saturating_add(r * r);
        self.min = Some(self.min.map_or(rtt, |m| m.min(rtt)));
        self.max = Some(self.max.map_or(rtt, |m| m.max(rtt)));
    }

    fn avg(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }

    fn mdev(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        // n^2 * variance = n * sum(x^2) - sum(x)^2, exact when it fits.
        let exact = self
            .n
            .checked_mul(self.sum_sq)
            .zip(self.sum.checked_mul(self.sum))
            .and_then(|(a, b)| a.checked_sub(b))
            .zip(self.n.checked_mul(self.n));
        let var = match exact {
            Some((num, den)) => num as f64 / den as f64,
            None => {
                let n = self.n as f64;
                let mean = self.sum as f64 / n;
                (self.sum_sq as f64 / n - mean * mean).max(0.0)
            }
        };
        Some(var.sqrt())
    }
}

/// Probe sender / reply classifier.  See the module docs.
#[derive(Debug, Clone)]
pub struct Prober {
    cfg: ProbeConfig,
    next_serial: u64,
    last_send: u64,
    /// serial -> send time (clamped non-decreasing).
    outstanding: BTreeMap<u64, u64>,
    settled: BTreeMap<u64, Settled>,
    sent: u64,
    received: u64,
    duplicates: u64,
    late: u64,
    lost: u64,
    errors: u64,
    malformed: u64,
    rtt: Rtt,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(s.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

fn malformed(reason: impl Into<String>) -> ProbeVerdict {
    ProbeVerdict::Malformed(reason.into())
}

impl Prober {
    /// Validate `cfg` and start with sequence number 0.
    pub fn new(cfg: ProbeConfig) -> Result<Self, ProbeError> {
        if !(MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&cfg.payload_len) {
            return Err(ProbeError::PayloadLen {
                len: cfg.payload_len,
            });
        }
        if cfg.ttl == 0 {
            return Err(ProbeError::ZeroTtl);
        }
        if let ProbeKind::Udp { src_port, dst_port } = cfg.kind {
            if src_port == 0 || dst_port == 0 {
                return Err(ProbeError::ZeroPort);
            }
        }
        Ok(Self {
            cfg,
            next_serial: 0,
            last_send: 0,
            outstanding: BTreeMap::new(),
            settled: BTreeMap::new(),
            sent: 0,
            received: 0,
            duplicates: 0,
            late: 0,
            lost: 0,
            errors: 0,
            malformed: 0,
            rtt: Rtt::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProbeConfig {
        &self.cfg
    }

    /// The 4-byte echo field placed in every payload.
    fn echo_field(&self) -> [u8; 4] {
        match self.cfg.kind {
            ProbeKind::IcmpEcho { ident } => {
                let [a, b] = ident.to_be_bytes();
                [a, b, 0, 0]
            }
            ProbeKind::Udp { src_port, dst_port } => {
                let [a, b] = src_port.to_be_bytes();
                let [c, d] = dst_port.to_be_bytes();
                [a, b, c, d]
            }
        }
    }

    /// Most recent serial already sent whose low 32 bits are `seq`.
    fn serial_for(&self, seq: u32) -> Option<u64> {
        let last = self.next_serial.checked_sub(1)?;
        last.checked_sub(u64::from((last as u32).wrapping_sub(seq)))
    }

    /// Most recent serial already sent whose low 16 bits are `seq16`.
    fn serial_for16(&self, seq16: u16) -> Option<u64> {
        let last = self.next_serial.checked_sub(1)?;
        last.checked_sub(u64::from((last as u16).wrapping_sub(seq16)))
    }

    fn settle(&mut self, serial: u64, state: Settled) {
        self.settled.insert(serial, state);
        while self.settled.len() > HISTORY {
            self.settled.pop_first();
        }
    }

    fn declare_lost(&mut self, serial: u64) {
        self.lost += 1;
        self.settle(serial, Settled::Lost);
    }

    /// Build the next probe: a complete IPv4 packet with correct header and
    /// ICMP/UDP checksums.  Returns its seq and the packet.
    pub fn build(&mut self, now: u64) -> (u32, Vec<u8>) {
        let send_at = now.max(self.last_send);
        self.last_send = send_at;
        if self.outstanding.len() >= MAX_OUTSTANDING {
            if let Some((oldest, _)) = self.outstanding.pop_first() {
                self.declare_lost(oldest);
            }
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let seq = serial as u32;
        let seq16 = serial as u16;

        let mut seg = Vec::with_capacity(L4_HEADER_LEN + self.cfg.payload_len);
        match self.cfg.kind {
            ProbeKind::IcmpEcho { ident } => {
                seg.extend_from_slice(&[ICMP_ECHO_REQUEST, 0, 0, 0]);
                seg.extend_from_slice(&ident.to_be_bytes());
                seg.extend_from_slice(&seq16.to_be_bytes());
            }
            ProbeKind::Udp { src_port, dst_port } => {
                // payload_len <= MAX_PAYLOAD_LEN, so this fits in u16.
                let udp_len = (L4_HEADER_LEN + self.cfg.payload_len) as u16;
                seg.extend_from_slice(&src_port.to_be_bytes());
                seg.extend_from_slice(&dst_port.to_be_bytes());
                seg.extend_from_slice(&udp_len.to_be_bytes());
                seg.extend_from_slice(&[0, 0]);
            }
        }
        seg.extend_from_slice(&MAGIC);
        seg.extend_from_slice(&seq.to_be_bytes());
        seg.extend_from_slice(&now.to_be_bytes());
        seg.extend_from_slice(&self.echo_field());
        seg.resize(L4_HEADER_LEN + self.cfg.payload_len, FILL);

        let (protocol, csum) = match self.cfg.kind {
            ProbeKind::IcmpEcho { .. } => (PROTO_ICMP, internet_checksum(&seg)),
            ProbeKind::Udp { .. } => (
                PROTO_UDP,
                udp_checksum_v4(self.cfg.src, self.cfg.dst, &seg).unwrap_or(0),
            ),
        };
        let csum_at = if protocol == PROTO_ICMP { 2 } else { 6 };
        put16(&mut seg, csum_at, csum);

        let pkt = Ipv4Spec {
            src: self.cfg.src,
            dst: self.cfg.dst,
            protocol,
            ttl: self.cfg.ttl,
            ident: seq16,
            dont_fragment: self.cfg.dont_fragment,
        }
        .build(&seg)
        .expect("payload_len is validated by Prober::new to fit an IPv4 packet");

        self.sent += 1;
        self.outstanding.insert(serial, send_at);
        (seq, pkt)
    }

    /// Classify an inbound IPv4 packet and update the statistics.
    pub fn handle_packet(&mut self, now: u64, pkt: &[u8]) -> ProbeVerdict {
        let verdict = self.classify(now, pkt);
        if matches!(verdict, ProbeVerdict::Malformed(_)) {
            self.malformed += 1;
        }
        verdict
    }

    fn classify(&mut self, now: u64, pkt: &[u8]) -> ProbeVerdict {
        if ip::ip_version(pkt) == Some(6) {
            return ProbeVerdict::NotOurs;
        }
        let (hdr, payload) = match ip::parse_ipv4(pkt) {
            Ok(x) => x,
            Err(e) => return malformed(e.to_string()),
        };
        if hdr.dst != self.cfg.src || hdr.is_fragment() {
            return ProbeVerdict::NotOurs;
        }
        match hdr.protocol {
            PROTO_ICMP => self.on_icmp(now, &hdr, payload),
            PROTO_UDP => self.on_udp(now, &hdr, payload),
            _ => ProbeVerdict::NotOurs,
        }
    }

    /// Seq of a probe payload that carries our magic and echo field.
    fn probe_seq(&self, data: &[u8]) -> Option<u32> {
        if data.get(..4)? != MAGIC || data.get(16..PROBE_HEADER_LEN)? != self.echo_field() {
            return None;
        }
        be32(data, 4)
    }

    fn on_icmp(&mut self, now: u64, hdr: &Ipv4Header, icmp: &[u8]) -> ProbeVerdict {
        let &[icmp_type, code, _, _, b4, b5, b6, b7, ref body @ ..] = icmp else {
            return malformed(format!(
                "ICMP message of {} bytes is shorter than its 8-byte header",
                icmp.len()
            ));
        };
        if internet_checksum(icmp) != 0 {
            return malformed("ICMP checksum mismatch");
        }
        match icmp_type {
            ICMP_ECHO_REPLY if code == 0 => {
                let ProbeKind::IcmpEcho { ident } = self.cfg.kind else {
                    return ProbeVerdict::NotOurs;
                };
                if hdr.src != self.cfg.dst || u16::from_be_bytes([b4, b5]) != ident {
                    return ProbeVerdict::NotOurs;
                }
                let Some(seq) = self.probe_seq(body) else {
                    return ProbeVerdict::NotOurs;
                };
                if seq as u16 != u16::from_be_bytes([b6, b7]) {
                    return malformed("ICMP sequence field disagrees with the probe payload");
                }
                self.on_reply(now, seq, hdr)
            }
            ICMP_DEST_UNREACHABLE | ICMP_TIME_EXCEEDED => {
                let mtu = (icmp_type == ICMP_DEST_UNREACHABLE && code == ICMP_FRAG_NEEDED_CODE)
                    .then(|| u16::from_be_bytes([b6, b7]))
                    .filter(|&m| m != 0);
                self.on_icmp_error(hdr, icmp_type, code, mtu, body)
            }
            _ => ProbeVerdict::NotOurs,
        }
    }

    fn on_icmp_error(
        &mut self,
        hdr: &Ipv4Header,
        icmp_type: u8,
        code: u8,
        mtu: Option<u16>,
        quote: &[u8],
    ) -> ProbeVerdict {
        let (q, qbody) = match ip::parse_ipv4_quote(quote) {
            Ok(x) => x,
            Err(e) => return malformed(format!("ICMP error quote: {e}")),
        };
        let want_proto = match self.cfg.kind {
            ProbeKind::IcmpEcho { .. } => PROTO_ICMP,
            ProbeKind::Udp { .. } => PROTO_UDP,
        };
        if q.src != self.cfg.src
            || q.dst != self.cfg.dst
            || q.protocol != want_proto
            || q.frag_offset != 0
        {
            return ProbeVerdict::NotOurs;
        }
        let Some(l4) = qbody.get(..L4_HEADER_LEN) else {
            return malformed(format!(
                "ICMP error quotes {} bytes of the original datagram, fewer than 8",
                qbody.len()
            ));
        };
        let quoted_payload = qbody.get(L4_HEADER_LEN..).unwrap_or_default();
        let seq16 = match self.cfg.kind {
            ProbeKind::IcmpEcho { ident } => {
                if l4.first() != Some(&ICMP_ECHO_REQUEST) || be16(l4, 4) != Some(ident) {
                    return ProbeVerdict::NotOurs;
                }
                be16(l4, 6)
            }
            ProbeKind::Udp { src_port, dst_port } => {
                if be16(l4, 0) != Some(src_port) || be16(l4, 2) != Some(dst_port) {
                    return ProbeVerdict::NotOurs;
                }
                Some(q.ident)
            }
        };
        // Prefer the full seq from a quoted payload (RFC 1812 routers quote
        // more than 8 bytes), if it agrees with the 16-bit field.
        let seq = match (self.probe_seq(quoted_payload), seq16) {
            (Some(full), Some(s16)) if full as u16 == s16 => Some(full),
            (_, Some(s16)) => self.serial_for16(s16).map(|s| s as u32),
            (full, None) => full,
        };
        self.errors += 1;
        ProbeVerdict::IcmpError {
            icmp_type,
            code,
            seq,
            mtu,
            from: hdr.src,
        }
    }

    fn on_udp(&mut self, now: u64, hdr: &Ipv4Header, udp: &[u8]) -> ProbeVerdict {
        let (Some(sport), Some(dport), Some(udp_len), Some(csum)) =
            (be16(udp, 0), be16(udp, 2), be16(udp, 4), be16(udp, 6))
        else {
            return malformed(format!(
                "UDP datagram of {} bytes is shorter than its 8-byte header",
                udp.len()
            ));
        };
        if usize::from(udp_len) != udp.len() {
            return malformed(format!(
                "UDP length {udp_len} disagrees with the {} bytes after the IPv4 header",
                udp.len()
            ));
        }
        if csum != 0 && ipv4_transport_checksum(hdr.src, hdr.dst, PROTO_UDP, udp) != Some(0) {
            return malformed("UDP checksum mismatch");
        }
        let ProbeKind::Udp { src_port, dst_port } = self.cfg.kind else {
            return ProbeVerdict::NotOurs;
        };
        if hdr.src != self.cfg.dst || sport != dst_port || dport != src_port {
            return ProbeVerdict::NotOurs;
        }
        match self.probe_seq(udp.get(L4_HEADER_LEN..).unwrap_or_default()) {
            Some(seq) => self.on_reply(now, seq, hdr),
            None => ProbeVerdict::NotOurs,
        }
    }

    fn on_reply(&mut self, now: u64, seq: u32, hdr: &Ipv4Header) -> ProbeVerdict {
        let Some(serial) = self.serial_for(seq) else {
            return ProbeVerdict::NotOurs;
        };
        if let Some(sent) = self.outstanding.remove(&serial) {
            let rtt_us = now.saturating_sub(sent);
            self.rtt.record(rtt_us);
            self.received += 1;
            self.settle(serial, Settled::Answered);
            return ProbeVerdict::Reply {
                seq,
                rtt_us,
                ttl: hdr.ttl,
                bytes: usize::from(hdr.total_len),
            };
        }
        match self.settled.get_mut(&serial) {
            Some(Settled::Answered | Settled::AnsweredLate) => {
                self.duplicates += 1;
                ProbeVerdict::Duplicate { seq }
            }
            Some(state @ Settled::Lost) => {
                *state = Settled::AnsweredLate;
                self.late += 1;
                ProbeVerdict::Late { seq }
            }
            None => ProbeVerdict::NotOurs,
        }
    }

    /// Declare outstanding probes with `now >= sent + timeout_us` lost;
    /// returns their seqs, oldest first.
    pub fn expire(&mut self, now: u64, timeout_us: u64) -> Vec<u32> {
        let mut lost = Vec::new();
        while let Some((&serial, &sent)) = self.outstanding.first_key_value() {
            if now < sent.saturating_add(timeout_us) {
                break;
            }
            self.outstanding.remove(&serial);
            self.declare_lost(serial);
            lost.push(serial as u32);
        }
        lost
    }

    /// Earliest time at which [`Prober::expire`] with this timeout would
    /// declare a probe lost; `None` if nothing is outstanding.
    pub fn next_expiry(&self, timeout_us: u64) -> Option<u64> {
        self.outstanding
            .first_key_value()
            .map(|(_, &sent)| sent.saturating_add(timeout_us))
    }

    /// Snapshot of the counters and RTT statistics.
    pub fn stats(&self) -> ProbeStats {
        ProbeStats {
            sent: self.sent,
            received: self.received,
            duplicates: self.duplicates,
            late: self.late,
            lost: self.lost,
            outstanding: self.outstanding.len() as u64,
            errors: self.errors,
            malformed: self.malformed,
            rtt_min_us: self.rtt.min,
            rtt_max_us: self.rtt.max,
            rtt_avg_us: self.rtt.avg(),
            rtt_mdev_us: self.rtt.mdev(),
        }
    }
}

/// Given an IPv4 ICMP echo request, the echo reply an inside host would send:
/// addresses swapped, type 0, TTL 64, same IP ident and DF, options dropped,
/// checksums recomputed.  `None` unless the input is a valid, unfragmented
/// echo request with correct checksums.
pub fn build_icmp_echo_reply(request: &[u8]) -> Option<Vec<u8>> {
    let (h, icmp) = ip::parse_ipv4(request).ok()?;
    if h.protocol != PROTO_ICMP || h.is_fragment() || icmp.len() < L4_HEADER_LEN {
        return None;
    }
    if icmp.first() != Some(&ICMP_ECHO_REQUEST)
        || icmp.get(1) != Some(&0)
        || internet_checksum(icmp) != 0
    {
        return None;
    }
    let mut reply = icmp.to_vec();
    if let Some(t) = reply.first_mut() {
        *t = ICMP_ECHO_REPLY;
    }
    put16(&mut reply, 2, 0);
    let csum = internet_checksum(&reply);
    put16(&mut reply, 2, csum);
    reply_spec(&h, PROTO_ICMP).build(&reply).ok()
}

/// Given an IPv4 UDP datagram, the echo an inside UDP echo server would send:
/// addresses and ports swapped, TTL 64, same IP ident and DF, checksums
/// recomputed.  `None` unless the input is a valid, unfragmented UDP datagram
/// (checksum correct or absent).
pub fn build_udp_echo_reply(request: &[u8]) -> Option<Vec<u8>> {
    let (h, udp) = ip::parse_ipv4(request).ok()?;
    if h.protocol != PROTO_UDP || h.is_fragment() {
        return None;
    }
    let (sport, dport, len, csum) = (be16(udp, 0)?, be16(udp, 2)?, be16(udp, 4)?, be16(udp, 6)?);
    if usize::from(len) != udp.len() || len < 8 {
        return None;
    }
    if csum != 0 && ipv4_transport_checksum(h.src, h.dst, PROTO_UDP, udp) != Some(0) {
        return None;
    }
    let mut reply = udp.to_vec();
    put16(&mut reply, 0, dport);
    put16(&mut reply, 2, sport);
    put16(&mut reply, 6, 0);
    let csum = udp_checksum_v4(h.dst, h.src, &reply)?;
    put16(&mut reply, 6, csum);
    reply_spec(&h, PROTO_UDP).build(&reply).ok()
}

fn reply_spec(req: &Ipv4Header, protocol: u8) -> Ipv4Spec {
    Ipv4Spec {
        src: req.dst,
        dst: req.src,
        protocol,
        ttl: REPLY_TTL,
        ident: req.ident,
        dont_fragment: req.flags_df,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    fn cfg(kind: ProbeKind, payload_len: usize) -> ProbeConfig {
        ProbeConfig {
            src: SRC,
            dst: DST,
            kind,
            payload_len,
            ttl: 32,
            dont_fragment: true,
        }
    }

    fn icmp_prober() -> Prober {
        Prober::new(cfg(ProbeKind::IcmpEcho { ident: 0x1234 }, 56)).unwrap()
    }

    fn udp_prober() -> Prober {
        Prober::new(cfg(
            ProbeKind::Udp {
                src_port: 40000,
                dst_port: 7,
            },
            32,
        ))
        .unwrap()
    }

    /// Independent checksum: plain word loop with an explicit end-around
    /// carry after each addition (no shared code with `ip::checksum`).
    fn naive_ok(bytes: &[u8]) -> bool {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let hi = u32::from(bytes[i]) << 8;
            let lo = if i + 1 < bytes.len() {
                u32::from(bytes[i + 1])
            } else {
                0
            };
            sum += hi | lo;
            if sum > 0xffff {
                sum -= 0xffff;
            }
            i += 2;
        }
        sum == 0xffff
    }

    fn naive_udp_ok(pkt: &[u8]) -> bool {
        let ihl = usize::from(pkt[0] & 0xf) * 4;
        let udp = &pkt[ihl..];
        let mut buf = Vec::new();
        buf.extend_from_slice(&pkt[12..20]);
        buf.extend_from_slice(&[0, 17]);
        buf.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        buf.extend_from_slice(udp);
        naive_ok(&buf)
    }

    /// Recompute the IPv4 header checksum after editing header bytes.
    fn fix_ip_checksum(pkt: &mut [u8]) {
        let ihl = usize::from(pkt[0] & 0xf) * 4;
        pkt[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&pkt[..ihl]);
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
    }

    fn icmp_error(type_: u8, code: u8, mtu: u16, quote: &[u8]) -> Vec<u8> {
        let mut icmp = vec![type_, code, 0, 0, 0, 0];
        icmp.extend_from_slice(&mtu.to_be_bytes());
        icmp.extend_from_slice(quote);
        let c = internet_checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        Ipv4Spec {
            src: ROUTER,
            dst: SRC,
            protocol: PROTO_ICMP,
            ttl: 250,
            ident: 1,
            dont_fragment: false,
        }
        .build(&icmp)
        .unwrap()
    }

    #[test]
    fn config_validation() {
        let k = ProbeKind::IcmpEcho { ident: 1 };
        assert_eq!(
            Prober::new(cfg(k, 23)).unwrap_err(),
            ProbeError::PayloadLen { len: 23 }
        );
        assert_eq!(
            Prober::new(cfg(k, 65_001)).unwrap_err().to_string(),
            "probe payload length 65001 is outside 24..=65000"
        );
        assert!(Prober::new(cfg(k, 24)).is_ok());
        assert!(Prober::new(cfg(k, 65_000)).is_ok());
        let mut c = cfg(k, 24);
        c.ttl = 0;
        assert_eq!(Prober::new(c).unwrap_err(), ProbeError::ZeroTtl);
        let udp0 = ProbeKind::Udp {
            src_port: 0,
            dst_port: 7,
        };
        assert_eq!(
            Prober::new(cfg(udp0, 24)).unwrap_err(),
            ProbeError::ZeroPort
        );
    }

    #[test]
    fn built_icmp_probe_layout_and_checksums() {
        let mut p = icmp_prober();
        let (seq0, _) = p.build(5);
        let (seq, pkt) = p.build(0x0102_0304_0506_0708);
        assert_eq!((seq0, seq), (0, 1));
        assert_eq!(pkt.len(), 20 + 8 + 56);
        assert!(naive_ok(&pkt[..20]), "IPv4 header checksum");
        assert!(naive_ok(&pkt[20..]), "ICMP checksum");
        let (h, icmp) = ip::parse_ipv4(&pkt).unwrap();
        assert_eq!(
            (h.src, h.dst, h.ttl, h.protocol),
            (SRC, DST, 32, PROTO_ICMP)
        );
        assert!(h.flags_df);
        assert_eq!(h.ident, 1);
        assert_eq!(&icmp[..2], &[8, 0]);
        assert_eq!(&icmp[4..8], &[0x12, 0x34, 0, 1]);
        let data = &icmp[8..];
        assert_eq!(&data[..4], b"TSWP");
        assert_eq!(&data[4..8], &1u32.to_be_bytes());
        assert_eq!(&data[8..16], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&data[16..20], &[0x12, 0x34, 0, 0]);
        assert!(data[20..].iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn icmp_round_trip() {
        let mut p = icmp_prober();
        let (seq, pkt) = p.build(1_000);
        let reply = build_icmp_echo_reply(&pkt).unwrap();
        assert!(naive_ok(&reply[..20]) && naive_ok(&reply[20..]));
        let (h, icmp) = ip::parse_ipv4(&reply).unwrap();
        assert_eq!((h.src, h.dst, h.ttl, icmp[0]), (DST, SRC, 64, 0));
        assert_eq!(
            p.handle_packet(1_750, &reply),
            ProbeVerdict::Reply {
                seq,
                rtt_us: 750,
                ttl: 64,
                bytes: 84
            }
        );
        let s = p.stats();
        assert_eq!((s.sent, s.received, s.outstanding, s.lost), (1, 1, 0, 0));
        assert_eq!(s.rtt_min_us, Some(750));
        assert_eq!(s.rtt_avg_us, Some(750.0));
        assert_eq!(s.rtt_mdev_us, Some(0.0));
        assert_eq!(s.loss_ratio(), 0.0);
        // The request itself is not a reply to us.
        assert_eq!(p.handle_packet(1_800, &pkt), ProbeVerdict::NotOurs);
        // Echo replies are not echo requests.
        assert_eq!(build_icmp_echo_reply(&reply), None);
        assert_eq!(build_udp_echo_reply(&pkt), None);
    }

    #[test]
    fn udp_round_trip() {
        let mut p = udp_prober();
        let (seq, pkt) = p.build(10);
        assert!(naive_ok(&pkt[..20]), "IPv4 header checksum");
        assert!(naive_udp_ok(&pkt), "UDP checksum");
        let (h, udp) = ip::parse_ipv4(&pkt).unwrap();
        assert_eq!(h.protocol, PROTO_UDP);
        assert_eq!(&udp[..6], &[0x9c, 0x40, 0, 7, 0, 40]);
        assert_eq!(&udp[24..28], &[0x9c, 0x40, 0, 7]);
        let reply = build_udp_echo_reply(&pkt).unwrap();
        assert!(naive_udp_ok(&reply));
        assert_eq!(
            p.handle_packet(310, &reply),
            ProbeVerdict::Reply {
                seq,
                rtt_us: 300,
                ttl: 64,
                bytes: 60
            }
        );
        assert_eq!(
            p.handle_packet(320, &reply),
            ProbeVerdict::Duplicate { seq }
        );

        // Checksum 0 means "none" and is accepted.
        let (seq1, pkt1) = p.build(400);
        let mut r1 = build_udp_echo_reply(&pkt1).unwrap();
        r1[26..28].copy_from_slice(&[0, 0]);
        assert!(matches!(
            p.handle_packet(500, &r1),
            ProbeVerdict::Reply { seq, rtt_us: 100, .. } if seq == seq1
        ));
        // A wrong one is not.
        let (_, pkt2) = p.build(600);
        let mut r2 = build_udp_echo_reply(&pkt2).unwrap();
        r2[40] ^= 1;
        assert_eq!(
            p.handle_packet(700, &r2),
            ProbeVerdict::Malformed("UDP checksum mismatch".into())
        );
        assert_eq!(p.stats().malformed, 1);
    }

    #[test]
    fn duplicate_late_lost_accounting() {
        let mut p = icmp_prober();
        let (s0, p0) = p.build(0);
        let (s1, p1) = p.build(100);
        let (s2, p2) = p.build(200);
        let r0 = build_icmp_echo_reply(&p0).unwrap();
        let r1 = build_icmp_echo_reply(&p1).unwrap();
        let r2 = build_icmp_echo_reply(&p2).unwrap();
        assert!(matches!(p.handle_packet(50, &r0), ProbeVerdict::Reply { seq, .. } if seq == s0));
        assert_eq!(
            p.handle_packet(60, &r0),
            ProbeVerdict::Duplicate { seq: s0 }
        );
        assert_eq!(p.expire(2_000, 1_000), vec![s1, s2]);
        assert_eq!(p.handle_packet(2_100, &r1), ProbeVerdict::Late { seq: s1 });
        assert_eq!(
            p.handle_packet(2_200, &r1),
            ProbeVerdict::Duplicate { seq: s1 }
        );
        let s = p.stats();
        assert_eq!(
            (
                s.sent,
                s.received,
                s.duplicates,
                s.late,
                s.lost,
                s.outstanding
            ),
            (3, 1, 2, 1, 2, 0)
        );
        assert!((s.loss_ratio() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(p.handle_packet(2_300, &r2), ProbeVerdict::Late { seq: s2 });
        assert_eq!(p.stats().received, 1);
        assert_eq!(p.stats().rtt_max_us, Some(50));
    }

    #[test]
    fn expire_and_next_expiry() {
        let mut p = icmp_prober();
        assert_eq!(p.next_expiry(1_000), None);
        assert!(p.expire(u64::MAX, 0).is_empty());
        p.build(0);
        p.build(100);
        p.build(200);
        assert_eq!(p.next_expiry(1_000), Some(1_000));
        assert!(p.expire(999, 1_000).is_empty());
        assert_eq!(p.expire(1_000, 1_000), vec![0]);
        assert_eq!(p.next_expiry(1_000), Some(1_100));
        assert_eq!(p.expire(1_250, 1_000), vec![1, 2]);
        assert_eq!(p.next_expiry(1_000), None);
        let s = p.stats();
        assert_eq!((s.lost, s.outstanding, s.loss_ratio()), (3, 0, 1.0));
        // Send times never go backwards, even if `now` does.
        p.build(5_000);
        p.build(4_000);
        assert_eq!(p.next_expiry(10), Some(5_010));
        assert_eq!(p.expire(5_010, 10), vec![3, 4]);
    }

    #[test]
    fn frag_needed_quoting_icmp_probe() {
        let mut p = icmp_prober();
        p.build(0);
        let (seq, probe) = p.build(10);
        // Classic 8-byte quote: seq from the ICMP sequence field.
        let err = icmp_error(3, 4, 1400, &probe[..28]);
        assert!(naive_ok(&err[20..]));
        assert_eq!(
            p.handle_packet(20, &err),
            ProbeVerdict::IcmpError {
                icmp_type: 3,
                code: 4,
                seq: Some(seq),
                mtu: Some(1400),
                from: ROUTER
            }
        );
        // Long quote (RFC 1812): seq from the quoted payload.
        let err = icmp_error(3, 4, 1280, &probe[..60]);
        assert!(matches!(
            p.handle_packet(30, &err),
            ProbeVerdict::IcmpError { seq: Some(s), mtu: Some(1280), .. } if s == seq
        ));
        // Time exceeded has no MTU.
        let err = icmp_error(11, 0, 0, &probe[..28]);
        assert!(matches!(
            p.handle_packet(40, &err),
            ProbeVerdict::IcmpError {
                icmp_type: 11,
                code: 0,
                mtu: None,
                ..
            }
        ));
        let s = p.stats();
        assert_eq!((s.errors, s.outstanding), (3, 2));
        // A quote of somebody else's datagram is not ours.
        let mut other = probe.clone();
        other[12..16].copy_from_slice(&[10, 8, 0, 99]);
        fix_ip_checksum(&mut other);
        let err = icmp_error(3, 4, 1400, &other[..28]);
        assert_eq!(p.handle_packet(50, &err), ProbeVerdict::NotOurs);
        // A quote with under 8 transport bytes is malformed.
        let err = icmp_error(3, 4, 1400, &probe[..24]);
        assert!(matches!(
            p.handle_packet(60, &err),
            ProbeVerdict::Malformed(_)
        ));
    }

    #[test]
    fn time_exceeded_quoting_udp_probe() {
        let mut p = udp_prober();
        let (seq, probe) = p.build(0);
        let err = icmp_error(11, 0, 0, &probe[..28]);
        assert_eq!(
            p.handle_packet(5, &err),
            ProbeVerdict::IcmpError {
                icmp_type: 11,
                code: 0,
                seq: Some(seq),
                mtu: None,
                from: ROUTER
            }
        );
        let err = icmp_error(3, 3, 0, &probe[..]);
        assert!(matches!(
            p.handle_packet(6, &err),
            ProbeVerdict::IcmpError {
                icmp_type: 3,
                code: 3,
                seq: Some(0),
                mtu: None,
                ..
            }
        ));
    }

    #[test]
    fn sixteen_bit_wrap_and_outstanding_bound() {
        let mut p = Prober::new(cfg(ProbeKind::IcmpEcho { ident: 9 }, 24)).unwrap();
        let mut last = (0, Vec::new());
        for t in 0..70_000u64 {
            last = p.build(t);
        }
        let (seq, pkt) = last;
        assert_eq!(seq, 69_999);
        assert_eq!(&pkt[26..28], &(69_999u32 as u16).to_be_bytes());
        let s = p.stats();
        assert_eq!(s.outstanding, MAX_OUTSTANDING as u64);
        assert_eq!(s.lost, 70_000 - MAX_OUTSTANDING as u64);
        let reply = build_icmp_echo_reply(&pkt).unwrap();
        assert!(matches!(
            p.handle_packet(80_000, &reply),
            ProbeVerdict::Reply {
                seq: 69_999,
                rtt_us: 10_001,
                ..
            }
        ));
        // The 16-bit field maps to the most recent serial in ICMP errors.
        let err = icmp_error(11, 0, 0, &pkt[..28]);
        assert!(matches!(
            p.handle_packet(80_001, &err),
            ProbeVerdict::IcmpError {
                seq: Some(69_999),
                ..
            }
        ));
    }

    #[test]
    fn not_ours_and_malformed() {
        let mut p = icmp_prober();
        let (_, pkt) = p.build(0);
        let reply = build_icmp_echo_reply(&pkt).unwrap();

        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        v6.extend_from_slice(&[0; 40]);
        assert_eq!(p.handle_packet(1, &v6), ProbeVerdict::NotOurs);

        let mut other = icmp_prober();
        other.cfg.kind = ProbeKind::IcmpEcho { ident: 0x4321 };
        let (_, foreign) = other.build(0);
        let foreign_reply = build_icmp_echo_reply(&foreign).unwrap();
        assert_eq!(p.handle_packet(1, &foreign_reply), ProbeVerdict::NotOurs);

        let tcp = Ipv4Spec {
            src: DST,
            dst: SRC,
            protocol: 6,
            ttl: 64,
            ident: 0,
            dont_fragment: true,
        }
        .build(&[0; 20])
        .unwrap();
        assert_eq!(p.handle_packet(1, &tcp), ProbeVerdict::NotOurs);

        let mut elsewhere = reply.clone();
        elsewhere[16..20].copy_from_slice(&[10, 8, 0, 3]);
        fix_ip_checksum(&mut elsewhere);
        assert_eq!(p.handle_packet(1, &elsewhere), ProbeVerdict::NotOurs);

        let mut bad = reply.clone();
        bad[50] ^= 0x80;
        assert_eq!(
            p.handle_packet(1, &bad),
            ProbeVerdict::Malformed("ICMP checksum mismatch".into())
        );
        assert_eq!(
            p.handle_packet(1, &reply[..60]),
            ProbeVerdict::Malformed("IPv4 total length 84 exceeds the 60 bytes received".into())
        );
        assert_eq!(
            p.handle_packet(1, &[]),
            ProbeVerdict::Malformed("empty packet".into())
        );
        assert_eq!(p.stats().malformed, 3);
        assert_eq!(p.stats().received, 0);
        assert!(matches!(
            p.handle_packet(2, &reply),
            ProbeVerdict::Reply { seq: 0, .. }
        ));
    }

    #[test]
    fn rtt_avg_and_mdev() {
        let mut p = icmp_prober();
        let rtts = [10u64, 20, 30, 40, 1_000];
        for (i, &rtt) in rtts.iter().enumerate() {
            let t = i as u64 * 10_000;
            let (_, pkt) = p.build(t);
            let reply = build_icmp_echo_reply(&pkt).unwrap();
            assert!(
                matches!(p.handle_packet(t + rtt, &reply), ProbeVerdict::Reply { rtt_us, .. } if rtt_us == rtt)
            );
        }
        let n = rtts.len() as f64;
        let mean = rtts.iter().sum::<u64>() as f64 / n;
        let mean_sq = rtts.iter().map(|&x| (x * x) as f64).sum::<f64>() / n;
        let s = p.stats();
        assert_eq!(s.rtt_min_us, Some(10));
        assert_eq!(s.rtt_max_us, Some(1_000));
        assert_eq!(s.rtt_avg_us, Some(220.0));
        assert!((s.rtt_avg_us.unwrap() - mean).abs() < 1e-9);
        // mean(x^2) = 200_600, mean^2 = 48_400 -> sqrt(152_200).
        assert!((s.rtt_mdev_us.unwrap() - 152_200f64.sqrt()).abs() < 1e-9);
        assert!((s.rtt_mdev_us.unwrap() - (mean_sq - mean * mean).sqrt()).abs() < 1e-9);
        let empty = icmp_prober().stats();
        assert_eq!((empty.rtt_avg_us, empty.rtt_mdev_us), (None, None));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut p = icmp_prober();
            p.build(0);
            let _ = p.handle_packet(1, &data);
            let mut u = udp_prober();
            u.build(0);
            let _ = u.handle_packet(1, &data);
            let _ = build_icmp_echo_reply(&data);
            let _ = build_udp_echo_reply(&data);
        }

        /// Random transport bytes behind a valid IPv4 header (and, for ICMP, a
        /// valid checksum) reach the deeper parsers.
        #[test]
        fn arbitrary_transport_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..120),
            proto in prop_oneof![Just(PROTO_ICMP), Just(PROTO_UDP)],
            fix_icmp in any::<bool>(),
        ) {
            let mut body = body;
            if proto == PROTO_ICMP && fix_icmp && body.len() >= 4 {
                body[2] = 0;
                body[3] = 0;
                let c = internet_checksum(&body);
                body[2..4].copy_from_slice(&c.to_be_bytes());
            }
            let pkt = Ipv4Spec { src: DST, dst: SRC, protocol: proto, ttl: 1, ident: 0, dont_fragment: false }
                .build(&body)
                .unwrap();
            let mut p = icmp_prober();
            p.build(0);
            let _ = p.handle_packet(1, &pkt);
            let mut u = udp_prober();
            u.build(0);
            let _ = u.handle_packet(1, &pkt);
            let _ = build_icmp_echo_reply(&pkt);
            let _ = build_udp_echo_reply(&pkt);
        }

        #[test]
        fn damaged_reply_never_gives_wrong_seq(
            udp in any::<bool>(),
            n in 1usize..6,
            pick in any::<usize>(),
            truncate in any::<bool>(),
            pos in any::<usize>(),
            bit in 0u8..8,
        ) {
            let mut p = if udp { udp_prober() } else { icmp_prober() };
            let probes: Vec<(u32, Vec<u8>)> = (0..n).map(|i| p.build(i as u64)).collect();
            let (want, probe) = &probes[pick % n];
            let mut reply = if udp {
                build_udp_echo_reply(probe).unwrap()
            } else {
                build_icmp_echo_reply(probe).unwrap()
            };
            if truncate {
                reply.truncate(pos % reply.len());
            } else {
                let i = pos % reply.len();
                reply[i] ^= 1 << bit;
            }
            match p.handle_packet(100, &reply) {
                ProbeVerdict::Reply { seq, .. } => prop_assert_eq!(seq, *want),
                ProbeVerdict::Duplicate { seq } | ProbeVerdict::Late { seq } => {
                    prop_assert_eq!(seq, *want)
                }
                _ => {}
            }
        }
    }
}
