//! Measurements of a load run, in the core so that every worker process records and
//! merges them the same way.
//!
//! - [`hdr`]: an HDR histogram (Gil Tene's HdrHistogram layout: power-of-two buckets of
//!   linear sub-buckets, 1 to 5 significant decimal digits over a `u64` range) with
//!   clamping of out-of-range values, merging, quantiles, and a compact, versioned
//!   encoding whose decoder never panics on bad bytes (fuzz target
//!   `rust/fuzz/fuzz_targets/hdr_histogram.rs`).
//!
//! Pure data: nothing here reads a clock. Values are whatever unit the caller chose;
//! the load engine records integer microseconds.

pub mod hdr;

pub use hdr::{DecodeError, Histogram, LayoutError, RecordedBucket};
