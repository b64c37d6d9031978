//! The IPv4 reassembler of `ip::reassembly` on arbitrary packet sequences: documented
//! outcomes only, no panic, the table within its limits, and every reassembled datagram
//! a sound, unfragmented IPv4 packet.
//!
//! Input: 3 bytes of limits (datagrams 1..=8, fragments 2..=17, timeout 1..=256 ms), then
//! records `[len, flags, offset_hi, offset_lo, time_step, data[len]]`. A record whose
//! `flags` bit 0x80 is set gets a sound 20-byte header with the record's fragment
//! offset, MF (bit 0x40) and ident (bits 0x03) patched in, so that reassembly itself is
//! reached; otherwise the bytes go in as they are.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunnelswarm_proto::ip::checksum::internet_checksum;
use tunnelswarm_proto::ip::parse_ipv4;
use tunnelswarm_proto::ip::reassembly::{Outcome, Reassembler, ReassemblyLimits};

fn fragment(data: &[u8], flags: u8, offset: u16) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p.extend_from_slice(data);
    p[0] = 0x45;
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[4..6].copy_from_slice(&u16::from(flags & 0x03).to_be_bytes());
    let mf: u16 = if flags & 0x40 != 0 { 0x2000 } else { 0 };
    p[6..8].copy_from_slice(&(mf | (offset & 0x1fff)).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 1, 80]);
    p[16..20].copy_from_slice(&[10, 10, 10, 10]);
    let c = internet_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fuzz_target!(|data: &[u8]| {
    let Some((&[d, f, t], mut rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let limits = ReassemblyLimits {
        max_datagrams: usize::from(d % 8) + 1,
        max_fragments: usize::from(f % 16) + 2,
        timeout_us: (u64::from(t) + 1) * 1000,
    };
    let mut r = Reassembler::new(limits).expect("valid limits");
    let mut now = 0u64;
    while let Some((&[len, flags, hi, lo, step], tail)) = rest.split_first_chunk::<5>() {
        let len = usize::from(len).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        now += u64::from(step) * 100;
        let pkt = if flags & 0x80 != 0 {
            // data lengths in 8-byte units mostly, so that fragments fit together
            let body = if flags & 0x20 != 0 {
                body
            } else {
                &body[..body.len() / 8 * 8]
            };
            fragment(body, flags, u16::from_be_bytes([hi, lo]) % 64)
        } else {
            body.to_vec()
        };
        match r.handle(now, &pkt) {
            Outcome::Reassembled(d) => {
                let (h, _) = parse_ipv4(&d).expect("reassembled datagrams are sound");
                assert!(!h.is_fragment());
                assert_eq!(usize::from(h.total_len), d.len());
            }
            Outcome::Pass | Outcome::Malformed(_) | Outcome::Held | Outcome::Dropped(_) => {}
        }
        assert!(r.pending() <= limits.max_datagrams);
        if let Some(deadline) = r.next_deadline() {
            assert!(deadline > now);
        }
    }
    r.handle_timeout(u64::MAX);
    assert_eq!(r.pending(), 0);
    assert_eq!(r.next_deadline(), None);
});
