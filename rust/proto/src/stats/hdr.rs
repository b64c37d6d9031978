//! An HDR histogram: fixed relative precision over a wide `u64` range, mergeable.
//!
//! Theory of operation
//! -------------------
//! This is the layout of Gil Tene's HdrHistogram (the Java original,
//! `AbstractHistogram`; the Rust crate `hdrhistogram` has the same arithmetic), written
//! here so that the core has no extra dependency and so that its decoder is ours to
//! harden and fuzz.
//!
//! A histogram is made for `(lowest, highest, sigfig)`: values are told apart down to
//! `lowest` (rounded down to a power of two, the *unit*), tracked up to `highest`, with
//! `sigfig` significant decimal digits (1..=5) everywhere in between. Each *bucket*
//! covers one power-of-two range of values and is split into `sub_bucket_count / 2`
//! linear *sub-buckets* (bucket 0 has all `sub_bucket_count` of them, starting at 0),
//! with `sub_bucket_count = 2^ceil(log2(2 * 10^sigfig))`. So two values in one
//! sub-bucket differ by less than `1 / 10^sigfig` of their size (or by less than the
//! unit near 0): those are *equivalent* values, counted in one slot.
//!
//! A value's slot is found with one `leading_zeros`, a shift and an add
//! ([`Histogram::record`] is O(1)). Counts are stored per half-bucket chunk, allocated
//! on first use, so a histogram of setup latencies that span three octaves costs three
//! chunks, not the whole range (a 1 µs .. 1 h, 3-digit histogram has 23 chunks of 1024
//! counts).
//!
//! Out-of-range values never fail: a value above `highest` is recorded as `highest`
//! and counted in [`Histogram::clamped`]; a value the caller could not even express
//! (below zero on its side) is recorded as 0 and counted there too
//! ([`Histogram::record_below_zero`]). Counts saturate at `u64::MAX`.
//!
//! Reading: [`Histogram::value_at_quantile`] returns the *highest* value equivalent to
//! the sample of rank `ceil(q * len)` (never under-reports a latency; quantile 0 is
//! [`Histogram::min`], the lowest equivalent value of the smallest sample);
//! [`Histogram::mean`] and [`Histogram::stdev`] use each slot's median equivalent
//! value. These are HdrHistogram's conventions.
//!
//! Merging ([`Histogram::merge`]) adds the counts slot by slot when both layouts have
//! the same unit and sub-bucket count (the usual case: every worker makes the same
//! histograms), which is exactly the histogram of all the samples together. Otherwise
//! each of the other histogram's slots is recorded again at its lowest equivalent value
//! (HdrHistogram's `add`), so the precision is the coarser of the two.
//!
//! Encoding (for crossing processes; [`Histogram::encode`], [`Histogram::decode`]),
//! version 1, integers as unsigned LEB128 varints:
//!
//! ```text
//! "TSH" 0x01 | lowest | highest | sigfig (1 byte) | clamped | (gap, count)*
//! ```
//!
//! one `(gap, count)` pair per non-zero slot in increasing slot order, `gap` being the
//! number of empty slots skipped since the previous one. The encoding is canonical
//! (equal histograms encode to equal bytes). The decoder checks every field (magic,
//! version, layout, varint length, slot bounds, non-zero counts, `clamped <= len`) and
//! returns a [`DecodeError`] for anything else; it allocates at most the layout's own
//! chunks. It is not HdrHistogram's V2 "compressed" encoding (that one needs zlib and
//! carries nothing more for us).

use std::fmt;

/// Most significant decimal digits a layout may ask for.
pub const MAX_SIGFIG: u8 = 5;
/// First bytes of every encoded histogram.
pub const MAGIC: [u8; 3] = *b"TSH";
/// The encoding version [`Histogram::encode`] writes and [`Histogram::decode`] reads.
pub const ENCODING_VERSION: u8 = 1;

/// Why `(lowest, highest, sigfig)` is not a histogram layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// `lowest` was 0.
    LowestZero,
    /// `highest` was below `2 * lowest`.
    HighestTooLow { lowest: u64, highest: u64 },
    /// `sigfig` was outside 1..=5.
    Sigfig(u8),
    /// `sigfig` digits above a unit of `lowest` need more than 64 bits.
    TooWide { lowest: u64, sigfig: u8 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LowestZero => write!(f, "histogram lowest value must be at least 1"),
            Self::HighestTooLow { lowest, highest } => write!(
                f,
                "histogram highest value {highest} must be at least twice the lowest ({lowest})"
            ),
            Self::Sigfig(s) => write!(
                f,
                "histogram significant digits must be 1 to {MAX_SIGFIG}, got {s}"
            ),
            Self::TooWide { lowest, sigfig } => write!(
                f,
                "histogram of {sigfig} significant digits above a lowest value of {lowest} does not fit in 64 bits"
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

/// Why bytes are not an encoded histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside a field (or before the version byte).
    Truncated,
    /// The bytes do not start with [`MAGIC`].
    BadMagic,
    /// An encoding version this build does not read.
    Version(u8),
    /// The header's layout is not one [`Histogram::new`] accepts.
    Layout(LayoutError),
    /// A varint longer than 64 bits.
    VarintTooLong,
    /// A slot beyond the layout's last one.
    SlotOutOfRange,
    /// A slot with a zero count (the encoder never writes one).
    ZeroCount,
    /// More values counted as clamped than recorded.
    ClampedAboveTotal,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "histogram bytes are truncated"),
            Self::BadMagic => write!(f, "not histogram bytes (bad magic)"),
            Self::Version(v) => write!(
                f,
                "histogram encoding version {v} is not supported (this build reads {ENCODING_VERSION})"
            ),
            Self::Layout(e) => write!(f, "histogram bytes: {e}"),
            Self::VarintTooLong => write!(f, "histogram bytes: a number longer than 64 bits"),
            Self::SlotOutOfRange => write!(f, "histogram bytes: a count beyond the layout's range"),
            Self::ZeroCount => write!(f, "histogram bytes: a zero count"),
            Self::ClampedAboveTotal => {
                write!(f, "histogram bytes: more clamped values than recorded")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// The arithmetic of one `(lowest, highest, sigfig)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    lowest: u64,
    highest: u64,
    sigfig: u8,
    /// log2 of the unit: `floor(log2(lowest))`.
    unit_magnitude: u32,
    /// log2 of `sub_bucket_count / 2`.
    half_magnitude: u32,
    /// `sub_bucket_count / 2`: slots per chunk.
    half_count: u64,
    /// `(sub_bucket_count - 1) << unit_magnitude`.
    sub_bucket_mask: u64,
    /// `64 - unit_magnitude - half_magnitude - 1`.
    leading_zero_count_base: u32,
    /// Buckets needed to reach `highest`.
    bucket_count: u32,
    /// Slots: `(bucket_count + 1) * half_count`.
    slots: usize,
}

impl Layout {
    fn new(lowest: u64, highest: u64, sigfig: u8) -> Result<Self, LayoutError> {
        if lowest == 0 {
            return Err(LayoutError::LowestZero);
        }
        if !(1..=MAX_SIGFIG).contains(&sigfig) {
            return Err(LayoutError::Sigfig(sigfig));
        }
        if highest / 2 < lowest {
            return Err(LayoutError::HighestTooLow { lowest, highest });
        }
        let largest_single_unit = 2 * 10u64.pow(u32::from(sigfig));
        // ceil(log2(largest_single_unit)), >= 2 for sigfig >= 1
        let sub_bucket_count_magnitude = 64 - (largest_single_unit - 1).leading_zeros();
        let half_magnitude = sub_bucket_count_magnitude - 1;
        let unit_magnitude = 63 - lowest.leading_zeros();
        if unit_magnitude + half_magnitude + 1 > 63 {
            return Err(LayoutError::TooWide { lowest, sigfig });
        }
        let sub_bucket_count = 1u64 << (half_magnitude + 1);
        let mut smallest_untrackable = sub_bucket_count << unit_magnitude;
        let mut bucket_count = 1u32;
        while smallest_untrackable <= highest {
            if smallest_untrackable > u64::MAX / 2 {
                bucket_count += 1;
                break;
            }
            smallest_untrackable <<= 1;
            bucket_count += 1;
        }
        let half_count = sub_bucket_count / 2;
        Ok(Self {
            lowest,
            highest,
            sigfig,
            unit_magnitude,
            half_magnitude,
            half_count,
            sub_bucket_mask: (sub_bucket_count - 1) << unit_magnitude,
            leading_zero_count_base: 64 - unit_magnitude - half_magnitude - 1,
            bucket_count,
            // at most 65 chunks of at most 2^17 slots: no overflow
            slots: (bucket_count as usize + 1) * half_count as usize,
        })
    }

    fn bucket_of(&self, value: u64) -> u32 {
        self.leading_zero_count_base - (value | self.sub_bucket_mask).leading_zeros()
    }

    /// The slot counting `value` (`value <= highest` keeps it below `slots`).
    fn slot_of(&self, value: u64) -> usize {
        let bucket = self.bucket_of(value);
        let sub = value >> (bucket + self.unit_magnitude);
        (((u64::from(bucket) + 1) << self.half_magnitude) + sub - self.half_count) as usize
    }

    /// `(bucket, sub_bucket)` of a slot.
    fn location(&self, slot: usize) -> (u32, u64) {
        let slot = slot as u64;
        let chunk = slot >> self.half_magnitude;
        let within = slot & (self.half_count - 1);
        if chunk == 0 {
            (0, within)
        } else {
            ((chunk - 1) as u32, within + self.half_count)
        }
    }

    /// The lowest value counted in `slot`.
    fn slot_lowest(&self, slot: usize) -> u64 {
        let (bucket, sub) = self.location(slot);
        sub << (bucket + self.unit_magnitude)
    }

    /// How many values `slot` counts.
    fn slot_size(&self, slot: usize) -> u64 {
        let (bucket, _) = self.location(slot);
        1u64 << (bucket + self.unit_magnitude)
    }

    fn slot_highest(&self, slot: usize) -> u64 {
        self.slot_lowest(slot) + (self.slot_size(slot) - 1)
    }

    fn slot_median(&self, slot: usize) -> u64 {
        self.slot_lowest(slot) + self.slot_size(slot) / 2
    }
}

/// One non-zero slot: the values `lowest..=highest` were recorded `count` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedBucket {
    pub lowest: u64,
    pub highest: u64,
    pub count: u64,
}

/// An HDR histogram of `u64` values; see the module documentation.
#[derive(Clone)]
pub struct Histogram {
    layout: Layout,
    /// `bucket_count + 1` chunks of `half_count` slots, allocated on first use.
    chunks: Vec<Option<Box<[u64]>>>,
    total: u64,
    clamped: u64,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("lowest", &self.layout.lowest)
            .field("highest", &self.layout.highest)
            .field("sigfig", &self.layout.sigfig)
            .field("len", &self.total)
            .field("clamped", &self.clamped)
            .finish_non_exhaustive()
    }
}

/// Equal layouts (lowest, highest, sigfig), equal counts in every slot, equal clamped.
impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        self.layout == other.layout
            && self.total == other.total
            && self.clamped == other.clamped
            && self.nonzero().eq(other.nonzero())
    }
}

impl Eq for Histogram {}

impl Histogram {
    /// An empty histogram telling values apart down to `lowest` (>= 1), tracking them up
    /// to `highest` (>= 2 * `lowest`), with `sigfig` (1..=5) significant digits.
    pub fn new(lowest: u64, highest: u64, sigfig: u8) -> Result<Self, LayoutError> {
        Layout::new(lowest, highest, sigfig).map(Self::with_layout)
    }

    fn with_layout(layout: Layout) -> Self {
        Self {
            chunks: vec![None; layout.bucket_count as usize + 1],
            layout,
            total: 0,
            clamped: 0,
        }
    }

    pub fn lowest(&self) -> u64 {
        self.layout.lowest
    }

    pub fn highest(&self) -> u64 {
        self.layout.highest
    }

    pub fn sigfig(&self) -> u8 {
        self.layout.sigfig
    }

    /// Slots of the layout (HdrHistogram's "counts array length").
    pub fn slots(&self) -> usize {
        self.layout.slots
    }

    /// Values recorded (saturating at `u64::MAX`).
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Values recorded out of range (above `highest`, or below zero), included in
    /// [`Self::len`].
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// Record `value` once; true when it was above `highest` (then `highest` is recorded).
    pub fn record(&mut self, value: u64) -> bool {
        self.record_n(value, 1)
    }

    /// Record `value` `count` times; true when it was above `highest` (then `highest` is
    /// recorded and `count` is added to [`Self::clamped`]). A zero count does nothing.
    pub fn record_n(&mut self, value: u64, count: u64) -> bool {
        if count == 0 {
            return false;
        }
        let clamped = value > self.layout.highest;
        let slot = self.layout.slot_of(value.min(self.layout.highest));
        self.add_at(slot, count);
        if clamped {
            self.clamped = self.clamped.saturating_add(count);
        }
        clamped
    }

    /// A value below zero on the caller's side (a clock that stepped back), `count`
    /// times: recorded as 0 and counted as clamped.
    pub fn record_below_zero(&mut self, count: u64) {
        if count == 0 {
            return;
        }
        self.add_at(0, count);
        self.clamped = self.clamped.saturating_add(count);
    }

    fn add_at(&mut self, slot: usize, count: u64) {
        let half = self.layout.half_count as usize;
        let Some(chunk) = self.chunks.get_mut(slot / half) else {
            return; // slot_of(<= highest) and the decoder's bound check keep us in range
        };
        let chunk = chunk.get_or_insert_with(|| vec![0; half].into_boxed_slice());
        if let Some(c) = chunk.get_mut(slot % half) {
            *c = c.saturating_add(count);
            self.total = self.total.saturating_add(count);
        }
    }

    /// `(slot, count)` of every non-zero slot, in increasing slot order.
    fn nonzero(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let half = self.layout.half_count as usize;
        self.chunks
            .iter()
            .enumerate()
            .filter_map(|(k, c)| c.as_deref().map(|c| (k, c)))
            .flat_map(move |(k, c)| {
                c.iter()
                    .enumerate()
                    .filter(|&(_, &n)| n != 0)
                    .map(move |(i, &n)| (k * half + i, n))
            })
    }

    /// Every non-zero slot, lowest values first (for CSV export and charts).
    pub fn iter_recorded(&self) -> impl Iterator<Item = RecordedBucket> + '_ {
        self.nonzero().map(|(slot, count)| RecordedBucket {
            lowest: self.layout.slot_lowest(slot),
            highest: self.layout.slot_highest(slot),
            count,
        })
    }

    /// Add every sample of `other` (see the module documentation for layouts that
    /// differ); `other`'s clamped count is added to this one's (bounded by
    /// [`Self::len`]).
    pub fn merge(&mut self, other: &Histogram) {
        let same_slots = self.layout.unit_magnitude == other.layout.unit_magnitude
            && self.layout.half_magnitude == other.layout.half_magnitude;
        for (slot, count) in other.nonzero() {
            let value = other.layout.slot_lowest(slot);
            if same_slots && value <= self.layout.highest {
                self.add_at(slot, count);
            } else {
                self.record_n(value, count);
            }
        }
        self.clamped = self.clamped.saturating_add(other.clamped).min(self.total);
    }

    /// Forget every sample; the layout stays.
    pub fn reset(&mut self) {
        self.chunks.iter_mut().for_each(|c| *c = None);
        self.total = 0;
        self.clamped = 0;
    }

    /// The lowest value equivalent to the smallest sample (0 when empty).
    pub fn min(&self) -> u64 {
        self.nonzero()
            .next()
            .map_or(0, |(slot, _)| self.layout.slot_lowest(slot))
    }

    /// The highest value equivalent to the largest sample (0 when empty).
    pub fn max(&self) -> u64 {
        self.nonzero()
            .last()
            .map_or(0, |(slot, _)| self.layout.slot_highest(slot))
    }

    /// Mean of the samples' median equivalent values (0.0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let sum: f64 = self
            .nonzero()
            .map(|(slot, n)| self.layout.slot_median(slot) as f64 * n as f64)
            .sum();
        sum / self.total as f64
    }

    /// Population standard deviation of the samples' median equivalent values (0.0 when
    /// empty).
    pub fn stdev(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let mean = self.mean();
        let sq: f64 = self
            .nonzero()
            .map(|(slot, n)| {
                let d = self.layout.slot_median(slot) as f64 - mean;
                d * d * n as f64
            })
            .sum();
        (sq / self.total as f64).sqrt()
    }

    /// The value below or at which a fraction `q` (0.0..=1.0, clamped; NaN is 0) of the
    /// samples fall: the highest value equivalent to the sample of rank `ceil(q * len)`
    /// (1-based), or [`Self::min`] for `q == 0`. 0 when empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        if q == 0.0 {
            return self.min();
        }
        let rank = rank(q, self.total);
        let mut seen = 0u64;
        for (slot, n) in self.nonzero() {
            seen = seen.saturating_add(n);
            if seen >= rank {
                return self.layout.slot_highest(slot);
            }
        }
        self.max()
    }

    /// The lowest value equivalent to `value` (values above `highest` as `highest`).
    pub fn lowest_equivalent(&self, value: u64) -> u64 {
        let slot = self.layout.slot_of(value.min(self.layout.highest));
        self.layout.slot_lowest(slot)
    }

    /// The highest value equivalent to `value` (values above `highest` as `highest`).
    pub fn highest_equivalent(&self, value: u64) -> u64 {
        let slot = self.layout.slot_of(value.min(self.layout.highest));
        self.layout.slot_highest(slot)
    }

    /// How many values are equivalent to `value` (its slot's width).
    pub fn equivalent_range(&self, value: u64) -> u64 {
        let slot = self.layout.slot_of(value.min(self.layout.highest));
        self.layout.slot_size(slot)
    }

    /// The canonical version-1 encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&MAGIC);
        out.push(ENCODING_VERSION);
        put_varint(&mut out, self.layout.lowest);
        put_varint(&mut out, self.layout.highest);
        out.push(self.layout.sigfig);
        put_varint(&mut out, self.clamped);
        let mut next = 0usize;
        for (slot, n) in self.nonzero() {
            put_varint(&mut out, (slot - next) as u64);
            put_varint(&mut out, n);
            next = slot + 1;
        }
        out
    }

    /// A histogram from [`Self::encode`]'s bytes; any other bytes give a [`DecodeError`],
    /// never a panic.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        if !data.iter().zip(MAGIC).all(|(a, b)| *a == b) {
            return Err(DecodeError::BadMagic);
        }
        let version = *data.get(MAGIC.len()).ok_or(DecodeError::Truncated)?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::Version(version));
        }
        let mut r = Reader {
            data,
            pos: MAGIC.len() + 1,
        };
        let lowest = r.varint()?;
        let highest = r.varint()?;
        let sigfig = r.byte()?;
        let clamped = r.varint()?;
        let layout = Layout::new(lowest, highest, sigfig).map_err(DecodeError::Layout)?;
        let mut h = Self::with_layout(layout);
        let mut next = 0u64;
        while !r.at_end() {
            let gap = r.varint()?;
            let count = r.varint()?;
            let slot = next.checked_add(gap).ok_or(DecodeError::SlotOutOfRange)?;
            if slot >= layout.slots as u64 {
                return Err(DecodeError::SlotOutOfRange);
            }
            if count == 0 {
                return Err(DecodeError::ZeroCount);
            }
            h.add_at(slot as usize, count);
            next = slot + 1;
        }
        if clamped > h.total {
            return Err(DecodeError::ClampedAboveTotal);
        }
        h.clamped = clamped;
        Ok(h)
    }
}

/// `ceil(q * total)` in 1..=total, where a product within float error of an integer is
/// that integer (so `p / 100` of a percentile written in decimal lands on the rank a
/// person computes: 7% of 100 samples is rank 7, not 8).
fn rank(q: f64, total: u64) -> u64 {
    let x = q * total as f64;
    let nearest = x.round();
    let r = if (x - nearest).abs() <= x * 1e-14 {
        nearest
    } else {
        x.ceil()
    };
    (r as u64).clamp(1, total)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::VarintTooLong);
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintTooLong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR_US: u64 = 3_600_000_000;

    #[test]
    fn layout_of_one_hour_in_microseconds() {
        // HdrHistogram's own example: 1 µs .. 1 h at 3 digits has 2048 sub-buckets,
        // 22 buckets and 23552 counts.
        let h = Histogram::new(1, HOUR_US, 3).unwrap();
        assert_eq!(h.layout.half_count, 1024);
        assert_eq!(h.layout.bucket_count, 22);
        assert_eq!(h.slots(), 23552);
        assert_eq!(h.layout.unit_magnitude, 0);
    }

    #[test]
    fn equivalent_values_match_hdrhistogram() {
        // AbstractHistogram's tests (HistogramTest.java), same layout.
        let h = Histogram::new(1, HOUR_US, 3).unwrap();
        assert_eq!(h.lowest_equivalent(10007), 10000);
        assert_eq!(h.lowest_equivalent(10009), 10008);
        assert_eq!(h.highest_equivalent(8180 * 1024), 8183 * 1024 + 1023);
        assert_eq!(h.highest_equivalent(8191 * 1024), 8191 * 1024 + 1023);
        assert_eq!(h.highest_equivalent(8193 * 1024), 8199 * 1024 + 1023);
        assert_eq!(h.highest_equivalent(9995 * 1024), 9999 * 1024 + 1023);
        assert_eq!(h.highest_equivalent(10007 * 1024), 10007 * 1024 + 1023);
        assert_eq!(h.highest_equivalent(10008 * 1024), 10015 * 1024 + 1023);
        assert_eq!(h.equivalent_range(1), 1);
        assert_eq!(h.equivalent_range(2500), 2);
        assert_eq!(h.equivalent_range(8191), 4);
        assert_eq!(h.equivalent_range(8192), 8);
        assert_eq!(h.equivalent_range(10000), 8);
    }

    #[test]
    fn percentiles_of_the_classic_stall() {
        // 10000 samples of 1 ms and one 100 s stall (HdrHistogram's README example).
        let mut h = Histogram::new(1, HOUR_US, 3).unwrap();
        h.record_n(1000, 10_000);
        h.record(100_000_000);
        assert_eq!(h.len(), 10_001);
        assert_eq!(h.value_at_quantile(0.5), 1000);
        assert_eq!(h.value_at_quantile(0.9999), 1000);
        assert_eq!(
            h.value_at_quantile(0.99999),
            h.highest_equivalent(100_000_000)
        );
        assert_eq!(h.value_at_quantile(1.0), h.max());
        assert_eq!(h.value_at_quantile(0.0), 1000);
        assert_eq!(h.min(), 1000);
        assert!(h.max() >= 100_000_000 && h.max() <= 100_100_000);
        let mean = (1000.0 * 10_000.0 + h.layout.slot_median(h.layout.slot_of(100_000_000)) as f64)
            / 10_001.0;
        assert!((h.mean() - mean).abs() < 1e-6);
    }

    #[test]
    fn decimal_percentiles_hit_the_rank_a_person_expects() {
        let mut h = Histogram::new(1, 1000, 3).unwrap();
        for v in 1..=100 {
            h.record(v);
        }
        for p in [1u64, 7, 29, 50, 57, 90, 99, 100] {
            assert_eq!(h.value_at_quantile(p as f64 / 100.0), p, "p{p}");
        }
        assert_eq!(h.value_at_quantile(0.999), 100);
        assert_eq!(h.value_at_quantile(0.001), 1);
        assert_eq!(h.value_at_quantile(f64::NAN), 1);
        assert_eq!(h.value_at_quantile(-3.0), 1);
        assert_eq!(h.value_at_quantile(7.0), 100);
    }

    #[test]
    fn empty_histogram_reads_zero() {
        let h = Histogram::new(1, 1000, 2).unwrap();
        assert!(h.is_empty());
        assert_eq!((h.min(), h.max(), h.value_at_quantile(0.5)), (0, 0, 0));
        assert_eq!((h.mean(), h.stdev()), (0.0, 0.0));
        assert_eq!(h.iter_recorded().count(), 0);
        assert_eq!(Histogram::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn out_of_range_values_clamp_and_are_counted() {
        let mut h = Histogram::new(10, 1000, 2).unwrap();
        assert!(!h.record(1000));
        assert!(h.record(5000));
        assert!(h.record_n(u64::MAX, 3));
        h.record_below_zero(2);
        assert!(!h.record(0));
        assert_eq!(h.len(), 8);
        assert_eq!(h.clamped(), 6);
        assert_eq!(h.max(), h.highest_equivalent(1000));
        assert_eq!(h.min(), 0);
        assert_eq!(h.value_at_quantile(0.3), h.highest_equivalent(0));
        assert!(!h.record_n(5000, 0));
        assert_eq!(h.len(), 8);
        h.reset();
        assert_eq!((h.len(), h.clamped(), h.max()), (0, 0, 0));
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert_eq!(
            Histogram::new(0, 10, 3).unwrap_err(),
            LayoutError::LowestZero
        );
        assert_eq!(
            Histogram::new(10, 19, 3).unwrap_err(),
            LayoutError::HighestTooLow {
                lowest: 10,
                highest: 19
            }
        );
        assert_eq!(
            Histogram::new(1, 10, 0).unwrap_err(),
            LayoutError::Sigfig(0)
        );
        assert_eq!(
            Histogram::new(1, 10, 6).unwrap_err(),
            LayoutError::Sigfig(6)
        );
        assert_eq!(
            Histogram::new(1 << 50, u64::MAX, 5).unwrap_err(),
            LayoutError::TooWide {
                lowest: 1 << 50,
                sigfig: 5
            }
        );
        assert!(Histogram::new(10, 20, 3).is_ok());
        let widest = Histogram::new(1, u64::MAX, 5).unwrap();
        assert!(widest.layout.slot_of(u64::MAX) < widest.slots());
        assert_eq!(widest.highest_equivalent(u64::MAX), u64::MAX);
        for e in [
            LayoutError::LowestZero,
            LayoutError::Sigfig(9),
            LayoutError::HighestTooLow {
                lowest: 3,
                highest: 4,
            },
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn decode_refuses_each_kind_of_bad_bytes() {
        let mut h = Histogram::new(1, 1000, 2).unwrap();
        h.record_n(5, 3);
        h.record(2000);
        let good = h.encode();
        assert_eq!(Histogram::decode(&good).unwrap(), h);
        assert_eq!(Histogram::decode(b"").unwrap_err(), DecodeError::Truncated);
        assert_eq!(
            Histogram::decode(b"TS").unwrap_err(),
            DecodeError::Truncated
        );
        assert_eq!(
            Histogram::decode(b"XSH\x01").unwrap_err(),
            DecodeError::BadMagic
        );
        assert_eq!(
            Histogram::decode(b"TSH\x02").unwrap_err(),
            DecodeError::Version(2)
        );
        assert_eq!(
            Histogram::decode(&good[..good.len() - 1]).unwrap_err(),
            DecodeError::Truncated
        );
        // lowest 0
        assert_eq!(
            Histogram::decode(b"TSH\x01\x00\x10\x02\x00").unwrap_err(),
            DecodeError::Layout(LayoutError::LowestZero)
        );
        // an 11-byte varint
        let mut long = b"TSH\x01".to_vec();
        long.extend([0xff; 10]);
        long.push(0);
        assert_eq!(
            Histogram::decode(&long).unwrap_err(),
            DecodeError::VarintTooLong
        );
        // a slot beyond the layout
        let mut far = b"TSH\x01\x01\x10\x01\x00".to_vec();
        put_varint(&mut far, 1 << 40);
        far.push(1);
        assert_eq!(
            Histogram::decode(&far).unwrap_err(),
            DecodeError::SlotOutOfRange
        );
        let mut wrap = b"TSH\x01\x01\x10\x01\x00\x00\x01".to_vec();
        put_varint(&mut wrap, u64::MAX);
        wrap.push(1);
        assert_eq!(
            Histogram::decode(&wrap).unwrap_err(),
            DecodeError::SlotOutOfRange
        );
        assert_eq!(
            Histogram::decode(b"TSH\x01\x01\x10\x01\x00\x00\x00").unwrap_err(),
            DecodeError::ZeroCount
        );
        assert_eq!(
            Histogram::decode(b"TSH\x01\x01\x10\x01\x02\x00\x01").unwrap_err(),
            DecodeError::ClampedAboveTotal
        );
    }

    #[test]
    fn merging_different_layouts_re_records() {
        let mut fine = Histogram::new(1, HOUR_US, 3).unwrap();
        let mut coarse = Histogram::new(1000, 10_000_000, 2).unwrap();
        for v in [5u64, 1500, 250_000, 9_999_999] {
            fine.record(v);
        }
        fine.record(HOUR_US + 1); // clamped in `fine`
        coarse.merge(&fine);
        assert_eq!(coarse.len(), 5);
        // the clamped one, and 3.6e9 above coarse's highest
        assert_eq!(coarse.clamped(), 2);
        assert_eq!(coarse.min(), 0);
        assert_eq!(coarse.max(), coarse.highest_equivalent(10_000_000));
        let mut back = Histogram::new(1, HOUR_US, 3).unwrap();
        back.merge(&coarse);
        assert_eq!(back.len(), 5);
        assert!(back.clamped() <= back.len());
    }

    #[test]
    fn merging_itself_doubles() {
        let mut h = Histogram::new(1, 1000, 3).unwrap();
        h.record_n(7, 2);
        let copy = h.clone();
        h.merge(&copy);
        assert_eq!(h.len(), 4);
        assert_eq!(h.value_at_quantile(1.0), 7);
    }

    fn layouts() -> impl Strategy<Value = (u64, u64, u8)> {
        (0u32..20, 1u8..=5, 1u32..40).prop_map(|(lz, sigfig, span)| {
            let lowest = 1u64 << lz;
            let lowest = lowest + lowest / 3;
            let highest = lowest.saturating_mul(2).saturating_mul(1 << span.min(40));
            (lowest, highest, sigfig)
        })
    }

    fn values(highest: u64) -> impl Strategy<Value = Vec<u64>> {
        let top = highest.saturating_add(highest / 8);
        proptest::collection::vec(
            prop_oneof![0..=top, 0..=1000u64.min(top), Just(highest), any::<u64>()],
            0..300,
        )
    }

    fn filled(layout: (u64, u64, u8), vals: &[u64]) -> Histogram {
        let mut h = Histogram::new(layout.0, layout.1, layout.2).unwrap();
        for &v in vals {
            h.record(v);
        }
        h
    }

    proptest! {
        #[test]
        fn quantiles_match_a_sorted_oracle(
            (layout, vals) in layouts().prop_flat_map(|l| (Just(l), values(l.1))),
            per_100k in proptest::collection::vec(0u64..=100_000, 1..12),
        ) {
            let h = filled(layout, &vals);
            let mut sorted: Vec<u64> = vals.iter().map(|&v| v.min(layout.1)).collect();
            sorted.sort_unstable();
            let n = sorted.len() as u64;
            prop_assert_eq!(h.len(), n);
            prop_assert_eq!(h.clamped(), vals.iter().filter(|&&v| v > layout.1).count() as u64);
            if n == 0 {
                return Ok(());
            }
            prop_assert_eq!(h.min(), h.lowest_equivalent(sorted[0]));
            prop_assert_eq!(h.max(), h.highest_equivalent(sorted[sorted.len() - 1]));
            let digits = 10f64.powi(i32::from(layout.2));
            for p in per_100k {
                let got = h.value_at_quantile(p as f64 / 100_000.0);
                if p == 0 {
                    prop_assert_eq!(got, h.lowest_equivalent(sorted[0]));
                    continue;
                }
                let rank = (p * n).div_ceil(100_000).max(1);
                let want = sorted[(rank - 1) as usize];
                prop_assert_eq!(got, h.highest_equivalent(want), "p={} rank={}", p, rank);
                // the precision promise: within sigfig digits (or the unit near zero)
                prop_assert!(got >= want);
                prop_assert!((got - want) as f64 <= (want as f64 / digits).max(layout.0 as f64));
            }
            let exact = sorted.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let slack = exact / digits + layout.0 as f64;
            prop_assert!((h.mean() - exact).abs() <= slack, "mean {} exact {}", h.mean(), exact);
        }

        #[test]
        fn every_value_lies_in_its_slot(layout in layouts(), v in any::<u64>()) {
            let h = Histogram::new(layout.0, layout.1, layout.2).unwrap();
            let v = v.min(layout.1);
            prop_assert!(h.layout.slot_of(layout.1) < h.slots());
            prop_assert!(h.lowest_equivalent(v) <= v && v <= h.highest_equivalent(v));
            prop_assert_eq!(
                h.highest_equivalent(v) - h.lowest_equivalent(v) + 1,
                h.equivalent_range(v)
            );
        }

        #[test]
        fn merge_equals_recording_both(
            (layout, a, b) in layouts().prop_flat_map(|l| (Just(l), values(l.1), values(l.1))),
        ) {
            let mut merged = filled(layout, &a);
            merged.merge(&filled(layout, &b));
            let both: Vec<u64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(&merged, &filled(layout, &both));
            prop_assert_eq!(merged.encode(), filled(layout, &both).encode());
        }

        #[test]
        fn merge_across_layouts_keeps_every_count(
            (la, a) in layouts().prop_flat_map(|l| (Just(l), values(l.1))),
            (lb, b) in layouts().prop_flat_map(|l| (Just(l), values(l.1))),
        ) {
            let mut x = filled(la, &a);
            x.merge(&filled(lb, &b));
            prop_assert_eq!(x.len(), (a.len() + b.len()) as u64);
            prop_assert!(x.clamped() <= x.len());
            prop_assert_eq!(Histogram::decode(&x.encode()).unwrap(), x);
        }

        #[test]
        fn encoding_round_trips(
            (layout, vals) in layouts().prop_flat_map(|l| (Just(l), values(l.1))),
            below in 0u64..3,
        ) {
            let mut h = filled(layout, &vals);
            h.record_below_zero(below);
            let bytes = h.encode();
            let back = Histogram::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &h);
            prop_assert_eq!(back.encode(), bytes);
            prop_assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(h) = Histogram::decode(&data) {
                prop_assert!(h.clamped() <= h.len());
                prop_assert_eq!(Histogram::decode(&h.encode()).unwrap(), h);
            }
        }

        #[test]
        fn decode_of_random_pairs_never_panics(
            layout in layouts(),
            clamped in 0u64..4,
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut data = MAGIC.to_vec();
            data.push(ENCODING_VERSION);
            put_varint(&mut data, layout.0);
            put_varint(&mut data, layout.1);
            data.push(layout.2);
            put_varint(&mut data, clamped);
            data.extend(tail);
            if let Ok(h) = Histogram::decode(&data) {
                prop_assert!(h.clamped() <= h.len());
                prop_assert!(h.encode().len() <= data.len());
                prop_assert_eq!(Histogram::decode(&h.encode()).unwrap(), h);
            }
        }

        #[test]
        fn decode_of_damaged_encodings_never_panics(
            (layout, vals) in layouts().prop_flat_map(|l| (Just(l), values(l.1))),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            let mut bytes = filled(layout, &vals).encode();
            for (at, b) in edits {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            if let Ok(h) = Histogram::decode(&bytes) {
                let _ = (h.value_at_quantile(0.5), h.mean(), h.stdev(), h.max());
                prop_assert_eq!(Histogram::decode(&h.encode()).unwrap(), h);
            }
        }
    }
}
