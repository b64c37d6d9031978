//! The IPv4 packet parsers and builders of `ip::{tcp, udp, icmp, fragment}` and the flow
//! receiver of `traffic::flow`, on arbitrary bytes: documented outcomes only, no panic.
//! The first byte picks the MTU for the fragmenter and the ICMP builder. Every input is
//! tried twice: as is, and with a sound 20-byte IPv4 header and a right transport
//! checksum patched in, so that the TCP/UDP/ICMP parsers past the checksums are reached.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use tunnelswarm_proto::ip::checksum::{internet_checksum, ipv4_transport_checksum};
use tunnelswarm_proto::ip::{fragment, icmp, tcp, udp};
use tunnelswarm_proto::traffic::flow::{FlowConfig, FlowReceiver};

/// `data` with IHL 5, its own length as total length and right checksums.
fn patched(data: &[u8]) -> Option<Vec<u8>> {
    let mut p = data.to_vec();
    if p.len() < 20 || p.len() > 65_535 {
        return None;
    }
    p[0] = 0x45;
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let c = internet_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let at = match p[9] {
        1 => 22,
        6 => 36,
        17 => 26,
        _ => return Some(p),
    };
    if p.len() < at + 2 {
        return Some(p);
    }
    p[at..at + 2].copy_from_slice(&[0, 0]);
    let c = if p[9] == 1 {
        internet_checksum(&p[20..])
    } else {
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        ipv4_transport_checksum(src, dst, p[9], &p[20..])?
    };
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Some(p)
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(p) = patched(data) {
        check(&p);
    }
});

fn check(data: &[u8]) {
    let mtu = usize::from(data.first().copied().unwrap_or(0)) * 8;
    if let Ok(s) = tcp::parse_tcp(data) {
        assert!(s.payload.len() <= data.len());
    }
    let _ = udp::parse_udp(data);
    if let Ok(m) = icmp::parse_icmp(data) {
        let _ = m.next_hop_mtu();
        if let Some(q) = m.quote() {
            let _ = (q.ports(), q.tcp_seq());
        }
    }
    if let Ok(frags) = fragment::fragment_ipv4(data, mtu) {
        assert!(frags.len() == 1 || frags.iter().all(|f| f.len() <= mtu));
    }
    let _ = icmp::build_frag_needed(data, mtu as u16, Ipv4Addr::new(10, 1, 1, 1), 255);
    let cfg = FlowConfig::new(
        Ipv4Addr::new(10, 10, 10, 10),
        Ipv4Addr::new(10, 1, 1, 80),
        40000,
        80,
        1378,
        1000,
    );
    if let Ok(mut rx) = FlowReceiver::new(cfg) {
        let _ = rx.syn(0);
        let _ = rx.handle_packet(1, data);
        while rx.poll_transmit().is_some() {}
        rx.handle_timeout(2_000_000);
        let _ = rx.handle_packet(3_000_000, data);
    }
}
