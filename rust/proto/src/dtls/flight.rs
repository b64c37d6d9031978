//! Flights and their retransmission (RFC 6347 §4.2.4; protocol.md §5.1, §5.2.5,
//! §10.9, §10.10).
//!
//! Theory of operation: a [`Flight`] is the list of messages one side sends in one
//! turn (e.g. the server's ServerHello + ChangeCipherSpec + Finished), grouped into
//! datagrams. It stores *plaintext* messages with their epoch, not bytes on the wire:
//! every (re)transmission re-encodes each record with the next record sequence number
//! of its epoch and, at epoch 1, re-protects it — a retransmitted record never reuses a
//! sequence number (RFC 6347 §4.2.4), so the peer's replay window lets it through while
//! the handshake layer recognises it by `message_seq`.
//!
//! [`RetransmitTimer`] is the client's flight timer: 1 s initial, doubling, capped at
//! 60 s. With openconnect's 12 s handshake limit this yields ClientHellos at 0, 1, 3 and
//! 7 s and the failure at 12 s — what GnuTLS does (§5.1, verified against openconnect
//! 9.01). The server role never arms it: like ocserv (which never retransmits on its
//! own, §5.2.5) and OpenSSL's reaction to a repeated peer flight, it resends its last
//! flight only when it sees the client's previous flight again (the connection decides
//! that).

use super::config::SECOND_US;
use super::record::{CT_CHANGE_CIPHER_SPEC, CT_HANDSHAKE};

/// One message of a flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlightMsg {
    /// record content type (handshake or CCS)
    pub content_type: u8,
    /// epoch to send it in
    pub epoch: u16,
    /// record plaintext (handshake message with its 12-byte header, or CCS body)
    pub body: Vec<u8>,
}

impl FlightMsg {
    /// A handshake message at `epoch`.
    pub fn handshake(epoch: u16, body: Vec<u8>) -> Self {
        FlightMsg {
            content_type: CT_HANDSHAKE,
            epoch,
            body,
        }
    }

    /// A ChangeCipherSpec (always epoch 0).
    pub fn ccs(body: Vec<u8>) -> Self {
        FlightMsg {
            content_type: CT_CHANGE_CIPHER_SPEC,
            epoch: 0,
            body,
        }
    }
}

/// A flight: datagrams of messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flight {
    /// each inner list becomes one datagram
    pub datagrams: Vec<Vec<FlightMsg>>,
}

impl Flight {
    /// A flight of one datagram.
    pub fn single(msgs: Vec<FlightMsg>) -> Self {
        Flight {
            datagrams: vec![msgs],
        }
    }

    /// Group `msgs` by `layout`.
    pub fn with_layout(msgs: Vec<FlightMsg>, layout: super::config::FlightLayout) -> Self {
        use super::config::FlightLayout;
        let datagrams = match layout {
            FlightLayout::OneDatagram => vec![msgs],
            FlightLayout::Separate => msgs.into_iter().map(|m| vec![m]).collect(),
            FlightLayout::FirstAlone => {
                let mut it = msgs.into_iter();
                let mut v: Vec<Vec<FlightMsg>> = it.next().map(|m| vec![m]).into_iter().collect();
                let rest: Vec<FlightMsg> = it.collect();
                if !rest.is_empty() {
                    v.push(rest);
                }
                v
            }
        };
        Flight { datagrams }
    }
}

/// Initial retransmission timeout.
pub const INITIAL_RTO_US: u64 = SECOND_US;
/// Largest retransmission timeout.
pub const MAX_RTO_US: u64 = 60 * SECOND_US;

/// Doubling retransmission timer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetransmitTimer {
    rto: u64,
    due: Option<u64>,
}

impl RetransmitTimer {
    /// A stopped timer.
    pub fn new() -> Self {
        Self::default()
    }

    /// (Re)start with the initial timeout: a new flight was sent at `now`.
    pub fn arm(&mut self, now: u64) {
        self.rto = INITIAL_RTO_US;
        self.due = Some(now.saturating_add(self.rto));
    }

    /// The flight was retransmitted at `now` because the timer fired: double.
    pub fn backoff(&mut self, now: u64) {
        self.rto = (self.rto.saturating_mul(2)).clamp(INITIAL_RTO_US, MAX_RTO_US);
        self.due = Some(now.saturating_add(self.rto));
    }

    /// Stop.
    pub fn stop(&mut self) {
        self.due = None;
    }

    /// When it fires.
    pub fn due(&self) -> Option<u64> {
        self.due
    }

    /// Has it fired by `now`?
    pub fn expired(&self, now: u64) -> bool {
        self.due.is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtls::config::FlightLayout;

    #[test]
    fn schedule_is_0_1_3_7() {
        let mut t = RetransmitTimer::new();
        let mut sent = vec![0u64];
        t.arm(0);
        while let Some(d) = t.due() {
            if d >= 12 * SECOND_US {
                break;
            }
            sent.push(d / SECOND_US);
            t.backoff(d);
        }
        assert_eq!(sent, vec![0, 1, 3, 7]);
        t.stop();
        assert!(!t.expired(u64::MAX));
    }

    #[test]
    fn cap_at_60s() {
        let mut t = RetransmitTimer::new();
        t.arm(0);
        for _ in 0..20 {
            let d = t.due().unwrap();
            t.backoff(d);
        }
        let d1 = t.due().unwrap();
        t.backoff(d1);
        assert_eq!(t.due().unwrap() - d1, MAX_RTO_US);
    }

    #[test]
    fn layouts() {
        let m = |i: u8| FlightMsg::handshake(0, vec![i]);
        let msgs = vec![m(1), m(2), m(3)];
        assert_eq!(
            Flight::with_layout(msgs.clone(), FlightLayout::OneDatagram)
                .datagrams
                .len(),
            1
        );
        assert_eq!(
            Flight::with_layout(msgs.clone(), FlightLayout::Separate)
                .datagrams
                .len(),
            3
        );
        let f = Flight::with_layout(msgs, FlightLayout::FirstAlone);
        assert_eq!(f.datagrams.len(), 2);
        assert_eq!(f.datagrams[1].len(), 2);
    }
}
