//! Fuzz entry points for the DTLS core: plain functions taking arbitrary bytes, to be
//! wired into a `cargo fuzz` crate (`rust/fuzz`) and already driven by proptests here.
//!
//! Theory of operation: each target exercises one layer on untrusted input and checks
//! the invariants that must hold for *any* input — no panic, and round-trip identities
//! where a parser accepted something (parse → encode → parse gives the same value).
//!
//! * [`fuzz_record`]: record splitting, and opening every record with fixed keys of a
//!   CBC-SHA1, 3DES, CBC-SHA384, GCM and ChaCha20 suite (both directions), plus the
//!   replay window over the sequence numbers seen;
//! * [`fuzz_handshake_message`]: the handshake-header splitter and every body parser;
//! * [`fuzz_endpoint`]: a server endpoint with a DTLS 0.9, a DTLS 1.2 and a PSK session
//!   registered, plus client connections in each mode, fed the input as a series of
//!   datagrams from a few peers (`peer(1) ‖ len(1) ‖ bytes` framing), with timers run in
//!   between. The first datagram of each client (its real ClientHello) is fed to the
//!   endpoint first so the input reaches handshake states beyond "waiting for hello".

use super::cipher::{new_protection, RecordMeta};
use super::config::{DtlsClientConfig, DtlsMode, ServerSessionParams};
use super::connection::DtlsConnection;
use super::endpoint::{DtlsEndpoint, PeerId};
use super::keys::derive_session_keys;
use super::messages::{
    parse_ccs, parse_finished, parse_handshake_fragments, parse_psk_client_key_exchange,
    ClientHello, HelloVerifyRequest, ServerHello,
};
use super::record::RecordIter;
use super::replay::ReplayWindow;
use super::suites::{suite_by_id, DtlsVersion};

/// Records + record protection on arbitrary bytes.
pub fn fuzz_record(data: &[u8]) {
    let recs: Vec<_> = RecordIter::new(data).filter_map(Result::ok).collect();
    let mut window = ReplayWindow::new();
    for (h, _) in &recs {
        if window.check(h.seq) == super::replay::ReplayCheck::Fresh {
            window.mark(h.seq);
        }
    }
    for (id, version) in [
        (0x002F, DtlsVersion::Dtls09),
        (0x000A, DtlsVersion::Dtls09),
        (0xC028, DtlsVersion::Dtls12),
        (0x009D, DtlsVersion::Dtls12),
        (0xCCAB, DtlsVersion::Dtls12),
    ] {
        let Some(suite) = suite_by_id(id) else {
            continue;
        };
        let Some(keys) = derive_session_keys(suite, version, &[7; 48], &[1; 32], &[2; 32]) else {
            continue;
        };
        for dir in [&keys.client, &keys.server] {
            let Some(p) = new_protection(suite, dir) else {
                continue;
            };
            for (h, frag) in &recs {
                let meta = RecordMeta::from(h);
                let mut f = frag.to_vec();
                if let Ok(r) = p.open(&meta, &mut f) {
                    assert!(r.end <= f.len());
                }
            }
        }
    }
}

/// Handshake message parsers on arbitrary bytes; accepted values must round-trip.
pub fn fuzz_handshake_message(data: &[u8]) {
    let mut bodies: Vec<&[u8]> = vec![data];
    if let Ok(frags) = parse_handshake_fragments(data) {
        bodies.extend(frags.iter().map(|f| f.body));
    }
    for b in bodies {
        if let Ok(ch) = ClientHello::parse(b) {
            assert_eq!(ClientHello::parse(&ch.encode()).ok(), Some(ch.clone()));
            let _ = ch.app_id_extension();
        }
        if let Ok(sh) = ServerHello::parse(b) {
            assert_eq!(ServerHello::parse(&sh.encode()).ok(), Some(sh));
        }
        if let Ok(h) = HelloVerifyRequest::parse(b) {
            assert_eq!(HelloVerifyRequest::parse(&h.encode()).ok(), Some(h));
        }
        let _ = parse_psk_client_key_exchange(b);
        let _ = parse_finished(b);
        let _ = parse_ccs(b, true);
        let _ = parse_ccs(b, false);
    }
}

fn fuzz_clients() -> Vec<DtlsConnection> {
    let ms = [3u8; 48];
    let mut v = Vec::new();
    for mode in [
        DtlsMode::Legacy {
            cipher: "AES128-SHA".into(),
        },
        DtlsMode::Dtls12 {
            cipher: "AES256-GCM-SHA384".into(),
        },
    ] {
        if let Ok(c) = DtlsConnection::client(
            0,
            DtlsClientConfig::resumption(mode, ms, vec![0x11; 32], [5; 32]),
        ) {
            v.push(c);
        }
    }
    if let Ok(c) = DtlsConnection::client(0, DtlsClientConfig::psk(vec![0x22; 8], [4; 32], [6; 32]))
    {
        v.push(c);
    }
    v
}

/// A server endpoint and clients in every mode, fed arbitrary datagrams.
pub fn fuzz_endpoint(data: &[u8]) {
    let mut ep = DtlsEndpoint::new([9; 32]);
    let ms = [3u8; 48];
    let _ = ep.register(
        vec![0x11; 32],
        ServerSessionParams::resumption(
            DtlsMode::Legacy {
                cipher: "AES128-SHA".into(),
            },
            ms,
        ),
    );
    let mut p12 = ServerSessionParams::resumption(
        DtlsMode::Dtls12 {
            cipher: "AES256-GCM-SHA384".into(),
        },
        ms,
    );
    p12.hello_verify = true;
    let _ = ep.register(vec![0x33; 32], p12);
    let _ = ep.register(vec![0x22; 8], ServerSessionParams::psk([4; 32]));
    let mut clients = fuzz_clients();
    // real hellos first, from peers 100.., so the server side has live connections
    for (i, c) in clients.iter_mut().enumerate() {
        while let Some(d) = c.poll_transmit(0) {
            ep.handle_datagram(0, PeerId(100 + i as u64), &d);
        }
    }
    let mut now = 0u64;
    let mut rest = data;
    while let [peer, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (d, after) = tail.split_at(n);
        rest = after;
        now += 100_000;
        let target = usize::from(*peer % 8);
        match target {
            0..=2 => {
                if let Some(c) = clients.get_mut(target) {
                    c.handle_datagram(now, d);
                    c.handle_timeout(now);
                    while c.poll_transmit(now).is_some() {}
                    while c.poll_event().is_some() {}
                }
            }
            _ => {
                let p = if target < 6 {
                    PeerId(100 + u64::from(*peer % 3))
                } else {
                    PeerId(u64::from(*peer))
                };
                ep.handle_datagram(now, p, d);
                ep.handle_timeout(now);
                while ep.poll_transmit(now).is_some() {}
                while ep.poll_event().is_some() {}
            }
        }
    }
    // a lone datagram with the whole input too
    ep.handle_datagram(now, PeerId(1), data);
    for c in &mut clients {
        c.handle_datagram(now, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn record_target(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_record(&data);
        }

        #[test]
        fn handshake_target(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_handshake_message(&data);
        }

        #[test]
        fn endpoint_target(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_endpoint(&data);
        }
    }

    #[test]
    fn targets_accept_edge_inputs() {
        for d in [
            &[][..],
            &[0u8; 13][..],
            &[22, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[0xff; 64][..],
        ] {
            fuzz_record(d);
            fuzz_handshake_message(d);
            fuzz_endpoint(d);
        }
    }
}
