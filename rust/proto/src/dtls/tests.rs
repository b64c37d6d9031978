//! In-memory tests of whole DTLS sessions: both roles against each other over a
//! simulated network (`Sim`: seeded loss, duplication and reordering; time advances to
//! the next delivery or deadline), the protocol.md §10.4 / §10.5 records byte for byte,
//! the §5.2.3 HelloVerifyRequest numbering, the §10.9 ocserv PSK flight layout, the
//! §10.10 openconnect hello sizes, the §5.1 0/1/3/7 s retransmission and 12 s timeout,
//! the §5.5 DPD schedule, replays, bit flips and proptests on arbitrary input.

use super::*;
use crate::tls::hex;

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Hex with the spaces of the spec's notation removed.
fn sp(s: &str) -> String {
    s.replace(' ', "")
}

/// `n` bytes counting up from `start` (the spec's vector inputs: `00 01 02 …`).
pub(crate) fn seq(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start.wrapping_add(i as u8)).collect()
}

/// An epoch-0 DTLS 1.2 record (seq 0) carrying handshake message `msg_type` (seq 0).
fn plain_handshake_record(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    super::record::encode_plain_record(
        &mut d,
        22,
        0xfefd,
        0,
        0,
        &super::messages::encode_handshake(msg_type, 0, body),
    );
    d
}

fn ms() -> [u8; 48] {
    seq(0, 48).try_into().unwrap()
}

fn drain(c: &mut DtlsConnection, now: u64) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while let Some(d) = c.poll_transmit(now) {
        v.push(d);
    }
    v
}

fn events(c: &mut DtlsConnection) -> Vec<DtlsEvent> {
    let mut v = Vec::new();
    while let Some(e) = c.poll_event() {
        v.push(e);
    }
    v
}

#[test]
fn section_10_4_byte_for_byte() {
    let cfg = DtlsClientConfig::resumption(
        DtlsMode::Legacy {
            cipher: "AES128-SHA".into(),
        },
        ms(),
        vec![0xaa; 32],
        [0; 32],
    );
    let iv = seq(0x80, 16);
    let mut client = DtlsConnection::client_with_rng(
        0,
        cfg,
        Box::new(ScriptedRandom::new(vec![
            seq(0x20, 32),
            iv.clone(),
            iv.clone(),
            iv.clone(),
        ])),
    )
    .unwrap();
    let ch = drain(&mut client, 0);
    assert_eq!(ch.len(), 1);
    let cr = hex(&seq(0x20, 32));
    let sid = "aa".repeat(32);
    assert_eq!(
        hex(&ch[0]),
        format!(
            "160100000000000000000000580100004c000000000000004c0100{cr}20{sid}000004002f00ff0100"
        )
    );
    let mut server = DtlsConnection::server_with_rng(
        vec![0xaa; 32],
        ServerSessionParams::resumption(
            DtlsMode::Legacy {
                cipher: "AES128-SHA".into(),
            },
            ms(),
        ),
        Box::new(ScriptedRandom::new(vec![seq(0x40, 32), iv.clone()])),
    )
    .unwrap();
    server.handle_datagram(0, &ch[0]);
    let flight = drain(&mut server, 0);
    assert_eq!(flight.len(), 1);
    let sr = hex(&seq(0x40, 32));
    let ivh = hex(&iv);
    assert_eq!(
        hex(&flight[0]),
        format!(
            "16 0100 0000 000000000000 0052 02 000046 0000 000000 000046 0100{sr}20{sid}002f00\
             14 0100 0000 000000000001 0003 01 0001\
             16 0100 0001 000000000000 0040{ivh}f1d4c57d537821ec83acfc443823e81b242884d8f20f390c4ad4d45057c17b353be2f9f8f2655c1a78987f1f202be187"
        )
        .replace(' ', "")
    );
    client.handle_datagram(1, &flight[0]);
    let fin = drain(&mut client, 1);
    assert_eq!(fin.len(), 1);
    assert_eq!(
        hex(&fin[0]),
        format!("14010000000000000000010003010001 16010000010000000000000040{ivh}d78ddb6fbcc0813498b95eed3f9c9438b887f0e44b45ae70a01638171d25d5a728bb17b7a4232ec526b8094119be22db").replace(' ', "")
    );
    assert!(client.is_established());
    let ev = events(&mut client);
    assert_eq!(
        ev,
        vec![DtlsEvent::Connected {
            version: "DTLS0.9",
            suite: "TLS_RSA_WITH_AES_128_CBC_SHA",
            cipher_name: "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)".into()
        }]
    );
    server.handle_datagram(1, &fin[0]);
    assert!(server.is_established());
    client.send_control(2, 0x07, &[]).unwrap();
    client.send_control(2, 0x03, &[]).unwrap();
    let recs = drain(&mut client, 2);
    assert_eq!(
        hex(&recs[0]),
        format!("17010000010000000000010030{ivh}e06ffee190446be9d7ef32e9bcce7c6e7f1556c245b4c190528e3b2adeae603a")
    );
    assert_eq!(
        hex(&recs[1]),
        format!("17010000010000000000020030{ivh}a87442fe3a0e31c8052561202aab860e7c03af843a5886529c6e19c4cc39984b")
    );
    server.handle_datagram(3, &recs[0]);
    server.handle_datagram(3, &recs[1]);
    let ev = events(&mut server);
    assert!(ev.contains(&DtlsEvent::Keepalive), "{ev:?}");
    assert!(ev.contains(&DtlsEvent::DpdRequest(vec![])), "{ev:?}");
}

// ---------------------------------------------------------------------------------
// simulated network

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Loss {
    /// percent of datagrams dropped
    pub drop_pct: u8,
    /// percent duplicated
    pub dup_pct: u8,
    /// extra random delay up to this many ms (reordering)
    pub jitter_ms: u64,
}

pub(crate) struct Sim {
    pub now: u64,
    pub client: DtlsConnection,
    pub ep: DtlsEndpoint,
    pub key: Vec<u8>,
    pub peer: PeerId,
    net: Vec<(u64, u64, bool, Vec<u8>)>,
    order: u64,
    rng: Drbg,
    pub loss: Loss,
    pub client_events: Vec<DtlsEvent>,
    pub server_events: Vec<DtlsEvent>,
    /// datagrams the client sent (for inspection)
    pub client_sent: Vec<(u64, Vec<u8>)>,
    /// datagrams the server sent
    pub server_sent: Vec<(u64, Vec<u8>)>,
    /// drop the n-th datagram in each direction (0-based): (to_server, n)
    pub drop_exact: Vec<(bool, usize)>,
}

impl Sim {
    pub fn new(
        client: DtlsConnection,
        key: Vec<u8>,
        params: ServerSessionParams,
        seed: u8,
    ) -> Self {
        let mut ep = DtlsEndpoint::new([seed; 32]);
        ep.register(key.clone(), params).unwrap();
        Sim {
            now: 0,
            client,
            ep,
            key,
            peer: PeerId(7),
            net: Vec::new(),
            order: 0,
            rng: Drbg::new([seed.wrapping_add(100); 32]),
            loss: Loss::default(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_sent: Vec::new(),
            server_sent: Vec::new(),
            drop_exact: Vec::new(),
        }
    }

    fn roll(&mut self) -> u8 {
        let mut b = [0u8; 1];
        self.rng.fill(&mut b);
        b[0] % 100
    }

    fn jitter(&mut self) -> u64 {
        if self.loss.jitter_ms == 0 {
            return 0;
        }
        let mut b = [0u8; 2];
        self.rng.fill(&mut b);
        u64::from(u16::from_be_bytes(b)) % (self.loss.jitter_ms * MS)
    }

    fn schedule(&mut self, to_server: bool, d: Vec<u8>) {
        let idx = if to_server {
            self.client_sent.len() - 1
        } else {
            self.server_sent.len() - 1
        };
        if self.drop_exact.contains(&(to_server, idx)) {
            return;
        }
        if self.roll() < self.loss.drop_pct {
            return;
        }
        let copies = if self.roll() < self.loss.dup_pct {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + 5 * MS + self.jitter();
            self.order += 1;
            self.net.push((at, self.order, to_server, d.clone()));
        }
    }

    pub fn flush(&mut self) {
        while let Some(d) = self.client.poll_transmit(self.now) {
            self.client_sent.push((self.now, d.clone()));
            self.schedule(true, d);
        }
        while let Some((p, d)) = self.ep.poll_transmit(self.now) {
            assert_eq!(p, self.peer);
            self.server_sent.push((self.now, d.clone()));
            self.schedule(false, d);
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some((k, e)) = self.ep.poll_event() {
            assert_eq!(k, self.key);
            self.server_events.push(e);
        }
    }

    /// Advance to the next thing that happens; false when nothing is left before `until`.
    pub fn step(&mut self, until: u64) -> bool {
        self.flush();
        let net_next = self.net.iter().map(|n| (n.0, n.1)).min();
        let mut t = net_next.map(|n| n.0);
        for d in [self.client.next_deadline(), self.ep.next_deadline()]
            .into_iter()
            .flatten()
        {
            t = Some(t.map_or(d, |x: u64| x.min(d)));
        }
        let Some(t) = t else { return false };
        if t > until {
            return false;
        }
        self.now = self.now.max(t);
        if let Some(key) = net_next.filter(|n| n.0 <= self.now) {
            let i = self.net.iter().position(|n| (n.0, n.1) == key).unwrap();
            let (_, _, to_server, d) = self.net.remove(i);
            if to_server {
                self.ep.handle_datagram(self.now, self.peer, &d);
            } else {
                self.client.handle_datagram(self.now, &d);
            }
        }
        if self.client.next_deadline().is_some_and(|d| d <= self.now) {
            self.client.handle_timeout(self.now);
        }
        if self.ep.next_deadline().is_some_and(|d| d <= self.now) {
            self.ep.handle_timeout(self.now);
        }
        self.flush();
        true
    }

    pub fn run_until(&mut self, until: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            if !self.step(until) {
                return done(self);
            }
        }
    }

    pub fn server_conn(&self) -> Option<&DtlsConnection> {
        self.ep.connection(&self.key)
    }

    pub fn both_up(&self) -> bool {
        self.client.is_established() && self.server_conn().is_some_and(|c| c.is_established())
    }

    pub fn client_failed(&self) -> Option<String> {
        self.client_events.iter().find_map(|e| match e {
            DtlsEvent::HandshakeFailed { reason } => Some(reason.clone()),
            _ => None,
        })
    }

    /// Handshake, nudging with client data (as openconnect's MTU probe does) once the
    /// client is up, so a lost client final flight gets repaired.
    pub fn handshake(&mut self, limit: u64) -> bool {
        for _ in 0..40 {
            self.run_until(limit, |s| {
                s.both_up()
                    || s.client.is_terminal()
                    || (s.client.is_established() && s.net.is_empty())
            });
            if self.both_up() {
                return true;
            }
            if !self.client.is_established() || self.now > limit {
                return false;
            }
            // client up, network quiet, server not up: its final flight was lost
            let _ = self.client.send_control(self.now, 0x03, &[0x5a; 8]);
            let until = self.now + 500 * MS;
            self.run_until(until, |s| s.both_up() && s.net.is_empty());
        }
        false
    }
}

fn legacy(name: &str) -> DtlsMode {
    DtlsMode::Legacy {
        cipher: name.into(),
    }
}

fn dtls12(name: &str) -> DtlsMode {
    DtlsMode::Dtls12 {
        cipher: name.into(),
    }
}

fn psk_key() -> [u8; 32] {
    seq(0x90, 32).try_into().unwrap()
}

/// Client + endpoint session for a mode.
pub(crate) fn pair(
    mode: &DtlsMode,
    seed: u8,
    server_tweak: impl FnOnce(&mut ServerSessionParams),
    client_tweak: impl FnOnce(&mut DtlsClientConfig),
) -> Sim {
    let (mut ccfg, key, mut sp) = match mode {
        DtlsMode::Psk => {
            let app = vec![0x46, 0x69, 0x6d, seed];
            (
                DtlsClientConfig::psk(app.clone(), psk_key(), [seed; 32]),
                app,
                ServerSessionParams::psk(psk_key()),
            )
        }
        m => (
            DtlsClientConfig::resumption(m.clone(), ms(), vec![0x5f; 32], [seed; 32]),
            vec![0x5f; 32],
            ServerSessionParams::resumption(m.clone(), ms()),
        ),
    };
    ccfg.keylog = true;
    sp.keylog = true;
    client_tweak(&mut ccfg);
    server_tweak(&mut sp);
    let client = DtlsConnection::client(0, ccfg).unwrap();
    Sim::new(client, key, sp, seed)
}

fn all_modes() -> Vec<(DtlsMode, Option<u16>)> {
    let mut v: Vec<(DtlsMode, Option<u16>)> = vec![
        (legacy("AES128-SHA"), None),
        (legacy("AES256-SHA"), None),
        (legacy("DES-CBC3-SHA"), None),
        (legacy("DHE-RSA-AES256-SHA"), None),
        (legacy("OC-DTLS1_2-AES128-GCM"), None),
        (legacy("OC-DTLS1_2-AES256-GCM"), None),
        (dtls12("AES128-GCM-SHA256"), None),
        (dtls12("AES256-GCM-SHA384"), None),
        (dtls12("ECDHE-RSA-AES256-GCM-SHA384"), None),
        (dtls12("AES128-SHA"), None),
        (dtls12("AES256-SHA"), None),
    ];
    for id in super::suites::PSK_SUITES {
        v.push((DtlsMode::Psk, Some(id)));
    }
    v
}

fn restrict_psk(id: Option<u16>) -> impl FnOnce(&mut ServerSessionParams) {
    move |p| {
        if let Some(id) = id {
            p.psk_suites = vec![id];
        }
    }
}

/// Data, DPD and keepalive both ways; replay and bit flips dropped and counted.
fn exercise_data_path(sim: &mut Sim) {
    let key = sim.key.clone();
    let pkt: Vec<u8> = (0..100u8).collect();
    sim.client.send_data(sim.now, &pkt).unwrap();
    sim.ep.send_data(sim.now, &key, &pkt[..50]).unwrap();
    sim.client.send_control(sim.now, 0x03, b"probe").unwrap();
    sim.ep.send_control(sim.now, &key, 0x03, b"srv").unwrap();
    sim.client.send_control(sim.now, 0x07, &[]).unwrap();
    sim.ep.send_control(sim.now, &key, 0x07, &[]).unwrap();
    let until = sim.now + 2 * S;
    sim.run_until(until, |s| s.net.is_empty());
    assert!(
        sim.server_events.contains(&DtlsEvent::Data(pkt.clone())),
        "{:?} {:?} {:?}",
        sim.server_events,
        sim.server_conn().unwrap().stats(),
        sim.client.stats()
    );
    assert!(sim
        .client_events
        .contains(&DtlsEvent::Data(pkt[..50].to_vec())));
    assert!(sim
        .server_events
        .contains(&DtlsEvent::DpdRequest(b"probe".to_vec())));
    // server echoes (ocserv), client answers a bare 04 (openconnect 9.01)
    assert!(sim
        .client_events
        .contains(&DtlsEvent::DpdResponse(b"probe".to_vec())));
    assert!(sim
        .client_events
        .contains(&DtlsEvent::DpdRequest(b"srv".to_vec())));
    assert!(sim.server_events.contains(&DtlsEvent::DpdResponse(vec![])));
    assert!(sim.server_events.contains(&DtlsEvent::Keepalive));
    assert!(sim.client_events.contains(&DtlsEvent::Keepalive));

    // replay a captured client data record: dropped and counted
    sim.client.send_data(sim.now, &pkt).unwrap();
    sim.flush();
    let captured = sim.client_sent.last().unwrap().1.clone();
    let until = sim.now + S;
    sim.run_until(until, |s| s.net.is_empty());
    let data_before = sim
        .server_events
        .iter()
        .filter(|e| matches!(e, DtlsEvent::Data(_)))
        .count();
    let replayed_before = sim.server_conn().unwrap().stats().dropped_replayed;
    // a replay is what UDP duplication produces: not junk
    assert_eq!(sim.ep.handle_datagram(sim.now, sim.peer, &captured), None);
    sim.flush();
    let data_after = sim
        .server_events
        .iter()
        .filter(|e| matches!(e, DtlsEvent::Data(_)))
        .count();
    assert_eq!(data_before, data_after);
    assert_eq!(
        sim.server_conn().unwrap().stats().dropped_replayed,
        replayed_before + 1
    );

    // a fresh record with one bit flipped in its fragment: dropped as bad auth
    sim.client.send_data(sim.now, &pkt).unwrap();
    let mut d = sim.client.poll_transmit(sim.now).unwrap();
    let last = d.len() - 1;
    d[last] ^= 0x01;
    let bad_before = sim.server_conn().unwrap().stats().dropped_bad_auth;
    let ep_bad_before = sim.ep.stats().dropped_bad_auth;
    assert_eq!(
        sim.ep.handle_datagram(sim.now, sim.peer, &d),
        Some(DatagramDrop::BadAuth)
    );
    assert_eq!(sim.ep.stats().dropped_bad_auth, ep_bad_before + 1);
    sim.flush();
    assert_eq!(
        sim.server_conn().unwrap().stats().dropped_bad_auth,
        bad_before + 1
    );
    let data_after2 = sim
        .server_events
        .iter()
        .filter(|e| matches!(e, DtlsEvent::Data(_)))
        .count();
    assert_eq!(data_after, data_after2);
}

#[test]
fn every_mode_and_suite_lossless_with_and_without_hvr_and_layouts() {
    use super::config::FlightLayout;
    for (i, (mode, psk_suite)) in all_modes().into_iter().enumerate() {
        for hvr in [false, true] {
            for layout in [
                FlightLayout::OneDatagram,
                FlightLayout::Separate,
                FlightLayout::FirstAlone,
            ] {
                let mut sim = pair(
                    &mode,
                    i as u8,
                    |p| {
                        restrict_psk(psk_suite)(p);
                        p.hello_verify = hvr;
                        p.flight_layout = layout;
                    },
                    |_| {},
                );
                assert!(
                    sim.handshake(12 * S),
                    "{mode:?} {psk_suite:?} hvr={hvr} {layout:?}: {:?}",
                    sim.client_events
                );
                let c = match &sim.client_events[0] {
                    DtlsEvent::Connected {
                        suite,
                        version,
                        cipher_name,
                    } => (*suite, *version, cipher_name.clone()),
                    e => panic!("{e:?}"),
                };
                let s = sim
                    .server_events
                    .iter()
                    .find_map(|e| match e {
                        DtlsEvent::Connected {
                            suite,
                            version,
                            cipher_name,
                        } => Some((*suite, *version, cipher_name.clone())),
                        _ => None,
                    })
                    .unwrap();
                assert_eq!(c, s);
                if let Some(id) = psk_suite {
                    assert_eq!(sim.client.negotiated_suite().unwrap().id, id);
                }
                // the handshake needed no retransmission on a lossless network
                assert_eq!(sim.client.stats().retransmissions, 0, "{mode:?}");
                let ckl = sim.client.take_keylog();
                assert_eq!(ckl.len(), 1);
                assert!(ckl[0].starts_with("CLIENT_RANDOM "), "{ckl:?}");
                exercise_data_path(&mut sim);
            }
        }
    }
}

#[test]
fn section_10_5_byte_for_byte() {
    let mut cfg =
        DtlsClientConfig::resumption(dtls12("AES256-GCM-SHA384"), ms(), vec![0xaa; 32], [0; 32]);
    cfg.hello_style = HelloStyle::Bare;
    let mut client =
        DtlsConnection::client_with_rng(0, cfg, Box::new(ScriptedRandom::new(vec![seq(0x20, 32)])))
            .unwrap();
    let ch = drain(&mut client, 0);
    let cr = hex(&seq(0x20, 32));
    let sr = hex(&seq(0x40, 32));
    let sid = "aa".repeat(32);
    // record body = the §10.5 transcript ClientHello
    assert_eq!(
        hex(&ch[0][13..]),
        format!("0100004a000000000000004afefd{cr}20{sid}000002009d0100")
    );
    let mut server = DtlsConnection::server_with_rng(
        vec![0xaa; 32],
        ServerSessionParams::resumption(legacy("OC-DTLS1_2-AES256-GCM"), ms()),
        Box::new(ScriptedRandom::new(vec![seq(0x40, 32)])),
    )
    .unwrap();
    server.handle_datagram(0, &ch[0]);
    let fl = drain(&mut server, 0);
    let f = hex(&fl[0]);
    assert!(
        f.starts_with(&format!(
            "16fefd00000000000000000052020000460000000000000046fefd{sr}20{sid}009d00"
        )),
        "{f}"
    );
    assert!(f.contains(&sp("14 fefd 0000 000000000001 0001 01")), "{f}");
    assert!(f.ends_with(
        "16fefd00010000000000000030 0001000000000000 ea802a98a6538e6e4124c64cd1401b4f55d8e8911bcd2d3331cf98cd93ed64e02ca66994c58d6ae0"
            .replace(' ', "")
            .as_str()
    ), "{f}");
    client.handle_datagram(1, &fl[0]);
    assert!(client.is_established());
    let fin = drain(&mut client, 1);
    assert_eq!(fin.len(), 1);
    assert!(hex(&fin[0]).starts_with("14fefd000000000000000100010116fefd00010000000000000030"));
    server.handle_datagram(1, &fin[0]);
    assert!(server.is_established());
    client.send_control(2, 0x03, &[]).unwrap();
    assert_eq!(
        hex(&client.poll_transmit(2).unwrap()),
        "17fefd000100000000000100190001000000000001834239684aadac302d5a8d7489241234d8"
    );
}

#[test]
fn hello_verify_request_sequence_09_matches_badtls() {
    // §5.2.3: CH(msg 0) → HVR(msg 0) → CH+cookie(rec 1, msg 1) → SH(rec 1, msg 1),
    // CCS 01 0002 (rec 2), Finished msg 3 → client CCS 01 0002, Finished msg 3.
    let mut sim = pair(&legacy("AES256-SHA"), 3, |p| p.hello_verify = true, |_| {});
    assert!(sim.handshake(12 * S));
    let c = &sim.client_sent;
    let s = &sim.server_sent;
    let ch2 = &c[1].1;
    assert_eq!(
        &ch2[..13],
        &unhex("16 0100 0000 000000000001")[..11]
            .iter()
            .chain(&ch2[11..13])
            .copied()
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(&ch2[13 + 4..13 + 6], &[0, 1]); // msg_seq 1
    let hello = super::endpoint::peek_client_hello(ch2).unwrap();
    assert_eq!(hello.cookie.len(), 20);
    let hvr = &s[0].1;
    assert_eq!(hex(&hvr[..13]), "16010000000000000000000023");
    assert_eq!(hex(&hvr[13..13 + 12]), "030000170000000000000017");
    assert_eq!(hex(&hvr[25..28]), "010014");
    let fl = hex(&s[1].1);
    assert!(
        fl.starts_with(&sp(
            "16 0100 0000 000000000001 0052 02 000046 0001 000000 000046"
        )),
        "{fl}"
    );
    assert!(
        fl.contains(&sp("14 0100 0000 000000000002 0003 01 0002")),
        "{fl}"
    );
    assert!(fl.contains(&sp("16 0100 0001 000000000000 0040")), "{fl}");
    let cf = hex(&c[2].1);
    assert!(
        cf.starts_with(&sp(
            "14 0100 0000 000000000002 0003 01 0002 16 0100 0001 000000000000 0040"
        )),
        "{cf}"
    );
}

#[test]
fn psk_flights_match_ocserv_layout() {
    // §10.9 PSK: SH (rec 0, msg 0) and ServerHelloDone (rec 1, msg 1) in separate
    // datagrams; then server CCS at rec 2 and Finished msg 2 at epoch 1 seq 0.
    for (style, sh_len, body_len) in [
        (HelloStyle::Bare, "0052", "000046"),
        (HelloStyle::Minimal, "0059", "00004d"),
    ] {
        let mut sim = pair(
            &DtlsMode::Psk,
            9,
            |p| p.flight_layout = super::config::FlightLayout::Separate,
            |c| c.hello_style = style,
        );
        assert!(sim.handshake(12 * S));
        let s: Vec<String> = sim.server_sent.iter().map(|d| hex(&d.1)).collect();
        assert!(
            s[0].starts_with(&sp(&format!(
                "16 fefd 0000 000000000000 {sh_len} 02 {body_len} 0000 000000 {body_len} fefd"
            ))),
            "{}",
            s[0]
        );
        assert!(s[0].contains("00a900"), "{}", s[0]);
        if style == HelloStyle::Minimal {
            assert!(s[0].ends_with("00a9000005ff01000100"), "{}", s[0]);
        }
        assert_eq!(
            s[1],
            sp("16 fefd 0000 000000000001 000c 0e 000000 0001 000000 000000")
        );
        assert_eq!(s[2], sp("14 fefd 0000 000000000002 0001 01"));
        assert!(
            s[3].starts_with(&sp("16 fefd 0001 000000000000 0030 0001000000000000")),
            "{}",
            s[3]
        );
        let c = hex(&sim.client_sent[1].1);
        // CKE 00 03 "psk" msg 1, CCS 01, Finished msg 2 at epoch 1
        assert!(
            c.starts_with(&sp(
                "16 fefd 0000 000000000001 0011 10 000005 0001 000000 000005 0003 70736b"
            )),
            "{c}"
        );
        assert!(
            c.contains(&sp(
                "14 fefd 0000 000000000002 0001 01 16 fefd 0001 000000000000 0030"
            )),
            "{c}"
        );
        // the session id is server-chosen, not the app id
        assert_eq!(sim.client.session_id().len(), 32);
        assert_ne!(sim.client.session_id(), &sim.key[..]);
    }
}

#[test]
fn gnutls_style_hellos_have_section_10_10_sizes() {
    for (mode, len) in [
        (legacy("AES128-SHA"), 116usize),
        (dtls12("AES256-GCM-SHA384"), 154),
    ] {
        let mut cfg = DtlsClientConfig::resumption(mode.clone(), ms(), vec![1; 32], [0; 32]);
        cfg.hello_style = HelloStyle::GnuTls;
        let mut c = DtlsConnection::client(0, cfg).unwrap();
        let d = c.poll_transmit(0).unwrap();
        assert_eq!(d.len(), len, "{mode:?}");
        // and the server accepts it
        let mut sim = pair(&mode, 4, |_| {}, |c| c.hello_style = HelloStyle::GnuTls);
        assert!(sim.handshake(12 * S));
    }
    let mut cfg =
        DtlsClientConfig::resumption(dtls12("AES128-GCM-SHA256"), ms(), vec![1; 32], [0; 32]);
    cfg.hello_style = HelloStyle::OpenSsl;
    let mut c = DtlsConnection::client(0, cfg).unwrap();
    let ch = super::endpoint::peek_client_hello(&c.poll_transmit(0).unwrap()).unwrap();
    assert_eq!(ch.suites, vec![0x009c, 0x00ff]);
    assert_eq!(ch.extensions.unwrap().len(), 1);
}

#[test]
fn timeout_after_hellos_at_0_1_3_7() {
    let cfg = DtlsClientConfig::resumption(legacy("AES128-SHA"), ms(), vec![1; 32], [0; 32]);
    let mut c = DtlsConnection::client(0, cfg).unwrap();
    let mut sent = Vec::new();
    let mut now = 0;
    loop {
        while let Some(d) = c.poll_transmit(now) {
            sent.push((now / S, d));
        }
        let Some(t) = c.next_deadline() else { break };
        now = t;
        c.handle_timeout(now);
    }
    let times: Vec<u64> = sent.iter().map(|s| s.0).collect();
    assert_eq!(times, vec![0, 1, 3, 7]);
    assert_eq!(now, 12 * S);
    assert_eq!(
        events(&mut c),
        vec![DtlsEvent::HandshakeFailed {
            reason: "timeout".into()
        }]
    );
    // retransmissions reuse the hello but not the record sequence number
    assert_eq!(&sent[0].1[13..], &sent[3].1[13..]);
    assert_eq!(hex(&sent[3].1[3..11]), "0000000000000003");
    assert!(c.send_data(now, &[1]).is_err());
    assert_eq!(c.stats().retransmissions, 3);
}

#[test]
fn early_handle_timeout_does_nothing() {
    let cfg = DtlsClientConfig::resumption(legacy("AES128-SHA"), ms(), vec![1; 32], [0; 32]);
    let mut c = DtlsConnection::client(0, cfg).unwrap();
    let _ = drain(&mut c, 0);
    c.handle_timeout(S / 2);
    assert!(c.poll_transmit(S / 2).is_none());
    assert_eq!(c.next_deadline(), Some(S));
}

#[test]
fn server_hello_with_other_session_id_fails_not_resumed() {
    let mut sim = pair(&legacy("AES128-SHA"), 5, |_| {}, |_| {});
    sim.flush();
    let ch = sim.client_sent[0].1.clone();
    sim.ep.handle_datagram(0, sim.peer, &ch);
    let (_, mut fl) = sim.ep.poll_transmit(0).unwrap();
    // session id lives at 13 + 12 + 2 + 32 + 1
    fl[13 + 12 + 35] ^= 0xff;
    sim.client.handle_datagram(1, &fl);
    assert_eq!(
        events(&mut sim.client),
        vec![DtlsEvent::HandshakeFailed {
            reason: "not resumed (possible MITM)".into()
        }]
    );
    assert!(sim.client.is_terminal());
    assert_eq!(sim.client.next_deadline(), None);
}

#[test]
fn server_hello_with_extended_master_secret_fails() {
    // §10.8: openconnect 9.01 fails on an unsolicited extension (0017 0000)
    let mut c = DtlsConnection::client(
        0,
        DtlsClientConfig::resumption(dtls12("AES128-GCM-SHA256"), ms(), vec![1; 32], [0; 32]),
    )
    .unwrap();
    let _ = drain(&mut c, 0);
    let sh = super::messages::ServerHello {
        version: 0xfefd,
        random: [4; 32],
        session_id: vec![1; 32],
        suite: 0x009c,
        compression: 0,
        extensions: Some(vec![super::messages::Extension {
            ext_type: 0x0017,
            data: vec![],
        }]),
    };
    c.handle_datagram(1, &plain_handshake_record(2, &sh.encode()));
    let ev = events(&mut c);
    assert!(
        matches!(&ev[0], DtlsEvent::HandshakeFailed { reason } if reason.contains("0x0017")),
        "{ev:?}"
    );
}

#[test]
fn bad_server_finished_fails() {
    // Tamper with the (unauthenticated) ServerHello so that the transcripts differ but
    // the keys do not: the Finished decrypts and its verify_data is wrong.
    let mut sim = pair(&dtls12("AES128-GCM-SHA256"), 6, |_| {}, |_| {});
    sim.flush();
    let ch = sim.client_sent[0].1.clone();
    sim.ep.handle_datagram(0, sim.peer, &ch);
    let (_, fl) = sim.ep.poll_transmit(0).unwrap();
    let recs: Vec<_> = super::record::RecordIter::new(&fl)
        .map(|r| r.unwrap())
        .collect();
    let mut sh = super::messages::ServerHello::parse(&recs[0].1[12..]).unwrap();
    sh.extensions = Some(vec![super::messages::Extension {
        ext_type: 0xff01,
        data: vec![0],
    }]);
    let mut d = plain_handshake_record(2, &sh.encode());
    for (h, f) in &recs[1..] {
        super::record::encode_header(&mut d, h);
        d.extend_from_slice(f);
    }
    sim.client.handle_datagram(1, &d);
    assert_eq!(
        events(&mut sim.client),
        vec![DtlsEvent::HandshakeFailed {
            reason: "bad server Finished".into()
        }]
    );
    // a Finished under another master secret does not even authenticate
    let mut sim = pair(&dtls12("AES128-GCM-SHA256"), 6, |_| {}, |_| {});
    sim.flush();
    let ch = sim.client_sent[0].1.clone();
    let mut other = DtlsEndpoint::new([1; 32]);
    other
        .register(
            sim.key.clone(),
            ServerSessionParams::resumption(dtls12("AES128-GCM-SHA256"), [9; 48]),
        )
        .unwrap();
    other.handle_datagram(0, PeerId(1), &ch);
    let (_, fl) = other.poll_transmit(0).unwrap();
    sim.client.handle_datagram(1, &fl);
    assert!(events(&mut sim.client).is_empty());
    assert_eq!(sim.client.stats().dropped_bad_auth, 1);
}

#[test]
fn one_byte_ccs_in_dtls09_never_completes() {
    // §5.2.3/§10.8: the DTLS 0.9 server must not accept the 1-byte CCS
    let mut sim = pair(&legacy("AES128-SHA"), 8, |_| {}, |_| {});
    sim.flush();
    let ch = sim.client_sent[0].1.clone();
    sim.ep.handle_datagram(0, sim.peer, &ch);
    let mut ccs = Vec::new();
    super::record::encode_plain_record(&mut ccs, 20, 0x0100, 0, 1, &[1]);
    assert_eq!(
        sim.ep.handle_datagram(1, sim.peer, &ccs),
        Some(DatagramDrop::Malformed)
    );
    assert_eq!(sim.ep.stats().dropped_malformed, 1);
    let c = sim.server_conn().unwrap();
    assert_eq!(c.stats().dropped_malformed, 1);
    assert!(!c.is_established() && !c.is_terminal());
}

#[test]
fn early_epoch1_records_are_buffered_then_processed() {
    // server flight in three datagrams delivered in reverse order
    let mut sim = pair(
        &legacy("AES128-SHA"),
        10,
        |p| p.flight_layout = super::config::FlightLayout::Separate,
        |_| {},
    );
    sim.flush();
    let ch = sim.client_sent[0].1.clone();
    sim.ep.handle_datagram(0, sim.peer, &ch);
    let fl: Vec<Vec<u8>> = std::iter::from_fn(|| sim.ep.poll_transmit(0).map(|x| x.1)).collect();
    assert_eq!(fl.len(), 3);
    sim.client.handle_datagram(1, &fl[2]); // Finished first: buffered
    assert_eq!(sim.client.stats().buffered_early, 1);
    sim.client.handle_datagram(1, &fl[1]); // CCS (msg_seq 1) before the SH: held
    assert!(!sim.client.is_established());
    sim.client.handle_datagram(1, &fl[0]);
    assert!(sim.client.is_established(), "{:?}", sim.client.stats());
    // the client's final flight + data that overtakes it at the server
    let fin = sim.client.poll_transmit(1).unwrap();
    sim.client.send_data(1, b"early").unwrap();
    let data = sim.client.poll_transmit(1).unwrap();
    sim.ep.handle_datagram(2, sim.peer, &data);
    assert_eq!(sim.server_conn().unwrap().stats().buffered_early, 1);
    sim.ep.handle_datagram(2, sim.peer, &fin);
    sim.flush();
    assert!(sim.server_conn().unwrap().is_established());
    assert!(
        sim.server_events
            .contains(&DtlsEvent::Data(b"early".to_vec())),
        "{:?}",
        sim.server_events
    );
}

#[test]
fn lost_final_flight_is_repaired_by_data() {
    // resumption: the client's CCS+Finished datagram is lost; the server learns of it
    // from the client's data, resends its flight, the client resends its final flight.
    for mode in [legacy("AES128-SHA"), dtls12("AES256-GCM-SHA384")] {
        let mut sim = pair(&mode, 11, |_| {}, |_| {});
        sim.drop_exact = vec![(true, 1)];
        assert!(sim.handshake(12 * S), "{mode:?}");
        assert!(sim.server_conn().unwrap().stats().retransmissions >= 1);
        assert!(sim.client.stats().retransmissions >= 1);
        // the probe sent while the server was not up was delivered afterwards
        assert!(sim
            .server_events
            .iter()
            .any(|e| matches!(e, DtlsEvent::DpdRequest(_))));
    }
    // PSK: the server's final flight is lost; the client's timer repairs it
    let mut sim = pair(&DtlsMode::Psk, 12, |_| {}, |_| {});
    sim.drop_exact = vec![(false, 1)];
    assert!(sim.handshake(12 * S));
    assert!(sim.client.stats().retransmissions >= 1);
    assert!(sim.server_conn().unwrap().stats().retransmissions >= 1);
    // first server flight lost: the client's retransmitted hello brings it back
    let mut sim = pair(&legacy("DES-CBC3-SHA"), 13, |_| {}, |_| {});
    sim.drop_exact = vec![(false, 0)];
    assert!(sim.handshake(12 * S));
    assert!(sim.now >= S);
}

#[test]
fn lossy_networks_complete_through_retransmission() {
    let mut ok = 0;
    let mut total = 0;
    for (i, (mode, psk)) in all_modes().into_iter().enumerate() {
        for seed in 0..12u8 {
            total += 1;
            let mut sim = pair(
                &mode,
                seed.wrapping_mul(31).wrapping_add(i as u8),
                restrict_psk(psk),
                |_| {},
            );
            sim.loss = Loss {
                drop_pct: 25,
                dup_pct: 15,
                jitter_ms: 40,
            };
            if sim.handshake(12 * S) {
                ok += 1;
                // after success every datagram goes through again: data flows
                sim.loss = Loss::default();
                exercise_data_path(&mut sim);
            } else {
                // the only acceptable failure is the 12 s timeout
                let r = sim.client_failed();
                assert!(
                    r.is_none() || r.as_deref() == Some("timeout"),
                    "{mode:?}: {r:?}"
                );
            }
        }
    }
    eprintln!("lossy handshakes completed: {ok}/{total}");
    assert!(ok * 10 >= total * 9, "{ok}/{total}");
}

#[test]
fn unknown_session_and_zero_random_get_no_answer() {
    let mut ep = DtlsEndpoint::new([1; 32]);
    ep.register(
        vec![0x5f; 32],
        ServerSessionParams::resumption(legacy("AES128-SHA"), ms()),
    )
    .unwrap();
    let mut c = DtlsConnection::client(
        0,
        DtlsClientConfig::resumption(legacy("AES128-SHA"), ms(), vec![0x60; 32], [0; 32]),
    )
    .unwrap();
    let ch = c.poll_transmit(0).unwrap();
    for now in [0, 1] {
        assert_eq!(
            ep.handle_datagram(now, PeerId(1), &ch),
            Some(DatagramDrop::UnknownSession)
        );
    }
    assert!(ep.poll_transmit(1).is_none());
    assert_eq!(ep.stats().dropped_unknown_session, 2);
    let mut z = DtlsConnection::client_with_rng(
        0,
        DtlsClientConfig::resumption(legacy("AES128-SHA"), ms(), vec![0x5f; 32], [0; 32]),
        Box::new(ScriptedRandom::new(vec![vec![0; 32]])),
    )
    .unwrap();
    assert_eq!(
        ep.handle_datagram(2, PeerId(2), &z.poll_transmit(0).unwrap()),
        Some(DatagramDrop::ZeroRandom)
    );
    assert!(ep.poll_transmit(2).is_none());
    assert_eq!(ep.stats().dropped_zero_random, 1);
    assert_eq!(
        ep.handle_datagram(3, PeerId(3), b"garbage"),
        Some(DatagramDrop::UnknownPeer)
    );
    assert_eq!(ep.stats().dropped_unknown_peer, 1);
    assert_eq!(DatagramDrop::UnknownPeer.name(), "unknown-peer");
    assert!(ep.poll_event().is_none());
    assert_eq!(ep.next_deadline(), None);
}

#[test]
fn psk_routing_by_app_id_extension() {
    let mut ep = DtlsEndpoint::new([1; 32]);
    ep.register(vec![1, 2, 3], ServerSessionParams::psk(psk_key()))
        .unwrap();
    let ch = super::messages::ClientHello {
        version: 0xfefd,
        random: [9; 32],
        session_id: vec![],
        cookie: vec![],
        suites: vec![0x00a8],
        compression: vec![0],
        extensions: Some(vec![super::messages::Extension {
            ext_type: 0xBB92,
            data: vec![3, 1, 2, 3],
        }]),
    };
    ep.handle_datagram(0, PeerId(4), &plain_handshake_record(1, &ch.encode()));
    let (p, sh) = ep.poll_transmit(0).unwrap();
    assert_eq!(p, PeerId(4));
    assert_eq!(sh[0], 22);
    assert_eq!(ep.peer_of(&[1, 2, 3]), Some(PeerId(4)));
}

#[test]
fn new_hello_from_new_port_replaces_connection() {
    let mut sim = pair(&legacy("AES256-SHA"), 14, |_| {}, |_| {});
    assert!(sim.handshake(12 * S));
    let old_peer = sim.peer;
    // the client re-handshakes from a new port with a new connection
    let cfg = DtlsClientConfig::resumption(legacy("AES256-SHA"), ms(), vec![0x5f; 32], [77; 32]);
    sim.client = DtlsConnection::client(sim.now, cfg).unwrap();
    sim.client_events.clear();
    sim.peer = PeerId(99);
    assert!(sim.handshake(sim.now + 12 * S));
    assert_eq!(sim.ep.peer_of(&sim.key), Some(PeerId(99)));
    assert_eq!(sim.ep.stats().connections_replaced, 1);
    // the old peer is gone: its datagrams are unknown
    sim.ep.handle_datagram(sim.now, old_peer, &[23, 1, 0, 0, 1]);
    assert_eq!(sim.ep.stats().dropped_unknown_peer, 1);
    // and a new hello on the *same* port replaces too
    let cfg = DtlsClientConfig::resumption(legacy("AES256-SHA"), ms(), vec![0x5f; 32], [78; 32]);
    sim.client = DtlsConnection::client(sim.now, cfg).unwrap();
    assert!(sim.handshake(sim.now + 12 * S));
    assert_eq!(sim.ep.stats().connections_replaced, 2);
    sim.ep.unregister(&sim.key.clone());
    assert!(sim.ep.connection(&sim.key).is_none());
    assert_eq!(
        sim.ep.send_data(0, &[0x5f; 32], &[1]),
        Err(DtlsError::UnknownSession)
    );
}

#[test]
fn dpd_5_requests_at_5_7_9_dead_at_11() {
    let mut sim = pair(&legacy("AES128-SHA"), 15, |_| {}, |c| c.dpd_s = 5);
    assert!(sim.handshake(12 * S));
    let t0 = sim.now;
    let before = sim.client_sent.len();
    // the network now drops everything
    sim.loss.drop_pct = 100;
    sim.run_until(t0 + 60 * S, |s| {
        s.client_events.contains(&DtlsEvent::PeerDead)
    });
    let sent: Vec<u64> = sim.client_sent[before..]
        .iter()
        .map(|d| (d.0 - t0 + S / 2) / S)
        .collect();
    assert_eq!(sent, vec![5, 7, 9]);
    assert_eq!(sim.client.stats().dpd_requests_out, 3);
    assert!(sim.client.is_terminal());
    assert_eq!((sim.now - t0 + S / 2) / S, 11);
}

#[test]
fn keepalive_after_idle_and_unknown_types_dropped() {
    let mut sim = pair(
        &dtls12("AES128-GCM-SHA256"),
        16,
        |p| p.keepalive_s = 20,
        |c| c.keepalive_s = 20,
    );
    assert!(sim.handshake(12 * S));
    let t0 = sim.now;
    sim.run_until(t0 + 25 * S, |s| {
        s.server_events.contains(&DtlsEvent::Keepalive)
            && s.client_events.contains(&DtlsEvent::Keepalive)
    });
    assert!(sim.server_events.contains(&DtlsEvent::Keepalive));
    assert!(sim.client_events.contains(&DtlsEvent::Keepalive));
    sim.client.send_control(sim.now, 0x08, &[1, 2, 3]).unwrap();
    sim.client.send_control(sim.now, 0x06, &[]).unwrap();
    let until = sim.now + S;
    sim.run_until(until, |s| s.net.is_empty());
    assert_eq!(sim.server_conn().unwrap().stats().dropped_unknown_type, 2);
}

#[test]
fn echo_dpd_payload_knob_and_mtu() {
    let mut sim = pair(
        &legacy("AES128-SHA"),
        17,
        |p| p.echo_dpd_payload = false,
        |c| c.echo_dpd_payload = true,
    );
    assert!(sim.handshake(12 * S));
    let key = sim.key.clone();
    sim.ep.send_control(sim.now, &key, 0x03, b"abc").unwrap();
    sim.client.send_control(sim.now, 0x03, b"xyz").unwrap();
    let until = sim.now + S;
    sim.run_until(until, |s| s.net.is_empty());
    assert!(sim
        .server_events
        .contains(&DtlsEvent::DpdResponse(b"abc".to_vec())));
    assert!(sim.client_events.contains(&DtlsEvent::DpdResponse(vec![])));
    assert_eq!(sim.client.data_mtu(1500, false), 1419);
    assert_eq!(sim.client.tunnel_mtu(1500, false), 1418);
    let mut g = pair(&DtlsMode::Psk, 18, |_| {}, |_| {});
    assert!(g.handshake(12 * S));
    assert_eq!(g.client.tunnel_mtu(1406, false), 1340);
    assert_eq!(g.client.tunnel_mtu(1500, false), 1434);
}

#[test]
fn keylog_lines_are_nss_format() {
    let mut sim = pair(&legacy("AES128-SHA"), 19, |_| {}, |_| {});
    assert!(sim.handshake(12 * S));
    let l = sim.client.take_keylog();
    assert_eq!(
        l,
        vec![format!(
            "CLIENT_RANDOM {} {}",
            hex(&sim.client.client_random()),
            hex(&ms())
        )]
    );
    assert!(sim.client.take_keylog().is_empty());
    let mut p = pair(&DtlsMode::Psk, 20, |_| {}, |_| {});
    assert!(p.handshake(12 * S));
    let l = p.client.take_keylog();
    assert_eq!(l.len(), 1);
    assert!(!l[0].ends_with(&hex(&ms())));
    assert_eq!(l[0].len(), "CLIENT_RANDOM ".len() + 64 + 1 + 96);
}

#[test]
fn config_errors() {
    let e = DtlsConnection::client(
        0,
        DtlsClientConfig::resumption(legacy("PSK-NEGOTIATE"), ms(), vec![1; 32], [0; 32]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("PSK mode"), "{e}");
    let e = DtlsConnection::client(
        0,
        DtlsClientConfig::resumption(legacy("AES128-SHA"), ms(), vec![], [0; 32]),
    )
    .unwrap_err();
    assert!(matches!(e, DtlsError::InvalidConfig(_)));
    let mut cfg = DtlsClientConfig::psk(vec![1], psk_key(), [0; 32]);
    cfg.psk = None;
    assert!(DtlsConnection::client(0, cfg).is_err());
    let mut ep = DtlsEndpoint::new([0; 32]);
    assert!(ep
        .register(
            vec![1],
            ServerSessionParams::resumption(dtls12("NOPE"), ms())
        )
        .is_err());
    let mut p = ServerSessionParams::psk(psk_key());
    p.psk_suites = vec![0x002f];
    assert!(ep.register(vec![1], p).is_err());
}

#[test]
fn closed_connection_drops_everything() {
    let mut sim = pair(&legacy("AES128-SHA"), 21, |_| {}, |_| {});
    assert!(sim.handshake(12 * S));
    sim.client.close();
    assert_eq!(sim.client.send_data(sim.now, &[1]), Err(DtlsError::Closed));
    let key = sim.key.clone();
    sim.ep.send_data(sim.now, &key, &[1]).unwrap();
    let until = sim.now + S;
    sim.run_until(until, |s| s.net.is_empty());
    assert_eq!(sim.client.stats().dropped_closed, 1);
    assert_eq!(sim.client.next_deadline(), None);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn mode_by(i: usize) -> (DtlsMode, Option<u16>) {
        let m = all_modes();
        m[i % m.len()].clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any single bit flip anywhere in a valid data datagram never yields data.
        #[test]
        fn single_bit_flip_never_yields_data(mode_i in 0usize..16, bit in 0usize..(8 * 140), len in 0usize..100) {
            let (mode, psk) = mode_by(mode_i);
            let mut sim = pair(&mode, mode_i as u8, restrict_psk(psk), |_| {});
            prop_assert!(sim.handshake(12 * S));
            sim.server_events.clear();
            let pkt = vec![0x45u8; len];
            sim.client.send_data(sim.now, &pkt).unwrap();
            let mut d = sim.client.poll_transmit(sim.now).unwrap();
            let bit = bit % (8 * d.len());
            d[bit / 8] ^= 1 << (bit % 8);
            sim.ep.handle_datagram(sim.now, sim.peer, &d);
            sim.flush();
            prop_assert!(!sim.server_events.iter().any(|e| matches!(e, DtlsEvent::Data(_))), "{:?}", sim.server_events);
            let st = sim.server_conn().unwrap().stats().clone();
            prop_assert_eq!(st.data_in, 0);
            prop_assert!(st.dropped_bad_auth + st.dropped_malformed + st.dropped_wrong_epoch + st.dropped_replayed >= 1, "{:?}", st);
        }

        /// Arbitrary bytes at every handshake stage never panic (client and server).
        #[test]
        fn arbitrary_datagrams_at_every_stage(mode_i in 0usize..16, stage in 0usize..6, junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..6)) {
            let (mode, psk) = mode_by(mode_i);
            let hvr = mode_i % 2 == 0;
            let mut sim = pair(&mode, 40 + mode_i as u8, |p| { restrict_psk(psk)(p); p.hello_verify = hvr; }, |_| {});
            for _ in 0..stage {
                sim.step(12 * S);
            }
            for j in &junk {
                sim.client.handle_datagram(sim.now, j);
                sim.ep.handle_datagram(sim.now, sim.peer, j);
                sim.ep.handle_datagram(sim.now, PeerId(1234), j);
            }
            sim.flush();
            // the real handshake still completes unless the junk happened to be valid
            let _ = sim.handshake(30 * S);
        }

        /// Mutated copies of real handshake datagrams (bit flips, truncation, splicing)
        /// never panic either side and never produce data events.
        #[test]
        fn mutated_handshake_datagrams(mode_i in 0usize..16, picks in proptest::collection::vec((any::<u16>(), any::<u16>(), 0u8..4), 1..12)) {
            let (mode, psk) = mode_by(mode_i);
            let mut sim = pair(&mode, 80 + mode_i as u8, restrict_psk(psk), |_| {});
            prop_assert!(sim.handshake(12 * S));
            let mut all: Vec<Vec<u8>> = sim.client_sent.iter().chain(sim.server_sent.iter()).map(|d| d.1.clone()).collect();
            all.truncate(12);
            let mut fresh = pair(&mode, 120 + mode_i as u8, restrict_psk(psk), |_| {});
            fresh.flush();
            for (a, b, op) in picks {
                let src = &all[usize::from(a) % all.len()];
                let mut d = src.clone();
                match op {
                    0 => { let i = usize::from(b) % (8 * d.len()); d[i / 8] ^= 1 << (i % 8); }
                    1 => d.truncate(usize::from(b) % (d.len() + 1)),
                    2 => { let other = &all[usize::from(b) % all.len()]; d.extend_from_slice(other); }
                    _ => { let i = usize::from(b) % d.len(); d[i] = d[i].wrapping_add(1); }
                }
                fresh.client.handle_datagram(fresh.now, &d);
                fresh.ep.handle_datagram(fresh.now, fresh.peer, &d);
                fresh.flush();
            }
            prop_assert!(!fresh.server_events.iter().chain(fresh.client_events.iter()).any(|e| matches!(e, DtlsEvent::Data(_))));
        }
    }
}
