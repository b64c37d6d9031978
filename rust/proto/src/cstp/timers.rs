//! Keepalive, dead-peer detection and rekey timers of one channel, as openconnect runs
//! them (protocol.md §7.1, openconnect `keepalive_action`).
//!
//! Theory of operation: the channel records when it last received anything
//! (`last_rx`), last sent anything (`last_tx`), last sent a DPD request (`last_dpd`)
//! and last (re)keyed (`last_rekey`). At every wake-up `action(now)` decides, in this
//! order and returning at the first hit:
//!
//! 1. rekey, if a rekey method is set and `now >= last_rekey + rekey`;
//! 2. dead peer, if DPD is on and `now > last_rx + 2·dpd` — checked only at wake-ups,
//!    as openconnect does, so with DPD 30 the peer is declared dead at 75 s (the
//!    wake-up after the 60 s DPD), with DPD 5 at 11 s;
//! 3. send DPD-REQ at `last_rx + dpd`, or, while one is outstanding
//!    (`last_dpd > last_rx`), at `last_dpd + dpd/2` (integer seconds, as in C);
//! 4. send KEEPALIVE at `last_tx + keepalive`.
//!
//! `next_deadline` is the earliest of the due times of 1, 3 and 4 — exactly the
//! wake-ups openconnect's main loop would have. Intervals are whole seconds (they
//! come from `X-CSTP-DPD` etc.); times are microseconds on the caller's clock.

const SEC: u64 = 1_000_000;

/// What the channel must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// nothing is due
    None,
    /// the rekey interval elapsed (the caller picks the method)
    Rekey,
    /// no traffic for more than twice the DPD interval: the peer is dead
    DpdDead,
    /// send a DPD request now (already recorded as sent)
    SendDpd,
    /// send a keepalive now
    SendKeepalive,
}

/// Timer state of one channel (CSTP or DTLS).
#[derive(Clone, Debug)]
pub struct KeepaliveTimers {
    dpd_s: u64,
    keepalive_s: u64,
    rekey_s: u64,
    last_rx: u64,
    last_tx: u64,
    last_dpd: u64,
    last_rekey: u64,
}

impl KeepaliveTimers {
    /// Timers for a channel that came up at `now`. A zero interval disables that timer.
    pub fn new(now: u64, dpd_s: u32, keepalive_s: u32, rekey_s: u32) -> Self {
        KeepaliveTimers {
            dpd_s: u64::from(dpd_s),
            keepalive_s: u64::from(keepalive_s),
            rekey_s: u64::from(rekey_s),
            last_rx: now,
            last_tx: now,
            last_dpd: now,
            last_rekey: now,
        }
    }

    /// Record that something was received.
    pub fn on_rx(&mut self, now: u64) {
        self.last_rx = self.last_rx.max(now);
    }

    /// Record that something was sent.
    pub fn on_tx(&mut self, now: u64) {
        self.last_tx = self.last_tx.max(now);
    }

    /// Record a completed rekey.
    pub fn on_rekey(&mut self, now: u64) {
        self.last_rekey = now;
    }

    /// The DPD interval in seconds (0 = off).
    pub fn dpd_s(&self) -> u64 {
        self.dpd_s
    }

    /// The keepalive interval in seconds (0 = off).
    pub fn keepalive_s(&self) -> u64 {
        self.keepalive_s
    }

    /// Time of the last received byte.
    pub fn last_rx(&self) -> u64 {
        self.last_rx
    }

    fn dpd_due(&self) -> u64 {
        if self.last_dpd > self.last_rx {
            self.last_dpd + (self.dpd_s / 2) * SEC
        } else {
            self.last_rx + self.dpd_s * SEC
        }
    }

    /// Decide what is due at `now` (see the module doc for the order).
    pub fn action(&mut self, now: u64) -> KeepaliveAction {
        if self.rekey_s > 0 && now >= self.last_rekey + self.rekey_s * SEC {
            return KeepaliveAction::Rekey;
        }
        if self.dpd_s > 0 {
            if now > self.last_rx + 2 * self.dpd_s * SEC {
                return KeepaliveAction::DpdDead;
            }
            if now >= self.dpd_due() {
                self.last_dpd = now;
                return KeepaliveAction::SendDpd;
            }
        }
        if self.keepalive_s > 0 && now >= self.last_tx + self.keepalive_s * SEC {
            return KeepaliveAction::SendKeepalive;
        }
        KeepaliveAction::None
    }

    /// The next wake-up, if any timer is running.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut due: Option<u64> = None;
        let mut consider = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
        if self.rekey_s > 0 {
            consider(self.last_rekey + self.rekey_s * SEC);
        }
        if self.dpd_s > 0 {
            consider(self.dpd_due());
        }
        if self.keepalive_s > 0 {
            consider(self.last_tx + self.keepalive_s * SEC);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive the timers like a main loop that wakes only at deadlines; record actions.
    fn run(t: &mut KeepaliveTimers, until: u64) -> Vec<(u64, KeepaliveAction)> {
        let mut out = Vec::new();
        while let Some(d) = t.next_deadline() {
            if d > until {
                break;
            }
            loop {
                let a = t.action(d);
                if a == KeepaliveAction::None {
                    break;
                }
                out.push((d / SEC, a));
                match a {
                    KeepaliveAction::SendDpd | KeepaliveAction::SendKeepalive => t.on_tx(d),
                    KeepaliveAction::DpdDead => return out,
                    KeepaliveAction::Rekey => t.on_rekey(d),
                    KeepaliveAction::None => {}
                }
            }
        }
        out
    }

    #[test]
    fn dpd5_requests_at_5_7_9_dead_at_11() {
        // protocol.md §7.1: "DPD 5 → DPD-REQs at 5, 7, 9 s, dead at 11 s"
        let mut t = KeepaliveTimers::new(0, 5, 0, 0);
        let got = run(&mut t, 100 * SEC);
        use KeepaliveAction::*;
        assert_eq!(
            got,
            vec![(5, SendDpd), (7, SendDpd), (9, SendDpd), (11, DpdDead)]
        );
    }

    #[test]
    fn dpd30_dead_at_75() {
        let mut t = KeepaliveTimers::new(0, 30, 0, 0);
        let got = run(&mut t, 1000 * SEC);
        use KeepaliveAction::*;
        assert_eq!(
            got,
            vec![(30, SendDpd), (45, SendDpd), (60, SendDpd), (75, DpdDead)]
        );
    }

    #[test]
    fn answered_dpd_keeps_peer_alive() {
        let mut t = KeepaliveTimers::new(0, 30, 0, 0);
        assert_eq!(t.next_deadline(), Some(30 * SEC));
        assert_eq!(t.action(30 * SEC), KeepaliveAction::SendDpd);
        t.on_rx(30 * SEC + 1000); // DPD-RESP
        assert_eq!(t.next_deadline(), Some(60 * SEC + 1000));
        assert_eq!(t.action(59 * SEC), KeepaliveAction::None);
    }

    #[test]
    fn keepalive_after_last_tx() {
        let mut t = KeepaliveTimers::new(0, 0, 20, 0);
        assert_eq!(t.next_deadline(), Some(20 * SEC));
        t.on_tx(10 * SEC);
        assert_eq!(t.next_deadline(), Some(30 * SEC));
        assert_eq!(t.action(29 * SEC), KeepaliveAction::None);
        assert_eq!(t.action(30 * SEC), KeepaliveAction::SendKeepalive);
    }

    #[test]
    fn rekey_first() {
        let mut t = KeepaliveTimers::new(0, 5, 5, 5);
        assert_eq!(t.action(5 * SEC), KeepaliveAction::Rekey);
        t.on_rekey(5 * SEC);
        assert_eq!(t.action(5 * SEC), KeepaliveAction::SendDpd);
    }

    #[test]
    fn early_timeout_does_nothing() {
        let mut t = KeepaliveTimers::new(0, 30, 20, 0);
        assert_eq!(t.action(1), KeepaliveAction::None);
        assert_eq!(t.next_deadline(), Some(20 * SEC));
    }

    #[test]
    fn all_off_has_no_deadline() {
        let t = KeepaliveTimers::new(0, 0, 0, 0);
        assert_eq!(t.next_deadline(), None);
    }
}
