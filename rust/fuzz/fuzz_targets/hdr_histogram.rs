//! The HDR histogram decoder on arbitrary bytes: a typed error or a histogram that
//! re-encodes canonically and can be read and merged, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunnelswarm_proto::stats::Histogram;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Histogram::decode(data) else {
        return;
    };
    assert!(h.clamped() <= h.len());
    let bytes = h.encode();
    assert!(bytes.len() <= data.len());
    let back = Histogram::decode(&bytes).expect("a canonical encoding decodes");
    assert_eq!(back, h);
    let _ = (
        h.min(),
        h.max(),
        h.mean(),
        h.stdev(),
        h.value_at_quantile(0.999),
    );
    let _ = h.iter_recorded().count();
    let mut m = Histogram::new(1, 3_600_000_000, 3).expect("the default layout");
    m.merge(&h);
    m.merge(&h);
    assert_eq!(m.len(), h.len().saturating_mul(2));
});
