//! DTLS record splitting, record protection (open with CBC-SHA1, 3DES, CBC-SHA384, GCM and
//! ChaCha20 keys) and the replay window, on arbitrary bytes (`dtls::fuzz::fuzz_record`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tunnelswarm_proto::dtls::fuzz::fuzz_record(data);
});
