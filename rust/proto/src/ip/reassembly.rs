//! IPv4 reassembly (RFC 791 §3.2 "Reassembly", RFC 815), sans-IO: the inverse of
//! [`super::fragment::fragment_ipv4`], for the client's virtual adapter.
//!
//! Theory of operation: [`Reassembler::handle`] takes one link-level packet and `now`
//! (microseconds on the caller's monotonic timeline) and returns an [`Outcome`]:
//!
//! * anything that is not an IPv4 fragment — another IP version, or a sound IPv4 packet
//!   with MF clear and offset 0 — is [`Outcome::Pass`]: the caller uses its own bytes;
//! * a version-4 packet that [`super::parse_ipv4`] refuses is [`Outcome::Malformed`]
//!   (counted in `malformed`, not kept; what to do with it is the caller's choice);
//! * a sound fragment is stored under its datagram's key (source, destination,
//!   protocol, identification — RFC 791 §3.2). [`Outcome::Held`] while holes remain;
//!   the fragment that fills the last hole returns [`Outcome::Reassembled`] with the
//!   whole datagram. A fragment that cannot be used is [`Outcome::Dropped`] with a
//!   [`DropReason`].
//!
//! Bookkeeping (RFC 815's holes, kept as the complement): per datagram, one payload
//! buffer that grows to the largest end seen, a sorted list of the disjoint, merged byte
//! ranges received, the datagram's end once the last fragment (MF clear) has arrived,
//! and the header of the first fragment (offset 0). It is complete when the first and
//! the last fragment have arrived and the ranges are the single `0..end`.
//!
//! The reassembled datagram is the first fragment's header, options included (RFC 791
//! §3.1: the first fragment carries them all), with the total length set, MF and the
//! fragment offset cleared (DF and the reserved bit kept as the first fragment had
//! them) and the header checksum recomputed, followed by the payload bytes `0..end`.
//! Reassembling the fragments of a packet therefore gives back that packet's bytes.
//!
//! What is refused (dropped and counted, never a panic):
//!
//! * a fragment with MF set whose data is empty or not a multiple of 8 bytes (RFC 791
//!   §3.2: only the last fragment may end off an 8-byte boundary): `malformed`, the
//!   fragment alone is dropped;
//! * fragments that overlap with *different* bytes, or disagree on where the datagram
//!   ends (two last fragments with different ends, data beyond the last fragment's
//!   end): `overlaps`. In the spirit of RFC 5722 (IPv6, "Handling of Overlapping
//!   Fragments") the whole datagram is dropped; so are its fragments that arrive later,
//!   until its deadline (`discarded`). Overlaps with *identical* bytes are legal (a
//!   datagram refragmented differently on a second path) and are merged;
//!   a fragment that adds nothing is counted in `duplicates`;
//! * a datagram that would exceed 65535 bytes (fragment offset + data + header):
//!   `too_big`, dropped like an overlap;
//! * more than [`ReassemblyLimits::max_fragments`] fragments (duplicates included) for
//!   one datagram: `too_many_fragments`, dropped like an overlap;
//! * more than [`ReassemblyLimits::max_datagrams`] datagrams in the table: the oldest
//!   entry makes room — a dropped datagram's placeholder first (not counted), else the
//!   oldest datagram in progress (`evicted`). A placeholder never displaces a datagram
//!   in progress; when there is no room for one, the dropped datagram's later fragments
//!   simply start a new entry that times out;
//! * a datagram not complete within [`ReassemblyLimits::timeout_us`] of its first
//!   fragment (a fixed lifetime, not extended by later fragments, as RFC 1122 §3.3.2
//!   asks): `timeouts`. Expiry runs at the start of every [`Reassembler::handle`] and in
//!   [`Reassembler::handle_timeout`]; [`Reassembler::next_deadline`] says when.
//!
//! Memory is bounded by `max_datagrams` × 65535 payload bytes plus `max_fragments`
//! ranges per datagram; a datagram's buffer is allocated as its fragments arrive. No
//! ICMP "time exceeded, reassembly" (RFC 792 type 11 code 1) is produced: the caller is a
//! host emulation that only receives.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::checksum::internet_checksum;
use super::{ip_version, parse_ipv4, IpError};

/// Largest IPv4 datagram, header included (the 16-bit total length).
pub const MAX_DATAGRAM_LEN: usize = 65_535;
/// Default lifetime of an incomplete datagram: 30 s, Linux's `ipfrag_time`. RFC 791
/// §3.2 suggests a 15 s lower bound and RFC 1122 §3.3.2 recommends 60–120 s; 30 s keeps
/// a lost fragment's memory for less time than TCP's patience while staying above RFC
/// 791's floor.
pub const DEFAULT_TIMEOUT_US: u64 = 30_000_000;
/// Default number of datagrams reassembled at once (with placeholders of dropped ones):
/// at most 64 × 64 KiB ≈ 4 MiB of buffers, Linux's `ipfrag_high_thresh`.
pub const DEFAULT_MAX_DATAGRAMS: usize = 64;
/// Default number of fragments accepted for one datagram: 128, enough for a 65535-byte
/// datagram over a 576-byte link (119 fragments of 552 data bytes).
pub const DEFAULT_MAX_FRAGMENTS: usize = 128;

const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// The limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Lifetime of an incomplete datagram from its first fragment, microseconds (> 0).
    pub timeout_us: u64,
    /// Datagrams in the table at once (>= 1).
    pub max_datagrams: usize,
    /// Fragments accepted per datagram, duplicates included (>= 2).
    pub max_fragments: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            timeout_us: DEFAULT_TIMEOUT_US,
            max_datagrams: DEFAULT_MAX_DATAGRAMS,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
        }
    }
}

/// A [`ReassemblyLimits`] the reassembler cannot work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitsError {
    ZeroTimeout,
    ZeroDatagrams,
    TooFewFragments { max_fragments: usize },
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroTimeout => write!(f, "reassembly timeout must be above 0"),
            Self::ZeroDatagrams => write!(f, "max_datagrams must be at least 1"),
            Self::TooFewFragments { max_fragments } => write!(
                f,
                "max_fragments {max_fragments} is below 2, the fewest a fragmented datagram has"
            ),
        }
    }
}

impl std::error::Error for LimitsError {}

/// Why a sound fragment was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// MF set and the data empty or not a multiple of 8 bytes (`malformed`).
    BadLength,
    /// Overlapping fragments with different bytes, or disagreeing ends (`overlaps`).
    Overlap,
    /// The datagram would exceed 65535 bytes (`too_big`).
    TooBig,
    /// More than `max_fragments` fragments for the datagram (`too_many_fragments`).
    TooManyFragments,
    /// The datagram was dropped earlier; its placeholder lives until the deadline
    /// (`discarded`).
    DatagramDropped,
}

impl DropReason {
    /// A short stable name: `bad-length`, `overlap`, `too-big`, `too-many-fragments`,
    /// `datagram-dropped`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadLength => "bad-length",
            Self::Overlap => "overlap",
            Self::TooBig => "too-big",
            Self::TooManyFragments => "too-many-fragments",
            Self::DatagramDropped => "datagram-dropped",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one packet handed to [`Reassembler::handle`] became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not an IPv4 fragment: the caller keeps and uses its own bytes.
    Pass,
    /// Version 4, but not a sound IPv4 packet (counted, not kept).
    Malformed(IpError),
    /// A fragment was stored; its datagram is not complete yet.
    Held,
    /// This fragment completed its datagram: the whole IPv4 packet.
    Reassembled(Vec<u8>),
    /// A sound fragment that was not used (counted).
    Dropped(DropReason),
}

/// Counters of a [`Reassembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Sound IPv4 fragments handled.
    pub fragments_in: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped incomplete at their deadline.
    pub timeouts: u64,
    /// Datagrams dropped for overlapping fragments with different bytes or disagreeing ends.
    pub overlaps: u64,
    /// Datagrams dropped for exceeding 65535 bytes.
    pub too_big: u64,
    /// Datagrams dropped for more than `max_fragments` fragments.
    pub too_many_fragments: u64,
    /// Datagrams in progress dropped to make room for a new one.
    pub evicted: u64,
    /// Version-4 packets that do not parse, and fragments of a bad length.
    pub malformed: u64,
    /// Fragments that added no byte, end or header (already received).
    pub duplicates: u64,
    /// Fragments of a datagram dropped earlier.
    pub discarded: u64,
}

/// RFC 791 §3.2: fragments belong together when these four fields agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
}

/// A datagram being reassembled.
#[derive(Debug, Default)]
struct Partial {
    /// Header of the first fragment (offset 0), options included.
    header: Option<Vec<u8>>,
    /// Payload bytes, `data[r.0..r.1]` valid for every range `r`.
    data: Vec<u8>,
    /// Received byte ranges, sorted, disjoint and not adjacent.
    ranges: Vec<(usize, usize)>,
    /// Payload length, once the last fragment (MF clear) arrived.
    end: Option<usize>,
}

/// One table entry: a datagram in progress, or the placeholder of a dropped one.
#[derive(Debug)]
struct Entry {
    deadline_us: u64,
    /// Insertion order, for "oldest" without ties.
    seq: u64,
    fragments: usize,
    /// None once the datagram was dropped: later fragments are discarded.
    partial: Option<Partial>,
}

/// Why [`Partial::add`] refused a fragment.
enum Conflict {
    Overlap,
}

impl Partial {
    /// Add `data` at `start`; Ok(true) if it brought anything new.
    fn add(
        &mut self,
        start: usize,
        data: &[u8],
        last: bool,
        header: Option<&[u8]>,
    ) -> Result<bool, Conflict> {
        let end = start + data.len();
        let received_end = self.ranges.last().map_or(0, |r| r.1);
        match (last, self.end) {
            (true, Some(e)) if e != end => return Err(Conflict::Overlap),
            (true, None) if received_end > end => return Err(Conflict::Overlap),
            (false, Some(e)) if end > e => return Err(Conflict::Overlap),
            _ => {}
        }
        let mut covered = false;
        for &(rs, re) in &self.ranges {
            let (s, e) = (rs.max(start), re.min(end));
            if s < e {
                let old = self.data.get(s..e).unwrap_or_default();
                let new = data.get(s - start..e - start).unwrap_or_default();
                if old != new {
                    return Err(Conflict::Overlap);
                }
            }
            covered |= rs <= start && end <= re;
        }
        let mut new = false;
        if last && self.end.is_none() {
            self.end = Some(end);
            new = true;
        }
        if let (Some(h), None) = (header, &self.header) {
            self.header = Some(h.to_vec());
            new = true;
        }
        if covered || data.is_empty() {
            return Ok(new);
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        if let Some(dst) = self.data.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        // merge [start, end) with every range it touches
        let first = self.ranges.partition_point(|r| r.1 < start);
        let mut last_touching = first;
        let (mut s, mut e) = (start, end);
        while let Some(&(rs, re)) = self.ranges.get(last_touching) {
            if rs > end {
                break;
            }
            s = s.min(rs);
            e = e.max(re);
            last_touching += 1;
        }
        self.ranges.splice(first..last_touching, [(s, e)]);
        Ok(true)
    }

    fn is_complete(&self) -> bool {
        self.header.is_some()
            && self
                .end
                .is_some_and(|end| self.ranges.as_slice() == [(0, end)])
    }

    /// The whole datagram, or None if its header + payload exceed 65535 bytes.
    fn build(&self) -> Option<Vec<u8>> {
        let header = self.header.as_deref()?;
        let end = self.end?;
        let total = u16::try_from(header.len() + end).ok()?;
        let mut out = Vec::with_capacity(usize::from(total));
        out.extend_from_slice(header);
        if let Some(f) = out.get_mut(2..4) {
            f.copy_from_slice(&total.to_be_bytes());
        }
        if let Some(f) = out.get_mut(6..8) {
            let flags = u16::from_be_bytes([f[0], f[1]]) & !(FLAG_MF | OFFSET_MASK);
            f.copy_from_slice(&flags.to_be_bytes());
        }
        if let Some(f) = out.get_mut(10..12) {
            f.copy_from_slice(&[0, 0]);
        }
        let csum = internet_checksum(&out);
        if let Some(f) = out.get_mut(10..12) {
            f.copy_from_slice(&csum.to_be_bytes());
        }
        out.extend_from_slice(self.data.get(..end)?);
        Some(out)
    }
}

/// A sans-IO IPv4 reassembler (see the module docs).
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    table: BTreeMap<Key, Entry>,
    next_seq: u64,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler with `limits`; refuses a zero timeout, no datagrams or fewer than 2
    /// fragments per datagram.
    pub fn new(limits: ReassemblyLimits) -> Result<Self, LimitsError> {
        if limits.timeout_us == 0 {
            return Err(LimitsError::ZeroTimeout);
        }
        if limits.max_datagrams == 0 {
            return Err(LimitsError::ZeroDatagrams);
        }
        if limits.max_fragments < 2 {
            return Err(LimitsError::TooFewFragments {
                max_fragments: limits.max_fragments,
            });
        }
        Ok(Self {
            limits,
            table: BTreeMap::new(),
            next_seq: 0,
            stats: ReassemblyStats::default(),
        })
    }

    pub fn limits(&self) -> ReassemblyLimits {
        self.limits
    }

    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Datagrams in progress (placeholders of dropped ones not included).
    pub fn pending(&self) -> usize {
        self.table.values().filter(|e| e.partial.is_some()).count()
    }

    /// When [`Self::handle_timeout`] has work: the earliest deadline in the table.
    pub fn next_deadline(&self) -> Option<u64> {
        self.table.values().map(|e| e.deadline_us).min()
    }

    /// Drop every entry whose deadline is at or before `now`; an incomplete datagram
    /// counts in `timeouts`. An early call does nothing.
    pub fn handle_timeout(&mut self, now_us: u64) {
        let stats = &mut self.stats;
        self.table.retain(|_, e| {
            let keep = e.deadline_us > now_us;
            if !keep && e.partial.is_some() {
                stats.timeouts += 1;
            }
            keep
        });
    }

    /// One link-level packet (see the module docs). Expires due datagrams first.
    pub fn handle(&mut self, now_us: u64, pkt: &[u8]) -> Outcome {
        self.handle_timeout(now_us);
        if ip_version(pkt) != Some(4) {
            return Outcome::Pass;
        }
        let (hdr, payload) = match parse_ipv4(pkt) {
            Ok(v) => v,
            Err(e) => {
                self.stats.malformed += 1;
                return Outcome::Malformed(e);
            }
        };
        if !hdr.is_fragment() {
            return Outcome::Pass;
        }
        self.stats.fragments_in += 1;
        if hdr.more_fragments && (payload.is_empty() || payload.len() % 8 != 0) {
            self.stats.malformed += 1;
            return Outcome::Dropped(DropReason::BadLength);
        }
        let key = Key {
            src: hdr.src,
            dst: hdr.dst,
            protocol: hdr.protocol,
            ident: hdr.ident,
        };
        let start = usize::from(hdr.frag_offset) * 8;
        let too_big = hdr.header_len + start + payload.len() > MAX_DATAGRAM_LEN;
        let header = (start == 0).then(|| pkt.get(..hdr.header_len).unwrap_or_default());

        let max_fragments = self.limits.max_fragments;
        let verdict = match self.table.get_mut(&key) {
            Some(entry) => match entry.partial.as_mut() {
                None => {
                    self.stats.discarded += 1;
                    return Outcome::Dropped(DropReason::DatagramDropped);
                }
                Some(partial) => {
                    entry.fragments += 1;
                    if too_big {
                        Err(DropReason::TooBig)
                    } else if entry.fragments > max_fragments {
                        Err(DropReason::TooManyFragments)
                    } else {
                        Ok(partial.add(start, payload, !hdr.more_fragments, header))
                    }
                }
            },
            None if too_big => {
                self.stats.too_big += 1;
                self.placeholder(now_us, key);
                return Outcome::Dropped(DropReason::TooBig);
            }
            None => {
                let mut partial = Partial::default();
                let added = partial.add(start, payload, !hdr.more_fragments, header);
                self.insert(now_us, key, partial);
                Ok(added)
            }
        };
        match verdict {
            Ok(Ok(new)) => {
                if !new {
                    self.stats.duplicates += 1;
                }
                self.complete(key)
            }
            Ok(Err(Conflict::Overlap)) => self.kill(key, DropReason::Overlap),
            Err(reason) => self.kill(key, reason),
        }
    }

    /// Hand out the datagram of `key` if it is complete.
    fn complete(&mut self, key: Key) -> Outcome {
        let Some(partial) = self.table.get(&key).and_then(|e| e.partial.as_ref()) else {
            return Outcome::Held;
        };
        if !partial.is_complete() {
            return Outcome::Held;
        }
        match partial.build() {
            Some(datagram) => {
                self.table.remove(&key);
                self.stats.reassembled += 1;
                Outcome::Reassembled(datagram)
            }
            // the first fragment's options push the datagram over 65535 bytes
            None => self.kill(key, DropReason::TooBig),
        }
    }

    /// Drop the datagram of `key`, keeping a placeholder until its deadline.
    fn kill(&mut self, key: Key, reason: DropReason) -> Outcome {
        match reason {
            DropReason::Overlap => self.stats.overlaps += 1,
            DropReason::TooBig => self.stats.too_big += 1,
            DropReason::TooManyFragments => self.stats.too_many_fragments += 1,
            DropReason::BadLength | DropReason::DatagramDropped => {}
        }
        if let Some(e) = self.table.get_mut(&key) {
            e.partial = None;
        }
        Outcome::Dropped(reason)
    }

    /// A new datagram in progress, making room by dropping the oldest entry.
    fn insert(&mut self, now_us: u64, key: Key, partial: Partial) {
        if self.table.len() >= self.limits.max_datagrams {
            let oldest = self
                .table
                .iter()
                .min_by_key(|(_, e)| (e.partial.is_some(), e.seq))
                .map(|(k, e)| (*k, e.partial.is_some()));
            if let Some((k, live)) = oldest {
                self.table.remove(&k);
                if live {
                    self.stats.evicted += 1;
                }
            }
        }
        self.put(now_us, key, Some(partial));
    }

    /// The placeholder of a datagram dropped at its first fragment, if there is room
    /// without displacing a datagram in progress.
    fn placeholder(&mut self, now_us: u64, key: Key) {
        if self.table.len() >= self.limits.max_datagrams {
            let oldest = self
                .table
                .iter()
                .filter(|(_, e)| e.partial.is_none())
                .min_by_key(|(_, e)| e.seq)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.table.remove(&k);
                }
                None => return,
            }
        }
        self.put(now_us, key, None);
    }

    fn put(&mut self, now_us: u64, key: Key, partial: Option<Partial>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.table.insert(
            key,
            Entry {
                deadline_us: now_us.saturating_add(self.limits.timeout_us),
                seq,
                fragments: 1,
                partial,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::fragment::fragment_ipv4;
    use crate::ip::{Ipv4Spec, PROTO_UDP};
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000;

    fn packet(len: usize, ident: u16, df: bool) -> Vec<u8> {
        Ipv4Spec {
            src: Ipv4Addr::new(10, 1, 1, 80),
            dst: Ipv4Addr::new(10, 10, 10, 10),
            protocol: PROTO_UDP,
            ttl: 64,
            ident,
            dont_fragment: df,
        }
        .build(&(0..len).map(|i| (i * 7) as u8).collect::<Vec<_>>())
        .unwrap()
    }

    fn fresh() -> Reassembler {
        Reassembler::new(ReassemblyLimits::default()).unwrap()
    }

    /// A sound fragment of `ident` at `offset` (8-byte units) carrying `data`.
    fn frag(ident: u16, offset: u16, mf: bool, data: &[u8]) -> Vec<u8> {
        let mut p = packet(data.len(), ident, false);
        p[20..].copy_from_slice(data);
        let ff = offset | if mf { FLAG_MF } else { 0 };
        p[6..8].copy_from_slice(&ff.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn feed(r: &mut Reassembler, now: u64, frags: &[Vec<u8>]) -> Vec<Outcome> {
        frags.iter().map(|f| r.handle(now, f)).collect()
    }

    #[test]
    fn non_fragments_pass_and_malformed_is_counted() {
        let mut r = fresh();
        let p = packet(100, 1, true);
        assert_eq!(r.handle(0, &p), Outcome::Pass);
        assert_eq!(r.handle(0, &[0x60, 0, 0, 0]), Outcome::Pass); // IPv6
        assert_eq!(r.handle(0, &[]), Outcome::Pass);
        assert_eq!(
            r.handle(0, &[0x45, 0, 0]),
            Outcome::Malformed(IpError::TooShort { len: 3 })
        );
        let mut bad = frag(1, 0, true, &[1; 8]);
        bad[8] ^= 1; // checksum no longer right
        assert_eq!(
            r.handle(0, &bad),
            Outcome::Malformed(IpError::BadHeaderChecksum)
        );
        let s = r.stats();
        assert_eq!((s.malformed, s.fragments_in), (2, 0));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn in_order_and_reversed_reassemble_to_the_original() {
        let p = packet(1400, 0x1234, true);
        let frags = fragment_ipv4(&p, 576).unwrap();
        assert_eq!(frags.len(), 3);
        let mut r = fresh();
        let out = feed(&mut r, 5, &frags);
        assert_eq!(out[..2], [Outcome::Held, Outcome::Held]);
        assert_eq!(out[2], Outcome::Reassembled(p.clone()));
        let rev: Vec<_> = frags.iter().rev().cloned().collect();
        let out = feed(&mut r, 6, &rev);
        assert_eq!(out[2], Outcome::Reassembled(p.clone()));
        let s = r.stats();
        assert_eq!((s.fragments_in, s.reassembled, s.duplicates), (6, 2, 0));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn header_comes_from_the_first_fragment_with_its_options() {
        // IHL 8 with a copied option and a non-copied one: later fragments only carry
        // the copied one; the reassembled header is the first fragment's, whole.
        let mut p = packet(300, 7, false);
        let opts = [0x83, 7, 4, 1, 2, 3, 4, 1, 7, 3, 4, 0];
        p.splice(20..20, opts);
        p[0] = 0x48;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&p[..32]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let frags = fragment_ipv4(&p, 100).unwrap();
        assert!(frags.len() > 3);
        assert_eq!(frags[1][0], 0x47);
        let mut r = fresh();
        let mut out = feed(&mut r, 0, &frags[1..]);
        out.push(r.handle(0, &frags[0]));
        assert_eq!(out.last(), Some(&Outcome::Reassembled(p)));
    }

    #[test]
    fn duplicates_and_identical_overlaps_are_merged() {
        let p = packet(64, 9, false);
        let data = &p[20..];
        let mut r = fresh();
        assert_eq!(r.handle(0, &frag(9, 0, true, &data[..32])), Outcome::Held);
        assert_eq!(r.handle(0, &frag(9, 0, true, &data[..32])), Outcome::Held);
        // 16..48 overlaps the first piece with the same bytes
        assert_eq!(r.handle(0, &frag(9, 2, true, &data[16..48])), Outcome::Held);
        assert_eq!(r.handle(0, &frag(9, 1, true, &data[8..16])), Outcome::Held);
        assert_eq!(
            r.handle(0, &frag(9, 6, false, &data[48..])),
            Outcome::Reassembled(p)
        );
        let s = r.stats();
        assert_eq!((s.duplicates, s.overlaps, s.reassembled), (2, 0, 1));
    }

    #[test]
    fn overlap_with_different_bytes_drops_the_datagram_until_its_deadline() {
        let mut r = fresh();
        assert_eq!(r.handle(0, &frag(3, 0, true, &[1; 16])), Outcome::Held);
        assert_eq!(
            r.handle(SEC, &frag(3, 1, true, &[2; 16])),
            Outcome::Dropped(DropReason::Overlap)
        );
        assert_eq!(r.pending(), 0);
        // the rest of the datagram, even consistent with the first piece, is discarded
        assert_eq!(
            r.handle(2 * SEC, &frag(3, 2, false, &[1; 5])),
            Outcome::Dropped(DropReason::DatagramDropped)
        );
        // the placeholder lives until the first fragment's deadline, then a new
        // datagram with the same key reassembles
        assert_eq!(r.next_deadline(), Some(30 * SEC));
        r.handle_timeout(30 * SEC - 1);
        assert_eq!(r.next_deadline(), Some(30 * SEC));
        r.handle_timeout(30 * SEC);
        assert_eq!(r.next_deadline(), None);
        let s = r.stats();
        assert_eq!((s.overlaps, s.discarded, s.timeouts), (1, 1, 0));
        let p = packet(40, 3, false);
        let frags = fragment_ipv4(&p, 40).unwrap();
        let out = feed(&mut r, 31 * SEC, &frags);
        assert_eq!(out.last(), Some(&Outcome::Reassembled(p)));
    }

    #[test]
    fn disagreeing_ends_are_overlaps() {
        let mut r = fresh();
        r.handle(0, &frag(1, 1, false, &[0; 8]));
        assert_eq!(
            r.handle(0, &frag(1, 2, false, &[0; 8])),
            Outcome::Dropped(DropReason::Overlap)
        );
        r.handle(0, &frag(2, 1, false, &[0; 8]));
        assert_eq!(
            r.handle(0, &frag(2, 2, true, &[0; 8])),
            Outcome::Dropped(DropReason::Overlap),
            "data beyond the last fragment's end"
        );
        r.handle(0, &frag(4, 2, true, &[0; 8]));
        assert_eq!(
            r.handle(0, &frag(4, 1, false, &[0; 8])),
            Outcome::Dropped(DropReason::Overlap),
            "a last fragment that ends before data already received"
        );
        assert_eq!(r.stats().overlaps, 3);
    }

    #[test]
    fn bad_lengths_drop_only_the_fragment() {
        let mut r = fresh();
        assert_eq!(
            r.handle(0, &frag(5, 0, true, &[0; 12])),
            Outcome::Dropped(DropReason::BadLength)
        );
        assert_eq!(
            r.handle(0, &frag(5, 0, true, &[])),
            Outcome::Dropped(DropReason::BadLength)
        );
        assert_eq!(r.stats().malformed, 2);
        assert_eq!(r.handle(0, &frag(5, 0, true, &[1; 8])), Outcome::Held);
        // an empty last fragment fixes the end
        let mut want = packet(8, 5, false);
        want[20..].copy_from_slice(&[1; 8]);
        want[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&want[..20]);
        want[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            r.handle(0, &frag(5, 1, false, &[])),
            Outcome::Reassembled(want)
        );
    }

    #[test]
    fn too_big_datagrams_are_dropped() {
        let mut r = fresh();
        // offset 8189 x 8 = 65512, + 8 data + 20 header = 65540
        assert_eq!(
            r.handle(0, &frag(6, 8189, true, &[0; 8])),
            Outcome::Dropped(DropReason::TooBig)
        );
        assert_eq!(
            r.handle(0, &frag(6, 0, true, &[0; 8])),
            Outcome::Dropped(DropReason::DatagramDropped)
        );
        assert_eq!((r.stats().too_big, r.stats().discarded), (1, 1));
        // fits exactly: 65512 + 3 + 20 = 65535
        let mut r = fresh();
        assert_eq!(r.handle(0, &frag(7, 8189, false, &[9; 3])), Outcome::Held);
        let first = frag(7, 0, true, &[9; 65512]);
        assert!(matches!(r.handle(0, &first), Outcome::Reassembled(p) if p.len() == 65_535));
        assert_eq!(r.stats().too_big, 0);
    }

    #[test]
    fn options_pushing_over_65535_at_completion() {
        let mut r = fresh();
        assert_eq!(r.handle(0, &frag(8, 8188, false, &[9; 11])), Outcome::Held); // 65504..65515
        let mut first = frag(8, 0, true, &[9; 65504]);
        first.splice(20..20, [1, 1, 1, 0]);
        first[0] = 0x46;
        let total = 65_528u16;
        first[2..4].copy_from_slice(&total.to_be_bytes());
        first.truncate(usize::from(total));
        first[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&first[..24]);
        first[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(r.handle(0, &first), Outcome::Dropped(DropReason::TooBig));
        assert_eq!(r.stats().too_big, 1);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn timeouts_count_and_next_deadline() {
        let mut r = fresh();
        r.handle(10, &frag(1, 0, true, &[0; 8]));
        r.handle(SEC, &frag(2, 0, true, &[0; 8]));
        // a later fragment does not extend the lifetime
        r.handle(20 * SEC, &frag(2, 2, true, &[0; 8]));
        assert_eq!(r.next_deadline(), Some(10 + 30 * SEC));
        r.handle_timeout(30 * SEC); // early: nothing
        assert_eq!(r.pending(), 2);
        r.handle_timeout(10 + 30 * SEC);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.stats().timeouts, 1);
        assert_eq!(r.next_deadline(), Some(31 * SEC));
        // handle() expires first: this fragment starts a fresh datagram
        assert_eq!(
            r.handle(31 * SEC, &frag(2, 1, false, &[0; 8])),
            Outcome::Held
        );
        let s = r.stats();
        assert_eq!((s.timeouts, s.reassembled, s.fragments_in), (2, 0, 4));
        assert_eq!(r.next_deadline(), Some(61 * SEC));
    }

    #[test]
    fn oldest_datagram_is_evicted() {
        let limits = ReassemblyLimits {
            max_datagrams: 2,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits).unwrap();
        r.handle(0, &frag(1, 0, true, &[0; 8]));
        r.handle(1, &frag(2, 0, true, &[0; 8]));
        r.handle(2, &frag(3, 0, true, &[0; 8]));
        assert_eq!(r.stats().evicted, 1);
        assert_eq!(r.pending(), 2);
        // ident 1 is gone: its last fragment starts over; ident 2 still completes
        assert_eq!(r.handle(3, &frag(1, 1, false, &[0; 8])), Outcome::Held);
        assert_eq!(r.stats().evicted, 2);
        assert!(matches!(
            r.handle(4, &frag(3, 1, false, &[0; 8])),
            Outcome::Reassembled(_)
        ));
        // placeholders are evicted before datagrams in progress, uncounted
        r.handle(5, &frag(1, 1, true, &[1; 8])); // overlap: ident 1 becomes a placeholder
        assert_eq!(r.pending(), 0);
        r.handle(6, &frag(4, 0, true, &[0; 8]));
        r.handle(7, &frag(5, 0, true, &[0; 8]));
        let s = r.stats();
        assert_eq!((s.evicted, s.overlaps), (2, 1));
        assert_eq!(r.pending(), 2);
        // a dropped datagram's placeholder never displaces one in progress
        assert_eq!(
            r.handle(8, &frag(6, 8189, true, &[0; 8])),
            Outcome::Dropped(DropReason::TooBig)
        );
        assert_eq!((r.pending(), r.stats().evicted), (2, 2));
    }

    #[test]
    fn too_many_fragments() {
        let limits = ReassemblyLimits {
            max_fragments: 3,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits).unwrap();
        let frags = fragment_ipv4(&packet(64, 1, false), 28).unwrap();
        assert_eq!(frags.len(), 8);
        let out = feed(&mut r, 0, &frags[..4]);
        assert_eq!(out[2], Outcome::Held);
        assert_eq!(out[3], Outcome::Dropped(DropReason::TooManyFragments));
        assert_eq!(r.stats().too_many_fragments, 1);
        // duplicates count too
        let mut r = Reassembler::new(limits).unwrap();
        let dup = [
            frags[0].clone(),
            frags[0].clone(),
            frags[0].clone(),
            frags[1].clone(),
        ];
        let out = feed(&mut r, 0, &dup);
        assert_eq!(out[3], Outcome::Dropped(DropReason::TooManyFragments));
        // exactly the limit is fine
        let three = fragment_ipv4(&packet(40, 2, false), 36).unwrap();
        assert_eq!(three.len(), 3);
        assert!(matches!(
            feed(&mut r, 0, &three)[2],
            Outcome::Reassembled(_)
        ));
    }

    #[test]
    fn key_separates_datagrams() {
        let a = packet(100, 1, false);
        let mut b = packet(100, 1, false);
        b[9] = 6; // another protocol, same ident
        b[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        let fa = fragment_ipv4(&a, 60).unwrap();
        let fb = fragment_ipv4(&b, 60).unwrap();
        let mut r = fresh();
        let mut got = Vec::new();
        for (x, y) in fa.iter().zip(&fb) {
            got.push(r.handle(0, x));
            got.push(r.handle(0, y));
        }
        assert_eq!(got[got.len() - 2], Outcome::Reassembled(a));
        assert_eq!(got[got.len() - 1], Outcome::Reassembled(b));
    }

    #[test]
    fn limits_are_checked() {
        let d = ReassemblyLimits::default();
        assert_eq!(
            (d.timeout_us, d.max_datagrams, d.max_fragments),
            (30 * SEC, 64, 128)
        );
        let bad = |l| Reassembler::new(l).unwrap_err();
        assert_eq!(
            bad(ReassemblyLimits { timeout_us: 0, ..d }),
            LimitsError::ZeroTimeout
        );
        assert_eq!(
            bad(ReassemblyLimits {
                max_datagrams: 0,
                ..d
            }),
            LimitsError::ZeroDatagrams
        );
        assert_eq!(
            bad(ReassemblyLimits {
                max_fragments: 1,
                ..d
            })
            .to_string(),
            "max_fragments 1 is below 2, the fewest a fragmented datagram has"
        );
        assert_eq!(
            DropReason::TooManyFragments.to_string(),
            "too-many-fragments"
        );
    }

    /// A deterministic shuffle from a seed (the core draws no OS randomness).
    fn shuffle<T>(v: &mut [T], mut seed: u64) {
        for i in (1..v.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = ((seed >> 33) % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }

    proptest! {
        #[test]
        fn never_panics(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..20), step in 0u64..5_000_000) {
            let limits = ReassemblyLimits { max_datagrams: 3, max_fragments: 4, timeout_us: 7_000_000 };
            let mut r = Reassembler::new(limits).unwrap();
            for (i, p) in packets.iter().enumerate() {
                let _ = r.handle(i as u64 * step, p);
                prop_assert!(r.table.len() <= 3);
            }
        }

        #[test]
        fn sound_random_fragments_keep_the_invariants(
            frags in proptest::collection::vec((0u16..4, 0u16..40, any::<bool>(), 0usize..6, any::<u8>()), 0..60),
            step in 0u64..3_000_000,
        ) {
            let limits = ReassemblyLimits { max_datagrams: 3, max_fragments: 8, timeout_us: 5_000_000 };
            let mut r = Reassembler::new(limits).unwrap();
            for (i, &(ident, offset, mf, units, byte)) in frags.iter().enumerate() {
                // mostly 8-byte multiples, sometimes a ragged last piece
                let len = units * 8 + usize::from(!mf && byte % 3 == 0) * usize::from(byte % 8);
                let f = frag(ident, offset, mf, &vec![byte % 4; len]);
                match r.handle(i as u64 * step, &f) {
                    Outcome::Reassembled(d) => {
                        let (h, body) = parse_ipv4(&d).unwrap();
                        prop_assert!(!h.is_fragment());
                        prop_assert_eq!(h.ident, ident);
                        prop_assert_eq!(body.len(), usize::from(h.total_len) - 20);
                    }
                    Outcome::Pass => prop_assert!(offset == 0 && !mf),
                    Outcome::Malformed(e) => prop_assert!(false, "{e}"),
                    Outcome::Held | Outcome::Dropped(_) => {}
                }
                prop_assert!(r.table.len() <= 3);
                for e in r.table.values() {
                    prop_assert!(e.fragments <= 8);
                    let Some(p) = &e.partial else { continue };
                    for w in p.ranges.windows(2) {
                        prop_assert!(w[0].1 < w[1].0, "ranges not merged: {:?}", p.ranges);
                    }
                    for &(s, e) in &p.ranges {
                        prop_assert!(s < e && e <= p.data.len());
                        prop_assert!(p.end.is_none_or(|end| e <= end));
                    }
                }
            }
            let s = r.stats();
            let dropped = s.overlaps + s.too_big + s.too_many_fragments;
            prop_assert!(s.reassembled + dropped + s.timeouts + s.evicted + r.pending() as u64 <= s.fragments_in);
        }

        #[test]
        fn fragments_reassemble_shuffled_and_duplicated(
            len in 0usize..6000,
            mtu in 28usize..2000,
            refrag in 28usize..1500,
            df: bool,
            ident: u16,
            seed: u64,
            dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let p = packet(len, ident, df);
            let mut frags = Vec::new();
            // fragment, then fragment some pieces again (a second, smaller link)
            for (i, f) in fragment_ipv4(&p, mtu).unwrap().into_iter().enumerate() {
                if i % 2 == 1 {
                    frags.extend(fragment_ipv4(&f, refrag).unwrap());
                } else {
                    frags.push(f);
                }
            }
            for d in &dups {
                let f = d.get(&frags).clone();
                frags.push(f);
            }
            shuffle(&mut frags, seed);
            let limits = ReassemblyLimits { max_fragments: 4096, ..ReassemblyLimits::default() };
            let mut r = Reassembler::new(limits).unwrap();
            let mut done = Vec::new();
            for f in &frags {
                match r.handle(1, f) {
                    Outcome::Reassembled(d) => done.push(d),
                    Outcome::Pass => done.push(f.clone()),
                    Outcome::Held => {}
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            // whole at least once, and only ever the original (duplicates that arrive
            // after completion may start, and even complete, a new datagram)
            prop_assert!(!done.is_empty());
            prop_assert!(done.iter().all(|d| d == &p));
            prop_assert_eq!(r.stats().overlaps, 0);
        }

        #[test]
        fn different_bytes_in_an_overlap_drop_the_datagram(
            len in 16usize..3000,
            mtu in 28usize..1500,
            which: prop::sample::Index,
            at: prop::sample::Index,
            seed: u64,
        ) {
            let p = packet(len, 42, false);
            let mut frags = fragment_ipv4(&p, mtu).unwrap();
            prop_assume!(frags.len() > 1);
            // a second copy of one fragment with one data byte changed
            let mut evil = which.get(&frags).clone();
            let i = 20 + at.index(evil.len() - 20);
            evil[i] ^= 0x5a;
            let offset = usize::from(u16::from_be_bytes([evil[6], evil[7]]) & OFFSET_MASK) * 8;
            let mut p_evil = p.clone();
            p_evil[20 + offset + (i - 20)] ^= 0x5a;
            frags.push(evil);
            shuffle(&mut frags, seed);
            let limits = ReassemblyLimits { max_fragments: 4096, ..ReassemblyLimits::default() };
            let mut r = Reassembler::new(limits).unwrap();
            let outcomes = feed(&mut r, 0, &frags);
            let whole: Vec<_> = outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Reassembled(d) => Some(d),
                    _ => None,
                })
                .collect();
            let s = r.stats();
            if let [d] = whole[..] {
                // the datagram completed before the second copy arrived (which starts a
                // new datagram): with whichever copy came first
                prop_assert_eq!(s.overlaps, 0);
                prop_assert!(d == &p || d == &p_evil);
            } else {
                prop_assert!(whole.is_empty());
                prop_assert_eq!(s.overlaps, 1);
            }
        }
    }
}
