//! Anti-replay sliding window, one per epoch (RFC 6347 §4.1.2.6; protocol.md §5.2.2).
//!
//! Theory of operation: the window remembers the highest sequence number accepted so far
//! (`top`) and a 64-bit bitmap of which of `top, top−1, …, top−63` were seen. A record
//! is acceptable when its number is above `top`, or inside the window and not yet seen.
//! Numbers more than 63 below `top` are "too old" and dropped, as OpenSSL does with its
//! 64-entry window; OpenSSL's bad_dtls_test (cited in §5.2.2 as BADDTLS) expects exactly this: duplicates dropped,
//! older-but-unseen records accepted.
//!
//! `check` and `mark` are separate because a record must only be marked once it
//! authenticated (otherwise a forged record could burn a sequence number).

/// Outcome of a replay check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayCheck {
    /// never seen, inside or ahead of the window
    Fresh,
    /// already accepted once
    Duplicate,
    /// more than 63 numbers below the highest accepted one
    TooOld,
}

/// A 64-entry sliding window.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    top: Option<u64>,
    bitmap: u64,
}

/// Window size in records.
pub const WINDOW: u64 = 64;

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Is `seq` acceptable?
    pub fn check(&self, seq: u64) -> ReplayCheck {
        let Some(top) = self.top else {
            return ReplayCheck::Fresh;
        };
        if seq > top {
            return ReplayCheck::Fresh;
        }
        let back = top - seq;
        if back >= WINDOW {
            return ReplayCheck::TooOld;
        }
        if self.bitmap & (1u64 << back) != 0 {
            ReplayCheck::Duplicate
        } else {
            ReplayCheck::Fresh
        }
    }

    /// Record `seq` as accepted.
    pub fn mark(&mut self, seq: u64) {
        match self.top {
            None => {
                self.top = Some(seq);
                self.bitmap = 1;
            }
            Some(top) if seq > top => {
                let shift = seq - top;
                self.bitmap = if shift >= WINDOW {
                    0
                } else {
                    self.bitmap << shift
                };
                self.bitmap |= 1;
                self.top = Some(seq);
            }
            Some(top) => {
                let back = top - seq;
                if back < WINDOW {
                    self.bitmap |= 1u64 << back;
                }
            }
        }
    }

    /// The highest accepted sequence number.
    pub fn top(&self) -> Option<u64> {
        self.top
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_dropped_older_unseen_accepted_too_old_dropped() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(5), ReplayCheck::Fresh);
        w.mark(5);
        assert_eq!(w.check(5), ReplayCheck::Duplicate);
        assert_eq!(w.check(3), ReplayCheck::Fresh);
        w.mark(3);
        assert_eq!(w.check(3), ReplayCheck::Duplicate);
        w.mark(100);
        assert_eq!(w.check(37), ReplayCheck::Fresh);
        assert_eq!(w.check(36), ReplayCheck::TooOld);
        assert_eq!(w.check(5), ReplayCheck::TooOld);
        assert_eq!(w.check(100), ReplayCheck::Duplicate);
        assert_eq!(w.check(101), ReplayCheck::Fresh);
        w.mark(37);
        assert_eq!(w.check(37), ReplayCheck::Duplicate);
        w.mark(1000);
        assert_eq!(w.check(999), ReplayCheck::Fresh);
        assert_eq!(w.top(), Some(1000));
    }

    #[test]
    fn bitmaps_shift_correctly_across_window() {
        let mut w = ReplayWindow::new();
        w.mark(0);
        w.mark(63);
        assert_eq!(w.check(0), ReplayCheck::Duplicate);
        w.mark(64);
        assert_eq!(w.check(0), ReplayCheck::TooOld);
        assert_eq!(w.check(1), ReplayCheck::Fresh);
        assert_eq!(w.check(63), ReplayCheck::Duplicate);
    }

    proptest! {
        #[test]
        fn model_check(seqs in proptest::collection::vec(0u64..300, 0..200)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            for s in seqs {
                let top = seen.iter().next_back().copied();
                let expect = match top {
                    Some(t) if s + WINDOW <= t => ReplayCheck::TooOld,
                    _ if seen.contains(&s) => ReplayCheck::Duplicate,
                    _ => ReplayCheck::Fresh,
                };
                prop_assert_eq!(w.check(s), expect);
                if expect == ReplayCheck::Fresh {
                    w.mark(s);
                    seen.insert(s);
                }
            }
        }
    }
}
