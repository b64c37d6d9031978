//! IPv4/ICMP/UDP parsing of inbound tunnel packets by the prober, on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use tunnelswarm_proto::traffic::probe::{build_icmp_echo_reply, build_udp_echo_reply, ProbeConfig, ProbeKind, Prober};

fuzz_target!(|data: &[u8]| {
    let cfg = ProbeConfig {
        src: Ipv4Addr::new(10, 0, 0, 2),
        dst: Ipv4Addr::new(10, 0, 0, 1),
        kind: ProbeKind::IcmpEcho { ident: 0x7453 },
        payload_len: 56,
        ttl: 64,
        dont_fragment: true,
    };
    let Ok(mut p) = Prober::new(cfg) else { return };
    let _ = p.build(0);
    let _ = p.handle_packet(1, data);
    let _ = tunnelswarm_proto::ip::parse_ipv4(data);
    let _ = build_icmp_echo_reply(data);
    let _ = build_udp_echo_reply(data);
});
