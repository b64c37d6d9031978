//! The CSTP deframer on arbitrary bytes, split at an arbitrary point: only typed errors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunnelswarm_proto::cstp::Deframer;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut d = Deframer::new(4096);
    for part in [&data[..cut], &data[cut..]] {
        if d.push(part).is_err() {
            return;
        }
        while let Ok(Some(_)) = d.next_frame() {}
    }
    let _ = d.finish();
});
