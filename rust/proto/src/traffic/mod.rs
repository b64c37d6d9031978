//! Synthetic traffic carried through the emulated tunnel.
//!
//! There is no tun device: the emulated client builds raw IPv4 packets
//! itself, hands them to the tunnel for transmission, and classifies the raw
//! IPv4 packets the tunnel delivers back.  Everything here is sans-IO: each
//! call takes the caller's monotonic `now` in microseconds and returns bytes
//! or verdicts; nothing reads a clock, a socket or a random source.
//!
//! - [`probe`]: ICMP echo / UDP echo probes with RTT, loss, duplicate and
//!   late-reply accounting, plus echo-reply builders for an emulated inside
//!   host.
//! - [`flow`]: the client end of the mock ASA's TCP "web server" flow (SYN with the
//!   request, cumulative ACKs, SYN retransmission), with transfer statistics.

pub mod flow;
pub mod probe;
