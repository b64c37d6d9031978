//! DTLS record sealing and opening throughput, per suite and record size, through the
//! same code a [`DtlsConnection`](tunnelswarm_proto::dtls::DtlsConnection) runs on its
//! data path:
//!
//! * **seal** = `cipher::write_record` into a fresh `Vec` (header + protected fragment,
//!   CBC IVs drawn from the connection's ChaCha20 DRBG), as `send_app` does;
//! * **open** = `record::RecordIter` over the datagram, copy the fragment, then
//!   `RecordProtection::open` in place, as `handle_datagram` does for epoch-1 records.
//!
//! `N` is the record plaintext (AnyConnect type byte + `N − 1` packet bytes); MB/s is
//! `N × records/s / 10⁶`, the unit `openssl speed` uses (`benches/bench_dtls_vs_openssl.py`
//! puts the two side by side). Keys come from the real key schedule with a fixed master
//! secret. Output: one line per suite/size/operation,
//!
//! ```text
//! suite=AES128-SHA id=002f version=DTLS0.9 op=seal bytes=1400 records_per_s=… mb_per_s=…
//! ```
//!
//! Run: `cargo bench -p tunnelswarm-proto --bench dtls_records [-- --seconds S]
//! [--suite NAME] [--bytes N,N]` (defaults: 1 s per measurement, every suite, 64/512/1400).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tunnelswarm_proto::dtls::cipher::{new_protection, write_record, RecordMeta};
use tunnelswarm_proto::dtls::keys::derive_session_keys;
use tunnelswarm_proto::dtls::record::{RecordIter, CT_APPLICATION_DATA};
use tunnelswarm_proto::dtls::suites::{suite_by_id, DtlsVersion};
use tunnelswarm_proto::dtls::Drbg;

/// (OpenSSL suite name, IANA id, record version) — the suites AnyConnect peers use.
const SUITES: [(&str, u16, DtlsVersion); 8] = [
    ("AES128-SHA", 0x002F, DtlsVersion::Dtls09),
    ("AES256-SHA", 0x0035, DtlsVersion::Dtls09),
    ("DES-CBC3-SHA", 0x000A, DtlsVersion::Dtls09),
    ("AES128-GCM-SHA256", 0x009C, DtlsVersion::Dtls12),
    ("AES256-GCM-SHA384", 0x009D, DtlsVersion::Dtls12),
    ("PSK-CHACHA20-POLY1305", 0xCCAB, DtlsVersion::Dtls12),
    ("PSK-AES128-GCM-SHA256", 0x00A8, DtlsVersion::Dtls12),
    ("PSK-AES256-GCM-SHA384", 0x00A9, DtlsVersion::Dtls12),
];

struct Args {
    seconds: f64,
    suite: Option<String>,
    sizes: Vec<usize>,
}

fn parse_args() -> Args {
    let mut a = Args {
        seconds: 1.0,
        suite: None,
        sizes: vec![64, 512, 1400],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                if let Some(s) = it.next().and_then(|v| v.parse().ok()) {
                    a.seconds = s;
                }
            }
            "--suite" => a.suite = it.next(),
            "--bytes" => {
                if let Some(v) = it.next() {
                    a.sizes = v.split(',').filter_map(|n| n.parse().ok()).collect();
                }
            }
            _ => {} // `cargo bench` passes `--bench`; ignore anything else
        }
    }
    a
}

/// Run `op` in batches until `seconds` have passed; records per second.
// A benchmark must read a clock; the core never does (clippy.toml), this binary is no core.
#[allow(clippy::disallowed_methods)]
fn measure(seconds: f64, mut op: impl FnMut()) -> f64 {
    const BATCH: u32 = 256;
    // warm-up: caches, branch predictors, allocator
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(50) {
        for _ in 0..BATCH {
            op();
        }
    }
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        for _ in 0..BATCH {
            op();
        }
        n += u64::from(BATCH);
        let dt = start.elapsed();
        if dt >= budget {
            return n as f64 / dt.as_secs_f64();
        }
    }
}

fn main() {
    let args = parse_args();
    println!(
        "# DTLS record protection, {} s per measurement; MB/s = plaintext bytes x records/s / 1e6",
        args.seconds
    );
    for (name, id, version) in SUITES {
        if args
            .suite
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let suite = suite_by_id(id).expect("suite in the table");
        let keys = derive_session_keys(suite, version, &[0x5a; 48], &[1; 32], &[2; 32])
            .expect("key block slices");
        let tx = new_protection(suite, &keys.client).expect("protector");
        let rx = new_protection(suite, &keys.client).expect("protector");
        let mut rng = Drbg::new([7; 32]);
        for &size in &args.sizes {
            let packet: Vec<u8> = (0..size.saturating_sub(1)).map(|i| i as u8).collect();
            // what `send_app` does for one data packet: type byte + packet, one record
            let mut seal = |seq: u64| {
                let meta = RecordMeta {
                    content_type: CT_APPLICATION_DATA,
                    version: version.wire(),
                    epoch: 1,
                    seq,
                };
                let mut d = Vec::with_capacity(size + 64);
                write_record(
                    &mut d,
                    Some(tx.as_ref()),
                    &meta,
                    &[&[0x00], &packet],
                    &mut rng,
                );
                d
            };
            let mut seq = 0u64;
            let seal_rate = measure(args.seconds, || {
                seq += 1;
                black_box(seal(seq));
            });
            // one sealed datagram, opened over and over (the window check is not timed)
            let datagram = seal(seq + 1);
            let open_rate = measure(args.seconds, || {
                for rec in RecordIter::new(black_box(&datagram)) {
                    let Ok((h, frag)) = rec else { continue };
                    let m = RecordMeta::from(&h);
                    let mut buf = frag.to_vec();
                    let r = rx.open(&m, &mut buf).expect("opens");
                    black_box(buf.get(r));
                }
            });
            for (op, rate) in [("seal", seal_rate), ("open", open_rate)] {
                println!(
                    "suite={name} id={id:04x} version={} op={op} bytes={size} \
                     records_per_s={rate:.0} mb_per_s={:.1}",
                    version.label(),
                    rate * size as f64 / 1e6
                );
            }
        }
    }
}
