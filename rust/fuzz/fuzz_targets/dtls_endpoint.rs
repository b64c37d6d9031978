//! A headend `DtlsEndpoint` (DTLS 0.9, DTLS 1.2 and PSK sessions) and clients in every
//! mode, fed arbitrary datagrams with timers in between (`dtls::fuzz::fuzz_endpoint`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tunnelswarm_proto::dtls::fuzz::fuzz_endpoint(data);
});
